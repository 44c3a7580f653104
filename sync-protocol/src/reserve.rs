//! The online reserve that follows demand: how many units of an item the
//! hub should hold at a store's location, from the online orders it has
//! seen there.
//!
//! # Design constraints
//! - Pure: no clock, no I/O. Times are Unix milliseconds passed in.
//! - O(1) per update: a [`DemandEstimate`] is an exponentially decayed sum
//!   of units ordered online, kept as `(level, at_ms)`. Observing an order
//!   decays the level to now and adds the units; nothing grows with
//!   history.
//! - While a store is connected, rights flow on demand (the hub asks the
//!   store, the till asks the hub), so the split only matters for time
//!   offline. The target therefore covers the online units expected over
//!   an *offline horizon*: `ceil(rate × horizon)`, with the decayed rate
//!   `rate = level × ln 2 / half_life` (the steady-state level of a
//!   constant rate `r` is `r × half_life / ln 2`). An item with no (or
//!   negligible, below [`NEGLIGIBLE_UNITS`] expected) online demand gets
//!   no reserve; the rest always stays with the store. The target is
//!   capped at what is on hand.
//! - Laws (property tested below): the target never exceeds on hand; no
//!   demand gives no target; the target is monotone in the demand level,
//!   the horizon and on hand; decay never raises a level and observing
//!   never lowers it; decaying to `t1` then `t2` equals decaying to `t2`
//!   (within float rounding).

use serde::{Deserialize, Serialize};

const HOUR_MS: u64 = 3_600_000;

/// Expected online units over the horizon below this count as none: an
/// item last ordered online months ago keeps no reserve.
pub const NEGLIGIBLE_UNITS: f64 = 0.01;

/// The online-reserve policy's parameters. Defaults: a 24 h offline
/// horizon, a 7-day demand half-life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservePolicy {
    /// How long a store may be offline that the hub's reserve should cover
    /// online orders for (ms).
    pub horizon_ms: u64,
    /// After this long, an online order weighs half as much in the demand
    /// estimate (ms; 0 is taken as 1).
    pub half_life_ms: u64,
}

impl Default for ReservePolicy {
    fn default() -> Self {
        Self {
            horizon_ms: 24 * HOUR_MS,
            half_life_ms: 7 * 24 * HOUR_MS,
        }
    }
}

impl ReservePolicy {
    /// Online units expected over the horizon from a demand `level` (as
    /// [`DemandEstimate::level_at`] gives it), rounded up, not capped by
    /// on hand: what the hub sends a store as the item's reserve target.
    /// 0 for no (or negligible) demand.
    pub fn wanted(&self, level: f64) -> u64 {
        if level.is_nan() || level <= 0.0 {
            return 0;
        }
        let expected =
            level * (self.horizon_ms as f64) * std::f64::consts::LN_2 / self.half_life() as f64;
        if expected < NEGLIGIBLE_UNITS {
            return 0;
        }
        // `as` saturates: an absurd level asks for everything on hand.
        expected.ceil() as u64
    }

    /// The hub's target reserve of an item with demand `level` and
    /// `on_hand` units: [`ReservePolicy::wanted`], capped at on hand.
    pub fn target(&self, level: f64, on_hand: u64) -> u64 {
        self.wanted(level).min(on_hand)
    }

    fn half_life(&self) -> u64 {
        self.half_life_ms.max(1)
    }
}

/// Online demand for one (item, location): units ordered online,
/// exponentially decayed, as of `at_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DemandEstimate {
    /// Decayed units as of `at_ms` (≥ 0).
    pub level: f64,
    /// When `level` was last brought up to date (Unix ms).
    pub at_ms: u64,
}

impl DemandEstimate {
    /// The level decayed to `now_ms` (unchanged if `now_ms` is not later:
    /// a clock that went back never raises it).
    pub fn level_at(&self, now_ms: u64, policy: &ReservePolicy) -> f64 {
        let level = if self.level.is_nan() || self.level < 0.0 {
            0.0
        } else {
            self.level
        };
        let dt = now_ms.saturating_sub(self.at_ms);
        if dt == 0 || level == 0.0 {
            return level;
        }
        level * (-(dt as f64) / policy.half_life() as f64).exp2()
    }

    /// The estimate decayed to `now_ms` (its time never moves back).
    pub fn decayed(&self, now_ms: u64, policy: &ReservePolicy) -> Self {
        Self {
            level: self.level_at(now_ms, policy),
            at_ms: self.at_ms.max(now_ms),
        }
    }

