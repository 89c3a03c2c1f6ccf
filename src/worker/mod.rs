//! The Cloudflare Workers binding for Rust Workers (workers-rs, `worker`
//! 0.8), behind the `worker` cargo feature.
//!
//! [`EdgeCache`] is the Rust twin of the JS `TieredCache`: an isolate-wide
//! L1 (a [`Store`] holding each value's payload: JSON text, or raw bytes
//! for a JS `Uint8Array`) in front of Redis,
//! reached over the Upstash REST protocol (hosted Upstash or
//! `edgecache-bridge`). Every rule is the core's, not a copy:
//!
//! * requests and strict decoding of answers: [`crate::rest`];
//! * Redis keys: [`Layout`] (`<prefix>:v:r|key`, the same keys the JS
//!   `TieredCache` uses, so both read each other's values);
//! * values in Redis: [`Signer`] envelopes bound to prefix, key and scope, exactly
//!   what the JS `Signer` seals: JSON payloads (encoding `0x01`, through
//!   [`EdgeCache::get`]/[`EdgeCache::set`]) or raw bytes (`0x00`, what the JS
//!   side stores for a `Uint8Array`: [`EdgeCache::get_bytes`]/[`EdgeCache::set_bytes`]);
//! * how long L1 keeps an L2 value: [`promotion_ttl`]; when a read or
//!   write under way may put its value in L1: [`Fence`] (the JS side's
//!   rule too); how counters read: [`parse_counter`]; when to stop
//!   calling a failing Redis: [`Breaker`];
//! * coherence across isolates: the invalidation log and the lease,
//!   [`Log`](crate::Log) and [`Lease`] (docs/REDIS.md, "Coherence across
//!   isolates"): every mutation appends its entry in its own pipeline, an
//!   L1 hit whose lease has expired reads the log first, and any request
//!   to Redis made anyway reads it along.
//! * tags (issue 15, docs/REDIS.md "Tags"): [`check_tags`],
//!   versions at [`Kind::Tag`] keys, envelopes of format version 3
//!   ([`EdgeCache::set_with_tags`], [`EdgeCache::invalidate_tags`]). **A
//!   tagged entry is never kept in this binding's L1**: each read of it
//!   goes to Redis and checks its tags' versions there (a second round
//!   trip), so an invalidation is seen at once, not after `maxStaleness`;
//!   untagged entries are cached in L1 as before.
//!
//! The I/O sits behind [`Transport`], so the tier's logic is tested on the
//! host (`cargo test --features worker`) with an in-memory Redis; on wasm32
//! the transport is `worker::Fetch` and [`EdgeCache::from_env`] reads the
//! bindings.
//!
//! **No locks, nothing a panic could corrupt.** wasm is single-threaded:
//! the state is `RefCell`s borrowed for one synchronous step at a time,
//! never across an `.await`, so requests interleaving in one isolate never
//! meet a borrowed cell. A panic aborts the instance and worker-build's
//! reset hook starts a fresh one: the L1 is then empty, never half-written.
//!
//! **No I/O shared across requests.** Every Redis call is a fetch made by
//! the request that needs it; concurrent misses of one key in different
//! requests each fetch (the JS side's single-flight would make one request
//! wait on another's I/O, which Workers forbid). Requests share only plain
//! data: the L1 bytes, counters, the breaker and the lease (each request
//! that needs a log read makes its own; the [`Lease`] takes overlapping
//! reads finishing in any order).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::Clock;
use crate::coherence::lease::{
    new_writer_id, CoherenceStats, Lease, LeaseConfig, Outcome, ReadTicket, DEFAULT_MAX_AWAY,
};
use crate::coherence::log::{Command, Log, Op};
use crate::envelope::{Encoding, Opened, Signer};
use crate::error::{Error, Result};
use crate::fence::{Fence, Ticket};
use crate::layout::{Kind, Layout, PatternScope};
use crate::lru::Limits;
use crate::rest::{command_body, decode_command, decode_pipeline, pipeline_body, Arg, Reply};
use crate::scope::Scope;
use crate::secure_key::decode_secret;
use crate::store::{Config, Stats, Store};
use crate::tags::check_tags;
use crate::tier::{parse_counter, promotion_ttl, Breaker, BreakerState};

mod settings;
pub use settings::{Settings, DEFAULT_L1_TTL, DEFAULT_PREFIX, DEFAULT_TIMEOUT, MAX_MAX_STALENESS};

#[cfg(target_arch = "wasm32")]
mod fetch;
#[cfg(target_arch = "wasm32")]
pub use fetch::FetchTransport;

/// A boxed future, as [`Transport`] returns it (not `Send`: wasm is
/// single-threaded).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// How the tier reaches Redis: `POST /` and `POST /pipeline` of the
/// Upstash REST protocol.
pub trait Transport {
    /// Posts `body` (a JSON command, [`command_body`]) to `/` with the
    /// token and `Upstash-Encoding: base64`; resolves to the HTTP status
    /// and body, or an `L2_TIMEOUT`/`L2_HTTP` error when no answer came.
    fn post(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>>;

    /// As [`Transport::post`], to `/pipeline`: `body` is a JSON array of
    /// commands ([`pipeline_body`]), run in order (a mutation and its log
    /// entry; a request and the log read riding along).
    fn pipeline(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>>;
}

/// Which tier answered a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// This isolate's memory.
    L1,
    /// Redis.
    L2,
}

impl Tier {
    /// `"l1"` or `"l2"`, as the example Worker's `x-cache-tier` header says.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::L2 => "l2",
        }
    }
}

/// A value as stored, whatever its kind: what [`EdgeCache::lookup_raw`]
/// answers when the caller does not know which kind a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Raw {
    /// UTF-8 JSON text (any JS value but bytes; [`EdgeCache::set`]).
    Json(Vec<u8>),
    /// Raw bytes (a JS `Uint8Array`; [`EdgeCache::set_bytes`]).
    Bytes(Vec<u8>),
}

/// A value found, and the tier it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit<T> {
    /// The value.
    pub value: T,
    /// Where it was found.
    pub tier: Tier,
}

/// L2 figures, for the whole cache (every scope), as the JS
/// `TieredCache.stats().l2` counts them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct L2Stats {
    /// Reads Redis answered with a valid value.
    pub hits: u64,
    /// Reads Redis answered with nothing (or an expired envelope).
    pub misses: u64,
    /// Values that failed to open: never served, not deleted.
    pub rejected: u64,
    /// Writes that reached Redis.
    pub writes: u64,
    /// Errors by code (`L2_TIMEOUT`, `L2_HTTP`, ...).
    pub errors: BTreeMap<String, u64>,
}

/// Coherence figures (docs/REDIS.md, "Coherence across isolates"), as the
/// JS `TieredCache.stats().coherence` counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoherenceFigures {
    /// `maxStaleness`, ms.
    pub max_staleness: u64,
    /// The lease's counters: log reads, failures, entries applied, gaps
    /// by reason, L1 hits served or refused while the log was unreadable.
    pub log: CoherenceStats,
    /// L1 entries dropped by invalidations (entries, patterns and gaps).
    pub invalidated: u64,
}

/// What tags did ([`EdgeCache::invalidate_tags`]), for the whole cache,
/// as the JS `TieredCache.stats().tags` counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TagStats {
    /// Tags invalidated by this cache (each tag counted).
    pub invalidations: u64,
    /// Entries read from Redis that carried a tag invalidated since they
    /// were written (or whose tags' versions could not be read): misses,
    /// never served.
    pub invalidated: u64,
    /// Times Redis held a tag version below one this isolate had seen (a
    /// rollback: counted, not believed; the higher one is kept).
    pub rollbacks: u64,
}

/// What [`EdgeCache::stats`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct TierStats {
    /// The L1 figures of the whole isolate cache.
    pub l1: Stats,
    /// Redis, if the cache is tiered.
    pub l2: Option<L2Stats>,
    /// The breaker's state and how many times it opened, if tiered.
    pub breaker: Option<(BreakerState, u64)>,
    /// Coherence, if tiered and not turned off (`EDGECACHE_MAX_STALENESS=off`).
    pub coherence: Option<CoherenceFigures>,
    /// Tags.
    pub tags: TagStats,
}

