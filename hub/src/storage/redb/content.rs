//! What the hub keeps to re-check a store's content in time linear in the
//! request ([`tally_sync::exchange::HubReplica`]), on redb, in the sync's
//! own transaction:
//!
//! - `hub_epc_state`: EPC bytes → JSON [`EpcState`] (sales, returns, the
//!   item it was sold as, whether it was ever sold twice): O(1) in size
//!   whatever the tag's history.
//! - `hub_epc_rows`: (EPC bytes, 0 = sale / 1 = return, event id) → the
//!   recording replica: one row per event, appended, never rewritten. A
//!   double-sale report lists the first [`MAX_LISTED_SALES`] sales by a
//!   range read.
//! - `hub_explained`: (store, GTIN) → (units added, units removed): the
//!   running sums of what the store's accepted events imply for its own
//!   `P` and `N` entries of that counter ([`Explained`]).
//!
//! # Upgrade
//! A hub database from before these tables gets them filled once, when
//! opened ([`migrate`]): one pass over its events (EPC rows and states in
//! event order, each store's sums) and over each store's counters (a sum
//! below what a counter's own entries already show is raised to it, so no
//! state the hub accepted before is refused after). The meta key
//! `hub_content_v1` set to `1` marks it done.
//!
//! [`MAX_LISTED_SALES`]: tally_sync::exchange::MAX_LISTED_SALES

use std::collections::{BTreeMap, BTreeSet};

use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{Db, StoreError, WriteTxn};
use tally_sync::epcs::{EpcRecord, EpcState};
use tally_sync::exchange::EpcMove;
use tally_sync::explain::{self, Explained};
use tally_sync::{Epc, EventId, EventKind, Gtin, LocationId, ReplicaId};

use super::{corrupt, from_json, redb_err, to_json};

pub(in crate::storage) const EPC_STATE: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("hub_epc_state");
pub(in crate::storage) const EPC_ROWS: TableDefinition<(&[u8], u8, u128), &str> =
    TableDefinition::new("hub_epc_rows");
pub(in crate::storage) const EXPLAINED: TableDefinition<(&str, u64), (u64, u64)> =
    TableDefinition::new("hub_explained");

pub(in crate::storage) const MIGRATED: &str = "hub_content_v1";

pub(in crate::storage) fn move_code(m: EpcMove) -> u8 {
    match m {
        EpcMove::Sale => 0,
        EpcMove::Return => 1,
    }
}

pub(in crate::storage) fn put_epc(
    txn: &WriteTxn,
    epc: &Epc,
    movement: EpcMove,
    record: &EpcRecord,
    state: &EpcState,
) -> Result<(), StoreError> {
    let raw = txn.raw();
    raw.open_table(EPC_ROWS)
        .map_err(redb_err)?
        .insert(
            (
                epc.as_bytes(),
                move_code(movement),
                record.event.0.as_u128(),
            ),
            record.replica.as_str(),
        )
        .map_err(redb_err)?;
    raw.open_table(EPC_STATE)
        .map_err(redb_err)?
        .insert(epc.as_bytes(), to_json("hub_epc_state", state)?.as_slice())
        .map_err(redb_err)?;
    Ok(())
}

/// Every EPC the hub has seen sold twice (with no return between), ever.
pub(in crate::storage) fn epcs_sold_twice(
    txn: &tally_store::ReadTxn,
) -> Result<Vec<Epc>, StoreError> {
    let table = txn.raw().open_table(EPC_STATE).map_err(redb_err)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(redb_err)? {
        let (k, v) = row.map_err(redb_err)?;
        let state: EpcState = from_json("hub_epc_state", v.value())?;
        if state.double_sold {
            out.push(Epc::from_bytes(k.value()).map_err(|e| corrupt("hub_epc_state", e))?);
        }
    }
    Ok(out)
}

