//! The one error type of the crate.
//!
//! Every fallible operation returns [`Error`]. Each variant has a stable
//! [`code`](Error::code) that the JavaScript package exposes as
//! `EdgeCacheError.code`, so callers can branch on it without parsing
//! messages.

use core::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong in edgecache.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// An option given to a constructor is out of range.
    InvalidOption {
        /// The option's name, as the user spells it (`maxEntries`).
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A TTL is negative, NaN or infinite.
    InvalidTtl(f64),
    /// A value (plus its key and the per-entry overhead) is larger than `maxBytes`.
    TooLarge {
        /// The bytes the entry would be charged.
        size: u64,
        /// The cache's `maxBytes`.
        max: u64,
    },
    /// `incr`/`decr` on a value that is not an integer.
    NotAnInteger,
    /// `incr`/`decr` would leave the integer range.
    Overflow,
    /// A scope without a tenant or user, or with an empty one.
    InvalidScope(String),
    /// An envelope's tag does not match its contents, context (a cache's
    /// prefix), cache key and scope: it was tampered with, or written under
    /// another prefix, key, scope or secret.
    BadSignature,
    /// An envelope names a key id the signer does not hold (never added, or
    /// removed by a rotation).
    UnknownKeyId(String),
    /// An envelope is not well formed: bad base64url, truncated, overlong,
    /// an unknown version or payload encoding, a bad key id.
    MalformedEnvelope(String),
    /// An envelope of an older format version that the signer refuses:
    /// version 1, which does not bind the cache's prefix (see
    /// `Signer::set_accept_v1`).
    OutdatedEnvelope(u8),
    /// A signing secret is too short (under 32 bytes) or trivially guessable.
    WeakKey(String),
    /// An envelope or its payload is larger than the signer's limit.
    EnvelopeTooLarge {
        /// The payload bytes (or, before decoding, the most the envelope could hold).
        size: u64,
        /// The signer's `maxPayloadBytes`.
        max: u64,
    },
    /// The platform's secure random source failed.
    RandomUnavailable(String),
    /// A tag that breaks the rule of tags (1 to 256 UTF-8 bytes, no
    /// control character, no comma; at most 64 per entry), or a tag list
    /// that is not a list.
    InvalidTag(String),
    /// Memory for the cache's slot arrays could not be had (in wasm: its
    /// linear memory cannot grow any further).
    OutOfMemory {
        /// The bytes that were asked for.
        bytes: u64,
    },
    /// The shared tier (L2) did not answer in time.
    L2Timeout(String),
    /// The shared tier answered with an unexpected HTTP status.
    L2Http {
        /// The HTTP status.
        status: u16,
        /// The server's error message, if it gave one.
        message: String,
        /// The bridge on a Redis Cluster said only some masters failed
        /// (`"partial": true`): the rest of the tier answers, so the
        /// circuit breaker does not count it.
        partial: bool,
    },
    /// The shared tier refused the token (missing, wrong, or not allowed
    /// to run this command).
    L2Auth(String),
    /// Redis answered with an error (`ERR ...`, `WRONGTYPE ...`).
    L2Redis(String),
    /// The shared tier's answer is not what the protocol allows (not JSON,
    /// the wrong shape or length, a result of the wrong type, bad base64).
    L2Protocol(String),
    /// The circuit breaker is open after repeated failures of the shared
    /// tier: calls fail fast until a probe succeeds.
    #[cfg(feature = "worker")]
    L2Unavailable,
    /// A value cannot be carried as JSON (the Rust Workers binding's serde
    /// serialization failed).
    #[cfg(feature = "worker")]
    Unserializable(String),
    /// A key the Rust Workers binding refuses (one starting with U+0000,
    /// where L1 keeps counters, as the JS `TieredCache` refuses it).
    #[cfg(feature = "worker")]
    InvalidKey(String),
}