impl TierStats {
    /// The figures as JSON, with the JS side's names (`hitRate`, `maxBytes`...).
    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.l1.counters;
        let l1 = serde_json::json!({
            "hits": c.hits, "misses": c.misses, "hitRate": self.l1.hit_rate,
            "sets": c.sets, "deletes": c.deletes, "evictions": c.evictions,
            "expirations": c.expirations, "entries": c.entries, "bytes": c.bytes,
            "maxEntries": self.l1.limits.max_entries, "maxBytes": self.l1.limits.max_bytes,
        });
        let coherence = self.coherence.map(|c| {
            let s = &c.log;
            serde_json::json!({
                "maxStaleness": c.max_staleness, "reads": s.reads, "failures": s.failures,
                "entries": s.entries, "own": s.own, "gaps": s.gaps, "trimmed": s.trimmed,
                "behind": s.behind, "lost": s.lost, "epoch": s.epoch, "away": s.away,
                "unreadable": s.unreadable, "staleServed": s.stale_served, "refused": s.refused,
                "invalidated": c.invalidated,
            })
        });
        serde_json::json!({
            "l1": l1,
            "l2": self.l2,
            "breaker": self.breaker.map(|(s, opened)| serde_json::json!({ "state": s.as_str(), "opened": opened })),
            "coherence": coherence,
            "tags": self.tags,
        })
    }
}

/// The clock the tier runs on (ms since the Unix epoch on Workers).
#[derive(Clone)]
pub struct Now(Rc<dyn Fn() -> u64>);

impl Now {
    /// A clock from any function.
    pub fn new(f: impl Fn() -> u64 + 'static) -> Self {
        Now(Rc::new(f))
    }
}

impl Clock for Now {
    fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Now {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Now")
    }
}

/// L1 keeps counters apart from values, under the key prefixed with
/// U+0000 (as the JS `TieredCache` does).
const COUNTER: &str = "\u{0}";

/// A value as L1 holds it: its [`Encoding`] byte, then its payload.
fn held(encoding: Encoding, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.push(encoding as u8);
    v.extend_from_slice(payload);
    v
}

/// Keys starting with U+0000 are L1's counter namespace: refused, as the
/// JS `TieredCache` refuses them.
fn check_key(key: &str) -> Result<()> {
    if key.starts_with(COUNTER) {
        return Err(Error::InvalidKey(format!(
            "{key:?}: keys starting with U+0000 are reserved (L1 keeps counters there)"
        )));
    }
    Ok(())
}

/// The error for a value read as the wrong kind: JSON through
/// [`EdgeCache::get_bytes`], bytes through [`EdgeCache::get`].
fn wrong_kind(key: &str, found: Encoding) -> Error {
    Error::Unserializable(match found {
        Encoding::Bytes => format!(
            "the value of {key:?} is raw bytes (a Uint8Array on the JS side): read it with get_bytes"
        ),
        Encoding::Json => format!("the value of {key:?} is JSON: read it with get or lookup"),
    })
}

struct L2 {
    transport: Box<dyn Transport>,
    signer: Signer,
    layout: Layout,
    breaker: RefCell<Breaker>,
    /// The lease on L1 (`None`: coherence off).
    coherence: Option<Coherence>,
    /// The tag versions this isolate has read from Redis.
    tags: RefCell<TagTable>,
}

/// The most tag versions an isolate remembers (past it, it forgets them
/// all: they only save a round trip and guard against rollbacks).
const MAX_TAG_VERSIONS: usize = 100_000;

/// Tag versions read from Redis, by tag key ([`Kind::Tag`]). L1 holds no
/// tagged entry, so these vouch for nothing there: they pick the versions
/// a write seals (checked by the `MGET` after its `SET`) and catch
/// versions going back.
#[derive(Default)]
struct TagTable {
    versions: HashMap<String, TagVersion>,
    /// Raised each time the table learns a version: a request's answer is
    /// compared with what was learned after it was sent.
    epoch: u64,
}

/// What the isolate knows of one tag's version.
struct TagVersion {
    /// The highest seen.
    v: u64,
    /// Known to be current (a log entry of the tag makes it unknown until
    /// read again).
    known: bool,
    /// The table's epoch when `v` was learned.
    at: u64,
}

impl TagTable {
    /// The version of `tk` if it is known to be current.
    fn known(&self, tk: &str) -> Option<u64> {
        self.versions.get(tk).and_then(|e| e.known.then_some(e.v))
    }

    /// `tk` was invalidated: its version is no longer known (the highest
    /// seen is kept, against rollbacks).
    fn forget(&mut self, tk: &str) {
        if let Some(e) = self.versions.get_mut(tk) {
            e.known = false;
        }
    }

    fn forget_all(&mut self) {
        for e in self.versions.values_mut() {
            e.known = false;
        }
    }
}

/// A tag version as Redis answers it: absent (0), an integer reply `>= 0`
/// (INCR), or a canonical decimal string; at most 2^53 - 1, as the JS side
/// reads them (a number). `None` for anything else.
fn tag_version(reply: &Reply) -> Option<u64> {
    const MAX: u64 = (1 << 53) - 1;
    let v = match reply {
        Reply::Nil => 0,
        Reply::Int(n) => u64::try_from(*n).ok()?,
        Reply::Bytes(b) => {
            let canonical = !b.is_empty()
                && b.len() <= 16
                && b.iter().all(u8::is_ascii_digit)
                && (b[0] != b'0' || b.len() == 1);
            if !canonical {
                return None;
            }
            std::str::from_utf8(b).ok()?.parse().ok()?
        }
        Reply::Array(_) => return None,
    };
    (v <= MAX).then_some(v)
}

/// The coherence state of the cache (shared by its scope views): plain
/// data, borrowed for one synchronous step at a time.
struct Coherence {
    lease: RefCell<Lease>,
    /// L1 entries dropped by invalidations.
    invalidated: Cell<u64>,
    /// The binding's monotonic clock, ms (never compared with another
    /// process's).
    clock: Now,
}

struct Inner {
    l1: RefCell<Store<Vec<u8>, Now>>,
    l2: Option<L2>,
    now: Now,
    l1_ttl: u64,
    default_ttl: u64,
    stats: RefCell<L2Stats>,
    tag_stats: Cell<TagStats>,
    warned: RefCell<Vec<&'static str>>,
    log: Box<dyn Fn(&str)>,
    /// The in-flight rule, by Redis key: a read that overlapped a write or
    /// delete of its key may hold the older value, so it does not put it
    /// in L1 (plain data; no request waits on another's I/O).
    fence: RefCell<Fence>,
}

/// A read under the fence; released when dropped (a cancelled request too).
struct Reading<'a> {
    fence: &'a RefCell<Fence>,
    ticket: Ticket,
}

impl<'a> Reading<'a> {
    fn begin(fence: &'a RefCell<Fence>) -> Self {
        let ticket = fence.borrow_mut().read();
        Reading { fence, ticket }
    }

    fn may_promote(&self, redis_key: &str) -> bool {
        self.fence.borrow().may_promote(redis_key, self.ticket)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.fence.borrow_mut().read_done();
    }
}

/// A mutation of one Redis key under the fence; `done` says whether it may
/// promote its own result. Released when dropped (a cancelled request too).
struct Writing<'a> {
    fence: &'a RefCell<Fence>,
    key: Option<String>,
    ticket: Ticket,
}

impl<'a> Writing<'a> {
    fn begin(fence: &'a RefCell<Fence>, redis_key: &str) -> Self {
        let ticket = fence.borrow_mut().write(redis_key);
        Writing {
            fence,
            key: Some(redis_key.to_owned()),
            ticket,
        }
    }

    fn done(mut self) -> bool {
        let key = self.key.take().unwrap_or_default();
        self.fence.borrow_mut().write_done(&key, self.ticket)
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.fence.borrow_mut().write_done(&key, self.ticket);
        }
    }
}

/// A mutation of the keys a Redis glob matches (a pattern delete) under
/// the fence; released when dropped.
struct WritingPattern<'a>(&'a RefCell<Fence>, Ticket);

impl<'a> WritingPattern<'a> {
    fn begin(fence: &'a RefCell<Fence>, pattern: &str) -> Self {
        let ticket = fence.borrow_mut().write_pattern(pattern);
        WritingPattern(fence, ticket)
    }
}

impl Drop for WritingPattern<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().write_pattern_done(self.1);
    }
}

impl Inner {
    fn warn_once(&self, kind: &'static str, message: &str) {
        let mut w = self.warned.borrow_mut();
        if !w.contains(&kind) {
            w.push(kind);
            drop(w);
            (self.log)(&format!("edgecache: {message}"));
        }
    }

    fn count_tags(&self, f: impl FnOnce(&mut TagStats)) {
        let mut t = self.tag_stats.get();
        f(&mut t);
        self.tag_stats.set(t);
    }

