//! The reader's state machine: how far this cache has read the log, the
//! epoch it saw, and since when it may vouch for its L1 (the lease).

use std::collections::HashSet;

use super::log::{decode_range, Command, Log, Op, StreamId, LOG_MAXLEN};
use crate::error::{Error, Result};
use crate::rest::Reply;

/// The default `maxStaleness`, ms: provisional, until the benchmark of
/// issue 18 chooses it from what a lease read costs.
pub const DEFAULT_MAX_STALENESS: u64 = 1_000;
/// The default [`LeaseConfig::max_away`], ms.
pub const DEFAULT_MAX_AWAY: u64 = 60_000;
/// The default [`LeaseConfig::batch`].
pub const DEFAULT_BATCH: u32 = 500;

/// How a [`Lease`] behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// `maxStaleness`, ms: an L1 hit may be served without reading the log
    /// first only while the last successful log read started less than
    /// this long ago. `0`: every L1 hit reads the log first.
    pub max_staleness: u64,
    /// ms: a read that starts this long or longer after the last
    /// successful one does not replay the log; it drops all of L1 (a gap,
    /// [`Gap::Away`]) and starts again from the newest entry. At least
    /// `max_staleness`.
    pub max_away: u64,
    /// The most entries one read fetches; a reader further behind drops
    /// all of L1 ([`Gap::Behind`]). 1 to `LOG_MAXLEN - 1`, so that a trim
    /// (which keeps at least [`LOG_MAXLEN`] entries) past a reader's
    /// position is always seen.
    pub batch: u32,
    /// Strict mode: an L1 hit whose lease has expired and whose log read
    /// failed is refused ([`Lease::serve_unreachable`]); by default it is
    /// served and counted (stale-while-unreachable).
    pub strict: bool,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            max_staleness: DEFAULT_MAX_STALENESS,
            max_away: DEFAULT_MAX_AWAY,
            batch: DEFAULT_BATCH,
            strict: false,
        }
    }
}

/// Why a read could not replay the log and dropped all of L1 instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gap {
    /// The entry at the reader's position was trimmed (or deleted), with
    /// entries after it: some may be lost.
    Trimmed,
    /// More than `batch` entries came after the reader's position.
    Behind,
    /// The log is gone (nothing at or after the reader's position).
    Lost,
    /// The epoch changed, or there is none: Redis was flushed or
    /// restarted (or nothing has been written since).
    Epoch,
    /// The last successful read started `max_away` or longer ago.
    Away,
    /// An entry of the log is not one this version writes (a newer
    /// version's, or planted): what it invalidates is unknown.
    Unreadable,
}

impl Gap {
    /// Its name in `stats()` and in the corpus: `trimmed`, `behind`,
    /// `lost`, `epoch`, `away`, `unreadable`.
    ///
    /// ```
    /// assert_eq!(edgecache::Gap::Behind.name(), "behind");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Gap::Trimmed => "trimmed",
            Gap::Behind => "behind",
            Gap::Lost => "lost",
            Gap::Epoch => "epoch",
            Gap::Away => "away",
            Gap::Unreadable => "unreadable",
        }
    }
}

/// What a finished read asks the cache to drop from L1 (and to count as a
/// mutation in its [`Fence`](crate::Fence): `invalidate(key)`, a pattern
/// that begins and ends at once, or `invalidate_all()`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Redis keys changed elsewhere, oldest first, each once.
    pub keys: Vec<String>,
    /// Redis globs over keys changed elsewhere (pattern deletes, clears).
    pub globs: Vec<String>,
    /// Keys of tags' versions ([`Kind::Tag`](crate::Kind::Tag)) raised
    /// elsewhere (`invalidateTags`), oldest first, each once: a version
    /// the cache holds for one of them is no longer known to be current.
    pub tags: Vec<String>,
    /// Drop all of L1 (then `keys`, `globs` and `tags` are empty), and
    /// every tag version the cache holds: a gap, or the first read.
    pub everything: bool,
    /// Why, when it was a gap (never for the first read).
    pub gap: Option<Gap>,
    /// The read was the cache's first (everything, and no gap).
    pub first: bool,
    /// The error that made an entry unreadable ([`Gap::Unreadable`]).
    pub unreadable: Option<Error>,
    /// The lease moved forward: this read started after every other
    /// successful read so far.
    pub renewed: bool,
}

