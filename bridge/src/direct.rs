//! A multiplexed Redis connection written for the bridge's plain commands,
//! pipelines and transactions (a transaction is one request, `MULTI`, its
//! commands and `EXEC`, leaving in one write: nothing comes between them).
//!
//! Why not fred here: fred hands every command to its router task and
//! flushes it in a write of its own, so under load Redis reads and answers
//! one command per system call. Here a writer task takes every request
//! queued since its last wakeup and sends them in one write; a reader task
//! parses the replies and completes the requests in order from a FIFO.
//! Measured with `wrk -t2 -c64` GET: less CPU per request in the bridge and
//! in Redis (see the README).
//!
//! The guarantees:
//! - replies are raw frames (RESP2, converted to the RESP3 frame types the
//!   rest of the bridge reads), so a Redis error is a frame, not an `Err`;
//! - an `Err` says whether the command was sent ([`Unavailable`]): a
//!   command that was not sent never runs, one that was has an unknown
//!   outcome; nothing is ever sent twice;
//! - the commands of one request leave together, in order, in one write:
//!   a real pipeline;
//! - the queue of requests not yet written is bounded ([`Limits`]): past
//!   it, a request fails at once, unsent;
//! - a request answers within [`Limits::timeout`]: one still queued then
//!   is dropped, never sent; one already written is reported as such;
//! - a Redis that stops reading (a write that does not complete) or
//!   answering (no reply while some are due) for [`Limits::timeout`]
//!   costs the connection: what was in flight fails (outcome unknown),
//!   what was queued fails unsent, and it reconnects;
//! - the connection comes back by itself (backoff 0, 50, 100, ... 1000 ms),
//!   with AUTH and SELECT as the URL says, and a PING: a server that
//!   accepts the connection but does not answer is not up.

use bytes::{BufMut, Bytes, BytesMut};
use fred::types::Resp3Frame;
use redis_protocol::resp2::types::BytesFrame as Resp2Frame;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Why Redis gave no answer, and whether the command reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// No answer within the request timeout (504). `sent`: the command
    /// was written to Redis and may have run (outcome unknown); else it
    /// was still queued, and was dropped: it did not run.
    Timeout { sent: bool },
    /// Redis cannot be reached, the connection broke, or the queue to
    /// Redis is full (503). `sent` as for [`Unavailable::Timeout`].
    Down { sent: bool, why: String },
}

impl Unavailable {
    /// Not sent: it did not run.
    pub fn unsent(why: impl Into<String>) -> Unavailable {
        Unavailable::Down {
            sent: false,
            why: why.into(),
        }
    }

    /// Sent (or not known not to be): the outcome is unknown.
    pub fn lost(why: impl Into<String>) -> Unavailable {
        Unavailable::Down {
            sent: true,
            why: why.into(),
        }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNKNOWN: &str = "the command was sent: its outcome is unknown";
        const UNSENT: &str = "the command was not sent and did not run";
        match self {
            Unavailable::Timeout { sent: true } => write!(
                f,
                "ERR Redis did not answer in time (--request-timeout); {UNKNOWN}"
            ),
            Unavailable::Timeout { sent: false } => write!(
                f,
                "ERR Redis did not take the command in time (--request-timeout); {UNSENT}"
            ),
            Unavailable::Down { sent, why } => write!(
                f,
                "ERR Redis is unreachable: {why}; {}",
                if *sent { UNKNOWN } else { UNSENT }
            ),
        }
    }
}

/// Why a command was refused before it was sent (`/metrics` counts it as `queue_full`).
pub const QUEUE_FULL: &str =
    "the queue to Redis is full (--max-queue, --max-queue-bytes): Redis is slow or stalled";

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

impl Target {
    /// The same credentials and settings at another address (a cluster
    /// node as `CLUSTER SLOTS` names it).
    pub fn at(&self, host: &str, port: u16) -> Target {
        Target {
            host: host.to_string(),
            port,
            ..self.clone()
        }
    }
}

/// How long a request may wait, and how much may wait.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a request waits for its replies (`--request-timeout`),
    /// and how long Redis may go without reading what is written or
    /// answering what is due before the connection is given up.
    pub timeout: Duration,
    /// Most requests queued and not yet written (`--max-queue`).
    pub max_queue: usize,
    /// Most bytes of commands queued and not yet written
    /// (`--max-queue-bytes`); a larger request is taken when the queue is
    /// empty.
    pub max_queue_bytes: usize,
}

/// A job's state: the writer takes it (`TAKEN`) before its bytes go out;
/// a request that times out first cancels it (`CANCELLED`), and it is
/// then dropped unsent.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const CANCELLED: u8 = 2;

