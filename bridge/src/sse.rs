//! Subscribe over server-sent events, as Upstash serves it and
//! `@upstash/redis` 1.39's `redis.subscribe()` / `redis.psubscribe()` read
//! it: `POST /subscribe/<channel>` (or `/psubscribe/<pattern>`; more
//! segments, more channels; `GET` too, for `EventSource`), answered with a
//! `text/event-stream` body of one event per Redis pub/sub reply:
//!
//! ```text
//! data: subscribe,<channel>,<count>
//! data: message,<channel>,<message>
//! data: psubscribe,<pattern>,<count>
//! data: pmessage,<pattern>,<channel>,<message>
//! data: unsubscribe,<channel>,<count>      (at shutdown)
//! ```
//!
//! each followed by a blank line, and `: ping` comments in between (the
//! client reads only lines that begin with `data: `).
//!
//! The guarantees:
//! - each stream has a Redis connection of its own (never the multiplexed
//!   ones of `crate::direct`, nor fred's): a subscribed connection can run
//!   nothing else. At most `--max-streams` are open; past it a request gets
//!   503 at once;
//! - the answer is 200 only once Redis confirmed every subscription, so a
//!   message published after the client has its response reaches it;
//!   Redis unreachable is a 503, a Redis refusal a 400, as on other routes;
//! - the connection closes when the client goes away (hyper drops the
//!   body: at once when the client closes its socket or resets it, which
//!   the next ping's write finds; one that vanished without a word, a lost
//!   network, when TCP gives up on it), takes nothing for [`STALL`] (the
//!   messages for it filled the buffers), or the bridge shuts down (the
//!   subscriptions are ended first, so the client sees `unsubscribe`
//!   events, then the end of the stream);
//! - a lost Redis connection, or one that answers no `PING` for a whole
//!   ping interval, breaks the stream (the response ends without its last
//!   chunk: the client sees an error, not a quiet end; what was sent just
//!   before may be lost with it), so the client can subscribe again and
//!   read what it missed: a stream is never left half-dead;
//! - a message's line breaks cannot forge events: the payload's first line
//!   follows `data: `, and each further line follows `data:` (no space
//!   unless the line begins with one), as the SSE standard reads
//!   continuation lines. An SSE reader (`EventSource`, edgecache's
//!   `RedisRest.subscribe`) gets the whole message, with `\n` for each
//!   line break; `@upstash/redis`, which reads one line per event, gets
//!   its first line and ignores the rest.

use crate::direct::{self, Target};
use crate::protocol;
use crate::tls::Stream;
use bytes::{Bytes, BytesMut};
use hyper::body::{Body as HttpBody, Frame};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use redis_protocol::resp2::types::BytesFrame as Resp2Frame;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::ClientConfig;

/// A client that takes none of its stream's data for this long loses the
/// stream (Redis would otherwise buffer for it, up to its
/// `client-output-buffer-limit pubsub`).
pub const STALL: Duration = Duration::from_secs(30);

/// How long the subscriptions may take to end at shutdown before the
/// stream is closed anyway.
const UNSUBSCRIBE_WAIT: Duration = Duration::from_secs(1);

/// What a request asks for: channels, or patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `PSUBSCRIBE` rather than `SUBSCRIBE`.
    pub patterns: bool,
    /// The channels or patterns, percent-decoded, one per path segment.
    pub names: Vec<Bytes>,
}

impl Subscription {
    fn command(&self, subscribe: bool) -> &'static [u8] {
        match (self.patterns, subscribe) {
            (false, true) => b"SUBSCRIBE",
            (true, true) => b"PSUBSCRIBE",
            (false, false) => b"UNSUBSCRIBE",
            (true, false) => b"PUNSUBSCRIBE",
        }
    }
}

