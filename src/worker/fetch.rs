//! The workers-rs half: Redis over `worker::Fetch`, the clock, the log, and
//! [`EdgeCache::from_env`] keeping one cache per isolate.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use worker::{AbortController, Delay, Env, Fetch, Headers, Method, Request, RequestInit};

use super::{BoxFuture, EdgeCache, Now, Settings, Transport};
use crate::error::{Error, Result};

/// Redis over the Upstash REST protocol with `worker::Fetch`, made by the
/// request that needs it (never shared across requests). A request that
/// takes longer than the timeout is aborted (`L2_TIMEOUT`).
#[derive(Clone)]
pub struct FetchTransport {
    url: String,
    token: String,
    timeout: u64,
}

impl std::fmt::Debug for FetchTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchTransport")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl FetchTransport {
    /// A transport to `url` (the REST endpoint) with `token`, aborting
    /// requests after `timeout` ms.
    pub fn new(url: &str, token: &str, timeout: u64) -> Self {
        FetchTransport {
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            timeout,
        }
    }

    async fn send(&self, path: &str, body: String) -> Result<(u16, Vec<u8>)> {
        let http = |e: worker::Error| Error::L2Http {
            status: 0,
            message: e.to_string(),
            partial: false,
        };
        let headers = Headers::new();
        headers
            .set("authorization", &format!("Bearer {}", self.token))
            .map_err(http)?;
        headers.set("upstash-encoding", "base64").map_err(http)?;
        headers
            .set("content-type", "application/json")
            .map_err(http)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let request =
            Request::new_with_init(&format!("{}/{path}", self.url), &init).map_err(http)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(request);
        let work = async {
            let mut response = fetch.send_with_signal(&signal).await.map_err(http)?;
            let status = response.status_code();
            let bytes = response.bytes().await.map_err(http)?;
            Ok((status, bytes))
        };
        match race(work, Delay::from(Duration::from_millis(self.timeout))).await {
            Some(r) => r,
            None => {
                controller.abort();
                Err(Error::L2Timeout(format!(
                    "no answer within {} ms",
                    self.timeout
                )))
            }
        }
    }
}

impl Transport for FetchTransport {
    fn post(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        Box::pin(self.send("", body))
    }

    fn pipeline(&self, body: String) -> BoxFuture<'_, Result<(u16, Vec<u8>)>> {
        Box::pin(self.send("pipeline", body))
    }
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `performance.now()`: monotonic ms (in workerd it advances on I/O,
    /// as `Date.now()` does), the lease's clock.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// `Some(a's output)` if `a` finishes first, `None` if `b` does.
async fn race<A: Future, B: Future>(a: A, b: B) -> Option<A::Output> {
    struct Race<A, B>(Pin<Box<A>>, Pin<Box<B>>);
    impl<A: Future, B: Future> Future for Race<A, B> {
        type Output = Option<A::Output>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if let Poll::Ready(v) = self.0.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            match self.1.as_mut().poll(cx) {
                Poll::Ready(_) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        }
    }
    Race(Box::pin(a), Box::pin(b)).await
}

/// The names [`EdgeCache::from_env`] reads (a change of any rebuilds the cache).
const NAMES: &[&str] = &[
    "EDGECACHE_REDIS_URL",
    "UPSTASH_REDIS_REST_URL",
    "EDGECACHE_REDIS_TOKEN",
    "UPSTASH_REDIS_REST_TOKEN",
    "EDGECACHE_SIGNING_KEYS",
    "EDGECACHE_PREFIX",
    "EDGECACHE_MAX_ENTRIES",
    "EDGECACHE_MAX_BYTES",
    "EDGECACHE_DEFAULT_TTL",
    "EDGECACHE_L1_TTL",
    "EDGECACHE_REDIS_TIMEOUT",
    "EDGECACHE_BREAKER_THRESHOLD",
    "EDGECACHE_BREAKER_COOLDOWN",
    "EDGECACHE_MAX_STALENESS",
    "EDGECACHE_STALE_WHILE_UNREACHABLE",
];

thread_local! {
    /// [`NAMES`] as JS strings, made once: the per-request check reads the
    /// bindings with them, without a Rust string crossing to JS per name
    /// (decoding the 15 names was a tenth of an L1 HIT's time in workerd).
    static KEYS: Vec<wasm_bindgen::JsValue> = NAMES.iter().map(|n| wasm_bindgen::JsValue::from_str(n)).collect();
    /// The isolate's cache and the bindings it was built from, as read (the
    /// JS values: compared with `===`, no copy into Rust). Touched only
    /// synchronously; a panic resets the whole instance, and this with it.
    static ISOLATE: RefCell<Option<(Vec<wasm_bindgen::JsValue>, EdgeCache)>> = const { RefCell::new(None) };
}

/// A binding's text: a var's or a secret's string, or a number's decimal
/// text as JS `String()` writes it (a TOML number in `[vars]` arrives as a
/// number; `Env::var` took it for unset, while the JS `fromEnv` reads it).
/// Anything else is refused, as `fromEnv` does.
fn text(name: &'static str, v: &wasm_bindgen::JsValue) -> Result<Option<String>> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    if let Some(s) = v.as_string() {
        return Ok(Some(s));
    }
    match v.as_f64() {
        Some(n) if n.is_finite() => Ok(js_sys::Number::from(n)
            .to_string_with_radix(10)
            .ok()
            .map(String::from)),
        _ => Err(Error::InvalidOption {
            name,
            reason: format!(
                "must be a string ([vars] in wrangler.toml, or a secret), got {}",
                v.js_typeof().as_string().unwrap_or_default()
            ),
        }),
    }
}

