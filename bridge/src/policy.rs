//! Which commands a token may run.
//!
//! Every command and subcommand of Redis's command table is in one of
//! these lists (`tests/command_table.rs` checks it against a live
//! redis-server, with the flags and ACL categories Redis gives each):
//! - [`NEVER`]: commands that change, hold or close the connection they
//!   run on (`SELECT`, `MULTI`, `SUBSCRIBE`, `SCRIPT DEBUG`, `CLIENT
//!   TRACKING`, `BLPOP`...). The bridge multiplexes many clients over few
//!   connections, so one client's `SELECT` would move every other client
//!   to another database, and one `BLPOP` would stall them all. No flag
//!   allows them; transactions go through `/multi-exec`.
//! - [`DEFAULT_DENY`]: administration (`FLUSHALL`, `CONFIG`, `SHUTDOWN`,
//!   `DEBUG`...) and scripting (`EVAL`, `FCALL`, `SCRIPT`, `FUNCTION`):
//!   a script runs whatever commands Redis lets scripts run, the denied
//!   ones included, so scripting on would make the deny list a wish.
//!   `--deny` adds to this list, `--allow` takes out of it. An entry is a
//!   command (`CONFIG`), a command and its subcommand (`SCRIPT|KILL`), as
//!   Redis ACLs write them, or the group `@scripting`.
//! - [`READS`]: the only commands a `--read-only-token` may run, and the
//!   ones that do not advance the sync token. Scripts are never among
//!   them, not even `EVAL_RO`: a read-only script may still `SELECT`
//!   another database.
//! - [`WRITES`]: the other commands, reviewed as safe to multiplex. This
//!   list is not consulted when a request arrives (a command on no list,
//!   such as a module's, goes to Redis, which refuses it if it does not
//!   know it); it is how the command-table test knows that every command
//!   Redis has was looked at.

use bytes::Bytes;
use std::collections::HashSet;

/// Commands that change, hold or close the connection they run on: never
/// run. (`XREAD` and `XREADGROUP` join them with a `BLOCK` argument.)
pub const NEVER: &[&str] = &[
    // The connection's own state: its user, protocol, database, name,
    // reply mode, client-side caching, eviction and LRU flags, cluster
    // read mode, and the Lua debugger (SCRIPT DEBUG turns the connection
    // into a debugger session at the next EVAL; SYNC stops the server).
    "AUTH",
    "HELLO",
    "SELECT",
    "RESET",
    "QUIT",
    "READONLY",
    "READWRITE",
    "ASKING",
    "CLIENT|REPLY",
    "CLIENT|TRACKING",
    "CLIENT|CACHING",
    "CLIENT|SETNAME",
    "CLIENT|SETINFO",
    "CLIENT|NO-EVICT",
    "CLIENT|NO-TOUCH",
    "SCRIPT|DEBUG",
    // Transactions: MULTI state, watched keys.
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    // The connection becomes a stream of messages.
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "MONITOR",
    "SYNC",
    "PSYNC",
    "REPLCONF",
    // Blocking: every other client's commands would wait behind them.
    "BLPOP",
    "BRPOP",
    "BRPOPLPUSH",
    "BLMOVE",
    "BLMPOP",
    "BZPOPMIN",
    "BZPOPMAX",
    "BZMPOP",
    "WAIT",
    "WAITAOF",
    // They take the shared connections out of service: CLIENT KILL can
    // close them (SKIPME no, or their own ID), CLIENT PAUSE stops them
    // (and every client) for as long as it says.
    "CLIENT|KILL",
    "CLIENT|PAUSE",
];

/// Commands that block with a `BLOCK` argument (before `STREAMS`).
const BLOCK_OPTION: &[&str] = &["XREAD", "XREADGROUP"];

/// What `@scripting` stands for in `--allow` and `--deny`.
pub const SCRIPTING: &[&str] = &[
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "FCALL_RO",
    "SCRIPT",
    "FUNCTION",
];