    fn error(&self, e: &Error) {
        *self
            .stats
            .borrow_mut()
            .errors
            .entry(e.code().to_owned())
            .or_default() += 1;
    }
}

/// A two-tier cache for a Rust Worker: this isolate's L1 in front of Redis
/// (or L1 alone when no Redis is configured). Cheap to clone: clones and
/// scope views share one cache.
///
/// Values travel as JSON through serde, as the JS `TieredCache` writes
/// them, so a Rust Worker and a JS Worker (or Node) sharing a prefix,
/// signing keys and Redis read each other's values.
#[derive(Clone)]
pub struct EdgeCache {
    inner: Rc<Inner>,
    scope: Option<Scope>,
}

impl std::fmt::Debug for EdgeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeCache")
            .field("tiered", &self.is_tiered())
            .field("scope", &self.scope)
            .finish()
    }
}

/// The signing keys of `EDGECACHE_SIGNING_KEYS`: `kid:key,kid:key`, the
/// first one signs, every one verifies.
///
/// ```
/// # #[cfg(feature = "worker")] {
/// let s = edgecache::worker::signing_keys("k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8, k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8").unwrap();
/// assert_eq!(s.current_key_id(), "k2");
/// assert_eq!(edgecache::worker::signing_keys("k1").unwrap_err().code(), "INVALID_OPTION");
/// # }
/// ```
pub fn signing_keys(text: &str) -> Result<Signer> {
    let bad = |reason: String| Error::InvalidOption {
        name: "EDGECACHE_SIGNING_KEYS",
        reason,
    };
    let mut signer: Option<Signer> = None;
    // The JS fromEnv's rule: every comma-separated item is `kid:secret`,
    // none empty, no id twice; errors name the binding.
    for item in text.split(',').map(str::trim) {
        let (kid, key) = item
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| {
                bad("must be `kid:key` or `kid:key,kid:key,...` (the first one signs), each key 32 random bytes in base64url".into())
            })?;
        let secret = decode_secret(key).map_err(|e| bad(format!("key {kid:?}: {e}")))?;
        match signer.as_mut() {
            None => signer = Some(Signer::new(kid, &secret).map_err(|e| bad(e.to_string()))?),
            Some(s) if s.key_ids().any(|k| k == kid) => {
                return Err(bad(format!("names the key id {kid:?} twice")))
            }
            Some(s) => s.add_key(kid, &secret).map_err(|e| bad(e.to_string()))?,
        }
    }
    signer.ok_or_else(|| {
        bad("no key: set `kid:secret` (wrangler secret put EDGECACHE_SIGNING_KEYS)".into())
    })
}

impl EdgeCache {
    /// A cache from [`Settings`]: tiered over `transport` when the settings
    /// name a Redis, else L1 only. `log` receives the one-time warnings.
    /// `now` serves as the coherence lease's clock too
    /// ([`EdgeCache::with_clocks`]).
    pub fn new(
        settings: &Settings,
        transport: Option<Box<dyn Transport>>,
        now: Now,
        log: Box<dyn Fn(&str)>,
    ) -> Result<Self> {
        Self::with_clocks(settings, transport, now.clone(), now, log)
    }

    /// As [`EdgeCache::new`], with the lease measured on `monotonic` (ms
    /// from any origin, never going back: `performance.now()` on Workers),
    /// while `now` (ms since the Unix epoch) dates the values' expiry,
    /// which every isolate reads.
    pub fn with_clocks(
        settings: &Settings,
        transport: Option<Box<dyn Transport>>,
        now: Now,
        monotonic: Now,
        log: Box<dyn Fn(&str)>,
    ) -> Result<Self> {
        let config = Config {
            limits: Limits {
                max_entries: settings.max_entries,
                max_bytes: settings.max_bytes,
            },
            default_ttl: 0,
        };
        let l2 = match (&settings.redis, transport) {
            (Some(_), Some(transport)) => {
                let keys = settings.signing_keys.as_deref().ok_or_else(|| Error::InvalidOption {
                    name: "EDGECACHE_SIGNING_KEYS",
                    reason: "a Redis tier needs signing keys, never unsigned values: run `wrangler secret put EDGECACHE_SIGNING_KEYS` with `k1:<32 random bytes, base64url>` (or put it in .dev.vars)".into(),
                })?;
                let layout = Layout::new(&settings.prefix)?;
                let coherence = match settings.max_staleness {
                    None => None,
                    Some(max_staleness) => {
                        let config = LeaseConfig {
                            max_staleness,
                            max_away: DEFAULT_MAX_AWAY.max(max_staleness),
                            strict: !settings.stale_while_unreachable,
                            ..LeaseConfig::default()
                        };
                        let lease = Lease::new(Log::new(&layout), &new_writer_id()?, config)?;
                        Some(Coherence {
                            lease: RefCell::new(lease),
                            invalidated: Cell::new(0),
                            clock: monotonic,
                        })
                    }
                };
                Some(L2 {
                    transport,
                    signer: signing_keys(keys)?,
                    layout,
                    breaker: RefCell::new(Breaker::new(
                        settings.breaker_threshold,
                        settings.breaker_cooldown,
                    )?),
                    coherence,
                    tags: RefCell::default(),
                })
            }
            _ => None,
        };
        Ok(EdgeCache {
            inner: Rc::new(Inner {
                l1: RefCell::new(Store::new(config, now.clone())),
                l2,
                now,
                l1_ttl: settings.l1_ttl,
                default_ttl: settings.default_ttl,
                stats: RefCell::new(L2Stats::default()),
                tag_stats: Cell::new(TagStats::default()),
                warned: RefCell::new(Vec::new()),
                log,
                fence: RefCell::new(Fence::new()),
            }),
            scope: None,
        })
    }

    /// Whether a Redis tier is configured.
    pub fn is_tiered(&self) -> bool {
        self.inner.l2.is_some()
    }

    /// A view of `scope` (narrowing this view's scope, never widening it):
    /// its keys never collide with the root's or another scope's, in L1 and
    /// in Redis, and its envelopes are bound to it.
    pub fn scope(&self, scope: &Scope) -> Result<EdgeCache> {
        let scope = match &self.scope {
            None => scope.clone(),
            Some(mine) => mine.narrow(scope)?,
        };
        Ok(EdgeCache {
            inner: self.inner.clone(),
            scope: Some(scope),
        })
    }

    /// The scope of this view (`None`: the root).
    pub fn current_scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    fn now(&self) -> u64 {
        self.inner.now.now_ms()
    }

    // ---- L1, one synchronous borrow at a time ----

    fn l1_get(&self, key: &str) -> Option<Vec<u8>> {
        let mut l1 = self.inner.l1.borrow_mut();
        match &self.scope {
            None => l1.get(key).cloned(),
            Some(s) => l1.scoped(s).get(key).cloned(),
        }
    }

    fn l1_set(&self, key: &str, value: Vec<u8>, ttl: u64) {
        let mut l1 = self.inner.l1.borrow_mut();
        let r = match &self.scope {
            None => l1.set(key, value, Some(ttl)),
            Some(s) => l1.scoped(s).set(key, value, Some(ttl)),
        };
        if r.is_err() {
            // Too large for L1: it stays in Redis only.
            match &self.scope {
                None => l1.delete(key),
                Some(s) => l1.scoped(s).delete(key),
            };
        }
    }

    fn l1_has(&self, key: &str) -> bool {
        let mut l1 = self.inner.l1.borrow_mut();
        match &self.scope {
            None => l1.has(key),
            Some(s) => l1.scoped(s).has(key),
        }
    }

    fn l1_delete(&self, key: &str) -> bool {
        self.l1_delete_in(self.scope.as_ref(), key)
    }

    fn l1_delete_in(&self, scope: Option<&Scope>, key: &str) -> bool {
        let mut l1 = self.inner.l1.borrow_mut();
        match scope {
            None => l1.delete(key),
            Some(s) => l1.scoped(s).delete(key),
        }
    }

    fn l1_delete_pattern(&self, glob: &str) -> usize {
        self.l1_delete_pattern_in(self.scope.as_ref(), glob)
    }

    fn l1_delete_pattern_in(&self, scope: Option<&Scope>, glob: &str) -> usize {
        let mut l1 = self.inner.l1.borrow_mut();
        match scope {
            None => l1.delete_pattern(glob),
            Some(s) => l1.scoped(s).delete_pattern(glob),
        }
    }

    // ---- L2 ----