/// Counters for `stats()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoherenceStats {
    /// Log reads that succeeded.
    pub reads: u64,
    /// Log reads that failed (Redis unreachable, or a malformed answer).
    pub failures: u64,
    /// Entries of other writers applied.
    pub entries: u64,
    /// Entries of this cache's own writes, skipped.
    pub own: u64,
    /// Gaps, all reasons.
    pub gaps: u64,
    /// Gaps by reason.
    pub trimmed: u64,
    /// See [`Gap::Behind`].
    pub behind: u64,
    /// See [`Gap::Lost`].
    pub lost: u64,
    /// See [`Gap::Epoch`].
    pub epoch: u64,
    /// See [`Gap::Away`].
    pub away: u64,
    /// See [`Gap::Unreadable`].
    pub unreadable: u64,
    /// L1 hits served with an expired lease because the log could not be
    /// read (`stale-while-unreachable`).
    pub stale_served: u64,
    /// L1 hits refused for the same reason (strict mode).
    pub refused: u64,
}

/// The epoch as read: `None` when the key is absent.
type Epoch = Option<Vec<u8>>;

/// What this cache has accounted for: every entry of the stream older than
/// `id` has been applied (or covered by dropping all of L1), as long as
/// `id` is still in the stream; `ZERO` when the stream was empty or gone.
#[derive(Clone, Debug)]
struct Position {
    epoch: Epoch,
    id: StreamId,
    /// The ticket of the read that set it (out-of-order completion).
    setter: u64,
}

/// One log read in flight: send [`ReadTicket::commands`] (alone, or in
/// front of the commands of any L2 request the cache makes anyway), then
/// give the replies to [`Lease::finish_read`], or the ticket to
/// [`Lease::failed_read`].
#[derive(Debug)]
#[must_use = "finish or fail the read"]
pub struct ReadTicket {
    seq: u64,
    started: u64,
    /// The state when it began; `None` before the first read.
    base: Option<(Epoch, StreamId)>,
    /// Whether it replays from `base` (else it reads the newest entry only).
    replay: bool,
    away: bool,
    commands: Vec<Command>,
}

impl ReadTicket {
    /// The commands to send, in this order.
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// When the read began (the `now` given to [`Lease::begin_read`]).
    pub fn started(&self) -> u64 {
        self.started
    }
}

/// The coherence state of one cache (one `TieredCache` or Rust
/// `EdgeCache`): its writer id, its position in the log, its lease.
///
/// ```
/// use edgecache::{Layout, Lease, LeaseConfig, Log, Reply};
/// let log = Log::new(&Layout::new("app").unwrap());
/// let mut lease = Lease::new(log, "r0123456789abcdef", LeaseConfig::default()).unwrap();
/// assert!(lease.needs_read(0));
/// let ticket = lease.begin_read(100);
/// assert_eq!(ticket.commands().len(), 3);
/// // Redis answered: no epoch yet, an empty log.
/// let out = lease.finish_read(ticket, &[Ok(Reply::Nil), Ok(Reply::Array(vec![])), Ok(Reply::Nil)]).unwrap();
/// assert!(out.first && out.everything && out.renewed);
/// assert!(!lease.needs_read(1_099));   // fresh for maxStaleness (1000 ms) from the read's start
/// assert!(lease.needs_read(1_100));
/// ```
#[derive(Debug)]
pub struct Lease {
    log: Log,
    config: LeaseConfig,
    id: String,
    writes: u64,
    tickets: u64,
    pos: Option<Position>,
    fresh_from: Option<u64>,
    stats: CoherenceStats,
}

/// A new random writer id for [`Lease::new`]: 16 bytes from the platform's
/// secure random source, as 22 characters of base64url.
///
/// ```
/// let a = edgecache::new_writer_id().unwrap();
/// assert_eq!(a.len(), 22);
/// assert_ne!(a, edgecache::new_writer_id().unwrap());
/// ```
pub fn new_writer_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::RandomUnavailable(e.to_string()))?;
    Ok(crate::envelope::base64url::encode(&bytes))
}

