//! Returns on redb: what the logic in `storage/logic/returns.rs` counts
//! against each original, kept by [`super::txn::RedbTxn`], and HQ's read
//! of the returns across stores.
//!
//! Tables: `hub_returned` ((original, gtin) → units returned) and
//! `hub_return_claims` ((original, return id) → [`Claim`], JSON): both a
//! range per original. `hub_cross_store_returns` (return event id, UUIDv7:
//! time order → [`CrossReturn`], JSON) keeps each return taken at another
//! store than its sale's, or of a web order.

use std::collections::BTreeMap;

use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{ReadTxn, StoreError, WriteTxn};
use tally_sync::{EventId, Gtin};

use super::{from_json, redb_err, to_json};
use crate::storage::returns::{Claim, CrossReturn};

pub(in crate::storage) const RETURNED: TableDefinition<(u128, u64), u64> =
    TableDefinition::new("hub_returned");
pub(in crate::storage) const CLAIMS: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("hub_return_claims");
/// Return event id (UUIDv7: time order) → [`CrossReturn`] (JSON): the
/// returns taken at another store than their sale's, or of a web order.
pub(in crate::storage) const CROSS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("hub_cross_store_returns");

/// Units returned against `original`, per item.
pub(in crate::storage) fn returned(
    txn: &WriteTxn,
    original: EventId,
) -> Result<BTreeMap<Gtin, u64>, StoreError> {
    let o = original.0.as_u128();
    let mut out: BTreeMap<Gtin, u64> = BTreeMap::new();
    let returned = txn.raw().open_table(RETURNED).map_err(redb_err)?;
    for row in returned
        .range((o, 0u64)..=(o, u64::MAX))
        .map_err(redb_err)?
    {
        let (k, v) = row.map_err(redb_err)?;
        if let Ok(g) = Gtin::from_u64(k.value().1) {
            *out.entry(g).or_default() += v.value();
        }
    }
    Ok(out)
}

/// Adds `units` of `gtin` returned against `original`; answers the new
/// total.
pub(in crate::storage) fn add_returned(
    txn: &WriteTxn,
    original: EventId,
    gtin: Gtin,
    units: u64,
) -> Result<u64, StoreError> {
    let mut table = txn.raw().open_table(RETURNED).map_err(redb_err)?;
    let key = (original.0.as_u128(), gtin.as_u64());
    let total = table
        .get(key)
        .map_err(redb_err)?
        .map_or(0, |v| v.value())
        .saturating_add(units);
    table.insert(key, total).map_err(redb_err)?;
    Ok(total)
}

/// The claims held against `original`, by return id.
pub(in crate::storage) fn claims(
    txn: &WriteTxn,
    original: EventId,
) -> Result<Vec<(EventId, Claim)>, StoreError> {
    let o = original.0.as_u128();
    let table = txn.raw().open_table(CLAIMS).map_err(redb_err)?;
    let mut out = Vec::new();
    for row in table.range((o, 0u128)..=(o, u128::MAX)).map_err(redb_err)? {
        let (k, v) = row.map_err(redb_err)?;
        let id = EventId(uuid::Uuid::from_u128(k.value().1));
        out.push((id, from_json("hub_return_claims", v.value())?));
    }
    Ok(out)
}

/// Holds `claim` against `original` for return `return_id`.
pub(in crate::storage) fn put_claim(
    txn: &WriteTxn,
    original: EventId,
    return_id: EventId,
    claim: &Claim,
) -> Result<(), StoreError> {
    txn.raw()
        .open_table(CLAIMS)
        .map_err(redb_err)?
        .insert(
            (original.0.as_u128(), return_id.0.as_u128()),
            to_json("hub_return_claims", claim)?.as_slice(),
        )
        .map_err(redb_err)?;
    Ok(())
}

/// Removes return `return_id`'s claim against `original`; answers whether
/// there was one.
pub(in crate::storage) fn take_claim(
    txn: &WriteTxn,
    original: EventId,
    return_id: EventId,
) -> Result<bool, StoreError> {
    Ok(txn
        .raw()
        .open_table(CLAIMS)
        .map_err(redb_err)?
        .remove((original.0.as_u128(), return_id.0.as_u128()))
        .map_err(redb_err)?
        .is_some())
}

/// Keeps a return across stores or channels for HQ.
pub(in crate::storage) fn put_cross(txn: &WriteTxn, cross: &CrossReturn) -> Result<(), StoreError> {
    txn.raw()
        .open_table(CROSS)
        .map_err(redb_err)?
        .insert(
            cross.return_id.0.as_u128(),
            to_json("hub_cross_store_returns", cross)?.as_slice(),
        )
        .map_err(redb_err)?;
    Ok(())
}

/// The latest `limit` returns across stores or channels, newest first.
pub(in crate::storage) fn cross_returns(
    txn: &ReadTxn,
    limit: usize,
) -> Result<Vec<CrossReturn>, StoreError> {
    let table = txn.raw().open_table(CROSS).map_err(redb_err)?;
    let mut out = Vec::new();
    for row in table.iter().map_err(redb_err)?.rev().take(limit) {
        let (_, v) = row.map_err(redb_err)?;
        out.push(from_json("hub_cross_store_returns", v.value())?);
    }
    Ok(out)
}
