//! The bridge's command lists against Redis's own command table: a live
//! redis-server's `COMMAND INFO` (every command and subcommand, with its
//! flags and ACL categories). Every command is on a list, and what the
//! flags say about a command agrees with its list: what changes, holds or
//! closes a connection is on the never-list, administration and scripting
//! are denied by default, reads are reads.
//!
//! The test starts its own redis-server on a free loopback port (installed
//! by `make setup`) and stops it when done. A Redis with commands this
//! table has not seen (a newer version) fails it until they are listed.

use bytes::{Bytes, BytesMut};
use edgecache_bridge::direct::take_replies;
use edgecache_bridge::policy::{
    classify, Class, Policy, Refusal, Role, CONTAINERS, DEFAULT_DENY, NEVER, READS, WRITES,
};
use fred::types::Resp3Frame;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;

/// Commands the flags cannot tell apart, reviewed one by one.
///
/// On the never-list although no flag says so: they turn the connection
/// into something else than a command connection.
const NEVER_BY_REVIEW: &[(&str, &str)] = &[
    (
        "SCRIPT|DEBUG",
        "the next EVAL turns the connection into a Lua debugger session (SYNC: the server stops)",
    ),
    (
        "MONITOR",
        "the connection becomes a stream of every command",
    ),
    ("SYNC", "the connection becomes a replication stream"),
    ("PSYNC", "the connection becomes a replication stream"),
    ("REPLCONF", "configures the connection as a replica's"),
];

/// In the @connection category, yet leave the connection as it is: they
/// answer something (the connection's ID, name, description, the command
/// table), or act on another connection. Allowed, or denied by default
/// with CLIENT. (A container stands for all its subcommands.)
const CONNECTION_UNCHANGED: &[&str] = &[
    "PING",
    "ECHO",
    "COMMAND",
    "CLIENT|ID",
    "CLIENT|INFO",
    "CLIENT|LIST",
    "CLIENT|GETNAME",
    "CLIENT|GETREDIR",
    "CLIENT|TRACKINGINFO",
    "CLIENT|HELP",
    // The bridge's connections never block, and are never paused (CLIENT
    // PAUSE is never allowed).
    "CLIENT|UNBLOCK",
    "CLIENT|UNPAUSE",
];

/// Admin, dangerous or scripting in Redis's words, and still allowed by
/// default: the reason is next to each in `policy.rs`.
const DANGEROUS_ALLOWED: &[&str] = &["KEYS", "SORT", "SORT_RO", "INFO"];

/// Reads that Redis does not flag read-only: they touch no data.
const READ_WITHOUT_FLAG: &[&str] = &[
    "PING",
    "ECHO",
    "TIME",
    "OBJECT|HELP",
    "XINFO|HELP",
    "MEMORY|HELP",
];

/// List entries the live server may not know: newer Redis versions, and
/// modules.
const NEWER_OR_MODULES: &[&str] = &[
    "CLIENT|SETINFO",
    "CLIENT|NO-TOUCH",
    "WAITAOF",
    "JSON.GET",
    "JSON.MGET",
    "JSON.TYPE",
    "JSON.STRLEN",
    "JSON.OBJKEYS",
    "JSON.OBJLEN",
    "JSON.ARRLEN",
];

/// Blocking only with their BLOCK argument.
const BLOCK_OPTION: &[&str] = &["XREAD", "XREADGROUP"];

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

struct Redis {
    _server: RedisServer,
    conn: TcpStream,
}

impl Redis {
    fn start() -> Redis {
        let (server, conn) = RedisServer::start();
        Redis {
            _server: server,
            conn,
        }
    }