fn protocol(why: impl Into<String>) -> Error {
    Error::L2Protocol(why.into())
}

impl Lease {
    /// The state of a cache that has not read the log yet. `id` names its
    /// writes (16 to 64 of `A-Z a-z 0-9 _ -`): it must be random and of
    /// this cache object alone ([`new_writer_id`]), since a reader skips
    /// the entries of its own id.
    pub fn new(log: Log, id: &str, config: LeaseConfig) -> Result<Self> {
        if !super::log::valid_writer_id(id) {
            return Err(Error::InvalidOption {
                name: "id",
                reason: format!("{id:?} must be 16 to 64 of A-Z a-z 0-9 _ - (new_writer_id())"),
            });
        }
        if config.batch == 0 || config.batch >= LOG_MAXLEN {
            return Err(Error::InvalidOption {
                name: "batch",
                reason: format!("{} must be 1 to {}", config.batch, LOG_MAXLEN - 1),
            });
        }
        if config.max_away < config.max_staleness {
            return Err(Error::InvalidOption {
                name: "maxAway",
                reason: format!(
                    "{} must be at least maxStaleness ({})",
                    config.max_away, config.max_staleness
                ),
            });
        }
        Ok(Lease {
            log,
            config,
            id: id.to_owned(),
            writes: 0,
            tickets: 0,
            pos: None,
            fresh_from: None,
            stats: CoherenceStats::default(),
        })
    }

    /// The writer id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The configuration.
    pub fn config(&self) -> LeaseConfig {
        self.config
    }

    /// The counters.
    pub fn stats(&self) -> CoherenceStats {
        self.stats
    }

    /// The position: the newest entry accounted for (`None` before the
    /// first read).
    pub fn position(&self) -> Option<StreamId> {
        self.pos.as_ref().map(|p| p.id)
    }

    /// When the last successful log read started (`None`: never).
    pub fn fresh_from(&self) -> Option<u64> {
        self.fresh_from
    }

    /// The commands to append to a mutation's pipeline, after it
    /// ([`Log::append`]), with an epoch candidate never used before: this
    /// cache's id and a count of its appends.
    ///
    /// ```
    /// use edgecache::{Layout, Lease, LeaseConfig, Log, Op};
    /// let log = Log::new(&Layout::new("app").unwrap());
    /// let mut lease = Lease::new(log, "w0123456789abcdef", LeaseConfig::default()).unwrap();
    /// let first = lease.append(Op::Delete, &["app:v:r|k"]).unwrap();
    /// let second = lease.append(Op::Delete, &["app:v:r|k"]).unwrap();
    /// assert!(first[0].body().ends_with(r#""w0123456789abcdef.1","NX"]"#));
    /// assert!(second[0].body().ends_with(r#""w0123456789abcdef.2","NX"]"#));
    /// assert_eq!(first[1], second[1]); // the same XADD
    /// ```
    pub fn append(&mut self, op: Op, targets: &[&str]) -> Result<Vec<Command>> {
        self.writes += 1;
        let candidate = format!("{}.{}", self.id, self.writes);
        self.log.append(&self.id, &candidate, op, targets)
    }

    /// Whether an L1 hit at `now` must read the log first: the last
    /// successful read started `max_staleness` ms ago or more, or there
    /// was none. (Clocks count whole ms, so "at least" keeps the bound
    /// exact: a hit is served without a read only while `now - start <
    /// max_staleness`.)
    pub fn needs_read(&self, now: u64) -> bool {
        match self.fresh_from {
            None => true,
            Some(t) => now.saturating_sub(t) >= self.config.max_staleness,
        }
    }

    /// A log read begins at `now` (the cache's own monotonic clock, ms).
    /// Concurrent reads may overlap and finish in any order.
    pub fn begin_read(&mut self, now: u64) -> ReadTicket {
        self.tickets += 1;
        let base = self.pos.as_ref().map(|p| (p.epoch.clone(), p.id));
        let away = base.is_some()
            && self
                .fresh_from
                .map_or(true, |t| now.saturating_sub(t) >= self.config.max_away);
        let replay = base.is_some() && !away;
        let from = if replay {
            base.as_ref().map(|b| b.1)
        } else {
            None
        };
        ReadTicket {
            seq: self.tickets,
            started: now,
            base,
            replay,
            away,
            commands: self.log.read(from, self.config.batch),
        }
    }

