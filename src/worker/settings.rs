//! The Worker's bindings, read and checked without touching the platform
//! (the lookup is a function), so every message is tested on the host.

use crate::coherence::lease::DEFAULT_MAX_STALENESS;
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
/// | `EDGECACHE_MAX_STALENESS` (ms, or `off`) | var | 1000 |
/// | `EDGECACHE_STALE_WHILE_UNREACHABLE` (`true`, `false`) | var | `true` (the binding fails open) |
///
/// The rule, the same as the JS `fromEnv` (the cases both run are
/// `tests/fixtures/settings.json`): ASCII whitespace around a value is
/// dropped, and a value left empty is unset. Numbers are decimal digits
/// only (no sign, unit, exponent, separator or `Infinity`) within bounds:
/// `EDGECACHE_MAX_ENTRIES` 1 to 2^29 - 1, `EDGECACHE_MAX_BYTES` 1 to
/// 2^53 - 1, the TTLs and the cooldown 0 to 2^53 - 1,
/// `EDGECACHE_REDIS_TIMEOUT` 1 to 2^31 - 1, `EDGECACHE_BREAKER_THRESHOLD` 1
/// to 1000000, `EDGECACHE_MAX_STALENESS` 0 to 86400000 (one day) or the
/// word `off`. `EDGECACHE_STALE_WHILE_UNREACHABLE` is the word `true` or
/// `false`. The prefix is 1 to 64 characters of `A-Z a-z 0-9 _ . -`;
/// the URL is `http://` or `https://` and a host (trailing `/` dropped).
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
    /// `maxStaleness`, ms: how long after a mutation elsewhere (another
    /// isolate's, another binding's) this cache may still serve the older
    /// value from L1 (docs/REDIS.md, "Coherence across isolates"). `None`:
    /// coherence off, `l1_ttl` alone bounds it (the behaviour before it).
    pub max_staleness: Option<u64>,
    /// Whether an L1 hit whose lease has expired is served (and counted)
    /// while the log cannot be read (Redis unreachable); `false`: strict,
    /// such a hit is refused and the read goes to Redis.
    pub stale_while_unreachable: bool,
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
            max_staleness: Some(DEFAULT_MAX_STALENESS),
            // The binding fails open (a read that cannot reach Redis is a
            // miss), and so does this by default.
            stale_while_unreachable: true,
        }
    }
}

/// The largest number any setting takes: 2^53 - 1, the largest integer a JS
/// number holds exactly, so that `fromEnv` reads every value as this does.
pub const MAX_SETTING: u64 = (1 << 53) - 1;

/// What a numeric binding takes: decimal digits only (no sign, unit,
/// exponent, separator or `Infinity`), from `min` to `max`. The same rule
/// as the JS `fromEnv`; the cases both run are `tests/fixtures/settings.json`.
struct Bound {
    name: &'static str,
    min: u64,
    max: u64,
    unit: &'static str,
}

/// The numeric bindings, with their bounds (README.md lists them).
const MAX_ENTRIES: Bound = Bound {
    name: "EDGECACHE_MAX_ENTRIES",
    min: 1,
    max: (1 << 29) - 1,
    unit: "entries",
};
const MAX_BYTES: Bound = Bound {
    name: "EDGECACHE_MAX_BYTES",
    min: 1,
    max: MAX_SETTING,
    unit: "bytes",
};
const DEFAULT_TTL: Bound = Bound {
    name: "EDGECACHE_DEFAULT_TTL",
    min: 0,
    max: MAX_SETTING,
    unit: "ms, 0 = no expiry",
};
const L1_TTL: Bound = Bound {
    name: "EDGECACHE_L1_TTL",
    min: 0,
    max: MAX_SETTING,
    unit: "ms",
};
/// A timer of more than 2^31 - 1 ms fires at once in JS runtimes.
const TIMEOUT: Bound = Bound {
    name: "EDGECACHE_REDIS_TIMEOUT",
    min: 1,
    max: (1 << 31) - 1,
    unit: "ms",
};
const BREAKER_THRESHOLD: Bound = Bound {
    name: "EDGECACHE_BREAKER_THRESHOLD",
    min: 1,
    max: 1_000_000,
    unit: "consecutive failures",
};
const BREAKER_COOLDOWN: Bound = Bound {
    name: "EDGECACHE_BREAKER_COOLDOWN",
    min: 0,
    max: MAX_SETTING,
    unit: "ms",
};
/// The longest `maxStaleness`: one day (longer is what `off` says).
pub const MAX_MAX_STALENESS: u64 = 86_400_000;
const MAX_STALENESS: Bound = Bound {
    name: "EDGECACHE_MAX_STALENESS",
    min: 0,
    max: MAX_MAX_STALENESS,
    unit: "ms, or `off` to turn coherence off",
};
const STALE_WHILE_UNREACHABLE: &str = "EDGECACHE_STALE_WHILE_UNREACHABLE";

