//! Wall-clock time as an input: the [`Clock`] trait, which every part that
//! stamps a time (the agent's committer, sync status and devices, the
//! hub's handlers) is handed, and [`ManualClock`], a clock that tests and
//! simulations set by hand.
//!
//! This crate reads no clock: the one implementation that reads the
//! system's is `tally_store::SystemClock`, which the binaries pass in.
//! Monotonic timing (timeouts, backoff, latencies) uses `std::time::Instant`
//! where it is measured and is not a [`Clock`]'s business.

use std::sync::atomic::{AtomicU64, Ordering};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// A clock that only moves when told to: set it, or advance it.
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    /// A clock showing `ms` (Unix milliseconds).
    pub fn new(ms: u64) -> Self {
        Self {
            ms: AtomicU64::new(ms),
        }
    }

    /// Sets the time to `ms`.
    pub fn set(&self, ms: u64) {
        self.ms.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms` (saturating) and returns the new
    /// time.
    pub fn advance(&self, ms: u64) -> u64 {
        let previous = self
            .ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            })
            .unwrap_or_else(|t| t);
        previous.saturating_add(ms)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_ms(), 1_000);
        assert_eq!(c.now_ms(), 1_000);
        assert_eq!(c.advance(250), 1_250);
        assert_eq!(c.now_ms(), 1_250);
        c.set(7);
        assert_eq!(c.now_ms(), 7);
        assert_eq!(c.advance(u64::MAX), u64::MAX, "saturates");
        assert_eq!(ManualClock::default().now_ms(), 0);
    }

    #[test]
    fn a_clock_is_usable_as_a_shared_trait_object() {
        let c: std::sync::Arc<dyn Clock> = std::sync::Arc::new(ManualClock::new(5));
        assert_eq!(c.now_ms(), 5);
    }
}
