//! A multiplexed Redis connection written for the bridge's plain commands
//! and pipelines (transactions stay on fred's exclusive pool).
//!
//! Why not fred here: fred hands every command to its router task and
//! flushes it in a write of its own, so under load Redis reads and answers
//! one command per system call. Here a writer task takes every request
//! queued since its last wakeup and sends them in one write; a reader task
//! parses the replies and completes the requests in order from a FIFO.
//! Measured with `wrk -t2 -c64` GET: less CPU per request in the bridge and
//! in Redis (see the README).
//!
//! The guarantees are fred's as the bridge used it:
//! - replies are raw frames (RESP2, converted to the RESP3 frame types the
//!   rest of the bridge reads), so a Redis error is a frame, not an `Err`;
//! - an `Err` means the outcome is unknown: the connection broke (or was
//!   down: fail fast) before the reply came; nothing is ever sent twice;
//! - the commands of one request leave together, in order, in one write:
//!   a real pipeline;
//! - the connection comes back by itself (backoff 0, 50, 100, ... 1000 ms),
//!   with AUTH and SELECT as the URL says.

use crate::backend::Unavailable;
use bytes::{BufMut, Bytes, BytesMut};
use fred::types::Resp3Frame;
use redis_protocol::resp2::types::BytesFrame as Resp2Frame;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

type Reply = Result<Vec<Resp3Frame>, Unavailable>;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub database: Option<u8>,
}

/// One request: its commands, already encoded, and how many replies it
/// waits for.
struct Job {
    bytes: Bytes,
    n: usize,
    reply: oneshot::Sender<Reply>,
}

/// A request written to Redis, waiting for its replies.
struct Pending {
    n: usize,
    frames: Vec<Resp3Frame>,
    reply: oneshot::Sender<Reply>,
}

type Fifo = Arc<Mutex<VecDeque<Pending>>>;

/// A multiplexed connection, reconnecting by itself.
pub struct Conn {
    jobs: mpsc::UnboundedSender<Job>,
    up: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Conn {
    /// Starts connecting in the background.
    pub fn start(target: Target) -> Conn {
        let (jobs, rx) = mpsc::unbounded_channel();
        let up = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(manage(target, rx, up.clone()));
        Conn { jobs, up, task }
    }

    /// Whether the connection is up (handshake done, not known broken).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Sends `cmds` in one write and waits for one reply each. Fails at
    /// once while the connection is down.
    pub async fn run(&self, cmds: &[crate::protocol::Command]) -> Reply {
        if !self.is_up() {
            return Err(down());
        }
        let mut buf = BytesMut::with_capacity(cmds.iter().map(encoded_len).sum());
        for c in cmds {
            encode(&mut buf, c.iter().map(|a| a.as_ref()));
        }
        let (tx, rx) = oneshot::channel();
        let job = Job {
            bytes: buf.freeze(),
            n: cmds.len(),
            reply: tx,
        };
        if self.jobs.send(job).is_err() {
            return Err(down());
        }
        rx.await.unwrap_or_else(|_| Err(down()))
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.up.store(false, Ordering::Release);
        self.task.abort();
    }
}

fn down() -> Unavailable {
    Unavailable::Down("no connection to Redis (reconnecting)".into())
}

fn lost(why: &str) -> Unavailable {
    Unavailable::Down(format!("the connection to Redis broke: {why}"))
}

fn encoded_len(c: &crate::protocol::Command) -> usize {
    16 + c.iter().map(|a| a.len() + 16).sum::<usize>()
}

fn push_len(buf: &mut BytesMut, prefix: u8, n: usize) {
    buf.put_u8(prefix);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&digits[i..]);
    buf.put_slice(b"\r\n");
}

/// A command as a RESP array of bulk strings.
fn encode<'a>(buf: &mut BytesMut, args: impl ExactSizeIterator<Item = &'a [u8]>) {
    push_len(buf, b'*', args.len());
    for a in args {
        push_len(buf, b'$', a.len());
        buf.put_slice(a);
        buf.put_slice(b"\r\n");
    }
}

