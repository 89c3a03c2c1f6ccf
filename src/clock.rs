//! Time, injected.
//!
//! The core never reads the system clock (and `std::time::Instant` panics on
//! `wasm32-unknown-unknown`): every operation that needs the time takes it
//! from a [`Clock`]. Tests use [`ManualClock`] and advance it by hand.

use std::cell::Cell;
use std::rc::Rc;

/// A source of the current time in milliseconds.
///
/// Any `Fn() -> u64` is a clock, so a closure over `Date.now()` or a test
/// counter works as is.
pub trait Clock {
    /// Milliseconds since an arbitrary, fixed epoch.
    fn now_ms(&self) -> u64;
}

impl<F: Fn() -> u64> Clock for F {
    fn now_ms(&self) -> u64 {
        self()
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// ```
/// use edgecache::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// let view = clock.clone();
/// clock.advance(250);
/// assert_eq!(view.now_ms(), 1_250);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Rc<Cell<u64>>);

impl ManualClock {
    /// A clock that reads `start` until advanced.
    pub fn new(start: u64) -> Self {
        ManualClock(Rc::new(Cell::new(start)))
    }

    /// Moves time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }

    /// Sets the time.
    pub fn set(&self, ms: u64) {
        self.0.set(ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}
