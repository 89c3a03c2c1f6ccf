//! wasm-bindgen glue for the rules of the Redis tier (js/tiered.ts): the
//! key layout ([`Layout`]), the circuit breaker ([`Breaker`]),
//! [`promotion_ttl`] and the in-flight rule ([`Fence`]). Thin: the core decides, this module converts. The
//! breaker's methods take and return numbers only, so calling it on every
//! L2 operation costs nothing next to the network.

use js_sys::Array;
use wasm_bindgen::prelude::*;

use crate::fence::Fence;
use crate::layout::{Kind, Layout, PatternScope};
use crate::scope::Scope;
use crate::tier::{parse_counter, promotion_ttl, Breaker, BreakerState};
use crate::wasm::to_js;

fn scope(tenant: Option<String>, user: Option<String>) -> Result<Option<Scope>, JsValue> {
    if tenant.is_none() && user.is_none() {
        return Ok(None);
    }
    Scope::new(tenant.as_deref(), user.as_deref())
        .map(Some)
        .map_err(to_js)
}

/// The Redis key layout of one prefix.
#[wasm_bindgen(js_name = LayoutCore)]
pub struct WasmLayout(Layout);

impl WasmLayout {
    /// One copy of the space's code for both exports.
    #[inline(never)]
    fn space_of(
        &self,
        kind: Kind,
        tenant: Option<String>,
        user: Option<String>,
    ) -> Result<String, JsValue> {
        Ok(self.0.space(kind, scope(tenant, user)?.as_ref()))
    }
}

#[wasm_bindgen(js_class = LayoutCore)]
impl WasmLayout {
    /// Throws `INVALID_OPTION` for a prefix outside `[A-Za-z0-9_.-]{1,64}`.
    #[wasm_bindgen(constructor)]
    pub fn new(prefix: &str) -> Result<WasmLayout, JsValue> {
        Layout::new(prefix).map(WasmLayout).map_err(to_js)
    }

    /// The prefix (the context the tier's envelopes are bound to).
    #[wasm_bindgen(getter)]
    pub fn prefix(&self) -> String {
        self.0.prefix().to_owned()
    }

    /// What the Redis keys of values (`counter` false) or counters in this
    /// scope start with; no tenant and no user is the root.
    pub fn space(
        &self,
        counter: bool,
        tenant: Option<String>,
        user: Option<String>,
    ) -> Result<String, JsValue> {
        let kind = if counter { Kind::Counter } else { Kind::Value };
        self.space_of(kind, tenant, user)
    }

    /// What the Redis keys of tags' versions (kind `g`) in this scope start
    /// with: a tag's key is this followed by the tag
    /// (`<prefix>:g:<space><tag>`); no tenant and no user is the root.
    #[wasm_bindgen(js_name = tagSpace)]
    pub fn tag_space(
        &self,
        tenant: Option<String>,
        user: Option<String>,
    ) -> Result<String, JsValue> {
        Ok(self.0.space(Kind::Tag, scope(tenant, user)?.as_ref()))
    }

    /// The `SCAN MATCH` pattern of `glob` in this scope (both kinds).
    pub fn pattern(
        &self,
        tenant: Option<String>,
        user: Option<String>,
        glob: &str,
    ) -> Result<String, JsValue> {
        Ok(self.0.pattern(scope(tenant, user)?.as_ref(), glob))
    }

    /// The `SCAN MATCH` pattern of the cache's keys (both kinds, every scope).
    pub fn everything(&self) -> String {
        self.0.everything()
    }

    /// Whether `redis_key` is a key of an entry this cache can have
    /// written (not a tag's version: `clear` leaves those).
    pub fn owns(&self, redis_key: &str) -> bool {
        self.0.parse(redis_key).is_some()
    }

    /// A Redis key of this layout read back: `[counter, tenant, user, key]`
    /// (`undefined` for a missing part), or `undefined` for a foreign key.
    pub fn parse(&self, redis_key: &str) -> JsValue {
        match self.0.parse(redis_key) {
            None => JsValue::UNDEFINED,
            Some((kind, scope, key)) => {
                let (t, u) = parts(scope.as_ref());
                Array::of4(
                    &JsValue::from_bool(kind == Kind::Counter),
                    &t,
                    &u,
                    &JsValue::from_str(key),
                )
                .into()
            }
        }
    }

    /// A glob of `pattern`/`everything` read back: `[tenant, user, glob]`,
    /// `null` for `everything()`, `undefined` for any other glob.
    #[wasm_bindgen(js_name = parsePattern)]
    pub fn parse_pattern(&self, glob: &str) -> JsValue {
        match self.0.parse_pattern(glob) {
            None => JsValue::UNDEFINED,
            Some(PatternScope::Everything) => JsValue::NULL,
            Some(PatternScope::Scoped(scope, g)) => {
                let (t, u) = parts(scope.as_ref());
                Array::of3(&t, &u, &JsValue::from_str(g)).into()
            }
        }
    }
}

fn parts(scope: Option<&Scope>) -> (JsValue, JsValue) {
    let js = |p: Option<&str>| p.map_or(JsValue::UNDEFINED, JsValue::from_str);
    (
        js(scope.and_then(Scope::tenant_id)),
        js(scope.and_then(Scope::user_id)),
    )
}