/// Denied unless `--allow`ed: administration, and scripting.
pub const DEFAULT_DENY: &[&str] = &[
    // Every database of the server, or its whole keyspace at once.
    "FLUSHALL",
    "FLUSHDB",
    "SWAPDB",
    // The server: configuration, persistence, replication, cluster,
    // modules, users, diagnostics.
    "CONFIG",
    "SHUTDOWN",
    "DEBUG",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
    "LASTSAVE",
    "REPLICAOF",
    "SLAVEOF",
    "FAILOVER",
    "ROLE",
    "CLUSTER",
    "MODULE",
    "ACL",
    "LATENCY",
    "SLOWLOG",
    "CLIENT",
    "MEMORY|PURGE",
    "PFDEBUG",
    "PFSELFTEST",
    // Keys from outside: another server, or a serialized payload Redis
    // trusts unless sanitize-dump-payload is on.
    "MIGRATE",
    "RESTORE",
    "RESTORE-ASKING",
    // Scripting (`@scripting`): a script can run the commands above.
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "FCALL_RO",
    "SCRIPT",
    "FUNCTION",
    // Still denied when `@scripting` is allowed: they act on every script
    // or function of the server, not on the caller's.
    "SCRIPT|KILL",
    "SCRIPT|FLUSH",
    "FUNCTION|KILL",
    "FUNCTION|FLUSH",
    "FUNCTION|RESTORE",
];

/// Commands that read and never write: what a read-only token may run.
pub const READS: &[&str] = &[
    "GET",
    "MGET",
    "GETRANGE",
    "SUBSTR",
    "STRLEN",
    "EXISTS",
    "TYPE",
    "TTL",
    "PTTL",
    "EXPIRETIME",
    "PEXPIRETIME",
    "SCAN",
    // Redis calls it dangerous: slow on a large database (prefer SCAN),
    // but it reads the bridge's own database only.
    "KEYS",
    "RANDOMKEY",
    "DBSIZE",
    // Not flagged read-only by Redis, and touch no data.
    "PING",
    "ECHO",
    "TIME",
    "LOLWUT",
    "LCS",
    "GETBIT",
    "BITCOUNT",
    "BITPOS",
    "BITFIELD_RO",
    "HGET",
    "HMGET",
    "HGETALL",
    "HKEYS",
    "HVALS",
    "HLEN",
    "HEXISTS",
    "HSTRLEN",
    "HSCAN",
    "HRANDFIELD",
    "LRANGE",
    "LLEN",
    "LINDEX",
    "LPOS",
    "SMEMBERS",
    "SISMEMBER",
    "SMISMEMBER",
    "SCARD",
    "SSCAN",
    "SRANDMEMBER",
    "SINTER",
    "SINTERCARD",
    "SUNION",
    "SDIFF",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZRANGEBYLEX",
    "ZREVRANGE",
    "ZREVRANGEBYSCORE",
    "ZREVRANGEBYLEX",
    "ZSCORE",
    "ZMSCORE",
    "ZCARD",
    "ZCOUNT",
    "ZLEXCOUNT",
    "ZRANK",
    "ZREVRANK",
    "ZSCAN",
    "ZRANDMEMBER",
    "ZINTER",
    "ZUNION",
    "ZDIFF",
    "ZINTERCARD",
    "XRANGE",
    "XREVRANGE",
    "XLEN",
    "XINFO",
    "XPENDING",
    // Without BLOCK (with it: never).
    "XREAD",
    "PFCOUNT",
    "GEODIST",
    "GEOHASH",
    "GEOPOS",
    "GEORADIUS_RO",
    "GEORADIUSBYMEMBER_RO",
    "GEOSEARCH",
    "OBJECT",
    "MEMORY|USAGE",
    "MEMORY|HELP",
    "TOUCH",
    "DUMP",
    // Redis calls it dangerous: BY and GET read other keys, of the same
    // database.
    "SORT_RO",
    "JSON.GET",
    "JSON.MGET",
    "JSON.TYPE",
    "JSON.STRLEN",
    "JSON.OBJKEYS",
    "JSON.OBJLEN",
    "JSON.ARRLEN",
];

