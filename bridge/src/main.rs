//! The `edgecache-bridge` binary: flags (each with an environment
//! variable), logs, signals; the work is in the library.
use clap::Parser;
use edgecache_bridge::{
    backend::{redact, Backend},
    direct::Limits,
    policy::Policy,
    server, sse, tls,
};
use std::time::Duration;

// glibc's malloc and free were 12% of the bridge's CPU per request under
// `wrk -t2 -c64` (perf; issue 19 §1): every request allocates a few small
// buffers and frees them on another path.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An HTTP-to-Redis bridge speaking the Upstash REST protocol.
///
/// Point `@upstash/redis` or edgecache's `RedisRest` at it with its URL and
/// token. Prefer the environment variables for tokens: command-line
/// arguments are visible to other users of the machine.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on (port 0: any free port; the first line on
    /// stdout says which: `listening on http://ADDR`).
    #[arg(
        long,
        env = "EDGECACHE_BRIDGE_LISTEN",
        default_value = "127.0.0.1:8079"
    )]
    listen: String,
    /// The Redis to serve. One server: redis://[[user]:password@]host:port[/db];
    /// a cluster: redis-cluster://[[user]:password@]host:port?node=host:port&node=...
    /// (any of its nodes; the bridge reads the rest from CLUSTER SLOTS);
    /// behind Sentinel: redis-sentinel://[[user]:password@]host:port[/db]?sentinelServiceName=NAME[&node=host:port...][&sentinelUsername=U][&sentinelPassword=P]
    /// (host:port and each node are sentinels; the password before @ is
    /// the master's). rediss://, rediss-cluster://, rediss-sentinel://: the
    /// same over TLS (see --redis-ca). It holds the password: prefer the
    /// environment variable.
    #[arg(
        long,
        env = "EDGECACHE_BRIDGE_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// TLS to Redis (rediss:// URLs only): trust the CA certificates in
    /// this PEM file instead of the system roots. The server's name is
    /// verified too: the URL's host (a cluster node's, or the address
    /// Sentinel gives for the master).
    #[arg(long, env = "EDGECACHE_BRIDGE_REDIS_CA")]
    redis_ca: Option<std::path::PathBuf>,
    /// TLS to Redis: a client certificate (PEM, the chain) to present, for
    /// a Redis with `tls-auth-clients yes`; with --redis-key.
    #[arg(long, env = "EDGECACHE_BRIDGE_REDIS_CERT")]
    redis_cert: Option<std::path::PathBuf>,
    /// TLS to Redis: the private key (PEM) of --redis-cert.
    #[arg(long, env = "EDGECACHE_BRIDGE_REDIS_KEY")]
    redis_key: Option<std::path::PathBuf>,
    /// The bearer token that may run every allowed command. A random
    /// base64url token may begin with `-`; that is read as the value.
    #[arg(
        long,
        env = "EDGECACHE_BRIDGE_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    token: String,
    /// A second token that may run reading commands only.
    #[arg(
        long,
        env = "EDGECACHE_BRIDGE_READ_ONLY_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    read_only_token: Option<String>,
    /// Largest request body in bytes; larger ones get 413 unread.
    #[arg(long, env = "EDGECACHE_BRIDGE_MAX_BODY", default_value_t = 10 << 20)]
    max_body: usize,
    /// Most commands in one /pipeline or /multi-exec request.
    #[arg(long, env = "EDGECACHE_BRIDGE_MAX_PIPELINE", default_value_t = 10_000)]
    max_pipeline: usize,
    /// Most open client connections; more wait until one closes.
    #[arg(long, env = "EDGECACHE_BRIDGE_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Milliseconds Redis has to answer a request (then 504); a connection
    /// on which Redis reads or answers nothing for this long while
    /// requests wait is closed and opened again.
    #[arg(
        long,
        env = "EDGECACHE_BRIDGE_REQUEST_TIMEOUT",
        default_value_t = 5_000
    )]
    request_timeout: u64,
    /// Most requests queued for a Redis connection and not yet written;
    /// past it (or --max-queue-bytes), requests fail at once with 503.
    #[arg(long, env = "EDGECACHE_BRIDGE_MAX_QUEUE", default_value_t = 10_000)]
    max_queue: usize,
    /// Most bytes of commands queued for a Redis connection and not yet
    /// written (a larger request is taken when the queue is empty).
    #[arg(long, env = "EDGECACHE_BRIDGE_MAX_QUEUE_BYTES", default_value_t = 64 << 20)]
    max_queue_bytes: usize,
    /// Milliseconds a client has to send its request headers (idle
    /// keep-alive connections are closed after this too).
    #[arg(
        long,
        env = "EDGECACHE_BRIDGE_HEADER_TIMEOUT",
        default_value_t = 10_000
    )]
    header_timeout: u64,
    /// Milliseconds a client has to send its request body (then 408).
    #[arg(long, env = "EDGECACHE_BRIDGE_BODY_TIMEOUT", default_value_t = 10_000)]
    body_timeout: u64,
    /// Milliseconds given to requests in flight on SIGTERM or SIGINT.
    #[arg(
        long,
        env = "EDGECACHE_BRIDGE_SHUTDOWN_TIMEOUT",
        default_value_t = 30_000
    )]
    shutdown_timeout: u64,
    /// Multiplexed Redis connections for commands, pipelines and
    /// transactions (one pipelines concurrent requests best: measured
    /// faster than 2 or 4); on a cluster, per master.
    #[arg(long, env = "EDGECACHE_BRIDGE_POOL_SIZE", default_value_t = 1)]
    pool_size: usize,
    /// No effect: a transaction is one request on the multiplexed
    /// connections (kept so that existing command lines still start).
    #[arg(long, env = "EDGECACHE_BRIDGE_TX_POOL_SIZE", default_value_t = 2)]
    #[allow(dead_code)]
    tx_pool_size: usize,
    /// Threads serving HTTP and Redis. 0: half the CPUs (at least one),
    /// leaving the rest to Redis and the kernel's network stack; 1 runs
    /// everything on one thread, which on 2 CPUs shared with Redis was
    /// measured fastest.
    #[arg(long, env = "EDGECACHE_BRIDGE_THREADS", default_value_t = 0)]
    threads: usize,
    /// Most open /subscribe and /psubscribe streams, each on a Redis
    /// connection of its own; past it, 503. 0 turns subscriptions off.
    #[arg(long, env = "EDGECACHE_BRIDGE_MAX_STREAMS", default_value_t = 256)]
    max_streams: usize,
    /// Milliseconds between the `: ping` comments on a stream (keeping
    /// proxies from closing a quiet one) and the PINGs to its Redis
    /// connection (one unanswered until the next breaks the stream).
    #[arg(long, env = "EDGECACHE_BRIDGE_STREAM_PING", default_value_t = 15_000)]
    stream_ping: u64,
    /// Commands to deny besides the defaults (comma-separated; CMD or CMD|SUB).
    #[arg(long, env = "EDGECACHE_BRIDGE_DENY", value_delimiter = ',')]
    deny: Vec<String>,
    /// Commands to take off the default deny list (comma-separated).
    #[arg(long, env = "EDGECACHE_BRIDGE_ALLOW", value_delimiter = ',')]
    allow: Vec<String>,
    /// Serve `GET /metrics` (Prometheus text format) on --listen to this
    /// bearer token, and only to it (16 characters or more, and neither
    /// --token nor --read-only-token); with --metrics-listen, required
    /// there too.
    #[arg(
        long,
        env = "EDGECACHE_BRIDGE_METRICS_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    metrics_token: Option<String>,
    /// Serve `GET /metrics` on an address of its own (port 0: any free
    /// port; the second line on stdout says which: `metrics on
    /// http://ADDR/metrics`), without a token unless --metrics-token is set.
    #[arg(long, env = "EDGECACHE_BRIDGE_METRICS_LISTEN")]
    metrics_listen: Option<String>,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("edgecache-bridge: {msg}");
    std::process::exit(2);
}

