//! Rights rebalancing: how much of a store's stock the hub holds back as an
//! online-sales reserve, and when rights move back to the store.
//!
//! # Design constraints
//! - One pure function, [`rebalance`], decides; the hub, the agent and the
//!   simulation all call it, so they cannot disagree about the policy.
//! - It only *proposes* a move. The replica that owns the rights executes
//!   it as an ordinary counter transfer, capped by what it holds at that
//!   moment: the hub gives its own rights to the store, the store (while
//!   online, on a sync) gives its own to the hub. A stale view can make a
//!   move smaller or unnecessary, never unsafe; transfers are CRDT updates,
//!   never a lock.
//! - The policy, in order:
//!   1. A store that has had sales refused for lack of rights (`demand`)
//!      gets unused hub rights back, what it was short (and any excess over
//!      the reserve target): a shopper at the till comes before a possible
//!      online order.
//!   2. Otherwise the hub's share moves towards the reserve target,
//!      `min(on_hand, max(min_reserve_units, on_hand × pct / 100))`:
//!      the store gives rights up to the target (keeping what it needs for
//!      its own outstanding demand), and the hub gives back any excess.
//!   3. Applying the proposed move and asking again proposes nothing, so
//!      rights do not flap between syncs.

use serde::{Deserialize, Serialize};

/// The online-reserve policy. Documented defaults: 20 %, at least 1 unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservePolicy {
    /// Percentage of on-hand the hub holds for online orders (0–100).
    pub online_reserve_pct: u8,
    /// Minimum units held for online orders (while there is stock).
    pub min_reserve_units: u64,
}

impl Default for ReservePolicy {
    fn default() -> Self {
        Self {
            online_reserve_pct: 20,
            min_reserve_units: 1,
        }
    }
}

impl ReservePolicy {
    /// The hub's target share of `on_hand`.
    pub fn target(&self, on_hand: u64) -> u64 {
        let pct = u128::from(self.online_reserve_pct.min(100));
        let share = (u128::from(on_hand) * pct / 100) as u64;
        share.max(self.min_reserve_units).min(on_hand)
    }
}

/// What the policy sees of one (item, store) counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RightsView {
    /// Units on hand at the store.
    pub on_hand: u64,
    /// Rights the hub holds there.
    pub hub_rights: u64,
    /// Rights the store holds.
    pub store_rights: u64,
    /// Units the store was refused for lack of rights since it last synced.
    pub store_demand: u64,
}

/// A proposed move of rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebalance {
    /// Nothing to do.
    Keep,
    /// The hub gives this many of its rights to the store.
    ToStore(u64),
    /// The store gives this many of its rights to the hub.
    ToHub(u64),
}

/// Decides one move for one (item, store). See the module docs.
pub fn rebalance(policy: &ReservePolicy, view: &RightsView) -> Rebalance {
    let target = policy.target(view.on_hand);
    if view.store_demand > view.store_rights {
        let short = view.store_demand - view.store_rights;
        let excess = view.hub_rights.saturating_sub(target);
        let give = short.max(excess).min(view.hub_rights);
        return if give > 0 {
            Rebalance::ToStore(give)
        } else {
            Rebalance::Keep
        };
    }
    if view.hub_rights < target {
        let spare = view.store_rights.saturating_sub(view.store_demand);
        let take = (target - view.hub_rights).min(spare);
        if take > 0 {
            return Rebalance::ToHub(take);
        }
    } else if view.hub_rights > target {
        return Rebalance::ToStore(view.hub_rights - target);
    }
    Rebalance::Keep
}

/// `view` after `mv` is executed in full.
pub fn after(view: &RightsView, mv: Rebalance) -> RightsView {
    let mut v = *view;
    match mv {
        Rebalance::Keep => {}
        Rebalance::ToStore(n) => {
            v.hub_rights -= n.min(v.hub_rights);
            v.store_rights += n;
        }
        Rebalance::ToHub(n) => {
            v.store_rights -= n.min(v.store_rights);
            v.hub_rights += n;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn target_follows_pct_and_minimum() {
        let p = ReservePolicy::default();
        assert_eq!(p.target(0), 0);
        assert_eq!(p.target(1), 1);
        assert_eq!(p.target(10), 2);
        assert_eq!(p.target(100), 20);
        let none = ReservePolicy {
            online_reserve_pct: 0,
            min_reserve_units: 0,
        };
        assert_eq!(none.target(100), 0);
    }

    #[test]
    fn examples() {
        let p = ReservePolicy::default();
        let v = |on_hand, hub_rights, store_rights, store_demand| RightsView {
            on_hand,
            hub_rights,
            store_rights,
            store_demand,
        };
        assert_eq!(rebalance(&p, &v(10, 0, 10, 0)), Rebalance::ToHub(2));
        assert_eq!(rebalance(&p, &v(10, 2, 8, 0)), Rebalance::Keep);
        assert_eq!(rebalance(&p, &v(5, 2, 3, 0)), Rebalance::ToStore(1));
        // The store was refused 3 units holding 1: the hub gives back 2.
        assert_eq!(rebalance(&p, &v(10, 4, 1, 3)), Rebalance::ToStore(2));
        // A store with demand is not drained below it.
        assert_eq!(rebalance(&p, &v(10, 0, 9, 9)), Rebalance::Keep);
    }

    proptest! {
        #[test]
        fn moves_stay_within_rights_and_settle(
            hub in 0u64..1000, store in 0u64..1000, demand in 0u64..1000,
            pct in 0u8..=100, min in 0u64..50,
        ) {
            let p = ReservePolicy { online_reserve_pct: pct, min_reserve_units: min };
            let v = RightsView { on_hand: hub + store, hub_rights: hub, store_rights: store, store_demand: demand };
            let mv = rebalance(&p, &v);
            match mv {
                Rebalance::ToStore(n) => prop_assert!(n > 0 && n <= hub),
                Rebalance::ToHub(n) => prop_assert!(n > 0 && n <= store),
                Rebalance::Keep => {}
            }
            let next = after(&v, mv);
            prop_assert_eq!(next.hub_rights + next.store_rights, hub + store);
            prop_assert_eq!(rebalance(&p, &next), Rebalance::Keep, "settles after one move: {:?}", next);
        }
    }
}