/// The other commands Redis has, reviewed: they write (or read the
/// server's state, like `INFO`) without touching the connection. Not
/// consulted at run time (see the module's documentation).
pub const WRITES: &[&str] = &[
    "APPEND",
    "BITFIELD",
    "BITOP",
    "COPY",
    "DECR",
    "DECRBY",
    "DEL",
    "EXPIRE",
    "EXPIREAT",
    "GEOADD",
    "GEORADIUS",
    "GEORADIUSBYMEMBER",
    "GEOSEARCHSTORE",
    "GETDEL",
    "GETEX",
    "GETSET",
    "HDEL",
    "HINCRBY",
    "HINCRBYFLOAT",
    "HMSET",
    "HSET",
    "HSETNX",
    "INCR",
    "INCRBY",
    "INCRBYFLOAT",
    "LINSERT",
    "LMOVE",
    "LMPOP",
    "LPOP",
    "LPUSH",
    "LPUSHX",
    "LREM",
    "LSET",
    "LTRIM",
    "MOVE",
    "MSET",
    "MSETNX",
    "PERSIST",
    "PEXPIRE",
    "PEXPIREAT",
    "PFADD",
    "PFMERGE",
    "PSETEX",
    "RENAME",
    "RENAMENX",
    "RPOP",
    "RPOPLPUSH",
    "RPUSH",
    "RPUSHX",
    "SADD",
    "SDIFFSTORE",
    "SET",
    "SETBIT",
    "SETEX",
    "SETNX",
    "SETRANGE",
    "SINTERSTORE",
    "SMOVE",
    // Redis calls it dangerous: BY and GET read other keys, of the same
    // database.
    "SORT",
    "SPOP",
    "SREM",
    "SUNIONSTORE",
    "UNLINK",
    "XACK",
    "XADD",
    "XAUTOCLAIM",
    "XCLAIM",
    "XDEL",
    "XGROUP",
    // Without BLOCK (with it: never).
    "XREADGROUP",
    "XSETID",
    "XTRIM",
    "ZADD",
    "ZDIFFSTORE",
    "ZINCRBY",
    "ZINTERSTORE",
    "ZMPOP",
    "ZPOPMAX",
    "ZPOPMIN",
    "ZRANGESTORE",
    "ZREM",
    "ZREMRANGEBYLEX",
    "ZREMRANGEBYRANK",
    "ZREMRANGEBYSCORE",
    "ZUNIONSTORE",
    "PUBLISH",
    "SPUBLISH",
    "PUBSUB",
    // Server information; Redis calls INFO dangerous for what it tells.
    "INFO",
    "COMMAND",
    "MEMORY|DOCTOR",
    "MEMORY|STATS",
    "MEMORY|MALLOC-STATS",
];

/// Commands with subcommands: the lists may name `CMD|SUB` for these.
pub const CONTAINERS: &[&str] = &[
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "FUNCTION", "LATENCY", "MEMORY", "MODULE",
    "OBJECT", "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
];

/// Commands whose first argument is not a key (routed anywhere in a cluster).
const KEYLESS: &[&str] = &[
    "PING",
    "ECHO",
    "TIME",
    "DBSIZE",
    "SCAN",
    "KEYS",
    "RANDOMKEY",
    "INFO",
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "FCALL_RO",
    "SCRIPT",
    "FUNCTION",
    "PUBLISH",
    "SPUBLISH",
    "COMMAND",
    "LOLWUT",
];

