//! The HTTP side: an accept loop bounded by a semaphore (as mini-redis
//! does), hyper's HTTP/1 with a header read timeout, a body read timeout and
//! size limit, token checks in constant time, and a graceful shutdown that
//! finishes the requests in flight.

use crate::backend::{Backend, TxOutcome, Unavailable};
use crate::metrics::{self, Metrics};
use crate::policy::{Policy, Role};
use crate::protocol::{self, Command};
use crate::sse;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What the server needs to know, from the command line.
pub struct Settings {
    pub token: String,
    pub read_only_token: Option<String>,
    pub policy: Policy,
    pub max_body: usize,
    pub max_pipeline: usize,
    pub max_connections: usize,
    pub request_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// `GET /metrics` on this listener, with this token of its own.
    pub metrics_token: Option<String>,
    /// `/metrics` on a listener of its own (the token required there too
    /// when set).
    pub metrics_listener: Option<TcpListener>,
    /// `/subscribe` and `/psubscribe` streams (`crate::sse`).
    pub streams: sse::Streams,
}

struct App {
    backend: Backend,
    policy: Policy,
    token: [u8; 32],
    read_only_token: Option<[u8; 32]>,
    max_body: usize,
    max_pipeline: usize,
    request_timeout: Duration,
    body_timeout: Duration,
    /// Set when `/metrics` is served (else nothing is counted).
    metrics: Option<Arc<Metrics>>,
    metrics_token: Option<[u8; 32]>,
    permits: Arc<Semaphore>,
    max_connections: usize,
    /// Advances with every request that writes; sent as `upstash-sync-token`.
    /// Starts at the clock's milliseconds, so it keeps increasing across a
    /// restart.
    sync: AtomicU64,
    streams: sse::Streams,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting,
/// lets the requests in flight finish (up to `shutdown_timeout`), and
/// closes the Redis connections.
pub async fn serve(
    listener: TcpListener,
    backend: Backend,
    s: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let max_connections = s.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max_connections));
    let metrics_on = s.metrics_token.is_some() || s.metrics_listener.is_some();
    let app = Arc::new(App {
        backend,
        policy: s.policy,
        token: digest(&s.token),
        read_only_token: s.read_only_token.as_deref().map(digest),
        max_body: s.max_body,
        max_pipeline: s.max_pipeline,
        request_timeout: s.request_timeout,
        body_timeout: s.body_timeout,
        metrics: metrics_on.then(Arc::default),
        metrics_token: s.metrics_token.as_deref().map(digest),
        permits: permits.clone(),
        max_connections,
        sync: AtomicU64::new(start),
        streams: s.streams,
    });
    let metrics_server = s
        .metrics_listener
        .map(|l| tokio::spawn(serve_metrics(l, app.clone())));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(s.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // Past --max-connections, new connections wait in the listen
        // backlog until one closes.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let conn = http.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, req, peer).await) }
            }),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing the requests in flight");
    // Streams never finish by themselves: end them (within a second).
    app.streams.close();
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(s.shutdown_timeout) => tracing::warn!("shutdown timeout: closing the remaining connections"),
    }
    if let Some(task) = metrics_server {
        task.abort();
    }
    app.backend.quit().await;
}

/// `--metrics-listen`: `GET /metrics` only (404 elsewhere). Meant for a
/// network only the scraper reaches, so its connections are not bounded
/// by `--max-connections`; a header timeout closes idle ones.
async fn serve_metrics(listener: TcpListener, app: Arc<App>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let app = app.clone();
        let conn = http.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let app = app.clone();
                async move {
                    Ok::<_, Infallible>(if req.uri().path() == "/metrics" {
                        metrics_answer(&app, &req)
                    } else {
                        error(StatusCode::NOT_FOUND, "ERR only /metrics here")
                    })
                }
            }),
        );
        tokio::spawn(conn);
    }
}

fn metrics_answer(app: &App, req: &Request<Incoming>) -> Resp {
    let m = app.metrics.as_deref().expect("metrics on");
    metrics::answer(req, app.metrics_token.as_ref(), m, || {
        let (queue_depth, queue_bytes, redis_up, redis_connections) = app.backend.queue_gauges();
        metrics::Gauges {
            connections: app.max_connections - app.permits.available_permits(),
            max_connections: app.max_connections,
            queue_depth,
            queue_bytes,
            redis_up,
            redis_connections,
            sse_streams: app.streams.open_count(),
        }
    })
}