impl EdgeCache {
    /// The isolate's cache, built from the Worker's bindings on first use
    /// and kept for every later request of this isolate (so calling it per
    /// request is cheap); rebuilt only if the bindings change.
    ///
    /// Without `EDGECACHE_REDIS_URL` (or `UPSTASH_REDIS_REST_URL`) it is L1
    /// only, and says so once in the log. A Redis URL without a token, or
    /// without `EDGECACHE_SIGNING_KEYS`, is an error naming the
    /// `wrangler secret put` that fixes it: never an unsigned L2. The
    /// bindings are listed on [`Settings`].
    pub fn from_env(env: &Env) -> Result<EdgeCache> {
        let raw: Vec<wasm_bindgen::JsValue> = KEYS.with(|keys| {
            keys.iter()
                .map(|k| js_sys::Reflect::get(env, k).unwrap_or(wasm_bindgen::JsValue::UNDEFINED))
                .collect()
        });
        if let Some(cache) = ISOLATE.with(|c| {
            c.borrow()
                .as_ref()
                .filter(|(v, _)| *v == raw)
                .map(|(_, cache)| cache.clone())
        }) {
            return Ok(cache);
        }
        let values = NAMES
            .iter()
            .zip(&raw)
            .map(|(n, v)| text(n, v))
            .collect::<Result<Vec<Option<String>>>>()?;
        let settings = Settings::from_lookup(|name| {
            NAMES
                .iter()
                .position(|n| *n == name)
                .and_then(|i| values[i].clone())
        })?;
        let transport = settings.redis.as_ref().map(|r| {
            Box::new(FetchTransport::new(&r.url, &r.token, settings.timeout)) as Box<dyn Transport>
        });
        let now = Now::new(|| js_sys::Date::now() as u64);
        let monotonic = Now::new(|| performance_now() as u64);
        let log: Box<dyn Fn(&str)> = Box::new(|m: &str| worker::console_warn!("{}", m));
        let cache = EdgeCache::with_clocks(&settings, transport, now, monotonic, log)?;
        match &settings.redis {
            None => worker::console_log!(
                "edgecache: L1 only (this isolate's memory): set EDGECACHE_REDIS_URL, EDGECACHE_REDIS_TOKEN and EDGECACHE_SIGNING_KEYS for the Redis tier"
            ),
            Some(r) => worker::console_log!(
                "edgecache: L1 + Redis at {} (prefix {:?}), coherence {}",
                r.url,
                settings.prefix,
                match settings.max_staleness {
                    Some(ms) => format!("maxStaleness {ms} ms"),
                    None => "off".into(),
                }
            ),
        }
        ISOLATE.with(|c| *c.borrow_mut() = Some((raw, cache.clone())));
        Ok(cache)
    }
}
