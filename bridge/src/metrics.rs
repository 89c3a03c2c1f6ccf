//! `/metrics` in the Prometheus text format (version 0.0.4): requests by
//! route and status, their latency as histograms, Redis failures by kind,
//! client connections in use, what is queued for Redis, and open SSE
//! streams.
//!
//! Off unless `--metrics-token` or `--metrics-listen` is given; then a
//! request costs the server three relaxed atomic increments
//! ([`Metrics::record`]): its route-and-status counter, its latency bucket
//! and the latency sum (a histogram's count is the sum of its buckets).
//! The gauges (connections, queue, Redis connections up) are read when
//! `/metrics` is scraped, not kept up to date by the hot path.
//!
//! Served on the main listener at `GET /metrics` with
//! `Authorization: Bearer <--metrics-token>` (a token of its own: the
//! data tokens do not read metrics, and it reads nothing else), and/or on
//! a listener of its own, `--metrics-listen`, for a network only the
//! scraper reaches (the token is required there too when it is set).

use crate::direct::{Unavailable, QUEUE_FULL};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A request's route, as `/metrics` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /`: one command as JSON.
    Command,
    /// `POST /pipeline`.
    Pipeline,
    /// `POST /multi-exec`.
    MultiExec,
    /// The path form (`GET /get/k`), and anything else the router answers.
    Path,
    /// `GET /healthz`.
    Healthz,
    /// `GET /metrics` on the main listener.
    Metrics,
    /// The SSE routes (`bridge/src/sse.rs`): label their requests with it.
    Sse,
}

const ROUTES: [(Route, &str); 7] = [
    (Route::Command, "command"),
    (Route::Pipeline, "pipeline"),
    (Route::MultiExec, "multi-exec"),
    (Route::Path, "path"),
    (Route::Healthz, "healthz"),
    (Route::Metrics, "metrics"),
    (Route::Sse, "sse"),
];

impl Route {
    /// The route of a request, from its path alone (the method does not
    /// change it: a `GET /pipeline` is a pipeline request answered 405).
    pub fn of(path: &str) -> Route {
        match path {
            "/" | "" => Route::Command,
            "/pipeline" => Route::Pipeline,
            "/multi-exec" => Route::MultiExec,
            "/healthz" => Route::Healthz,
            "/metrics" => Route::Metrics,
            p if p.starts_with("/subscribe/") || p.starts_with("/psubscribe/") => Route::Sse,
            _ => Route::Path,
        }
    }
}

/// The statuses the bridge answers; any other is counted as `other`.
const STATUSES: [u16; 12] = [200, 204, 400, 401, 403, 404, 405, 408, 413, 500, 503, 504];
const OTHER_STATUS: usize = STATUSES.len();

fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|&s| s == status)
        .unwrap_or(OTHER_STATUS)
}

/// Upper bounds of the latency buckets, in microseconds (then `+Inf`):
/// 100 µs to 10 s.
const BUCKETS_US: [u64; 15] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// Why a Redis call failed (the 503s and 504s), by `kind` and `sent`.
/// (A full queue refuses a command before it is sent.)
const FAILURES: [(&str, bool); 5] = [
    ("timeout", true),
    ("timeout", false),
    ("unreachable", true),
    ("unreachable", false),
    ("queue_full", false),
];

