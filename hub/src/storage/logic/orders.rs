//! Online orders the hub records itself: a store-named order
//! (`POST /v1/orders` naming a store) taken against the hub's rights
//! there, and what routed orders share with it: the `Order` event
//! priced from the catalog, recording a hub event against the counters,
//! and online demand (what each store's online reserve follows).
//!
//! An order id is answered again on a repeat with the same lines
//! (its fingerprint) and refused as a conflict with other lines; the id
//! names one order among store-named and routed orders. A store-named
//! order refused for lack of stock leaves its fingerprint under its id
//! (no receipt): the same order again is no new demand, another order
//! may take the id.

use serde::{Deserialize, Serialize};
use tally_sync::command::{counters_at, record_event};
use tally_sync::exchange::ReserveTargets;
use tally_sync::ledger::{Applied, Refusal};
use tally_sync::{
    EpcLedger, Event, EventId, EventKind, Gtin, Line, LocationId, ReplicaId, ReservePolicy,
    Shortage,
};

use crate::storage::txn::HubTxn;
use crate::storage::{OrderLine, OrderReceipt, OrderRequest, OrderResult, StorageError};

/// What the hub keeps per store-named order id: enough to answer a
/// repeat alike and to tell another order under the same id; or, for an
/// order refused for lack of stock, that its demand is counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OrderIndex {
    /// The request's fingerprint ([`OrderRequest::fingerprint`]).
    pub fingerprint: String,
    /// What it was answered; `None` for an order refused for lack of
    /// stock, whose demand was counted: the same order again (a client
    /// retrying its request) is no new demand. The id stays free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<OrderReceipt>,
}

/// The reserve targets at `location` at `now_ms`: every item with
/// recorded online demand there (those whose demand decayed to nothing
/// with target 0, so the hub gives their reserve back). O(items ordered
/// online there).
pub(crate) fn reserve_targets<T: HubTxn>(
    txn: &T,
    location: &LocationId,
    policy: &ReservePolicy,
    now_ms: u64,
) -> Result<ReserveTargets, StorageError> {
    let mut out = ReserveTargets::new();
    for (gtin, d) in txn.demand_at(location)? {
        out.insert(gtin, policy.wanted(d.level_at(now_ms, policy)));
    }
    Ok(out)
}

/// Counts `lines` ordered online at `store` at `now_ms` as online demand
/// there.
pub(crate) fn record_demand<T: HubTxn>(
    txn: &mut T,
    store: &LocationId,
    lines: &[(Gtin, u64)],
    now_ms: u64,
    policy: &ReservePolicy,
) -> Result<(), StorageError> {
    for &(gtin, qty) in lines {
        let mut d = txn.demand(store, gtin)?.unwrap_or_default();
        d.observe(qty, now_ms, policy);
        txn.put_demand(store, gtin, &d)?;
    }
    Ok(())
}

/// Records an event of the hub's own (an online order, or its
/// cancellation) at its location, against the counters there now.
pub(crate) fn record_hub_event<T: HubTxn>(
    txn: &mut T,
    event: &Event,
) -> Result<Result<Applied, Refusal>, StorageError> {
    let counters = counters_at(&*txn, &event.location, event.lines.iter().map(|l| l.gtin))?;
    record_event(txn, event, &counters, &EpcLedger::new())
}

/// The `Order` event the hub records for `lines` of order `order_id` at
/// `store`: replica `hub`, each line at the catalog price (0 if the item
/// has none). Store-named and routed orders alike.
pub(crate) fn order_event<T: HubTxn>(
    txn: &T,
    id: EventId,
    store: &LocationId,
    order_id: &str,
    lines: &[(Gtin, u64)],
    now_ms: u64,
) -> Result<Event, StorageError> {
    let mut priced = Vec::with_capacity(lines.len());
    for &(gtin, qty) in lines {
        let price = txn.catalog_item(gtin)?.map_or(0, |c| c.price_minor);
        priced.push(Line {
            gtin,
            qty,
            unit_price_minor: price,
            epc: None,
        });
    }
    Ok(Event {
        id,
        location: store.clone(),
        replica: ReplicaId::hub(),
        at_ms: now_ms,
        kind: EventKind::Order {
            reference: Some(order_id.to_string()),
        },
        lines: priced,
        staff: Default::default(),
        price_overrides: Vec::new(),
    })
}

