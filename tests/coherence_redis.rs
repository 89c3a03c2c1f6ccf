//! The coherence log's commands against a real `redis-server`: what
//! writers append is read back and decoded, and every way of losing
//! entries (trimmed past a reader's position, `FLUSHALL`, a restart with
//! an empty database) is seen as a gap.
//!
//! The test starts its own redis-server on a free loopback port (installed
//! by `make setup`), speaks RESP to it directly (as `tests/glob_redis.rs`
//! does), and stops it when done. The commands are exactly those the
//! bindings send over REST ([`Command::args`]); the RESP replies are turned
//! into the [`Reply`] values the REST codec gives.

#![cfg(not(target_arch = "wasm32"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use edgecache::{
    Arg, Command, Gap, Layout, Lease, LeaseConfig, Log, Op, Reply, StreamId, LOG_MAXLEN,
};

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

struct Redis {
    server: RedisServer,
    conn: BufReader<TcpStream>,
}

impl Redis {
    fn start() -> Redis {
        let (server, conn) = RedisServer::start();
        Redis {
            server,
            conn: BufReader::new(conn),
        }
    }

    /// Stops the server and starts an empty one on the same port.
    fn restart(&mut self) {
        self.conn = BufReader::new(self.server.restart());
    }

    /// Sends the commands as one pipeline; their replies, in order.
    fn pipeline(&mut self, commands: &[Command]) -> Vec<Result<Reply, String>> {
        let mut req = Vec::new();
        for c in commands {
            let args: Vec<Vec<u8>> = c
                .args()
                .iter()
                .map(|a| match a {
                    Arg::Str(s) => s.as_bytes().to_vec(),
                    Arg::Int(n) => n.to_string().into_bytes(),
                })
                .collect();
            req.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                req.extend_from_slice(&a);
                req.extend_from_slice(b"\r\n");
            }
        }
        self.conn.get_mut().write_all(&req).unwrap();
        commands.iter().map(|_| self.read()).collect()
    }

    fn call(&mut self, args: &[&str]) -> Result<Reply, String> {
        let mut c = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            c.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.conn.get_mut().write_all(&c).unwrap();
        self.read()
    }

    fn read(&mut self) -> Result<Reply, String> {
        let mut line = Vec::new();
        self.conn.read_until(b'\n', &mut line).unwrap();
        let body = String::from_utf8_lossy(&line[1..line.len() - 2]).to_string();
        Ok(match line[0] {
            b'+' => Reply::Bytes(body.into_bytes()),
            b':' => Reply::Int(body.parse().unwrap()),
            b'-' => return Err(body),
            b'$' if body == "-1" => Reply::Nil,
            b'*' if body == "-1" => Reply::Nil,
            b'$' => {
                let n: usize = body.parse().unwrap();
                let mut buf = vec![0; n + 2];
                self.conn.read_exact(&mut buf).unwrap();
                buf.truncate(n);
                Reply::Bytes(buf)
            }
            b'*' => {
                let n: usize = body.parse().unwrap();
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.read()?);
                }
                Reply::Array(items)
            }
            other => panic!("unexpected RESP type {other}"),
        })
    }

    /// One log read of `lease` at `now`, done.
    fn read_log(&mut self, lease: &mut Lease, now: u64) -> edgecache::Outcome {
        let ticket = lease.begin_read(now);
        let replies = self.pipeline(ticket.commands());
        lease.finish_read(ticket, &replies).unwrap()
    }

    /// A mutation's pipeline: the mutation, then the log's commands.
    fn mutate(&mut self, lease: &mut Lease, mutation: &[&str], op: Op, targets: &[&str]) {
        let mut cmds = Vec::new();
        let mutation = self.call(mutation);
        assert!(mutation.is_ok(), "{mutation:?}");
        cmds.extend(lease.append(op, targets).unwrap());
        for r in self.pipeline(&cmds) {
            assert!(r.is_ok(), "{r:?}");
        }
    }

    fn xinfo(&mut self, key: &str, field: &str) -> Reply {
        let Ok(Reply::Array(kv)) = self.call(&["XINFO", "STREAM", key]) else {
            panic!("XINFO STREAM failed");
        };
        let at = kv
            .iter()
            .position(|r| r.as_str() == Some(field))
            .expect("field");
        kv[at + 1].clone()
    }
}

