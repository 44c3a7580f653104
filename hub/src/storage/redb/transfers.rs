//! Transfers on redb: the records and their indexes, kept by
//! [`super::txn::RedbTxn`] for the logic in `storage/logic/transfers.rs`,
//! and the snapshot reads HQ's pages use.
//!
//! Tables: `hub_transfers` (id → [`HubTransfer`], JSON),
//! `hub_transfers_by_status` ((status, id) → ()) and
//! `hub_transfers_due` ((hub time it was seen, id) → ()), the transfers in
//! transit not yet flagged, oldest first: the sweep reads only those due;
//! `hub_transfers_received` ((hub time the receipt arrived, id) → ()), the
//! received ones in the order the hub learned of their receipt, so the
//! latest receipts are one reverse range read (`recent`). Each move is
//! counted by status as it happens (`tallies`).

use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{by_status, ReadTxn, StoreError, WriteTxn};
use tally_sync::transfer::TransferStatus;

use super::{from_json, redb_err, tallies, to_json};
use crate::storage::transfers::HubTransfer;

pub(in crate::storage) const TRANSFERS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("hub_transfers");
pub(in crate::storage) const BY_STATUS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("hub_transfers_by_status");
pub(in crate::storage) const DUE: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("hub_transfers_due");
pub(in crate::storage) const RECEIVED: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("hub_transfers_received");

fn get(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<HubTransfer>, StoreError> {
    match table.get(id).map_err(redb_err)? {
        Some(v) => Ok(Some(from_json("hub_transfers", v.value())?)),
        None => Ok(None),
    }
}

pub(in crate::storage) fn put(
    txn: &WriteTxn,
    t: &HubTransfer,
    was: Option<TransferStatus>,
) -> Result<(), StoreError> {
    let raw = txn.raw();
    let id = t.transfer.transfer_id.as_str();
    raw.open_table(TRANSFERS)
        .map_err(redb_err)?
        .insert(id, to_json("hub_transfers", t)?.as_slice())
        .map_err(redb_err)?;
    by_status::move_status(
        &mut raw.open_table(BY_STATUS).map_err(redb_err)?,
        id,
        was.map(TransferStatus::name),
        t.transfer.status.name(),
    )?;
    tallies::moved(
        txn,
        tallies::TRANSFERS,
        was.map(TransferStatus::name),
        t.transfer.status.name(),
    )
}

/// The transfer `id`, in a write transaction.
pub(in crate::storage) fn get_in(
    txn: &WriteTxn,
    id: &str,
) -> Result<Option<HubTransfer>, StoreError> {
    get(&txn.raw().open_table(TRANSFERS).map_err(redb_err)?, id)
}

/// Puts transfer `id`, seen by the hub at `seen_at_ms`, in the index of
/// transfers due to be swept (`due`), or takes it out.
pub(in crate::storage) fn set_due(
    txn: &WriteTxn,
    seen_at_ms: u64,
    id: &str,
    due: bool,
) -> Result<(), StoreError> {
    let mut table = txn.raw().open_table(DUE).map_err(redb_err)?;
    if due {
        table.insert((seen_at_ms, id), ()).map_err(redb_err)?;
    } else {
        table.remove((seen_at_ms, id)).map_err(redb_err)?;
    }
    Ok(())
}

/// Records that the hub learned of transfer `id`'s receipt at `now_ms`.
pub(in crate::storage) fn received(
    txn: &WriteTxn,
    id: &str,
    now_ms: u64,
) -> Result<(), StoreError> {
    txn.raw()
        .open_table(RECEIVED)
        .map_err(redb_err)?
        .insert((now_ms, id), ())
        .map_err(redb_err)?;
    Ok(())
}

/// Up to `limit` transfers due, seen before `cutoff_ms`, oldest first:
/// (when the hub saw it, id).
pub(in crate::storage) fn due(
    txn: &WriteTxn,
    cutoff_ms: u64,
    limit: usize,
) -> Result<Vec<(u64, String)>, StoreError> {
    let table = txn.raw().open_table(DUE).map_err(redb_err)?;
    let mut out = Vec::new();
    for row in table
        .range((0u64, "")..(cutoff_ms, ""))
        .map_err(redb_err)?
        .take(limit)
    {
        let (k, _) = row.map_err(redb_err)?;
        let (at, id) = k.value();
        out.push((at, id.to_string()));
    }
    Ok(out)
}

/// Transfers with `status`, by id after `after`, at most `limit`.
pub(in crate::storage) fn list(
    txn: &ReadTxn,
    status: TransferStatus,
    after: &str,
    limit: usize,
) -> Result<Vec<HubTransfer>, StoreError> {
    let index = txn.raw().open_table(BY_STATUS).map_err(redb_err)?;
    let table = txn.raw().open_table(TRANSFERS).map_err(redb_err)?;
    by_status::records_with_status(&index, &[status.name()], after, limit, |id| get(&table, id))
}

/// The latest `limit` transfers received, the latest first (by when the
/// hub learned of the receipt).
pub(in crate::storage) fn recent(
    txn: &ReadTxn,
    limit: usize,
) -> Result<Vec<HubTransfer>, StoreError> {
    let index = txn.raw().open_table(RECEIVED).map_err(redb_err)?;
    let table = txn.raw().open_table(TRANSFERS).map_err(redb_err)?;
    let mut out = Vec::new();
    for row in index.iter().map_err(redb_err)?.rev() {
        if out.len() == limit {
            break;
        }
        let (k, _) = row.map_err(redb_err)?;
        out.extend(get(&table, k.value().1)?);
    }
    Ok(out)
}

/// Fills [`RECEIVED`] from the transfers received before it existed, by
/// the time of their receipt (the receiving store's clock: the hub did
/// not keep its own then). Part of [`super::redb::tallies::build`].
pub(in crate::storage) fn index_received(txn: &WriteTxn) -> Result<(), StoreError> {
    let raw = txn.raw();
    let ids = by_status::ids_with_status(
        &raw.open_table(BY_STATUS).map_err(redb_err)?,
        TransferStatus::Received.name(),
        "",
        usize::MAX,
    )?;
    let table = raw.open_table(TRANSFERS).map_err(redb_err)?;
    let mut index = raw.open_table(RECEIVED).map_err(redb_err)?;
    for id in ids {
        if let Some(t) = get(&table, &id)? {
            let at = t.received_at_ms.unwrap_or(t.seen_at_ms);
            index.insert((at, id.as_str()), ()).map_err(redb_err)?;
        }
    }
    Ok(())
}

/// The transfer `id`.
pub(in crate::storage) fn read(txn: &ReadTxn, id: &str) -> Result<Option<HubTransfer>, StoreError> {
    get(&txn.raw().open_table(TRANSFERS).map_err(redb_err)?, id)
}
