//! `/multi-exec` on the bridge's multiplexed connections, against a real
//! redis-server: a transaction is one request (`MULTI`, its commands,
//! `EXEC`), so concurrent transactions and plain commands sharing one
//! connection never come between each other's commands, and a command
//! Redis refuses to queue discards the whole transaction.

use bytes::Bytes;
use edgecache_bridge::backend::{Backend, TxOutcome};
use edgecache_bridge::direct::Limits;
use fred::types::Resp3Frame;
use std::sync::Arc;
use std::time::Duration;

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

fn cmd(args: &[&str]) -> Vec<Bytes> {
    args.iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(5),
        max_queue: 100_000,
        max_queue_bytes: 64 << 20,
    }
}

fn text(f: &Resp3Frame) -> String {
    match f {
        Resp3Frame::BlobString { data, .. } => String::from_utf8_lossy(data).into_owned(),
        Resp3Frame::SimpleString { data, .. } => String::from_utf8_lossy(data).into_owned(),
        Resp3Frame::Number { data, .. } => data.to_string(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transactions_on_one_connection_never_interleave() {
    let (server, _conn) = RedisServer::start();
    // One multiplexed connection: every request below shares it.
    let url = format!("redis://127.0.0.1:{}", server.port);
    let backend = Arc::new(Backend::connect(&url, 1, limits(), None).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..300 {
        let b = backend.clone();
        tasks.push(tokio::spawn(async move {
            if i % 3 == 0 {
                // Plain pushes, sent while the transactions are in flight.
                let x = format!("plain-{i}");
                let r = b.pipeline(&[cmd(&["RPUSH", "log", &x])]).await.unwrap();
                assert!(matches!(r[0], Resp3Frame::Number { .. }));
                return;
            }
            let (a, z) = (format!("{i}-a"), format!("{i}-b"));
            let tx = [
                cmd(&["RPUSH", "log", &a]),
                cmd(&["RPUSH", "log", &z]),
                cmd(&["LRANGE", "log", "-2", "-1"]),
            ];
            match b.transaction(&tx).await.unwrap() {
                TxOutcome::Executed(r) => {
                    assert_eq!(r.len(), 3);
                    let Resp3Frame::Array { data, .. } = &r[2] else {
                        panic!("{r:?}")
                    };
                    // Nothing came between the two pushes.
                    assert_eq!(
                        data.iter().map(text).collect::<Vec<_>>(),
                        [a, z],
                        "another request ran inside transaction {i}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = backend.pipeline(&[cmd(&["LLEN", "log"])]).await.unwrap();
    assert_eq!(text(&r[0]), "500");
    backend.quit().await;
}

#[tokio::test]
async fn a_command_that_fails_to_queue_discards_the_transaction() {
    let (server, _conn) = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let backend = Backend::connect(&url, 1, limits(), None).await.unwrap();
    let tx = [
        cmd(&["SET", "k", "v"]),
        cmd(&["INCR"]),
        cmd(&["SET", "k2", "v"]),
    ];
    match backend.transaction(&tx).await.unwrap() {
        TxOutcome::Discarded(e) => {
            assert!(
                e.starts_with("EXECABORT Transaction discarded because of an error in INCR: ERR wrong number of arguments"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    let r = backend
        .pipeline(&[cmd(&["EXISTS", "k", "k2"])])
        .await
        .unwrap();
    assert_eq!(text(&r[0]), "0", "nothing ran");
    // A command that fails when EXEC runs it fails alone, as in Redis.
    let tx = [
        cmd(&["SET", "s", "x"]),
        cmd(&["INCR", "s"]),
        cmd(&["GET", "s"]),
    ];
    match backend.transaction(&tx).await.unwrap() {
        TxOutcome::Executed(r) => {
            assert_eq!(text(&r[0]), "OK");
            assert!(matches!(r[1], Resp3Frame::SimpleError { .. }), "{r:?}");
            assert_eq!(text(&r[2]), "x");
        }
        other => panic!("{other:?}"),
    }
    backend.quit().await;
}