/// Fills the content tables of a hub database from before them, once
/// (see the module docs). The tables must exist.
pub(in crate::storage) fn migrate(db: &Db) -> Result<(), StoreError> {
    {
        let txn = db.begin_write()?;
        if txn.get_meta(MIGRATED)?.as_deref() == Some(b"1".as_slice()) {
            return txn.abort();
        }
    }
    let mut explained: BTreeMap<(LocationId, Gtin), Explained> = BTreeMap::new();
    let mut epcs: BTreeMap<Epc, EpcState> = BTreeMap::new();
    let mut rows: Vec<(Epc, EpcMove, EpcRecord)> = Vec::new();
    let mut locations: BTreeSet<LocationId> = BTreeSet::new();
    let read = db.begin_read()?;
    read.visit_events(|e| {
        if e.replica.as_str() == e.location.as_str() {
            locations.insert(e.location.clone());
            if let Ok(effect) = explain::effect(&e) {
                for (gtin, x) in effect {
                    let sum = explained.entry((e.location.clone(), gtin)).or_default();
                    *sum = sum.plus(x).unwrap_or(Explained {
                        added: sum.added.saturating_add(x.added),
                        removed: sum.removed.saturating_add(x.removed),
                    });
                }
            }
        }
        for line in &e.lines {
            let Some(epc) = &line.epc else { continue };
            let state = epcs.entry(epc.clone()).or_default();
            let movement = match e.kind {
                EventKind::Sale { .. } => {
                    *state = state.after_sale(line.gtin).0;
                    EpcMove::Sale
                }
                EventKind::Return { .. } => {
                    *state = state.after_return(epc, line.gtin).unwrap_or(EpcState {
                        returns: state.returns.saturating_add(1),
                        ..*state
                    });
                    EpcMove::Return
                }
                _ => continue,
            };
            let record = EpcRecord {
                event: e.id,
                replica: e.replica.clone(),
            };
            rows.push((epc.clone(), movement, record));
        }
    })?;
    let mut shown: Vec<((LocationId, Gtin), Explained)> = Vec::new();
    for location in &locations {
        let Ok(store) = ReplicaId::new(location.as_str()) else {
            continue;
        };
        for (gtin, c) in read.counters_at(location)? {
            shown.push(((location.clone(), gtin), Explained::shown_by(&c, &store)));
        }
    }
    drop(read);
    for (key, x) in shown {
        let sum = explained.entry(key).or_default();
        sum.added = sum.added.max(x.added);
        sum.removed = sum.removed.max(x.removed);
    }

    let txn = db.begin_write()?;
    for (epc, movement, record) in &rows {
        txn.raw()
            .open_table(EPC_ROWS)
            .map_err(redb_err)?
            .insert(
                (
                    epc.as_bytes(),
                    move_code(*movement),
                    record.event.0.as_u128(),
                ),
                record.replica.as_str(),
            )
            .map_err(redb_err)?;
    }
    {
        let mut table = txn.raw().open_table(EPC_STATE).map_err(redb_err)?;
        for (epc, state) in &epcs {
            table
                .insert(epc.as_bytes(), to_json("hub_epc_state", state)?.as_slice())
                .map_err(redb_err)?;
        }
        let mut table = txn.raw().open_table(EXPLAINED).map_err(redb_err)?;
        for ((location, gtin), x) in &explained {
            table
                .insert((location.as_str(), gtin.as_u64()), (x.added, x.removed))
                .map_err(redb_err)?;
        }
    }
    txn.put_meta(MIGRATED, b"1")?;
    txn.commit()
}

/// The latest sale of `epc` the hub holds (event ids are UUIDv7: the last
/// row of the tag's sales), if any.
pub(in crate::storage) fn last_sale_of(
    txn: &WriteTxn,
    epc: &Epc,
) -> Result<Option<EventId>, StoreError> {
    let table = txn.raw().open_table(EPC_ROWS).map_err(redb_err)?;
    let e = epc.as_bytes();
    let last = table
        .range((e, move_code(EpcMove::Sale), 0u128)..=(e, move_code(EpcMove::Sale), u128::MAX))
        .map_err(redb_err)?
        .next_back();
    match last {
        Some(row) => {
            let (k, _) = row.map_err(redb_err)?;
            Ok(Some(EventId(uuid::Uuid::from_u128(k.value().2))))
        }
        None => Ok(None),
    }
}