/// Whether a request presents `expected` (a SHA-256 digest), compared in
/// constant time.
pub fn token_matches<B>(req: &Request<B>, expected: &[u8; 32]) -> bool {
    presented_token(req).is_some_and(|t| {
        let d: [u8; 32] = Sha256::digest(&t).into();
        bool::from(d.ct_eq(expected))
    })
}

type Resp = Response<Full<Bytes>>;

/// What a request gets: a whole body, or a stream (`crate::sse`).
type Body = Either<Full<Bytes>, sse::Body>;

fn json(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json(status, protocol::error_body(msg))
}

/// The token of a request: `Authorization: Bearer <t>`, else `?_token=<t>`.
fn presented_token<B>(req: &Request<B>) -> Option<Vec<u8>> {
    if let Some(v) = req.headers().get(AUTHORIZATION) {
        let v = v.as_bytes();
        return (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer "))
            .then(|| v[7..].trim_ascii().to_vec());
    }
    let query = req.uri().query()?;
    query.split('&').find_map(|kv| {
        let v = kv.strip_prefix("_token=")?;
        Some(percent_decode_query(v))
    })
}

fn percent_decode_query(v: &str) -> Vec<u8> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The role the presented token grants, compared in constant time (both
/// sides hashed first, so not even the length leaks).
fn role(app: &App, presented: Option<&[u8]>) -> Option<Role> {
    let d: [u8; 32] = Sha256::digest(presented?).into();
    let full = bool::from(d.ct_eq(&app.token));
    let ro = app.read_only_token.is_some_and(|t| bool::from(d.ct_eq(&t)));
    if full {
        Some(Role::Full)
    } else if ro {
        Some(Role::ReadOnly)
    } else {
        None
    }
}

enum Route {
    Single,
    Pipeline,
    Multi,
    Path,
}

async fn handle(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let counted = app
        .metrics
        .as_ref()
        .map(|m| (m, metrics::Route::of(req.uri().path())));
    let mut resp = match sse::route(req.uri().path()) {
        Some(sub) => subscribe(app, req, sub).await,
        None => route(app, req).await.map(Either::Left),
    };
    resp.headers_mut().insert(
        "upstash-sync-token",
        HeaderValue::from(app.sync.load(Ordering::Relaxed)),
    );
    if let Some((m, r)) = counted {
        m.record(r, resp.status().as_u16(), started.elapsed());
    }
    tracing::debug!(%peer, %method, status = resp.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    resp
}

/// `/subscribe/...` and `/psubscribe/...`: any valid token may subscribe
/// (it reads); the small body `@upstash/redis` sends is read first, so that
/// hyper notices at once when the client closes its connection.
async fn subscribe(
    app: &App,
    req: Request<Incoming>,
    sub: Result<sse::Subscription, String>,
) -> Response<Body> {
    let whole = |r: Resp| r.map(Either::Left);
    if role(app, presented_token(&req).as_deref()).is_none() {
        return whole(error(
            StatusCode::UNAUTHORIZED,
            "WRONGPASS invalid or missing auth token",
        ));
    }
    if req.method() != Method::POST && req.method() != Method::GET {
        return whole(method_not_allowed("GET, POST"));
    }
    let sub = match sub {
        Ok(s) => s,
        Err(e) => return whole(error(StatusCode::BAD_REQUEST, &e)),
    };
    if let Err(r) = read_body(app, req).await {
        return whole(r);
    }
    match app.streams.open(sub).await {
        Ok(r) => r.map(Either::Right),
        Err(e) => whole(error(e.status, &e.message)),
    }
}

async fn route(app: &App, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        // On a cluster, 200 while any master answers (the bridge serves
        // their slots; every bridge sees the same outage, so taking them
        // all out of a load balancer would turn a partial one total),
        // with the slot ranges that have no master that answers.
        let h = app.backend.health().await;
        if !h.up {
            return error(StatusCode::SERVICE_UNAVAILABLE, "ERR Redis is unreachable");
        }
        let mut body = br#"{"result":"PONG""#.to_vec();
        if !h.slots_down.is_empty() {
            let ranges: Vec<String> = h
                .slots_down
                .iter()
                .map(|(a, b)| format!("\"{a}-{b}\""))
                .collect();
            body.extend_from_slice(format!(r#","slotsDown":[{}]"#, ranges.join(",")).as_bytes());
        }
        body.push(b'}');
        return json(StatusCode::OK, body);
    }
    if path == "/metrics" && app.metrics_token.is_some() {
        return metrics_answer(app, &req);
    }
    let Some(role) = role(app, presented_token(&req).as_deref()) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "WRONGPASS invalid or missing auth token",
        );
    };
    let base64 = req
        .headers()
        .get("upstash-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"base64"));
    let m = req.method();
    let route = match path.as_str() {
        "/" | "" if m == Method::POST => Route::Single,
        "/pipeline" if m == Method::POST => Route::Pipeline,
        "/multi-exec" if m == Method::POST => Route::Multi,
        "/" | "" | "/pipeline" | "/multi-exec" => return method_not_allowed("POST"),
        _ if m == Method::GET || m == Method::POST || m == Method::PUT => Route::Path,
        _ => return method_not_allowed("GET, POST, PUT"),
    };
    let has_body = m == Method::POST || m == Method::PUT;
    let body = if has_body {
        match read_body(app, req).await {
            Ok(b) => Some(b),
            Err(r) => return r,
        }
    } else {
        None
    };
    let json_body = body.as_deref().unwrap_or_default();
    let (resp, writes) = match route {
        Route::Pipeline => pipeline(app, role, json_body, base64).await,
        Route::Multi => {
            let cmds = match protocol::parse_commands(json_body, app.max_pipeline) {
                Ok(c) => c,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.0),
            };
            // A transaction runs whole or not at all: one refused command
            // refuses it.
            let mut writes = false;
            for c in &cmds {
                match app.policy.check(role, c) {
                    Ok(read) => writes |= !read,
                    Err(r) => return error(StatusCode::FORBIDDEN, &r.to_string()),
                }
            }
            (multi_exec(app, &cmds, base64).await, writes)
        }
        Route::Single | Route::Path => {
            let parsed = match route {
                Route::Single => protocol::parse_command(json_body),
                _ => protocol::parse_path(&path, body.clone()),
            };
            let cmd = match parsed {
                Ok(c) => c,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.0),
            };
            let read = match app.policy.check(role, &cmd) {
                Ok(read) => read,
                Err(r) => return error(StatusCode::FORBIDDEN, &r.to_string()),
            };
            let resp = match app
                .backend
                .pipeline(std::slice::from_ref(&cmd))
                .await
                .map_err(|e| failure(app, e))
            {
                Ok(frames) => {
                    let f = &frames[0];
                    let mut out = Vec::new();
                    protocol::push_outcome(&mut out, f, base64);
                    let status = if protocol::error_text(f).is_some() {
                        StatusCode::BAD_REQUEST
                    } else {
                        StatusCode::OK
                    };
                    json(status, out)
                }
                Err(r) => r,
            };
            (resp, !read)
        }
    };
    if writes {
        app.sync.fetch_add(1, Ordering::Relaxed);
    }
    resp
}

/// `/pipeline`: each command has its own outcome, as Upstash answers:
/// one that is malformed or refused gets its own `{"error": ...}` in its
/// place and the others run (so one caller's bad command, batched by an
/// auto-pipelining client with other callers' commands, fails only its
/// caller). A body that is not an array of commands is refused whole.
/// Returns the answer and whether anything that may write ran.
async fn pipeline(app: &App, role: Role, body: &[u8], base64: bool) -> (Resp, bool) {
    let entries = match protocol::parse_pipeline(body, app.max_pipeline) {
        Ok(e) => e,
        Err(e) => return (error(StatusCode::BAD_REQUEST, &e.0), false),
    };
    let mut writes = false;
    let mut refused = Vec::new();
    let mut cmds = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let verdict = entry
            .map_err(|e| e.0)
            .and_then(|c| match app.policy.check(role, &c) {
                Ok(read) => Ok((c, read)),
                Err(r) => Err(r.to_string()),
            });
        match verdict {
            Ok((c, read)) => {
                writes |= !read;
                cmds.push(c);
            }
            Err(e) => refused.push((i, e)),
        }
    }
    let frames = if cmds.is_empty() {
        Vec::new()
    } else {
        match app
            .backend
            .pipeline(&cmds)
            .await
            .map_err(|e| failure(app, e))
        {
            Ok(f) => f,
            Err(r) => return (r, writes),
        }
    };
    let body = if refused.is_empty() {
        protocol::outcomes(&frames, base64)
    } else {
        let total = frames.len() + refused.len();
        let mut out = Vec::with_capacity(16 * total + 2);
        out.push(b'[');
        let mut frames = frames.iter();
        let mut refused = refused.into_iter().peekable();
        for i in 0..total {
            if i > 0 {
                out.push(b',');
            }
            match refused.next_if(|(at, _)| *at == i) {
                Some((_, e)) => protocol::push_error(&mut out, &e),
                None => protocol::push_outcome(
                    &mut out,
                    frames.next().expect("one reply per command run"),
                    base64,
                ),
            }
        }
        out.push(b']');
        out
    };
    (json(StatusCode::OK, body), writes)
}

