//! Sales lost for lack of rights, by reason ([`Shortage`]): what a store
//! counts (every sale refused with `no_stock`, `held_elsewhere` or
//! `offline`) and reports in each sync request
//! ([`crate::message::SyncRequest::lost`]), and what the hub keeps per
//! store.
//!
//! # Design constraints
//! - **Cumulative, merged by max.** A store reports its totals since its
//!   database was created, never a difference, and the hub keeps the
//!   largest total it has seen per reason and field ([`ByReason::merge`]).
//!   So a lost, repeated or reordered request is never counted twice or
//!   lost, and the store never has to learn what the hub took.
//! - **Saturating.** Counts from the wire are hostile: every sum
//!   saturates at `u64::MAX`; nothing can overflow or panic.

use serde::{Deserialize, Serialize};

use crate::ledger::Shortage;
use crate::message::LostSales;

/// Sales refused for one reason, and the units they would have sold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// Sales refused.
    pub sales: u64,
    /// Units those sales asked for (all their lines).
    pub units: u64,
}

impl Lost {
    /// Counts one more refused sale of `units` units (saturating).
    pub fn add_sale(&mut self, units: u64) {
        self.add(Lost { sales: 1, units });
    }

    /// Adds `other`'s sales and units (saturating).
    pub fn add(&mut self, other: Lost) {
        self.sales = self.sales.saturating_add(other.sales);
        self.units = self.units.saturating_add(other.units);
    }

    /// Raises each field to `other`'s if larger; what each rose by.
    pub fn raise_to(&mut self, other: Lost) -> Lost {
        let rise = Lost {
            sales: other.sales.saturating_sub(self.sales),
            units: other.units.saturating_sub(self.units),
        };
        self.sales = self.sales.max(other.sales);
        self.units = self.units.max(other.units);
        rise
    }
}

/// One value per [`Shortage`]; in JSON an object with every reason's name
/// as a key (`{"no_stock": …, "held_elsewhere": …, "offline": …}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByReason<T> {
    /// [`Shortage::NoStock`].
    #[serde(default)]
    pub no_stock: T,
    /// [`Shortage::HeldElsewhere`].
    #[serde(default)]
    pub held_elsewhere: T,
    /// [`Shortage::Offline`].
    #[serde(default)]
    pub offline: T,
}

/// Every reason, in the order reports list them.
pub const REASONS: [Shortage; 3] = [
    Shortage::NoStock,
    Shortage::HeldElsewhere,
    Shortage::Offline,
];

impl<T> ByReason<T> {
    /// The value for `reason`.
    pub fn get(&self, reason: Shortage) -> &T {
        match reason {
            Shortage::NoStock => &self.no_stock,
            Shortage::HeldElsewhere => &self.held_elsewhere,
            Shortage::Offline => &self.offline,
        }
    }

    /// The value for `reason`, to change.
    pub fn get_mut(&mut self, reason: Shortage) -> &mut T {
        match reason {
            Shortage::NoStock => &mut self.no_stock,
            Shortage::HeldElsewhere => &mut self.held_elsewhere,
            Shortage::Offline => &mut self.offline,
        }
    }
}

impl ByReason<u64> {
    /// Counts one more for `reason` (saturating).
    pub fn count_one(&mut self, reason: Shortage) {
        let n = self.get_mut(reason);
        *n = n.saturating_add(1);
    }

    /// Adds `other`'s counts, reason by reason (saturating).
    pub fn add(&mut self, other: &ByReason<u64>) {
        for reason in REASONS {
            let n = self.get_mut(reason);
            *n = n.saturating_add(*other.get(reason));
        }
    }
}

impl ByReason<Lost> {
    /// Adds `other`'s counts, reason by reason (saturating).
    pub fn add(&mut self, other: &ByReason<Lost>) {
        for reason in REASONS {
            self.get_mut(reason).add(*other.get(reason));
        }
    }

    /// The totals as a sync request carries them (reasons with no lost
    /// sale left out).
    pub fn to_wire(&self) -> Vec<LostSales> {
        REASONS
            .iter()
            .map(|&reason| (reason, *self.get(reason)))
            .filter(|(_, l)| *l != Lost::default())
            .map(|(reason, l)| LostSales {
                reason,
                sales: l.sales,
                units: l.units,
            })
            .collect()
    }