    /// Records `units` ordered online at `now_ms`.
    pub fn observe(&mut self, units: u64, now_ms: u64, policy: &ReservePolicy) {
        let d = self.decayed(now_ms, policy);
        self.level = d.level + units as f64;
        self.at_ms = d.at_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: u64 = 24 * HOUR_MS;

    #[test]
    fn defaults_and_examples() {
        let p = ReservePolicy::default();
        assert_eq!((p.horizon_ms, p.half_life_ms), (DAY, 7 * DAY));
        assert_eq!(p.target(0.0, 100), 0, "no demand, no reserve");
        // 7 units a day, steady: level = 7 × 7 / ln 2 ≈ 70.7; 7 expected
        // over a day.
        let mut d = DemandEstimate::default();
        for day in 0..200 {
            d.observe(7, day * DAY, &p);
        }
        let level = d.level_at(200 * DAY, &p);
        assert_eq!(p.wanted(level), 7);
        assert_eq!(p.target(level, 5), 5, "capped at on hand");
        // One unit ordered a week ago: half a unit, 1/14 of it per day.
        let mut d = DemandEstimate::default();
        d.observe(1, 0, &p);
        assert_eq!(p.target(d.level_at(7 * DAY, &p), 10), 1);
        // Months ago: negligible.
        assert_eq!(p.target(d.level_at(60 * DAY, &p), 10), 0);
    }

    #[test]
    fn a_clock_that_goes_back_never_raises_the_level() {
        let p = ReservePolicy::default();
        let mut d = DemandEstimate::default();
        d.observe(4, 10 * DAY, &p);
        assert_eq!(d.level_at(DAY, &p), 4.0);
        d.observe(1, DAY, &p);
        assert_eq!((d.level, d.at_ms), (5.0, 10 * DAY));
    }

    fn policy() -> impl Strategy<Value = ReservePolicy> {
        (0u64..30 * DAY, 0u64..30 * DAY).prop_map(|(horizon_ms, half_life_ms)| ReservePolicy {
            horizon_ms,
            half_life_ms,
        })
    }

    proptest! {
        #[test]
        fn target_is_within_on_hand_and_zero_without_demand(
            p in policy(), level in 0.0f64..1e9, on_hand in 0u64..1_000_000,
        ) {
            prop_assert!(p.target(level, on_hand) <= on_hand);
            prop_assert_eq!(p.target(0.0, on_hand), 0);
            prop_assert_eq!(p.target(DemandEstimate::default().level_at(0, &p), on_hand), 0);
        }

        #[test]
        fn target_is_monotone(
            p in policy(), a in 0.0f64..1e6, b in 0.0f64..1e6,
            h in 0u64..30 * DAY, n in 0u64..10_000, m in 0u64..10_000,
        ) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(p.target(lo, n) <= p.target(hi, n), "in demand");
            let (n_lo, n_hi) = (n.min(m), n.max(m));
            prop_assert!(p.target(a, n_lo) <= p.target(a, n_hi), "in on hand");
            let (h_lo, h_hi) = (h.min(p.horizon_ms), h.max(p.horizon_ms));
            let short = ReservePolicy { horizon_ms: h_lo, ..p };
            let long = ReservePolicy { horizon_ms: h_hi, ..p };
            prop_assert!(short.target(a, n) <= long.target(a, n), "in horizon");
        }

        #[test]
        fn decay_never_raises_and_observe_never_lowers(
            p in policy(), level in 0.0f64..1e9, at in 0u64..1 << 40,
            dt in 0u64..1 << 40, units in 0u64..1_000_000,
        ) {
            let d = DemandEstimate { level, at_ms: at };
            prop_assert!(d.level_at(at + dt, &p) <= level);
            prop_assert!(d.level_at(at + dt, &p) >= 0.0);
            let mut o = d;
            o.observe(units, at, &p);
            prop_assert!(o.level >= level);
            // Later, the observed estimate is never below the unobserved one.
            let mut later = d;
            later.observe(units, at + dt, &p);
            prop_assert!(later.level >= d.level_at(at + dt, &p));
        }

        #[test]
        fn decay_composes(
            p in policy(), level in 0.0f64..1e9, at in 0u64..1 << 40,
            t1 in 0u64..1 << 36, t2 in 0u64..1 << 36,
        ) {
            let d = DemandEstimate { level, at_ms: at };
            let stepwise = d.decayed(at + t1, &p).level_at(at + t1 + t2, &p);
            let direct = d.level_at(at + t1 + t2, &p);
            prop_assert!(
                (stepwise - direct).abs() <= 1e-9 * level.max(1.0),
                "{stepwise} vs {direct}"
            );
        }
    }
}
