//! Rights rebalancing: moving rights between the hub and a store towards
//! the hub's online-reserve target (from [`crate::reserve`]), and back to
//! the store when it needs them.
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
//!   2. Otherwise the hub's share moves towards the reserve target (the
//!      item's [`crate::reserve::ReservePolicy::wanted`] units, capped at
//!      on hand here): the store gives rights up to the target (keeping
//!      what it needs for its own outstanding demand), and the hub gives
//!      back any excess.
//!   3. Applying the proposed move and asking again proposes nothing, so
//!      rights do not flap between syncs.

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

/// Decides one move for one (item, store) towards the hub holding
/// `target` units (capped at on hand). See the module docs.
pub fn rebalance(target: u64, view: &RightsView) -> Rebalance {
    let target = target.min(view.on_hand);
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
    fn examples() {
        let v = |on_hand, hub_rights, store_rights, store_demand| RightsView {
            on_hand,
            hub_rights,
            store_rights,
            store_demand,
        };
        assert_eq!(rebalance(2, &v(10, 0, 10, 0)), Rebalance::ToHub(2));
        assert_eq!(rebalance(2, &v(10, 2, 8, 0)), Rebalance::Keep);
        assert_eq!(rebalance(1, &v(5, 2, 3, 0)), Rebalance::ToStore(1));
        // No online demand: the hub gives everything back.
        assert_eq!(rebalance(0, &v(5, 2, 3, 0)), Rebalance::ToStore(2));
        // A target above on hand is capped at it.
        assert_eq!(rebalance(50, &v(5, 0, 5, 0)), Rebalance::ToHub(5));
        // The store was refused 3 units holding 1: the hub gives back 2.
        assert_eq!(rebalance(2, &v(10, 4, 1, 3)), Rebalance::ToStore(2));
        // A store with demand is not drained below it.
        assert_eq!(rebalance(2, &v(10, 0, 9, 9)), Rebalance::Keep);
    }

    proptest! {
        #[test]
        fn moves_stay_within_rights_and_settle(
            hub in 0u64..1000, store in 0u64..1000, demand in 0u64..1000,
            target in 0u64..2000,
        ) {
            let v = RightsView { on_hand: hub + store, hub_rights: hub, store_rights: store, store_demand: demand };
            let mv = rebalance(target, &v);
            match mv {
                Rebalance::ToStore(n) => prop_assert!(n > 0 && n <= hub),
                Rebalance::ToHub(n) => prop_assert!(n > 0 && n <= store),
                Rebalance::Keep => {}
            }
            let next = after(&v, mv);
            prop_assert_eq!(next.hub_rights + next.store_rights, hub + store);
            prop_assert_eq!(rebalance(target, &next), Rebalance::Keep, "settles after one move: {:?}", next);
            // The hub never takes more than its target, nor what the
            // store needs for its own refused demand.
            if let Rebalance::ToHub(_) = mv {
                prop_assert!(next.hub_rights <= target.min(v.on_hand));
                prop_assert!(next.store_rights >= demand.min(store));
            }
            // Store demand first: a store short of rights gets what the
            // hub holds, up to what it was short.
            if demand > store {
                prop_assert!(next.store_rights >= demand.min(store + hub));
            }
            // Without demand, the hub ends at its target or as close as
            // the store's rights allow.
            if demand == 0 {
                prop_assert_eq!(next.hub_rights, target.min(v.on_hand));
            }
        }
    }
}
