//! The file format: every redb table of a store and its metadata keys, how
//! records are encoded (postcard, some behind an 8-byte version stamp), and
//! the reads shared by [`ReadTxn`](crate::ReadTxn),
//! [`WriteTxn`](crate::WriteTxn) and [`TxnReplica`](crate::TxnReplica):
//! functions over any [`ReadableTable`], so a read-only table, a writable
//! one and a lazily opened one are read by the same code, and
//! [`ReadTables`], so a read that opens its own tables is written once for
//! both kinds of transaction.

use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tally_sync::codec;
use tally_sync::epcs::EpcHistory;
use tally_sync::{
    BoundedCounter, Delta, DeltaEntry, Epc, Event, EventId, Gtin, ItemKey, LocationId,
};

use crate::error::{corrupt, StoreError};

/// Counters: (location, gtin) → version (8 bytes LE) ‖ postcard counter.
pub(crate) const COUNTERS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("counters");
/// Change index: (location, version) → gtin.
pub(crate) const CHANGES: TableDefinition<(&str, u64), u64> =
    TableDefinition::new("counter_changes");
/// Events: UUID as u128 → postcard event.
pub(crate) const EVENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("events");
/// Sold EPCs: EPC bytes → postcard history.
pub(crate) const EPCS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("epcs");
/// Catalog: gtin → version (8 bytes LE) ‖ postcard item.
pub(crate) const CATALOG: TableDefinition<u64, &[u8]> = TableDefinition::new("catalog");
/// Catalog change index: version → gtin.
pub(crate) const CATALOG_CHANGES: TableDefinition<u64, u64> =
    TableDefinition::new("catalog_changes");
/// Metadata: key → bytes.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Meta key: the latest inventory version (u64 LE).
pub(crate) const INVENTORY_VERSION: &str = "inventory_version";
/// Per location: change-index entries at or below this version have been
/// pruned (`pruned/<location>`).
pub(crate) const PRUNED_PREFIX: &str = "pruned/";
/// Meta key: the latest catalog version (u64 LE).
pub(crate) const CATALOG_VERSION: &str = "catalog_version";

/// Creates every table, so read transactions never miss one.
pub(crate) fn create_all(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(COUNTERS)?;
    txn.open_table(CHANGES)?;
    txn.open_table(EVENTS)?;
    txn.open_table(EPCS)?;
    txn.open_table(CATALOG)?;
    txn.open_table(CATALOG_CHANGES)?;
    txn.open_table(META)?;
    Ok(())
}

/// A redb transaction the store's tables can be read in: a read or a write
/// transaction alike.
pub(crate) trait ReadTables {
    /// `definition`, opened for reading.
    fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        definition: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V>, StoreError>;
}

macro_rules! read_tables {
    ($($txn:ty),*) => {$(
        impl ReadTables for $txn {
            fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
                &self,
                definition: TableDefinition<'static, K, V>,
            ) -> Result<impl ReadableTable<K, V>, StoreError> {
                Ok(self.open_table(definition)?)
            }
        }
    )*};
}
read_tables!(redb::ReadTransaction, redb::WriteTransaction);

pub(crate) fn encode<T: Serialize>(table: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    codec::to_bytes(value).map_err(|e| corrupt(table, e))
}

pub(crate) fn decode<T: DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::from_bytes(bytes).map_err(|e| corrupt(table, e))
}

/// Decodes a row of the events table: today's layout or one written
/// before protocol 4 ([`Event::from_stored`]).
pub(crate) fn decode_event(bytes: &[u8]) -> Result<Event, StoreError> {
    Event::from_stored(bytes).map_err(|e| corrupt("events", e))
}

/// Splits a `version ‖ record` value.
pub(crate) fn versioned<T: DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<(u64, T), StoreError> {
    let (v, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt(table, "value shorter than its version stamp"))?;
    Ok((u64::from_le_bytes(*v), decode(table, rest)?))
}

/// Builds a `version ‖ record` value.
pub(crate) fn with_version<T: Serialize>(
    table: &'static str,
    version: u64,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    let mut out = version.to_le_bytes().to_vec();
    out.extend_from_slice(&encode(table, value)?);
    Ok(out)
}

// Shared readers, generic over read-only and writable tables.

/// A u64 metadata value; 0 if never set.
pub(crate) fn read_u64(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<u64, StoreError> {
    match meta.get(key)? {
        None => Ok(0),
        Some(v) => {
            let b: [u8; 8] = v
                .value()
                .try_into()
                .map_err(|_| corrupt("meta", format!("{key} is not a u64")))?;
            Ok(u64::from_le_bytes(b))
        }
    }
}

pub(crate) fn get_meta(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(meta.get(key)?.map(|v| v.value().to_vec()))
}

/// The counter for `key` and the version it was stamped with.
pub(crate) fn counter(
    table: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    key: &ItemKey,
) -> Result<Option<(u64, BoundedCounter)>, StoreError> {
    match table.get((key.location.as_str(), key.gtin.as_u64()))? {
        Some(v) => Ok(Some(versioned("counters", v.value())?)),
        None => Ok(None),
    }
}

/// Counters at `location` changed after `cursor`, at most `limit`, and the
/// next cursor (`version` is the latest inventory version).
pub(crate) fn delta_since(
    counters: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    changes: &impl ReadableTable<(&'static str, u64), u64>,
    version: u64,
    location: &LocationId,
    cursor: u64,
    limit: usize,
) -> Result<(Delta, u64), StoreError> {
    let loc = location.as_str();
    let mut next = version.max(cursor);
    let mut entries = Vec::new();
    for row in changes.range((loc, cursor.saturating_add(1))..=(loc, u64::MAX))? {
        let (k, gtin) = row?;
        if entries.len() == limit {
            next = k.value().1 - 1;
            break;
        }
        let gtin = Gtin::from_u64(gtin.value()).map_err(|e| corrupt("counter_changes", e))?;
        let key = ItemKey::new(location.clone(), gtin);
        match counter(counters, &key)? {
            // Skip stale entries: the counter changed again later.
            Some((v, counter)) if v == k.value().1 => entries.push(DeltaEntry { key, counter }),
            _ => {}
        }
    }
    Ok((Delta { entries }, next))
}

pub(crate) fn event(
    table: &impl ReadableTable<u128, &'static [u8]>,
    id: &EventId,
) -> Result<Option<Event>, StoreError> {
    match table.get(id.0.as_u128())? {
        Some(v) => Ok(Some(decode_event(v.value())?)),
        None => Ok(None),
    }
}

pub(crate) fn epc_history(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    epc: &Epc,
) -> Result<Option<EpcHistory>, StoreError> {
    match table.get(epc.as_bytes())? {
        Some(v) => Ok(Some(decode("epcs", v.value())?)),
        None => Ok(None),
    }
}
