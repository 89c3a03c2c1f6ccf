//! The Worker's bindings, read and checked without touching the platform
//! (the lookup is a function), so every message is tested on the host.

use crate::error::{Error, Result};
use crate::lru::{DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES};

/// The prefix of the cache's Redis keys unless `EDGECACHE_PREFIX` says otherwise.
pub const DEFAULT_PREFIX: &str = "edgecache";
/// How long L1 keeps a value before asking Redis again, in ms (as the JS `l1Ttl`).
pub const DEFAULT_L1_TTL: u64 = 10_000;
/// How long a Redis request may take, in ms.
pub const DEFAULT_TIMEOUT: u64 = 5_000;

/// Where Redis is: the REST URL and its token.
#[derive(Clone, PartialEq, Eq)]
pub struct Redis {
    /// `EDGECACHE_REDIS_URL` or `UPSTASH_REDIS_REST_URL`.
    pub url: String,
    /// `EDGECACHE_REDIS_TOKEN` or `UPSTASH_REDIS_REST_TOKEN`.
    pub token: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Everything [`EdgeCache::from_env`](super::EdgeCache) reads.
///
/// | binding | kind | default |
/// | --- | --- | --- |
/// | `EDGECACHE_REDIS_URL` (or `UPSTASH_REDIS_REST_URL`) | var | none: L1 only |
/// | `EDGECACHE_REDIS_TOKEN` (or `UPSTASH_REDIS_REST_TOKEN`) | secret | |
/// | `EDGECACHE_SIGNING_KEYS` | secret, `kid:key,kid:key` (the first signs) | required with Redis |
/// | `EDGECACHE_PREFIX` | var | `edgecache` |
/// | `EDGECACHE_MAX_ENTRIES`, `EDGECACHE_MAX_BYTES` | vars | 10000, 32 MiB |
/// | `EDGECACHE_DEFAULT_TTL`, `EDGECACHE_L1_TTL` (ms) | vars | 0 (none), 10000 |
/// | `EDGECACHE_REDIS_TIMEOUT` (ms) | var | 5000 |
/// | `EDGECACHE_BREAKER_THRESHOLD`, `EDGECACHE_BREAKER_COOLDOWN` (ms) | vars | 5, 5000 |
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// The Redis tier, if configured.
    pub redis: Option<Redis>,
    /// `EDGECACHE_SIGNING_KEYS`, unparsed.
    pub signing_keys: Option<String>,
    /// The prefix of the Redis keys.
    pub prefix: String,
    /// L1 bounds.
    pub max_entries: u32,
    /// L1 bounds.
    pub max_bytes: u64,
    /// ms a value lives when `set` gives no TTL; 0 = no expiry.
    pub default_ttl: u64,
    /// The longest L1 keeps a value; 0 = as long as it lives.
    pub l1_ttl: u64,
    /// ms a Redis request may take.
    pub timeout: u64,
    /// Consecutive failures that open the breaker.
    pub breaker_threshold: u32,
    /// ms the breaker stays open before a probe.
    pub breaker_cooldown: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            redis: None,
            signing_keys: None,
            prefix: DEFAULT_PREFIX.into(),
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            default_ttl: 0,
            l1_ttl: DEFAULT_L1_TTL,
            timeout: DEFAULT_TIMEOUT,
            breaker_threshold: 5,
            breaker_cooldown: 5_000,
        }
    }
}

fn number<T: std::str::FromStr>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    dflt: T,
) -> Result<T> {
    match get(name) {
        None => Ok(dflt),
        Some(v) => v.trim().parse().map_err(|_| Error::InvalidOption {
            name,
            reason: format!("{v:?} is not a whole number (set it under [vars] in wrangler.toml)"),
        }),
    }
}

