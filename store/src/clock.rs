//! The system's wall clock: [`SystemClock`], the one
//! [`tally_sync::clock::Clock`] that reads the time. The agent's and the
//! hub's binaries pass it in; tests pass a
//! [`tally_sync::clock::ManualClock`] instead.

use std::time::{SystemTime, UNIX_EPOCH};

use tally_sync::clock::Clock;

/// The operating system's wall clock, in Unix milliseconds (0 before
/// 1970, `u64::MAX` past the year 584 million).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_the_time() {
        // 2020-01-01T00:00:00Z: any machine this runs on is past it.
        let now = SystemClock.now_ms();
        assert!(now > 1_577_836_800_000, "{now}");
    }
}
