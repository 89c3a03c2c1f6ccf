//! Redis: plain commands, pipelines and transactions on the bridge's own
//! multiplexed connections (`crate::direct`, which batch every request
//! queued since their last wakeup into one write): to one server, to the
//! master the sentinels name (`crate::sentinel`), or to every master of a
//! Redis Cluster (`crate::cluster`). Over TLS (`rediss`), all of them use
//! the bridge's rustls settings (`crate::tls`). fred parses the URL.
//!
//! Replies come back as raw RESP frames (`custom_raw`, or `direct`'s), so
//! values keep their exact bytes and a Redis error is a frame, not a Rust
//! error: an `Err` here always means the outcome is unknown (Redis
//! unreachable, connection lost, timed out). Commands are never retried by
//! the bridge (`max_command_attempts = 1`; `direct` never resends): an
//! `INCRBY` whose reply was lost must not run twice.

use crate::cluster::Cluster;
use crate::direct::{Conn, Limits, Target};
use crate::policy;
use crate::protocol::{self, Command};
use fred::clients::ExclusivePool;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Resp3Frame};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::rustls::ClientConfig;

pub use crate::direct::Unavailable;

/// fred does not say whether a failed command was sent: its outcome is
/// unknown.
fn unavailable(e: Error) -> Unavailable {
    if *e.kind() == ErrorKind::Timeout {
        Unavailable::Timeout { sent: true }
    } else {
        Unavailable::lost(e.details().to_string())
    }
}

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
    /// The bridge's own multiplexed connections for commands and
    /// pipelines, on a single Redis server or behind Sentinel
    /// (`crate::direct`); empty for a cluster URL, which goes through
    /// fred's `pool`.
    direct: Vec<Conn>,
    /// A Redis Cluster, on direct connections too (`crate::cluster`).
    cluster: Option<Cluster>,
    pool: Pool,
    /// When each pooled connection was last reported lost (ms since
    /// `epoch`, 0 while up), from fred's connection events: a request picks
    /// one that is up, or fails at once. fred's own fail-fast check still
    /// passes in the moments between a connection breaking and its first
    /// reconnection attempt. An error event that did not cost the
    /// connection would leave it "lost" for good, so after a second fred's
    /// own state decides again.
    lost: Arc<Vec<AtomicU64>>,
    epoch: Instant,
    next: AtomicUsize,
    /// fred's connections for transactions, for a sentinel URL only.
    tx: Option<ExclusivePool>,
    options: Options,
}

