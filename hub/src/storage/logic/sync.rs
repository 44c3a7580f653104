//! A store's sync at the hub (`POST /v1/sync`), in the batch's
//! transaction: [`hub_handle`] validates and merges the store's delta and
//! events against its online reserve targets; then what the new events
//! mean for the hub's own records (exceptions, returns against their
//! originals, transfers, the store's moves of its order allocations),
//! the catalog page the store is owed, and the store's record and sales
//! per minute.
//!
//! A refused sync writes nothing of its request; the event it was
//! refused for is held for HQ ([`super::held::hold`]).

use std::collections::{BTreeMap, HashSet};

use tally_sync::exchange::{hub_handle, HandleError, Held, HubLimits, Identity};
use tally_sync::limits::DateWindow;
use tally_sync::{Event, EventKind, ItemKey, ReplicaId, ReservePolicy, SyncRequest};

use super::orders::reserve_targets;
use super::routed::{store_moved, Moved};
use super::{exceptions, held, returns, transfers};
use crate::storage::txn::HubTxn;
use crate::storage::{
    ExceptionRecord, StorageError, StoreRecord, SyncResult, SyncSummary, SALES_WINDOW_MINUTES,
};

/// Settings that shape what a sync answers.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    /// The online-reserve policy.
    pub policy: ReservePolicy,
    /// Response limits for `hub_handle`.
    pub limits: HubLimits,
    /// Most catalog items in one response.
    pub catalog_page: usize,
}

