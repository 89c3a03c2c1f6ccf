//! The policy of the two-tier cache, free of I/O: how long a value read
//! from Redis may live in L1 ([`promotion_ttl`]), and when to stop calling
//! a failing Redis ([`Breaker`]).
//!
//! The JS `TieredCache` and the Rust Workers binding both follow these
//! rules; the JS side calls them through wasm (numbers only, so a call
//! costs a few nanoseconds next to a network round trip).

use crate::error::{Error, Result};

/// How long a value read from L2 may live in L1, in ms from `now`:
/// no longer than `l1_ttl` (which bounds how stale another isolate's write
/// can look here) and no longer than the value has left (`expires_at`,
/// absolute ms; `0` = never expires). `None` if the value has expired.
/// `l1_ttl == 0` means L1 keeps values for as long as they live.
///
/// ```
/// use edgecache::promotion_ttl;
/// assert_eq!(promotion_ttl(5_000, 0, 1_000), Some(5_000));       // no expiry: l1Ttl
/// assert_eq!(promotion_ttl(5_000, 3_000, 1_000), Some(2_000));   // expires sooner
/// assert_eq!(promotion_ttl(5_000, 1_000, 1_000), None);          // already expired
/// assert_eq!(promotion_ttl(0, 9_000, 1_000), Some(8_000));       // L1 unbounded
/// assert_eq!(promotion_ttl(0, 0, 1_000), Some(0));               // 0 = no expiry
/// ```
pub fn promotion_ttl(l1_ttl: u64, expires_at: u64, now: u64) -> Option<u64> {
    if expires_at == 0 {
        return Some(l1_ttl);
    }
    let left = expires_at.checked_sub(now).filter(|&l| l > 0)?;
    Some(if l1_ttl == 0 { left } else { left.min(l1_ttl) })
}

/// Reads a counter as Redis holds it (the text `INCRBY` writes and reads):
/// the grammar of Redis's own integers, `0` or an optional `-` and a digit
/// `1`-`9` followed by digits, in the range of an `i64`. No `+`, no leading
/// zeros, no `-0`, no spaces: text Redis itself would refuse to increment
/// is not a counter, whichever binding reads it. The cases both bindings
/// run are in `tests/fixtures/counters.json`.
///
/// ```
/// use edgecache::parse_counter;
/// assert_eq!(parse_counter(b"-42"), Some(-42));
/// assert_eq!(parse_counter(b"9223372036854775807"), Some(i64::MAX));
/// assert_eq!(parse_counter(b"+5"), None);
/// assert_eq!(parse_counter(b"007"), None);
/// assert_eq!(parse_counter(b"9223372036854775808"), None);
/// ```
pub fn parse_counter(text: &[u8]) -> Option<i64> {
    let negative = text.first() == Some(&b'-');
    let digits = if negative { &text[1..] } else { text };
    match digits {
        [b'0'] if !negative => Some(0),
        [b'1'..=b'9', ..] => {
            // Accumulated negative, so that i64::MIN fits.
            let mut n: i64 = 0;
            for &d in digits {
                if !d.is_ascii_digit() {
                    return None;
                }
                n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
            }
            if negative {
                Some(n)
            } else {
                n.checked_neg()
            }
        }
        _ => None,
    }
}

/// The state of a [`Breaker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// The cool-down has ended and one probe call is (or may be) in flight;
    /// its outcome closes or reopens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"half-open"`, as `stats()` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// A circuit breaker: after `threshold` consecutive failures it opens, so
