//! Rights on demand: a store that lacks the rights to sell units on its
//! own shelf asks the hub for the rights the hub holds there (its online
//! reserve), instead of waiting for the next sync's rebalancing.
//!
//! # Design constraints
//! - A grant is an ordinary escrow transfer `T[hub→store]`, executed by
//!   the hub on its own rights and capped by them ([`grant`]): it can
//!   never make a unit sellable twice, whatever the timing.
//! - The answer carries the hub's entries of that counter after the
//!   transfer; the store merges them ([`apply_grant`]) like a sync's delta,
//!   so a lost, repeated or reordered answer is harmless.
//! - A request has an id: the hub records what it granted under it, and a
//!   repeated request is answered with the same grant ([`regrant`]),
//!   never a second transfer.
//! - The other way, for an online order short of the hub's reserve: the
//!   hub asks a live store (`crate::link::Notice::RightsWanted`), the store
//!   gives up to that many unsold rights with an ordinary transfer
//!   `T[store→hub]` ([`release`], durably, before it reports), and reports
//!   its own entries ([`RightsReleased`]); the hub checks and merges them
//!   ([`merge_own`]) in the order's transaction.
//! - Units held back for an order waiting on a store's release are not
//!   granted to anyone else meanwhile ([`grant_holding`]): first come,
//!   first served.
//! - Pure: the hub runs [`grant`] inside its write transaction and answers
//!   after the commit.

use serde::{Deserialize, Serialize};

use crate::counter::{BoundedCounter, Violation};
use crate::exchange::{HubReplica, Identity, ReplicaStore};
use crate::explain::{self, Unsynced};
use crate::gtin::Gtin;
use crate::ids::{EventId, ReplicaId};
use crate::inventory::ItemKey;
use crate::ledger::Shortage;

/// Most units one request may ask for.
pub const MAX_UNITS_PER_REQUEST: u64 = 1_000_000;

/// A store asks for `units` of the hub's rights to `gtin` at its own
/// location (`POST /v1/rights`; the location comes from its certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RightsRequest {
    /// Names the request: a retry repeats it and gets the same grant.
    pub request_id: EventId,
    /// The item.
    pub gtin: Gtin,
    /// Units wanted (> 0).
    pub units: u64,
    /// The store's own entries of this counter, so the hub grants on the
    /// store's latest state (rights it gave the hub at its last sync, units
    /// it sold since): checked and merged like a sync's delta.
    #[serde(default)]
    pub own: BoundedCounter,
}

impl RightsRequest {
    /// Why the request cannot be served as asked, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.units == 0 || self.units > MAX_UNITS_PER_REQUEST {
            return Err(format!(
                "units must be 1 to {MAX_UNITS_PER_REQUEST}, got {}",
                self.units
            ));
        }
        Ok(())
    }
}

/// The hub's answer to a [`RightsRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightsGrant {
    /// The request answered.
    pub request_id: EventId,
    /// The item.
    pub gtin: Gtin,
    /// Units asked for.
    pub asked: u64,
    /// Units of rights transferred to the store (0 to `asked`).
    pub granted: u64,
    /// The counter's entries other than the store's own, after the
    /// transfer: what the store merges.
    pub counter: BoundedCounter,
    /// Why less than asked was granted: `no_stock` (the hub holds no more
    /// rights there, so the rest of the shelf is the store's own or not
    /// there at all).
    pub reason: Option<Shortage>,
}

/// At the hub: merges the store's own entries (refused whole, writing
/// nothing, if they advance anything the store does not own), transfers up
/// to `req.units` of the hub's rights at the store's location to the
/// store, stores the counter if it changed, and answers the grant. `who`
/// is the store, from its certificate.
pub fn grant<S: ReplicaStore>(
    store: &mut S,
    who: &Identity,
    req: &RightsRequest,
) -> Result<Result<RightsGrant, Violation>, S::Error> {
    grant_holding(store, who, req, 0)
}