/// `EDGECACHE_MAX_STALENESS`: `off`, or a number of ms.
fn max_staleness(get: &dyn Fn(&str) -> Option<String>, dflt: Option<u64>) -> Result<Option<u64>> {
    match get(MAX_STALENESS.name) {
        Some(v) if v == "off" => Ok(None),
        Some(_) => number(get, &MAX_STALENESS, 0).map(Some),
        None => Ok(dflt),
    }
}

/// `EDGECACHE_STALE_WHILE_UNREACHABLE`: the word `true` or `false`.
fn flag(get: &dyn Fn(&str) -> Option<String>, name: &'static str, dflt: bool) -> Result<bool> {
    match get(name).as_deref() {
        None => Ok(dflt),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(Error::InvalidOption {
            name,
            reason: format!(
                "\"{}\" is neither `true` nor `false` (`false`: strict, an L1 hit whose lease expired is refused while Redis is unreachable; set it under [vars] in wrangler.toml)",
                v.escape_default()
            ),
        }),
    }
}

fn number(get: &dyn Fn(&str) -> Option<String>, b: &Bound, dflt: u64) -> Result<u64> {
    let Some(v) = get(b.name) else {
        return Ok(dflt);
    };
    // Digits only: `u64::from_str` alone would take a leading `+`.
    let n = if v.bytes().all(|c| c.is_ascii_digit()) {
        v.parse::<u64>().ok()
    } else {
        None
    };
    match n {
        Some(n) if (b.min..=b.max).contains(&n) => Ok(n),
        _ => Err(Error::InvalidOption {
            name: b.name,
            reason: format!(
                "\"{}\" is not a whole number from {} to {} ({}): decimal digits only, no sign, unit or exponent (set it under [vars] in wrangler.toml)",
                v.escape_default(),
                b.min,
                b.max,
                b.unit
            ),
        }),
    }
}

/// Whether `url` is `http(s)://` followed by a host (as the JS `RedisRest` checks).
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/'))
}

