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
//!   calling a failing Redis: [`Breaker`].
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
//! data: the L1 bytes, counters and the breaker.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::Clock;
use crate::envelope::{Encoding, Signer};
use crate::error::{Error, Result};
use crate::fence::{Fence, Ticket};
use crate::layout::{Kind, Layout};
use crate::lru::Limits;
use crate::rest::{command_body, decode_command, Arg, Reply};
use crate::scope::Scope;
use crate::secure_key::decode_secret;
use crate::store::{Config, Stats, Store};
use crate::tier::{parse_counter, promotion_ttl, Breaker, BreakerState};

mod settings;
pub use settings::{Settings, DEFAULT_L1_TTL, DEFAULT_PREFIX, DEFAULT_TIMEOUT};

#[cfg(target_arch = "wasm32")]
mod fetch;
#[cfg(target_arch = "wasm32")]
pub use fetch::FetchTransport;

/// A boxed future, as [`Transport`] returns it (not `Send`: wasm is
/// single-threaded).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// How the tier reaches Redis: one `POST /` of the Upstash REST protocol.
pub trait Transport {
    /// Posts `body` (a JSON command, [`command_body`]) with the token and
    /// `Upstash-Encoding: base64`; resolves to the HTTP status and body,
    /// or an `L2_TIMEOUT`/`L2_HTTP` error when no answer came.
    fn post(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>>;
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

/// What [`EdgeCache::stats`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct TierStats {
    /// The L1 figures of the whole isolate cache.
    pub l1: Stats,
    /// Redis, if the cache is tiered.
    pub l2: Option<L2Stats>,
    /// The breaker's state and how many times it opened, if tiered.
    pub breaker: Option<(BreakerState, u64)>,
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
        serde_json::json!({
            "l1": l1,
            "l2": self.l2,
            "breaker": self.breaker.map(|(s, opened)| serde_json::json!({ "state": s.as_str(), "opened": opened })),
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
}

struct Inner {
    l1: RefCell<Store<Vec<u8>, Now>>,
    l2: Option<L2>,
    now: Now,
    l1_ttl: u64,
    default_ttl: u64,
    stats: RefCell<L2Stats>,
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
    pub fn new(
        settings: &Settings,
        transport: Option<Box<dyn Transport>>,
        now: Now,
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
                Some(L2 {
                    transport,
                    signer: signing_keys(keys)?,
                    layout: Layout::new(&settings.prefix)?,
                    breaker: RefCell::new(Breaker::new(
                        settings.breaker_threshold,
                        settings.breaker_cooldown,
                    )?),
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

    fn l1_delete(&self, key: &str) -> bool {
        let mut l1 = self.inner.l1.borrow_mut();
        match &self.scope {
            None => l1.delete(key),
            Some(s) => l1.scoped(s).delete(key),
        }
    }

    fn l1_delete_pattern(&self, glob: &str) -> usize {
        let mut l1 = self.inner.l1.borrow_mut();
        match &self.scope {
            None => l1.delete_pattern(glob),
            Some(s) => l1.scoped(s).delete_pattern(glob),
        }
    }

    // ---- L2 ----

    /// One command to Redis through the breaker; failures are counted.
    async fn command(&self, l2: &L2, args: &[Arg<'_>]) -> Result<Reply> {
        let now = self.now();
        if !l2.breaker.borrow_mut().allow(now) {
            let e = Error::L2Unavailable;
            self.inner.error(&e);
            return Err(e);
        }
        let answer = l2.transport.post(command_body(args)).await;
        let result = answer.and_then(|(status, body)| decode_command(status, &body, true));
        match &result {
            // A Redis error is an answer: the tier is up.
            Ok(_) | Err(Error::L2Redis(_)) => l2.breaker.borrow_mut().success(),
            Err(e) => {
                self.inner.error(e);
                // A refused token is a configuration error, not an outage:
                // said at once, not after the breaker's threshold.
                if let Error::L2Auth(_) = e {
                    self.inner.warn_once("auth", &e.to_string());
                }
                if l2.breaker.borrow_mut().failure(self.now()) {
                    self.inner.warn_once(
                        "breaker",
                        &format!("the redis tier failed repeatedly ({}): serving from L1 until it recovers", e.code()),
                    );
                }
            }
        }
        if let Err(e @ Error::L2Redis(_)) = &result {
            self.inner.error(e);
        }
        result
    }

    /// Opens what Redis holds for `key`: its encoding, payload and expiry,
    /// or `None` (expired, or rejected and counted, never served).
    fn open(&self, l2: &L2, key: &str, raw: &[u8]) -> Option<(Encoding, Vec<u8>, u64)> {
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
        match l2.signer.open_in(
            crate::envelope::Context::tier(&l2.layout, Kind::Value),
            self.scope.as_ref(),
            key,
            raw,
            self.now(),
        ) {
            Ok(None) => None,
            Ok(Some(o)) => {
                let (encoding, expires_at) = (o.encoding(), o.expires_at());
                Some((encoding, o.into_payload(), expires_at))
            }
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
        if let Some(mut v) = self.l1_get(key) {
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
        let reading = Reading::begin(&self.inner.fence);
        let raw = match self.command(l2, &["GET".into(), rk.as_str().into()]).await {
            Ok(r) => r,
            Err(_) => return Ok(None), // fail open: counted, a miss
        };
        let found = match &raw {
            Reply::Nil => None,
            Reply::Bytes(b) => self.open(l2, key, b),
            _ => {
                self.inner.stats.borrow_mut().rejected += 1;
                None
            }
        };
        let Some((encoding, payload, expires_at)) = found else {
            self.inner.stats.borrow_mut().misses += 1;
            return Ok(None);
        };
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
            let writing = Writing::begin(&self.inner.fence, &rk);
            let px = i64::try_from(ttl).unwrap_or(i64::MAX);
            let mut args: Vec<Arg<'_>> =
                vec!["SET".into(), rk.as_str().into(), sealed.as_str().into()];
            if ttl > 0 {
                args.extend([Arg::Str("PX"), Arg::Int(px)]);
            }
            if self.command(l2, &args).await.is_ok() {
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
        // Reads and writes that overlap the delete put nothing in L1.
        let (wv, wn) = (
            Writing::begin(&self.inner.fence, &v),
            Writing::begin(&self.inner.fence, &n),
        );
        let r = self
            .command(l2, &["UNLINK".into(), v.as_str().into(), n.as_str().into()])
            .await;
        drop((wv, wn));
        let gone = match r? {
            Reply::Int(n) => n > 0,
            _ => return Err(Error::L2Protocol("UNLINK answered no integer".into())),
        };
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
        let writing = Writing::begin(&self.inner.fence, &rk);
        let n = match self
            .command(l2, &["INCRBY".into(), rk.as_str().into(), Arg::Int(by)])
            .await
        {
            Ok(Reply::Int(n)) => n,
            Ok(_) => return Err(Error::L2Protocol("INCRBY answered no integer".into())),
            Err(Error::L2Redis(m)) if m.contains("overflow") => return Err(Error::Overflow),
            Err(Error::L2Redis(m)) if m.contains("not an integer") => {
                return Err(Error::NotAnInteger)
            }
            Err(e) => return Err(e),
        };
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
        if let Some(v) = self.l1_get(&ck) {
            return Ok(parse_counter(&v));
        }
        let Some(l2) = &self.inner.l2 else {
            return Ok(None);
        };
        let rk = l2.layout.key(Kind::Counter, self.scope.as_ref(), key);
        // An increment or delete that overlaps this read keeps its count out of L1.
        let reading = Reading::begin(&self.inner.fence);
        match self.command(l2, &["GET".into(), rk.as_str().into()]).await {
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
            },
            Some(l2) => {
                let b = l2.breaker.borrow();
                TierStats {
                    l1,
                    l2: Some(self.inner.stats.borrow().clone()),
                    breaker: Some((b.state(), b.times_opened())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
