//! Redis: plain commands, pipelines and transactions on the bridge's own
//! multiplexed connections (`crate::direct`, which batch every request
//! queued since their last wakeup into one write): to one server, to the
//! master the sentinels name (`crate::sentinel`), or to every master of a
//! Redis Cluster (`crate::cluster`). Over TLS (`rediss`), all of them use
//! the bridge's rustls settings (`crate::tls`). fred parses the URL.
//!
//! Replies come back as raw RESP frames (`direct`'s), so values keep their
//! exact bytes and a Redis error is a frame, not a Rust error: an `Err`
//! here always means Redis gave no answer, and says whether the command
//! may have run ([`Unavailable`]). A command that may have run is never
//! sent again: an `INCRBY` whose reply was lost must not run twice (on a
//! cluster, only what Redis did not run is routed again: a redirect, a
//! part that could not be sent).

use crate::cluster::Cluster;
use crate::direct::{Conn, Limits, Target};
use crate::protocol::{self, Command};
use fred::prelude::*;
use fred::types::Resp3Frame;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::ClientConfig;

pub use crate::direct::Unavailable;

fn no_connection() -> Unavailable {
    Unavailable::unsent("no connection to Redis (reconnecting)")
}

/// How a transaction ended.
#[derive(Debug)]
pub enum TxOutcome {
    /// EXEC ran: one reply per command.
    Executed(Vec<Resp3Frame>),
    /// Redis refused to queue a command; nothing ran (`EXECABORT ...`).
    Discarded(String),
}

/// The replies to one `[ASKING], MULTI, cmds..., EXEC` request.
pub(crate) struct TxReplies {
    multi: Resp3Frame,
    /// One per command: `QUEUED`, or why Redis refused to queue it.
    queued: Vec<Resp3Frame>,
    exec: Resp3Frame,
}

impl TxReplies {
    /// The first command Redis refused to queue, and its error.
    pub(crate) fn refused(&self) -> Option<(usize, String)> {
        self.queued
            .iter()
            .enumerate()
            .find_map(|(i, f)| protocol::error_text(f).map(|e| (i, e)))
    }

    /// The error of the first command Redis refused to queue.
    pub(crate) fn refused_frame(&self) -> Option<&Resp3Frame> {
        self.queued
            .iter()
            .find(|f| protocol::error_text(f).is_some())
    }

    /// What the transaction did, as the bridge answers it.
    pub(crate) fn outcome(self, cmds: &[Command]) -> Result<TxOutcome, Unavailable> {
        if !matches!(&self.multi, Resp3Frame::SimpleString { data, .. } if data.as_ref() == b"OK") {
            // Not in MULTI: the commands after it ran one by one, or not.
            return Err(Unavailable::lost(format!(
                "MULTI was refused ({}): the commands of the transaction may have run outside it",
                protocol::error_text(&self.multi).unwrap_or_else(|| format!("{:?}", self.multi))
            )));
        }
        if let Some((i, e)) = self.refused() {
            // Redis discards the whole transaction at EXEC (EXECABORT).
            return Ok(TxOutcome::Discarded(format!(
                "EXECABORT Transaction discarded because of an error in {}: {e}",
                protocol::command_name(&cmds[i])
            )));
        }
        if !self.queued.iter().all(
            |f| matches!(f, Resp3Frame::SimpleString { data, .. } if data.as_ref() == b"QUEUED"),
        ) {
            return Err(Unavailable::lost("the transaction's connection left MULTI"));
        }
        match self.exec {
            Resp3Frame::Array { data, .. } if data.len() == cmds.len() => {
                Ok(TxOutcome::Executed(data))
            }
            other => match protocol::error_text(&other) {
                Some(e) => Ok(TxOutcome::Discarded(e)),
                None => Err(Unavailable::lost(
                    "EXEC answered with something else than one reply per command",
                )),
            },
        }
    }
}