async fn multi_exec(app: &App, cmds: &[Command], base64: bool) -> Resp {
    // Waiting for one of the transaction connections is not bounded by
    // the backend: the request timeout is applied here.
    let tx = tokio::time::timeout(
        app.request_timeout + Duration::from_millis(100),
        app.backend.transaction(cmds),
    );
    let r = tx.await.unwrap_or(Err(Unavailable::Timeout { sent: true }));
    match r.map_err(|e| failure(app, e)) {
        Ok(TxOutcome::Executed(frames)) => {
            json(StatusCode::OK, protocol::outcomes(&frames, base64))
        }
        Ok(TxOutcome::Discarded(e)) => error(StatusCode::BAD_REQUEST, &e),
        Err(r) => r,
    }
}

/// The answer to a Redis call that failed: 503 (Redis down, the queue
/// full, the connection lost) or 504 (too slow); the message says whether
/// the command was sent (its outcome unknown) or not (it did not run).
fn failure(app: &App, e: Unavailable) -> Resp {
    if let Some(m) = &app.metrics {
        m.failure(&e);
    }
    let status = match e {
        Unavailable::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        Unavailable::Down { .. } => StatusCode::SERVICE_UNAVAILABLE,
    };
    // Connection losses are logged once, by the backend; not per request.
    tracing::debug!(error = %e, "redis");
    let mut body = protocol::error_body(&e.to_string());
    if app.backend.partly_up() {
        // `{"error":"..."}` -> `{"error":"...","partial":true}`: the other
        // masters of the cluster answer (docs/REDIS.md).
        body.pop();
        body.extend_from_slice(br#","partial":true}"#);
    }
    json(status, body)
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "ERR method not allowed");
    r.headers_mut()
        .insert("allow", HeaderValue::from_static(allow));
    r
}

