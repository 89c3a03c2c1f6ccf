//! Which commands a token may run.
//!
//! Three lists decide it:
//! - **never**: commands that change the state of the connection they run
//!   on (`SELECT`, `MULTI`, `WATCH`, `SUBSCRIBE`, `AUTH`...). The bridge
//!   multiplexes many clients over few connections, so one client's
//!   `SELECT` would move every other client to another database. No flag
//!   allows them; transactions go through `/multi-exec`.
//! - **denied by default**: administration (`FLUSHALL`, `CONFIG`,
//!   `SHUTDOWN`, `DEBUG`...) and blocking commands (`BLPOP`...), which would
//!   hold a shared connection. `--deny` adds to this list, `--allow` takes
//!   out of it. An entry is a command (`CONFIG`) or a command and its
//!   subcommand (`SCRIPT|KILL`), as Redis ACLs write them.
//! - **reads**: the only commands a `--read-only-token` may run, and the
//!   ones that do not advance the sync token.

use std::collections::HashSet;

/// Commands that change the state of their connection: never run.
const NEVER: &[&str] = &[
    "AUTH",
    "HELLO",
    "SELECT",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "RESET",
    "QUIT",
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
    "CLIENT|REPLY",
    "CLIENT|TRACKING",
    "CLIENT|CACHING",
    "CLIENT|SETNAME",
    "CLIENT|NO-EVICT",
    "CLIENT|NO-TOUCH",
    "READONLY",
    "READWRITE",
    "ASKING",
];

/// Denied unless `--allow`ed: administration, and the blocking commands
/// (`BLOCKING`, below).
pub const DEFAULT_DENY: &[&str] = &[
    "FLUSHALL",
    "FLUSHDB",
    "CONFIG",
    "SHUTDOWN",
    "DEBUG",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
    "REPLICAOF",
    "SLAVEOF",
    "FAILOVER",
    "CLUSTER",
    "MODULE",
    "ACL",
    "SWAPDB",
    "MIGRATE",
    "RESTORE-ASKING",
    "LATENCY",
    "SLOWLOG",
    "CLIENT",
    "SCRIPT|KILL",
    "SCRIPT|FLUSH",
    "FUNCTION|KILL",
    "FUNCTION|FLUSH",
    "FUNCTION|RESTORE",
];

/// Commands that may block their connection (sent as blocking to fred).
const BLOCKING: &[&str] = &[
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
    "XREAD",
    "XREADGROUP",
];