    /// One command to Redis through the breaker; failures are counted.
    async fn command(&self, l2: &L2, args: &[Arg<'_>]) -> Result<Reply> {
        let mut replies = self.post(l2, command_body(args), None).await?;
        match replies.pop() {
            Some(Ok(r)) => Ok(r),
            Some(Err(m)) => Err(self.redis_error(m)),
            None => Err(Error::L2Protocol("no reply".into())),
        }
    }

    /// A Redis error answered to one of this cache's own commands, counted.
    fn redis_error(&self, message: String) -> Error {
        let e = Error::L2Redis(message);
        self.inner.error(&e);
        e
    }

    /// `POST /` (`pipeline`: `None`) or `POST /pipeline` of so many
    /// commands, through the breaker: each command's reply or Redis error
    /// (not counted here). Failures of the request are counted.
    async fn post(
        &self,
        l2: &L2,
        body: String,
        pipeline: Option<usize>,
    ) -> Result<Vec<Result<Reply, String>>> {
        let now = self.now();
        if !l2.breaker.borrow_mut().allow(now) {
            let e = Error::L2Unavailable;
            self.inner.error(&e);
            return Err(e);
        }
        let result = match pipeline {
            None => l2.transport.post(body).await.and_then(|(status, body)| {
                match decode_command(status, &body, true) {
                    Ok(r) => Ok(vec![Ok(r)]),
                    Err(Error::L2Redis(m)) => Ok(vec![Err(m)]),
                    Err(e) => Err(e),
                }
            }),
            Some(n) => l2
                .transport
                .pipeline(body)
                .await
                .and_then(|(status, body)| decode_pipeline(status, &body, n, true)),
        };
        match &result {
            // A Redis error is an answer: the tier is up.
            Ok(_) => l2.breaker.borrow_mut().success(),
            Err(e) => {
                self.inner.error(e);
                // A refused token is a configuration error, not an outage:
                // said at once, not after the breaker's threshold.
                if let Error::L2Auth(_) = e {
                    self.inner.warn_once("auth", &e.to_string());
                }
                // Some masters of a Redis Cluster failed, the others
                // answer: not a failure of the whole tier.
                let partial = matches!(e, Error::L2Http { partial: true, .. });
                if !partial && l2.breaker.borrow_mut().failure(self.now()) {
                    self.inner.warn_once(
                        "breaker",
                        &format!("the redis tier failed repeatedly ({}): serving from L1 until it recovers", e.code()),
                    );
                }
            }
        }
        result
    }

    /// The log commands to append to a mutation of `targets` (none with
    /// coherence off), after the mutation in its pipeline: the entry, then
    /// its `PUBLISH` ([`Log::publish`](crate::Log::publish)).
    fn append(&self, l2: &L2, op: Op, targets: &[&str]) -> Result<Vec<Command>> {
        match &l2.coherence {
            None => Ok(Vec::new()),
            Some(c) => {
                let mut lease = c.lease.borrow_mut();
                let mut commands = lease.append(op, targets)?;
                // For the caches that hold a stream open (push), after the XADD.
                commands.push(lease.log().publish(lease.id(), op, targets));
                Ok(commands)
            }
        }
    }

    /// The request's own commands (a read, or a mutation and its log
    /// entry) in one request, with the log read riding along when the
    /// lease is half-way to expiry; that read is finished and applied to
    /// L1 before this returns. Each own command's reply (Redis errors
    /// counted), or the request's error.
    async fn round_trip(&self, l2: &L2, own: &[Vec<Arg<'_>>]) -> Result<Vec<Result<Reply>>> {
        let mut ticket: Option<ReadTicket> = None;
        if let Some(c) = &l2.coherence {
            let now = c.clock.now_ms();
            // Never read (the first read, alone, failed): along too.
            let fresh_from = c.lease.borrow().fresh_from();
            let half = c.lease.borrow().config().max_staleness / 2;
            if fresh_from.map_or(true, |t| now.saturating_sub(t) >= half) {
                ticket = Some(c.lease.borrow_mut().begin_read(now));
            }
        }
        let Some(ticket) = ticket else {
            if let [one] = own {
                return match self.command(l2, one).await {
                    Ok(r) => Ok(vec![Ok(r)]),
                    Err(e @ Error::L2Redis(_)) => Ok(vec![Err(e)]),
                    Err(e) => Err(e),
                };
            }
            let replies = self.send(l2, own, None).await?;
            return Ok(self.own_replies(replies));
        };
        let mut replies = match self.send(l2, own, Some(&ticket)).await {
            Ok(r) => r,
            Err(e) => {
                self.lease(l2).failed_read(ticket);
                return Err(e);
            }
        };
        let log = replies.split_off(own.len());
        self.finish_read(l2, ticket, &log);
        Ok(self.own_replies(replies))
    }

    /// The cache's first log read, alone, before a request to Redis takes
    /// its place in the fence: that read drops all of L1 and keeps what is
    /// under way from promoting (it cannot vouch for it), so riding along
    /// it would keep this request's answer out of L1. Tried alone once
    /// (by each request that finds none tried yet): if it fails, Redis is
    /// likely away, and later reads ride along, at no extra round trip.
    async fn first_read(&self, l2: &L2) {
        if let Some(c) = &l2.coherence {
            let tried = {
                let lease = c.lease.borrow();
                let s = lease.stats();
                lease.fresh_from().is_some() || s.reads + s.failures > 0
            };
            if !tried {
                self.read_log(l2, c).await;
            }
        }
    }

    /// `own`, then the read's commands, as one pipeline.
    async fn send(
        &self,
        l2: &L2,
        own: &[Vec<Arg<'_>>],
        read: Option<&ReadTicket>,
    ) -> Result<Vec<Result<Reply, String>>> {
        let log: Vec<Vec<Arg<'_>>> = read.map_or_else(Vec::new, |t| {
            t.commands().iter().map(Command::args).collect()
        });
        let all: Vec<&[Arg<'_>]> = own.iter().chain(&log).map(Vec::as_slice).collect();
        self.post(l2, pipeline_body(&all), Some(all.len())).await
    }

    fn own_replies(&self, replies: Vec<Result<Reply, String>>) -> Vec<Result<Reply>> {
        replies
            .into_iter()
            .map(|r| r.map_err(|m| self.redis_error(m)))
            .collect()
    }

    fn lease<'a>(&self, l2: &'a L2) -> std::cell::RefMut<'a, Lease> {
        l2.coherence
            .as_ref()
            .expect("a log read with coherence on")
            .lease
            .borrow_mut()
    }

    /// A log read alone; whether it succeeded (then L1 is as the log says).
    async fn read_log(&self, l2: &L2, c: &Coherence) -> bool {
        let ticket = c.lease.borrow_mut().begin_read(c.clock.now_ms());
        match self.send(l2, &[], Some(&ticket)).await {
            Ok(replies) => self.finish_read(l2, ticket, &replies),
            Err(_) => {
                c.lease.borrow_mut().failed_read(ticket);
                false
            }
        }
    }

    /// Finishes a log read with its replies and applies what it found;
    /// whether it succeeded (a malformed answer is a failed read, counted).
    fn finish_read(&self, l2: &L2, ticket: ReadTicket, replies: &[Result<Reply, String>]) -> bool {
        let done = self.lease(l2).finish_read(ticket, replies);
        match done {
            Ok(out) => {
                self.apply(l2, out);
                true
            }
            Err(_) => false,
        }
    }

    /// Drops from L1 what changed elsewhere, and tells the fence, so that
    /// no read or write under way puts an older value back.
    fn apply(&self, l2: &L2, out: Outcome) {
        let Some(c) = &l2.coherence else { return };
        {
            let mut tags = l2.tags.borrow_mut();
            // A gap (a flush too: a new epoch) vouches for no version; the
            // highest seen are kept all the same (a version that goes back
            // is what a rollback looks like), as in JS.
            if out.everything {
                tags.forget_all();
            }
            // Tags invalidated elsewhere: read again when needed.
            for tk in &out.tags {
                tags.forget(tk);
            }
        }
        let mut dropped = 0;
        let mut everything = out.everything;
        let mut fence = self.inner.fence.borrow_mut();
        for key in &out.keys {
            if everything {
                break;
            }
            match l2.layout.parse(key) {
                Some((kind, scope, k)) => {
                    let held = match kind {
                        Kind::Value => self.l1_delete_in(scope.as_ref(), k),
                        Kind::Counter => {
                            self.l1_delete_in(scope.as_ref(), &format!("{COUNTER}{k}"))
                        }
                        // `parse` reads entries' keys only.
                        Kind::Tag => false,
                    };
                    dropped += u64::from(held);
                    fence.invalidate(key);
                }
                // Not a key of this layout (the log checks it): unknown reach.
                None => everything = true,
            }
        }
        for glob in &out.globs {
            if everything {
                break;
            }
            match l2.layout.parse_pattern(glob) {
                Some(PatternScope::Scoped(scope, g)) => {
                    // Both kinds: L1 keeps counters under U+0000.
                    let n = self.l1_delete_pattern_in(scope.as_ref(), g)
                        + self.l1_delete_pattern_in(scope.as_ref(), &format!("{COUNTER}{g}"));
                    dropped += n as u64;
                    let t = fence.write_pattern(glob);
                    fence.write_pattern_done(t);
                }
                Some(PatternScope::Everything) | None => everything = true,
            }
        }
        if everything {
            let mut l1 = self.inner.l1.borrow_mut();
            dropped += l1.len() as u64;
            l1.clear();
            fence.invalidate_all();
        }
        c.invalidated.set(c.invalidated.get() + dropped);
    }