fn main() {
    let args = Args::parse();
    let threads = match args.threads {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| n.get() / 2)
            .max(1),
        n => n,
    };
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    runtime.unwrap_or_else(|e| fail(e)).block_on(run(args));
}

async fn run(args: Args) {
    // Colours only on a terminal (not in a file or a log collector); fred,
    // which now serves sentinel URLs only, logs its errors
    // (its shutdown chatter is noise) unless RUST_LOG says otherwise.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fred=error")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    if args.token.len() < 16 {
        fail("--token must be at least 16 characters (a random one: openssl rand -base64 32)");
    }
    if args.read_only_token.as_deref() == Some(args.token.as_str()) {
        fail("--read-only-token must differ from --token");
    }
    if let Some(t) = &args.metrics_token {
        if t.len() < 16 {
            fail("--metrics-token must be at least 16 characters");
        }
        if *t == args.token || args.read_only_token.as_ref() == Some(t) {
            fail("--metrics-token must differ from --token and --read-only-token");
        }
    }
    let policy = Policy::new(&args.deny, &args.allow).unwrap_or_else(|e| fail(e));
    let ms = Duration::from_millis;
    let limits = Limits {
        timeout: ms(args.request_timeout),
        max_queue: args.max_queue.max(1),
        max_queue_bytes: args.max_queue_bytes,
    };
    let tls = tls::settings(
        &args.redis_url,
        &tls::Files {
            ca: args.redis_ca.clone(),
            cert: args.redis_cert.clone(),
            key: args.redis_key.clone(),
        },
    )
    .unwrap_or_else(|e| fail(e));
    let backend = Backend::connect(&args.redis_url, args.pool_size, limits, tls.clone())
        .await
        .unwrap_or_else(|e| fail(e));
    let streams = sse::Streams::new(
        &args.redis_url,
        tls,
        args.max_streams,
        ms(args.stream_ping),
        ms(args.request_timeout),
    );
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .unwrap_or_else(|e| fail(format!("--listen {}: {e}", args.listen)));
    let addr = listener.local_addr().unwrap_or_else(|e| fail(e));
    let metrics_listener = match &args.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .unwrap_or_else(|e| fail(format!("--metrics-listen {a}: {e}"))),
        ),
        None => None,
    };
    // SIGTERM and SIGINT are caught from before the bridge says it listens:
    // a process manager may stop it as soon as it is ready, and a signal
    // that came before its handler would kill it without draining.
    let stop = shutdown_signal();
    // The first line on stdout, for scripts and tests that start the bridge.
    println!("listening on http://{addr}");
    if let Some(l) = &metrics_listener {
        println!(
            "metrics on http://{}/metrics",
            l.local_addr().unwrap_or_else(|e| fail(e))
        );
    }
    tracing::info!(%addr, redis = %redact(&args.redis_url), "edgecache-bridge ready");
    let settings = server::Settings {
        token: args.token,
        read_only_token: args.read_only_token,
        policy,
        max_body: args.max_body,
        max_pipeline: args.max_pipeline.max(1),
        max_connections: args.max_connections,
        request_timeout: ms(args.request_timeout),
        header_timeout: ms(args.header_timeout),
        body_timeout: ms(args.body_timeout),
        shutdown_timeout: ms(args.shutdown_timeout),
        metrics_token: args.metrics_token,
        metrics_listener,
        streams,
    };
    server::serve(listener, backend, settings, stop).await;
}