    /// The read of `ticket` could not be done (Redis unreachable, a
    /// timeout): nothing is learned, the lease is not renewed.
    pub fn failed_read(&mut self, ticket: ReadTicket) {
        let _ = ticket;
        self.stats.failures += 1;
    }

    /// An L1 hit whose lease has expired, and whose log read failed: may it
    /// be served? Yes by default (counted in `stale_served`), no in strict
    /// mode (counted in `refused`).
    ///
    /// ```
    /// use edgecache::{Layout, Lease, LeaseConfig, Log};
    /// let log = Log::new(&Layout::new("app").unwrap());
    /// let strict = LeaseConfig { strict: true, ..LeaseConfig::default() };
    /// let mut lease = Lease::new(log, "r0123456789abcdef", strict).unwrap();
    /// let ticket = lease.begin_read(0);
    /// lease.failed_read(ticket);         // Redis unreachable
    /// assert!(lease.needs_read(0));      // the lease was not renewed
    /// assert!(!lease.serve_unreachable());
    /// assert_eq!(lease.stats().refused, 1);
    /// ```
    pub fn serve_unreachable(&mut self) -> bool {
        if self.config.strict {
            self.stats.refused += 1;
            false
        } else {
            self.stats.stale_served += 1;
            true
        }
    }

    /// The replies to `ticket`'s commands (as [`decode_pipeline`](crate::decode_pipeline)
    /// gives them, in order) have come: what to drop from L1. A reply that
    /// is not what Redis answers to those commands, or a Redis error, is an
    /// error (`L2_PROTOCOL`, `L2_REDIS`), counted as a failed read; an
    /// entry this version cannot read is a gap ([`Gap::Unreadable`]).
    pub fn finish_read(
        &mut self,
        ticket: ReadTicket,
        replies: &[Result<Reply, String>],
    ) -> Result<Outcome> {
        match self.apply(&ticket, replies) {
            Ok(out) => Ok(out),
            Err(e) => {
                self.stats.failures += 1;
                Err(e)
            }
        }
    }

    fn apply(&mut self, t: &ReadTicket, replies: &[Result<Reply, String>]) -> Result<Outcome> {
        let [before, range, after] = replies else {
            return Err(protocol(format!(
                "a log read has 3 commands, {} replies came",
                replies.len()
            )));
        };
        let epoch = |r: &Result<Reply, String>| -> Result<Epoch> {
            match r {
                Ok(Reply::Nil) => Ok(None),
                Ok(Reply::Bytes(b)) => Ok(Some(b.clone())),
                Ok(_) => Err(protocol("the log's epoch must be a string or nil")),
                Err(e) => Err(Error::L2Redis(e.clone())),
            }
        };
        let (before, seen) = (epoch(before)?, epoch(after)?);
        let range = match range {
            Ok(r) => decode_range(r)?,
            Err(e) => return Err(Error::L2Redis(e.clone())),
        };
        // The range is of one epoch's stream only if an epoch was there
        // before and after it, the same: a flush in between would have
        // removed it, and no epoch is named twice. Without an epoch nothing
        // vouches that this Redis is the one read last time (a write may
        // have named an epoch, and a flush removed it, since); then nothing
        // written through edgecache is in Redis, and dropping L1 costs next
        // to nothing.
        let consistent = before.is_some() && before == seen;
        // A replay reads from the position it began at; other reads, the
        // newest entry only.
        let from = t.base.as_ref().filter(|_| t.replay).map(|b| b.1);
        let limit = match from {
            Some(_) => self.config.batch as usize + 1,
            None => 1,
        };
        if range.len() > limit
            || range.windows(2).any(|w| w[0].0 <= w[1].0)
            || from.is_some_and(|f| range.iter().any(|e| e.0 < f))
        {
            return Err(protocol(
                "the log range is not what XREVRANGE answers (too long, out of order, or before the start)",
            ));
        }
        // Everything up to the newest entry seen is accounted for after
        // this read, whatever it finds: replayed, or covered by dropping
        // all of L1 (their mutations ran before this read did).
        let tail = match consistent {
            true => range.first().map_or(StreamId::ZERO, |e| e.0),
            // The range may be of an older stream: start again from the
            // beginning of whatever stream goes with `seen` (what is in it
            // now is covered by dropping all of L1).
            false => StreamId::ZERO,
        };
        let mut out = Outcome::default();
        let gap = match (&t.base, from) {
            (None, _) => {
                out.first = true;
                None
            }
            (Some((epoch, _)), _) if !t.away && (!consistent || *epoch != seen) => Some(Gap::Epoch),
            (Some(_), None) => Some(Gap::Away),
            (Some(_), Some(from)) => {
                let full = range.len() == limit;
                let present = from == StreamId::ZERO || range.last().map(|e| e.0) == Some(from);
                if full && (from == StreamId::ZERO || !present) {
                    Some(Gap::Behind)
                } else if !present && range.is_empty() {
                    Some(Gap::Lost)
                } else if !present {
                    Some(Gap::Trimmed)
                } else {
                    self.replay(&range, from, &mut out)
                }
            }
        };
        if let Some(g) = gap {
            self.count(g);
        }
        if gap.is_some() || out.first {
            out.keys.clear();
            out.globs.clear();
            out.tags.clear();
            out.everything = true;
        }
        out.gap = gap;
        self.stats.reads += 1;
        self.merge(t.seq, seen, tail, out.everything);
        out.renewed = self.fresh_from.map_or(true, |f| t.started > f);
        if out.renewed {
            self.fresh_from = Some(t.started);
        }
        Ok(out)
    }