/// Whitespace around a value is dropped: ASCII whitespace only (space, tab,
/// LF, FF, CR), as `fromEnv` does; a value left empty counts as unset.
fn trimmed(v: String) -> Option<String> {
    let t = v.trim_matches(|c: char| c.is_ascii_whitespace());
    if t.is_empty() {
        None
    } else if t.len() == v.len() {
        Some(v)
    } else {
        Some(t.to_owned())
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
        let get = move |name: &str| get(name).and_then(trimmed);
        let get: &dyn Fn(&str) -> Option<String> = &get;
        let d = Settings::default();
        let pick = |a: &'static str, b: &'static str| {
            get(a).map(|v| (a, v)).or_else(|| get(b).map(|v| (b, v)))
        };
        let url = pick("EDGECACHE_REDIS_URL", "UPSTASH_REDIS_REST_URL");
        let token = pick("EDGECACHE_REDIS_TOKEN", "UPSTASH_REDIS_REST_TOKEN");
        let redis = match (url, token) {
            (None, None) => None,
            (Some((name, url)), Some((_, token))) => {
                if !is_http_url(&url) {
                    return Err(Error::InvalidOption {
                        name,
                        reason: format!("{url:?} is not an http(s) URL: give the REST endpoint of Upstash or edgecache-bridge"),
                    });
                }
                Some(Redis { url: url.trim_end_matches('/').to_owned(), token })
            }
            (Some((name, _)), None) => {
                return Err(Error::InvalidOption {
                    name: "EDGECACHE_REDIS_TOKEN",
                    reason: format!("{name} is set but the token is missing: run `wrangler secret put EDGECACHE_REDIS_TOKEN` (or put it in .dev.vars)"),
                })
            }
            (None, Some((name, _))) => {
                return Err(Error::InvalidOption {
                    name: "EDGECACHE_REDIS_URL",
                    reason: format!("{name} is set but no URL: set EDGECACHE_REDIS_URL under [vars] in wrangler.toml"),
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
        // Both bounds are below 2^32.
        let count = |b: &Bound, dflt: u32| number(get, b, u64::from(dflt)).map(|n| n as u32);
        let s = Settings {
            redis,
            signing_keys,
            prefix,
            max_entries: count(&MAX_ENTRIES, d.max_entries)?,
            max_bytes: number(get, &MAX_BYTES, d.max_bytes)?,
            default_ttl: number(get, &DEFAULT_TTL, d.default_ttl)?,
            l1_ttl: number(get, &L1_TTL, d.l1_ttl)?,
            timeout: number(get, &TIMEOUT, d.timeout)?,
            breaker_threshold: count(&BREAKER_THRESHOLD, d.breaker_threshold)?,
            breaker_cooldown: number(get, &BREAKER_COOLDOWN, d.breaker_cooldown)?,
            max_staleness: max_staleness(get, d.max_staleness)?,
            stale_while_unreachable: flag(get, STALE_WHILE_UNREACHABLE, d.stale_while_unreachable)?,
        };
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The value of the setting a corpus case names (by its binding's name).
    fn value_of(s: &Settings, setting: &str) -> Value {
        let opt = |v: Option<&String>| v.map_or(Value::Null, |v| Value::from(v.as_str()));
        match setting {
            "EDGECACHE_REDIS_URL" => opt(s.redis.as_ref().map(|r| &r.url)),
            "EDGECACHE_REDIS_TOKEN" => opt(s.redis.as_ref().map(|r| &r.token)),
            "EDGECACHE_SIGNING_KEYS" => opt(s.signing_keys.as_ref()),
            "EDGECACHE_PREFIX" => s.prefix.as_str().into(),
            "EDGECACHE_MAX_ENTRIES" => s.max_entries.into(),
            "EDGECACHE_MAX_BYTES" => s.max_bytes.into(),
            "EDGECACHE_DEFAULT_TTL" => s.default_ttl.into(),
            "EDGECACHE_L1_TTL" => s.l1_ttl.into(),
            "EDGECACHE_REDIS_TIMEOUT" => s.timeout.into(),
            "EDGECACHE_BREAKER_THRESHOLD" => s.breaker_threshold.into(),
            "EDGECACHE_BREAKER_COOLDOWN" => s.breaker_cooldown.into(),
            // `off` is `false`, as the JS `fromEnv` gives it to TieredCache.
            "EDGECACHE_MAX_STALENESS" => s.max_staleness.map_or(Value::Bool(false), Value::from),
            "EDGECACHE_STALE_WHILE_UNREACHABLE" => s.stale_while_unreachable.into(),
            other => panic!("the corpus names a setting the Rust binding does not read: {other}"),
        }
    }

    /// tests/fixtures/settings.json, which the JS `fromEnv` runs too
    /// (tests/js/fromenv.test.mjs): one rule for both bindings.
    #[test]
    fn the_settings_corpus_shared_with_js_from_env() {
        let corpus: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/settings.json")).unwrap();
        let cases = corpus["cases"].as_array().unwrap();
        assert!(cases.len() > 50, "{} cases", cases.len());
        let mut wrong = Vec::new();
        for case in cases {
            let env: Vec<(String, String)> = case["env"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("text inputs").to_owned()))
                .collect();
            let setting = case["setting"].as_str().unwrap();
            let got =
                Settings::from_lookup(|n| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()));
            let verdict = match (case["error"].as_str(), got) {
                (None, Ok(s)) if value_of(&s, setting) == case["value"] => continue,
                (None, Ok(s)) => format!("read as {}", value_of(&s, setting)),
                (None, Err(e)) => format!("refused: {e}"),
                (Some(_), Ok(s)) => format!("accepted as {}", value_of(&s, setting)),
                (Some(code), Err(e)) => match &e {
                    Error::InvalidOption { name, .. } if e.code() == code && *name == setting => {
                        continue
                    }
                    _ if e.code() == code && !matches!(e, Error::InvalidOption { .. }) => continue,
                    _ => format!("the wrong error: {} {e}", e.code()),
                },
            };
            wrong.push(format!("{case}: {verdict}"));
        }
        assert!(
            wrong.is_empty(),
            "{} of {} cases:\n{}",
            wrong.len(),
            cases.len(),
            wrong.join("\n")
        );
    }
}