fn log() -> Log {
    Log::new(&Layout::new("app").unwrap())
}

fn lease(id: &str) -> Lease {
    Lease::new(log(), id, LeaseConfig::default()).unwrap()
}

const W: &str = "writer0123456789";
const R: &str = "reader0123456789";

#[test]
fn appended_entries_are_read_back_and_decoded() {
    let mut redis = Redis::start();
    let (mut w, mut r) = (lease(W), lease(R));
    // A fresh Redis: no epoch, no log.
    let out = redis.read_log(&mut r, 0);
    assert!(out.first && out.everything);
    assert_eq!(r.position(), Some(StreamId::ZERO));
    // The first write names the epoch: a reader that saw none cannot
    // tell this from a flush it missed, so it is a gap, once.
    redis.mutate(&mut w, &["SET", "app:v:r|z", "0"], Op::Set, &["app:v:r|z"]);
    assert_eq!(redis.read_log(&mut r, 1).gap, Some(Gap::Epoch));
    redis.read_log(&mut w, 0);

    redis.mutate(&mut w, &["SET", "app:v:r|a", "x"], Op::Set, &["app:v:r|a"]);
    let many: Vec<String> = (0..70).map(|i| format!("app:v:t4:acme|k{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    redis.mutate(&mut w, &["UNLINK", "app:v:r|a"], Op::Delete, &many);
    redis.mutate(
        &mut w,
        &["INCRBY", "app:n:r|hits", "1"],
        Op::Incr,
        &["app:n:r|hits"],
    );
    redis.mutate(&mut w, &["PING"], Op::Pattern, &["app:[vn]:r|user:*"]);
    redis.mutate(&mut w, &["PING"], Op::Clear, &["app:[vn]:[rtub]*"]);

    let out = redis.read_log(&mut r, 10);
    assert_eq!(out.gap, None, "{out:?}");
    let mut want = vec!["app:v:r|a"];
    want.extend(&many);
    want.push("app:n:r|hits");
    assert_eq!(out.keys, want);
    assert_eq!(out.globs, ["app:[vn]:r|user:*", "app:[vn]:[rtub]*"]);
    // 5 mutations, the 70 keys in two entries
    assert_eq!(r.stats().entries, 6);
    // The epoch was set by the first write, and only once.
    assert_eq!(
        redis.call(&["GET", log().epoch_key()]).unwrap(),
        Reply::Bytes(format!("{W}.1").into_bytes())
    );
    // The writer skips its own entries.
    let own = redis.read_log(&mut w, 10);
    assert!(own.keys.is_empty() && own.globs.is_empty() && own.gap.is_none());
    assert_eq!(w.stats().own, 6, "the 6 after its first read");
    // Nothing new: an empty replay, still no gap.
    let again = redis.read_log(&mut r, 20);
    assert!(again.keys.is_empty() && again.gap.is_none() && again.renewed);
}

#[test]
fn trimming_past_a_position_is_a_gap() {
    let mut redis = Redis::start();
    let (mut w, mut r) = (lease(W), lease(R));
    redis.mutate(&mut w, &["PING"], Op::Set, &["app:v:r|first"]);
    redis.read_log(&mut r, 0);
    let pos = r.position().unwrap();
    assert_ne!(pos, StreamId::ZERO);

    // More than LOG_MAXLEN appends: MAXLEN ~ trims past the reader.
    let mut cmds = Vec::new();
    for _ in 0..(LOG_MAXLEN + 300) {
        cmds.extend(w.append(Op::Set, &["app:v:r|k"]).unwrap());
    }
    for reply in redis.pipeline(&cmds) {
        assert!(reply.is_ok(), "{reply:?}");
    }
    let Reply::Int(len) = redis.call(&["XLEN", log().stream_key()]).unwrap() else {
        panic!("XLEN");
    };
    assert!(
        len >= i64::from(LOG_MAXLEN),
        "MAXLEN ~ keeps at least LOG_MAXLEN: {len}"
    );
    // The trim passed the reader's position...
    let first: StreamId = redis
        .xinfo(log().stream_key(), "recorded-first-entry-id")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(first > pos);
    // ...and Redis 7.0's XINFO `max-deleted-entry-id` does not say so: only
    // XDEL moves it, never a trim. That is why a reader checks that its
    // position is still in the stream instead.
    assert_eq!(
        redis.xinfo(log().stream_key(), "max-deleted-entry-id"),
        Reply::Bytes(b"0-0".to_vec())
    );

    let out = redis.read_log(&mut r, 10);
    assert!(out.everything, "{out:?}");
    assert_eq!(out.gap, Some(Gap::Behind));
    // It jumped to the newest entry: the next read replays cleanly.
    redis.mutate(&mut w, &["PING"], Op::Delete, &["app:v:r|after"]);
    let out = redis.read_log(&mut r, 20);
    assert_eq!(
        (out.gap, out.keys),
        (None, vec!["app:v:r|after".to_string()])
    );

    // A trim (outside edgecache) that removes the position and keeps
    // fewer entries after it than a batch: seen as trimmed.
    redis.mutate(&mut w, &["PING"], Op::Delete, &["app:v:r|x"]);
    redis.mutate(&mut w, &["PING"], Op::Delete, &["app:v:r|y"]);
    assert!(redis
        .call(&["XTRIM", log().stream_key(), "MAXLEN", "1"])
        .is_ok());
    let out = redis.read_log(&mut r, 30);
    assert_eq!(out.gap, Some(Gap::Trimmed), "{out:?}");
    // The log deleted outright: lost.
    redis.mutate(&mut w, &["PING"], Op::Delete, &["app:v:r|z"]);
    redis.read_log(&mut r, 40);
    assert!(redis.call(&["DEL", log().stream_key()]).is_ok());
    let out = redis.read_log(&mut r, 50);
    assert_eq!(out.gap, Some(Gap::Lost), "{out:?}");
    assert_eq!(r.stats().gaps, 3);
}

#[test]
fn flushall_and_restarts_are_gaps() {
    let mut redis = Redis::start();
    let (mut w, mut r) = (lease(W), lease(R));
    redis.mutate(&mut w, &["SET", "app:v:r|a", "1"], Op::Set, &["app:v:r|a"]);
    redis.read_log(&mut r, 0);

    // FLUSHALL: the epoch is gone.
    assert!(redis.call(&["FLUSHALL"]).is_ok());
    let out = redis.read_log(&mut r, 10);
    assert_eq!(out.gap, Some(Gap::Epoch), "{out:?}");
    // Still none: a gap again, since a write and a flush may have come
    // and gone in between (L1 holds nothing of value then anyway).
    let out = redis.read_log(&mut r, 20);
    assert_eq!(out.gap, Some(Gap::Epoch));
    // The first write after the flush names a new epoch: a gap once more
    // (the reader cannot tell it from a second flush), then steady.
    redis.mutate(&mut w, &["SET", "app:v:r|a", "2"], Op::Set, &["app:v:r|a"]);
    let out = redis.read_log(&mut r, 30);
    assert_eq!(out.gap, Some(Gap::Epoch));
    let epoch = redis.call(&["GET", log().epoch_key()]).unwrap();
    redis.mutate(&mut w, &["SET", "app:v:r|b", "3"], Op::Set, &["app:v:r|b"]);
    let out = redis.read_log(&mut r, 40);
    assert_eq!((out.gap, out.keys), (None, vec!["app:v:r|b".to_string()]));

    // Restarted empty, and written to before the reader looks.
    redis.restart();
    redis.mutate(&mut w, &["SET", "app:v:r|c", "4"], Op::Set, &["app:v:r|c"]);
    let after = redis.call(&["GET", log().epoch_key()]).unwrap();
    assert_ne!(after, epoch, "a new epoch after the restart");
    let out = redis.read_log(&mut r, 50);
    assert_eq!(out.gap, Some(Gap::Epoch), "{out:?}");
    assert!(out.everything);
    assert_eq!(r.stats().epoch, 4);
}