    /// Applies the entries after `from`, oldest first; a gap if one cannot
    /// be read.
    fn replay(
        &mut self,
        range: &[(StreamId, Vec<Vec<u8>>)],
        from: StreamId,
        out: &mut Outcome,
    ) -> Option<Gap> {
        // One set for the three lists: a key, a glob and a tag's key never
        // spell one another (the kinds differ, and a glob's is `[vn]`).
        let mut seen = HashSet::new();
        for (id, fields) in range.iter().rev().filter(|e| e.0 != from) {
            let entry = match self.log.decode_entry(fields) {
                Ok(e) => e,
                Err(e) => {
                    out.unreadable = Some(Error::L2Protocol(format!("entry {id}: {e}")));
                    return Some(Gap::Unreadable);
                }
            };
            if entry.writer == self.id {
                self.stats.own += 1;
                continue;
            }
            self.stats.entries += 1;
            let list = if entry.op.globs() {
                &mut out.globs
            } else if entry.op == Op::Tag {
                &mut out.tags
            } else {
                &mut out.keys
            };
            for target in entry.targets {
                if seen.insert(target.clone()) {
                    list.push(target);
                }
            }
        }
        None
    }

    fn count(&mut self, gap: Gap) {
        let s = &mut self.stats;
        s.gaps += 1;
        *match gap {
            Gap::Trimmed => &mut s.trimmed,
            Gap::Behind => &mut s.behind,
            Gap::Lost => &mut s.lost,
            Gap::Epoch => &mut s.epoch,
            Gap::Away => &mut s.away,
            Gap::Unreadable => &mut s.unreadable,
        } += 1;
    }

