//! The example Rust Worker: a read-through cache in front of an origin, on
//! `edgecache::worker` (L1 in this isolate's memory, Redis as L2 when the
//! bindings name one). `make dev` serves it on http://127.0.0.1:8787.
//!
//! * `GET /anything`: from the cache (`x-cache: HIT`, `x-cache-tier: l1 |
//!   l2`), or from the origin (`x-cache: MISS`), or a stale copy while the
//!   origin is asked again in the background (`x-cache: STALE`).
//!   `ORIGIN_URL` names the origin; without it, a deliberately slow demo
//!   origin in this Worker answers, so it all works offline.
//! * `GET /__edgecache/stats` (JSON) and `GET /__edgecache` (HTML): the
//!   cache's figures.
//! * `DELETE /__edgecache/purge?pattern=<glob>&tenant=&user=`: purges the
//!   keys that match the glob (pages, at the root), in L1 and L2; needs
//!   `Authorization: Bearer <EDGECACHE_ADMIN_TOKEN>` (401 without, 403
//!   wrong). Answers `{"pattern", "deleted"}`.
//! * `GET | PUT | DELETE /__edgecache/kv/<key>?tenant=&user=`: the cache as
//!   a JSON key-value store, same token: what a JS `TieredCache` with the
//!   same prefix and keys reads and writes too. `GET` answers the value
//!   (`x-cache-tier: l1 | l2`) or 404; `PUT` takes a JSON body and
//!   `&ttl=<ms>` (none: no expiry) and `&tags=a,b` (comma separated; a
//!   tag has no comma), answers 204. A body sent as
//!   `application/octet-stream` is stored as raw bytes (what JS stores for
//!   a `Uint8Array`), and `GET` answers such a value with that type.
//!   `DELETE` answers
//!   `{"deleted": bool}`. A tagged value is read from Redis each time
//!   (never kept in this binding's L1), so it answers `x-cache-tier: l2`.
//! * `POST /__edgecache/invalidate-tags?tags=a,b&tenant=&user=`:
//!   invalidates every value of the scope carrying one of the tags, in
//!   every isolate and in the JS bindings on the same Redis (one `INCR`
//!   per tag); same token. Answers `{"invalidated": <number of tags>}`.
//! * `POST /__edgecache/incr/<key>?by=<n>&tenant=&user=`: adds `by`
//!   (default 1) to the counter `key` (Redis `INCRBY`, shared by every
//!   isolate), answers `{"value": n}`; same token.
//!
//! The admin routes say when Redis failed, so a caller can tell what
//! happened: `x-edgecache-breaker: closed | open | half-open` on every
//! answer of a tiered cache (a 404 with `open` is a miss because Redis is
//! out of reach, not a key that is gone), and errors as JSON, `{"error":
//! <code, e.g. L2_TIMEOUT>, "message", "outcome"}`, where `outcome` says
//! whether a write may have happened: `"not-applied"` (the breaker refused
//! it, or Redis answered with an error) or `"unknown"` (sent, no usable
//! answer: an increment may have counted, so never retry one blind).
//! A `PUT` fails open: with Redis down the value lands in L1 alone.
//!
//! Requests share only the cache's plain data: each one fetches what it
//! misses itself, never waiting on another request's I/O.

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use edgecache::worker::{EdgeCache, Hit, Raw, Tier};
use edgecache::Scope;
use serde::{Deserialize, Serialize};
use worker::wasm_bindgen::JsValue;
use worker::{
    event, js_sys, web_sys, Context, Delay, Env, Fetch, Method, Request, Response, Result, Url,
};

/// A page as cached: what the origin answered, and when.
#[derive(Serialize, Deserialize)]
struct Page {
    status: u16,
    #[serde(rename = "contentType")]
    content_type: String,
    body: String,
    #[serde(rename = "fetchedAt")]
    fetched_at: u64,
}

/// Responses served, by `x-cache`, in this isolate.
#[derive(Default, Serialize)]
struct Served {
    hit: u64,
    miss: u64,
    stale: u64,
}