    /// Whether an L1 hit must be vouched for first: coherence is on and
    /// the lease has expired (synchronous: the hot path of a fresh lease).
    fn lease_expired(&self) -> bool {
        self.inner
            .l2
            .as_ref()
            .and_then(|l2| l2.coherence.as_ref())
            .is_some_and(|c| c.lease.borrow().needs_read(c.clock.now_ms()))
    }

    /// Before an L1 hit: whether L1 may serve it. Reads the log first when
    /// the lease has expired; if that read fails, the mode decides (served
    /// and counted by default, refused in strict mode).
    async fn vouch(&self) -> bool {
        let Some((l2, c)) = self
            .inner
            .l2
            .as_ref()
            .and_then(|l2| l2.coherence.as_ref().map(|c| (l2, c)))
        else {
            return true;
        };
        if !c.lease.borrow().needs_read(c.clock.now_ms()) {
            return true;
        }
        self.read_log(l2, c).await || c.lease.borrow_mut().serve_unreachable()
    }

    /// Opens what Redis holds for `key`: its encoding, payload, expiry and
    /// tags with the versions they were written under (empty for an
    /// untagged entry, format version 2), or `None` (expired, or rejected
    /// and counted, never served).
    fn open(&self, l2: &L2, key: &str, raw: &[u8]) -> Option<Opened> {
        let reject = |why: &str| {
            self.inner.stats.borrow_mut().rejected += 1;
            self.inner.warn_once(
                "rejected",
                &format!(
                    "a value in redis for key {key:?} failed to open ({why}); it was not served"
                ),
            );
            None
        };
        match l2.signer.open_tagged_in(
            crate::envelope::Context::tier(&l2.layout, Kind::Value),
            self.scope.as_ref(),
            key,
            raw,
            self.now(),
        ) {
            Ok(o) => o,
            Err(e) => reject(e.code()),
        }
    }

    /// The JSON bytes of `key`, and the tier that had them. A value of raw
    /// bytes is an error (`UNSERIALIZABLE_VALUE`: use [`Self::get_bytes`]).
    pub async fn get_json(&self, key: &str) -> Result<Option<Hit<Vec<u8>>>> {
        self.get_as(key, Encoding::Json).await
    }

    /// The raw bytes of `key` (what the JS side stores for a `Uint8Array`)
    /// and the tier that had them. A JSON value is an error
    /// (`UNSERIALIZABLE_VALUE`: use [`Self::lookup`]).
    pub async fn lookup_bytes(&self, key: &str) -> Result<Option<Hit<Vec<u8>>>> {
        self.get_as(key, Encoding::Bytes).await
    }