/// A store-named online order: answered again on a repeat of its id;
/// else recorded against the hub's rights at the store, or refused.
/// Accepted or refused for lack of stock, it counts as online demand if
/// `o.record_demand`.
pub(crate) fn order<T: HubTxn>(
    txn: &mut T,
    o: &OrderRequest,
    policy: &ReservePolicy,
) -> Result<OrderResult, StorageError> {
    let conflict = || OrderResult::IdConflict {
        order_id: o.order_id.clone(),
    };
    if txn.routed_order(&o.order_id)?.is_some() {
        return Ok(conflict());
    }
    // Whether this very order was refused before with its demand counted.
    let mut counted = false;
    if let Some(index) = txn.store_named_order(&o.order_id)? {
        let same = index.fingerprint == o.fingerprint();
        match index.receipt {
            Some(receipt) if same => return Ok(OrderResult::Replayed(receipt)),
            Some(_) => return Ok(conflict()),
            None => counted = same,
        }
    }
    let event = order_event(&*txn, o.event_id, &o.store, &o.order_id, &o.lines, o.now_ms)?;
    let recorded = record_hub_event(txn, &event)?;
    let short = matches!(recorded, Err(Refusal::InsufficientStock { .. }));
    let count_demand = o.record_demand && !counted && (recorded.is_ok() || short);
    if count_demand {
        record_demand(txn, &o.store, &o.lines, o.now_ms, policy)?;
    }
    match recorded {
        Ok(_) => {}
        Err(Refusal::InsufficientStock {
            gtin,
            requested,
            available,
            on_hand,
        }) => {
            if count_demand {
                let refused = OrderIndex {
                    fingerprint: o.fingerprint(),
                    receipt: None,
                };
                txn.put_store_named_order(&o.order_id, &refused)?;
            }
            return Ok(OrderResult::InsufficientStock {
                gtin,
                requested,
                available,
                on_hand,
            });
        }
        Err(other) => return Ok(OrderResult::Invalid(other.to_string())),
    }
    let receipt = OrderReceipt {
        order_id: o.order_id.clone(),
        event_id: event.id,
        store: o.store.clone(),
        lines: event
            .lines
            .iter()
            .map(|l| OrderLine {
                gtin: l.gtin,
                qty: l.qty,
                unit_price_minor: l.unit_price_minor,
            })
            .collect(),
        at_ms: o.now_ms,
    };
    let index = OrderIndex {
        fingerprint: o.fingerprint(),
        receipt: Some(receipt.clone()),
    };
    txn.put_store_named_order(&o.order_id, &index)?;
    Ok(OrderResult::Accepted(receipt))
}