/// Why a command was refused. Every refusal's text begins with `NOPERM`,
/// as Redis's own ACL refusals do: in a pipeline's answer, a client tells a
/// refused command from one Redis ran and failed by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Never over a shared connection (403).
    Never(String),
    /// On the deny list (403).
    Denied(String),
    /// A write with the read-only token (403).
    ReadOnly(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Never(c) => write!(
                f,
                "NOPERM '{c}' cannot run through the bridge: it would change, hold or close a connection other clients share (use /multi-exec for transactions)"
            ),
            Refusal::Denied(c) => write!(f, "NOPERM '{c}' is on the bridge's deny list (see --allow)"),
            Refusal::ReadOnly(c) => write!(f, "NOPERM this token is read-only and cannot run '{c}'"),
        }
    }
}

/// The role a token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Every command the policy allows.
    Full,
    /// Reads only.
    ReadOnly,
}

/// How the default lists classify a command (for the command-table test
/// and the documentation; [`Policy::check`] decides requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// On [`NEVER`].
    Never,
    /// On [`DEFAULT_DENY`].
    Denied,
    /// On [`READS`].
    Read,
    /// On [`WRITES`].
    Write,
}

/// The command policy: the deny list after `--deny` and `--allow`.
#[derive(Debug, Clone)]
pub struct Policy {
    never: HashSet<&'static str>,
    deny: HashSet<String>,
    reads: HashSet<&'static str>,
}

fn norm(entry: &str) -> String {
    entry.trim().to_ascii_uppercase()
}

/// `@scripting` stands for its commands; anything else for itself.
fn expand(entry: &str) -> Vec<String> {
    if entry == "@SCRIPTING" {
        SCRIPTING.iter().map(|s| s.to_string()).collect()
    } else {
        vec![entry.to_string()]
    }
}

/// The name of a command and, for a command with subcommands, the
/// `CMD|SUB` entry, both in upper case.
fn names(cmd: &[Bytes]) -> (String, Option<String>) {
    let name = String::from_utf8_lossy(&cmd[0]).to_ascii_uppercase();
    let sub = match cmd.get(1) {
        Some(s) if CONTAINERS.contains(&name.as_str()) => Some(format!(
            "{name}|{}",
            String::from_utf8_lossy(s).to_ascii_uppercase()
        )),
        _ => None,
    };
    (name, sub)
}

