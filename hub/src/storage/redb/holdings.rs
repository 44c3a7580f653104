//! Where the hub holds rights, by item: `hub_holdings` ((gtin, store) →
//! the hub's rights to that item at that store, rows only while above 0).
//! Kept in the transaction of every counter write at the hub
//! ([`super::txn::RedbTxn`] is the one writer of counters), so
//! routing an order reads one short range per line (the stores where the
//! hub holds the item) instead of every store's counter
//! (`docs/benchmarks.md`, "Orders": 5,000 counter reads per 5-line order
//! over 1,000 stores were 85 % of routing). Built once from the counters
//! when an older database is opened ([`build`]).

use std::collections::BTreeMap;
use tally_store::redb::{ReadableTable, Table, TableDefinition};

use tally_store::{Db, ReadTxn, StoreError, WriteTxn};
use tally_sync::{BoundedCounter, Gtin, ItemKey, LocationId, ReplicaId};

use super::{corrupt, redb_err};

/// (gtin, store) → the hub's rights there.
pub(in crate::storage) const HOLDINGS: TableDefinition<(u64, &str), u64> =
    TableDefinition::new("hub_holdings");

const BUILT: &str = "hub_holdings_v1";

/// Records the hub's rights in `counter`, the new value of `key`.
pub(in crate::storage) fn update(
    table: &mut Table<'_, (u64, &'static str), u64>,
    key: &ItemKey,
    counter: &BoundedCounter,
) -> Result<(), StoreError> {
    let rights = counter.rights(&ReplicaId::hub());
    let k = (key.gtin.as_u64(), key.location.as_str());
    let old = table.get(k).map_err(redb_err)?.map(|v| v.value());
    match (old, rights) {
        (Some(o), r) if o == r => {}
        (None, 0) => {}
        (_, 0) => {
            table.remove(k).map_err(redb_err)?;
        }
        (_, r) => {
            table.insert(k, r).map_err(redb_err)?;
        }
    }
    Ok(())
}

/// The stores where the hub holds rights to `gtin`, with how many, in
/// store order.
pub(in crate::storage) fn holders(
    table: &impl ReadableTable<(u64, &'static str), u64>,
    gtin: Gtin,
) -> Result<Vec<(LocationId, u64)>, StoreError> {
    let g = gtin.as_u64();
    let mut out = Vec::new();
    for row in table.range((g, "")..=(g, "\u{10FFFF}")).map_err(redb_err)? {
        let (k, v) = row.map_err(redb_err)?;
        let store = LocationId::new(k.value().1).map_err(|e| corrupt("hub_holdings", e))?;
        out.push((store, v.value()));
    }
    Ok(out)
}

/// The hub's rights to `gtin` at `store`.
pub(in crate::storage) fn held_at(
    table: &impl ReadableTable<(u64, &'static str), u64>,
    gtin: Gtin,
    store: &LocationId,
) -> Result<u64, StoreError> {
    Ok(table
        .get((gtin.as_u64(), store.as_str()))
        .map_err(redb_err)?
        .map_or(0, |v| v.value()))
}

/// Fills `hub_holdings` from every counter, once per database (a hub
/// written before it existed).
pub(in crate::storage) fn build(db: &Db) -> Result<(), StoreError> {
    let txn: WriteTxn = db.begin_write()?;
    if txn.get_meta(BUILT)?.as_deref() == Some(b"1".as_slice()) {
        return txn.abort();
    }
    let mut rows: Vec<(u64, String, u64)> = Vec::new();
    db.begin_read()?.visit_counters(|key, counter| {
        let rights = counter.rights(&ReplicaId::hub());
        if rights > 0 && key.location.as_str() != ReplicaId::HUB {
            rows.push((key.gtin.as_u64(), key.location.to_string(), rights));
        }
    })?;
    {
        let mut table = txn.raw().open_table(HOLDINGS).map_err(redb_err)?;
        for (g, store, rights) in &rows {
            table
                .insert((*g, store.as_str()), *rights)
                .map_err(redb_err)?;
        }
    }
    txn.put_meta(BUILT, b"1")?;
    txn.commit()?;
    if !rows.is_empty() {
        tracing::info!(
            rows = rows.len(),
            "Indexed where the hub holds rights, by item."
        );
    }
    Ok(())
}

/// How many (store, item) pairs the index gets wrong against the counters
/// (a row missing, extra or with other rights), from one snapshot: the
/// audit's check of the invariant routing relies on. O(counters).
pub(in crate::storage) fn disagreeing(txn: &ReadTxn) -> Result<u64, StoreError> {
    let mut expected: BTreeMap<(u64, String), u64> = BTreeMap::new();
    txn.visit_counters(|key, counter| {
        let rights = counter.rights(&ReplicaId::hub());
        if rights > 0 && key.location.as_str() != ReplicaId::HUB {
            expected.insert((key.gtin.as_u64(), key.location.to_string()), rights);
        }
    })?;
    let table = txn.raw().open_table(HOLDINGS).map_err(redb_err)?;
    let mut wrong = 0u64;
    for row in table.iter().map_err(redb_err)? {
        let (k, v) = row.map_err(redb_err)?;
        let (g, store) = k.value();
        match expected.remove(&(g, store.to_string())) {
            Some(r) if r == v.value() => {}
            _ => wrong += 1,
        }
    }
    Ok(wrong + expected.len() as u64)
}