/// Counts a refused online order in its store's record (none if the
/// store never synced: an order may name any store), at `now_ms` in the
/// last day's too.
pub(crate) fn order_refused<T: HubTxn>(
    txn: &mut T,
    store: &LocationId,
    reason: Shortage,
    now_ms: u64,
) -> Result<bool, StorageError> {
    let Some(mut record) = txn.store_record(store.as_str())? else {
        return Ok(false);
    };
    record.refused_orders.count_one(reason);
    record.recent.add_refused_order(now_ms, reason);
    txn.put_store_record(&record)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::storage::logic::test_support::{event, hub};
    use crate::storage::redb::txn::RedbTxn;

    fn request(order_id: &str, qty: u64, record_demand: bool) -> OrderRequest {
        OrderRequest {
            order_id: order_id.into(),
            store: LocationId::new("s1").unwrap(),
            lines: vec![(Gtin::from_body(96_385_074).unwrap(), qty)],
            event_id: EventId::v7(5_000, [7; 10]),
            now_ms: 5_000,
            record_demand,
        }
    }

    #[test]
    fn a_short_order_counts_as_demand_and_an_order_id_names_one_order() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let txn = hub.db().begin_write().unwrap();
        let mut t = RedbTxn::new(&txn);
        let policy = ReservePolicy::default();
        let at = LocationId::new("s1").unwrap();
        // Stock arrives at s1; the hub holds no rights to it yet.
        let arrived = event(1, "s1", EventKind::Receipt, 5);
        record_hub_event(&mut t, &arrived).unwrap().unwrap();

        let short = order(&mut t, &request("w1", 2, true), &policy).unwrap();
        assert!(
            matches!(
                short,
                OrderResult::InsufficientStock {
                    available: 0,
                    on_hand: 5,
                    ..
                }
            ),
            "{short:?}"
        );
        assert_eq!(
            t.store_named_order("w1").unwrap().and_then(|i| i.receipt),
            None,
            "nothing recorded"
        );
        let targets = reserve_targets(&t, &at, &policy, 5_000).unwrap();
        assert_eq!(targets.len(), 1, "refused for stock, still demand");
        let gtin = Gtin::from_body(96_385_074).unwrap();
        let before = t.demand(&at, gtin).unwrap();
        assert!(before.is_some());
        let retried = order(&mut t, &request("w2", 2, false), &policy).unwrap();
        assert!(matches!(retried, OrderResult::InsufficientStock { .. }));
        assert_eq!(
            t.demand(&at, gtin).unwrap(),
            before,
            "a retry is no new demand"
        );

        // A recorded id answers its own request again and refuses another.
        let first = request("w3", 1, false);
        let receipt = OrderReceipt {
            order_id: "w3".into(),
            event_id: first.event_id,
            store: at.clone(),
            lines: Vec::new(),
            at_ms: 5_000,
        };
        let index = OrderIndex {
            fingerprint: first.fingerprint(),
            receipt: Some(receipt.clone()),
        };
        t.put_store_named_order("w3", &index).unwrap();
        assert_eq!(
            order(&mut t, &first, &policy).unwrap(),
            OrderResult::Replayed(receipt)
        );
        assert!(matches!(
            order(&mut t, &request("w3", 2, false), &policy).unwrap(),
            OrderResult::IdConflict { .. }
        ));
        // No record to count a refusal in for a store that never synced.
        assert!(!order_refused(&mut t, &at, Shortage::NoStock, 0).unwrap());
    }

    /// A client retrying a refused order (a new request, the same id and
    /// lines) is no new demand, nor is that order accepted later; another
    /// order under the refused id is, and takes the id.
    #[test]
    fn a_refused_order_retried_is_counted_as_demand_once() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let txn = hub.db().begin_write().unwrap();
        let mut t = RedbTxn::new(&txn);
        let policy = ReservePolicy::default();
        let at = LocationId::new("s1").unwrap();
        let gtin = Gtin::from_body(96_385_074).unwrap();
        record_hub_event(&mut t, &event(1, "s1", EventKind::Receipt, 5))
            .unwrap()
            .unwrap();
        let demand = |t: &RedbTxn| t.demand(&at, gtin).unwrap();

        order(&mut t, &request("w1", 2, true), &policy).unwrap();
        let once = demand(&t);
        assert!(once.is_some());
        let again = order(&mut t, &request("w1", 2, true), &policy).unwrap();
        assert!(matches!(again, OrderResult::InsufficientStock { .. }));
        assert_eq!(demand(&t), once, "the same order again");
        // The hub gets rights there; the retry is accepted, still no new
        // demand, and answers as accepted from then on.
        use tally_sync::exchange::ReplicaStore;
        let key = tally_sync::ItemKey::new(at.clone(), gtin);
        let mut rights = t.counter(&key).unwrap();
        rights
            .transfer(&ReplicaId::new("s1").unwrap(), &ReplicaId::hub(), 5)
            .unwrap();
        t.put_counter(&key, rights).unwrap();
        let accepted = order(&mut t, &request("w1", 2, true), &policy).unwrap();
        let OrderResult::Accepted(receipt) = accepted else {
            panic!("{accepted:?}")
        };
        assert_eq!(demand(&t), once);
        assert_eq!(
            order(&mut t, &request("w1", 2, true), &policy).unwrap(),
            OrderResult::Replayed(receipt)
        );
        // Another order under a refused id is an order of its own.
        let mut big = request("w2", 9, true);
        order(&mut t, &big, &policy).unwrap();
        let after_big = demand(&t);
        assert_ne!(after_big, once);
        big.lines = vec![(gtin, 8)];
        order(&mut t, &big, &policy).unwrap();
        assert_ne!(demand(&t), after_big, "other lines: new demand");
    }
}
