//! A store's lost sales and refused online orders of the last 24 hours
//! ([`Recent`], kept in its [`StoreRecord`](super::StoreRecord)), beside
//! the totals since its first sync: what HQ acts on today, not the sum of
//! a store's whole history.
//!
//! Counted by the hour of the hub's clock at which the hub learned of
//! them: a sale lost while the store was offline counts when its sync
//! reports it (stores report their totals; each sync's rise,
//! [`ByReason::merge`], is what is new). At most 24 hours are kept, so
//! the record stays small whatever the store's past. Pure.

use serde::{Deserialize, Serialize};
use tally_sync::lost::{ByReason, Lost};
use tally_sync::Shortage;

/// Hours kept and summed by [`Recent::last_day`].
pub const HOURS: u64 = 24;

const HOUR_MS: u64 = 60 * 60 * 1000;

/// One hour's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hour {
    /// The hour (hub clock, Unix ms / 3,600,000).
    pub hour: u64,
    /// Sales lost, by reason, that the hub learned of in that hour.
    #[serde(default)]
    pub lost: ByReason<Lost>,
    /// Online orders refused for this store in that hour, by reason.
    #[serde(default)]
    pub refused_orders: ByReason<u64>,
}

/// The last [`HOURS`] hours with anything counted, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Recent(Vec<Hour>);

/// What the last day holds, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LastDay {
    /// Sales lost, by reason.
    pub lost_sales: ByReason<Lost>,
    /// Online orders refused, by reason.
    pub refused_orders: ByReason<u64>,
}

impl Recent {
    /// Whether nothing is kept (the record then carries no field).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Counts `lost` (a sync's rise) at `now_ms`.
    pub fn add_lost(&mut self, now_ms: u64, lost: &ByReason<Lost>) {
        if lost.is_none() {
            return;
        }
        self.hour_at(now_ms).lost.add(lost);
    }

    /// Counts one online order refused for `reason` at `now_ms`.
    pub fn add_refused_order(&mut self, now_ms: u64, reason: Shortage) {
        self.hour_at(now_ms).refused_orders.count_one(reason);
    }

    /// The counts of the [`HOURS`] hours up to `now_ms`'s (and the next
    /// one: another hub process's clock may be a little ahead).
    pub fn last_day(&self, now_ms: u64) -> LastDay {
        let now = now_ms / HOUR_MS;
        let mut day = LastDay::default();
        for h in self.0.iter().filter(|h| in_window(h.hour, now)) {
            day.lost_sales.add(&h.lost);
            day.refused_orders.add(&h.refused_orders);
        }
        day
    }

    /// The hour of `now_ms`, made if need be; the hours out of the window
    /// around it go (at most [`HOURS`] + 1 are kept). A clock that ran
    /// ahead hides nothing once the next count comes from a right one;
    /// the price of a clock a day or more wrong is the day's counts it
    /// drops when it counts (the totals keep them).
    fn hour_at(&mut self, now_ms: u64) -> &mut Hour {
        let now = now_ms / HOUR_MS;
        self.0.retain(|h| in_window(h.hour, now));
        let at = match self.0.binary_search_by_key(&now, |h| h.hour) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(
                    i,
                    Hour {
                        hour: now,
                        ..Hour::default()
                    },
                );
                i
            }
        };
        &mut self.0[at]
    }
}

/// Whether `hour` is one of the [`HOURS`] hours up to `now`'s, or the
/// next (a clock a little ahead).
fn in_window(hour: u64, now: u64) -> bool {
    hour <= now.saturating_add(1) && now.saturating_sub(hour) < HOURS
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = HOUR_MS;

    fn lost(sales: u64, units: u64) -> ByReason<Lost> {
        ByReason {
            offline: Lost { sales, units },
            ..ByReason::default()
        }
    }

    #[test]
    fn the_last_day_sums_the_hours_up_to_now_and_forgets_older_ones() {
        let mut r = Recent::default();
        let t0 = 1_000 * H;
        r.add_lost(t0, &lost(2, 5));
        r.add_lost(t0 + H / 2, &lost(1, 1));
        r.add_refused_order(t0 + 3 * H, Shortage::NoStock);
        r.add_lost(t0 + 3 * H, &ByReason::default());
        assert_eq!(r.0.len(), 2, "an hour per hour with something");
        let day = r.last_day(t0 + 3 * H);
        assert_eq!(day.lost_sales, lost(3, 6));
        assert_eq!(day.refused_orders.no_stock, 1);
        // A day after the first hour, it is out of the sum; once
        // something is counted later, it is gone.
        let later = t0 + HOURS * H;
        assert_eq!(r.last_day(later).lost_sales, ByReason::default());
        assert_eq!(r.last_day(later).refused_orders.no_stock, 1);
        r.add_refused_order(later, Shortage::Offline);
        assert_eq!(r.0.len(), 2, "the first hour went");
        assert_eq!(r.0[0].hour, t0 / H + 3);
    }

    #[test]
    fn a_clock_set_back_counts_within_the_window_only_and_keeps_it_bounded() {
        let mut r = Recent::default();
        let t0 = 1_000 * H;
        r.add_lost(t0, &lost(1, 1));
        // An hour back (another process's clock a little behind):
        // counted in its hour, kept in order, the later hour still seen.
        r.add_lost(t0 - H, &lost(1, 2));
        assert_eq!(r.0.iter().map(|h| h.hour).collect::<Vec<_>>(), [999, 1_000]);
        assert_eq!(r.last_day(t0).lost_sales, lost(2, 3));
        assert_eq!(r.last_day(t0 - H).lost_sales, lost(2, 3));

        // However many hours pass, at most a day of them is kept.
        for i in 0..100 {
            r.add_refused_order(t0 + i * H, Shortage::Offline);
        }
        assert_eq!(r.0.len(), HOURS as usize);
        assert_eq!(r.last_day(t0 + 99 * H).refused_orders.offline, HOURS);
    }

    /// A count made while a clock ran days ahead does not hide the
    /// counts made once it is right again.
    #[test]
    fn a_clock_that_ran_ahead_does_not_blank_the_day() {
        let mut r = Recent::default();
        let t0 = 1_000 * H;
        r.add_lost(t0 + 100 * H, &lost(9, 9));
        r.add_lost(t0, &lost(1, 1));
        assert_eq!(r.last_day(t0).lost_sales, lost(1, 1));
        assert_eq!(r.0.len(), 1, "the hour ahead went");
        r.add_lost(t0 + H, &lost(1, 1));
        assert_eq!(r.last_day(t0 + H).lost_sales, lost(2, 2));
    }

    #[test]
    fn it_reads_back_from_json_and_an_absent_field_is_empty() {
        let mut r = Recent::default();
        r.add_lost(5 * H, &lost(1, 2));
        r.add_refused_order(5 * H, Shortage::HeldElsewhere);
        let json = serde_json::to_string(&r).unwrap_or_default();
        let back: Recent = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, r);
        // A store record from before the field has none.
        let old = serde_json::json!({"store": "s1", "first_sync_ms": 1, "last_sync_ms": 2,
            "syncs": 1, "events_received": 0, "acked_events_upto": 0});
        let record: super::super::StoreRecord =
            serde_json::from_value(old).unwrap_or_else(|e| panic!("{e}"));
        assert!(record.recent.is_empty());
    }
}