/// Reads the body, refusing one larger than `--max-body` (as soon as its
/// Content-Length says so) or slower than the body timeout.
///
/// A refused body is not kept: what is still coming is read and discarded
/// for a little while (at most 2 s and 16 times `--max-body`), as nginx's
/// lingering close does, because closing a socket with unread data resets
/// it, and the reset can destroy the 413 before the client reads it.
async fn read_body(app: &App, req: Request<Incoming>) -> Result<Bytes, Resp> {
    let too_large = || {
        let mut r = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "ERR request body larger than {} bytes (--max-body)",
                app.max_body
            ),
        );
        r.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = req.into_body();
    if declared.is_some_and(|n| n > app.max_body as u64) {
        discard(&mut body, app.max_body.saturating_mul(16)).await;
        return Err(too_large());
    }
    let mut buf = bytes::BytesMut::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("ERR could not read the request body: {e}"))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > app.max_body {
                    return Ok(false);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok::<bool, String>(true)
    };
    match tokio::time::timeout(app.body_timeout, read).await {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "ERR the request body was not received in time",
        )),
        Ok(Err(e)) => Err(error(StatusCode::BAD_REQUEST, &e)),
        Ok(Ok(false)) => {
            drop(buf);
            discard(&mut body, app.max_body.saturating_mul(16)).await;
            Err(too_large())
        }
        Ok(Ok(true)) => Ok(buf.freeze()),
    }
}

/// Reads and drops up to `limit` bytes of what is left of a body, for at
/// most 2 seconds.
async fn discard(body: &mut Incoming, limit: usize) {
    let mut seen = 0usize;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > limit {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::percent_decode_query;

    #[test]
    fn query_tokens_are_percent_decoded() {
        assert_eq!(percent_decode_query("a%2Bb%3D"), b"a+b=");
        assert_eq!(percent_decode_query("a+b"), b"a b");
        assert_eq!(percent_decode_query("100%"), b"100%");
        assert_eq!(percent_decode_query("%zz"), b"%zz");
    }
}