/// Handles `req` from `who` at `now_ms` (hub clock), giving the store
/// none of the hub's rights in `holds`, held for orders waiting on its release. See
/// the module docs.
pub(crate) fn sync<T: HubTxn>(
    txn: &mut T,
    settings: &SyncSettings,
    who: &Identity,
    req: &SyncRequest,
    holds: &Held,
    now_ms: u64,
) -> Result<SyncResult, StorageError> {
    let s = settings;
    txn.prefetch_sync(who, req)?;
    let targets = reserve_targets(&*txn, &who.location, &s.policy, now_ms)?;
    let store = who.replica.to_string();
    let previous = txn.store_record(&store)?;
    let dates = DateWindow::at(now_ms).with(
        previous
            .as_ref()
            .and_then(|r| r.dates_allowed)
            .unwrap_or_default(),
    );
    let (mut resp, outcome) = match hub_handle(txn, who, req, &targets, holds, &s.limits, &dates) {
        Ok(x) => x,
        Err(HandleError::Refused(r)) => {
            // Nothing of the request is written; the event it was
            // refused for is held for HQ to review.
            held::hold(txn, who, req, &r, now_ms)?;
            return Ok(SyncResult::Refused(r));
        }
        Err(HandleError::Storage(e)) => return Err(e),
    };

    // Demand that decayed to nothing, where the hub kept no reserve (the
    // sync gave it back, none is held for an order), is forgotten: each
    // sync reads the demand rows of its store, so they must not pile up
    // with every item ever ordered online there.
    let hub = ReplicaId::hub();
    for (&gtin, _) in targets.iter().filter(|(_, &wanted)| wanted == 0) {
        let key = ItemKey::new(who.location.clone(), gtin);
        if txn.counter(&key)?.rights(&hub) == 0 {
            txn.forget_demand(&who.location, gtin)?;
        }
    }

    // Exceptions, with the events' own times.
    let new: HashSet<_> = outcome.new_events.iter().copied().collect();
    let new_events: Vec<&Event> = req.events.iter().filter(|e| new.contains(&e.id)).collect();
    let mut raised =
        exceptions::new_event_exceptions(&*txn, &store, &new_events, &outcome, now_ms)?;
    exceptions::flag_held_for_orders(&mut raised, &new_events, holds);

    // What the new events mean for the hub's own records: returns counted
    // against their originals chain-wide, transfers sent and received,
    // the store's moves of its order allocations.
    for e in &new_events {
        match &e.kind {
            EventKind::Return { .. } => raised.extend(returns::on_return(txn, e, now_ms)?),
            EventKind::TransferOut { .. } | EventKind::TransferIn { .. } => {
                raised.extend(transfers::on_event(txn, e, now_ms)?);
            }
            EventKind::Fulfilment { order_id, status } => {
                let moved = store_moved(txn, &who.location, order_id, *status)?;
                raised.extend(fulfilment_exception(&moved, &store, e, now_ms));
            }
            _ => {}
        }
    }

    // Catalog changes since the store's cursor, paged.
    let (items, cursor) = txn.catalog_since(req.catalog_cursor, s.catalog_page)?;
    resp.more |= items.len() >= s.catalog_page;
    resp.catalog = items;
    resp.catalog_cursor = cursor;

    // Bookkeeping: the store's record and its sales per minute.
    let new_count = outcome.new_events.len() as u64;
    let minute = now_ms / 60_000;
    // The store's first sync in a minute of the hub's clock forgets the
    // minutes that left the window: at most once a minute, so the table
    // holds the window and no more, at no cost to the syncs between.
    let forget = previous
        .as_ref()
        .is_none_or(|r| r.last_sync_ms / 60_000 < minute);
    // A record HQ's admission made before the store's first accepted
    // sync (syncs 0) gets its times from this one.
    let mut record = previous.unwrap_or_else(|| StoreRecord::new(&store));
    if record.syncs == 0 {
        record.first_sync_ms = now_ms;
    }
    record.last_sync_ms = record.last_sync_ms.max(now_ms);
    record.syncs += 1;
    record.events_received += new_count;
    record.acked_events_upto = record.acked_events_upto.max(req.events_upto);
    let newly_lost = record.lost_sales.merge(&req.lost);
    record.recent.add_lost(now_ms, &newly_lost);
    txn.put_store_record(&record)?;
    let keep_from = minute.saturating_sub(SALES_WINDOW_MINUTES);
    for (at, units) in sold_per_minute(&new_events, now_ms) {
        // Sales from before the window (a store back after a long time
        // offline) are in the events, not in the chart.
        if at >= keep_from {
            txn.add_sales(&store, at, units)?;
        }
    }
    if forget {
        txn.drop_sales_before(&store, keep_from)?;
    }

    let n_exceptions = raised.len() as u64;
    txn.append_exceptions(raised)?;
    let rejected = resp.rejected_events.len() as u64;
    let summary = SyncSummary {
        new_events: new_count,
        duplicate_events: (req.events.len() as u64).saturating_sub(new_count + rejected),
        rejected_events: rejected,
        merged: outcome.merged as u64,
        rights_given: outcome
            .given
            .iter()
            .fold(0u64, |sum, (_, n)| sum.saturating_add(*n)),
        exceptions: n_exceptions,
    };
    Ok(SyncResult::Synced(Box::new(resp), summary))
}

/// Units sold by `events` per Unix minute of their sale (the dashboard's
/// chart), a sale dated ahead of the hub's clock (`now_ms`) in the
/// hub's minute: the chart has no future rows, which no later sync
/// would drop.
fn sold_per_minute(events: &[&Event], now_ms: u64) -> BTreeMap<u64, u64> {
    let mut out: BTreeMap<u64, u64> = BTreeMap::new();
    for e in events {
        if matches!(e.kind, EventKind::Sale { .. }) {
            let units: u64 = e.lines.iter().map(|l| l.qty).fold(0, u64::saturating_add);
            let minute = e.at_ms.min(now_ms) / 60_000;
            let slot = out.entry(minute).or_default();
            *slot = slot.saturating_add(units);
        }
    }
    out
}

