//! The file format: every redb table of a store and its metadata keys, how
//! records are encoded (postcard, some behind an 8-byte version stamp), and
//! the reads shared by [`ReadTxn`](crate::ReadTxn),
//! [`WriteTxn`](crate::WriteTxn) and [`TxnReplica`](crate::TxnReplica):
//! functions over any [`ReadableTable`], so a read-only table, a writable
//! one and a lazily opened one are read by the same code, and
//! [`ReadTables`], so a read that opens its own tables is written once for
//! both kinds of transaction.

use redb::{ReadableTable, TableDefinition, TableHandle};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tally_sync::codec;
use tally_sync::epcs::{EpcHistory, EpcRecord, EpcSummary};
use tally_sync::{
    BoundedCounter, Delta, DeltaEntry, Epc, Event, EventId, Gtin, ItemKey, LocationId, ReplicaId,
};

use crate::error::{corrupt, StoreError};

/// Counters: (location, gtin) → version (8 bytes LE) ‖ postcard counter.
pub(crate) const COUNTERS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("counters");
/// Change index: (location, version) → gtin.
pub(crate) const CHANGES: TableDefinition<(&str, u64), u64> =
    TableDefinition::new("counter_changes");
/// Events: UUID as u128 → postcard event.
pub(crate) const EVENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("events");
/// Sold EPCs, one fixed-width summary each: EPC bytes → (sales, returns,
/// the first sale's event id), an [`EpcSummary`]. Rewritten per event, but
/// the same size whatever the tag's history.
pub(crate) const EPC_STATE: TableDefinition<&[u8], EpcStateValue> =
    TableDefinition::new("epc_state");
/// One row per sale or return of an EPC: (EPC bytes, [`EPC_SALE`] or
/// [`EPC_RETURN`], event id, replica) → nothing. The keys are the
/// records of the tag's [`EpcHistory`], in its order: appended, never
/// rewritten; the whole history is a range read over the EPC's prefix.
pub(crate) const EPC_ROWS: TableDefinition<EpcRowKey, ()> = TableDefinition::new("epc_rows");
/// The format before [`EPC_STATE`] and [`EPC_ROWS`]: EPC bytes → postcard
/// [`EpcHistory`], decoded and rewritten whole on every event. Converted
/// once when a database is opened, then deleted ([`migrate_epcs`]).
pub(crate) const OLD_EPCS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("epcs");
/// Catalog: gtin → version (8 bytes LE) ‖ postcard item.
pub(crate) const CATALOG: TableDefinition<u64, &[u8]> = TableDefinition::new("catalog");
/// Catalog change index: version → gtin.
pub(crate) const CATALOG_CHANGES: TableDefinition<u64, u64> =
    TableDefinition::new("catalog_changes");
/// A row of [`EPC_STATE`]: sales, returns, the first sale's event id.
pub(crate) type EpcStateValue = (u64, u64, Option<u128>);
/// A key of [`EPC_ROWS`]: EPC bytes, sale or return, event id, replica.
pub(crate) type EpcRowKey = (&'static [u8], u8, u128, &'static str);
/// [`EPC_ROWS`]: a sale.
pub(crate) const EPC_SALE: u8 = 0;
/// [`EPC_ROWS`]: a return.
pub(crate) const EPC_RETURN: u8 = 1;
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
    txn.open_table(EPC_STATE)?;
    txn.open_table(EPC_ROWS)?;
    txn.open_table(CATALOG)?;
    txn.open_table(CATALOG_CHANGES)?;
    txn.open_table(META)?;
    Ok(())
}

