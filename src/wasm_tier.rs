//! wasm-bindgen glue for the rules of the Redis tier (js/tiered.ts): the
//! key layout ([`Layout`]), the circuit breaker ([`Breaker`]) and
//! [`promotion_ttl`]. Thin: the core decides, this module converts. The
//! breaker's methods take and return numbers only, so calling it on every
//! L2 operation costs nothing next to the network.

use wasm_bindgen::prelude::*;

use crate::layout::{Kind, Layout};
use crate::scope::Scope;
use crate::tier::{promotion_ttl, Breaker, BreakerState};
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
        Ok(self.0.space(kind, scope(tenant, user)?.as_ref()))
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

    /// The `SCAN MATCH` pattern of everything under the prefix.
    pub fn everything(&self) -> String {
        self.0.everything()
    }
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