impl Error {
    /// The stable, machine-readable code of this error.
    ///
    /// ```
    /// use edgecache::Error;
    /// assert_eq!(Error::Overflow.code(), "OVERFLOW");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidOption { .. } => "INVALID_OPTION",
            Error::InvalidTtl(_) => "INVALID_TTL",
            Error::TooLarge { .. } => "VALUE_TOO_LARGE",
            Error::NotAnInteger => "NOT_AN_INTEGER",
            Error::Overflow => "OVERFLOW",
            Error::InvalidScope(_) => "INVALID_SCOPE",
            Error::BadSignature => "BAD_SIGNATURE",
            Error::UnknownKeyId(_) => "UNKNOWN_KEY_ID",
            Error::MalformedEnvelope(_) => "MALFORMED_ENVELOPE",
            Error::OutdatedEnvelope(_) => "OUTDATED_ENVELOPE",
            Error::WeakKey(_) => "WEAK_KEY",
            Error::EnvelopeTooLarge { .. } => "ENVELOPE_TOO_LARGE",
            Error::RandomUnavailable(_) => "RANDOM_UNAVAILABLE",
            Error::InvalidTag(_) => "INVALID_TAG",
            Error::OutOfMemory { .. } => "OUT_OF_MEMORY",
            Error::L2Timeout(_) => "L2_TIMEOUT",
            Error::L2Http { .. } => "L2_HTTP",
            Error::L2Auth(_) => "L2_AUTH",
            Error::L2Redis(_) => "L2_REDIS",
            Error::L2Protocol(_) => "L2_PROTOCOL",
            #[cfg(feature = "worker")]
            Error::L2Unavailable => "L2_UNAVAILABLE",
            #[cfg(feature = "worker")]
            Error::Unserializable(_) => "UNSERIALIZABLE_VALUE",
            #[cfg(feature = "worker")]
            Error::InvalidKey(_) => "INVALID_KEY",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidOption { name, reason } => write!(f, "invalid option `{name}`: {reason}"),
            Error::InvalidTtl(t) => write!(
                f,
                "invalid ttl {t}: a ttl is a finite number of milliseconds >= 0 (0 = no expiry)"
            ),
            Error::TooLarge { size, max } => write!(
                f,
                "entry of {size} bytes is larger than maxBytes ({max}); raise maxBytes or store less"
            ),
            Error::NotAnInteger => write!(f, "value is not an integer; incr/decr need an integer value"),
            Error::Overflow => write!(f, "increment or decrement would overflow"),
            Error::InvalidScope(why) => write!(f, "invalid scope: {why}"),
            Error::BadSignature => write!(
                f,
                "envelope signature does not match: it was altered, or sealed for another cache prefix, key, scope or secret"
            ),
            Error::UnknownKeyId(id) => write!(
                f,
                "unknown key id {id:?}: the signer does not hold it (add it to `keys`; a rotation may have removed it)"
            ),
            Error::MalformedEnvelope(why) => write!(f, "malformed envelope: {why}"),
            Error::OutdatedEnvelope(v) => write!(
                f,
                "envelope of format version {v} refused: it does not bind the cache's prefix (acceptV1, in Rust Signer::set_accept_v1, reads it during a migration)"
            ),
            Error::WeakKey(why) => write!(
                f,
                "weak signing key: {why}; use 32 random bytes (generateSecureKey())"
            ),
            Error::EnvelopeTooLarge { size, max } => write!(
                f,
                "envelope payload of {size} bytes is larger than maxPayloadBytes ({max}); raise the limit or store less"
            ),
            Error::RandomUnavailable(why) => write!(f, "secure random source unavailable: {why}"),
            Error::InvalidTag(why) => write!(f, "invalid tag: {why}"),
            Error::OutOfMemory { bytes } => write!(
                f,
                "out of memory: {bytes} bytes for the cache's slots could not be allocated; lower maxEntries, or free() caches no longer used"
            ),
            Error::L2Timeout(why) => write!(f, "redis tier timed out: {why}"),
            Error::L2Http {
                status, message, ..
            } => {
                write!(f, "redis tier answered HTTP {status}: {message}")
            }
            // 403: this token may not run this command (a read-only token,
            // the bridge's deny list): the token itself is fine.
            Error::L2Auth(why) if why.starts_with("HTTP 403") => write!(
                f,
                "redis tier refused the command: {why}; the token is valid but may not run it"
            ),
            Error::L2Auth(why) => write!(
                f,
                "redis tier refused the token: {why}; check the url and token (EDGECACHE_REDIS_TOKEN)"
            ),
            Error::L2Redis(why) => write!(f, "redis error: {why}"),
            Error::L2Protocol(why) => write!(f, "malformed answer from the redis tier: {why}"),
            #[cfg(feature = "worker")]
            Error::L2Unavailable => write!(
                f,
                "redis tier unavailable: the circuit breaker is open after repeated failures"
            ),
            #[cfg(feature = "worker")]
            Error::Unserializable(why) => write!(f, "value of the wrong kind or not JSON: {why}"),
            #[cfg(feature = "worker")]
            Error::InvalidKey(why) => write!(f, "invalid key: {why}"),
        }
    }
}

impl std::error::Error for Error {}