/// One request: its commands, already encoded, and how many replies it
/// waits for.
struct Job {
    bytes: Bytes,
    n: usize,
    state: Arc<AtomicU8>,
    reply: oneshot::Sender<Reply>,
}

/// A request written to Redis, waiting for its replies.
struct Pending {
    /// The order it was written in, for the watchdog.
    seq: u64,
    n: usize,
    frames: Vec<Resp3Frame>,
    reply: oneshot::Sender<Reply>,
}

type Fifo = Arc<Mutex<VecDeque<Pending>>>;

/// What is queued and not yet written.
#[derive(Default)]
struct Queue {
    jobs: AtomicUsize,
    bytes: AtomicUsize,
}

impl Queue {
    /// Counts a job in, or refuses it when the queue is full.
    fn admit(&self, limits: &Limits, len: usize) -> bool {
        if self.jobs.fetch_add(1, Ordering::AcqRel) >= limits.max_queue {
            self.jobs.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let before = self.bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > limits.max_queue_bytes {
            self.release(len);
            return false;
        }
        true
    }

    /// Counts a job out of the queue (taken, dropped or failed).
    fn release(&self, len: usize) {
        self.jobs.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(len, Ordering::AcqRel);
    }
}

/// A multiplexed connection, reconnecting by itself.
pub struct Conn {
    jobs: mpsc::UnboundedSender<Job>,
    up: Arc<AtomicBool>,
    queue: Arc<Queue>,
    limits: Limits,
    task: tokio::task::JoinHandle<()>,
}

impl Conn {
    /// Starts connecting in the background.
    pub fn start(target: Target, limits: Limits) -> Conn {
        // Unbounded as a channel, bounded by `Queue`: by bytes as well as
        // by count, and failing at once rather than waiting for room.
        let (jobs, rx) = mpsc::unbounded_channel();
        let up = Arc::new(AtomicBool::new(false));
        let queue = Arc::new(Queue::default());
        let task = tokio::spawn(manage(target, rx, up.clone(), queue.clone(), limits));
        Conn {
            jobs,
            up,
            queue,
            limits,
            task,
        }
    }

    /// Whether the connection is up (handshake done, not known broken).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Sends `cmds` in one write and waits for one reply each, at most
    /// [`Limits::timeout`]. Fails at once while the connection is down or
    /// the queue is full.
    pub async fn run(&self, cmds: &[crate::protocol::Command]) -> Reply {
        if !self.is_up() {
            return Err(down());
        }
        let mut buf = BytesMut::with_capacity(cmds.iter().map(encoded_len).sum());
        for c in cmds {
            encode(&mut buf, c.iter().map(|a| a.as_ref()));
        }
        let len = buf.len();
        if !self.queue.admit(&self.limits, len) {
            return Err(Unavailable::unsent(QUEUE_FULL));
        }
        let state = Arc::new(AtomicU8::new(QUEUED));
        let (tx, mut rx) = oneshot::channel();
        let job = Job {
            bytes: buf.freeze(),
            n: cmds.len(),
            state: state.clone(),
            reply: tx,
        };
        if let Err(e) = self.jobs.send(job) {
            self.queue.release(e.0.bytes.len());
            return Err(down());
        }
        match tokio::time::timeout(self.limits.timeout, &mut rx).await {
            Ok(r) => r.unwrap_or_else(|_| Err(Unavailable::lost("the bridge is closing"))),
            // Still queued: cancelled, so the writer drops it unsent.
            Err(_) => {
                match state.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => Err(Unavailable::Timeout { sent: false }),
                    // Taken meanwhile; the reply may have come at the wire.
                    Err(_) => rx
                        .try_recv()
                        .unwrap_or(Err(Unavailable::Timeout { sent: true })),
                }
            }
        }
    }

    /// Requests and bytes queued and not yet written, for `/metrics`.
    pub fn queued(&self) -> (usize, usize) {
        (
            self.queue.jobs.load(Ordering::Relaxed),
            self.queue.bytes.load(Ordering::Relaxed),
        )
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.up.store(false, Ordering::Release);
        self.task.abort();
    }
}

fn down() -> Unavailable {
    Unavailable::unsent("no connection to Redis (reconnecting)")
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
pub(crate) fn encode<'a>(buf: &mut BytesMut, args: impl ExactSizeIterator<Item = &'a [u8]>) {
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
async fn manage(
    target: Target,
    mut rx: mpsc::UnboundedReceiver<Job>,
    up: Arc<AtomicBool>,
    queue: Arc<Queue>,
    limits: Limits,
) {
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
                let why = serve(stream, &mut rx, &queue, &limits).await;
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
                fail_unsent(&queue, job, down());
            }
            tokio::select! {
                () = &mut sleep => break,
                job = rx.recv() => match job {
                    Some(job) => fail_unsent(&queue, job, down()),
                    None => return,
                },
            }
        }
    }
}