/// Whether `path` is a subscription (`/subscribe/...` or
/// `/psubscribe/...`, the command in any case): `None` if not; else the
/// subscription, or why it is malformed.
pub fn route(path: &str) -> Option<Result<Subscription, String>> {
    let first = path.strip_prefix('/')?.split('/').next()?;
    let patterns = if first.eq_ignore_ascii_case("subscribe") {
        false
    } else if first.eq_ignore_ascii_case("psubscribe") {
        true
    } else {
        return None;
    };
    Some(match protocol::parse_path(path, None) {
        Err(e) => Err(e.0),
        Ok(cmd) if cmd.len() < 2 => Err(format!(
            "ERR wrong number of arguments for '{}' command: name a channel (/{}/<name>)",
            first.to_ascii_lowercase(),
            first.to_ascii_lowercase()
        )),
        Ok(mut cmd) => Ok(Subscription {
            patterns,
            names: cmd.split_off(1),
        }),
    })
}

/// The SSE event for `payload`: its first line after `data: `, each
/// further line (split at CRLF, CR or LF, as SSE splits) after `data:`,
/// or `data: ` if the line itself begins with a space (a reader strips one
/// space after the colon), then a blank line.
pub fn event(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(b"data: ");
    let mut rest = payload;
    loop {
        match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => {
                out.extend_from_slice(rest);
                break;
            }
            Some(i) => {
                out.extend_from_slice(&rest[..i]);
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
                out.extend_from_slice(if rest.first() == Some(&b' ') {
                    b"\ndata: "
                } else {
                    b"\ndata:"
                });
            }
        }
    }
    out.extend_from_slice(b"\n\n");
    out
}

/// What one frame from a subscribed connection is.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// An event for the client. `count`: the connection's subscriptions
    /// left after a (un)subscribe confirmation.
    Event { sse: Vec<u8>, count: Option<i64> },
    /// The answer to our `PING`.
    Pong,
}

/// A Redis pub/sub frame (RESP2) as the event Upstash sends: its parts
/// joined by commas (numbers in decimal), or why the stream cannot go on.
fn reply(frame: Resp2Frame) -> Result<Reply, String> {
    let parts = match frame {
        Resp2Frame::Array(parts) => parts,
        Resp2Frame::Error(e) => return Err(e.to_string()),
        other => {
            return Err(format!(
                "unexpected reply on a subscribed connection: {other:?}"
            ))
        }
    };
    let kind = match parts.first() {
        Some(Resp2Frame::BulkString(k)) | Some(Resp2Frame::SimpleString(k)) => k.clone(),
        _ => return Err("unexpected reply on a subscribed connection".into()),
    };
    if kind.eq_ignore_ascii_case(b"pong") {
        return Ok(Reply::Pong);
    }
    let mut payload = kind.to_vec();
    let mut count = None;
    for p in &parts[1..] {
        payload.push(b',');
        match p {
            Resp2Frame::BulkString(b) | Resp2Frame::SimpleString(b) => payload.extend_from_slice(b),
            Resp2Frame::Integer(n) => {
                payload.extend_from_slice(n.to_string().as_bytes());
                count = Some(*n);
            }
            Resp2Frame::Null => {}
            other => return Err(format!("unexpected part of a pub/sub reply: {other:?}")),
        }
    }
    Ok(Reply::Event {
        sse: event(&payload),
        count,
    })
}

/// Why a stream was not opened: the status and the message for the
/// bridge's usual `{"error": ...}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

fn refused(status: StatusCode, message: impl Into<String>) -> Refused {
    Refused {
        status,
        message: message.into(),
    }
}

/// The open streams: their bound, their Redis server, and the signal that
/// closes them all at shutdown.
pub struct Streams {
    /// The server subscriptions connect to, or why there is none.
    target: Result<Target, String>,
    permits: Arc<Semaphore>,
    max: usize,
    ping: Duration,
    timeout: Duration,
    closing: watch::Sender<bool>,
}

impl Streams {
    /// For the Redis at `url` (already checked by `Backend::connect`): at
    /// most `max` streams (0: subscriptions are off), a ping every `ping`,
    /// and `timeout` to connect and subscribe. A cluster's subscriptions go
    /// to one node of its URL (Redis forwards every `PUBLISH` to every
    /// node; `SPUBLISH` stays on its shard); a sentinel URL's to the master
    /// the sentinels name when the stream opens (a failover breaks the
    /// stream: Sentinel closes the demoted master's clients). `tls`: the
    /// bridge's TLS settings for a `rediss` URL (`crate::tls::settings`).
    pub fn new(
        url: &str,
        tls: Option<Arc<ClientConfig>>,
        max: usize,
        ping: Duration,
        timeout: Duration,
    ) -> Streams {
        let target = fred::types::config::Config::from_url(&crate::tls::plain_scheme(url))
            .map_err(|e| e.details().to_string())
            .and_then(|c| Target::from_config(&c, tls));
        let (closing, _) = watch::channel(false);
        Streams {
            target,
            permits: Arc::new(Semaphore::new(max)),
            max,
            ping: ping.max(Duration::from_millis(10)),
            timeout,
            closing,
        }
    }