    /// Merges a store's reported totals: each field rises to the largest
    /// value reported (a reason listed twice counts once, at its largest).
    /// Idempotent, commutative: a repeated or older report changes
    /// nothing. Answers what each reason rose by (the sales newly lost
    /// this report told of: summed over every merge, the totals).
    pub fn merge(&mut self, reported: &[LostSales]) -> ByReason<Lost> {
        let mut rose = ByReason::<Lost>::default();
        for r in reported {
            let rise = self.get_mut(r.reason).raise_to(Lost {
                sales: r.sales,
                units: r.units,
            });
            rose.get_mut(r.reason).add(rise);
        }
        rose
    }

    /// Whether no reason counts any sale or unit.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost(reason: Shortage, sales: u64, units: u64) -> LostSales {
        LostSales {
            reason,
            sales,
            units,
        }
    }

    #[test]
    fn counting_saturates() {
        let mut l = Lost {
            sales: u64::MAX - 1,
            units: u64::MAX - 2,
        };
        l.add_sale(5);
        l.add_sale(5);
        assert_eq!(
            l,
            Lost {
                sales: u64::MAX,
                units: u64::MAX
            }
        );
    }

    #[test]
    fn the_merge_keeps_the_largest_total_so_a_repeat_counts_once() {
        let mut hub = ByReason::<Lost>::default();
        let first = [lost(Shortage::Offline, 2, 3)];
        assert_eq!(
            *hub.merge(&first).get(Shortage::Offline),
            Lost { sales: 2, units: 3 }
        );
        assert!(
            hub.merge(&first).is_none(),
            "a repeated request changes nothing"
        );
        // Later totals raise it, by what is new; an older, reordered one
        // does not lower it.
        let rose = hub.merge(&[lost(Shortage::Offline, 3, 4), lost(Shortage::NoStock, 1, 1)]);
        assert_eq!(*rose.get(Shortage::Offline), Lost { sales: 1, units: 1 });
        assert_eq!(*rose.get(Shortage::NoStock), Lost { sales: 1, units: 1 });
        assert!(hub.merge(&first).is_none());
        assert_eq!(*hub.get(Shortage::Offline), Lost { sales: 3, units: 4 });
        assert_eq!(*hub.get(Shortage::NoStock), Lost { sales: 1, units: 1 });
        assert_eq!(*hub.get(Shortage::HeldElsewhere), Lost::default());
        // Hostile totals: no overflow, and a reason twice counts once.
        hub.merge(&[
            lost(Shortage::HeldElsewhere, u64::MAX, 7),
            lost(Shortage::HeldElsewhere, 1, u64::MAX),
        ]);
        assert_eq!(
            *hub.get(Shortage::HeldElsewhere),
            Lost {
                sales: u64::MAX,
                units: u64::MAX
            }
        );
    }

    proptest::proptest! {
        /// Whatever reports arrive, repeated, reordered or hostile, the
        /// rises each merge answers add up to the totals kept: a count of
        /// sales lost per period never counts a sale twice nor drops one.
        #[test]
        fn the_rises_add_up_to_the_totals(
            reports in proptest::collection::vec(
                proptest::collection::vec((0usize..3, 0u64..1_000, 0u64..1_000), 0..4),
                0..12,
            ),
        ) {
            let mut totals = ByReason::<Lost>::default();
            let mut summed = ByReason::<Lost>::default();
            for report in reports {
                let wire: Vec<LostSales> = report
                    .into_iter()
                    .map(|(r, sales, units)| lost(REASONS[r], sales, units))
                    .collect();
                summed.add(&totals.merge(&wire));
            }
            proptest::prop_assert_eq!(summed, totals);
        }
    }

    #[test]
    fn the_wire_form_lists_reasons_with_lost_sales() {
        let mut totals = ByReason::<Lost>::default();
        assert!(totals.to_wire().is_empty());
        totals.get_mut(Shortage::Offline).add_sale(2);
        assert_eq!(totals.to_wire(), vec![lost(Shortage::Offline, 1, 2)]);
        let mut hub = ByReason::default();
        hub.merge(&totals.to_wire());
        assert_eq!(hub, totals);
    }

    #[test]
    fn json_names_every_reason() {
        let v = serde_json::to_value(ByReason::<u64> {
            offline: 2,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"no_stock": 0, "held_elsewhere": 0, "offline": 2})
        );
        let old: ByReason<Lost> = serde_json::from_str("{}").unwrap();
        assert_eq!(old, ByReason::default());
    }
}