/// [`grant`], keeping `hold_back` of the hub's rights (units an online
/// order is waiting for) out of the grant.
pub fn grant_holding<S: ReplicaStore>(
    store: &mut S,
    who: &Identity,
    req: &RightsRequest,
    hold_back: u64,
) -> Result<Result<RightsGrant, Violation>, S::Error> {
    let hub = ReplicaId::hub();
    let key = ItemKey::new(who.location.clone(), req.gtin);
    let before = store.counter(&key)?;
    if let Err(v) = before.validate(&who.replica, &req.own) {
        return Ok(Err(v));
    }
    let mut c = before.clone();
    c.merge(&req.own);
    let granted = req.units.min(c.rights(&hub).saturating_sub(hold_back));
    if granted > 0 && c.transfer(&hub, &who.replica, granted).is_err() {
        return Ok(Ok(answer(who, req, 0, &before)));
    }
    if c != before {
        store.put_counter(&key, c.clone())?;
    }
    Ok(Ok(answer(who, req, granted, &c)))
}

/// At the hub: the answer to a request already granted (`granted` units
/// under its id): the same units, the counter as it is now.
pub fn regrant<S: ReplicaStore>(
    store: &S,
    who: &Identity,
    req: &RightsRequest,
    granted: u64,
) -> Result<RightsGrant, S::Error> {
    let c = store.counter(&ItemKey::new(who.location.clone(), req.gtin))?;
    Ok(answer(who, req, granted, &c))
}

fn answer(who: &Identity, req: &RightsRequest, granted: u64, c: &BoundedCounter) -> RightsGrant {
    RightsGrant {
        request_id: req.request_id,
        gtin: req.gtin,
        asked: req.units,
        granted,
        counter: c.without(&who.replica),
        reason: (granted < req.units).then_some(Shortage::NoStock),
    }
}

/// A store's report that it gave the hub rights it was asked for
/// (`POST /v1/rights/released`, answering a
/// `crate::link::Notice::RightsWanted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RightsReleased {
    /// The request answered (the notice's id).
    pub request_id: EventId,
    /// The item.
    pub gtin: Gtin,
    /// Units of rights the store transferred to the hub (0: it had none
    /// unsold).
    pub released: u64,
    /// The store's own entries of the counter after the transfer: checked
    /// and merged by the hub like a sync's delta.
    pub own: BoundedCounter,
}

/// What a store's [`release`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreReleased {
    /// Units of rights transferred to the hub.
    pub given: u64,
    /// Rights the store holds but could not give: added by events the
    /// hub has not acknowledged, so it could not accept them yet. Worth
    /// a sync and a second release when an order waits for them.
    pub unexplained: u64,
    /// The store's own entries of the counter after the transfer: the
    /// report.
    pub own: BoundedCounter,
}

/// At the store: merges `seen` (the hub's entries of the counter, as the
/// request carried them), then transfers up to `units` of its own rights
/// at its location to the hub (an ordinary escrow transfer, capped by
/// what it holds and the hub can explain: `unsynced` is what its events
/// not yet acknowledged add, [`Unsynced::explainable_rights`]). The
/// caller commits before reporting.
pub fn release<S: ReplicaStore>(
    store: &mut S,
    who: &Identity,
    gtin: Gtin,
    units: u64,
    seen: &BoundedCounter,
    unsynced: &Unsynced,
) -> Result<StoreReleased, S::Error> {
    let key = ItemKey::new(who.location.clone(), gtin);
    let mut c = store.counter(&key)?;
    if !c.covers(seen) {
        // The hub's entries only: the store's own are never taken from a
        // message.
        c.merge(&seen.without(&who.replica));
        store.put_counter(&key, c.clone())?;
    }
    let unexplained = unsynced.unexplained_rights(&c, &who.replica, gtin);
    let give = units.min(unsynced.explainable_rights(&c, &who.replica, gtin));
    let given = if give > 0 && c.transfer(&who.replica, &ReplicaId::hub(), give).is_ok() {
        store.put_counter(&key, c.clone())?;
        give
    } else {
        0
    };
    Ok(StoreReleased {
        given,
        unexplained: unexplained.min(units - given),
        own: c.owned_by(&who.replica),
    })
}

