//! Held events on redb, kept by [`super::txn::RedbTxn`] for the logic in
//! `storage/logic/held.rs`, and HQ's list of them.
//!
//! Tables: `hub_held_events` (event id → [`HeldEvent`], JSON) and
//! `hub_held_count` (store → how many it has held).

use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{ReadTxn, StoreError, WriteTxn};
use tally_sync::EventId;

use super::{from_json, redb_err, to_json};
use crate::storage::held::HeldEvent;

pub(in crate::storage) const HELD: TableDefinition<u128, &[u8]> =
    TableDefinition::new("hub_held_events");
pub(in crate::storage) const HELD_COUNT: TableDefinition<&str, u64> =
    TableDefinition::new("hub_held_count");

/// How many events `store` has held.
pub(in crate::storage) fn count(txn: &WriteTxn, store: &str) -> Result<u64, StoreError> {
    Ok(txn
        .raw()
        .open_table(HELD_COUNT)
        .map_err(redb_err)?
        .get(store)
        .map_err(redb_err)?
        .map_or(0, |v| v.value()))
}

/// Sets how many events `store` has held.
pub(in crate::storage) fn put_count(txn: &WriteTxn, store: &str, n: u64) -> Result<(), StoreError> {
    txn.raw()
        .open_table(HELD_COUNT)
        .map_err(redb_err)?
        .insert(store, n)
        .map_err(redb_err)?;
    Ok(())
}

/// The held event `id`.
pub(in crate::storage) fn get(
    txn: &WriteTxn,
    id: EventId,
) -> Result<Option<HeldEvent>, StoreError> {
    let table = txn.raw().open_table(HELD).map_err(redb_err)?;
    let value = table.get(id.0.as_u128()).map_err(redb_err)?;
    match value {
        Some(v) => Ok(Some(from_json("hub_held_events", v.value())?)),
        None => Ok(None),
    }
}

/// Holds `held`, under its event's id.
pub(in crate::storage) fn put(txn: &WriteTxn, held: &HeldEvent) -> Result<(), StoreError> {
    txn.raw()
        .open_table(HELD)
        .map_err(redb_err)?
        .insert(
            held.event.id.0.as_u128(),
            to_json("hub_held_events", held)?.as_slice(),
        )
        .map_err(redb_err)?;
    Ok(())
}

/// No longer holds the event `id`.
pub(in crate::storage) fn remove(txn: &WriteTxn, id: EventId) -> Result<(), StoreError> {
    txn.raw()
        .open_table(HELD)
        .map_err(redb_err)?
        .remove(id.0.as_u128())
        .map_err(redb_err)?;
    Ok(())
}

/// Held events, in id order, at most `limit`.
pub(in crate::storage) fn list(txn: &ReadTxn, limit: usize) -> Result<Vec<HeldEvent>, StoreError> {
    let table = txn.raw().open_table(HELD).map_err(redb_err)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(redb_err)?.take(limit) {
        let (_, v) = row.map_err(redb_err)?;
        out.push(from_json("hub_held_events", v.value())?);
    }
    Ok(out)
}