thread_local! {
    static SERVED: RefCell<Served> = RefCell::new(Served::default());
    /// Pages being revalidated in the background (plain data, no I/O handle).
    static REVALIDATING: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

thread_local! {
    /// The fixed strings this Worker hands to JS on every request (binding
    /// names, header names and values), as JS strings made once each.
    static STRINGS: RefCell<Vec<(&'static str, JsValue)>> = const { RefCell::new(Vec::new()) };
}

/// `s` as a JS string, made once per isolate: a Rust string sent to JS is
/// decoded again each time, and an L1 HIT sends about ten fixed ones.
fn js(s: &'static str) -> JsValue {
    STRINGS.with(|t| {
        let mut t = t.borrow_mut();
        match t.iter().find(|(k, _)| *k == s) {
            Some((_, v)) => v.clone(),
            None => {
                let v = JsValue::from_str(s);
                t.push((s, v.clone()));
                v
            }
        }
    })
}

/// A var's or a secret's text (both are strings on `env`), `None` if unset
/// or empty.
fn var(env: &Env, name: &'static str) -> Option<String> {
    js_sys::Reflect::get(env, &js(name))
        .ok()
        .and_then(|v| v.as_string())
        .filter(|v| !v.is_empty())
}

fn ms(env: &Env, name: &'static str, dflt: u64) -> u64 {
    var(env, name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(dflt)
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// `(path, query)` of a request URL as workerd hands it over (already in
/// its WHATWG serialization, which parsing it again leaves as it is): the
/// `Url`'s `path()` and `query()`, without parsing it.
fn path_query(href: &str) -> (&str, Option<&str>) {
    let rest = href.split_once("://").map_or(href, |(_, r)| r);
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let rest = rest.find('/').map_or("/", |i| &rest[i..]);
    match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    }
}

/// Pages take the short way (the raw request: its URL and method read
/// once, no `Url` parsed, the response built in one go); the admin routes
/// go through `worker::Request`.
#[event(fetch)]
async fn fetch(raw: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let cache = match EdgeCache::from_env(&env) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Response::error(format!("edgecache configuration: {e}\n"), 500)?.into())
        }
    };
    let href = raw.url();
    let (path, query) = path_query(&href);
    if !path.starts_with("/__edgecache") {
        let method = raw.method();
        if method == "GET" || method == "HEAD" {
            let key = match query {
                Some(q) => format!("{path}?{q}"),
                None => path.to_owned(),
            };
            return read_through(&env, &ctx, &cache, key).await;
        }
    }
    admin(Request::from(raw), env, cache).await.map(Into::into)
}

/// The routes under `/__edgecache`, and the answer to other methods.
async fn admin(req: Request, env: Env, cache: EdgeCache) -> Result<Response> {
    let url = req.url()?;
    let path = url.path().to_owned();
    match (req.method(), path.as_str()) {
        (Method::Get, "/__edgecache/stats") => Response::from_json(&stats(&cache)),
        (Method::Get, "/__edgecache") | (Method::Get, "/__edgecache/") => {
            Response::from_html(dashboard(&cache))
        }
        (Method::Delete, "/__edgecache/purge") => purge(&req, &env, &cache, &url).await,
        (_, p) if p.starts_with("/__edgecache/kv/") => kv(req, &env, &cache, &url).await,
        (Method::Post, p) if p.starts_with("/__edgecache/incr/") => {
            incr(&req, &env, &cache, &url).await
        }
        (_, "/__edgecache/invalidate-tags") => invalidate_tags(&req, &env, &cache, &url).await,
        // For the tests of the reset rule only (off unless DEMO_PANIC_ROUTE=1):
        // a panic aborts this wasm instance; worker-build's reset hook starts
        // a fresh one for the next request, with an empty L1.
        (Method::Post, "/__edgecache/panic")
            if var(&env, "DEMO_PANIC_ROUTE").as_deref() == Some("1") =>
        {
            if let Some(r) = unauthorized(&req, &env)? {
                return Ok(r);
            }
            panic!("a deliberate panic (DEMO_PANIC_ROUTE)")
        }
        (_, p) if p.starts_with("/__edgecache") => Response::error("not found\n", 404),
        _ => Response::error("method not allowed: this cache serves GET and HEAD\n", 405),
    }
}

