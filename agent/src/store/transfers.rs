//! Transfers of stock to and from this store (issue 22): those it sent
//! (`Command::TransferOut`) and those the hub told it of, sent to it
//! (received with `Command::TransferIn`). Written by the committer only.
//!
//! Tables: `agent_transfers` (transfer id → `tally_sync::transfer::Transfer`,
//! postcard) and `agent_transfers_by_status` ((status, transfer id) → ()),
//! so the transfers in transit are a range read.

use tally_store::redb::{ReadableTable, Table, TableDefinition};
use tally_store::{by_status, ReadTxn, StoreError};
use tally_sync::codec;
use tally_sync::transfer::{Transfer, TransferStatus};

use super::tables::storage;

/// Transfer id → the transfer.
pub(super) const TRANSFERS: TableDefinition<&str, &[u8]> = TableDefinition::new("agent_transfers");
/// (status name, transfer id) → ().
pub(super) const BY_STATUS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("agent_transfers_by_status");
/// EPC → the transfer it is on (the receiving portal's lookup).
pub(super) const BY_EPC: TableDefinition<&[u8], &str> = TableDefinition::new("agent_transfer_epcs");

/// The transfer `id`, if this store knows it.
pub(super) fn get(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<Transfer>, StoreError> {
    match table.get(id).map_err(storage)? {
        Some(v) => codec::from_bytes(v.value())
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                table: "agent_transfers",
                detail: e.to_string(),
            }),
        None => Ok(None),
    }
}

/// Stores `t`, moving its entry in the status index.
pub(super) fn put(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    index: &mut Table<'_, (&'static str, &'static str), ()>,
    t: &Transfer,
) -> Result<(), StoreError> {
    let was = get(table, &t.transfer_id)?.map(|old| old.status.name());
    let bytes = codec::to_bytes(t).map_err(|e| StoreError::Storage(e.to_string()))?;
    table
        .insert(t.transfer_id.as_str(), bytes.as_slice())
        .map_err(storage)?;
    by_status::move_status(index, &t.transfer_id, was, t.status.name())
}

/// Transfers with one of `statuses`, by status then id after `after`, at
/// most `limit`.
pub(super) fn list(
    txn: &ReadTxn,
    statuses: &[TransferStatus],
    after: &str,
    limit: usize,
) -> Result<Vec<Transfer>, StoreError> {
    let index = txn.raw().open_table(BY_STATUS).map_err(storage)?;
    let table = txn.raw().open_table(TRANSFERS).map_err(storage)?;
    let names: Vec<&str> = statuses.iter().map(|s| s.name()).collect();
    by_status::records_with_status(&index, &names, after, limit, |id| get(&table, id))
}

/// Records the transfer of each of `t`'s tags.
pub(super) fn index_epcs(
    table: &mut Table<'_, &'static [u8], &'static str>,
    t: &Transfer,
) -> Result<(), StoreError> {
    for epc in t.lines.iter().filter_map(|l| l.epc.as_ref()) {
        table
            .insert(epc.as_bytes(), t.transfer_id.as_str())
            .map_err(storage)?;
    }
    Ok(())
}

/// The transfer `epc` is on, from a snapshot (the latest one naming it).
pub(super) fn of_epc(txn: &ReadTxn, epc: &tally_sync::Epc) -> Result<Option<Transfer>, StoreError> {
    let index = txn.raw().open_table(BY_EPC).map_err(storage)?;
    let Some(id) = index.get(epc.as_bytes()).map_err(storage)? else {
        return Ok(None);
    };
    let id = id.value().to_string();
    get(&txn.raw().open_table(TRANSFERS).map_err(storage)?, &id)
}

/// The transfer `id`, from a snapshot.
pub(super) fn read(txn: &ReadTxn, id: &str) -> Result<Option<Transfer>, StoreError> {
    get(&txn.raw().open_table(TRANSFERS).map_err(storage)?, id)
}