/// `XREAD`/`XREADGROUP` with a `BLOCK` option, their arguments read as
/// Redis reads them (`xreadCommand`): options up to `STREAMS`, `COUNT`
/// followed by its value, `GROUP` by a group and a consumer, each only
/// when that many arguments follow. A group, consumer or count named
/// `STREAMS` or `BLOCK` is a value, not an option. (An argument Redis does
/// not know makes it refuse the command before anything blocks.)
fn blocks(name: &str, cmd: &[Bytes]) -> bool {
    if !BLOCK_OPTION.contains(&name) {
        return false;
    }
    let mut i = 1;
    while i < cmd.len() {
        let more = cmd.len() - i - 1;
        let is = |option: &[u8]| cmd[i].eq_ignore_ascii_case(option);
        if is(b"BLOCK") && more >= 1 {
            return true;
        } else if is(b"STREAMS") && more >= 1 {
            return false;
        } else if is(b"COUNT") && more >= 1 {
            i += 2;
        } else if is(b"GROUP") && more >= 2 {
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

impl Policy {
    /// The default deny list, plus `deny`, minus `allow` (entries as
    /// `CMD`, `CMD|SUB` or `@scripting`, any case). Entries of the
    /// never-list cannot be allowed: an error names them.
    pub fn new(deny: &[String], allow: &[String]) -> Result<Policy, String> {
        let mut set: HashSet<String> = DEFAULT_DENY.iter().map(|s| s.to_string()).collect();
        set.extend(
            deny.iter()
                .map(|d| norm(d))
                .filter(|d| !d.is_empty())
                .flat_map(|d| expand(&d)),
        );
        for a in allow
            .iter()
            .map(|a| norm(a))
            .filter(|a| !a.is_empty())
            .flat_map(|a| expand(&a))
        {
            if NEVER.contains(&a.as_str()) {
                return Err(format!(
                    "--allow {a}: this command changes, holds or closes a shared connection and can never be allowed"
                ));
            }
            set.remove(&a);
        }
        Ok(Policy {
            never: NEVER.iter().copied().collect(),
            deny: set,
            reads: READS.iter().copied().collect(),
        })
    }

    /// Whether `role` may run `cmd` (its name first); `Ok(true)` for a
    /// read, `Ok(false)` for a command that may write.
    pub fn check(&self, role: Role, cmd: &[Bytes]) -> Result<bool, Refusal> {
        let (name, sub) = names(cmd);
        let on = |set: &dyn Fn(&str) -> bool| -> Option<String> {
            match &sub {
                Some(s) if set(s) => Some(s.clone()),
                _ => set(&name).then(|| name.clone()),
            }
        };
        if let Some(c) = on(&|c| self.never.contains(c)) {
            return Err(Refusal::Never(c));
        }
        if blocks(&name, cmd) {
            return Err(Refusal::Never(format!("{name} BLOCK")));
        }
        if let Some(c) = on(&|c| self.deny.contains(c)) {
            return Err(Refusal::Denied(c));
        }
        let read = on(&|c| self.reads.contains(c)).is_some();
        if role == Role::ReadOnly && !read {
            return Err(Refusal::ReadOnly(sub.unwrap_or(name)));
        }
        Ok(read)
    }
}

/// How the default lists classify a command, `name` and `sub` in upper
/// case (`sub` only for a command in [`CONTAINERS`]): the subcommand's
/// entry first, then the command's; `None` for a command on no list.
pub fn classify(name: &str, sub: Option<&str>) -> Option<Class> {
    let full = sub.map(|s| format!("{name}|{s}"));
    let lists = [
        (NEVER, Class::Never),
        (DEFAULT_DENY, Class::Denied),
        (READS, Class::Read),
        (WRITES, Class::Write),
    ];
    let find = |entry: &str| {
        lists
            .iter()
            .find(|(list, _)| list.contains(&entry))
            .map(|&(_, class)| class)
    };
    full.as_deref().and_then(find).or_else(|| find(name))
}

/// Whether a command's first argument is not a key.
pub fn is_keyless(name: &str) -> bool {
    KEYLESS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<Bytes> {
        args.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn check(p: &Policy, role: Role, args: &[&str]) -> Result<bool, Refusal> {
        p.check(role, &cmd(args))
    }

    #[test]
    fn the_default_denies_administration_and_scripting() {
        let p = Policy::new(&[], &[]).unwrap();
        for c in [
            "FLUSHALL", "FLUSHDB", "SWAPDB", "CONFIG", "SHUTDOWN", "DEBUG", "CLIENT", "EVAL",
            "EVALSHA", "EVAL_RO", "FCALL", "FCALL_RO", "RESTORE",
        ] {
            assert!(
                matches!(check(&p, Role::Full, &[c, "x"]), Err(Refusal::Denied(_))),
                "{c}"
            );
        }
        for sub in ["LOAD", "EXISTS", "KILL", "flush"] {
            assert!(matches!(
                check(&p, Role::Full, &["script", sub]),
                Err(Refusal::Denied(_))
            ));
        }
        assert!(matches!(
            check(&p, Role::Full, &["FUNCTION", "LOAD", "x"]),
            Err(Refusal::Denied(_))
        ));
        assert_eq!(check(&p, Role::Full, &["SET", "k", "v"]), Ok(false));
        assert_eq!(check(&p, Role::Full, &["GET", "k"]), Ok(true));
        // A plain command's first argument is not a subcommand.
        assert_eq!(check(&p, Role::Full, &["SET", "flush", "v"]), Ok(false));
    }

    #[test]
    fn allow_and_deny_change_the_list_but_never_the_never_list() {
        let p = Policy::new(&["keys".into(), "object|freq".into()], &["flushdb".into()]).unwrap();
        assert_eq!(check(&p, Role::Full, &["FLUSHDB"]), Ok(false));
        assert!(check(&p, Role::Full, &["KEYS", "*"]).is_err());
        assert!(check(&p, Role::Full, &["OBJECT", "FREQ", "k"]).is_err());
        assert_eq!(
            check(&p, Role::Full, &["OBJECT", "ENCODING", "k"]),
            Ok(true)
        );
        for never in ["select", "blpop", "client|kill", "script|debug", "wait"] {
            let e = Policy::new(&[], &[never.into()]).unwrap_err();
            assert!(e.contains("can never be allowed"), "{e}");
        }
        for c in [
            &["SELECT", "1"][..],
            &["MULTI"],
            &["WATCH", "k"],
            &["SUBSCRIBE", "c"],
            &["AUTH", "x"],
            &["BLPOP", "q", "0"],
            &["WAIT", "1", "0"],
            &["MONITOR"],
            &["HELLO", "3"],
            &["RESET"],
        ] {
            assert!(
                matches!(check(&p, Role::Full, c), Err(Refusal::Never(_))),
                "{c:?}"
            );
        }
        for sub in [
            "reply", "tracking", "caching", "setname", "setinfo", "no-evict", "no-touch", "kill",
            "pause",
        ] {
            assert!(matches!(
                check(&p, Role::Full, &["CLIENT", sub, "x"]),
                Err(Refusal::Never(_))
            ));
        }
    }

    #[test]
    fn scripting_is_one_group_and_script_debug_stays_never() {
        let p = Policy::new(&[], &["@scripting".into()]).unwrap();
        for c in [
            &["EVAL", "return 1", "0"][..],
            &["EVALSHA", "abc", "0"],
            &["EVAL_RO", "return 1", "0"],
            &["FCALL", "f", "0"],
            &["SCRIPT", "LOAD", "return 1"],
            &["SCRIPT", "EXISTS", "abc"],
            &["FUNCTION", "LOAD", "x"],
        ] {
            assert_eq!(check(&p, Role::Full, c), Ok(false), "{c:?}");
        }
        assert!(matches!(
            check(&p, Role::Full, &["SCRIPT", "DEBUG", "YES"]),
            Err(Refusal::Never(_))
        ));
        assert!(matches!(
            check(&p, Role::Full, &["SCRIPT", "FLUSH"]),
            Err(Refusal::Denied(_))
        ));
        // Never for the read-only token, even allowed.
        for c in ["EVAL_RO", "EVALSHA_RO", "FCALL_RO"] {
            assert!(
                matches!(
                    check(&p, Role::ReadOnly, &[c, "x", "0"]),
                    Err(Refusal::ReadOnly(_))
                ),
                "{c}"
            );
        }
        let denied = Policy::new(&["@scripting".into()], &["eval".into()]).unwrap();
        assert_eq!(
            check(&denied, Role::Full, &["EVAL", "return 1", "0"]),
            Ok(false)
        );
        assert!(check(&denied, Role::Full, &["FCALL", "f", "0"]).is_err());
    }

    #[test]
    fn stream_reads_are_never_with_block() {
        let p = Policy::new(&[], &[]).unwrap();
        assert_eq!(
            check(
                &p,
                Role::ReadOnly,
                &["XREAD", "COUNT", "2", "STREAMS", "s", "0"]
            ),
            Ok(true)
        );
        assert!(matches!(
            check(
                &p,
                Role::Full,
                &["xread", "block", "0", "STREAMS", "s", "$"]
            ),
            Err(Refusal::Never(_))
        ));
        assert!(matches!(
            check(
                &p,
                Role::Full,
                &[
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    "c",
                    "BLOCK",
                    "10",
                    "STREAMS",
                    "s",
                    ">"
                ]
            ),
            Err(Refusal::Never(_))
        ));
        // A stream named BLOCK is a key, not the option.
        assert_eq!(
            check(&p, Role::Full, &["XREAD", "STREAMS", "BLOCK", "0"]),
            Ok(true)
        );
        // Without BLOCK, a group read runs (it writes: the pending list).
        assert_eq!(
            check(
                &p,
                Role::Full,
                &[
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    "c",
                    "COUNT",
                    "1",
                    "NOACK",
                    "STREAMS",
                    "s",
                    ">"
                ]
            ),
            Ok(false)
        );
        // A group or consumer named STREAMS is a name: the BLOCK after it
        // is the option, as Redis reads it (it blocked the shared
        // connection once).
        for args in [
            &[
                "XREADGROUP",
                "GROUP",
                "STREAMS",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">",
            ][..],
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "STREAMS",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
            &[
                "XREADGROUP",
                "GROUP",
                "streams",
                "streams",
                "block",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
            &["XREAD", "COUNT", "1", "BLOCK", "0", "STREAMS", "s", "$"],
        ] {
            assert!(
                matches!(check(&p, Role::Full, args), Err(Refusal::Never(_))),
                "{args:?}"
            );
        }
        // BLOCK as a value, or last with no value, blocks nothing.
        for args in [
            &["XREADGROUP", "GROUP", "BLOCK", "c", "STREAMS", "s", ">"][..],
            &["XREADGROUP", "GROUP", "g", "BLOCK", "STREAMS", "s", ">"],
            &["XREAD", "STREAMS", "s", "BLOCK"],
        ] {
            assert!(check(&p, Role::Full, args).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn a_read_only_role_runs_reads_only() {
        let p = Policy::new(&[], &[]).unwrap();
        assert_eq!(check(&p, Role::ReadOnly, &["GET", "k"]), Ok(true));
        assert_eq!(check(&p, Role::ReadOnly, &["SCAN", "0"]), Ok(true));
        assert_eq!(
            check(&p, Role::ReadOnly, &["MEMORY", "usage", "k"]),
            Ok(true)
        );
        assert!(check(&p, Role::ReadOnly, &["MEMORY", "STATS"]).is_err());
        for c in ["SET", "DEL", "INCRBY", "UNLINK", "EXPIRE", "PUBLISH"] {
            assert!(
                matches!(
                    check(&p, Role::ReadOnly, &[c, "k"]),
                    Err(Refusal::ReadOnly(_))
                ),
                "{c}"
            );
        }
    }

    #[test]
    fn every_list_entry_is_classified_once_and_names_a_container_subcommand() {
        let mut seen = HashSet::new();
        for list in [NEVER, DEFAULT_DENY, READS, WRITES] {
            for e in list {
                if let Some((c, _)) = e.split_once('|') {
                    assert!(CONTAINERS.contains(&c), "{e}: {c} is not a container");
                }
                assert_eq!(*e, e.to_ascii_uppercase());
            }
        }
        for list in [NEVER, READS, WRITES] {
            for e in list {
                assert!(seen.insert(*e), "{e} is on two lists");
            }
        }
        for e in DEFAULT_DENY {
            assert!(!NEVER.contains(e), "{e} is never and denied");
        }
        // `@scripting` names what DEFAULT_DENY denies as scripting: the two
        // lists must not drift apart.
        let denied_scripts: Vec<&str> = DEFAULT_DENY
            .iter()
            .copied()
            .filter(|e| !e.contains('|') && SCRIPTING.iter().any(|s| s == e))
            .collect();
        assert_eq!(
            denied_scripts, SCRIPTING,
            "SCRIPTING and DEFAULT_DENY's scripting part differ"
        );
        assert_eq!(classify("SCRIPT", Some("DEBUG")), Some(Class::Never));
        assert_eq!(classify("SCRIPT", Some("LOAD")), Some(Class::Denied));
        assert_eq!(classify("MEMORY", Some("USAGE")), Some(Class::Read));
        assert_eq!(classify("MEMORY", Some("NOPE")), None);
        assert_eq!(classify("GET", None), Some(Class::Read));
    }
}