/// The page at `key` (the path and query): from the cache, or from the
/// origin (then cached).
async fn read_through(
    env: &Env,
    ctx: &Context,
    cache: &EdgeCache,
    key: String,
) -> Result<web_sys::Response> {
    let fresh = ms(env, "CACHE_TTL", 60_000);
    let stale = ms(env, "STALE_TTL", 300_000);
    // A value that does not read as a Page (written by someone else) is a miss.
    let found = cache.lookup::<Page>(&key).await.unwrap_or(None);
    if let Some(Hit { value: page, tier }) = found {
        let age = now().saturating_sub(page.fetched_at);
        let state = if age < fresh { "HIT" } else { "STALE" };
        if state == "STALE" && REVALIDATING.with(|r| r.borrow_mut().insert(key.clone())) {
            // Asked again after this response, by this request (its own I/O).
            let (cache, origin, delay, key2) = (
                cache.clone(),
                Origin::from_env(env),
                ms(env, "ORIGIN_DELAY_MS", 300),
                key.clone(),
            );
            ctx.wait_until(async move {
                if let Ok(page) = origin.get(&key2, delay).await {
                    if page.status == 200 {
                        let _ = cache.set_with_ttl(&key2, &page, fresh + stale).await;
                    }
                }
                REVALIDATING.with(|r| r.borrow_mut().remove(&key2));
            });
        }
        SERVED.with(|s| {
            let mut s = s.borrow_mut();
            if state == "HIT" {
                s.hit += 1
            } else {
                s.stale += 1
            }
        });
        return respond(&page, state, Some(tier), age);
    }
    let page = match Origin::from_env(env)
        .get(&key, ms(env, "ORIGIN_DELAY_MS", 300))
        .await
    {
        Ok(p) => p,
        Err(e) => return Ok(Response::error(format!("origin unreachable: {e}\n"), 502)?.into()),
    };
    if page.status == 200 {
        // Fails open: with Redis down the page still lands in L1.
        if let Err(e) = cache.set_with_ttl(&key, &page, fresh + stale).await {
            worker::console_warn!("edgecache: not cached: {}", e);
        }
    }
    SERVED.with(|s| s.borrow_mut().miss += 1);
    respond(&page, "MISS", None, 0)
}