/// Registers the SIGTERM and SIGINT handlers now (a signal that comes
/// before the returned future is polled is kept, not lost), and resolves
/// on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).unwrap_or_else(|e| fail(e));
    let mut int = signal(SignalKind::interrupt()).unwrap_or_else(|e| fail(e));
    async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A process manager may send SIGTERM as soon as the bridge says it
    // listens, before the server first polls the shutdown future: the
    // handler must be in place from the call on (it was registered on the
    // first poll, so such a SIGTERM killed the bridge without draining;
    // seen as a launcher that died of SIGTERM in pkg-bridge). Before the
    // fix, this kill ends the test binary itself.
    #[tokio::test]
    async fn a_sigterm_before_the_first_poll_is_kept() {
        let stop = shutdown_signal();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(sent.success());
        tokio::time::timeout(std::time::Duration::from_secs(5), stop)
            .await
            .expect("the SIGTERM sent before the first poll ends the wait");
    }

    // base64url tokens begin with '-' one time in 64: `--token -x…` must
    // still be the token, not an unknown flag (exit 2, a flaky CI run).
    #[test]
    fn tokens_may_begin_with_a_hyphen() {
        let a = Args::try_parse_from([
            "edgecache-bridge",
            "--token",
            "-abcdefghijklmnopqrst",
            "--read-only-token",
            "--ro-abcdefghijklmnop",
            "--max-body",
            "10",
        ])
        .expect("parsed");
        assert_eq!(a.token, "-abcdefghijklmnopqrst");
        assert_eq!(a.read_only_token.as_deref(), Some("--ro-abcdefghijklmnop"));
        assert_eq!(a.max_body, 10);
    }
}