    /// How many streams are open.
    pub fn open_count(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Ends every open stream (their subscriptions first) and refuses new
    /// ones: at shutdown.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Opens a stream: takes a place under `--max-streams`, connects,
    /// subscribes, and answers once Redis confirmed every subscription.
    pub async fn open(&self, sub: Subscription) -> Result<Response<Body>, Refused> {
        if *self.closing.borrow() {
            return Err(refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "ERR the bridge is shutting down",
            ));
        }
        let target = self
            .target
            .as_ref()
            .map_err(|e| refused(StatusCode::NOT_IMPLEMENTED, format!("ERR {e}")))?;
        let permit = limit(&self.permits, self.max)?;
        let (sock, buf, confirmations) =
            match tokio::time::timeout(self.timeout, subscribe(target, &sub)).await {
                Ok(Ok(x)) => x,
                Ok(Err(Opening::Refused(e))) => return Err(refused(StatusCode::BAD_REQUEST, e)),
                Ok(Err(Opening::Down(e))) => {
                    return Err(refused(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("ERR Redis is unreachable: {e}; nothing was subscribed"),
                    ))
                }
                Err(_) => {
                    return Err(refused(
                        StatusCode::GATEWAY_TIMEOUT,
                        "ERR Redis did not confirm the subscription in time (--request-timeout); nothing was subscribed",
                    ))
                }
            };
        let (tx, rx) = mpsc::channel(64);
        // Room for the first chunk: the channel is new.
        let _ = tx.try_send(Ok(Bytes::from(confirmations)));
        // Seen as changed at once: a shutdown that began while this stream
        // was subscribing ends it too.
        let mut closing = self.closing.subscribe();
        closing.mark_changed();
        let pump = Pump {
            sock,
            buf,
            tx,
            closing,
            ping: self.ping,
            sub,
            _permit: permit,
        };
        tokio::spawn(pump.run());
        let mut r = Response::new(Body { rx });
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // nginx buffers responses unless told not to.
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok(r)
    }
}

/// A place under `--max-streams`, or the refusal past it.
fn limit(permits: &Arc<Semaphore>, max: usize) -> Result<OwnedSemaphorePermit, Refused> {
    if max == 0 {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "NOPERM subscriptions are turned off on this bridge (--max-streams 0)",
        ));
    }
    permits.clone().try_acquire_owned().map_err(|_| {
        refused(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("ERR too many open streams (--max-streams {max}); try again later"),
        )
    })
}

enum Opening {
    /// Redis answered the subscription with an error (400).
    Refused(String),
    /// Redis could not be reached, or broke off (503).
    Down(String),
}

/// Connects (AUTH, SELECT and PING, as the command connections do),
/// subscribes, and waits for one confirmation per name. Returns the
/// connection, what was read past the confirmations, and the
/// confirmations as SSE events.
async fn subscribe(
    target: &Target,
    sub: &Subscription,
) -> Result<(Stream, BytesMut, Vec<u8>), Opening> {
    let mut sock = direct::connect(target).await.map_err(Opening::Down)?;
    let mut cmd = BytesMut::new();
    let args = std::iter::once(sub.command(true)).chain(sub.names.iter().map(|n| n.as_ref()));
    direct::encode(&mut cmd, args.collect::<Vec<_>>().into_iter());
    sock.write_all(&cmd)
        .await
        .map_err(|e| Opening::Down(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::new();
    let mut confirmed = 0;
    while confirmed < sub.names.len() {
        match redis_protocol::resp2::decode::decode_bytes_mut(&mut buf) {
            Ok(Some((f, _, _))) => match reply(f).map_err(Opening::Refused)? {
                Reply::Event { sse, count } => {
                    confirmed += usize::from(count.is_some());
                    out.extend_from_slice(&sse);
                }
                Reply::Pong => {}
            },
            Ok(None) => match sock.read_buf(&mut buf).await {
                Ok(0) => return Err(Opening::Down("closed by Redis".into())),
                Ok(_) => {}
                Err(e) => return Err(Opening::Down(e.to_string())),
            },
            Err(e) => return Err(Opening::Down(format!("bad reply: {e}"))),
        }
    }
    Ok((sock, buf, out))
}

/// Why a stream broke (Redis lost, or silent): the response ends without
/// its last chunk, so the client sees an error rather than a quiet end.
#[derive(Debug)]
pub struct Broken(String);

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the subscription's Redis connection broke: {}", self.0)
    }
}