/// The exception a store's `fulfilment` event `e` raises, if its move
/// (`moved`) was not simply merged.
fn fulfilment_exception(
    moved: &Moved,
    store: &str,
    e: &Event,
    now_ms: u64,
) -> Option<ExceptionRecord> {
    let EventKind::Fulfilment { order_id, status } = &e.kind else {
        return None;
    };
    let (kind, detail) = match moved {
        Moved::Merged => return None,
        Moved::Conflict { kept } => (
            "order_conflict",
            serde_json::json!({
                "order_id": order_id,
                "kept": kept,
                "message": "the store handed over an allocation HQ had cancelled: the customer has the goods, and the cancellation put them back in stock (count them out)",
            }),
        ),
        Moved::Unknown => (
            "unknown_allocation",
            serde_json::json!({ "order_id": order_id, "status": status }),
        ),
    };
    Some(ExceptionRecord {
        id: 0,
        kind: kind.into(),
        store: store.to_string(),
        event_ids: vec![e.id],
        at_ms: e.at_ms,
        detected_at_ms: now_ms,
        acknowledged: None,
        detail,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tally_sync::command::{Command, Outcome, ReceiptLine, Stamp};
    use tally_sync::exchange::ReplicaStore;
    use tally_sync::memstore::MemStore;
    use tally_sync::{DemandEstimate, Gtin, LocationId};

    use super::*;
    use crate::storage::logic::test_support::hub;
    use crate::storage::redb::txn::RedbTxn;

    /// Demand that decayed to nothing is forgotten by the sync that finds
    /// the hub without a reserve there, and not while the hub holds one
    /// (a reserve to give back, or units held for a waiting order), so
    /// a sync reads the demand of items ordered lately, not of every
    /// item ever ordered online at the store.
    #[test]
    fn demand_decayed_to_nothing_is_forgotten_once_no_reserve_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let settings = SyncSettings {
            policy: ReservePolicy::default(),
            limits: HubLimits::default(),
            catalog_page: 100,
        };
        let who = Identity {
            replica: ReplicaId::new("s1").unwrap(),
            location: LocationId::new("s1").unwrap(),
        };
        let g = Gtin::from_body(96_385_074).unwrap();
        let key = ItemKey::new(who.location.clone(), g);
        let mut store = MemStore::new(who.clone());
        let receipt = Command::Receipt {
            id: None,
            lines: vec![ReceiptLine::units(g, 10)],
            staff: Default::default(),
        };
        let stamp = Stamp {
            now_ms: 1_000,
            random: [1; 10],
        };
        assert!(matches!(
            store.execute(&receipt, stamp),
            Outcome::Recorded { .. }
        ));
        let txn = hub.db().begin_write().unwrap();
        let mut t = RedbTxn::new(&txn);
        let mut demand = DemandEstimate::default();
        demand.observe(10, 1_000, &settings.policy);
        t.put_demand(&who.location, g, &demand).unwrap();
        let sync_at = |t: &mut RedbTxn<'_>, store: &mut MemStore, held: &Held, now: u64| {
            let req = store.sync_request(100);
            let SyncResult::Synced(resp, _) = sync(t, &settings, &who, &req, held, now).unwrap()
            else {
                panic!("refused");
            };
            store.apply_response(Some(&req), &resp);
        };
        // Demand now: the store gives the hub its reserve (two rounds: the
        // answer names the target, the next request carries the transfer).
        sync_at(&mut t, &mut store, &Held::new(), 2_000);
        sync_at(&mut t, &mut store, &Held::new(), 3_000);
        let reserve = t.counter(&key).unwrap().rights(&ReplicaId::hub());
        assert!(reserve > 0, "the hub holds a reserve");
        assert!(t.demand(&who.location, g).unwrap().is_some());

        // A year on, the demand is nothing; while units are held for a
        // waiting order the hub keeps them, and the demand with them.
        let later = 3_000 + 365 * 24 * 3_600_000;
        let held = Held::from([(g, reserve)]);
        sync_at(&mut t, &mut store, &held, later);
        assert_eq!(t.counter(&key).unwrap().rights(&ReplicaId::hub()), reserve);
        assert!(t.demand(&who.location, g).unwrap().is_some());
        // Nothing held: the reserve goes back to the store, the demand
        // is forgotten.
        sync_at(&mut t, &mut store, &Held::new(), later + 1);
        assert_eq!(t.counter(&key).unwrap().rights(&ReplicaId::hub()), 0);
        assert_eq!(t.demand(&who.location, g).unwrap(), None);
        assert_eq!(store.rights(g), 10, "every right back at the store");
    }
}
