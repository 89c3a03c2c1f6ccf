//! A Rust Worker with edgecache: `GET /<anything>` renders a page once,
//! then serves it from the cache for a minute (`x-cache: MISS`, then `HIT`
//! with `x-cache-tier: l1`, or `l2` from Redis in another isolate);
//! `POST /count` adds one to a counter shared by every isolate through Redis
//! (this isolate's alone without it).
use edgecache::worker::EdgeCache;
use worker::*;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    // One cache per isolate, from the bindings (EDGECACHE_REDIS_URL, ...);
    // cheap to call on every request.
    let cache = EdgeCache::from_env(&env).map_err(|e| Error::RustError(e.to_string()))?;
    let path = req.path();
    if req.method() == Method::Post && path == "/count" {
        let n = cache
            .incr("count", 1)
            .await
            .map_err(|e| Error::RustError(e.to_string()))?;
        return Response::ok(n.to_string());
    }
    if let Ok(Some(hit)) = cache.lookup::<String>(&path).await {
        let mut res = Response::ok(hit.value)?;
        res.headers_mut().set("x-cache", "HIT")?;
        res.headers_mut().set("x-cache-tier", hit.tier.as_str())?;
        return Ok(res);
    }
    let page = format!("rendered {path} at {}", Date::now().as_millis());
    // Redis down: the page is in L1 only, and the request still succeeds.
    let _ = cache.set_with_ttl(&path, &page, 60_000).await;
    let mut res = Response::ok(page)?;
    res.headers_mut().set("x-cache", "MISS")?;
    Ok(res)
}