impl std::error::Error for Broken {}

/// A stream's body: what its [`Pump`] sends. Dropping it (the client went
/// away) ends the pump, which closes the Redis connection.
pub struct Body {
    rx: mpsc::Receiver<Result<Bytes, Broken>>,
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Broken;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Broken>>> {
        self.rx
            .poll_recv(cx)
            .map(|next| next.map(|r| r.map(Frame::data)))
    }
}

/// Moves one stream's messages from its Redis connection to its body.
struct Pump {
    sock: Stream,
    buf: BytesMut,
    tx: mpsc::Sender<Result<Bytes, Broken>>,
    closing: watch::Receiver<bool>,
    ping: Duration,
    sub: Subscription,
    /// Its place under `--max-streams`, given back when the pump ends.
    _permit: OwnedSemaphorePermit,
}

/// How a pump ended.
enum End {
    /// The client left (or took nothing for [`STALL`]): nothing to send.
    Gone,
    /// Shutdown, the subscriptions ended: the stream ends cleanly.
    Done,
    /// Redis lost or silent: the stream breaks.
    Broken(String),
}

impl Pump {
    async fn run(mut self) {
        let end = self.pump().await;
        match end {
            End::Gone => tracing::debug!("a stream's client left"),
            End::Done => {}
            End::Broken(why) => {
                tracing::warn!(error = %why, "a stream's Redis connection broke");
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), self.tx.send(Err(Broken(why))))
                        .await;
            }
        }
        // Dropping the socket closes the connection: Redis forgets the
        // subscriptions with it.
    }

    /// Sends a chunk to the body; `false` if the client is gone or stalled.
    async fn send(&self, chunk: Vec<u8>) -> bool {
        matches!(
            tokio::time::timeout(STALL, self.tx.send(Ok(Bytes::from(chunk)))).await,
            Ok(Ok(()))
        )
    }

    async fn pump(&mut self) -> End {
        let mut tick = tokio::time::interval(self.ping);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last_read = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        // Set at shutdown: until when to wait for the unsubscriptions.
        let mut ending: Option<tokio::time::Instant> = None;
        let mut frames = Vec::new();
        loop {
            // What was read with the confirmations, and each read after.
            loop {
                match redis_protocol::resp2::decode::decode_bytes_mut(&mut self.buf) {
                    Ok(Some((f, _, _))) => frames.push(f),
                    Ok(None) => break,
                    Err(e) => return End::Broken(format!("bad reply: {e}")),
                }
            }
            for f in frames.drain(..) {
                match reply(f) {
                    Ok(Reply::Pong) => {}
                    Ok(Reply::Event { sse, count }) => {
                        if !self.send(sse).await {
                            return End::Gone;
                        }
                        if ending.is_some() && count == Some(0) {
                            return End::Done;
                        }
                    }
                    Err(e) => return End::Broken(e),
                }
            }
            let deadline = ending.unwrap_or_else(|| tokio::time::Instant::now() + STALL);
            tokio::select! {
                biased;
                r = self.sock.read_buf(&mut self.buf) => match r {
                    Ok(0) => return End::Broken("closed by Redis".into()),
                    Ok(_) => last_read = Instant::now(),
                    Err(e) => return End::Broken(e.to_string()),
                },
                () = self.tx.closed() => return End::Gone,
                r = self.closing.changed(), if ending.is_none() => {
                    if r.is_err() || *self.closing.borrow() {
                        let mut cmd = BytesMut::new();
                        direct::encode(&mut cmd, [self.sub.command(false)].into_iter());
                        if self.sock.write_all(&cmd).await.is_err() {
                            return End::Done;
                        }
                        ending = Some(tokio::time::Instant::now() + UNSUBSCRIBE_WAIT);
                    }
                }
                () = tokio::time::sleep_until(deadline), if ending.is_some() => return End::Done,
                _ = tick.tick() => {
                    if ping_sent.is_some_and(|at| last_read < at) {
                        return End::Broken(format!(
                            "Redis did not answer PING within {} ms",
                            self.ping.as_millis()
                        ));
                    }
                    let mut cmd = BytesMut::new();
                    direct::encode(&mut cmd, [b"PING".as_slice()].into_iter());
                    if let Err(e) = self.sock.write_all(&cmd).await {
                        return End::Broken(e.to_string());
                    }
                    ping_sent = Some(Instant::now());
                    // Keeps proxies from closing a quiet stream; a write to
                    // a client that reset its connection fails.
                    if !self.send(b": ping\n\n".to_vec()).await {
                        return End::Gone;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(patterns: bool, names: &[&str]) -> Subscription {
        Subscription {
            patterns,
            names: names
                .iter()
                .map(|n| Bytes::copy_from_slice(n.as_bytes()))
                .collect(),
        }
    }

    #[test]
    fn routes_are_subscribe_and_psubscribe_with_one_name_per_segment() {
        assert_eq!(route("/subscribe/chat"), Some(Ok(sub(false, &["chat"]))));
        assert_eq!(
            route("/psubscribe/news.*"),
            Some(Ok(sub(true, &["news.*"])))
        );
        assert_eq!(route("/SUBSCRIBE/a/b"), Some(Ok(sub(false, &["a", "b"]))));
        assert_eq!(
            route("/subscribe/a%2Fb/caf%C3%A9%20x"),
            Some(Ok(sub(false, &["a/b", "café x"])))
        );
        // An empty name is a channel Redis accepts.
        assert_eq!(route("/subscribe/"), Some(Ok(sub(false, &[""]))));
        for bad in ["/subscribe", "/psubscribe"] {
            let e = route(bad).unwrap().unwrap_err();
            assert!(e.contains("wrong number of arguments"), "{e}");
        }
        assert!(route("/subscribe/%zz").unwrap().is_err());
        for other in [
            "/",
            "",
            "/get/k",
            "/subscriber/x",
            "/unsubscribe/x",
            "/pipeline",
        ] {
            assert_eq!(route(other), None, "{other}");
        }
    }

    #[test]
    fn events_are_one_data_line_and_line_breaks_cannot_forge_one() {
        assert_eq!(
            event(b"message,chat,hello"),
            b"data: message,chat,hello\n\n"
        );
        assert_eq!(event(b""), b"data: \n\n");
        assert_eq!(
            event(b"message,c,a\ndata: message,other,forged\r\n b\rc\r\n"),
            b"data: message,c,a\ndata:data: message,other,forged\ndata:  b\ndata:c\ndata:\n\n"
        );
        // No line of an event but the first begins with "data: " unless
        // the line itself began with a space.
        let e = event(b"x\ndata: y\n\nz");
        let lines: Vec<&[u8]> = e.split(|&b| b == b'\n').collect();
        assert!(lines[0].starts_with(b"data: "));
        assert!(
            lines[1..].iter().all(|l| !l.starts_with(b"data: ")),
            "{e:?}"
        );
    }

    /// Rebuilds the payload from an event as the SSE standard reads it.
    fn sse_read(e: &[u8]) -> Vec<u8> {
        let text = std::str::from_utf8(e).unwrap();
        let mut data: Vec<String> = Vec::new();
        for line in text.split('\n') {
            if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
            }
        }
        data.join("\n").into_bytes()
    }

    #[test]
    fn an_sse_reader_gets_the_payload_back_with_lf_for_each_line_break() {
        for p in [
            &b"message,c,plain"[..],
            b"message,c,two\nlines",
            b"message,c, lead\n  spaces \n",
            b"message,c,crlf\r\nand\rcr",
            b"message,c,\n\n\n",
        ] {
            let want = String::from_utf8(p.to_vec())
                .unwrap()
                .replace("\r\n", "\n")
                .replace('\r', "\n");
            assert_eq!(sse_read(&event(p)), want.into_bytes(), "{p:?}");
        }
    }

    fn bulk(s: &str) -> Resp2Frame {
        Resp2Frame::BulkString(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn pub_sub_replies_become_upstash_events() {
        let r = |parts: Vec<Resp2Frame>| reply(Resp2Frame::Array(parts)).unwrap();
        assert_eq!(
            r(vec![
                bulk("subscribe"),
                bulk("chat"),
                Resp2Frame::Integer(1)
            ]),
            Reply::Event {
                sse: b"data: subscribe,chat,1\n\n".to_vec(),
                count: Some(1)
            }
        );
        assert_eq!(
            r(vec![bulk("message"), bulk("chat"), bulk("{\"a\":1}")]),
            Reply::Event {
                sse: b"data: message,chat,{\"a\":1}\n\n".to_vec(),
                count: None
            }
        );
        assert_eq!(
            r(vec![bulk("pmessage"), bulk("n.*"), bulk("n.1"), bulk("hi")]),
            Reply::Event {
                sse: b"data: pmessage,n.*,n.1,hi\n\n".to_vec(),
                count: None
            }
        );
        assert_eq!(
            r(vec![
                bulk("punsubscribe"),
                bulk("n.*"),
                Resp2Frame::Integer(0)
            ]),
            Reply::Event {
                sse: b"data: punsubscribe,n.*,0\n\n".to_vec(),
                count: Some(0)
            }
        );
        assert_eq!(r(vec![bulk("pong"), bulk("")]), Reply::Pong);
        assert!(reply(Resp2Frame::Error("NOPERM no".into())).is_err());
        assert!(reply(Resp2Frame::Integer(3)).is_err());
    }

    #[test]
    fn the_stream_limit_refuses_past_max_and_frees_a_place_when_a_stream_ends() {
        let permits = Arc::new(Semaphore::new(2));
        let a = limit(&permits, 2).unwrap();
        let _b = limit(&permits, 2).unwrap();
        let e = limit(&permits, 2).unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.message.contains("--max-streams 2"), "{}", e.message);
        drop(a);
        assert!(limit(&permits, 2).is_ok());
        let off = limit(&Arc::new(Semaphore::new(0)), 0).unwrap_err();
        assert_eq!(off.status, StatusCode::FORBIDDEN);
        assert!(off.message.starts_with("NOPERM"));
    }

    #[test]
    fn a_sentinel_url_subscribes_at_its_master_and_a_cluster_uses_a_node_of_its_url() {
        let s = Streams::new(
            "redis-sentinel://:pw@h1:26379/0?sentinelServiceName=m&node=h2:26380",
            None,
            4,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let t = s.target.unwrap();
        let sentinel = t.sentinel.as_ref().expect("resolved through the sentinels");
        assert_eq!((sentinel.service.as_str(), sentinel.count()), ("m", 2));
        assert_eq!(t.password.as_deref(), Some("pw"));
        assert!(
            sentinel.password.is_none(),
            "the master's password is not the sentinels'"
        );
        let c = Streams::new(
            "redis-cluster://:pw@10.0.0.1:7000?node=10.0.0.2:7001",
            None,
            4,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let t = c.target.unwrap();
        assert!(
            [("10.0.0.1", 7000), ("10.0.0.2", 7001)].contains(&(t.host.as_str(), t.port)),
            "{t:?}"
        );
        assert_eq!(t.database, None);
        assert_eq!(t.password.as_deref(), Some("pw"));
        let one = Streams::new(
            "redis://u:p@127.0.0.1:6380/3",
            None,
            4,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert_eq!(one.open_count(), 0);
        let t = one.target.unwrap();
        assert_eq!(
            (t.port, t.database, t.username.as_deref()),
            (6380, Some(3), Some("u"))
        );
    }
}