/// RESP2 to the RESP3 frame types, one for one (no pub/sub guessing: an
/// array that happens to start with "message" stays an array).
fn to_resp3(f: Resp2Frame) -> Resp3Frame {
    match f {
        Resp2Frame::SimpleString(data) => Resp3Frame::SimpleString {
            data,
            attributes: None,
        },
        Resp2Frame::Error(data) => Resp3Frame::SimpleError {
            data,
            attributes: None,
        },
        Resp2Frame::Integer(data) => Resp3Frame::Number {
            data,
            attributes: None,
        },
        Resp2Frame::BulkString(data) => Resp3Frame::BlobString {
            data,
            attributes: None,
        },
        Resp2Frame::Array(frames) => Resp3Frame::Array {
            data: frames.into_iter().map(to_resp3).collect(),
            attributes: None,
        },
        Resp2Frame::Null => Resp3Frame::Null,
    }
}

/// Moves every complete reply at the front of `buf` (RESP2, as Redis
/// answers) to `out`, leaving a partial one for the next read. An error
/// means the stream is corrupt: the connection cannot be trusted after it.
/// Where a read splits the replies never changes what they are
/// ([`check_reply_invariants`], fuzz target `redis_reply`).
pub fn take_replies(buf: &mut BytesMut, out: &mut Vec<Resp3Frame>) -> Result<(), String> {
    loop {
        match redis_protocol::resp2::decode::decode_bytes_mut(buf) {
            Ok(Some((f, _, _))) => out.push(to_resp3(f)),
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("bad reply: {e}")),
        }
    }
}

/// What the fuzz target `redis_reply` and its proptest twin check on any
/// bytes: taking replies never panics, and feeding the bytes in pieces
/// (cut where `data`'s own bytes say) gives the same replies, and the same
/// verdict on corruption, as feeding them at once.
pub fn check_reply_invariants(data: &[u8]) {
    let (cuts, stream) = match data.split_first() {
        Some((&c, rest)) => (c, rest),
        None => return,
    };
    let mut whole_buf = BytesMut::from(stream);
    let mut whole = Vec::new();
    let whole_ok = take_replies(&mut whole_buf, &mut whole).is_ok();

    let mut buf = BytesMut::new();
    let mut pieces = Vec::new();
    let mut pieces_ok = true;
    let mut at = 0;
    let mut step = usize::from(cuts % 7) + 1;
    while at < stream.len() && pieces_ok {
        let end = (at + step).min(stream.len());
        buf.extend_from_slice(&stream[at..end]);
        at = end;
        step = (step * 5 + usize::from(cuts)) % 13 + 1;
        pieces_ok = take_replies(&mut buf, &mut pieces).is_ok();
    }
    if whole_ok {
        assert!(pieces_ok, "a stream read at once is fine but not in pieces");
        assert_eq!(pieces, whole, "the same replies whatever the reads");
        assert_eq!(buf, whole_buf, "the same partial reply left over");
    } else {
        assert!(!pieces_ok, "a corrupt stream read in pieces was accepted");
        assert!(pieces.len() <= whole.len() && whole[..pieces.len()] == pieces[..]);
    }
}

/// Keeps the connection up: connect, handshake, serve until it breaks,
/// fail what was in flight, back off, again.
async fn manage(target: Target, mut rx: mpsc::UnboundedReceiver<Job>, up: Arc<AtomicBool>) {
    let mut attempt = 0u32;
    let mut was_up = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(2), connect(&target)).await {
            Ok(Ok(stream)) => {
                attempt = 0;
                if was_up {
                    tracing::info!("redis connection restored");
                }
                was_up = true;
                up.store(true, Ordering::Release);
                let why = serve(stream, &mut rx).await;
                up.store(false, Ordering::Release);
                tracing::warn!(error = %why, "redis connection lost");
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "redis connect failed"),
            Err(_) => tracing::debug!("redis connect timed out"),
        }
        // Back off, failing at once whatever arrives meanwhile.
        let delay = if attempt == 0 {
            0
        } else {
            (50u64 << (attempt - 1).min(5)).min(1_000)
        };
        attempt = attempt.saturating_add(1);
        let sleep = tokio::time::sleep(Duration::from_millis(delay));
        tokio::pin!(sleep);
        loop {
            while let Ok(job) = rx.try_recv() {
                let _ = job.reply.send(Err(down()));
            }
            tokio::select! {
                () = &mut sleep => break,
                job = rx.recv() => match job {
                    Some(job) => { let _ = job.reply.send(Err(down())); }
                    None => return,
                },
            }
        }
    }
}