/// The counters. Shared by the server's tasks (`Arc`), written with
/// relaxed atomics only.
pub struct Metrics {
    /// [route][status]
    requests: [[AtomicU64; STATUSES.len() + 1]; ROUTES.len()],
    /// [route][bucket], not cumulative (the `+Inf` bucket last).
    latency: [[AtomicU64; BUCKETS_US.len() + 1]; ROUTES.len()],
    /// [route], microseconds.
    latency_sum_us: [AtomicU64; ROUTES.len()],
    failures: [AtomicU64; FAILURES.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency_sum_us: std::array::from_fn(|_| AtomicU64::new(0)),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// What `/metrics` reads from the server when it is scraped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    /// Client connections open (holding one of `--max-connections`).
    pub connections: usize,
    pub max_connections: usize,
    /// Requests queued for Redis and not yet written, all connections.
    pub queue_depth: usize,
    /// Their bytes.
    pub queue_bytes: usize,
    /// The bridge's own Redis connections that are up, and how many there are.
    pub redis_up: usize,
    pub redis_connections: usize,
    /// `/subscribe` and `/psubscribe` streams open (`crate::sse::Streams`).
    pub sse_streams: usize,
}

impl Metrics {
    /// Counts one answered request: three relaxed increments.
    #[inline]
    pub fn record(&self, route: Route, status: u16, took: Duration) {
        let r = route as usize;
        self.requests[r][status_index(status)].fetch_add(1, Ordering::Relaxed);
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let bucket = BUCKETS_US.partition_point(|&b| b < us);
        self.latency[r][bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us[r].fetch_add(us, Ordering::Relaxed);
    }

    /// Counts a Redis call that failed (a 503 or 504), by kind.
    pub fn failure(&self, e: &Unavailable) {
        let (kind, sent) = match e {
            Unavailable::Timeout { sent } => ("timeout", *sent),
            Unavailable::Down { sent, why } if why.starts_with(QUEUE_FULL) => ("queue_full", *sent),
            Unavailable::Down { sent, .. } => ("unreachable", *sent),
        };
        if let Some(i) = FAILURES.iter().position(|&f| f == (kind, sent)) {
            self.failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The exposition, Prometheus text format 0.0.4.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(8 << 10);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };

        family(
            &mut out,
            "edgecache_bridge_requests_total",
            "counter",
            "HTTP requests answered, by route and status.",
        );
        for (r, (_, route)) in ROUTES.iter().enumerate() {
            for (s, n) in self.requests[r].iter().enumerate() {
                let n = load(n);
                if n == 0 {
                    continue;
                }
                let status = STATUSES
                    .get(s)
                    .map_or("other".to_string(), |s| s.to_string());
                let _ = writeln!(
                    out,
                    "edgecache_bridge_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }

        family(
            &mut out,
            "edgecache_bridge_request_duration_seconds",
            "histogram",
            "Time from a request's headers to its answer, by route.",
        );
        for (r, (_, route)) in ROUTES.iter().enumerate() {
            let counts: Vec<u64> = self.latency[r].iter().map(load).collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (b, n) in counts.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS_US
                    .get(b)
                    .map_or("+Inf".to_string(), |us| seconds(*us));
                let _ = writeln!(
                    out,
                    "edgecache_bridge_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let sum = seconds(load(&self.latency_sum_us[r]));
            let _ = writeln!(
                out,
                "edgecache_bridge_request_duration_seconds_sum{{route=\"{route}\"}} {sum}\n\
                 edgecache_bridge_request_duration_seconds_count{{route=\"{route}\"}} {total}"
            );
        }

        family(
            &mut out,
            "edgecache_bridge_redis_failures_total",
            "counter",
            "Redis calls that failed (503, 504), by kind (timeout, unreachable, queue_full) and whether the command was sent (its outcome unknown) or not (it did not run).",
        );
        for (i, (kind, sent)) in FAILURES.iter().enumerate() {
            let _ = writeln!(
                out,
                "edgecache_bridge_redis_failures_total{{kind=\"{kind}\",sent=\"{sent}\"}} {}",
                load(&self.failures[i])
            );
        }

        let gauges: [(&str, &str, i64); 7] = [
            (
                "edgecache_bridge_connections_in_use",
                "Client connections open.",
                g.connections as i64,
            ),
            (
                "edgecache_bridge_connections_max",
                "The most client connections (--max-connections).",
                g.max_connections as i64,
            ),
            (
                "edgecache_bridge_redis_queue_depth",
                "Requests queued for Redis and not yet written (--max-queue bounds it per connection).",
                g.queue_depth as i64,
            ),
            (
                "edgecache_bridge_redis_queue_bytes",
                "Bytes of commands queued for Redis and not yet written (--max-queue-bytes bounds it per connection).",
                g.queue_bytes as i64,
            ),
            (
                "edgecache_bridge_redis_connections_up",
                "The bridge's multiplexed Redis connections that are up.",
                g.redis_up as i64,
            ),
            (
                "edgecache_bridge_redis_connections",
                "The bridge's multiplexed Redis connections (--pool-size).",
                g.redis_connections as i64,
            ),
            (
                "edgecache_bridge_sse_streams_open",
                "SSE streams open.",
                g.sse_streams as i64,
            ),
        ];
        for (name, help, v) in gauges {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {v}");
        }
        family(
            &mut out,
            "edgecache_bridge_build_info",
            "gauge",
            "The bridge's version, as a label.",
        );
        let _ = writeln!(
            out,
            "edgecache_bridge_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

/// Microseconds as seconds, exactly (`2500` is `0.0025`).
fn seconds(us: u64) -> String {
    let (s, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return s.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{s}.{}", frac.trim_end_matches('0'))
}

/// The answer to `GET /metrics`: 401 without the metrics token (when one
/// is set), 405 for another method, else the exposition.
pub fn answer<B>(
    req: &Request<B>,
    token: Option<&[u8; 32]>,
    metrics: &Metrics,
    gauges: impl FnOnce() -> Gauges,
) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if let Some(expected) = token {
        if !crate::server::token_matches(req, expected) {
            let mut r = plain(StatusCode::UNAUTHORIZED, "missing or wrong metrics token\n");
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
        r.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut r = Response::new(Full::new(Bytes::from(metrics.render(&gauges()))));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(100), "0.0001");
        assert_eq!(seconds(2_500), "0.0025");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(12_345_678), "12.345678");
    }

    #[test]
    fn a_request_lands_in_its_bucket_and_the_histogram_is_cumulative() {
        let m = Metrics::default();
        m.record(Route::Command, 200, Duration::from_micros(100)); // le 0.0001 (bounds are inclusive)
        m.record(Route::Command, 200, Duration::from_micros(101)); // le 0.00025
        m.record(Route::Command, 503, Duration::from_secs(60)); // +Inf
        m.record(Route::Pipeline, 299, Duration::from_micros(1)); // status other
        let text = m.render(&Gauges::default());
        for line in [
            "edgecache_bridge_requests_total{route=\"command\",status=\"200\"} 2",
            "edgecache_bridge_requests_total{route=\"command\",status=\"503\"} 1",
            "edgecache_bridge_requests_total{route=\"pipeline\",status=\"other\"} 1",
            "edgecache_bridge_request_duration_seconds_bucket{route=\"command\",le=\"0.0001\"} 1",
            "edgecache_bridge_request_duration_seconds_bucket{route=\"command\",le=\"0.00025\"} 2",
            "edgecache_bridge_request_duration_seconds_bucket{route=\"command\",le=\"10\"} 2",
            "edgecache_bridge_request_duration_seconds_bucket{route=\"command\",le=\"+Inf\"} 3",
            "edgecache_bridge_request_duration_seconds_sum{route=\"command\"} 60.000201",
            "edgecache_bridge_request_duration_seconds_count{route=\"command\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn failures_by_kind_and_streams_open() {
        let m = Metrics::default();
        m.failure(&Unavailable::Timeout { sent: true });
        m.failure(&Unavailable::unsent(QUEUE_FULL));
        m.failure(&Unavailable::lost("connection reset"));
        let text = m.render(&Gauges {
            sse_streams: 1,
            ..Gauges::default()
        });
        for line in [
            "edgecache_bridge_redis_failures_total{kind=\"timeout\",sent=\"true\"} 1",
            "edgecache_bridge_redis_failures_total{kind=\"queue_full\",sent=\"false\"} 1",
            "edgecache_bridge_redis_failures_total{kind=\"unreachable\",sent=\"true\"} 1",
            "edgecache_bridge_redis_failures_total{kind=\"unreachable\",sent=\"false\"} 0",
            "edgecache_bridge_sse_streams_open 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(m
            .render(&Gauges::default())
            .contains("\nedgecache_bridge_sse_streams_open 0\n"));
    }
}
