//! Redis Cluster on the bridge's own multiplexed connections: a slot table
//! (16384 hash slots, each to its master) from `CLUSTER SLOTS`, one or a
//! few [`Conn`]s per master, and every command routed by its key's slot.
//!
//! - Plain commands go to their first key's slot owner; a pipeline is cut
//!   into one request per node (each node's commands in the caller's
//!   order, in one write), run in parallel, and put back in order.
//! - `MGET`, `DEL`, `UNLINK`, `EXISTS`, `TOUCH` and `MSET` whose keys are
//!   in several slots are split by slot and reassembled: the caller gets
//!   what one server answers. A part that fails fails the whole command
//!   (for a write: outcome unknown, since other parts may have run).
//!   Other multi-key commands (`MSETNX`, `SINTER`, `RENAME`...) go to
//!   their first key's owner, which answers `CROSSSLOT` as Redis does.
//! - `KEYS`, `DBSIZE`, `RANDOMKEY`, `SCAN` (and the script and flush
//!   commands, when allowed) run on every master; SCAN's cursor says
//!   which master it is on ([`ScanCursor`]).
//! - `MOVED` and `ASK` are followed (Redis did not run the command, so
//!   resending it never runs it twice); `MOVED` updates the table and
//!   asks for a refresh. `TRYAGAIN` (a multi-key command during a slot's
//!   migration) is resent after a moment.
//! - The table is refreshed on `MOVED`, when a master's connection is
//!   lost (every 200 ms while one is down or a slot has no master), and
//!   every 5 s. A dead master fails its own slots only, at once and unsent
//!   (its connection is down), until its replica is promoted and the
//!   table names the new master.

use crate::backend::{exec_on, TxOutcome};
use crate::direct::{self, Conn, Limits, Target, Unavailable};
use crate::policy;
use crate::protocol::{self, Command};
use bytes::{Bytes, BytesMut};
use fred::types::Resp3Frame;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// Hash slots in a Redis Cluster.
pub const SLOTS: usize = 16384;
/// A slot with no master.
const NONE: u16 = u16::MAX;
/// Redirects (`MOVED`, `ASK`, `TRYAGAIN`) followed per command.
const MAX_REDIRECTS: usize = 5;
/// How long a part no master could take waits for the topology, in
/// steps: 10 x 25 ms (see `run_parts`).
const HOLD_ROUNDS: usize = 10;
const HOLD_STEP: Duration = Duration::from_millis(25);

/// The slot of a key (CRC16, or of its `{hash tag}`).
pub fn slot(key: &[u8]) -> u16 {
    redis_protocol::redis_keyslot(key)
}

// ---------------------------------------------------------------------
// Where a command's keys are.
// ---------------------------------------------------------------------

/// Where a command's keys are, by its name (as Redis's key specs say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// No key.
    None,
    /// The first argument.
    First,
    /// The first two arguments (`RENAME src dst`, `LMOVE src dst ...`).
    Pair,
    /// From argument `first` on, every `step`, but the last `trailing`.
    Range {
        first: usize,
        step: usize,
        trailing: usize,
    },
    /// A key count at `at`, the keys after it; `dest`: and a key at 1
    /// (`ZINTERSTORE dest numkeys k...`).
    NumKeys { at: usize, dest: bool },
    /// After `STREAMS`: the first half of the rest (`XREAD`).
    Streams,
    /// A subcommand, then the key (`XINFO STREAM k`, `OBJECT ENCODING k`).
    Sub,
    /// The first argument, and the one after `STORE`/`STOREDIST` (`SORT`,
    /// `GEORADIUS`).
    Store,
}

/// A command's name in upper case, on the stack (`None` if longer than
/// any name in [`spec`]).
fn upper(name: &[u8]) -> Option<([u8; 24], usize)> {
    let mut buf = [0u8; 24];
    if name.len() > buf.len() {
        return None;
    }
    for (b, c) in buf.iter_mut().zip(name) {
        *b = c.to_ascii_uppercase();
    }
    Some((buf, name.len()))
}

fn spec(cmd: &[Bytes]) -> Spec {
    let Some((buf, n)) = upper(&cmd[0]) else {
        return Spec::First;
    };
    let sub_is = |s: &[u8]| cmd.get(1).is_some_and(|a| a.eq_ignore_ascii_case(s));
    match &buf[..n] {
        b"PING" | b"ECHO" | b"TIME" | b"DBSIZE" | b"SCAN" | b"KEYS" | b"RANDOMKEY" | b"INFO"
        | b"SCRIPT" | b"FUNCTION" | b"PUBLISH" | b"PUBSUB" | b"COMMAND" | b"LOLWUT"
        | b"FLUSHALL" | b"FLUSHDB" | b"SWAPDB" | b"CONFIG" | b"SHUTDOWN" | b"DEBUG" | b"SAVE"
        | b"BGSAVE" | b"BGREWRITEAOF" | b"LASTSAVE" | b"REPLICAOF" | b"SLAVEOF" | b"FAILOVER"
        | b"ROLE" | b"CLUSTER" | b"MODULE" | b"ACL" | b"LATENCY" | b"SLOWLOG" | b"CLIENT"
        | b"PFSELFTEST" | b"READONLY" | b"READWRITE" | b"ASKING" | b"AUTH" | b"HELLO"
        | b"SELECT" | b"RESET" | b"QUIT" | b"MULTI" | b"EXEC" | b"DISCARD" | b"UNWATCH"
        | b"WAIT" | b"WAITAOF" | b"MONITOR" | b"SYNC" | b"PSYNC" | b"MIGRATE" => Spec::None,
        b"MEMORY" => {
            if sub_is(b"USAGE") {
                Spec::Sub
            } else {
                Spec::None
            }
        }
        b"OBJECT" | b"XINFO" | b"XGROUP" => {
            if sub_is(b"HELP") {
                Spec::None
            } else {
                Spec::Sub
            }
        }
        b"MGET" | b"DEL" | b"UNLINK" | b"EXISTS" | b"TOUCH" | b"WATCH" | b"SINTER" | b"SUNION"
        | b"SDIFF" | b"SINTERSTORE" | b"SUNIONSTORE" | b"SDIFFSTORE" | b"PFCOUNT" | b"PFMERGE" => {
            Spec::Range {
                first: 1,
                step: 1,
                trailing: 0,
            }
        }
        b"MSET" | b"MSETNX" => Spec::Range {
            first: 1,
            step: 2,
            trailing: 0,
        },
        b"BITOP" => Spec::Range {
            first: 2,
            step: 1,
            trailing: 0,
        },
        b"JSON.MGET" => Spec::Range {
            first: 1,
            step: 1,
            trailing: 1,
        },
        b"RENAME" | b"RENAMENX" | b"SMOVE" | b"RPOPLPUSH" | b"LMOVE" | b"BLMOVE"
        | b"BRPOPLPUSH" | b"COPY" | b"LCS" | b"GEOSEARCHSTORE" | b"ZRANGESTORE" => Spec::Pair,
        b"ZINTER" | b"ZUNION" | b"ZDIFF" | b"ZINTERCARD" | b"SINTERCARD" | b"LMPOP" | b"ZMPOP" => {
            Spec::NumKeys { at: 1, dest: false }
        }
        b"ZINTERSTORE" | b"ZUNIONSTORE" | b"ZDIFFSTORE" => Spec::NumKeys { at: 2, dest: true },
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            Spec::NumKeys { at: 2, dest: false }
        }
        b"XREAD" | b"XREADGROUP" => Spec::Streams,
        b"SORT" | b"SORT_RO" | b"GEORADIUS" | b"GEORADIUSBYMEMBER" => Spec::Store,
        _ => Spec::First,
    }
}