    /// The raw bytes of `key`: L1, else Redis (then kept in L1).
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lookup_bytes(key).await?.map(|h| h.value))
    }

    /// The value of `key` as stored, JSON or bytes, and the tier that had
    /// it (one read, for callers that serve either kind).
    pub async fn lookup_raw(&self, key: &str) -> Result<Option<Hit<Raw>>> {
        Ok(self.get_held(key).await?.map(
            |Hit {
                 value: (e, p),
                 tier,
             }| Hit {
                value: match e {
                    Encoding::Json => Raw::Json(p),
                    Encoding::Bytes => Raw::Bytes(p),
                },
                tier,
            },
        ))
    }

    /// The payload of `key` if it has `encoding` (else an error naming the
    /// reader for its kind), and the tier that had it.
    async fn get_as(&self, key: &str, encoding: Encoding) -> Result<Option<Hit<Vec<u8>>>> {
        let Some(Hit {
            value: (found, payload),
            tier,
        }) = self.get_held(key).await?
        else {
            return Ok(None);
        };
        if found != encoding {
            return Err(wrong_kind(key, found));
        }
        Ok(Some(Hit {
            value: payload,
            tier,
        }))
    }

    /// The encoding and payload of `key`, and the tier that had them.
    async fn get_held(&self, key: &str) -> Result<Option<Hit<(Encoding, Vec<u8>)>>> {
        check_key(key)?;
        // An L1 hit is served while the lease vouches for it (else after a
        // log read, which may drop it; strict mode may refuse it).
        let serve_l1 = !self.lease_expired() || !self.l1_has(key) || self.vouch().await;
        if let Some(mut v) = serve_l1.then(|| self.l1_get(key)).flatten() {
            // Always written by `held`; anything else is not served.
            if let Some(encoding) = v.first().copied().and_then(Encoding::from_byte) {
                v.remove(0);
                return Ok(Some(Hit {
                    value: (encoding, v),
                    tier: Tier::L1,
                }));
            }
        }
        let Some(l2) = &self.inner.l2 else {
            return Ok(None);
        };
        let rk = l2.layout.key(Kind::Value, self.scope.as_ref(), key);
        self.first_read(l2).await;
        let reading = Reading::begin(&self.inner.fence);
        let get = [vec!["GET".into(), rk.as_str().into()]];
        let raw = match self.round_trip(l2, &get).await.map(|mut r| r.remove(0)) {
            Ok(Ok(r)) => r,
            Ok(Err(_)) | Err(_) => return Ok(None), // fail open: counted, a miss
        };
        let found = match &raw {
            Reply::Nil => None,
            Reply::Bytes(b) => self.open(l2, key, b),
            _ => {
                self.inner.stats.borrow_mut().rejected += 1;
                None
            }
        };
        let Some(opened) = found else {
            self.inner.stats.borrow_mut().misses += 1;
            return Ok(None);
        };
        let (encoding, expires_at) = (opened.encoding(), opened.expires_at());
        if !opened.tags().is_empty() {
            // A tagged entry: served only if no tag was invalidated since it
            // was written, by versions read after the GET answered; never
            // kept in L1 (read from Redis each time).
            if !self.tags_current(l2, opened.tags()).await {
                self.inner.stats.borrow_mut().misses += 1;
                return Ok(None);
            }
            self.inner.stats.borrow_mut().hits += 1;
            return Ok(Some(Hit {
                value: (encoding, opened.into_payload()),
                tier: Tier::L2,
            }));
        }
        let payload = opened.into_payload();
        self.inner.stats.borrow_mut().hits += 1;
        // Not if a write or delete of the key overlapped: this may be older.
        if reading.may_promote(&rk) {
            if let Some(ttl) = promotion_ttl(self.inner.l1_ttl, expires_at, self.now()) {
                self.l1_set(key, held(encoding, &payload), ttl);
            }
        }
        Ok(Some(Hit {
            value: (encoding, payload),
            tier: Tier::L2,
        }))
    }

    /// The value of `key` and where it was found. A value that does not
    /// deserialize as `T` is an error (`UNSERIALIZABLE_VALUE`).
    pub async fn lookup<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Hit<T>>> {
        match self.get_json(key).await? {
            None => Ok(None),
            Some(Hit { value, tier }) => serde_json::from_slice(&value)
                .map(|value| Some(Hit { value, tier }))
                .map_err(|e| {
                    Error::Unserializable(format!("the value of {key:?} is not this type: {e}"))
                }),
        }
    }

    /// The value of `key`: L1, else Redis (then kept in L1).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(self.lookup(key).await?.map(|h| h.value))
    }

    /// Stores `value` with the default TTL.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.set_with_ttl(key, value, self.inner.default_ttl).await
    }

    /// Stores `value` for `ttl` ms (`0`: no expiry): sealed and `SET` in
    /// Redis with `PX`, then kept in L1 (for at most the L1 TTL). When
    /// Redis fails, the value lands in L1 only and the error is counted.
    pub async fn set_with_ttl<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: u64,
    ) -> Result<()> {
        let json = serde_json::to_vec(value).map_err(|e| Error::Unserializable(e.to_string()))?;
        self.put(key, Encoding::Json, &json, ttl).await
    }

    /// Stores raw bytes with the default TTL; the JS side reads them as a
    /// `Uint8Array`.
    pub async fn set_bytes(&self, key: &str, value: &[u8]) -> Result<()> {
        self.put(key, Encoding::Bytes, value, self.inner.default_ttl)
            .await
    }

    /// Stores raw bytes for `ttl` ms (`0`: no expiry), as
    /// [`Self::set_with_ttl`] stores JSON.
    pub async fn set_bytes_with_ttl(&self, key: &str, value: &[u8], ttl: u64) -> Result<()> {
        self.put(key, Encoding::Bytes, value, ttl).await
    }

    async fn put(&self, key: &str, encoding: Encoding, payload: &[u8], ttl: u64) -> Result<()> {
        check_key(key)?;
        let now = self.now();
        let expires_at = if ttl > 0 { now.saturating_add(ttl) } else { 0 };
        if let Some(l2) = &self.inner.l2 {
            let sealed = l2.signer.seal_encoded(
                crate::envelope::Context::tier(&l2.layout, Kind::Value),
                self.scope.as_ref(),
                key,
                encoding,
                payload,
                expires_at,
            )?;
            let rk = l2.layout.key(Kind::Value, self.scope.as_ref(), key);
            // What L1 held is older than this write.
            self.l1_delete(key);
            self.first_read(l2).await;
            let writing = Writing::begin(&self.inner.fence, &rk);
            let px = i64::try_from(ttl).unwrap_or(i64::MAX);
            let mut args: Vec<Arg<'_>> =
                vec!["SET".into(), rk.as_str().into(), sealed.as_str().into()];
            if ttl > 0 {
                args.extend([Arg::Str("PX"), Arg::Int(px)]);
            }
            // Its log entry in the same pipeline: a write others cannot
            // learn of is a failed one (counted; the value stays in L1).
            let entry = self.append(l2, Op::Set, &[&rk])?;
            let mut own = vec![args];
            own.extend(entry.iter().map(Command::args));
            let written = self
                .round_trip(l2, &own)
                .await
                .is_ok_and(|r| r.iter().all(Result::is_ok));
            if written {
                self.inner.stats.borrow_mut().writes += 1;
            }
            // A later write or delete of the key began meanwhile: it is newer.
            if !writing.done() {
                return Ok(());
            }
        }
        if let Some(l1_ttl) = promotion_ttl(self.inner.l1_ttl, expires_at, self.now()) {
            self.l1_set(key, held(encoding, payload), l1_ttl);
        }
        Ok(())
    }

    /// Stores `value` for `ttl` ms (`0`: no expiry) with `tags`: an entry
    /// that [`Self::invalidate_tags`] of any of them invalidates, in every
    /// isolate and binding sharing the Redis (the JS `set(key, value, { ttl,
    /// tags })`). It is sealed under the tags' versions (read from Redis
    /// first where this isolate does not know them), and the versions are
    /// read again after the `SET`, in the same pipeline: if one rose
    /// meanwhile (an invalidation ran), it is sealed and set again under it,
    /// at most twice more (after that it stays invalidated: a miss).
    ///
    /// A tagged entry is never kept in L1: every read of it goes to Redis
    /// and checks its tags there (one more round trip). Without Redis, or
    /// when Redis fails, it is not cached at all (fail open: counted, the
    /// older value of `key` gone from L1). No tags: [`Self::set_with_ttl`].
    /// `INVALID_TAG` (before anything is written) for a tag that breaks the
    /// rule ([`check_tags`]).
    pub async fn set_with_tags<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: u64,
        tags: &[&str],
    ) -> Result<()> {
        let json = serde_json::to_vec(value).map_err(|e| Error::Unserializable(e.to_string()))?;
        self.put_tagged(key, Encoding::Json, &json, ttl, tags).await
    }

    /// Stores raw bytes for `ttl` ms (`0`: no expiry) with `tags`, as
    /// [`Self::set_with_tags`] stores JSON.
    pub async fn set_bytes_with_tags(
        &self,
        key: &str,
        value: &[u8],
        ttl: u64,
        tags: &[&str],
    ) -> Result<()> {
        self.put_tagged(key, Encoding::Bytes, value, ttl, tags)
            .await
    }

    async fn put_tagged(
        &self,
        key: &str,
        encoding: Encoding,
        payload: &[u8],
        ttl: u64,
        tags: &[&str],
    ) -> Result<()> {
        check_key(key)?;
        let tags = check_tags(tags)?;
        if tags.is_empty() {
            return self.put(key, encoding, payload, ttl).await;
        }
        let Some(l2) = &self.inner.l2 else {
            // L1 keeps no tagged entry: the older value goes, nothing else.
            self.l1_delete(key);
            return Ok(());
        };
        let now = self.now();
        let expires_at = if ttl > 0 { now.saturating_add(ttl) } else { 0 };
        let scope = self.scope.as_ref().map(Scope::encode);
        let seal = |versions: &[u64]| {
            let pairs: Vec<(&str, u64)> = tags
                .iter()
                .map(String::as_str)
                .zip(versions.iter().copied())
                .collect();
            l2.signer.seal_bound(
                crate::envelope::Context::tier(&l2.layout, Kind::Value),
                scope.as_deref(),
                key,
                encoding,
                payload,
                expires_at,
                &pairs,
            )
        };
        // What sealing refuses does not depend on the versions: refused
        // before any I/O.
        seal(&vec![0; tags.len()])?;
        let rk = l2.layout.key(Kind::Value, self.scope.as_ref(), key);
        let tks: Vec<String> = tags.iter().map(|t| self.tag_key(l2, t)).collect();
        // What L1 held is older than this write.
        self.l1_delete(key);
        self.first_read(l2).await;
        // Reads that overlap the write keep what they read out of L1.
        let writing = Writing::begin(&self.inner.fence, &rk);
        let written = self.write_tagged(l2, &rk, &tks, ttl, &seal).await.is_ok();
        drop(writing);
        if written {
            self.inner.stats.borrow_mut().writes += 1;
        }
        Ok(())
    }

    /// The `SET` of a tagged entry and its retries ([`Self::set_with_tags`]);
    /// errors are counted where they arise.
    async fn write_tagged(
        &self,
        l2: &L2,
        rk: &str,
        tks: &[String],
        ttl: u64,
        seal: &dyn Fn(&[u64]) -> Result<String>,
    ) -> Result<()> {
        let known: Vec<Option<u64>> = {
            let t = l2.tags.borrow();
            tks.iter().map(|k| t.known(k)).collect()
        };
        let unknown: Vec<&str> = tks
            .iter()
            .zip(&known)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        let mut fetched = if unknown.is_empty() {
            Vec::new()
        } else {
            self.fetch_versions(l2, &unknown).await?
        }
        .into_iter();
        let mut versions: Vec<u64> = known
            .iter()
            .map(|v| v.or_else(|| fetched.next()).unwrap_or(0))
            .collect();
        let px = i64::try_from(ttl).unwrap_or(i64::MAX);
        for _attempt in 0..3 {
            let sealed = seal(&versions)?;
            let mut set: Vec<Arg<'_>> = vec!["SET".into(), rk.into(), sealed.as_str().into()];
            if ttl > 0 {
                set.extend([Arg::Str("PX"), Arg::Int(px)]);
            }
            let mut mget: Vec<Arg<'_>> = vec!["MGET".into()];
            mget.extend(tks.iter().map(|k| Arg::Str(k)));
            // Its log entry in the same pipeline, as for any write.
            let entry = self.append(l2, Op::Set, &[rk])?;
            let mut own = vec![set, mget];
            own.extend(entry.iter().map(Command::args));
            let sent = self.tag_epoch(l2);
            let mut replies = self.round_trip(l2, &own).await?.into_iter();
            let set = replies.next();
            let current = replies.next();
            // The SET and the log entry: a write others cannot learn of failed.
            replies.try_for_each(|r| r.map(drop))?;
            set.unwrap_or_else(|| Err(Error::L2Protocol("no reply".into())))?;
            let current = self.versions_in(l2, tks, current, sent)?;
            let mut moved = false;
            for (v, c) in versions.iter_mut().zip(current) {
                if c > *v {
                    *v = c;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        Ok(())
    }

    /// Invalidates every entry of this view's scope that carries one of
    /// `tags`, in every isolate and binding sharing the Redis (the JS
    /// `invalidateTags`): one `INCR` of each tag's version and a log entry,
    /// in one pipeline, whatever the number of entries (nothing is
    /// scanned: entries are checked when read). Once it returns, no
    /// isolate serves such an entry written before it; entries written
    /// after it with the tag are served as usual. A tag lives in one scope
    /// (the root's tags are the root's only). Returns the number of
    /// distinct tags invalidated.
    ///
    /// `INVALID_TAG` for a tag that breaks the rule; Redis errors are
    /// returned, as [`Self::delete`] returns them: the entries would
    /// otherwise stay valid. Without Redis there is nothing to do (L1 keeps
    /// no tagged entry).
    pub async fn invalidate_tags(&self, tags: &[&str]) -> Result<usize> {
        let tags = check_tags(tags)?;
        if tags.is_empty() {
            return Ok(0);
        }
        let n = tags.len();
        let Some(l2) = &self.inner.l2 else {
            self.inner.count_tags(|t| t.invalidations += n as u64);
            return Ok(n);
        };
        let tks: Vec<String> = tags.iter().map(|t| self.tag_key(l2, t)).collect();
        {
            let mut t = l2.tags.borrow_mut();
            for tk in &tks {
                t.forget(tk);
            }
        }
        self.first_read(l2).await;
        let refs: Vec<&str> = tks.iter().map(String::as_str).collect();
        let entry = self.append(l2, Op::Tag, &refs)?;
        let mut own: Vec<Vec<Arg<'_>>> = tks
            .iter()
            .map(|k| vec!["INCR".into(), k.as_str().into()])
            .collect();
        own.extend(entry.iter().map(Command::args));
        let sent = self.tag_epoch(l2);
        let mut replies = self.round_trip(l2, &own).await?.into_iter();
        for tk in &tks {
            match replies.next() {
                Some(Ok(r @ Reply::Int(_))) => {
                    self.learn(l2, tk, &r, sent).ok_or_else(|| {
                        Error::L2Protocol(format!("INCR of the tag version {tk:?} answered {r:?}"))
                    })?;
                }
                Some(Err(e)) => return Err(e),
                _ => {
                    let e = Error::L2Protocol("INCR of a tag version answered no integer".into());
                    self.inner.error(&e);
                    return Err(e);
                }
            }
        }
        // Raised, but others would not learn of it: failed.
        replies.try_for_each(|r| r.map(drop))?;
        self.inner.count_tags(|t| t.invalidations += n as u64);
        Ok(n)
    }

    /// The Redis key of `tag`'s version in this view's scope.
    fn tag_key(&self, l2: &L2, tag: &str) -> String {
        l2.layout.key(Kind::Tag, self.scope.as_ref(), tag)
    }

    /// Takes a tag version Redis answered to a request sent at the table's
    /// epoch `sent`: the version to hold entries to, the highest seen (a
    /// lower one is a rollback: counted, not believed; unless a higher one
    /// was learned after the request was sent: then the answer is older,
    /// not a rollback), or `None` if it is not a version at all (counted;
    /// then nothing of the tag is served).
    fn learn(&self, l2: &L2, tk: &str, reply: &Reply, sent: u64) -> Option<u64> {
        let Some(r) = tag_version(reply) else {
            self.inner
                .error(&Error::L2Protocol("a malformed tag version".into()));
            self.inner.warn_once(
                "tag-version",
                &format!("a tag version in redis ({tk:?}) is not an integer; entries with that tag are not served"),
            );
            return None;
        };
        let mut t = l2.tags.borrow_mut();
        t.epoch += 1;
        let at = t.epoch;
        let Some(e) = t.versions.get_mut(tk) else {
            if t.versions.len() >= MAX_TAG_VERSIONS {
                t.versions.clear();
            }
            t.versions.insert(
                tk.to_owned(),
                TagVersion {
                    v: r,
                    known: true,
                    at,
                },
            );
            return Some(r);
        };
        let seen = e.v;
        if r < seen && e.at > sent {
            // Answered before the higher version was learned.
            return Some(seen);
        }
        if r > seen {
            e.v = r;
            e.at = at;
        }
        e.known = true;
        drop(t);
        if r < seen {
            self.inner.count_tags(|t| t.rollbacks += 1);
            self.inner.warn_once(
                "tag-rollback",
                &format!("a tag version in redis went back ({tk:?}: {r} after {seen}); the higher one is kept (counted in stats().tags.rollbacks)"),
            );
        }
        Some(r.max(seen))
    }

    /// The table's epoch now: what [`Self::learn`] compares a request's
    /// answers with (take it before sending).
    fn tag_epoch(&self, l2: &L2) -> u64 {
        l2.tags.borrow().epoch
    }

    /// The versions of `tks` from one `MGET` reply (learned), or the error
    /// (counted).
    fn versions_in(
        &self,
        l2: &L2,
        tks: &[String],
        reply: Option<Result<Reply>>,
        sent: u64,
    ) -> Result<Vec<u64>> {
        let items = match reply {
            Some(Ok(Reply::Array(items))) if items.len() == tks.len() => items,
            Some(Err(e)) => return Err(e),
            _ => {
                let e = Error::L2Protocol("MGET of tag versions answered no array of them".into());
                self.inner.error(&e);
                return Err(e);
            }
        };
        tks.iter()
            .zip(&items)
            .map(|(tk, r)| {
                self.learn(l2, tk, r, sent).ok_or_else(|| {
                    Error::L2Protocol(format!("malformed tag version in redis for {tk:?}"))
                })
            })
            .collect()
    }

    /// The current versions of `tks`, read from Redis now (`MGET`).
    async fn fetch_versions(&self, l2: &L2, tks: &[&str]) -> Result<Vec<u64>> {
        let mut mget: Vec<Arg<'_>> = vec!["MGET".into()];
        mget.extend(tks.iter().map(|k| Arg::Str(k)));
        let sent = self.tag_epoch(l2);
        let reply = self.round_trip(l2, &[mget]).await?.into_iter().next();
        let owned: Vec<String> = tks.iter().map(|k| (*k).to_owned()).collect();
        self.versions_in(l2, &owned, reply, sent)
    }

    /// Whether an entry read from Redis with `tags` (and the versions it
    /// was written under) is still valid, by versions read now, after the
    /// read answered: so an invalidation acknowledged before the read began
    /// is seen. Not valid if the versions cannot be read (the error
    /// counted); invalid ones (a tag invalidated since, or a malformed
    /// version) are counted in `tags.invalidated`, as in JS.
    async fn tags_current(&self, l2: &L2, tags: &[(String, u64)]) -> bool {
        let keys: Vec<String> = tags.iter().map(|(t, _)| self.tag_key(l2, t)).collect();
        let mut mget: Vec<Arg<'_>> = vec!["MGET".into()];
        mget.extend(keys.iter().map(|k| Arg::Str(k)));
        let sent = self.tag_epoch(l2);
        let items = match self.round_trip(l2, &[mget]).await.map(|mut r| r.remove(0)) {
            Ok(Ok(Reply::Array(items))) if items.len() == keys.len() => items,
            Ok(Ok(_)) => {
                self.inner.error(&Error::L2Protocol(
                    "MGET of tag versions answered no array of them".into(),
                ));
                return false;
            }
            Ok(Err(_)) | Err(_) => return false,
        };
        let mut valid = true;
        for ((tk, (_, recorded)), r) in keys.iter().zip(tags).zip(&items) {
            // Every version learned (rollbacks seen), even past an invalid one.
            match self.learn(l2, tk, r, sent) {
                Some(current) if *recorded >= current => {}
                _ => valid = false,
            }
        }
        if !valid {
            self.inner.count_tags(|t| t.invalidated += 1);
        }
        valid
    }

    /// Deletes `key` (its value and its counter) in L1 and Redis; whether
    /// anything was deleted. Redis errors are returned: a delete that never
    /// reached Redis would let the value come back from there.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let local = self.l1_delete(key) | self.l1_delete(&format!("{COUNTER}{key}"));
        let Some(l2) = &self.inner.l2 else {
            return Ok(local);
        };
        let v = l2.layout.key(Kind::Value, self.scope.as_ref(), key);
        let n = l2.layout.key(Kind::Counter, self.scope.as_ref(), key);
        self.first_read(l2).await;
        // Reads and writes that overlap the delete put nothing in L1.
        let (wv, wn) = (
            Writing::begin(&self.inner.fence, &v),
            Writing::begin(&self.inner.fence, &n),
        );
        let entry = self.append(l2, Op::Delete, &[&v, &n])?;
        let mut own = vec![vec!["UNLINK".into(), v.as_str().into(), n.as_str().into()]];
        own.extend(entry.iter().map(Command::args));
        let r = self.round_trip(l2, &own).await;
        drop((wv, wn));
        let mut replies = r?.into_iter();
        let gone = match replies.next() {
            Some(Ok(Reply::Int(n))) => n > 0,
            Some(Err(e)) => return Err(e),
            _ => return Err(Error::L2Protocol("UNLINK answered no integer".into())),
        };
        // Deleted, but others would not learn of it: failed.
        replies.try_for_each(|r| r.map(drop))?;
        self.inner.stats.borrow_mut().writes += 1;
        Ok(gone || local)
    }

    /// Adds `by` to the counter `key` (Redis `INCRBY`, shared by every
    /// isolate; L1 alone without Redis) and returns the new value. Redis
    /// errors are returned: a count kept locally would be wrong.
    pub async fn incr(&self, key: &str, by: i64) -> Result<i64> {
        check_key(key)?;
        let ck = format!("{COUNTER}{key}");
        let Some(l2) = &self.inner.l2 else {
            let mut l1 = self.inner.l1.borrow_mut();
            return match &self.scope {
                None => l1.incr(&ck, by),
                Some(s) => l1.scoped(s).incr(&ck, by),
            };
        };
        let rk = l2.layout.key(Kind::Counter, self.scope.as_ref(), key);
        self.first_read(l2).await;
        let writing = Writing::begin(&self.inner.fence, &rk);
        let entry = self.append(l2, Op::Incr, &[&rk])?;
        let mut own = vec![vec!["INCRBY".into(), rk.as_str().into(), Arg::Int(by)]];
        own.extend(entry.iter().map(Command::args));
        let mut replies = self.round_trip(l2, &own).await?.into_iter();
        let first = replies
            .next()
            .unwrap_or_else(|| Err(Error::L2Protocol("no reply".into())));
        let n = match first {
            Ok(Reply::Int(n)) => n,
            Ok(_) => return Err(Error::L2Protocol("INCRBY answered no integer".into())),
            Err(Error::L2Redis(m)) if m.contains("overflow") => return Err(Error::Overflow),
            Err(Error::L2Redis(m)) if m.contains("not an integer") => {
                return Err(Error::NotAnInteger)
            }
            Err(e) => return Err(e),
        };
        // Counted, but others would not learn of it: failed.
        replies.try_for_each(|r| r.map(drop))?;
        self.inner.stats.borrow_mut().writes += 1;
        // Unless a later increment or delete of the counter began meanwhile.
        if writing.done() {
            self.l1_set(&ck, n.to_string().into_bytes(), self.inner.l1_ttl);
        }
        Ok(n)
    }

    /// The counter `key` (L1, else Redis), or `None`. Redis errors are
    /// returned: an outage is not "no counter".
    pub async fn counter(&self, key: &str) -> Result<Option<i64>> {
        check_key(key)?;
        let ck = format!("{COUNTER}{key}");
        let serve_l1 = !self.lease_expired() || !self.l1_has(&ck) || self.vouch().await;
        if let Some(v) = serve_l1.then(|| self.l1_get(&ck)).flatten() {
            return Ok(parse_counter(&v));
        }
        let Some(l2) = &self.inner.l2 else {
            return Ok(None);
        };
        let rk = l2.layout.key(Kind::Counter, self.scope.as_ref(), key);
        self.first_read(l2).await;
        // An increment or delete that overlaps this read keeps its count out of L1.
        let reading = Reading::begin(&self.inner.fence);
        let get = [vec!["GET".into(), rk.as_str().into()]];
        let reply = self
            .round_trip(l2, &get)
            .await
            .and_then(|mut r| r.remove(0));
        match reply {
            Ok(Reply::Bytes(b)) => {
                // One rule for both bindings (tests/fixtures/counters.json).
                let n = parse_counter(&b);
                if n.is_none() {
                    self.inner.stats.borrow_mut().rejected += 1;
                    self.inner.warn_once(
                        "counter",
                        &format!(
                            "the counter {key:?} in redis is not an integer; it was not served"
                        ),
                    );
                } else if reading.may_promote(&rk) {
                    self.l1_set(&ck, b, self.inner.l1_ttl);
                }
                Ok(n)
            }
            Ok(Reply::Nil) => Ok(None),
            Ok(_) => Err(Error::L2Protocol(
                "GET of a counter answered no string".into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// Deletes the keys of this view whose cache key matches the Redis
    /// glob `pattern` (values and counters), in L1 and in Redis (`SCAN
    /// MATCH` + `UNLINK` in batches, never `KEYS`). The glob applies to
    /// this view's keys only ([`Layout::pattern`] escapes the rest).
    /// Returns how many keys went (Redis's count when tiered).
    pub async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let drop_local = || {
            self.l1_delete_pattern(pattern) + self.l1_delete_pattern(&format!("{COUNTER}{pattern}"))
        };
        let local = drop_local();
        let Some(l2) = &self.inner.l2 else {
            return Ok(local as u64);
        };
        let matcher = l2.layout.pattern(self.scope.as_ref(), pattern);
        self.first_read(l2).await;
        // No key it matches is promoted while it runs: reads between the
        // SCAN and the UNLINK find the values still there.
        let writing = WritingPattern::begin(&self.inner.fence, &matcher);
        let mut cursor = b"0".to_vec();
        let mut gone = 0u64;
        let result: Result<()> = async {
            loop {
                let c = String::from_utf8_lossy(&cursor).into_owned();
                let reply = self
                    .command(
                        l2,
                        &[
                            "SCAN".into(),
                            c.as_str().into(),
                            "MATCH".into(),
                            matcher.as_str().into(),
                            "COUNT".into(),
                            Arg::Int(1000),
                        ],
                    )
                    .await?;
                let (next, batch) = match reply {
                    Reply::Array(mut parts) if parts.len() == 2 => {
                        let batch = parts.pop();
                        match (parts.pop(), batch) {
                            (Some(Reply::Bytes(n)), Some(Reply::Array(keys))) => (n, keys),
                            _ => {
                                return Err(Error::L2Protocol(
                                    "a SCAN answer is [cursor, keys]".into(),
                                ))
                            }
                        }
                    }
                    _ => return Err(Error::L2Protocol("a SCAN answer is [cursor, keys]".into())),
                };
                let keys: Vec<String> = batch
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect();
                if !keys.is_empty() {
                    let mut args: Vec<Arg<'_>> = vec!["UNLINK".into()];
                    args.extend(keys.iter().map(|k| Arg::Str(k)));
                    if let Reply::Int(n) = self.command(l2, &args).await? {
                        gone += n.max(0) as u64;
                    }
                }
                cursor = next;
                if cursor == b"0" {
                    return Ok(());
                }
            }
        }
        .await;
        // Then its log entry: the glob SCAN matched (others drop what it
        // covers from their L1); a delete others cannot learn of failed.
        let result = match result {
            Ok(()) => match self.append(l2, Op::Pattern, &[&matcher]) {
                Ok(entry) if entry.is_empty() => Ok(()),
                Ok(entry) => {
                    let own: Vec<Vec<Arg<'_>>> = entry.iter().map(Command::args).collect();
                    self.round_trip(l2, &own)
                        .await
                        .and_then(|r| r.into_iter().try_for_each(|r| r.map(drop)))
                }
                Err(e) => Err(e),
            },
            e => e,
        };
        drop(writing);
        result?;
        self.inner.stats.borrow_mut().writes += 1;
        Ok(gone)
    }

    /// Statistics: L1 for the whole isolate cache, L2 and the breaker.
    pub fn stats(&self) -> TierStats {
        let l1 = self.inner.l1.borrow().stats();
        match &self.inner.l2 {
            None => TierStats {
                l1,
                l2: None,
                breaker: None,
                coherence: None,
                tags: self.inner.tag_stats.get(),
            },
            Some(l2) => {
                let b = l2.breaker.borrow();
                TierStats {
                    l1,
                    l2: Some(self.inner.stats.borrow().clone()),
                    breaker: Some((b.state(), b.times_opened())),
                    coherence: l2.coherence.as_ref().map(|c| {
                        let lease = c.lease.borrow();
                        CoherenceFigures {
                            max_staleness: lease.config().max_staleness,
                            log: lease.stats(),
                            invalidated: c.invalidated.get(),
                        }
                    }),
                    tags: self.inner.tag_stats.get(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