impl Settings {
    /// Reads the bindings through `get` (a name to its value; empty values
    /// count as absent). Errors name the binding and the fix.
    ///
    /// ```
    /// # #[cfg(feature = "worker")] {
    /// use edgecache::worker::Settings;
    /// let env = |name: &str| match name {
    ///     "EDGECACHE_REDIS_URL" => Some("http://127.0.0.1:8079".to_string()),
    ///     _ => None,
    /// };
    /// let e = Settings::from_lookup(env).unwrap_err();
    /// assert!(e.to_string().contains("wrangler secret put EDGECACHE_REDIS_TOKEN"));
    /// assert!(Settings::from_lookup(|_| None).unwrap().redis.is_none());
    /// # }
    /// ```
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let get = move |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let get: &dyn Fn(&str) -> Option<String> = &get;
        let d = Settings::default();
        let url = get("EDGECACHE_REDIS_URL").or_else(|| get("UPSTASH_REDIS_REST_URL"));
        let token = get("EDGECACHE_REDIS_TOKEN").or_else(|| get("UPSTASH_REDIS_REST_TOKEN"));
        let redis = match (url, token) {
            (None, None) => None,
            (Some(url), Some(token)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(Error::InvalidOption {
                        name: "EDGECACHE_REDIS_URL",
                        reason: format!("{url:?} is not an http(s) URL: give the REST endpoint of Upstash or edgecache-bridge"),
                    });
                }
                Some(Redis { url: url.trim_end_matches('/').to_owned(), token: token.trim().to_owned() })
            }
            (Some(_), None) => {
                return Err(Error::InvalidOption {
                    name: "EDGECACHE_REDIS_TOKEN",
                    reason: "EDGECACHE_REDIS_URL is set but the token is missing: run `wrangler secret put EDGECACHE_REDIS_TOKEN` (or put it in .dev.vars)".into(),
                })
            }
            (None, Some(_)) => {
                return Err(Error::InvalidOption {
                    name: "EDGECACHE_REDIS_URL",
                    reason: "a Redis token is set but no URL: set EDGECACHE_REDIS_URL under [vars] in wrangler.toml".into(),
                })
            }
        };
        let signing_keys = get("EDGECACHE_SIGNING_KEYS");
        if redis.is_some() && signing_keys.is_none() {
            return Err(Error::InvalidOption {
                name: "EDGECACHE_SIGNING_KEYS",
                reason: "a Redis tier needs signing keys, never unsigned values: run `wrangler secret put EDGECACHE_SIGNING_KEYS` with `k1:<32 random bytes, base64url>` (or put it in .dev.vars)".into(),
            });
        }
        if let Some(keys) = &signing_keys {
            super::signing_keys(keys)?;
        }
        let prefix = get("EDGECACHE_PREFIX").unwrap_or(d.prefix);
        crate::layout::Layout::new(&prefix).map_err(|e| Error::InvalidOption {
            name: "EDGECACHE_PREFIX",
            reason: e.to_string(),
        })?;
        let s = Settings {
            redis,
            signing_keys,
            prefix,
            max_entries: number(get, "EDGECACHE_MAX_ENTRIES", d.max_entries)?,
            max_bytes: number(get, "EDGECACHE_MAX_BYTES", d.max_bytes)?,
            default_ttl: number(get, "EDGECACHE_DEFAULT_TTL", d.default_ttl)?,
            l1_ttl: number(get, "EDGECACHE_L1_TTL", d.l1_ttl)?,
            timeout: number(get, "EDGECACHE_REDIS_TIMEOUT", d.timeout)?,
            breaker_threshold: number(get, "EDGECACHE_BREAKER_THRESHOLD", d.breaker_threshold)?,
            breaker_cooldown: number(get, "EDGECACHE_BREAKER_COOLDOWN", d.breaker_cooldown)?,
        };
        if s.max_entries == 0 {
            return Err(Error::InvalidOption {
                name: "EDGECACHE_MAX_ENTRIES",
                reason: "must be >= 1".into(),
            });
        }
        if s.breaker_threshold == 0 {
            return Err(Error::InvalidOption {
                name: "EDGECACHE_BREAKER_THRESHOLD",
                reason: "must be >= 1".into(),
            });
        }
        Ok(s)
    }
}
