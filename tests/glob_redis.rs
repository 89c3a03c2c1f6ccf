//! Differential test: `Glob` against a real `redis-server`'s `KEYS`, on
//! random keys and random patterns made of the characters that matter
//! (`* ? [ ] ^ - \`, letters, and a two-byte UTF-8 character).
//!
//! The test starts its own redis-server on a free loopback port (installed
//! by `make setup`) and stops it when done.

#![cfg(not(target_arch = "wasm32"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use edgecache::Glob;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

struct Redis {
    _server: RedisServer,
    conn: BufReader<TcpStream>,
}

impl Redis {
    fn start() -> Redis {
        let (server, stream) = RedisServer::start();
        Redis {
            _server: server,
            conn: BufReader::new(stream),
        }
    }

    fn call(&mut self, args: &[&[u8]]) -> Reply {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        self.conn.get_mut().write_all(&req).unwrap();
        self.read()
    }

    fn read(&mut self) -> Reply {
        let mut line = Vec::new();
        self.conn.read_until(b'\n', &mut line).unwrap();
        let body = String::from_utf8_lossy(&line[1..line.len() - 2]).to_string();
        match line[0] {
            b'+' | b':' => Reply::Simple(body),
            b'-' => panic!("redis error: {body}"),
            b'$' => {
                let n: usize = body.parse().unwrap();
                let mut buf = vec![0; n + 2];
                self.conn.read_exact(&mut buf).unwrap();
                buf.truncate(n);
                Reply::Bulk(buf)
            }
            b'*' => {
                let n: usize = body.parse().unwrap();
                Reply::Array((0..n).map(|_| self.read()).collect())
            }
            other => panic!("unexpected RESP type {other}"),
        }
    }
}

#[derive(Debug)]
enum Reply {
    Simple(String),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
}

const ALPHABET: &[char] = &['a', 'b', 'c', '*', '?', '[', ']', '^', '-', '\\', 'é'];

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(ALPHABET), 0..=max)
        .prop_map(|cs| cs.into_iter().collect())
}

#[test]
fn glob_matches_redis_keys_command() {
    let redis = std::cell::RefCell::new(Redis::start());
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        ..Config::default()
    });
    let case = (
        proptest::collection::btree_set(text(5), 1..25),
        proptest::collection::vec(text(6), 1..8),
    );
    runner
        .run(&case, |(keys, patterns)| {
            let mut redis = redis.borrow_mut();
            redis.call(&[b"FLUSHALL"]);
            for k in &keys {
                redis.call(&[b"SET", k.as_bytes(), b"1"]);
            }
            for p in &patterns {
                let Reply::Array(found) = redis.call(&[b"KEYS", p.as_bytes()]) else {
                    panic!("KEYS did not answer an array");
                };
                let mut want: Vec<Vec<u8>> = found
                    .into_iter()
                    .map(|r| match r {
                        Reply::Bulk(b) => b,
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect();
                want.sort();
                let glob = Glob::new(p);
                let mut got: Vec<Vec<u8>> = keys
                    .iter()
                    .filter(|k| glob.matches(k))
                    .map(|k| k.as_bytes().to_vec())
                    .collect();
                got.sort();
                prop_assert_eq!(got, want, "pattern {:?}", p);
            }
            Ok(())
        })
        .unwrap();
    // the server really answered (a test that cannot fail is no test)
    assert!(matches!(redis.borrow_mut().call(&[b"PING"]), Reply::Simple(s) if s == "PONG"));
}