    /// Folds a finished read's view (`epoch`, everything up to `tail`
    /// accounted for) into the state. Reads finish in any order: a replay
    /// in the same epoch only moves the position forward; otherwise the
    /// view of the read that began last wins. Either way the position is
    /// one that some read established, and a position that is wrong for
    /// the stream as it is now (another epoch, an id no longer there) makes
    /// the next read a gap, never a silent skip.
    fn merge(&mut self, seq: u64, epoch: Epoch, tail: StreamId, everything: bool) {
        match &mut self.pos {
            Some(p) if !everything && p.epoch == epoch => {
                p.id = p.id.max(tail);
                p.setter = p.setter.max(seq);
            }
            Some(p) if seq < p.setter => {}
            _ => {
                self.pos = Some(Position {
                    epoch,
                    id: tail,
                    setter: seq,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;

    const ME: &str = "me0123456789abcdef";
    const OTHER: &str = "ot0123456789abcdef";

    fn lease(config: LeaseConfig) -> Lease {
        Lease::new(Log::new(&Layout::new("app").unwrap()), ME, config).unwrap()
    }

    fn b(s: &str) -> Reply {
        Reply::Bytes(s.as_bytes().to_vec())
    }

    fn id(ms: u64) -> StreamId {
        StreamId { ms, seq: 0 }
    }

    /// An entry as XREVRANGE gives it.
    fn entry(at: u64, writer: &str, op: &str, targets: &[&str]) -> Reply {
        let mut f = vec![b("w"), b(writer), b("op"), b(op)];
        for (i, t) in targets.iter().enumerate() {
            f.push(b(&i.to_string()));
            f.push(b(t));
        }
        Reply::Array(vec![b(&id(at).to_string()), Reply::Array(f)])
    }

    /// The replies to a read: the epoch, and entries given oldest first.
    fn replies(epoch: Option<&str>, mut entries: Vec<Reply>) -> Vec<Result<Reply, String>> {
        entries.reverse();
        let e = epoch.map_or(Reply::Nil, b);
        vec![Ok(e.clone()), Ok(Reply::Array(entries)), Ok(e)]
    }

    /// A lease that has read once, at t=0, and stands at entry 10 of epoch E.
    fn started() -> Lease {
        let mut l = lease(LeaseConfig::default());
        let t = l.begin_read(0);
        let out = l
            .finish_read(
                t,
                &replies(Some("E"), vec![entry(10, OTHER, "set", &["app:v:r|old"])]),
            )
            .unwrap();
        assert!(out.first && out.everything && out.gap.is_none());
        assert_eq!(l.position(), Some(id(10)));
        l
    }

    fn mark(at: u64) -> Reply {
        entry(at, OTHER, "set", &["app:v:r|old"])
    }

    #[test]
    fn a_replay_names_what_others_changed_and_skips_its_own() {
        let mut l = started();
        let t = l.begin_read(5);
        assert_eq!(
            t.commands()[1].body(),
            r#"["XREVRANGE","app:c:{app:0}:log","+","10-0","COUNT",501]"#
        );
        let out = l
            .finish_read(
                t,
                &replies(
                    Some("E"),
                    vec![
                        mark(10),
                        entry(11, OTHER, "del", &["app:v:r|a", "app:n:r|a"]),
                        entry(12, ME, "set", &["app:v:r|mine"]),
                        entry(13, OTHER, "clear", &["app:[vn]:t4:acme|*"]),
                        entry(14, OTHER, "set", &["app:v:r|a"]),
                    ],
                ),
            )
            .unwrap();
        assert_eq!(out.keys, ["app:v:r|a", "app:n:r|a"]);
        assert_eq!(out.globs, ["app:[vn]:t4:acme|*"]);
        assert!(!out.everything && out.gap.is_none() && out.renewed);
        assert_eq!(l.position(), Some(id(14)));
        let s = l.stats();
        assert_eq!((s.reads, s.entries, s.own, s.gaps), (2, 3, 1, 0));
    }

    #[test]
    fn a_replay_names_the_tags_others_invalidated() {
        let mut l = started();
        let t = l.begin_read(5);
        let out = l
            .finish_read(
                t,
                &replies(
                    Some("E"),
                    vec![
                        mark(10),
                        entry(11, OTHER, "tag", &["app:g:r|product:7", "app:g:t4:acme|a"]),
                        entry(12, ME, "tag", &["app:g:r|mine"]),
                        entry(13, OTHER, "set", &["app:v:r|a"]),
                        entry(14, OTHER, "tag", &["app:g:r|product:7", "app:g:r|b"]),
                    ],
                ),
            )
            .unwrap();
        // Apart from the keys: a tag's key names no entry to drop.
        assert_eq!(
            out.tags,
            ["app:g:r|product:7", "app:g:t4:acme|a", "app:g:r|b"]
        );
        assert_eq!(out.keys, ["app:v:r|a"]);
        assert!(out.globs.is_empty() && !out.everything && out.gap.is_none());
        let s = l.stats();
        assert_eq!((s.entries, s.own), (3, 1));
        // A gap after a tag entry drops everything, tags included.
        let t = l.begin_read(6);
        let out = l
            .finish_read(
                t,
                &replies(Some("F"), vec![entry(15, OTHER, "tag", &["app:g:r|c"])]),
            )
            .unwrap();
        assert!(out.everything && out.tags.is_empty() && out.gap == Some(Gap::Epoch));
    }

    #[test]
    fn gaps_drop_everything_and_say_why() {
        let cases: Vec<(Option<&str>, Vec<Reply>, Gap)> = vec![
            // position trimmed, later entries remain
            (Some("E"), vec![mark(12), mark(13)], Gap::Trimmed),
            // nothing at or after the position
            (Some("E"), vec![], Gap::Lost),
            // flushed: epoch gone / another epoch
            (None, vec![mark(10)], Gap::Epoch),
            (Some("F"), vec![mark(10)], Gap::Epoch),
            // an entry of an unknown kind
            (
                Some("E"),
                vec![mark(10), entry(11, OTHER, "v2-op", &["app:v:r|a"])],
                Gap::Unreadable,
            ),
        ];
        for (epoch, entries, want) in cases {
            let mut l = started();
            let t = l.begin_read(5);
            let out = l.finish_read(t, &replies(epoch, entries)).unwrap();
            assert_eq!(out.gap, Some(want));
            assert!(out.everything && out.keys.is_empty() && out.globs.is_empty());
            assert!(out.tags.is_empty());
            assert!(out.renewed, "a gap read still vouches for L1 (now empty)");
            assert_eq!(l.stats().gaps, 1);
            assert_eq!(out.unreadable.is_some(), want == Gap::Unreadable);
        }
    }

    #[test]
    fn a_flush_between_the_two_epoch_reads_is_a_gap() {
        for (before, after) in [(Some("E"), None), (None, Some("F")), (Some("E"), Some("F"))] {
            let mut l = started();
            let t = l.begin_read(5);
            let mut r = replies(before, vec![mark(10), mark(11)]);
            r[2] = Ok(after.map_or(Reply::Nil, b));
            let out = l.finish_read(t, &r).unwrap();
            assert_eq!(out.gap, Some(Gap::Epoch));
            // The range may be of the old stream: start the new one afresh.
            assert_eq!(l.position(), Some(StreamId::ZERO));
        }
        // Likewise for a first read.
        let mut l = lease(LeaseConfig::default());
        let t = l.begin_read(0);
        let mut r = replies(Some("E"), vec![mark(10)]);
        r[2] = Ok(b("F"));
        let out = l.finish_read(t, &r).unwrap();
        assert!(out.first && out.everything);
        assert_eq!(l.position(), Some(StreamId::ZERO));
    }

    #[test]
    fn a_reader_too_far_behind_jumps_to_the_newest() {
        let mut l = lease(LeaseConfig {
            batch: 2,
            ..LeaseConfig::default()
        });
        let t = l.begin_read(0);
        l.finish_read(t, &replies(Some("E"), vec![mark(10)]))
            .unwrap();
        let t = l.begin_read(1);
        // batch + 1 = 3 entries newer than 10, and 10 not among them
        let out = l
            .finish_read(t, &replies(Some("E"), vec![mark(11), mark(12), mark(13)]))
            .unwrap();
        assert_eq!(out.gap, Some(Gap::Behind));
        assert_eq!(l.position(), Some(id(13)));
        // exactly batch entries after a present position: complete
        let t = l.begin_read(2);
        let out = l
            .finish_read(t, &replies(Some("E"), vec![mark(13), mark(14), mark(15)]))
            .unwrap();
        assert_eq!(out.gap, None);
        assert_eq!(out.keys, ["app:v:r|old"]);
    }

    #[test]
    fn away_too_long_skips_the_replay() {
        let mut l = started();
        let t = l.begin_read(DEFAULT_MAX_AWAY);
        assert_eq!(
            t.commands()[1].body(),
            r#"["XREVRANGE","app:c:{app:0}:log","+","-","COUNT",1]"#
        );
        let out = l
            .finish_read(t, &replies(Some("E"), vec![mark(99)]))
            .unwrap();
        assert_eq!(out.gap, Some(Gap::Away));
        assert_eq!(l.position(), Some(id(99)));
    }

    #[test]
    fn the_lease_follows_the_latest_start_whatever_the_order() {
        let mut l = started();
        let early = l.begin_read(100);
        let late = l.begin_read(200);
        let out = l
            .finish_read(late, &replies(Some("E"), vec![mark(10)]))
            .unwrap();
        assert!(out.renewed);
        assert_eq!(l.fresh_from(), Some(200));
        let out = l
            .finish_read(early, &replies(Some("E"), vec![mark(10), mark(11)]))
            .unwrap();
        assert!(!out.renewed, "an earlier read does not move the lease back");
        assert_eq!(l.fresh_from(), Some(200));
        assert_eq!(out.keys, ["app:v:r|old"], "its entries still apply");
        assert_eq!(
            l.position(),
            Some(id(11)),
            "and the position only moves forward"
        );
        assert!(!l.needs_read(200 + DEFAULT_MAX_STALENESS - 1));
        assert!(l.needs_read(200 + DEFAULT_MAX_STALENESS));
    }

    #[test]
    fn a_failed_read_renews_nothing_and_the_mode_decides_hits() {
        for strict in [false, true] {
            let mut l = lease(LeaseConfig {
                strict,
                ..LeaseConfig::default()
            });
            let t = l.begin_read(0);
            l.failed_read(t);
            assert!(l.needs_read(0) && l.fresh_from().is_none());
            assert_eq!(l.serve_unreachable(), !strict);
            let s = l.stats();
            assert_eq!(
                (s.failures, s.stale_served, s.refused),
                (1, !strict as u64, strict as u64)
            );
            // a malformed answer is a failure too, never a silent skip
            let t = l.begin_read(1);
            let e = l.finish_read(
                t,
                &[Ok(Reply::Int(1)), Ok(Reply::Array(vec![])), Ok(Reply::Nil)],
            );
            assert_eq!(e.unwrap_err().code(), "L2_PROTOCOL");
            let t = l.begin_read(1);
            let e = l.finish_read(
                t,
                &[Ok(Reply::Nil), Err("WRONGTYPE".into()), Ok(Reply::Nil)],
            );
            assert_eq!(e.unwrap_err().code(), "L2_REDIS");
            assert_eq!(l.stats().failures, 3);
            assert!(l.needs_read(1));
        }
    }

    #[test]
    fn answers_that_xrevrange_cannot_give_are_refused() {
        let mut l = started();
        for bad in [
            replies(Some("E"), vec![mark(11), mark(10)]), // oldest first after our reverse: out of order
            replies(Some("E"), vec![mark(9), mark(10)]),  // before the start
            vec![Ok(Reply::Nil)],
        ] {
            let t = l.begin_read(1);
            assert_eq!(l.finish_read(t, &bad).unwrap_err().code(), "L2_PROTOCOL");
        }
        assert_eq!(l.position(), Some(id(10)));
    }

    #[test]
    fn bad_configs_are_refused() {
        let log = Log::new(&Layout::new("app").unwrap());
        let new = |id: &str, c| {
            Lease::new(log.clone(), id, c)
                .map(|_| ())
                .unwrap_err()
                .code()
        };
        assert_eq!(new("short", LeaseConfig::default()), "INVALID_OPTION");
        for c in [
            LeaseConfig {
                batch: 0,
                ..LeaseConfig::default()
            },
            LeaseConfig {
                batch: LOG_MAXLEN,
                ..LeaseConfig::default()
            },
            LeaseConfig {
                max_away: 10,
                max_staleness: 11,
                ..LeaseConfig::default()
            },
        ] {
            assert_eq!(new(ME, c), "INVALID_OPTION");
        }
    }

    #[test]
    fn epoch_candidates_are_never_reused() {
        let mut l = lease(LeaseConfig::default());
        let a = l.append(Op::Set, &["app:v:r|k"]).unwrap();
        let b2 = l.append(Op::Set, &["app:v:r|k"]).unwrap();
        assert_ne!(a[0], b2[0]);
        assert!(a[0].body().contains(&format!("\"{ME}.1\"")));
    }
}