/// A circuit breaker (times in ms as numbers).
#[wasm_bindgen(js_name = BreakerCore)]
pub struct WasmBreaker(Breaker);

fn ms(t: f64) -> u64 {
    // Saturating: NaN and negative times read as 0.
    t.max(0.0) as u64
}

#[wasm_bindgen(js_class = BreakerCore)]
impl WasmBreaker {
    /// Opens after `threshold` consecutive failures, probes after `cooldown` ms.
    #[wasm_bindgen(constructor)]
    pub fn new(threshold: u32, cooldown: f64) -> Result<WasmBreaker, JsValue> {
        Breaker::new(threshold, ms(cooldown))
            .map(WasmBreaker)
            .map_err(to_js)
    }

    /// Whether a call may go to the tier at `now`.
    pub fn allow(&mut self, now: f64) -> bool {
        self.0.allow(ms(now))
    }

    /// A call succeeded.
    pub fn success(&mut self) {
        self.0.success()
    }

    /// A call failed; true if this opened the breaker.
    pub fn failure(&mut self, now: f64) -> bool {
        self.0.failure(ms(now))
    }

    /// 0 closed, 1 open, 2 half-open.
    pub fn state(&self) -> u8 {
        match self.0.state() {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }

    /// How many times it has opened.
    #[wasm_bindgen(js_name = timesOpened)]
    pub fn times_opened(&self) -> f64 {
        self.0.times_opened() as f64
    }
}

/// How long L1 may keep a value read from L2, in ms (`-1`: it has expired).
#[wasm_bindgen(js_name = promotionTtl)]
pub fn promotion_ttl_js(l1_ttl: f64, expires_at: f64, now: f64) -> f64 {
    promotion_ttl(ms(l1_ttl), ms(expires_at), ms(now)).map_or(-1.0, |t| t as f64)
}

/// The in-flight rule (tickets as numbers: exact up to 2^53 operations).
#[wasm_bindgen(js_name = FenceCore)]
pub struct WasmFence(Fence);

#[wasm_bindgen(js_class = FenceCore)]
impl WasmFence {
    /// A fence with nothing in flight.
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmFence {
        WasmFence(Fence::new())
    }

    /// A read begins: its ticket.
    pub fn read(&mut self) -> f64 {
        self.0.read() as f64
    }

    /// A read has finished.
    #[wasm_bindgen(js_name = readDone)]
    pub fn read_done(&mut self) {
        self.0.read_done()
    }

    /// Whether a read of `key` that began at `ticket` may promote now.
    #[wasm_bindgen(js_name = mayPromote)]
    pub fn may_promote(&self, key: &str, ticket: f64) -> bool {
        self.0.may_promote(key, ticket as u64)
    }

    /// A mutation of `key` begins: its ticket.
    pub fn write(&mut self, key: &str) -> f64 {
        self.0.write(key) as f64
    }

    /// The mutation of `key` begun at `ticket` has finished; whether it may
    /// promote its own result.
    #[wasm_bindgen(js_name = writeDone)]
    pub fn write_done(&mut self, key: &str, ticket: f64) -> bool {
        self.0.write_done(key, ticket as u64)
    }

    /// A mutation of the keys a Redis glob matches begins (pattern delete,
    /// clear): its ticket.
    #[wasm_bindgen(js_name = writePattern)]
    pub fn write_pattern(&mut self, pattern: &str) -> f64 {
        self.0.write_pattern(pattern) as f64
    }

    /// The pattern mutation begun at `ticket` has finished.
    #[wasm_bindgen(js_name = writePatternDone)]
    pub fn write_pattern_done(&mut self, ticket: f64) {
        self.0.write_pattern_done(ticket as u64)
    }

    /// `key` was changed elsewhere (the coherence log said so): reads of
    /// it in flight put nothing in L1.
    pub fn invalidate(&mut self, key: &str) {
        self.0.invalidate(key)
    }

    /// Everything may have changed elsewhere (a gap in the log): no read in
    /// flight puts anything in L1.
    #[wasm_bindgen(js_name = invalidateAll)]
    pub fn invalidate_all(&mut self) {
        self.0.invalidate_all()
    }
}

impl Default for WasmFence {
    fn default() -> Self {
        Self::new()
    }
}

/// An entry's tags checked against the rule of tags and deduplicated (the
/// first occurrence kept, in order): `INVALID_TAG` otherwise. JS checks
/// first that each is a string of well-formed Unicode (a lone surrogate
/// would cross as U+FFFD).
#[wasm_bindgen(js_name = checkTags)]
pub fn check_tags_js(tags: Vec<String>) -> Result<Vec<String>, JsValue> {
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    crate::tags::check_tags(&refs).map_err(to_js)
}

/// A counter's text as a number: `NaN` if it is not a counter (see
/// [`parse_counter`]), `±Infinity` for an integer past the safe range of JS
/// numbers (2^53 - 1), which a number cannot hold exactly.
#[wasm_bindgen(js_name = parseCounter)]
pub fn parse_counter_js(text: &str) -> f64 {
    const SAFE: u64 = (1 << 53) - 1;
    match parse_counter(text.as_bytes()) {
        None => f64::NAN,
        Some(n) if n.unsigned_abs() > SAFE => {
            if n < 0 {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }
        }
        Some(n) => n as f64,
    }
}