/// At the hub: a store's request for rights as the hub serves it. The
/// request's own entries are first lowered to what the store's synced
/// events explain ([`crate::explain::clamp_own`]), so a request cannot
/// grow the store's stock past its events; then [`grant_holding`].
pub fn grant_explained<S: HubReplica>(
    store: &mut S,
    who: &Identity,
    req: &RightsRequest,
    hold_back: u64,
) -> Result<Result<RightsGrant, Violation>, S::Error> {
    let req = RightsRequest {
        own: explained_own(store, who, req.gtin, &req.own)?,
        ..req.clone()
    };
    grant_holding(store, who, &req, hold_back)
}

/// At the hub: a store's report of rights it released as the hub merges
/// it: its own entries lowered to what its synced events explain
/// ([`crate::explain::clamp_own`]), then [`merge_own`].
pub fn merge_released<S: HubReplica>(
    store: &mut S,
    who: &Identity,
    released: &RightsReleased,
) -> Result<Result<bool, Violation>, S::Error> {
    let own = explained_own(store, who, released.gtin, &released.own)?;
    merge_own(store, who, released.gtin, &own)
}

/// `own` (a store's own entries of `gtin` at its location) with the `P`
/// and `N` entries lowered to what its synced events explain.
fn explained_own<S: HubReplica>(
    store: &S,
    who: &Identity,
    gtin: Gtin,
    own: &BoundedCounter,
) -> Result<BoundedCounter, S::Error> {
    let key = ItemKey::new(who.location.clone(), gtin);
    let explained = store.explained(&key)?;
    let current = store.counter(&key)?;
    Ok(explain::clamp_own(&who.replica, own, explained, &current))
}

/// At the hub: checks a store's own entries of one counter (refused whole,
/// writing nothing, if they advance anything the store does not own) and
/// merges them. Returns whether the counter changed.
pub fn merge_own<S: ReplicaStore>(
    store: &mut S,
    who: &Identity,
    gtin: Gtin,
    own: &BoundedCounter,
) -> Result<Result<bool, Violation>, S::Error> {
    let key = ItemKey::new(who.location.clone(), gtin);
    let mut c = store.counter(&key)?;
    if let Err(v) = c.validate(&who.replica, own) {
        return Ok(Err(v));
    }
    if c.covers(own) {
        return Ok(Ok(false));
    }
    c.merge(own);
    store.put_counter(&key, c)?;
    Ok(Ok(true))
}

