//! This store's allocations of orders (issue 22): what the hub sent it to
//! pick and hand over, and where each stands. Written by the committer
//! only: a page from the hub merged in (`tally_sync::command::merge_allocations`)
//! and the store's own moves (`Command::Fulfil`, through [`super::AgentTxn`]).
//!
//! Tables: `agent_orders` (order id → `OrderAllocation`, postcard) and
//! `agent_orders_by_status` ((status, order id) → ()), so the pick list
//! (`allocated` and `picked`) is a range read, however many orders the
//! store handed over before. The hub's change cursor the store has
//! applied is `allocations_cursor` in `agent_meta`.

use tally_store::redb::{ReadableTable, Table, TableDefinition};
use tally_store::{by_status, ReadTxn, StoreError};
use tally_sync::codec;
use tally_sync::fulfilment::{OrderAllocation, Status};

use super::tables::storage;

/// Order id → this store's allocation.
pub(super) const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("agent_orders");
/// (status name, order id) → (): allocations by where they stand.
pub(super) const BY_STATUS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("agent_orders_by_status");
/// `agent_meta` key: the hub's allocation changes applied up to here.
pub(super) const ALLOCATIONS_CURSOR: &str = "allocations_cursor";

fn decode(bytes: &[u8]) -> Result<OrderAllocation, StoreError> {
    codec::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        table: "agent_orders",
        detail: e.to_string(),
    })
}

/// The allocation of `order_id`, if the hub sent one.
pub(super) fn get(
    orders: &impl ReadableTable<&'static str, &'static [u8]>,
    order_id: &str,
) -> Result<Option<OrderAllocation>, StoreError> {
    match orders.get(order_id).map_err(storage)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// Stores `a`, moving its entry in the status index.
pub(super) fn put(
    orders: &mut Table<'_, &'static str, &'static [u8]>,
    index: &mut Table<'_, (&'static str, &'static str), ()>,
    a: &OrderAllocation,
) -> Result<(), StoreError> {
    let was = get(orders, &a.order_id)?.map(|old| old.status.name());
    let bytes = codec::to_bytes(a).map_err(|e| StoreError::Storage(e.to_string()))?;
    orders
        .insert(a.order_id.as_str(), bytes.as_slice())
        .map_err(storage)?;
    by_status::move_status(index, &a.order_id, was, a.status.name())
}

/// Allocations with one of `statuses`, by status then order id, after
/// order id `after` within each, at most `limit` in all.
pub(super) fn list(
    txn: &ReadTxn,
    statuses: &[Status],
    after: &str,
    limit: usize,
) -> Result<Vec<OrderAllocation>, StoreError> {
    let index = txn.raw().open_table(BY_STATUS).map_err(storage)?;
    let orders = txn.raw().open_table(ORDERS).map_err(storage)?;
    let names: Vec<&str> = statuses.iter().map(|s| s.name()).collect();
    by_status::records_with_status(&index, &names, after, limit, |id| get(&orders, id))
}

/// The allocation of `order_id`, from a snapshot.
pub(super) fn read(txn: &ReadTxn, order_id: &str) -> Result<Option<OrderAllocation>, StoreError> {
    get(&txn.raw().open_table(ORDERS).map_err(storage)?, order_id)
}

/// The hub's allocation changes this store applied.
pub(super) fn cursor(txn: &ReadTxn) -> Result<u64, StoreError> {
    let meta = txn
        .raw()
        .open_table(super::tables::AGENT_META)
        .map_err(storage)?;
    Ok(meta
        .get(ALLOCATIONS_CURSOR)
        .map_err(storage)?
        .map_or(0, |v| v.value()))
}