/// Answers a job that was never written.
fn fail_unsent(queue: &Queue, job: Job, e: Unavailable) {
    queue.release(job.bytes.len());
    let _ = job.reply.send(Err(e));
}

/// Connects and runs AUTH and SELECT, then PING: a server that accepts
/// connections but does not answer them (stopped, overloaded) is not up.
pub(crate) async fn connect(t: &Target) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let mut hello = BytesMut::new();
    let mut expect = 1;
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
    encode(&mut hello, [b"PING".as_slice()].into_iter());
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

/// Runs one connection until it breaks or stalls; everything in flight
/// then fails (outcome unknown), and whatever was queued but not written
/// fails unsent.
async fn serve(
    stream: TcpStream,
    rx: &mut mpsc::UnboundedReceiver<Job>,
    queue: &Queue,
    limits: &Limits,
) -> String {
    let (rd, mut wr) = stream.into_split();
    let fifo: Fifo = Arc::default();
    let mut reader = tokio::spawn(read_loop(rd, fifo.clone()));
    let watchdog = watch(fifo.clone(), limits.timeout);
    tokio::pin!(watchdog);
    let mut out = BytesMut::new();
    let mut seq = 0u64;
    let why = loop {
        let first = tokio::select! {
            job = rx.recv() => match job {
                Some(job) => job,
                None => break "the bridge is closing".to_string(),
            },
            r = &mut reader => break r.unwrap_or_else(|e| e.to_string()),
            why = &mut watchdog => break why,
        };
        // Let the other tasks that are ready run first: the HTTP
        // connections whose requests are already read queue theirs too.
        // Without this, tokio runs the woken writer next (its LIFO slot)
        // and every request leaves in a write of its own.
        tokio::task::yield_now().await;
        // Everything queued since the last wakeup leaves in one write; a
        // request is in the FIFO before its bytes are on the wire. One
        // whose request timed out meanwhile is dropped, never sent.
        {
            let mut q = fifo.lock().expect("never poisoned");
            let mut next = Some(first);
            while let Some(job) = next.take() {
                queue.release(job.bytes.len());
                if job
                    .state
                    .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    out.extend_from_slice(&job.bytes);
                    seq += 1;
                    q.push_back(Pending {
                        seq,
                        n: job.n,
                        frames: Vec::with_capacity(job.n),
                        reply: job.reply,
                    });
                }
                if out.len() < (1 << 20) {
                    next = rx.try_recv().ok();
                }
            }
        }
        if out.is_empty() {
            continue;
        }
        // A Redis that stops reading fills the socket: the write would
        // wait for good.
        let write = tokio::time::timeout(limits.timeout, wr.write_all(&out));
        let r = tokio::select! {
            r = write => match r {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("Redis stopped reading (no write completed within --request-timeout)".to_string()),
            },
            r = &mut reader => Err(r.unwrap_or_else(|e| e.to_string())),
            why = &mut watchdog => Err(why),
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
    let e = Unavailable::lost(format!("the connection to Redis broke: {why}"));
    for p in pending {
        let _ = p.reply.send(Err(e.clone()));
    }
    let e = Unavailable::unsent(format!("the connection to Redis broke: {why}"));
    while let Ok(job) = rx.try_recv() {
        fail_unsent(queue, job, e.clone());
    }
    why
}

/// Resolves when replies are due and none has come for `stall`: the
/// request at the front of the FIFO, and how many of its replies came,
/// stayed the same. Checked a few times per `stall`, so the hot path pays
/// nothing for it.
async fn watch(fifo: Fifo, stall: Duration) -> String {
    let tick = (stall / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut last = None;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let front = fifo
            .lock()
            .expect("never poisoned")
            .front()
            .map(|p| (p.seq, p.frames.len()));
        if front.is_none() || front != last {
            last = front;
            since = Instant::now();
        } else if since.elapsed() >= stall {
            return "Redis stopped answering (no reply within --request-timeout)".into();
        }
    }
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

    fn limits(ms: u64) -> Limits {
        Limits {
            timeout: Duration::from_millis(ms),
            max_queue: 1000,
            max_queue_bytes: 64 << 20,
        }
    }

    /// Answers the handshake: one +OK per command (AUTH, SELECT, PING).
    async fn handshake(s: &mut TcpStream, n: usize) -> BytesMut {
        let hello = read_commands(s, n).await;
        s.write_all(&b"+OK\r\n".repeat(n)).await.unwrap();
        hello
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
        let conn = Conn::start(target(port, Some("pw"), Some(3)), limits(5_000));
        let (mut s, _) = listener.accept().await.unwrap();
        let hello = handshake(&mut s, 3).await;
        assert_eq!(
            &hello[..],
            b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*1\r\n$4\r\nPING\r\n"
        );
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
        assert!(
            matches!(&r, Err(Unavailable::Down { sent: true, .. })),
            "{r:?}"
        );
        let (mut s2, _) = listener.accept().await.unwrap();
        let hello = handshake(&mut s2, 3).await;
        assert!(hello.starts_with(b"*2\r\n$4\r\nAUTH"), "no INCR replayed");
        assert!(hello.ends_with(b"PING\r\n"), "no INCR replayed");
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
        let conn = Conn::start(target(port, None, None), limits(5_000));
        let t = std::time::Instant::now();
        let r = conn.run(&[cmd(&["GET", "a"])]).await;
        assert!(matches!(r, Err(Unavailable::Down { sent: false, .. })));
        assert!(t.elapsed() < Duration::from_millis(500));
        conn.close();
    }

    #[tokio::test]
    async fn a_refused_handshake_is_not_up() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conn = Conn::start(target(port, Some("wrong"), None), limits(5_000));
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

    /// A server that takes the connection and the handshake, then stops
    /// reading and answering, as a SIGSTOPped Redis does.
    #[tokio::test]
    async fn a_stalled_redis_costs_the_connection_and_what_was_queued_never_runs() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut l = limits(300);
        l.max_queue_bytes = 1 << 20;
        let conn = Arc::new(Conn::start(target(port, None, None), l));
        let (mut s, _) = listener.accept().await.unwrap();
        handshake(&mut s, 1).await;
        wait_up(&conn).await;

        // More than the socket buffers hold: the writer waits in it.
        let big = [cmd(&["SET", "big", &"x".repeat(48 << 20)])];
        let big = {
            let conn = conn.clone();
            tokio::spawn(async move { conn.run(&big).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Queued behind it, never written.
        let queued = [cmd(&["SET", "queued-marker", &"q".repeat(600 << 10)])];
        let fut = {
            let conn = conn.clone();
            tokio::spawn(async move { conn.run(&queued).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The queue is full (by bytes): refused at once, unsent.
        let t = Instant::now();
        let full = conn
            .run(&[cmd(&["SET", "refused-marker", &"r".repeat(600 << 10)])])
            .await;
        assert!(t.elapsed() < Duration::from_millis(100));
        assert!(
            matches!(&full, Err(Unavailable::Down { sent: false, why }) if why.contains("queue")),
            "{full:?}"
        );
        // Unsent: dropped at its timeout, or failed with the connection,
        // whichever came first.
        let t = Instant::now();
        let r = fut.await.unwrap();
        assert!(
            matches!(
                r,
                Err(Unavailable::Timeout { sent: false } | Unavailable::Down { sent: false, .. })
            ),
            "{r:?}"
        );
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
        let r = big.await.unwrap();
        assert_eq!(r, Err(Unavailable::Timeout { sent: true }));

        // The write deadline gives the connection up; what reached the
        // server is the big SET's start, never the queued ones.
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
        assert!(got.len() > 1 << 20, "the big SET was being written");
        assert!(got.len() < 49 << 20, "the connection closed mid-write");
        for marker in [&b"queued-marker"[..], b"refused-marker"] {
            assert!(!got.windows(marker.len()).any(|w| w == marker));
        }
        // It reconnects; nothing is replayed.
        let (mut s2, _) = listener.accept().await.unwrap();
        let hello = handshake(&mut s2, 1).await;
        assert_eq!(&hello[..], b"*1\r\n$4\r\nPING\r\n");
        wait_up(&conn).await;

        // A server that reads but never answers: the watchdog gives it up.
        let t = Instant::now();
        let r = conn.run(&[cmd(&["INCR", "n"])]).await;
        assert_eq!(r, Err(Unavailable::Timeout { sent: true }));
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s2.read_to_end(&mut got)).await;
        assert!(
            t.elapsed() < Duration::from_millis(1_500),
            "closed after {:?}",
            t.elapsed()
        );
        assert_eq!(&got[..], b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n");
        let (mut s3, _) = listener.accept().await.unwrap();
        handshake(&mut s3, 1).await;
        wait_up(&conn).await;
        conn.close();
    }

    #[tokio::test]
    async fn a_server_that_accepts_but_never_answers_is_not_up() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conn = Conn::start(target(port, None, None), limits(5_000));
        let (mut s, _) = listener.accept().await.unwrap();
        read_commands(&mut s, 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!conn.is_up());
        conn.close();
    }
}
