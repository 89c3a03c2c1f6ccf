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
        }
    }
}

impl std::error::Error for Error {}