/// callers stop waiting on a dead tier; after `cooldown` ms it lets one
/// probe through; the probe's success closes it, its failure reopens it
/// for another cool-down.
///
/// ```
/// use edgecache::{Breaker, BreakerState};
/// let mut b = Breaker::new(2, 1_000).unwrap();
/// assert!(b.allow(0));
/// b.failure(0);
/// b.failure(0);                                  // the second in a row opens it
/// assert_eq!(b.state(), BreakerState::Open);
/// assert!(!b.allow(999));                         // fail fast during the cool-down
/// assert!(b.allow(1_000));                        // one probe after it
/// assert!(!b.allow(1_000));                       // and only one
/// b.success();
/// assert_eq!(b.state(), BreakerState::Closed);
/// ```
#[derive(Clone, Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: u64,
    failures: u32,
    state: BreakerState,
    /// When the cool-down ends (Open), or when the probe was let through
    /// (HalfOpen).
    since: u64,
    opened: u64,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` (>= 1) consecutive
    /// failures and probes again `cooldown` ms later.
    pub fn new(threshold: u32, cooldown: u64) -> Result<Self> {
        if threshold == 0 {
            return Err(Error::InvalidOption {
                name: "breaker.threshold",
                reason: "must be an integer >= 1".into(),
            });
        }
        Ok(Breaker {
            threshold,
            cooldown,
            failures: 0,
            state: BreakerState::Closed,
            since: 0,
            opened: 0,
        })
    }

    /// Whether a call may go to the tier now. While open, `false` until the
    /// cool-down ends; then `true` once (the probe), and `false` for others
    /// until the probe's outcome is reported. A probe that never reports
    /// (its caller vanished) is given up after another cool-down.
    pub fn allow(&mut self, now: u64) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open if now >= self.since => {
                self.state = BreakerState::HalfOpen;
                self.since = now;
                true
            }
            BreakerState::Open => false,
            BreakerState::HalfOpen if now >= self.since.saturating_add(self.cooldown) => {
                self.since = now;
                true
            }
            BreakerState::HalfOpen => false,
        }
    }

    /// A call succeeded: the breaker closes and the failure count resets.
    pub fn success(&mut self) {
        self.failures = 0;
        self.state = BreakerState::Closed;
    }

    /// A call failed at `now`. Returns `true` if this opened the breaker.
    pub fn failure(&mut self, now: u64) -> bool {
        self.failures = self.failures.saturating_add(1);
        let open = match self.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => self.failures >= self.threshold,
            BreakerState::Open => false,
        };
        if open {
            self.state = BreakerState::Open;
            self.since = now.saturating_add(self.cooldown);
            self.opened += 1;
        }
        open
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How many times the breaker has opened.
    pub fn times_opened(&self) -> u64 {
        self.opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_after_consecutive_failures() {
        let mut b = Breaker::new(3, 100).unwrap();
        b.failure(0);
        b.failure(0);
        b.success();
        b.failure(0);
        b.failure(0);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.failure(0));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.times_opened(), 1);
    }

    #[test]
    fn failed_probe_reopens_for_a_full_cooldown() {
        let mut b = Breaker::new(1, 100).unwrap();
        b.failure(10);
        assert!(!b.allow(109));
        assert!(b.allow(110));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.failure(115));
        assert!(!b.allow(214));
        assert!(b.allow(215));
        b.success();
        assert!(b.allow(216) && b.allow(216));
    }

    #[test]
    fn a_lost_probe_is_replaced_after_a_cooldown() {
        let mut b = Breaker::new(1, 100).unwrap();
        b.failure(0);
        assert!(b.allow(100));
        assert!(!b.allow(150));
        assert!(b.allow(200));
    }

    /// The corpus both bindings run (the JS side in tests/js/tiered-hardening.test.mjs).
    #[test]
    fn counter_corpus() {
        let corpus: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/counters.json")).unwrap();
        let cases = corpus["cases"].as_array().unwrap();
        assert!(cases.len() > 20);
        for c in cases {
            let text = c["text"].as_str().unwrap();
            let want = match &c["value"] {
                serde_json::Value::Null => None,
                v => Some(v.as_str().unwrap().parse::<i64>().unwrap()),
            };
            assert_eq!(parse_counter(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn zero_threshold_is_refused() {
        assert_eq!(Breaker::new(0, 1).unwrap_err().code(), "INVALID_OPTION");
    }

    #[test]
    fn promotion_never_outlives_the_value() {
        for l1 in [0u64, 1, 500, 10_000] {
            for exp in [0u64, 1, 999, 1_000, 1_001, 50_000] {
                let now = 1_000;
                match promotion_ttl(l1, exp, now) {
                    None => assert!(exp != 0 && exp <= now),
                    Some(t) => {
                        if exp != 0 {
                            assert!(t > 0 && now + t <= exp);
                        }
                        if l1 != 0 {
                            assert!(t <= l1 && t > 0);
                        }
                    }
                }
            }
        }
    }
}