/// Sends `[ASKING,] MULTI, cmds..., EXEC` on `conn` as one request: they
/// leave in one write, in order, and the connection's other requests go
/// before or after them, never between (its writer copies each request
/// whole into its buffer), so no other client's command runs inside the
/// transaction.
pub(crate) async fn exec_on(
    conn: &Conn,
    cmds: &[Command],
    asking: bool,
) -> Result<TxReplies, Unavailable> {
    let word = |w: &'static str| vec![bytes::Bytes::from_static(w.as_bytes())];
    let mut all = Vec::with_capacity(cmds.len() + 3);
    if asking {
        all.push(word("ASKING"));
    }
    all.push(word("MULTI"));
    all.extend(cmds.iter().cloned());
    all.push(word("EXEC"));
    let mut replies = conn.run(&all).await?.into_iter();
    if asking {
        replies.next();
    }
    let multi = replies.next().expect("one reply per command");
    let queued: Vec<Resp3Frame> = replies.by_ref().take(cmds.len()).collect();
    let exec = replies.next().expect("one reply per command");
    Ok(TxReplies {
        multi,
        queued,
        exec,
    })
}

/// What `/healthz` says.
pub struct Health {
    /// Redis answers (on a cluster: at least one master does).
    pub up: bool,
    /// On a cluster: the slot ranges (first, last) with no master that
    /// answers PING.
    pub slots_down: Vec<(u16, u16)>,
}

/// The Redis side of the bridge.
pub struct Backend {
    /// The bridge's own multiplexed connections (`crate::direct`) to one
    /// Redis server or the master behind Sentinel; empty on a cluster.
    direct: Vec<Conn>,
    /// A Redis Cluster, on direct connections too (`crate::cluster`).
    cluster: Option<Cluster>,
    next: AtomicUsize,
}

impl Backend {
    /// Connects (in the background: the bridge starts while Redis is down
    /// and serves 503 until it is up) `pool` multiplexed connections (on
    /// a cluster, per master); waits up to 2 s for them, so that the first
    /// requests find them up. `limits.timeout` is the request timeout of
    /// every command.
    pub async fn connect(
        url: &str,
        pool: usize,
        limits: Limits,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<Backend, String> {
        // TLS is the bridge's settings (`crate::tls::settings`): never
        // plain text once asked for.
        if tls.is_some() != crate::tls::url_wants_tls(url) {
            return Err(format!(
                "--redis-url {}: {}",
                redact(url),
                if tls.is_some() {
                    "TLS settings for a plain-text URL"
                } else {
                    "a TLS URL (rediss://) without TLS settings"
                }
            ));
        }
        let config = Config::from_url(&crate::tls::plain_scheme(url))
            .map_err(|e| format!("--redis-url {}: {}", redact(url), e.details()))?;
        let direct: Vec<Conn> = match &config.server {
            ServerConfig::Centralized { .. } | ServerConfig::Sentinel { .. } => {
                let target = Target::from_config(&config, tls.clone())
                    .map_err(|e| format!("--redis-url {}: {e}", redact(url)))?;
                (0..pool.max(1))
                    .map(|_| Conn::start(target.clone(), limits))
                    .collect()
            }
            _ => Vec::new(),
        };
        let cluster = match &config.server {
            ServerConfig::Clustered { hosts, .. } => {
                let seeds: Vec<(String, u16)> =
                    hosts.iter().map(|h| (h.host.to_string(), h.port)).collect();
                let base = Target::from_config(&config, tls)
                    .map_err(|e| format!("--redis-url {}: {e}", redact(url)))?;
                Some(Cluster::connect(base, seeds, pool, limits).await)
            }
            _ if direct.is_empty() => {
                return Err(format!(
                    "--redis-url {}: not a server, cluster or sentinel URL",
                    redact(url)
                ))
            }
            _ => None,
        };
        // Give the connections a moment, so the first requests find them
        // up; with Redis down, start anyway and answer 503 until it is back.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while !direct.iter().all(Conn::is_up) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        Ok(Backend {
            direct,
            cluster,
            next: AtomicUsize::new(0),
        })
    }

    /// The next direct connection that is up, round robin.
    fn conn(&self) -> Result<&Conn, Unavailable> {
        let n = self.direct.len();
        if n == 1 {
            return Ok(&self.direct[0]);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &self.direct[(start + k) % n])
            .find(|c| c.is_up())
            .ok_or_else(no_connection)
    }

    /// On a cluster, whether some master is reachable: then a failure is
    /// its slots' alone, and the bridge says so (`"partial": true` in the
    /// answer), so that a client's circuit breaker does not count it
    /// against the whole tier. Always false for one server or Sentinel.
    pub fn partly_up(&self) -> bool {
        self.cluster.as_ref().is_some_and(Cluster::some_master_up)
    }

    /// For `/metrics`: requests and bytes queued for Redis and not yet
    /// written, the bridge's own connections up, and how many it has
    /// (on a cluster, summed over the masters).
    pub fn queue_gauges(&self) -> (usize, usize, usize, usize) {
        if let Some(c) = &self.cluster {
            return c.queue_gauges();
        }
        self.direct.iter().fold((0, 0, 0, 0), |(j, b, up, n), c| {
            let (cj, cb) = c.queued();
            (j + cj, b + cb, up + usize::from(c.is_up()), n + 1)
        })
    }

    /// Runs `cmds` as one pipeline on one connection, in order, and returns
    /// one reply per command (a Redis error is an error frame in its place),
    /// within the request timeout.
    pub async fn pipeline(&self, cmds: &[Command]) -> Result<Vec<Resp3Frame>, Unavailable> {
        if let Some(c) = &self.cluster {
            return c.pipeline(cmds).await;
        }
        self.conn()?.run(cmds).await
    }

    /// Runs `cmds` in MULTI/EXEC, atomically: on a direct connection, as
    /// one request (`MULTI`, the commands, `EXEC` leave together in one
    /// write, and no other request's commands come between them).
    pub async fn transaction(&self, cmds: &[Command]) -> Result<TxOutcome, Unavailable> {
        if let Some(c) = &self.cluster {
            return c.transaction(cmds).await;
        }
        exec_on(self.conn()?, cmds, false).await?.outcome(cmds)
    }

    /// Whether Redis answers PING; on a cluster, which slot ranges have
    /// no master that answers.
    pub async fn health(&self) -> Health {
        match &self.cluster {
            Some(c) => {
                let h = c.health().await;
                Health {
                    up: h.up > 0,
                    slots_down: h.down,
                }
            }
            None => Health {
                up: self.ping().await,
                slots_down: Vec::new(),
            },
        }
    }

    /// Whether Redis answers PING.
    pub async fn ping(&self) -> bool {
        let Ok(conn) = self.conn() else {
            return false;
        };
        let ping = vec![bytes::Bytes::from_static(b"PING")];
        matches!(
            conn.run(&[ping]).await,
            Ok(f) if matches!(f.as_slice(), [Resp3Frame::SimpleString { .. }])
        )
    }

    /// Closes every connection.
    pub async fn quit(&self) {
        if let Some(c) = &self.cluster {
            c.close();
            return;
        }
        for c in &self.direct {
            c.close();
        }
    }
}