/// Connects and runs AUTH and SELECT.
async fn connect(t: &Target) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let mut hello = BytesMut::new();
    let mut expect = 0;
    if let Some(p) = &t.password {
        match &t.username {
            Some(u) => encode(
                &mut hello,
                [b"AUTH".as_slice(), u.as_bytes(), p.as_bytes()].into_iter(),
            ),
            None => encode(&mut hello, [b"AUTH".as_slice(), p.as_bytes()].into_iter()),
        }
        expect += 1;
    }
    if let Some(db) = t.database.filter(|&d| d != 0) {
        let db = db.to_string();
        encode(
            &mut hello,
            [b"SELECT".as_slice(), db.as_bytes()].into_iter(),
        );
        expect += 1;
    }
    if expect == 0 {
        return Ok(s);
    }
    s.write_all(&hello).await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(256);
    while expect > 0 {
        match redis_protocol::resp2::decode::decode_bytes_mut(&mut buf) {
            Ok(Some((Resp2Frame::SimpleString(_), _, _))) => expect -= 1,
            Ok(Some((f, _, _))) => return Err(format!("handshake refused: {f:?}")),
            Ok(None) => {
                if s.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                    return Err("closed during the handshake".into());
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(s)
}

/// Runs one connection until it breaks; everything in flight then fails
/// (outcome unknown), and so does whatever was queued but not written.
async fn serve(stream: TcpStream, rx: &mut mpsc::UnboundedReceiver<Job>) -> String {
    let (rd, mut wr) = stream.into_split();
    let fifo: Fifo = Arc::default();
    let mut reader = tokio::spawn(read_loop(rd, fifo.clone()));
    let mut out = BytesMut::new();
    let why = loop {
        let first = tokio::select! {
            job = rx.recv() => match job {
                Some(job) => job,
                None => break "the bridge is closing".to_string(),
            },
            r = &mut reader => break r.unwrap_or_else(|e| e.to_string()),
        };
        // Let the other tasks that are ready run first: the HTTP
        // connections whose requests are already read queue theirs too.
        // Without this, tokio runs the woken writer next (its LIFO slot)
        // and every request leaves in a write of its own.
        tokio::task::yield_now().await;
        // Everything queued since the last wakeup leaves in one write; a
        // request is in the FIFO before its bytes are on the wire.
        {
            let mut q = fifo.lock().expect("never poisoned");
            let mut next = Some(first);
            while let Some(job) = next.take() {
                out.extend_from_slice(&job.bytes);
                q.push_back(Pending {
                    n: job.n,
                    frames: Vec::with_capacity(job.n),
                    reply: job.reply,
                });
                if out.len() < (1 << 20) {
                    next = rx.try_recv().ok();
                }
            }
        }
        let write = wr.write_all(&out);
        let r = tokio::select! {
            r = write => r.map_err(|e| e.to_string()),
            r = &mut reader => Err(r.unwrap_or_else(|e| e.to_string())),
        };
        if let Err(e) = r {
            break e;
        }
        out.clear();
        if out.capacity() > (4 << 20) {
            out = BytesMut::new();
        }
    };
    reader.abort();
    let _ = wr.shutdown().await;
    let pending: Vec<Pending> = fifo.lock().expect("never poisoned").drain(..).collect();
    let e = lost(&why);
    for p in pending {
        let _ = p.reply.send(Err(e.clone()));
    }
    while let Ok(job) = rx.try_recv() {
        let _ = job.reply.send(Err(e.clone()));
    }
    why
}

/// Parses replies and completes the requests in order. Returns why the
/// connection is no longer usable.
async fn read_loop(mut rd: tokio::net::tcp::OwnedReadHalf, fifo: Fifo) -> String {
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut frames = Vec::new();
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 << 10);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) => return "closed by Redis".into(),
            Ok(_) => {}
            Err(e) => return e.to_string(),
        }
        if let Err(e) = take_replies(&mut buf, &mut frames) {
            return e;
        }
        let mut q = fifo.lock().expect("never poisoned");
        for frame in frames.drain(..) {
            let Some(p) = q.front_mut() else {
                return "a reply nobody asked for".into();
            };
            p.frames.push(frame);
            if p.frames.len() == p.n {
                let p = q.pop_front().expect("the front exists");
                // A request that timed out has dropped its receiver.
                let _ = p.reply.send(Ok(p.frames));
            }
        }
        drop(q);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::net::TcpListener;

    /// One RESP2 reply as Redis writes it, nested arrays included.
    fn reply() -> impl Strategy<Value = Vec<u8>> {
        let leaf = prop_oneof![
            "[a-zA-Z0-9 ]{0,8}".prop_map(|s| format!("+{s}\r\n").into_bytes()),
            "[a-zA-Z0-9 ]{0,8}".prop_map(|s| format!("-ERR {s}\r\n").into_bytes()),
            any::<i64>().prop_map(|n| format!(":{n}\r\n").into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| {
                let mut v = format!("${}\r\n", b.len()).into_bytes();
                v.extend(b);
                v.extend(b"\r\n");
                v
            }),
            Just(b"$-1\r\n".to_vec()),
            Just(b"*-1\r\n".to_vec()),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            proptest::collection::vec(inner, 0..4).prop_map(|items| {
                let mut v = format!("*{}\r\n", items.len()).into_bytes();
                for i in items {
                    v.extend(i);
                }
                v
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The fuzz target's twin (`redis_reply`): any bytes.
        #[test]
        fn replies_read_alike_whatever_the_reads_on_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            check_reply_invariants(&data);
        }

        /// Real replies, whole, cut short, or with one byte changed: all
        /// of them are taken, in whatever pieces, and nothing is left over.
        #[test]
        fn replies_read_alike_whatever_the_reads_on_redis_replies(
            cuts in any::<u8>(),
            replies in proptest::collection::vec(reply(), 0..6),
            cut in any::<usize>(),
            flip in proptest::option::of((any::<usize>(), any::<u8>())),
        ) {
            let stream: Vec<u8> = replies.concat();
            let mut buf = BytesMut::from(&stream[..]);
            let mut out = Vec::new();
            take_replies(&mut buf, &mut out).unwrap();
            prop_assert_eq!(out.len(), replies.len());
            prop_assert!(buf.is_empty());
            let mut data = vec![cuts];
            data.extend_from_slice(&stream);
            check_reply_invariants(&data);
            let short = &data[..1 + cut % (stream.len() + 1)];
            check_reply_invariants(short);
            if let Some((at, b)) = flip {
                if !stream.is_empty() {
                    data[1 + at % stream.len()] = b;
                    check_reply_invariants(&data);
                }
            }
        }
    }

    fn cmd(args: &[&str]) -> crate::protocol::Command {
        args.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn target(port: u16, password: Option<&str>, database: Option<u8>) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port,
            username: None,
            password: password.map(Into::into),
            database,
        }
    }

    async fn wait_up(c: &Conn) {
        for _ in 0..400 {
            if c.is_up() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never connected");
    }

    /// Reads until `n` commands arrived; returns the bytes.
    async fn read_commands(s: &mut TcpStream, n: usize) -> BytesMut {
        let mut buf = BytesMut::new();
        loop {
            let mut probe = buf.clone();
            let mut seen = 0;
            while let Ok(Some(_)) = redis_protocol::resp2::decode::decode_bytes_mut(&mut probe) {
                seen += 1;
            }
            if seen >= n {
                return buf;
            }
            assert!(s.read_buf(&mut buf).await.unwrap() > 0, "closed early");
        }
    }

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        let mut b = BytesMut::new();
        let c = cmd(&["SET", "k", ""]);
        encode(&mut b, c.iter().map(|a| a.as_ref()));
        assert_eq!(&b[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
        let mut b = BytesMut::new();
        let long = "x".repeat(1234);
        encode(&mut b, [long.as_bytes()].into_iter());
        assert!(b.starts_with(b"*1\r\n$1234\r\nxxx"));
    }

    #[tokio::test]
    async fn handshake_pipeline_order_raw_frames_and_loss() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conn = Conn::start(target(port, Some("pw"), Some(3)));
        let (mut s, _) = listener.accept().await.unwrap();
        let hello = read_commands(&mut s, 2).await;
        assert_eq!(
            &hello[..],
            b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
        );
        s.write_all(b"+OK\r\n+OK\r\n").await.unwrap();
        wait_up(&conn).await;

        // One request of three commands; the replies split across writes.
        let cmds = [
            cmd(&["GET", "a"]),
            cmd(&["INCR", "s"]),
            cmd(&["LRANGE", "l", "0", "-1"]),
        ];
        let fut = conn.run(&cmds);
        let server = async {
            let got = read_commands(&mut s, 3).await;
            assert!(got.starts_with(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$4\r\nINCR"));
            s.write_all(b"$-1\r\n-ERR not an integer\r").await.unwrap();
            s.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            s.write_all(b"\n*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$1\r\ny\r\n")
                .await
                .unwrap();
        };
        let (frames, ()) = tokio::join!(fut, server);
        let frames = frames.unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], Resp3Frame::Null);
        assert_eq!(
            crate::protocol::error_text(&frames[1]).as_deref(),
            Some("ERR not an integer")
        );
        // An array that starts with "message" is a value, not pub/sub.
        assert!(matches!(&frames[2], Resp3Frame::Array { data, .. } if data.len() == 3));

        // Concurrent requests are answered each with its own replies.
        let a = [cmd(&["GET", "1"])];
        let b = [cmd(&["GET", "2"]), cmd(&["GET", "3"])];
        let server = async {
            read_commands(&mut s, 3).await;
            s.write_all(b"$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n")
                .await
                .unwrap();
        };
        let (ra, rb, ()) = tokio::join!(conn.run(&a), conn.run(&b), server);
        let blob = |f: &Resp3Frame| match f {
            Resp3Frame::BlobString { data, .. } => data.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(blob(&ra.unwrap()[0]), "1");
        let rb = rb.unwrap();
        assert_eq!((blob(&rb[0]), blob(&rb[1])), ("2".into(), "3".into()));

        // The connection breaks with a request in flight: its outcome is
        // unknown (an Err), it is not sent again, and the connection comes
        // back by itself.
        let inflight = [cmd(&["INCR", "n"])];
        let server = async {
            read_commands(&mut s, 1).await;
            drop(s);
        };
        let (r, ()) = tokio::join!(conn.run(&inflight), server);
        assert!(matches!(r, Err(Unavailable::Down(_))), "{r:?}");
        let (mut s2, _) = listener.accept().await.unwrap();
        let hello = read_commands(&mut s2, 2).await;
        assert!(hello.starts_with(b"*2\r\n$4\r\nAUTH"), "no INCR replayed");
        s2.write_all(b"+OK\r\n+OK\r\n").await.unwrap();
        wait_up(&conn).await;
        let server = async {
            let got = read_commands(&mut s2, 1).await;
            assert_eq!(&got[..], b"*1\r\n$4\r\nPING\r\n");
            s2.write_all(b"+PONG\r\n").await.unwrap();
        };
        let ping = [cmd(&["PING"])];
        let (r, ()) = tokio::join!(conn.run(&ping), server);
        assert!(matches!(&r.unwrap()[0], Resp3Frame::SimpleString { .. }));

        // A reply nobody asked for is a broken connection, not a value.
        s2.write_all(b"+stray\r\n").await.unwrap();
        let mut rest = Vec::new();
        let _ = s2.read_to_end(&mut rest).await;
        conn.close();
    }

    #[tokio::test]
    async fn fails_fast_while_down() {
        // Nothing listens there.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let conn = Conn::start(target(port, None, None));
        let t = std::time::Instant::now();
        let r = conn.run(&[cmd(&["GET", "a"])]).await;
        assert!(matches!(r, Err(Unavailable::Down(_))));
        assert!(t.elapsed() < Duration::from_millis(500));
        conn.close();
    }

    #[tokio::test]
    async fn a_refused_handshake_is_not_up() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conn = Conn::start(target(port, Some("wrong"), None));
        let (mut s, _) = listener.accept().await.unwrap();
        read_commands(&mut s, 1).await;
        s.write_all(b"-WRONGPASS invalid username-password pair\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        assert!(!conn.is_up());
        assert!(conn.run(&[cmd(&["GET", "a"])]).await.is_err());
        conn.close();
    }
}
