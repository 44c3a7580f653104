//! Routed orders on redb (the logic is `logic/routed.rs`):
//!
//! - `hub_routed_orders`: order id → [`RoutedOrder`] (JSON).
//! - `hub_routed_orders_by_status`: (status, order id) → (), for
//!   `GET /v1/orders?status=` in pages.
//! - `hub_allocation_changes` / `hub_allocation_versions` /
//!   `hub_routed_meta`: each store's allocations and transfers in the
//!   order they last changed at the hub, so a store fetches what changed
//!   after its cursor with one range read (`GET /v1/allocations`).

use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{by_status, ReadTxn, StoreError, WriteTxn};
use tally_sync::fulfilment::Status;
use tally_sync::message::AllocationsPage;
use tally_sync::LocationId;

use super::{from_json, redb_err, to_json};
use crate::storage::logic::routed::{self as logic, RoutedOrder};
use crate::storage::StorageError;

pub(in crate::storage) const ROUTED: TableDefinition<&str, &[u8]> =
    TableDefinition::new("hub_routed_orders");
/// (status, order id) → (): routed orders by where they stand, for
/// `GET /v1/orders?status=` in pages (no scan of every order).
pub(in crate::storage) const BY_STATUS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("hub_routed_orders_by_status");

/// (store, change version) → `o:ORDER` or `t:TRANSFER`: each store's
/// allocations and transfers in the order they last changed at the hub
/// (allocated, cancelled; sent to it, received), so a store fetches what
/// changed after its cursor with one range read (`GET /v1/allocations`).
pub(in crate::storage) const CHANGES: TableDefinition<(&str, u64), &str> =
    TableDefinition::new("hub_allocation_changes");
/// (store, `o:ORDER` or `t:TRANSFER`) → its change version (to move its
/// entry in [`CHANGES`]).
pub(in crate::storage) const VERSIONS: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("hub_allocation_versions");
/// `"allocation_version"` → the last change version handed out.
pub(in crate::storage) const META: TableDefinition<&str, u64> =
    TableDefinition::new("hub_routed_meta");
pub(in crate::storage) const VERSION_KEY: &str = "allocation_version";

/// Records that something of `store`'s changed at the hub, `key` being
/// `o:ORDER` (its allocation of an order) or `t:TRANSFER` (a transfer to
/// or from it): it gets the next change version, so the store's next
/// page brings it.
pub(in crate::storage) fn announce(
    txn: &WriteTxn,
    store: &LocationId,
    key: &str,
) -> Result<(), StoreError> {
    let raw = txn.raw();
    let mut meta = raw.open_table(META).map_err(redb_err)?;
    let version = meta
        .get(VERSION_KEY)
        .map_err(redb_err)?
        .map_or(0, |v| v.value())
        + 1;
    meta.insert(VERSION_KEY, version).map_err(redb_err)?;
    let mut versions = raw.open_table(VERSIONS).map_err(redb_err)?;
    let mut changes = raw.open_table(CHANGES).map_err(redb_err)?;
    if let Some(old) = versions
        .insert((store.as_str(), key), version)
        .map_err(redb_err)?
    {
        changes
            .remove((store.as_str(), old.value()))
            .map_err(redb_err)?;
    }
    changes
        .insert((store.as_str(), version), key)
        .map_err(redb_err)?;
    Ok(())
}

/// `store`'s allocations changed after change version `after`, oldest
/// change first, at most `limit` (a range read of [`CHANGES`]).
pub(in crate::storage) fn allocations_page(
    txn: &ReadTxn,
    store: &LocationId,
    after: u64,
    limit: usize,
) -> Result<AllocationsPage, StorageError> {
    let changes = txn.raw().open_table(CHANGES).map_err(redb_err)?;
    let orders = txn.raw().open_table(ROUTED).map_err(redb_err)?;
    let s = store.as_str();
    let mut rows = changes
        .range((s, after.saturating_add(1))..=(s, u64::MAX))
        .map_err(redb_err)?;
    logic::allocations_page(
        store,
        after,
        limit,
        || match rows.next() {
            Some(row) => {
                let (k, v) = row.map_err(redb_err)?;
                Ok(Some((k.value().1, v.value().to_string())))
            }
            None => Ok(None),
        },
        |id| Ok(get(&orders, id)?),
        |id| Ok(super::transfers::read(txn, id)?),
    )
}

/// Stores `order`, moving its entry in the status index from `was`.
pub(in crate::storage) fn put(
    txn: &WriteTxn,
    order: &RoutedOrder,
    was: Option<Status>,
) -> Result<(), StoreError> {
    let raw = txn.raw();
    raw.open_table(ROUTED)
        .map_err(redb_err)?
        .insert(
            order.order_id.as_str(),
            to_json("hub_routed_orders", order)?.as_slice(),
        )
        .map_err(redb_err)?;
    by_status::move_status(
        &mut raw.open_table(BY_STATUS).map_err(redb_err)?,
        &order.order_id,
        was.map(Status::name),
        order.status.name(),
    )?;
    super::tallies::moved(
        txn,
        super::tallies::ORDERS,
        was.map(Status::name),
        order.status.name(),
    )
}

fn get(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    order_id: &str,
) -> Result<Option<RoutedOrder>, StoreError> {
    match table.get(order_id).map_err(redb_err)? {
        Some(v) => Ok(Some(from_json("hub_routed_orders", v.value())?)),
        None => Ok(None),
    }
}

/// Routed orders with `status`, by id after `after`, at most `limit`.
pub(in crate::storage) fn list(
    txn: &ReadTxn,
    status: Status,
    after: &str,
    limit: usize,
) -> Result<Vec<RoutedOrder>, StoreError> {
    let index = txn.raw().open_table(BY_STATUS).map_err(redb_err)?;
    let orders = txn.raw().open_table(ROUTED).map_err(redb_err)?;
    by_status::records_with_status(&index, &[status.name()], after, limit, |id| {
        get(&orders, id)
    })
}

/// The routed order `order_id`, in a write transaction.
pub(in crate::storage) fn read_in(
    txn: &WriteTxn,
    order_id: &str,
) -> Result<Option<RoutedOrder>, StoreError> {
    get(&txn.raw().open_table(ROUTED).map_err(redb_err)?, order_id)
}

/// The routed order `order_id`, from a snapshot.
pub(in crate::storage) fn read(
    txn: &ReadTxn,
    order_id: &str,
) -> Result<Option<RoutedOrder>, StoreError> {
    get(&txn.raw().open_table(ROUTED).map_err(redb_err)?, order_id)
}