    fn call(&mut self, args: &[&str]) -> Resp3Frame {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.conn.write_all(&req).unwrap();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut chunk = [0u8; 64 << 10];
        loop {
            take_replies(&mut buf, &mut out).unwrap();
            if let Some(f) = out.pop() {
                return f;
            }
            let n = self.conn.read(&mut chunk).unwrap();
            assert!(n > 0, "redis-server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn items(f: &Resp3Frame) -> &[Resp3Frame] {
    match f {
        Resp3Frame::Array { data, .. } => data,
        other => panic!("not an array: {other:?}"),
    }
}

fn text(f: &Resp3Frame) -> String {
    match f {
        Resp3Frame::BlobString { data, .. } => String::from_utf8_lossy(data).into_owned(),
        Resp3Frame::SimpleString { data, .. } => String::from_utf8_lossy(data).into_owned(),
        other => panic!("not a string: {other:?}"),
    }
}

/// One command or subcommand of the table, as the lists name it.
struct Entry {
    flags: BTreeSet<String>,
    categories: BTreeSet<String>,
}

/// `COMMAND INFO`: name, arity, flags, first key, last key, step, ACL
/// categories, tips, key specs, subcommands (each the same shape).
fn table(redis: &mut Redis) -> (BTreeMap<String, Entry>, BTreeSet<String>) {
    fn add(c: &Resp3Frame, out: &mut BTreeMap<String, Entry>, containers: &mut BTreeSet<String>) {
        let f = items(c);
        let name = text(&f[0]).to_ascii_uppercase();
        let subs = items(&f[9]);
        if subs.is_empty() {
            let set = |i: usize| items(&f[i]).iter().map(text).collect();
            out.insert(
                name,
                Entry {
                    flags: set(2),
                    categories: set(6),
                },
            );
        } else {
            containers.insert(name);
            for s in subs {
                add(s, out, containers);
            }
        }
    }
    let info = redis.call(&["COMMAND", "INFO"]);
    let (mut out, mut containers) = (BTreeMap::new(), BTreeSet::new());
    for c in items(&info) {
        add(c, &mut out, &mut containers);
    }
    (out, containers)
}

fn split(name: &str) -> (&str, Option<&str>) {
    match name.split_once('|') {
        Some((c, s)) => (c, Some(s)),
        None => (name, None),
    }
}

/// A sample invocation of an entry, for `Policy::check`.
fn invocation(name: &str) -> Vec<Bytes> {
    let (c, s) = split(name);
    let mut v = vec![Bytes::copy_from_slice(c.as_bytes())];
    v.extend(s.map(|s| Bytes::copy_from_slice(s.as_bytes())));
    v.push(Bytes::from_static(b"arg"));
    v
}

#[test]
fn every_command_of_redis_is_classified_as_its_flags_say() {
    let mut redis = Redis::start();
    let info = text(&redis.call(&["INFO", "server"]));
    let version = info
        .lines()
        .find(|l| l.starts_with("redis_version:"))
        .unwrap_or("redis_version:?")
        .to_string();
    let (entries, containers) = table(&mut redis);
    assert!(entries.len() > 300, "{} entries", entries.len());

    // Every command with subcommands is known as such, or its subcommands
    // would not be looked up.
    let known: BTreeSet<String> = CONTAINERS.iter().map(|c| c.to_string()).collect();
    assert_eq!(containers, known, "commands with subcommands ({version})");

    // The most permissive policy: every default denial taken back.
    let allow: Vec<String> = DEFAULT_DENY.iter().map(|s| s.to_string()).collect();
    let open = Policy::new(&[], &allow).unwrap();

    let mut wrong = Vec::new();
    for (name, e) in &entries {
        let (c, s) = split(name);
        let Some(class) = classify(c, s) else {
            wrong.push(format!("{name}: on no list"));
            continue;
        };
        let flag = |f: &str| e.flags.contains(f);
        let cat = |f: &str| e.categories.contains(f);
        let option = BLOCK_OPTION.contains(&name.as_str());
        let unchanged =
            CONNECTION_UNCHANGED.contains(&name.as_str()) || CONNECTION_UNCHANGED.contains(&c);

        // What must never run on a shared connection, by the table.
        let never_because = if flag("blocking") && !option {
            Some("it blocks")
        } else if cat("@transaction") {
            Some("a transaction's state")
        } else if cat("@pubsub") && name.ends_with("SUBSCRIBE") {
            Some("a subscription")
        } else if cat("@connection") && !unchanged {
            Some("it changes the connection (@connection)")
        } else {
            NEVER_BY_REVIEW
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, why)| *why)
        };
        match (never_because, class) {
            (Some(why), c) if c != Class::Never => {
                wrong.push(format!("{name}: {c:?}, but never ({why})"))
            }
            (None, Class::Never) => {
                wrong.push(format!("{name}: never, and nothing in the table says why"))
            }
            _ => {}
        }
        if class == Class::Never {
            let r = open.check(Role::Full, &invocation(name));
            if !matches!(r, Err(Refusal::Never(_))) {
                wrong.push(format!("{name}: runs with every denial allowed: {r:?}"));
            }
        }
        if option {
            let mut blocking = invocation(name);
            blocking.extend(
                ["BLOCK", "0", "STREAMS", "s", "$"].map(|a| Bytes::from_static(a.as_bytes())),
            );
            if !matches!(open.check(Role::Full, &blocking), Err(Refusal::Never(_))) {
                wrong.push(format!("{name} BLOCK: not never"));
            }
        }

        // Administration, danger and scripting are denied by default.
        let risky = flag("admin")
            || flag("noscript")
            || cat("@admin")
            || cat("@dangerous")
            || cat("@scripting");
        if risky
            && matches!(class, Class::Read | Class::Write)
            && !DANGEROUS_ALLOWED.contains(&name.as_str())
            && !unchanged
        {
            wrong.push(format!(
                "{name}: {class:?}, but {:?} {:?}: deny it by default",
                e.flags, e.categories
            ));
        }
        if cat("@scripting") && class != Class::Denied && class != Class::Never {
            wrong.push(format!("{name}: scripting, and not denied"));
        }

        // Reads are what Redis flags read-only; what Redis flags
        // read-only and the bridge allows is a read.
        if class == Class::Read
            && (flag("write") || !flag("readonly"))
            && !READ_WITHOUT_FLAG.contains(&name.as_str())
        {
            wrong.push(format!("{name}: a read, but flagged {:?}", e.flags));
        }
        if class == Class::Write && flag("readonly") {
            wrong.push(format!("{name}: flagged readonly: put it on READS"));
        }
    }

    // No entry names a command Redis does not have (a typo would deny or
    // allow nothing).
    for list in [NEVER, DEFAULT_DENY, READS, WRITES] {
        for e in list {
            let known =
                entries.contains_key(*e) || containers.contains(*e) || NEWER_OR_MODULES.contains(e);
            if !known {
                wrong.push(format!("{e}: on a list, unknown to Redis ({version})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} disagreements with the command table of the live redis-server:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