/// At the store: merges a grant's counter into the store's own (a
/// duplicate or stale grant changes nothing). Returns whether it changed.
pub fn apply_grant<S: ReplicaStore>(
    store: &mut S,
    who: &Identity,
    grant: &RightsGrant,
) -> Result<bool, S::Error> {
    let key = ItemKey::new(who.location.clone(), grant.gtin);
    let mut c = store.counter(&key)?;
    if c.covers(&grant.counter) {
        return Ok(false);
    }
    c.merge(&grant.counter);
    store.put_counter(&key, c)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::MemoryReplica;
    use crate::ids::LocationId;

    fn who() -> Identity {
        Identity {
            replica: ReplicaId::new("s1").unwrap(),
            location: LocationId::new("s1").unwrap(),
        }
    }

    fn gtin() -> Gtin {
        Gtin::from_body(96_385_074).unwrap()
    }

    /// A store with 10 units received, 4 of whose rights it gave the hub.
    fn replicas() -> (MemoryReplica, MemoryReplica) {
        let key = ItemKey::new(who().location, gtin());
        let mut c = BoundedCounter::default();
        c.add(&who().replica, 10).unwrap();
        c.transfer(&who().replica, &ReplicaId::hub(), 4).unwrap();
        let (mut hub, mut store) = (MemoryReplica::default(), MemoryReplica::default());
        hub.inventory.put(&key, c.clone());
        store.inventory.put(&key, c);
        (hub, store)
    }

    fn request(n: u8, units: u64) -> RightsRequest {
        RightsRequest {
            request_id: EventId::v7(1, [n; 10]),
            gtin: gtin(),
            units,
            own: BoundedCounter::default(),
        }
    }

    #[test]
    fn a_grant_moves_the_hubs_rights_and_the_store_can_sell_them() {
        let (mut hub, mut store) = replicas();
        let key = ItemKey::new(who().location, gtin());
        store
            .inventory
            .update(&key, |c| c.remove(&who().replica, 6))
            .unwrap();
        assert_eq!(store.inventory.counter(&key).rights(&who().replica), 0);
        let g = grant(&mut hub, &who(), &request(1, 3)).unwrap().unwrap();
        assert_eq!((g.granted, g.reason), (3, None));
        assert_eq!(hub.inventory.counter(&key).rights(&ReplicaId::hub()), 1);
        assert!(apply_grant(&mut store, &who(), &g).unwrap());
        assert!(!apply_grant(&mut store, &who(), &g).unwrap(), "a duplicate");
        let c = store.inventory.counter(&key);
        assert_eq!((c.value(), c.rights(&who().replica)), (4, 3));
        // The store's own sales, which the hub has not seen, are kept.
        assert_eq!(c.removed_by(&who().replica), 6);
    }

    #[test]
    fn a_grant_never_exceeds_the_hubs_rights_and_says_why() {
        let (mut hub, _) = replicas();
        let g = grant(&mut hub, &who(), &request(1, 9)).unwrap().unwrap();
        assert_eq!(
            (g.asked, g.granted, g.reason),
            (9, 4, Some(Shortage::NoStock))
        );
        let g = grant(&mut hub, &who(), &request(2, 1)).unwrap().unwrap();
        assert_eq!((g.granted, g.reason), (0, Some(Shortage::NoStock)));
        // A repeated request is answered the same, transferring nothing.
        let again = regrant(&hub, &who(), &request(1, 9), 4).unwrap();
        assert_eq!(again.granted, 4);
        let key = ItemKey::new(who().location, gtin());
        assert_eq!(hub.inventory.counter(&key).rights(&ReplicaId::hub()), 0);
        assert!(request(3, 0).check().is_err());
        // The store's own entries the hub has not seen are merged first:
        // rights it gave the hub count.
        let (mut hub, mut store) = replicas();
        let key = ItemKey::new(who().location, gtin());
        store
            .inventory
            .update(&key, |c| c.transfer(&who().replica, &ReplicaId::hub(), 3))
            .unwrap();
        let mut req = request(5, 6);
        req.own = store.inventory.counter(&key).owned_by(&who().replica);
        let g = grant(&mut hub, &who(), &req).unwrap().unwrap();
        assert_eq!(g.granted, 6, "4 reserved + 3 just given, 6 asked");
        // Entries the store does not own are refused, and nothing changes.
        let mut forged = request(6, 1);
        forged.own = hub.inventory.counter(&key);
        forged.own.add(&ReplicaId::hub(), 50).unwrap();
        let before = hub.inventory.counter(&key);
        assert!(grant(&mut hub, &who(), &forged).unwrap().is_err());
        assert_eq!(hub.inventory.counter(&key), before);
        assert!(request(3, 1).check().is_ok());
    }

    /// [`release`] of up to `units` at a store with nothing unsynced.
    fn give(store: &mut MemoryReplica, units: u64, seen: &BoundedCounter) -> StoreReleased {
        release(store, &who(), gtin(), units, seen, &Unsynced::none()).unwrap()
    }

    #[test]
    fn a_store_gives_only_rights_the_hub_can_explain() {
        let (_, mut store) = replicas();
        // 6 rights synced, then a receipt of 3 not yet.
        let receipt = crate::event::Event {
            id: EventId::v7(1, [7; 10]),
            location: who().location,
            replica: who().replica,
            at_ms: 1,
            kind: crate::event::EventKind::Receipt,
            lines: vec![crate::event::Line {
                gtin: gtin(),
                qty: 3,
                unit_price_minor: 0,
                epc: None,
            }],
            staff: Default::default(),
            price_overrides: Vec::new(),
        };
        let key = ItemKey::new(who().location, gtin());
        store
            .inventory
            .update(&key, |c| c.add(&who().replica, 3))
            .unwrap();
        let unsynced = Unsynced::of([&receipt]);
        let done = release(
            &mut store,
            &who(),
            gtin(),
            8,
            &BoundedCounter::default(),
            &unsynced,
        )
        .unwrap();
        assert_eq!(
            (done.given, done.unexplained),
            (6, 2),
            "3 left, 2 more wanted"
        );
        // Once synced, the rest can go.
        let done = give(&mut store, 2, &BoundedCounter::default());
        assert_eq!((done.given, done.unexplained), (2, 0));
    }

    #[test]
    fn a_store_releases_unsold_rights_and_the_hub_merges_them_once() {
        let (mut hub, mut store) = replicas();
        let key = ItemKey::new(who().location, gtin());
        store
            .inventory
            .update(&key, |c| c.remove(&who().replica, 4))
            .unwrap();
        // 6 rights, 4 sold: 2 unsold to give, whatever is asked.
        let StoreReleased { given, own, .. } = give(&mut store, 5, &BoundedCounter::default());
        assert_eq!(given, 2);
        assert_eq!(store.inventory.counter(&key).rights(&who().replica), 0);
        assert_eq!(merge_own(&mut hub, &who(), gtin(), &own).unwrap(), Ok(true));
        assert_eq!(
            merge_own(&mut hub, &who(), gtin(), &own).unwrap(),
            Ok(false)
        );
        let c = hub.inventory.counter(&key);
        assert_eq!((c.value(), c.rights(&ReplicaId::hub())), (6, 6));
        // Nothing left to give: nothing moves, the entries are still sent.
        let StoreReleased { given, own, .. } = give(&mut store, 1, &BoundedCounter::default());
        assert_eq!(given, 0);
        assert_eq!(own, store.inventory.counter(&key).owned_by(&who().replica));
        // A forged report changes nothing.
        let mut forged = c.clone();
        forged.add(&ReplicaId::hub(), 9).unwrap();
        assert!(merge_own(&mut hub, &who(), gtin(), &forged)
            .unwrap()
            .is_err());
        assert_eq!(hub.inventory.counter(&key), c);
    }

    #[test]
    fn a_release_counts_rights_the_hub_gave_in_an_answer_the_store_missed() {
        let (mut hub, mut store) = replicas();
        let key = ItemKey::new(who().location, gtin());
        // The hub gave its 4 back at a sync whose answer was lost.
        hub.inventory
            .update(&key, |c| c.transfer(&ReplicaId::hub(), &who().replica, 4))
            .unwrap();
        let seen = hub.inventory.counter(&key).without(&who().replica);
        let StoreReleased { given, own, .. } = give(&mut store, 10, &seen);
        assert_eq!(given, 10, "6 it knew of and the 4 it was given");
        assert_eq!(merge_own(&mut hub, &who(), gtin(), &own).unwrap(), Ok(true));
        assert_eq!(hub.inventory.counter(&key).rights(&ReplicaId::hub()), 10);
        // The store's own entries are never taken from the hub's message.
        let mut forged = seen.clone();
        forged.add(&who().replica, 50).unwrap();
        let before = store.inventory.counter(&key).owned_by(&who().replica);
        give(&mut store, 0, &forged);
        assert_eq!(
            store.inventory.counter(&key).owned_by(&who().replica),
            before
        );
    }

    #[test]
    fn units_held_for_a_waiting_order_are_not_granted() {
        let (mut hub, _) = replicas();
        let g = grant_holding(&mut hub, &who(), &request(1, 4), 3)
            .unwrap()
            .unwrap();
        assert_eq!((g.granted, g.reason), (1, Some(Shortage::NoStock)));
        let g = grant_holding(&mut hub, &who(), &request(2, 4), 9)
            .unwrap()
            .unwrap();
        assert_eq!(g.granted, 0);
    }
}