/// The positions of a command's keys in `cmd` (the name at 0), as Redis
/// finds them; a malformed command gets the keys it plainly has (Redis
/// refuses it anyway).
pub fn key_positions(cmd: &[Bytes]) -> Vec<usize> {
    let n = cmd.len();
    match spec(cmd) {
        Spec::None => Vec::new(),
        Spec::First => (n > 1).then_some(1).into_iter().collect(),
        Spec::Pair => (1..n.min(3)).collect(),
        Spec::Sub => (n > 2).then_some(2).into_iter().collect(),
        Spec::Range {
            first,
            step,
            trailing,
        } => (first..n.saturating_sub(trailing)).step_by(step).collect(),
        Spec::NumKeys { at, dest } => {
            let mut v: Vec<usize> = if dest && n > 1 { vec![1] } else { Vec::new() };
            let count = cmd
                .get(at)
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(0);
            v.extend((at + 1..n).take(count));
            v
        }
        Spec::Streams => {
            let mut i = 1;
            while i < n {
                let is = |o: &[u8]| cmd[i].eq_ignore_ascii_case(o);
                if is(b"STREAMS") {
                    let rest = n - i - 1;
                    return (i + 1..i + 1 + rest / 2).collect();
                } else if is(b"COUNT") || is(b"BLOCK") {
                    i += 2;
                } else if is(b"GROUP") {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Vec::new()
        }
        Spec::Store => {
            let mut v: Vec<usize> = (n > 1).then_some(1).into_iter().collect();
            let mut i = 2;
            while i + 1 < n {
                if cmd[i].eq_ignore_ascii_case(b"STORE")
                    || cmd[i].eq_ignore_ascii_case(b"STOREDIST")
                {
                    v.push(i + 1);
                    i += 2;
                } else {
                    i += 1;
                }
            }
            v
        }
    }
}

/// The first key's position, without allocating for the common commands.
fn first_key(cmd: &[Bytes]) -> Option<usize> {
    match spec(cmd) {
        Spec::First | Spec::Pair | Spec::Store => (cmd.len() > 1).then_some(1),
        Spec::None => None,
        _ => key_positions(cmd).first().copied(),
    }
}

/// How a command runs on a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// On its slot's owner.
    Slot(u16),
    /// On any master.
    Any,
    /// Split by slot: keys every `step` arguments from 1 (`MSET`: 2).
    Split(Split),
    /// On every master, the replies combined.
    All(Combine),
    /// On one master after another ([`ScanCursor`]).
    Scan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    /// `MGET`: the values in the keys' order.
    Mget,
    /// `DEL`, `UNLINK`, `EXISTS`, `TOUCH`: the sum of the counts; `write`:
    /// whether a failed part leaves the outcome unknown.
    Sum { write: bool },
    /// `MSET`: OK when every part is.
    Mset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combine {
    /// `KEYS`: every master's keys.
    Concat,
    /// `DBSIZE`: the sum.
    Sum,
    /// `RANDOMKEY`: a key from a master that has one, picked at random.
    Random,
    /// `SCRIPT EXISTS`: 1 where every master has it.
    And,
    /// `FLUSHALL`, `SCRIPT LOAD`, `FUNCTION LOAD`...: the first master's
    /// reply, or the first error.
    Same,
}

fn kind(cmd: &[Bytes]) -> Kind {
    let Some((buf, n)) = upper(&cmd[0]) else {
        return first_key(cmd).map_or(Kind::Any, |i| Kind::Slot(slot(&cmd[i])));
    };
    let sub = |s: &[u8]| cmd.get(1).is_some_and(|a| a.eq_ignore_ascii_case(s));
    let split = match &buf[..n] {
        b"MGET" => Some((Split::Mget, 1)),
        b"DEL" | b"UNLINK" => Some((Split::Sum { write: true }, 1)),
        b"EXISTS" | b"TOUCH" => Some((Split::Sum { write: false }, 1)),
        b"MSET" => Some((Split::Mset, 2)),
        b"SCAN" => return Kind::Scan,
        b"KEYS" => return Kind::All(Combine::Concat),
        b"DBSIZE" => return Kind::All(Combine::Sum),
        b"RANDOMKEY" => return Kind::All(Combine::Random),
        b"FLUSHALL" | b"FLUSHDB" => return Kind::All(Combine::Same),
        b"SCRIPT" if sub(b"EXISTS") => return Kind::All(Combine::And),
        b"SCRIPT" if sub(b"LOAD") || sub(b"FLUSH") => return Kind::All(Combine::Same),
        b"FUNCTION" if sub(b"LOAD") || sub(b"DELETE") || sub(b"FLUSH") || sub(b"RESTORE") => {
            return Kind::All(Combine::Same)
        }
        _ => None,
    };
    if let Some((how, step)) = split {
        if (cmd.len() - 1) % step != 0 {
            // `MSET a 1 b`: Redis refuses it whole; split, one part would run.
            return first_key(cmd).map_or(Kind::Any, |i| Kind::Slot(slot(&cmd[i])));
        }
        let mut slots = (1..cmd.len()).step_by(step).map(|i| slot(&cmd[i]));
        return match slots.next() {
            None => Kind::Any,
            Some(first) if slots.all(|s| s == first) => Kind::Slot(first),
            Some(_) => Kind::Split(how),
        };
    }
    first_key(cmd).map_or(Kind::Any, |i| Kind::Slot(slot(&cmd[i])))
}

// ---------------------------------------------------------------------
// SCAN's cursor.
// ---------------------------------------------------------------------

/// SCAN's cursor on a cluster, as the decimal number clients pass back:
/// the master's own cursor, a hash of the topology the scan runs on, and
/// which master (in the order of their first slot) it is on:
/// `node_cursor << 30 | topology_hash (20 bits) << 10 | master (10 bits)`.
///
/// A scan goes through the masters one after another, each with its own
/// SCAN (and a `CLUSTER SLOTS` in the same request, so a change the
/// bridge's table has not seen yet is caught too). When the topology
/// changes (a failover, a reshard), the cursor's hash no longer matches
/// and the scan starts again from the first master: it may then return again every key it already returned, but
/// it skips no key that existed from its start to its end. `0` starts,
/// and ends, as on one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanCursor {
    pub node_cursor: u64,
    pub hash: u32,
    pub master: usize,
}

const HASH_BITS: u32 = 20;
const MASTER_BITS: u32 = 10;
/// The largest node cursor the encoding holds (Redis's cursors stay below
/// its table size, 2^34 buckets here).
const MAX_NODE_CURSOR: u64 = (1 << (64 - HASH_BITS - MASTER_BITS)) - 1;

impl ScanCursor {
    pub fn encode(&self) -> Option<u64> {
        (self.node_cursor <= MAX_NODE_CURSOR && self.master < (1 << MASTER_BITS)).then(|| {
            self.node_cursor << (HASH_BITS + MASTER_BITS)
                | u64::from(self.hash & ((1 << HASH_BITS) - 1)) << MASTER_BITS
                | self.master as u64
        })
    }

    pub fn decode(c: u64) -> ScanCursor {
        ScanCursor {
            node_cursor: c >> (HASH_BITS + MASTER_BITS),
            hash: ((c >> MASTER_BITS) & ((1 << HASH_BITS) - 1)) as u32,
            master: (c & ((1 << MASTER_BITS) - 1)) as usize,
        }
    }
}

/// Where a scan goes on with `cursor` (as the client sent it), on a
/// topology of `masters` masters with hash `hash`: the master and its own
/// cursor. A cursor from another topology (or none the bridge made)
/// starts again from the first master.
pub fn scan_resume(cursor: &[u8], hash: u32, masters: usize) -> (usize, u64) {
    let c = std::str::from_utf8(cursor)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .unwrap_or(0);
    let d = ScanCursor::decode(c);
    if c == 0 || d.hash != hash & ((1 << HASH_BITS) - 1) || d.master >= masters {
        (0, 0)
    } else {
        (d.master, d.node_cursor)
    }
}

/// The cursor to give the client after `master` answered `next`: the
/// same master while it has more, else the next one from its start, else
/// `0` (done). `None` if the node's cursor does not fit.
pub fn scan_next(master: usize, next: u64, hash: u32, masters: usize) -> Option<u64> {
    if next != 0 {
        return ScanCursor {
            node_cursor: next,
            hash,
            master,
        }
        .encode();
    }
    if master + 1 >= masters {
        return Some(0);
    }
    ScanCursor {
        node_cursor: 0,
        hash,
        master: master + 1,
    }
    .encode()
}

// ---------------------------------------------------------------------
// The topology.
// ---------------------------------------------------------------------

/// A master and its connections.
pub struct Node {
    pub host: String,
    pub port: u16,
    conns: Vec<Conn>,
    next: AtomicUsize,
}

impl Node {
    fn start(base: &Target, host: &str, port: u16, n: usize, limits: Limits) -> Arc<Node> {
        let t = base.at(host, port);
        Arc::new(Node {
            host: host.to_string(),
            port,
            conns: (0..n.max(1))
                .map(|_| Conn::start(t.clone(), limits))
                .collect(),
            next: AtomicUsize::new(0),
        })
    }

    fn is_up(&self) -> bool {
        self.conns.iter().any(Conn::is_up)
    }

    fn conn(&self) -> Result<&Conn, Unavailable> {
        if self.conns.len() == 1 {
            return Ok(&self.conns[0]);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        (0..n)
            .map(|k| &self.conns[(start + k) % n])
            .find(|c| c.is_up())
            .ok_or_else(|| self.down())
    }

    fn down(&self) -> Unavailable {
        Unavailable::unsent(format!(
            "no connection to the cluster node {}:{} (reconnecting)",
            self.host, self.port
        ))
    }

    async fn ready(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while !self.is_up() {
            if Instant::now() > until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    fn addr(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for c in &self.conns {
            c.close();
        }
    }
}

/// One view of the cluster: who owns each slot.
pub struct Topology {
    /// Per slot, its master's index in `masters` (or [`NONE`]).
    owner: Vec<u16>,
    /// In the order of their first slot.
    masters: Vec<Arc<Node>>,
    /// Replicas' addresses, to ask for the topology when masters are down.
    replicas: Vec<(String, u16)>,
    /// [`topology_hash`] of the slot ranges and their masters.
    hash: u32,
}

impl Topology {
    fn empty() -> Topology {
        Topology {
            owner: vec![NONE; SLOTS],
            masters: Vec::new(),
            replicas: Vec::new(),
            hash: 0,
        }
    }

    fn owner(&self, slot: u16) -> Option<&Arc<Node>> {
        match self.owner[usize::from(slot)] {
            NONE => None,
            i => self.masters.get(usize::from(i)),
        }
    }

    /// Slot ranges and their master's index, in slot order.
    fn ranges(&self) -> Vec<(u16, u16, u16)> {
        let mut out: Vec<(u16, u16, u16)> = Vec::new();
        for (s, &o) in self.owner.iter().enumerate() {
            match out.last_mut() {
                Some((_, end, m)) if *m == o && usize::from(*end) + 1 == s => *end = s as u16,
                _ => out.push((s as u16, s as u16, o)),
            }
        }
        out
    }
}

/// A slot range of `CLUSTER SLOTS`: first and last slot, the master's
/// address, the replicas' addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub master: (String, u16),
    pub replicas: Vec<(String, u16)>,
}

/// FNV-1a over the slot ranges and their masters' addresses, 20 bits: the
/// same on every bridge that sees the same topology (SCAN's cursors pass
/// from one bridge to another).
pub fn topology_hash(ranges: &[SlotRange]) -> u32 {
    let mut sorted: Vec<&SlotRange> = ranges.iter().collect();
    sorted.sort_by_key(|r| r.start);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for r in sorted {
        eat(&r.start.to_be_bytes());
        eat(&r.end.to_be_bytes());
        eat(r.master.0.as_bytes());
        eat(&r.master.1.to_be_bytes());
    }
    // Never 0: a restarting cursor (0, hash, master 0) must not read as "0".
    (((h ^ (h >> 32)) & ((1 << HASH_BITS) - 1)) as u32).max(1)
}

/// Reads `CLUSTER SLOTS`' reply; an empty host means the node asked
/// (`asked`).
pub fn parse_slots(reply: &Resp3Frame, asked: &str) -> Result<Vec<SlotRange>, String> {
    let Resp3Frame::Array { data, .. } = reply else {
        return Err(format!(
            "CLUSTER SLOTS answered {}",
            protocol::error_text(reply).unwrap_or_else(|| format!("{reply:?}"))
        ));
    };
    let num = |f: &Resp3Frame| match f {
        Resp3Frame::Number { data, .. } => Some(*data),
        _ => None,
    };
    let node = |f: &Resp3Frame| -> Option<(String, u16)> {
        let Resp3Frame::Array { data, .. } = f else {
            return None;
        };
        let host = match data.first()? {
            Resp3Frame::BlobString { data, .. } => String::from_utf8_lossy(data).into_owned(),
            _ => return None,
        };
        let port = u16::try_from(num(data.get(1)?)?).ok()?;
        let host = if host.is_empty() || host == "?" {
            asked.to_string()
        } else {
            host
        };
        Some((host, port))
    };
    let mut out = Vec::new();
    for r in data {
        let bad = || format!("CLUSTER SLOTS: a malformed range {r:?}");
        let Resp3Frame::Array { data: r, .. } = r else {
            return Err(bad());
        };
        let start = r.first().and_then(num).and_then(|n| u16::try_from(n).ok());
        let end = r.get(1).and_then(num).and_then(|n| u16::try_from(n).ok());
        let (Some(start), Some(end), Some(master)) = (start, end, r.get(2).and_then(node)) else {
            return Err(bad());
        };
        if start > end || usize::from(end) >= SLOTS {
            return Err(bad());
        }
        out.push(SlotRange {
            start,
            end,
            master,
            replicas: r[3..].iter().filter_map(node).collect(),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------
// The cluster.
// ---------------------------------------------------------------------

struct Inner {
    base: Target,
    limits: Limits,
    per_node: usize,
    seeds: Vec<(String, u16)>,
    topo: RwLock<Arc<Topology>>,
    /// Nodes a redirect named that the table does not (yet).
    extra: Mutex<HashMap<(String, u16), Arc<Node>>>,
    wake: Notify,
    rr: AtomicUsize,
}

/// A Redis Cluster behind the bridge.
pub struct Cluster {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

/// Which slot ranges have no reachable master, for `/healthz`.
pub struct Health {
    /// Masters that answered PING.
    pub up: usize,
    /// Slot ranges whose master did not answer, or that have none.
    pub down: Vec<(u16, u16)>,
}

/// One command's part: what to send, where.
struct Part {
    cmd: Command,
    dest: Dest,
    asking: bool,
    reply: Option<Result<Resp3Frame, Unavailable>>,
}

/// Whether a command may write: anything the policy's default lists do
/// not call a read (a command allowed by `--allow` included).
fn may_write(cmd: &Command) -> bool {
    let name = protocol::command_name(cmd);
    let sub = match policy::CONTAINERS.contains(&name.as_str()) {
        true => cmd
            .get(1)
            .map(|s| String::from_utf8_lossy(s).to_ascii_uppercase()),
        false => None,
    };
    policy::classify(&name, sub.as_deref()) != Some(policy::Class::Read)
}

/// The order a request's parts are sent in: consecutive runs (stages),
/// one after the other; the parts of one stage go out together, each
/// master's in order in one write.
///
/// On one server a pipeline runs in order. On a cluster its commands for
/// different masters would run in any order, and the tier relies on the
/// order: a mutation's pipeline is `[SET|DEL value, SET epoch NX, XADD
/// log, PUBLISH]`, the value and the log on different masters. Were the
/// XADD to run first, another cache could read the entry, drop its copy,
/// read the old value again and keep it. So a part starts a new stage
/// when an earlier part of the stage that may write goes to another
/// master: nothing is sent before every earlier write to another master
/// was answered (or failed: the later parts are still sent, since a log
/// entry too many costs a re-read while one too few serves stale data;
/// the request then fails as a whole). Reads alone, and writes to one
/// master, stay in one stage: one round trip.
fn stages(parts: &[Part], topo: &Topology) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    // The masters (None: a slot nobody serves yet) written to in this stage.
    let mut written: Vec<Option<*const Node>> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let node = match &p.dest {
            Dest::Slot(s) => Some(topo.owner(*s).map(Arc::as_ptr)),
            Dest::Node(n) => Some(Some(Arc::as_ptr(n))),
            // Keyless (PING, ECHO, TIME): reads that run anywhere.
            Dest::Any => None,
        };
        if let Some(node) = node {
            if written.iter().any(|w| *w != node) {
                out.push(start..i);
                start = i;
                written.clear();
            }
            if may_write(&p.cmd) && !written.contains(&node) {
                written.push(node);
            }
        }
    }
    out.push(start..parts.len());
    out
}

#[derive(Clone)]
enum Dest {
    Slot(u16),
    Node(Arc<Node>),
    Any,
}

/// How a caller's command is put back together from its parts.
enum Plan {
    One(usize),
    Split {
        how: Split,
        parts: Vec<usize>,
        /// For MGET: each part's keys' places in the caller's command.
        places: Vec<Vec<usize>>,
        keys: usize,
    },
    All {
        how: Combine,
        parts: Vec<usize>,
    },
    Scan {
        part: usize,
        /// `CLUSTER SLOTS` from the same node, in the same request.
        slots: usize,
        master: usize,
        hash: u32,
        masters: usize,
        /// The node's topology is not the cursor's: start again.
        restart: Option<u32>,
    },
    /// Answered without Redis.
    Local(Resp3Frame),
}

fn error_frame(msg: &str) -> Resp3Frame {
    Resp3Frame::SimpleError {
        data: msg.into(),
        attributes: None,
    }
}

fn number(n: i64) -> Resp3Frame {
    Resp3Frame::Number {
        data: n,
        attributes: None,
    }
}

fn array(data: Vec<Resp3Frame>) -> Resp3Frame {
    Resp3Frame::Array {
        data,
        attributes: None,
    }
}

fn blob(b: impl Into<Bytes>) -> Resp3Frame {
    Resp3Frame::BlobString {
        data: b.into(),
        attributes: None,
    }
}

/// A redirect in an error reply.
enum Redirect {
    Moved(u16, (String, u16)),
    Ask((String, u16)),
    TryAgain,
}

fn redirect(f: &Resp3Frame) -> Option<Redirect> {
    let text: &[u8] = match f {
        Resp3Frame::SimpleError { data, .. } => data.as_bytes(),
        Resp3Frame::BlobError { data, .. } => data,
        _ => return None,
    };
    if text.starts_with(b"TRYAGAIN") {
        return Some(Redirect::TryAgain);
    }
    let moved = text.starts_with(b"MOVED ");
    if !moved && !text.starts_with(b"ASK ") {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    let mut words = text.split(' ').skip(1);
    let slot: u16 = words.next()?.parse().ok()?;
    let addr = words.next()?;
    let (host, port) = addr.rsplit_once(':')?;
    let addr = (host.to_string(), port.parse().ok()?);
    Some(if moved {
        Redirect::Moved(slot, addr)
    } else {
        Redirect::Ask(addr)
    })
}

fn word(w: &'static str) -> Command {
    vec![Bytes::from_static(w.as_bytes())]
}

/// Runs one command on a node outside the cluster's connections (a seed
/// or a replica, for `CLUSTER SLOTS`).
async fn query_once(t: &Target, cmd: &[&[u8]]) -> Result<Resp3Frame, String> {
    let work = async {
        let mut s = direct::connect(t).await?;
        let mut buf = BytesMut::new();
        direct::encode(&mut buf, cmd.iter().copied());
        s.write_all(&buf).await.map_err(|e| e.to_string())?;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        loop {
            direct::take_replies(&mut buf, &mut out)?;
            if let Some(f) = out.pop() {
                return Ok(f);
            }
            if s.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                return Err("closed".to_string());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(1), work)
        .await
        .map_err(|_| "timed out".to_string())?
}

impl Cluster {
    /// Reads the topology from the seeds (waiting up to 2 s for it and for
    /// the masters' connections; without it, requests fail unsent until
    /// the background refresh gets it) and keeps it up to date.
    pub async fn connect(
        base: Target,
        seeds: Vec<(String, u16)>,
        per_node: usize,
        limits: Limits,
    ) -> Cluster {
        let inner = Arc::new(Inner {
            base,
            limits,
            per_node: per_node.max(1),
            seeds,
            topo: RwLock::new(Arc::new(Topology::empty())),
            extra: Mutex::default(),
            wake: Notify::new(),
            rr: AtomicUsize::new(0),
        });
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            match inner.refresh().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster topology");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let t = inner.topo();
        for m in &t.masters {
            let left = until.saturating_duration_since(Instant::now());
            m.ready(left).await;
        }
        let task = tokio::spawn(keep_fresh(Arc::downgrade(&inner)));
        Cluster { inner, task }
    }

    /// Runs `cmds` (a pipeline), one reply per command in order.
    pub async fn pipeline(&self, cmds: &[Command]) -> Result<Vec<Resp3Frame>, Unavailable> {
        // The fast path: one command for one slot.
        if let [c] = cmds {
            if let Kind::Slot(s) = kind(c) {
                let node = self.inner.topo().owner(s).cloned();
                if let Some(node) = node {
                    let r = match node.conn() {
                        Ok(conn) => conn.run(cmds).await,
                        Err(e) => Err(e),
                    };
                    match r {
                        Ok(f) if redirect(&f[0]).is_none() => return down_as_unsent(f),
                        Ok(_) => {}
                        // Not sent: routed again after the topology (below).
                        Err(Unavailable::Down { sent: false, .. }) if !node.is_up() => {
                            self.inner.wake.notify_one()
                        }
                        Err(e) => {
                            self.inner.wake.notify_one();
                            return Err(e);
                        }
                    }
                }
            }
        }
        self.general(cmds).await
    }

    async fn general(&self, cmds: &[Command]) -> Result<Vec<Resp3Frame>, Unavailable> {
        let topo = self.inner.topo();
        let mut parts: Vec<Part> = Vec::new();
        let mut plans = Vec::with_capacity(cmds.len());
        let part = |parts: &mut Vec<Part>, cmd: Command, dest: Dest| {
            parts.push(Part {
                cmd,
                dest,
                asking: false,
                reply: None,
            });
            parts.len() - 1
        };
        for c in cmds {
            let plan = match kind(c) {
                Kind::Slot(s) => Plan::One(part(&mut parts, c.clone(), Dest::Slot(s))),
                Kind::Any => Plan::One(part(&mut parts, c.clone(), Dest::Any)),
                Kind::Split(how) => {
                    let step = if how == Split::Mset { 2 } else { 1 };
                    let mut by_slot: Vec<(u16, Vec<usize>)> = Vec::new();
                    for i in (1..c.len()).step_by(step) {
                        let s = slot(&c[i]);
                        match by_slot.iter_mut().find(|(x, _)| *x == s) {
                            Some((_, v)) => v.push(i),
                            None => by_slot.push((s, vec![i])),
                        }
                    }
                    let mut ids = Vec::new();
                    let mut places = Vec::new();
                    for (s, at) in by_slot {
                        let mut sub = vec![c[0].clone()];
                        for &i in &at {
                            sub.extend(c[i..(i + step).min(c.len())].iter().cloned());
                        }
                        ids.push(part(&mut parts, sub, Dest::Slot(s)));
                        places.push(at.iter().map(|i| (i - 1) / step).collect());
                    }
                    Plan::Split {
                        how,
                        parts: ids,
                        places,
                        keys: (c.len() - 1) / step,
                    }
                }
                Kind::All(how) => {
                    if topo.masters.is_empty() {
                        return Err(Unavailable::unsent(
                            "the cluster's topology is not known yet",
                        ));
                    }
                    let ids = topo
                        .masters
                        .iter()
                        .map(|m| part(&mut parts, c.clone(), Dest::Node(m.clone())))
                        .collect();
                    Plan::All { how, parts: ids }
                }
                Kind::Scan => {
                    let masters = topo.masters.len();
                    if masters == 0 {
                        return Err(Unavailable::unsent(
                            "the cluster's topology is not known yet",
                        ));
                    }
                    match c.get(1) {
                        None => Plan::Local(error_frame(
                            "ERR wrong number of arguments for 'scan' command",
                        )),
                        Some(cursor) => {
                            let (m, node_cursor) = scan_resume(cursor, topo.hash, masters);
                            let mut sub = c.clone();
                            sub[1] = Bytes::from(node_cursor.to_string());
                            let node = Dest::Node(topo.masters[m].clone());
                            let id = part(&mut parts, sub, node.clone());
                            let slots_cmd =
                                vec![Bytes::from_static(b"CLUSTER"), Bytes::from_static(b"SLOTS")];
                            let slots = part(&mut parts, slots_cmd, node);
                            Plan::Scan {
                                part: id,
                                slots,
                                master: m,
                                hash: topo.hash,
                                masters,
                                restart: None,
                            }
                        }
                    }
                }
            };
            plans.push(plan);
        }
        let stages = stages(&parts, &topo);
        drop(topo);
        for stage in stages {
            self.run_parts(&mut parts[stage]).await;
        }
        // SCAN: the node scanned says which topology it is in, in the same
        // request; if it is not the one the cursor was made in (the
        // bridge's table was stale: slots moved since), the scan starts
        // again rather than skip the keys that moved to a master already
        // scanned.
        for plan in &mut plans {
            if let Plan::Scan {
                slots,
                part,
                hash,
                restart,
                ..
            } = plan
            {
                let Some(Ok(f)) = parts[*slots].reply.take() else {
                    continue;
                };
                let Dest::Node(node) = &parts[*part].dest else {
                    continue;
                };
                if let Ok(ranges) = parse_slots(&f, &node.host) {
                    if !ranges.is_empty() && topology_hash(&ranges) != *hash {
                        let cur = self.inner.topo();
                        self.inner.install(&ranges, &cur);
                        *restart = Some(self.inner.topo().hash);
                    }
                }
            }
        }
        let sent_any = parts.iter().any(|p| {
            matches!(
                p.reply,
                Some(Ok(_))
                    | Some(Err(Unavailable::Down { sent: true, .. }))
                    | Some(Err(Unavailable::Timeout { sent: true }))
            )
        });
        let mut out = Vec::with_capacity(plans.len());
        for plan in plans {
            match assemble(plan, &mut parts) {
                Ok(f) => out.push(f),
                Err(e) => return Err(with_sent(e, sent_any)),
            }
        }
        Ok(out)
    }

    /// Sends every part that has no reply yet, grouped by node (each
    /// node's parts in order, in one request), follows redirects.
    async fn run_parts(&self, parts: &mut [Part]) {
        // Rounds that resent redirected parts (bounded by MAX_REDIRECTS),
        // and rounds that held parts no master could take (HOLD_ROUNDS).
        let (mut round, mut held) = (0, 0);
        while round <= MAX_REDIRECTS {
            // Parts that were not sent because their master has no
            // connection up or their slot no master (a failover under way):
            // they wait a moment for the topology and are routed again,
            // which is safe since Redis never saw them. A manual failover
            // costs the old master's connections for a few tens of ms;
            // a dead master's slots fail after HOLD_ROUNDS * HOLD_STEP.
            let hold_ok = held < HOLD_ROUNDS;
            let mut hold = false;
            let todo: Vec<usize> = (0..parts.len())
                .filter(|&i| parts[i].reply.is_none())
                .collect();
            if todo.is_empty() {
                return;
            }
            let topo = self.inner.topo();
            let mut groups: Vec<(Arc<Node>, Vec<usize>)> = Vec::new();
            let mut any = Vec::new();
            for i in todo {
                let node = match &parts[i].dest {
                    Dest::Slot(s) => match topo.owner(*s) {
                        Some(n) => n.clone(),
                        None => {
                            self.inner.wake.notify_one();
                            if hold_ok {
                                hold = true;
                            } else {
                                parts[i].reply = Some(Err(Unavailable::unsent(format!(
                                    "no master serves slot {s} (the cluster is failing over, or the topology is not known yet)"
                                ))));
                            }
                            continue;
                        }
                    },
                    Dest::Node(n) => n.clone(),
                    Dest::Any => {
                        any.push(i);
                        continue;
                    }
                };
                match groups.iter_mut().find(|(n, _)| Arc::ptr_eq(n, &node)) {
                    Some((_, v)) => v.push(i),
                    None => groups.push((node, vec![i])),
                }
            }
            for i in any {
                // With the others if there are any (no extra round trip).
                if let Some((_, v)) = groups.iter_mut().find(|(n, _)| n.is_up()) {
                    v.push(i);
                    continue;
                }
                match self.inner.any_master(&topo) {
                    Some(n) => groups.push((n, vec![i])),
                    None => {
                        parts[i].reply = Some(Err(Unavailable::unsent(
                            "no master of the cluster is reachable",
                        )))
                    }
                }
            }
            drop(topo);
            // Keep the caller's order within each node.
            for (_, v) in &mut groups {
                v.sort_unstable();
            }
            let runs = groups.iter().map(|(node, ids)| {
                let mut cmds = Vec::with_capacity(ids.len());
                for &i in ids {
                    if parts[i].asking {
                        cmds.push(word("ASKING"));
                    }
                    cmds.push(parts[i].cmd.clone());
                }
                async move {
                    match node.conn() {
                        Ok(c) => c.run(&cmds).await,
                        Err(e) => Err(e),
                    }
                }
            });
            let results = futures::future::join_all(runs).await;
            let mut moved: Vec<(u16, (String, u16))> = Vec::new();
            let mut again = false;
            for ((node, ids), r) in groups.iter().zip(results) {
                match r {
                    // Its connection is down (not a full queue, which fails at once).
                    Err(Unavailable::Down { sent: false, .. }) if hold_ok && !node.is_up() => {
                        self.inner.wake.notify_one();
                        hold = true;
                    }
                    Err(e) => {
                        self.inner.wake.notify_one();
                        for &i in ids {
                            parts[i].reply = Some(Err(e.clone()));
                        }
                    }
                    Ok(frames) => {
                        let mut frames = frames.into_iter();
                        for &i in ids {
                            if parts[i].asking {
                                frames.next();
                            }
                            let f = frames.next().expect("one reply per command");
                            let last = round == MAX_REDIRECTS;
                            match redirect(&f) {
                                Some(r) if !last => {
                                    parts[i].asking = false;
                                    match r {
                                        Redirect::Moved(s, addr) => {
                                            parts[i].dest = match parts[i].dest {
                                                Dest::Slot(_) => Dest::Slot(s),
                                                _ => Dest::Node(self.inner.node_at(&addr)),
                                            };
                                            moved.push((s, addr));
                                        }
                                        Redirect::Ask(addr) => {
                                            parts[i].dest = Dest::Node(self.inner.node_at(&addr));
                                            parts[i].asking = true;
                                        }
                                        Redirect::TryAgain => again = true,
                                    }
                                }
                                _ => {
                                    parts[i].reply = Some(match cluster_down(&f) {
                                        Some(e) => Err(e),
                                        None => Ok(f),
                                    })
                                }
                            }
                        }
                    }
                }
            }
            if !moved.is_empty() {
                self.inner.moved(&moved);
                self.inner.wake.notify_one();
            }
            // A node a redirect named for the first time: let it connect.
            for p in parts.iter().filter(|p| p.reply.is_none()) {
                if let Dest::Node(n) = &p.dest {
                    n.ready(Duration::from_secs(1)).await;
                }
            }
            if again {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if hold {
                held += 1;
                tokio::time::sleep(HOLD_STEP).await;
            } else {
                round += 1;
            }
        }
    }

    /// Runs `cmds` in MULTI/EXEC on the owner of their keys' one slot;
    /// keys in several slots are refused (`CROSSSLOT`) before anything is
    /// sent.
    pub async fn transaction(&self, cmds: &[Command]) -> Result<TxOutcome, Unavailable> {
        let mut the_slot = None;
        for c in cmds {
            match kind(c) {
                Kind::All(_) | Kind::Scan => {
                    return Ok(TxOutcome::Discarded(format!(
                        "ERR {} cannot run in a transaction on a Redis Cluster: it runs on every master",
                        protocol::command_name(c)
                    )))
                }
                _ => {}
            }
            for i in key_positions(c) {
                let s = slot(&c[i]);
                match the_slot {
                    Some(t) if t != s => {
                        return Ok(TxOutcome::Discarded(
                            "CROSSSLOT Keys in request don't hash to the same slot".into(),
                        ))
                    }
                    _ => the_slot = Some(s),
                }
            }
        }
        let mut dest = match the_slot {
            Some(s) => Dest::Slot(s),
            None => Dest::Any,
        };
        let mut asking = false;
        for _ in 0..=MAX_REDIRECTS {
            let topo = self.inner.topo();
            let node = match &dest {
                Dest::Slot(s) => topo.owner(*s).cloned().ok_or_else(|| {
                    self.inner.wake.notify_one();
                    Unavailable::unsent(format!("no master serves slot {s}"))
                })?,
                Dest::Node(n) => n.clone(),
                Dest::Any => self
                    .inner
                    .any_master(&topo)
                    .ok_or_else(|| Unavailable::unsent("no master of the cluster is reachable"))?,
            };
            drop(topo);
            let replies = match node.conn() {
                Ok(c) => exec_on(c, cmds, asking).await,
                Err(e) => Err(e),
            };
            let replies = replies.inspect_err(|_| self.inner.wake.notify_one())?;
            // A redirect when queuing: EXEC discarded everything.
            let r = replies.refused_frame().and_then(redirect);
            match r {
                Some(Redirect::Moved(s, addr)) => {
                    self.inner.moved(&[(s, addr)]);
                    self.inner.wake.notify_one();
                    asking = false;
                }
                Some(Redirect::Ask(addr)) => {
                    let n = self.inner.node_at(&addr);
                    n.ready(Duration::from_secs(1)).await;
                    dest = Dest::Node(n);
                    asking = true;
                }
                Some(Redirect::TryAgain) => tokio::time::sleep(Duration::from_millis(20)).await,
                None => return replies.outcome(cmds),
            }
        }
        Err(Unavailable::unsent(
            "the transaction's slot kept moving (too many MOVED/ASK)",
        ))
    }

    /// PINGs every master: which slot ranges have none that answers.
    pub async fn health(&self) -> Health {
        let topo = self.inner.topo();
        let ping = [word("PING")];
        let answers = futures::future::join_all(topo.masters.iter().map(|m| {
            let ping = &ping;
            async move {
                match m.conn() {
                    Ok(c) => matches!(c.run(ping).await, Ok(f) if matches!(f.as_slice(), [Resp3Frame::SimpleString { .. }])),
                    Err(_) => false,
                }
            }
        }))
        .await;
        let down = topo
            .ranges()
            .into_iter()
            .filter(|&(_, _, m)| m == NONE || !answers[usize::from(m)])
            .map(|(a, b, _)| (a, b))
            .collect();
        Health {
            up: answers.iter().filter(|&&a| a).count(),
            down,
        }
    }

    /// Whether some master has a connection up: a failure then concerns
    /// only some slots (see `Backend::partly_up`).
    pub fn some_master_up(&self) -> bool {
        self.inner.topo().masters.iter().any(|m| m.is_up())
    }

    /// Requests and bytes queued, connections up, connections.
    pub fn queue_gauges(&self) -> (usize, usize, usize, usize) {
        let topo = self.inner.topo();
        topo.masters
            .iter()
            .flat_map(|m| m.conns.iter())
            .fold((0, 0, 0, 0), |(j, b, up, n), c| {
                let (cj, cb) = c.queued();
                (j + cj, b + cb, up + usize::from(c.is_up()), n + 1)
            })
    }

    /// Closes every connection.
    pub fn close(&self) {
        self.task.abort();
        let topo = self.inner.topo();
        for m in &topo.masters {
            for c in &m.conns {
                c.close();
            }
        }
        for m in self.inner.extra.lock().expect("never poisoned").values() {
            for c in &m.conns {
                c.close();
            }
        }
    }
}

/// `CLUSTERDOWN` (the cluster state is fail: a master died and its
/// replica is not promoted yet): Redis refused the command before running
/// it, so it is an outage (503, not sent), not the command's error.
fn cluster_down(f: &Resp3Frame) -> Option<Unavailable> {
    match f {
        Resp3Frame::SimpleError { data, .. } if data.starts_with("CLUSTERDOWN") => {
            Some(Unavailable::unsent(data.to_string()))
        }
        _ => None,
    }
}

/// The sum of the parts' integer replies (DEL, EXISTS, DBSIZE...).
fn sum(frames: &[Resp3Frame]) -> Resp3Frame {
    number(
        frames
            .iter()
            .map(|f| match f {
                Resp3Frame::Number { data, .. } => *data,
                _ => 0,
            })
            .sum(),
    )
}

fn down_as_unsent(f: Vec<Resp3Frame>) -> Result<Vec<Resp3Frame>, Unavailable> {
    match cluster_down(&f[0]) {
        Some(e) => Err(e),
        None => Ok(f),
    }
}

/// A failed part's error, saying "sent" when anything of the request
/// reached Redis (other parts may have run).
fn with_sent(e: Unavailable, sent_any: bool) -> Unavailable {
    match e {
        Unavailable::Timeout { sent } => Unavailable::Timeout {
            sent: sent || sent_any,
        },
        Unavailable::Down { sent, why } if !sent && sent_any => Unavailable::Down {
            sent: true,
            why: format!("{why} (other parts of the request were sent to other nodes)"),
        },
        e => e,
    }
}

fn take(parts: &mut [Part], i: usize) -> Result<Resp3Frame, Unavailable> {
    parts[i]
        .reply
        .take()
        .unwrap_or_else(|| Err(Unavailable::unsent("not sent")))
}

fn assemble(plan: Plan, parts: &mut [Part]) -> Result<Resp3Frame, Unavailable> {
    match plan {
        Plan::Local(f) => Ok(f),
        Plan::One(i) => take(parts, i),
        Plan::Scan {
            part,
            master,
            hash,
            masters,
            restart,
            ..
        } => {
            let f = take(parts, part)?;
            let Resp3Frame::Array { mut data, .. } = f else {
                return Ok(f);
            };
            if data.len() != 2 {
                return Ok(array(data));
            }
            let next = match &data[0] {
                Resp3Frame::BlobString { data, .. } => std::str::from_utf8(data)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok()),
                _ => None,
            };
            let Some(next) = next else {
                return Ok(array(data));
            };
            let c = match restart {
                // The keys of this batch are kept (they exist); the scan
                // starts again from the first master.
                Some(h) => ScanCursor {
                    node_cursor: 0,
                    hash: h,
                    master: 0,
                }
                .encode(),
                None => scan_next(master, next, hash, masters),
            };
            match c {
                Some(c) => {
                    data[0] = blob(c.to_string());
                    Ok(array(data))
                }
                None => Ok(error_frame(
                    "ERR a cluster node's SCAN cursor is too large for the bridge's cursor encoding",
                )),
            }
        }
        Plan::All { how, parts: ids } => {
            let mut frames = Vec::with_capacity(ids.len());
            let mut first_err = None;
            for &i in &ids {
                match take(parts, i) {
                    Ok(f) => frames.push(f),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            if let Some(e) = frames.iter().find(|f| protocol::error_text(f).is_some()) {
                return Ok(e.clone());
            }
            Ok(match how {
                Combine::Same => frames.swap_remove(0),
                Combine::Sum => sum(&frames),
                Combine::Concat => array(
                    frames
                        .into_iter()
                        .flat_map(|f| match f {
                            Resp3Frame::Array { data, .. } => data,
                            _ => Vec::new(),
                        })
                        .collect(),
                ),
                Combine::Random => {
                    let n = frames.len();
                    let start = (std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos()) as usize)
                        % n;
                    (0..n)
                        .map(|k| &frames[(start + k) % n])
                        .find(|f| !matches!(f, Resp3Frame::Null))
                        .cloned()
                        .unwrap_or(Resp3Frame::Null)
                }
                Combine::And => {
                    let mut acc: Option<Vec<i64>> = None;
                    for f in &frames {
                        let Resp3Frame::Array { data, .. } = f else {
                            continue;
                        };
                        let v: Vec<i64> = data
                            .iter()
                            .map(|x| match x {
                                Resp3Frame::Number { data, .. } => *data,
                                _ => 0,
                            })
                            .collect();
                        acc = Some(match acc {
                            None => v,
                            Some(a) => a.iter().zip(&v).map(|(x, y)| x & y).collect(),
                        });
                    }
                    array(acc.unwrap_or_default().into_iter().map(number).collect())
                }
            })
        }
        Plan::Split {
            how,
            parts: ids,
            places,
            keys,
        } => {
            let write = matches!(how, Split::Mset | Split::Sum { write: true });
            let results: Vec<Result<Resp3Frame, Unavailable>> =
                ids.iter().map(|&i| take(parts, i)).collect();
            let ran = results
                .iter()
                .filter(|r| matches!(r, Ok(f) if protocol::error_text(f).is_none()))
                .count();
            if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
                let others = ran > 0 || results.len() > 1;
                return Err(with_sent(e.clone(), write && others));
            }
            let frames: Vec<Resp3Frame> = results.into_iter().map(|r| r.expect("no Err")).collect();
            if let Some(e) = frames.iter().find(|f| protocol::error_text(f).is_some()) {
                if write && ran > 0 {
                    return Err(Unavailable::lost(format!(
                        "{} (from one slot's node; the parts on the other slots ran)",
                        protocol::error_text(e).unwrap_or_default()
                    )));
                }
                return Ok(e.clone());
            }
            Ok(match how {
                Split::Mset => frames.into_iter().next().unwrap_or_else(|| blob("OK")),
                Split::Sum { .. } => sum(&frames),
                Split::Mget => {
                    let mut out = vec![Resp3Frame::Null; keys];
                    for (f, at) in frames.into_iter().zip(places) {
                        let Resp3Frame::Array { data, .. } = f else {
                            return Err(Unavailable::lost(
                                "MGET answered something else than an array",
                            ));
                        };
                        for (v, i) in data.into_iter().zip(at) {
                            out[i] = v;
                        }
                    }
                    array(out)
                }
            })
        }
    }
}

impl Inner {
    fn topo(&self) -> Arc<Topology> {
        self.topo.read().expect("never poisoned").clone()
    }

    /// A master that is up, round robin.
    fn any_master(&self, topo: &Topology) -> Option<Arc<Node>> {
        let n = topo.masters.len();
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &topo.masters[(start + k) % n])
            .find(|m| m.is_up())
            .cloned()
    }

    /// The node at `addr`: a master of the table, or one a redirect named.
    fn node_at(&self, addr: &(String, u16)) -> Arc<Node> {
        let topo = self.topo();
        if let Some(m) = topo
            .masters
            .iter()
            .find(|m| m.host == addr.0 && m.port == addr.1)
        {
            return m.clone();
        }
        let mut extra = self.extra.lock().expect("never poisoned");
        extra
            .entry(addr.clone())
            .or_insert_with(|| Node::start(&self.base, &addr.0, addr.1, self.per_node, self.limits))
            .clone()
    }

    /// `MOVED`: these slots are served there now (until the next refresh
    /// says more).
    fn moved(&self, moves: &[(u16, (String, u16))]) {
        let nodes: Vec<Arc<Node>> = moves.iter().map(|(_, a)| self.node_at(a)).collect();
        let mut guard = self.topo.write().expect("never poisoned");
        let cur = guard.clone();
        let mut masters = cur.masters.clone();
        let mut owner = cur.owner.clone();
        for ((s, _), node) in moves.iter().zip(nodes) {
            let i = match masters.iter().position(|m| Arc::ptr_eq(m, &node)) {
                Some(i) => i,
                None => {
                    masters.push(node);
                    masters.len() - 1
                }
            };
            owner[usize::from(*s)] = i as u16;
        }
        *guard = Arc::new(Topology {
            owner,
            masters,
            replicas: cur.replicas.clone(),
            // SCAN cursors of the old table restart: its master order may
            // differ now.
            hash: if cur.hash == 1 { 2 } else { cur.hash ^ 1 },
        });
    }

    /// Asks a master that is up (else a replica, else a seed) for
    /// `CLUSTER SLOTS`, and installs the answer if it changed anything.
    async fn refresh(&self) -> Result<(), String> {
        let cur = self.topo();
        let slots_cmd: [&[u8]; 2] = [b"CLUSTER", b"SLOTS"];
        let mut last = "no node to ask".to_string();
        let mut answer = None;
        for m in cur.masters.iter().filter(|m| m.is_up()) {
            let Ok(c) = m.conn() else { continue };
            match c
                .run(&[vec![
                    Bytes::from_static(b"CLUSTER"),
                    Bytes::from_static(b"SLOTS"),
                ]])
                .await
            {
                Ok(mut f) => match parse_slots(&f.remove(0), &m.host) {
                    Ok(r) => {
                        answer = Some(r);
                        break;
                    }
                    Err(e) => last = e,
                },
                Err(e) => last = e.to_string(),
            }
        }
        if answer.is_none() {
            let mut others: Vec<(String, u16)> = cur.replicas.clone();
            others.extend(self.seeds.iter().cloned());
            for (h, p) in others {
                match query_once(&self.base.at(&h, p), &slots_cmd).await {
                    Ok(f) => match parse_slots(&f, &h) {
                        Ok(r) => {
                            answer = Some(r);
                            break;
                        }
                        Err(e) => last = e,
                    },
                    Err(e) => last = format!("{h}:{p}: {e}"),
                }
            }
        }
        let Some(ranges) = answer else {
            return Err(last);
        };
        if ranges.is_empty() {
            return Err("CLUSTER SLOTS answered no slot (the cluster is not set up yet)".into());
        }
        self.install(&ranges, &cur);
        // A master new to the table: let it connect before requests find it.
        for m in self.topo().masters.iter() {
            m.ready(Duration::from_millis(500)).await;
        }
        Ok(())
    }

    fn install(&self, ranges: &[SlotRange], cur: &Topology) {
        let hash = topology_hash(ranges);
        if hash == cur.hash && !cur.masters.is_empty() {
            return;
        }
        let mut sorted: Vec<&SlotRange> = ranges.iter().collect();
        sorted.sort_by_key(|r| r.start);
        let mut masters: Vec<Arc<Node>> = Vec::new();
        let mut owner = vec![NONE; SLOTS];
        let mut replicas = Vec::new();
        let mut extra = self.extra.lock().expect("never poisoned");
        for r in sorted {
            let i = match masters.iter().position(|m| m.addr() == r.master) {
                Some(i) => i,
                None => {
                    let node = cur
                        .masters
                        .iter()
                        .find(|m| m.addr() == r.master)
                        .cloned()
                        .or_else(|| extra.remove(&r.master))
                        .unwrap_or_else(|| {
                            Node::start(
                                &self.base,
                                &r.master.0,
                                r.master.1,
                                self.per_node,
                                self.limits,
                            )
                        });
                    masters.push(node);
                    masters.len() - 1
                }
            };
            for s in r.start..=r.end {
                owner[usize::from(s)] = i as u16;
            }
            for rep in &r.replicas {
                if !replicas.contains(rep) {
                    replicas.push(rep.clone());
                }
            }
        }
        extra.clear();
        drop(extra);
        tracing::info!(
            masters = masters.len(),
            "cluster topology: {}",
            masters
                .iter()
                .map(|m| format!("{}:{}", m.host, m.port))
                .collect::<Vec<_>>()
                .join(" ")
        );
        *self.topo.write().expect("never poisoned") = Arc::new(Topology {
            owner,
            masters,
            replicas,
            hash,
        });
    }
}

/// Refreshes the topology: at once when asked (a MOVED, a lost node),
/// every 200 ms while a master is down or a slot has none, else every 5 s.
async fn keep_fresh(inner: std::sync::Weak<Inner>) {
    let mut last = Instant::now();
    let mut failing = false;
    loop {
        let Some(me) = inner.upgrade() else { return };
        let topo = me.topo();
        let degraded = topo.masters.is_empty()
            || topo.masters.iter().any(|m| !m.is_up())
            || topo.owner.contains(&NONE);
        drop(topo);
        let due = if degraded {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        let wait = due.saturating_sub(last.elapsed());
        let woken = tokio::select! {
            () = me.wake.notified() => true,
            () = tokio::time::sleep(wait.min(Duration::from_millis(200))) => false,
        };
        if woken || last.elapsed() >= due {
            match me.refresh().await {
                // Once per outage, not every 200 ms.
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "cluster topology refresh failed (retrying every 200 ms)");
                    failing = true;
                }
                Err(e) => tracing::debug!(error = %e, "cluster topology refresh failed"),
                Ok(()) if failing => {
                    tracing::info!("cluster topology refresh works again");
                    failing = false;
                }
                Ok(()) => {}
            }
            last = Instant::now();
            // At most one refresh per 50 ms, however many ask.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmd(args: &[&str]) -> Command {
        args.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn keys(args: &[&str]) -> Vec<String> {
        let c = cmd(args);
        key_positions(&c)
            .into_iter()
            .map(|i| args[i].to_string())
            .collect()
    }

    #[test]
    fn key_positions_follow_redis_key_specs() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["GET", "k"], &["k"]),
            (&["set", "k", "v", "EX", "10"], &["k"]),
            (&["MGET", "a", "b", "c"], &["a", "b", "c"]),
            (&["MSET", "a", "1", "b", "2"], &["a", "b"]),
            (&["BITOP", "AND", "d", "a", "b"], &["d", "a", "b"]),
            (&["RENAME", "a", "b"], &["a", "b"]),
            (&["LMOVE", "a", "b", "LEFT", "RIGHT"], &["a", "b"]),
            (&["EVAL", "return 1", "2", "k1", "k2", "arg"], &["k1", "k2"]),
            (&["EVALSHA", "abc", "0", "arg"], &[]),
            (&["FCALL", "f", "1", "k", "a"], &["k"]),
            (
                &["ZINTERSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"],
                &["d", "a", "b"],
            ),
            (&["ZUNION", "2", "a", "b"], &["a", "b"]),
            (&["LMPOP", "2", "a", "b", "LEFT"], &["a", "b"]),
            (
                &["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"],
                &["s1", "s2"],
            ),
            (
                &["XREADGROUP", "GROUP", "STREAMS", "c", "STREAMS", "s", ">"],
                &["s"],
            ),
            (&["XINFO", "STREAM", "s"], &["s"]),
            (&["XINFO", "HELP"], &[]),
            (&["XGROUP", "CREATE", "s", "g", "$"], &["s"]),
            (&["OBJECT", "ENCODING", "k"], &["k"]),
            (&["MEMORY", "USAGE", "k"], &["k"]),
            (&["MEMORY", "STATS"], &[]),
            (&["SORT", "k", "BY", "w*", "STORE", "d"], &["k", "d"]),
            (
                &["GEORADIUS", "g", "0", "0", "1", "km", "STOREDIST", "d"],
                &["g", "d"],
            ),
            (&["PING"], &[]),
            (&["SCAN", "0"], &[]),
            (&["PUBLISH", "ch", "m"], &[]),
            (&["SPUBLISH", "ch", "m"], &["ch"]),
            (&["JSON.MGET", "a", "b", "$"], &["a", "b"]),
        ];
        for (c, want) in cases {
            assert_eq!(keys(c), *want, "{c:?}");
        }
    }

    #[test]
    fn only_the_default_lists_reads_are_reads() {
        let c = |args: &[&str]| -> Command {
            args.iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect()
        };
        for read in [
            &["GET", "k"][..],
            &["mget", "a", "b"],
            &["XREVRANGE", "l", "+", "-"],
            &["OBJECT", "ENCODING", "k"],
        ] {
            assert!(!may_write(&c(read)), "{read:?}");
        }
        for write in [
            &["SET", "k", "v"][..],
            &["XADD", "l", "*", "f", "v"],
            &["PUBLISH", "ch", "m"],
            &["DEL", "a"],
            &["XGROUP", "CREATE", "s", "g", "$"],
            &["NOTACOMMAND", "k"],
        ] {
            assert!(may_write(&c(write)), "{write:?}");
        }
    }

    #[test]
    fn kinds() {
        // `{t}` keys share a slot: no split.
        assert_eq!(
            kind(&cmd(&["MGET", "{t}a", "{t}b"])),
            Kind::Slot(slot(b"t"))
        );
        assert_eq!(kind(&cmd(&["MGET", "a", "b"])), Kind::Split(Split::Mget));
        assert_eq!(
            kind(&cmd(&["MSET", "a", "1", "b", "2"])),
            Kind::Split(Split::Mset)
        );
        // MSET's values never decide the slots.
        assert_eq!(
            kind(&cmd(&["MSET", "{t}a", "x", "{t}b", "y"])),
            Kind::Slot(slot(b"t"))
        );
        assert_eq!(
            kind(&cmd(&["MSETNX", "a", "1", "b", "2"])),
            Kind::Slot(slot(b"a"))
        );
        // A malformed MSET is not split: Redis refuses it whole.
        assert_eq!(kind(&cmd(&["MSET", "a", "1", "b"])), Kind::Slot(slot(b"a")));
        assert_eq!(kind(&cmd(&["DBSIZE"])), Kind::All(Combine::Sum));
        assert_eq!(kind(&cmd(&["scan", "0"])), Kind::Scan);
        assert_eq!(kind(&cmd(&["PING"])), Kind::Any);
        assert_eq!(kind(&cmd(&["EVAL", "return 1", "0"])), Kind::Any);
    }

    #[test]
    fn slots_are_redis_keyslot() {
        // `redis-cli cluster keyslot`
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
    }

    #[test]
    fn redirects_are_read() {
        let e = |s: &str| error_frame(s);
        assert!(matches!(
            redirect(&e("MOVED 3999 127.0.0.1:6381")),
            Some(Redirect::Moved(3999, (h, 6381))) if h == "127.0.0.1"
        ));
        assert!(matches!(
            redirect(&e("ASK 3999 ::1:6381")),
            Some(Redirect::Ask((h, 6381))) if h == "::1"
        ));
        assert!(matches!(
            redirect(&e(
                "TRYAGAIN Multiple keys request during rehashing of slot"
            )),
            Some(Redirect::TryAgain)
        ));
        assert!(redirect(&e("ERR MOVED")).is_none());
        assert!(redirect(&blob("MOVED 1 a:1")).is_none());
    }

    #[test]
    fn slots_reply_is_parsed() {
        let node = |h: &str, p: i64| array(vec![blob(h.to_string()), number(p), blob("id")]);
        let reply = array(vec![
            array(vec![
                number(0),
                number(5460),
                node("10.0.0.1", 7000),
                node("10.0.0.4", 7003),
            ]),
            array(vec![number(5461), number(16383), node("", 7001)]),
        ]);
        let r = parse_slots(&reply, "seed").unwrap();
        assert_eq!(r[0].master, ("10.0.0.1".into(), 7000));
        assert_eq!(r[0].replicas, [("10.0.0.4".to_string(), 7003)]);
        assert_eq!(r[1].master, ("seed".into(), 7001));
        assert!(parse_slots(
            &error_frame("ERR This instance has cluster support disabled"),
            "x"
        )
        .is_err());
        assert!(parse_slots(
            &array(vec![array(vec![number(5), number(2), node("h", 1)])]),
            "x"
        )
        .is_err());
    }

    #[test]
    fn the_topology_hash_depends_on_ranges_and_masters_only() {
        let r = |s, e, p| SlotRange {
            start: s,
            end: e,
            master: ("h".into(), p),
            replicas: vec![],
        };
        let a = [r(0, 100, 1), r(101, 16383, 2)];
        let b = [r(101, 16383, 2), r(0, 100, 1)];
        assert_eq!(topology_hash(&a), topology_hash(&b));
        assert_ne!(
            topology_hash(&a),
            topology_hash(&[r(0, 101, 1), r(102, 16383, 2)])
        );
        assert_ne!(
            topology_hash(&a),
            topology_hash(&[r(0, 100, 3), r(101, 16383, 2)])
        );
    }

    proptest! {
        #[test]
        fn scan_cursors_round_trip(node_cursor in 0..=MAX_NODE_CURSOR, hash in 0u32..(1 << HASH_BITS), master in 0usize..1024) {
            let c = ScanCursor { node_cursor, hash, master };
            let e = c.encode().unwrap();
            prop_assert_eq!(ScanCursor::decode(e), c);
        }

        /// A scan visits every master in order, each from its own start to
        /// its own end, and ends with 0; a change of topology starts it
        /// again from the first master, never further on.
        #[test]
        fn a_scan_visits_every_master_once_and_a_topology_change_restarts_it(
            masters in 1usize..8,
            hash in 0u32..(1 << HASH_BITS),
            steps in proptest::collection::vec(0u64..1000, 1..40),
            change_at in proptest::option::of(0usize..40),
        ) {
            let mut cursor = b"0".to_vec();
            let mut hash = hash;
            let mut visited: Vec<usize> = Vec::new();
            let mut steps = steps.into_iter().enumerate();
            loop {
                if let Some((i, _)) = steps.clone().next() {
                    if Some(i) == change_at {
                        hash ^= 0x5555;
                        visited.clear();
                    }
                }
                let (m, c) = scan_resume(&cursor, hash, masters);
                if visited.last() != Some(&m) {
                    // A master is entered at its own start.
                    prop_assert_eq!(c, 0);
                    prop_assert_eq!(m, visited.len(), "masters in order, none skipped");
                    visited.push(m);
                }
                let next = steps.next().map_or(0, |(_, n)| n);
                let out = scan_next(m, next, hash, masters).unwrap();
                if out == 0 {
                    prop_assert_eq!(m, masters - 1);
                    break;
                }
                cursor = out.to_string().into_bytes();
            }
            prop_assert_eq!(visited.len(), masters);
        }
    }

    #[test]
    fn a_foreign_cursor_starts_again() {
        assert_eq!(scan_resume(b"17", 5, 3), (0, 0));
        assert_eq!(scan_resume(b"junk", 5, 3), (0, 0));
        let c = scan_next(1, 42, 5, 3).unwrap().to_string();
        assert_eq!(scan_resume(c.as_bytes(), 5, 3), (1, 42));
        assert_eq!(scan_resume(c.as_bytes(), 6, 3), (0, 0));
        assert_eq!(scan_resume(c.as_bytes(), 5, 1), (0, 0));
    }
}
