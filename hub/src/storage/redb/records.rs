//! The hub's records per store and per id, on redb (JSON values, so HQ
//! tools can read them and they can grow fields):
//!
//! - `hub_stores`: store id → [`StoreRecord`] (with its sales lost by
//!   reason, merged by max from each sync, and its refused online orders
//!   by reason).
//! - `hub_sales_per_minute`: (store, Unix minute of the sale) → units
//!   sold, counted once per new sale event (the dashboard's chart); only
//!   the last [`SALES_WINDOW_MINUTES`](crate::storage::SALES_WINDOW_MINUTES)
//!   are kept.
//! - `hub_online_demand`: (store, GTIN) → [`DemandEstimate`], the decayed
//!   units ordered online there, from which each sync's reserve targets
//!   come.
//! - `hub_orders`: order id → `OrderIndex` (a store-named order's
//!   fingerprint and receipt).
//! - `hub_grants`: request id → what a store's request for rights was
//!   granted.

use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{StoreError, WriteTxn};
use tally_sync::{DemandEstimate, Gtin, LocationId};

use super::{corrupt, from_json, redb_err, to_json};
use crate::storage::logic::orders::OrderIndex;
use crate::storage::logic::rights::GrantRecord;
use crate::storage::StoreRecord;

pub(in crate::storage) const STORES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("hub_stores");
pub(in crate::storage) const SALES: TableDefinition<(&str, u64), u64> =
    TableDefinition::new("hub_sales_per_minute");
pub(in crate::storage) const DEMAND: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("hub_online_demand");
pub(in crate::storage) const ORDERS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("hub_orders");
pub(in crate::storage) const GRANTS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("hub_grants");

/// Reads the JSON value under `key` in `table` (named `name`).
fn get_json<K: tally_store::redb::Key + 'static, T: serde::de::DeserializeOwned>(
    txn: &WriteTxn,
    table: TableDefinition<K, &[u8]>,
    name: &'static str,
    key: K::SelfType<'_>,
) -> Result<Option<T>, StoreError> {
    let t = txn.raw().open_table(table).map_err(redb_err)?;
    let found = t.get(key).map_err(redb_err)?;
    found.map(|v| from_json(name, v.value())).transpose()
}

/// Writes `value` as JSON under `key` in `table` (named `name`).
fn put_json<K: tally_store::redb::Key + 'static, T: serde::Serialize>(
    txn: &WriteTxn,
    table: TableDefinition<K, &[u8]>,
    name: &'static str,
    key: K::SelfType<'_>,
    value: &T,
) -> Result<(), StoreError> {
    txn.raw()
        .open_table(table)
        .map_err(redb_err)?
        .insert(key, to_json(name, value)?.as_slice())
        .map_err(redb_err)?;
    Ok(())
}

pub(in crate::storage) fn store_record(
    txn: &WriteTxn,
    store: &str,
) -> Result<Option<StoreRecord>, StoreError> {
    get_json(txn, STORES, "hub_stores", store)
}

pub(in crate::storage) fn put_store_record(
    txn: &WriteTxn,
    record: &StoreRecord,
) -> Result<(), StoreError> {
    put_json(txn, STORES, "hub_stores", record.store.as_str(), record)
}

pub(in crate::storage) fn add_sales(
    txn: &WriteTxn,
    store: &str,
    minute: u64,
    units: u64,
) -> Result<(), StoreError> {
    let mut sales = txn.raw().open_table(SALES).map_err(redb_err)?;
    let before = sales
        .get((store, minute))
        .map_err(redb_err)?
        .map_or(0, |v| v.value());
    sales
        .insert((store, minute), before.saturating_add(units))
        .map_err(redb_err)?;
    Ok(())
}

/// Removes `store`'s rows before `minute`: a range of the key's order,
/// so the cost is the rows removed.
pub(in crate::storage) fn drop_sales_before(
    txn: &WriteTxn,
    store: &str,
    minute: u64,
) -> Result<(), StoreError> {
    let mut sales = txn.raw().open_table(SALES).map_err(redb_err)?;
    sales
        .retain_in((store, 0)..(store, minute), |_, _| false)
        .map_err(redb_err)?;
    Ok(())
}

pub(in crate::storage) fn demand_at(
    txn: &WriteTxn,
    location: &LocationId,
) -> Result<Vec<(Gtin, DemandEstimate)>, StoreError> {
    let table = txn.raw().open_table(DEMAND).map_err(redb_err)?;
    let store = location.as_str();
    let mut out = Vec::new();
    for row in table
        .range((store, 0)..=(store, u64::MAX))
        .map_err(redb_err)?
    {
        let (k, v) = row.map_err(redb_err)?;
        let gtin = Gtin::from_u64(k.value().1).map_err(|e| corrupt("hub_online_demand", e))?;
        out.push((gtin, from_json("hub_online_demand", v.value())?));
    }
    Ok(out)
}

pub(in crate::storage) fn demand(
    txn: &WriteTxn,
    location: &LocationId,
    gtin: Gtin,
) -> Result<Option<DemandEstimate>, StoreError> {
    get_json(
        txn,
        DEMAND,
        "hub_online_demand",
        (location.as_str(), gtin.as_u64()),
    )
}

pub(in crate::storage) fn forget_demand(
    txn: &WriteTxn,
    location: &LocationId,
    gtin: Gtin,
) -> Result<(), StoreError> {
    let mut table = txn.raw().open_table(DEMAND).map_err(redb_err)?;
    table
        .remove((location.as_str(), gtin.as_u64()))
        .map_err(redb_err)?;
    Ok(())
}

pub(in crate::storage) fn put_demand(
    txn: &WriteTxn,
    location: &LocationId,
    gtin: Gtin,
    d: &DemandEstimate,
) -> Result<(), StoreError> {
    put_json(
        txn,
        DEMAND,
        "hub_online_demand",
        (location.as_str(), gtin.as_u64()),
        d,
    )
}

pub(in crate::storage) fn store_named_order(
    txn: &WriteTxn,
    order_id: &str,
) -> Result<Option<OrderIndex>, StoreError> {
    get_json(txn, ORDERS, "hub_orders", order_id)
}

pub(in crate::storage) fn put_store_named_order(
    txn: &WriteTxn,
    order_id: &str,
    index: &OrderIndex,
) -> Result<(), StoreError> {
    put_json(txn, ORDERS, "hub_orders", order_id, index)
}

pub(in crate::storage) fn grant_record(
    txn: &WriteTxn,
    request_id: u128,
) -> Result<Option<GrantRecord>, StoreError> {
    get_json(txn, GRANTS, "hub_grants", request_id)
}

pub(in crate::storage) fn put_grant_record(
    txn: &WriteTxn,
    request_id: u128,
    record: &GrantRecord,
) -> Result<(), StoreError> {
    put_json(txn, GRANTS, "hub_grants", request_id, record)
}