impl Backend {
    /// Connects (in the background: the bridge starts while Redis is down
    /// and serves 503 until it is up) `pool` multiplexed connections and
    /// `tx` connections for transactions; waits up to 2 s for all of them,
    /// so that the first requests find them up. `limits.timeout` is the
    /// request timeout of every command.
    pub async fn connect(
        url: &str,
        pool: usize,
        tx: usize,
        limits: Limits,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<Backend, String> {
        let timeout = limits.timeout;
        // TLS is the bridge's settings (`crate::tls::settings`), given to
        // fred too for the transactions: never plain text once asked for.
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
        let mut config = Config::from_url(&crate::tls::plain_scheme(url))
            .map_err(|e| format!("--redis-url {}: {}", redact(url), e.details()))?;
        config.tls = tls.clone().map(|c| {
            fred::types::config::TlsConnector::from(tokio_rustls::TlsConnector::from(c)).into()
        });
        // Keep reconnecting in the background rather than failing at start.
        config.fail_fast = false;
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
        if let ServerConfig::Clustered { hosts, .. } = &config.server {
            let seeds: Vec<(String, u16)> =
                hosts.iter().map(|h| (h.host.to_string(), h.port)).collect();
            let base = Target::from_config(&config, tls)
                .map_err(|e| format!("--redis-url {}: {e}", redact(url)))?;
            let cluster = Cluster::connect(base, seeds, pool, limits).await;
            // fred is not used: its pool is built, never connected.
            let pool = Builder::from_config(config)
                .build_pool(1)
                .map_err(|e| e.details().to_string())?;
            return Ok(Backend {
                direct,
                cluster: Some(cluster),
                pool,
                lost: Arc::new(Vec::new()),
                epoch: Instant::now(),
                next: AtomicUsize::new(0),
                tx: None,
                options: Options::default(),
            });
        }
        // fred's pool serves the plain commands only without direct
        // connections; it keeps one idle connection otherwise.
        let fred_pool = if direct.is_empty() { pool.max(1) } else { 1 };
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
                c.max_command_attempts = 1;
                c.tcp = TcpConfig {
                    nodelay: Some(true),
                    ..Default::default()
                };
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 1_000, 2));
        let pool = builder
            .build_pool(fred_pool)
            .map_err(|e| e.details().to_string())?;
        // Transactions need fred's connections of their own only without
        // direct connections (a sentinel URL).
        let tx = if direct.is_empty() {
            Some(
                builder
                    .build_exclusive_pool(tx.max(1))
                    .map_err(|e| e.details().to_string())?,
            )
        } else {
            None
        };
        if let Some(tx) = &tx {
            pool.connect_pool();
            tx.connect_pool().await;
        }
        // Give the connections a moment, so the first requests find them up
        // (the transactions' too: /multi-exec answered 503 for the first
        // 100 ms without it); with Redis down, start anyway and answer 503
        // until it is back.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            if let Some(tx) = &tx {
                let _ = tx.wait_for_connect().await;
                for c in pool.clients() {
                    let _ = c.wait_for_connect().await;
                }
            } else {
                while !direct.iter().all(Conn::is_up) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
        .await;
        let options = Options {
            fail_fast: true,
            max_attempts: Some(1),
            timeout: Some(timeout),
            ..Default::default()
        };
        let epoch = Instant::now();
        let since = move || (epoch.elapsed().as_millis() as u64).max(1);
        let lost: Arc<Vec<AtomicU64>> =
            Arc::new(pool.clients().iter().map(|_| AtomicU64::new(0)).collect());
        for (i, c) in pool.clients().iter().enumerate() {
            let (mut errors, mut reconnects) = (c.error_rx(), c.reconnect_rx());
            let (lost_e, lost_r) = (lost.clone(), lost.clone());
            tokio::spawn(async move {
                while let Ok((e, _)) = errors.recv().await {
                    tracing::warn!(error = %e.details(), "redis connection lost");
                    lost_e[i].store(since(), Ordering::Relaxed);
                }
            });
            tokio::spawn(async move {
                while reconnects.recv().await.is_ok() {
                    tracing::info!("redis connection restored");
                    lost_r[i].store(0, Ordering::Relaxed);
                }
            });
            // Events before the listeners existed.
            if !c.is_connected() {
                lost[i].store(since(), Ordering::Relaxed);
            }
        }
        Ok(Backend {
            direct,
            cluster: None,
            pool,
            lost,
            epoch,
            next: AtomicUsize::new(0),
            tx,
            options,
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

    /// The next pooled connection that is up, round robin.
    fn client(&self) -> Result<&Client, Unavailable> {
        let n = self.lost.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64;
        let usable = |i: usize| match self.lost[i].load(Ordering::Relaxed) {
            0 => true,
            at => now.saturating_sub(at) > 1_000 && self.pool.clients()[i].is_connected(),
        };
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| usable(i))
            .map(|i| &self.pool.clients()[i])
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
    /// (zeros for a cluster URL, whose queues are fred's).
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
        if !self.direct.is_empty() {
            return self.conn()?.run(cmds).await;
        }
        let client = self.client()?.with_options(&self.options);
        if let [c] = cmds {
            let (cmd, args) = custom(c);
            return client
                .custom_raw(cmd, args)
                .await
                .map(|f| vec![f])
                .map_err(unavailable);
        }
        // Every command is handed to the connection's writer before the
        // first await completes (join_all polls in order), so they leave in
        // one write, in order: a real pipeline, one round trip.
        let replies = futures::future::join_all(cmds.iter().map(|c| {
            let (cmd, args) = custom(c);
            client.custom_raw(cmd, args)
        }))
        .await;
        replies
            .into_iter()
            .map(|r| r.map_err(unavailable))
            .collect()
    }

    /// Runs `cmds` in MULTI/EXEC, atomically: on a direct connection, as
    /// one request (`MULTI`, the commands, `EXEC` leave together in one
    /// write, and no other request's commands come between them); on fred
    /// (a sentinel URL), on a connection of its own.
    pub async fn transaction(&self, cmds: &[Command]) -> Result<TxOutcome, Unavailable> {
        if let Some(c) = &self.cluster {
            return c.transaction(cmds).await;
        }
        if !self.direct.is_empty() {
            return exec_on(self.conn()?, cmds, false).await?.outcome(cmds);
        }
        let Some(tx) = &self.tx else {
            return Err(no_connection());
        };
        let guard = tx.acquire().await;
        if !guard.is_connected() {
            return Err(no_connection());
        }
        let client = guard.with_options(&self.options);
        let result = run_transaction(&client, cmds).await;
        if result.is_err() {
            // The connection may still be inside MULTI: leave it clean for
            // the next transaction, or drop it.
            let (cmd, args) = named("DISCARD");
            if client.custom_raw(cmd, args).await.is_err() {
                let _ = guard.force_reconnection().await;
            }
        }
        result
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
        if !self.direct.is_empty() {
            let Ok(conn) = self.conn() else {
                return false;
            };
            let ping = vec![bytes::Bytes::from_static(b"PING")];
            return matches!(
                conn.run(&[ping]).await,
                Ok(f) if matches!(f.as_slice(), [Resp3Frame::SimpleString { .. }])
            );
        }
        let (cmd, args) = named("PING");
        let Ok(client) = self.client() else {
            return false;
        };
        matches!(
            client
                .with_options(&self.options)
                .custom_raw(cmd, args)
                .await,
            Ok(Resp3Frame::SimpleString { .. })
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
        let _ = self.pool.quit().await;
        if let Some(tx) = &self.tx {
            let _ = tx.quit().await;
        }
    }
}

async fn run_transaction<C: ClientLike>(
    client: &C,
    cmds: &[Command],
) -> Result<TxOutcome, Unavailable> {
    let (multi, none) = named("MULTI");
    expect_ok(client.custom_raw(multi, none).await.map_err(unavailable)?)?;
    for c in cmds {
        let (cmd, args) = custom(c);
        let reply = client.custom_raw(cmd, args).await.map_err(unavailable)?;
        if let Some(e) = protocol::error_text(&reply) {
            let (discard, none) = named("DISCARD");
            client
                .custom_raw(discard, none)
                .await
                .map_err(unavailable)?;
            return Ok(TxOutcome::Discarded(format!(
                "EXECABORT Transaction discarded because of an error in {}: {e}",
                protocol::command_name(c)
            )));
        }
        if !matches!(&reply, Resp3Frame::SimpleString { data, .. } if data.as_ref() == b"QUEUED") {
            return Err(Unavailable::lost("the transaction's connection left MULTI"));
        }
    }
    let (exec, none) = named("EXEC");
    match client.custom_raw(exec, none).await.map_err(unavailable)? {
        Resp3Frame::Array { data, .. } if data.len() == cmds.len() => Ok(TxOutcome::Executed(data)),
        other => match protocol::error_text(&other) {
            Some(e) => Ok(TxOutcome::Discarded(e)),
            None => Err(Unavailable::lost(
                "EXEC answered with something else than one reply per command",
            )),
        },
    }
}

fn expect_ok(reply: Resp3Frame) -> Result<(), Unavailable> {
    match &reply {
        Resp3Frame::SimpleString { data, .. } if data.as_ref() == b"OK" => Ok(()),
        _ => Err(Unavailable::lost(format!("MULTI answered {reply:?}"))),
    }
}

fn named(name: &'static str) -> (CustomCommand, Vec<Value>) {
    (
        CustomCommand::new_static(name, ClusterHash::FirstKey, false),
        Vec::new(),
    )
}

/// A command for fred: its name, how a cluster routes it, and its
/// arguments as bytes.
fn custom(c: &Command) -> (CustomCommand, Vec<Value>) {
    let name = protocol::command_name(c);
    let hash = if policy::is_keyless(&name) {
        ClusterHash::Random
    } else {
        ClusterHash::FirstKey
    };
    // Nothing blocking gets here (the policy's never-list).
    let args = c[1..].iter().map(|a| Value::Bytes(a.clone())).collect();
    (CustomCommand::new(name, hash, false), args)
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
            let e = Backend::connect(url, 1, 1, limits(), None)
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
            let e = Backend::connect(url, 1, 1, limits(), None)
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