/// The page as an answer. Built on `web_sys` directly: the headers as one
/// plain object of JS strings made once (what a JS Worker writes), the body
/// as a string; `worker::Response` would copy the body into a
/// `Uint8Array` and send each header's name and value as Rust strings.
fn respond(
    page: &Page,
    state: &'static str,
    tier: Option<Tier>,
    age: u64,
) -> Result<web_sys::Response> {
    let headers = js_sys::Object::new();
    let set = |k: &'static str, v: &JsValue| js_sys::Reflect::set(&headers, &js(k), v);
    set("content-type", &JsValue::from_str(&page.content_type))?;
    set("x-cache", &js(state))?;
    if let Some(t) = tier {
        set("x-cache-tier", &js(t.as_str()))?;
        set("age", &JsValue::from((age / 1000) as f64))?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(page.status);
    init.set_headers(&headers);
    Ok(web_sys::Response::new_with_opt_str_and_init(
        Some(&page.body),
        &init,
    )?)
}

/// Where pages come from: `ORIGIN_URL`, or the demo origin in this Worker.
enum Origin {
    Url(String),
    Demo,
}

impl Origin {
    fn from_env(env: &Env) -> Origin {
        match var(env, "ORIGIN_URL") {
            Some(u) => Origin::Url(u.trim_end_matches('/').to_owned()),
            None => Origin::Demo,
        }
    }

    async fn get(&self, path_query: &str, delay: u64) -> Result<Page> {
        match self {
            Origin::Demo => {
                // Deliberately slow, so a HIT is visibly faster than a MISS.
                Delay::from(Duration::from_millis(delay)).await;
                let t = now();
                let body = format!(
                    "<!doctype html><title>{p}</title><h1>{p}</h1><p>Rendered by the demo origin at {t} after {delay} ms. Reload: the next answer comes from the cache (x-cache: HIT).</p>\n",
                    p = html_escape(path_query)
                );
                Ok(Page {
                    status: 200,
                    content_type: "text/html; charset=utf-8".into(),
                    body,
                    fetched_at: t,
                })
            }
            Origin::Url(base) => {
                let target: Url = format!("{base}{path_query}").parse()?;
                let mut r = Fetch::Url(target).send().await?;
                let content_type = r
                    .headers()
                    .get("content-type")?
                    .unwrap_or_else(|| "application/octet-stream".into());
                Ok(Page {
                    status: r.status_code(),
                    content_type,
                    body: r.text().await?,
                    fetched_at: now(),
                })
            }
        }
    }
}

fn stats(cache: &EdgeCache) -> serde_json::Value {
    let mut j = cache.stats().to_json();
    j["tiered"] = cache.is_tiered().into();
    j["served"] = SERVED
        .with(|s| serde_json::to_value(&*s.borrow()))
        .unwrap_or_default();
    j
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn dashboard(cache: &EdgeCache) -> String {
    let s = cache.stats();
    let c = &s.l1.counters;
    let (l2, breaker) = match (&s.l2, s.breaker) {
        (Some(l2), Some((state, opened))) => (
            format!("Redis: {} hits, {} misses, {} rejected, {} writes, errors {:?}", l2.hits, l2.misses, l2.rejected, l2.writes, l2.errors),
            format!("{} (opened {opened} times)", state.as_str()),
        ),
        _ => ("none: L1 only (set EDGECACHE_REDIS_URL, EDGECACHE_REDIS_TOKEN, EDGECACHE_SIGNING_KEYS)".into(), "n/a".into()),
    };
    let coherence = match s.coherence {
        Some(c) => format!(
            "maxStaleness {} ms: {} log reads ({} failed), {} entries applied, {} gaps, {} L1 entries dropped, {} stale-while-unreachable, {} refused",
            c.max_staleness, c.log.reads, c.log.failures, c.log.entries, c.log.gaps, c.invalidated, c.log.stale_served, c.log.refused
        ),
        None if s.l2.is_some() => "off (EDGECACHE_MAX_STALENESS=off)".into(),
        None => "n/a".into(),
    };
    let tags = format!(
        "{} invalidated here, {} entries missed for a tag, {} rollbacks",
        s.tags.invalidations, s.tags.invalidated, s.tags.rollbacks
    );
    let served = SERVED.with(|s| {
        let s = s.borrow();
        format!("{} HIT, {} MISS, {} STALE", s.hit, s.miss, s.stale)
    });
    format!(
        "<!doctype html><meta charset=utf-8><title>edgecache</title>\
         <h1>edgecache</h1><table>\
         <tr><th align=left>hit rate (L1)</th><td>{:.1}%</td></tr>\
         <tr><th align=left>entries</th><td>{} of {}</td></tr>\
         <tr><th align=left>bytes</th><td>{} of {}</td></tr>\
         <tr><th align=left>served</th><td>{}</td></tr>\
         <tr><th align=left>L2</th><td>{}</td></tr>\
         <tr><th align=left>breaker</th><td>{}</td></tr>\
         <tr><th align=left>coherence</th><td>{}</td></tr>\
         <tr><th align=left>tags</th><td>{}</td></tr>\
         </table><p><a href=/__edgecache/stats>JSON</a></p>\n",
        s.l1.hit_rate * 100.0,
        c.entries,
        s.l1.limits.max_entries,
        c.bytes,
        s.l1.limits.max_bytes,
        served,
        html_escape(&l2),
        breaker,
        coherence,
        tags,
    )
}

/// `None` if the request carries the admin token, else the answer to give:
/// 401 without a bearer token, 403 with a wrong one (or none configured).
fn unauthorized(req: &Request, env: &Env) -> Result<Option<Response>> {
    let Some(given) = req
        .headers()
        .get("authorization")?
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
    else {
        let mut r = Response::error(
            "unauthorized: send Authorization: Bearer <EDGECACHE_ADMIN_TOKEN>\n",
            401,
        )?;
        r.headers_mut().set("www-authenticate", "Bearer")?;
        return Ok(Some(r));
    };
    match var(env, "EDGECACHE_ADMIN_TOKEN") {
        Some(want) if constant_time_eq(given.trim().as_bytes(), want.as_bytes()) => Ok(None),
        Some(_) => Ok(Some(Response::error("forbidden: wrong token\n", 403)?)),
        None => Ok(Some(Response::error(
            "forbidden: no EDGECACHE_ADMIN_TOKEN is set (wrangler secret put EDGECACHE_ADMIN_TOKEN, or .dev.vars)\n",
            403,
        )?)),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Purges the pages whose path (with its query) matches the caller's glob.
async fn purge(req: &Request, env: &Env, cache: &EdgeCache, url: &Url) -> Result<Response> {
    if let Some(r) = unauthorized(req, env)? {
        return Ok(r);
    }
    let Some(pattern) = param(url, "pattern") else {
        return Response::error(
            "give ?pattern=<glob>, e.g. /item/* (Redis KEYS syntax)\n",
            400,
        );
    };
    let view = match scoped(cache, url) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let answer = match view.delete_pattern(&pattern).await {
        Ok(n) => Response::from_json(&serde_json::json!({ "pattern": pattern, "deleted": n })),
        Err(e) => tier_error(&e),
    };
    with_breaker(answer, cache)
}

/// The view the query names (`tenant`, `user`), else the root; a bad
/// scope is a 400.
fn scoped(cache: &EdgeCache, url: &Url) -> std::result::Result<EdgeCache, Result<Response>> {
    let (tenant, user) = (param(url, "tenant"), param(url, "user"));
    if tenant.is_none() && user.is_none() {
        return Ok(cache.clone());
    }
    Scope::new(tenant.as_deref(), user.as_deref())
        .and_then(|s| cache.scope(&s))
        .map_err(|e| Response::error(format!("{e}\n"), 400))
}

/// An error of the cache as JSON: its code, its message and, for a write,
/// whether it may have happened (see the routes above).
fn tier_error(e: &edgecache::Error) -> Result<Response> {
    let code = e.code();
    let (status, outcome) = match code {
        // The breaker refused it: nothing was sent.
        "L2_UNAVAILABLE" => (503, "not-applied"),
        // Redis answered, refusing the command.
        "L2_REDIS" => (502, "not-applied"),
        "NOT_AN_INTEGER" | "OVERFLOW" => (409, "not-applied"),
        // Refused before anything was sent.
        "INVALID_SCOPE"
        | "INVALID_OPTION"
        | "INVALID_TTL"
        | "INVALID_KEY"
        | "UNSERIALIZABLE_VALUE"
        | "ENVELOPE_TOO_LARGE"
        | "INVALID_TAG"
        | "VALUE_TOO_LARGE" => (400, "not-applied"),
        // Sent, and no answer that says what happened (timeout, a broken
        // connection or body, an HTTP error from something in between).
        c if c.starts_with("L2_") => (503, "unknown"),
        _ => (500, "unknown"),
    };
    Ok(Response::from_json(&serde_json::json!({
        "error": code,
        "message": e.to_string(),
        "outcome": outcome,
    }))?
    .with_status(status))
}

/// Adds `x-edgecache-breaker` (the Redis tier's breaker) to an answer.
fn with_breaker(answer: Result<Response>, cache: &EdgeCache) -> Result<Response> {
    let mut r = answer?;
    if let Some((state, _)) = cache.stats().breaker {
        r.headers_mut().set("x-edgecache-breaker", state.as_str())?;
    }
    Ok(r)
}

/// Adds `by` to a counter (same token as purge).
async fn incr(req: &Request, env: &Env, cache: &EdgeCache, url: &Url) -> Result<Response> {
    if let Some(r) = unauthorized(req, env)? {
        return Ok(r);
    }
    let key = urlencoding_decode(&url.path()["/__edgecache/incr/".len()..]);
    let by = match param(url, "by").map(|b| b.trim().parse::<i64>()) {
        None => 1,
        Some(Ok(by)) => by,
        Some(Err(_)) => return Response::error("by must be a whole number\n", 400),
    };
    let view = match scoped(cache, url) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let answer = match view.incr(&key, by).await {
        Ok(n) => Response::from_json(&serde_json::json!({ "value": n })),
        Err(e) => tier_error(&e),
    };
    with_breaker(answer, cache)
}

/// The tags of `?tags=a,b` (none if absent or empty); each piece is
/// checked by the cache (a piece that breaks the rule, an empty one
/// included, is `INVALID_TAG`).
fn tags_param(url: &Url) -> Vec<String> {
    match param(url, "tags") {
        Some(t) if !t.is_empty() => t.split(',').map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Invalidates tags (same token as purge).
async fn invalidate_tags(
    req: &Request,
    env: &Env,
    cache: &EdgeCache,
    url: &Url,
) -> Result<Response> {
    if let Some(r) = unauthorized(req, env)? {
        return Ok(r);
    }
    if req.method() != Method::Post {
        let mut r = Response::error("use POST\n", 405)?;
        r.headers_mut().set("allow", "POST")?;
        return Ok(r);
    }
    let tags = tags_param(url);
    if tags.is_empty() {
        return Response::error("give ?tags=a,b (comma separated)\n", 400);
    }
    let view = match scoped(cache, url) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let answer = match view.invalidate_tags(&tags).await {
        Ok(n) => Response::from_json(&serde_json::json!({ "invalidated": n })),
        Err(e) => tier_error(&e),
    };
    with_breaker(answer, cache)
}

/// The cache as a JSON key-value store (same token as purge).
async fn kv(mut req: Request, env: &Env, cache: &EdgeCache, url: &Url) -> Result<Response> {
    if let Some(r) = unauthorized(&req, env)? {
        return Ok(r);
    }
    let key = urlencoding_decode(&url.path()["/__edgecache/kv/".len()..]);
    let view = match scoped(cache, url) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let fail = |e: edgecache::Error| tier_error(&e);
    let answer = match req.method() {
        // One read, whatever the kind: JSON, or raw bytes (a Uint8Array on
        // the JS side), served as they are.
        Method::Get => match view.lookup_raw(&key).await {
            Ok(Some(Hit { value, tier })) => {
                let mut r = match value {
                    Raw::Json(json) => {
                        let mut r = Response::from_bytes(json)?;
                        r.headers_mut().set("content-type", "application/json")?;
                        r
                    }
                    Raw::Bytes(bytes) => {
                        let mut r = Response::from_bytes(bytes)?;
                        r.headers_mut()
                            .set("content-type", "application/octet-stream")?;
                        r
                    }
                };
                r.headers_mut().set("x-cache-tier", tier.as_str())?;
                Ok(r)
            }
            Ok(None) => Response::error("not found\n", 404),
            Err(e) => fail(e),
        },
        Method::Put => {
            let ttl = param(url, "ttl").and_then(|t| t.parse().ok()).unwrap_or(0);
            let tags = tags_param(url);
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            let binary = req
                .headers()
                .get("content-type")?
                .is_some_and(|t| t.starts_with("application/octet-stream"));
            let stored = if binary {
                let body = req.bytes().await?;
                view.set_bytes_with_tags(&key, &body, ttl, &tags).await
            } else {
                let value: serde_json::Value = match req.json().await {
                    Ok(v) => v,
                    Err(_) => {
                        return Response::error(
                            "the body must be JSON (or application/octet-stream)\n",
                            400,
                        )
                    }
                };
                view.set_with_tags(&key, &value, ttl, &tags).await
            };
            match stored {
                Ok(()) => Ok(Response::empty()?.with_status(204)),
                Err(e) => fail(e),
            }
        }
        Method::Delete => match view.delete(&key).await {
            Ok(gone) => Response::from_json(&serde_json::json!({ "deleted": gone })),
            Err(e) => fail(e),
        },
        _ => Response::error("method not allowed\n", 405),
    };
    with_breaker(answer, cache)
}

/// Percent-decoding of a path segment (UTF-8; bad escapes stay as they are).
fn urlencoding_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