/// Converts the EPC histories of a database written before [`EPC_STATE`]
/// and [`EPC_ROWS`] (the table [`OLD_EPCS`]) into a summary and one row
/// per record each, and deletes the old table, all in `txn` (the opening
/// transaction): once, since the old table is gone afterwards. Each
/// record is folded in as a new event's would be, so rows already there
/// (an older version run again on a converted file) are kept and counted
/// once. Returns how many EPCs it converted.
pub(crate) fn migrate_epcs(txn: &redb::WriteTransaction) -> Result<u64, StoreError> {
    if !txn.list_tables()?.any(|t| t.name() == OLD_EPCS.name()) {
        return Ok(0);
    }
    let mut n = 0;
    {
        let old = txn.open_table(OLD_EPCS)?;
        let mut state = txn.open_table(EPC_STATE)?;
        let mut rows = txn.open_table(EPC_ROWS)?;
        for row in old.iter()? {
            let (k, v) = row?;
            let epc = Epc::from_bytes(k.value()).map_err(|e| corrupt("epcs", e))?;
            let history: EpcHistory = decode("epcs", v.value())?;
            let mut summary = epc_summary(&state, &epc)?.unwrap_or_default();
            for r in &history.sales {
                if rows.insert(epc_row(&epc, EPC_SALE, r), ())?.is_none() {
                    summary = summary.after_sale(r).0;
                }
            }
            for r in &history.returns {
                if rows.insert(epc_row(&epc, EPC_RETURN, r), ())?.is_none() {
                    summary = summary.after_return();
                }
            }
            state.insert(epc.as_bytes(), epc_state_value(&summary))?;
            n += 1;
        }
    }
    txn.delete_table(OLD_EPCS)?;
    Ok(n)
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

/// The summary of `epc`: one fixed-width row.
pub(crate) fn epc_summary(
    state: &impl ReadableTable<&'static [u8], EpcStateValue>,
    epc: &Epc,
) -> Result<Option<EpcSummary>, StoreError> {
    Ok(state.get(epc.as_bytes())?.map(|v| {
        let (sales, returns, first_sale) = v.value();
        EpcSummary {
            sales,
            returns,
            first_sale: first_sale.map(|id| EventId(uuid::Uuid::from_u128(id))),
        }
    }))
}

/// `summary` as a row of [`EPC_STATE`].
pub(crate) fn epc_state_value(summary: &EpcSummary) -> EpcStateValue {
    (
        summary.sales,
        summary.returns,
        summary.first_sale.map(|id| id.0.as_u128()),
    )
}

/// The key of the row recording `record` as a sale or return of `epc`.
pub(crate) fn epc_row<'a>(
    epc: &'a Epc,
    movement: u8,
    record: &'a EpcRecord,
) -> (&'a [u8], u8, u128, &'a str) {
    (
        epc.as_bytes(),
        movement,
        record.event.0.as_u128(),
        record.replica.as_str(),
    )
}

/// Up to `limit` records of `epc` of one kind ([`EPC_SALE`] or
/// [`EPC_RETURN`]), in record order: a range read over the EPC's rows.
pub(crate) fn epc_records(
    rows: &impl ReadableTable<EpcRowKey, ()>,
    epc: &Epc,
    movement: u8,
    limit: usize,
) -> Result<Vec<EpcRecord>, StoreError> {
    let e = epc.as_bytes();
    let mut out = Vec::new();
    for row in rows
        .range((e, movement, 0u128, "")..(e, movement + 1, 0u128, ""))?
        .take(limit)
    {
        let (k, _) = row?;
        let (_, _, event, replica) = k.value();
        out.push(EpcRecord {
            event: EventId(uuid::Uuid::from_u128(event)),
            replica: ReplicaId::new(replica).map_err(|e| corrupt("epc_rows", e))?,
        });
    }
    Ok(out)
}

/// The whole history of `epc`, from its rows: per-request work
/// proportional to that tag's sales and returns (a lookup, never the
/// path that records an event).
pub(crate) fn epc_history(
    state: &impl ReadableTable<&'static [u8], EpcStateValue>,
    rows: &impl ReadableTable<EpcRowKey, ()>,
    epc: &Epc,
) -> Result<Option<EpcHistory>, StoreError> {
    if state.get(epc.as_bytes())?.is_none() {
        return Ok(None);
    }
    Ok(Some(EpcHistory {
        sales: epc_records(rows, epc, EPC_SALE, usize::MAX)?
            .into_iter()
            .collect(),
        returns: epc_records(rows, epc, EPC_RETURN, usize::MAX)?
            .into_iter()
            .collect(),
    }))
}