/// Commands that read and never write: what a read-only token may run.
const READS: &[&str] = &[
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
    "KEYS",
    "RANDOMKEY",
    "DBSIZE",
    "PING",
    "ECHO",
    "TIME",
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
    "PFCOUNT",
    "GEODIST",
    "GEOHASH",
    "GEOPOS",
    "GEORADIUS_RO",
    "GEORADIUSBYMEMBER_RO",
    "GEOSEARCH",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL_RO",
    "OBJECT",
    "MEMORY",
    "TOUCH",
    "DUMP",
    "SORT_RO",
    "JSON.GET",
    "JSON.MGET",
    "JSON.TYPE",
    "JSON.STRLEN",
    "JSON.OBJKEYS",
    "JSON.OBJLEN",
    "JSON.ARRLEN",
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

/// Why a command was refused.
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
                "ERR '{c}' cannot run through the bridge: it would change a connection other clients share (use /multi-exec for transactions)"
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

/// The command policy: the deny list after `--deny` and `--allow`.
#[derive(Debug, Clone)]
pub struct Policy {
    deny: HashSet<String>,
}

fn norm(entry: &str) -> String {
    entry.trim().to_ascii_uppercase()
}

impl Policy {
    /// The default deny list, plus `deny`, minus `allow` (entries as
    /// `CMD` or `CMD|SUB`, any case). Entries of the never-list cannot be
    /// allowed: an error names them.
    pub fn new(deny: &[String], allow: &[String]) -> Result<Policy, String> {
        let mut set: HashSet<String> = DEFAULT_DENY
            .iter()
            .chain(BLOCKING)
            .map(|s| s.to_string())
            .collect();
        set.extend(deny.iter().map(|d| norm(d)).filter(|d| !d.is_empty()));
        for a in allow.iter().map(|a| norm(a)).filter(|a| !a.is_empty()) {
            if NEVER.contains(&a.as_str()) {
                return Err(format!("--allow {a}: this command changes a shared connection and can never be allowed"));
            }
            set.remove(&a);
        }
        Ok(Policy { deny: set })
    }

    /// Whether `role` may run the command named `name` (upper case) whose
    /// first argument is `sub`.
    pub fn check(&self, role: Role, name: &str, sub: Option<&[u8]>) -> Result<(), Refusal> {
        let full =
            sub.map(|s| format!("{name}|{}", String::from_utf8_lossy(s).to_ascii_uppercase()));
        let listed = |list: &dyn Fn(&str) -> bool| list(name) || full.as_deref().is_some_and(list);
        if listed(&|c| NEVER.contains(&c)) {
            return Err(Refusal::Never(
                full.filter(|f| NEVER.contains(&f.as_str()))
                    .unwrap_or_else(|| name.into()),
            ));
        }
        if listed(&|c| self.deny.contains(c)) {
            return Err(Refusal::Denied(
                full.filter(|f| self.deny.contains(f))
                    .unwrap_or_else(|| name.into()),
            ));
        }
        if role == Role::ReadOnly && !is_read(name) {
            return Err(Refusal::ReadOnly(name.into()));
        }
        Ok(())
    }
}

/// Whether a command only reads.
pub fn is_read(name: &str) -> bool {
    READS.contains(&name)
}

/// Whether a command may block its connection.
pub fn is_blocking(name: &str) -> bool {
    BLOCKING.contains(&name)
}

/// Whether a command's first argument is not a key.
pub fn is_keyless(name: &str) -> bool {
    KEYLESS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_denies_admin_and_blocking_commands() {
        let p = Policy::new(&[], &[]).unwrap();
        for c in [
            "FLUSHALL", "FLUSHDB", "CONFIG", "SHUTDOWN", "DEBUG", "BLPOP", "BZPOPMIN", "CLIENT",
        ] {
            assert!(
                matches!(p.check(Role::Full, c, None), Err(Refusal::Denied(_))),
                "{c}"
            );
        }
        assert!(matches!(
            p.check(Role::Full, "SCRIPT", Some(b"kill")),
            Err(Refusal::Denied(_))
        ));
        assert_eq!(p.check(Role::Full, "SCRIPT", Some(b"LOAD")), Ok(()));
        assert_eq!(p.check(Role::Full, "SET", Some(b"k")), Ok(()));
    }

    #[test]
    fn allow_and_deny_change_the_list_but_never_the_never_list() {
        let p = Policy::new(&["keys".into(), "object|freq".into()], &["flushdb".into()]).unwrap();
        assert_eq!(p.check(Role::Full, "FLUSHDB", None), Ok(()));
        assert!(p.check(Role::Full, "KEYS", Some(b"*")).is_err());
        assert!(p.check(Role::Full, "OBJECT", Some(b"FREQ")).is_err());
        assert_eq!(p.check(Role::Full, "OBJECT", Some(b"ENCODING")), Ok(()));
        assert!(Policy::new(&[], &["select".into()]).is_err());
        for c in ["SELECT", "MULTI", "WATCH", "SUBSCRIBE", "AUTH"] {
            assert!(
                matches!(p.check(Role::Full, c, None), Err(Refusal::Never(_))),
                "{c}"
            );
        }
        assert!(matches!(
            p.check(Role::Full, "CLIENT", Some(b"reply")),
            Err(Refusal::Never(_))
        ));
    }

    #[test]
    fn a_read_only_role_runs_reads_only() {
        let p = Policy::new(&[], &[]).unwrap();
        assert_eq!(p.check(Role::ReadOnly, "GET", Some(b"k")), Ok(()));
        assert_eq!(p.check(Role::ReadOnly, "SCAN", Some(b"0")), Ok(()));
        for c in ["SET", "DEL", "INCRBY", "EVAL", "UNLINK", "EXPIRE"] {
            assert!(
                matches!(p.check(Role::ReadOnly, c, None), Err(Refusal::ReadOnly(_))),
                "{c}"
            );
        }
    }
}