/// A Redis URL without its password, for logs and errors: the user
/// information (`user:password@`) and the value of any query parameter
/// whose name says password (a sentinel's) become `***`.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let (rest, query) = match rest.find('?') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut out = String::from(scheme);
    match rest.rfind('@') {
        Some(at) => {
            out.push_str("***");
            out.push_str(&rest[at..]);
        }
        None => out.push_str(rest),
    }
    if let Some(q) = query {
        out.push('?');
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            timeout: Duration::from_secs(1),
            max_queue: 10,
            max_queue_bytes: 1 << 20,
        }
    }

    #[tokio::test]
    async fn a_tls_url_is_never_used_in_plain_text() {
        for url in ["rediss://127.0.0.1:6380", "REDISS://:pw@host:6380/0"] {
            let e = Backend::connect(url, 1, limits(), None)
                .await
                .err()
                .expect("refused");
            assert!(e.contains("rediss://") && e.contains("without TLS"), "{e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_its_password() {
        for url in [
            "redis://:s3cret@127.0.0.1:notaport",
            "redis://u:s3cret@[::1:6379",
        ] {
            let e = Backend::connect(url, 1, limits(), None)
                .await
                .err()
                .expect("refused");
            assert!(e.contains("--redis-url") && !e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn urls_are_redacted() {
        for (url, want) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:pw@host:6379/2", "redis://***@host:6379/2"),
            ("redis://user:p@ss@host", "redis://***@host"),
            ("rediss://u:pw@h:1", "rediss://***@h:1"),
            ("user:pw@host", "***@host"),
            (
                "redis-sentinel://:pw@h1:26379,h2/0?sentinelServiceName=m&sentinelPassword=pw2",
                "redis-sentinel://***@h1:26379,h2/0?sentinelServiceName=m&sentinelPassword=***",
            ),
        ] {
            assert_eq!(redact(url), want);
        }
    }
}
