//! The transaction types: [`WriteTxn`] (the single writer; durable on
//! commit), [`ReadTxn`] (a consistent snapshot), and [`LazyTable`], a
//! table of a write transaction opened on first use. Their reads are the
//! shared functions of `tables` and `catalog`.

use std::cell::OnceCell;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use tally_sync::epcs::{EpcHistory, EpcSummary};
use tally_sync::message::CatalogItem;
use tally_sync::{BoundedCounter, Delta, Epc, Event, EventId, Gtin, ItemKey, LocationId};

use crate::catalog;
use crate::error::{corrupt, StoreError};
use crate::replica::TxnReplica;
use crate::tables::{
    self, read_u64, versioned, CATALOG, CATALOG_VERSION, CHANGES, COUNTERS, EPC_ROWS, EPC_STATE,
    EVENTS, INVENTORY_VERSION, META,
};

/// A write transaction. Nothing is visible or durable until [`Self::commit`].
#[allow(missing_debug_implementations)]
pub struct WriteTxn {
    txn: redb::WriteTransaction,
}

impl WriteTxn {
    /// Wraps a transaction whose durability is already `Immediate`.
    pub(crate) fn new(txn: redb::WriteTransaction) -> Self {
        Self { txn }
    }

    /// The redb transaction, to open the caller's own tables in it.
    pub fn raw(&self) -> &redb::WriteTransaction {
        &self.txn
    }

    /// Counters, events and EPCs in this transaction.
    pub fn replica(&self) -> Result<TxnReplica<'_>, StoreError> {
        Ok(TxnReplica::new(&self.txn))
    }

    /// Stores a catalog item, stamping a new catalog version if it changed.
    /// Returns whether it changed.
    pub fn put_catalog_item(&self, item: &CatalogItem) -> Result<bool, StoreError> {
        catalog::put(&self.txn, item)
    }

    /// A catalog item.
    pub fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StoreError> {
        catalog::item(&self.txn.open_table(CATALOG)?, gtin)
    }

    /// Catalog items changed after `cursor`, at most `limit`, and the cursor
    /// to ask from next time.
    pub fn catalog_since(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<(Vec<CatalogItem>, u64), StoreError> {
        catalog::since(&self.txn, cursor, limit)
    }

    /// A metadata value.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        tables::get_meta(&self.txn.open_table(META)?, key)
    }

    /// Sets a metadata value.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.txn.open_table(META)?.insert(key, value)?;
        Ok(())
    }

    /// Commits durably (fdatasync) and returns only then.
    pub fn commit(self) -> Result<(), StoreError> {
        self.txn.commit()?;
        Ok(())
    }

    /// Drops every change of this transaction.
    pub fn abort(self) -> Result<(), StoreError> {
        self.txn.abort()?;
        Ok(())
    }
}

/// A read transaction: a consistent snapshot of everything.
#[allow(missing_debug_implementations)]
pub struct ReadTxn {
    txn: redb::ReadTransaction,
}

impl ReadTxn {
    pub(crate) fn new(txn: redb::ReadTransaction) -> Self {
        Self { txn }
    }

    /// The redb transaction, to read the caller's own tables.
    pub fn raw(&self) -> &redb::ReadTransaction {
        &self.txn
    }

    /// The counter for `key` (empty if never touched).
    pub fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, StoreError> {
        Ok(tables::counter(&self.txn.open_table(COUNTERS)?, key)?
            .map(|(_, c)| c)
            .unwrap_or_default())
    }

    /// Every counter at `location`, in item order.
    pub fn counters_at(
        &self,
        location: &LocationId,
    ) -> Result<Vec<(Gtin, BoundedCounter)>, StoreError> {
        let table = self.txn.open_table(COUNTERS)?;
        let loc = location.as_str();
        let mut out = Vec::new();
        for row in table.range((loc, 0u64)..=(loc, u64::MAX))? {
            let (k, v) = row?;
            let gtin = Gtin::from_u64(k.value().1).map_err(|e| corrupt("counters", e))?;
            let (_, c): (u64, BoundedCounter) = versioned("counters", v.value())?;
            out.push((gtin, c));
        }
        Ok(out)
    }

    /// Hands every counter to `f`, one at a time, in (location, item)
    /// order (a one-off rebuild of an index over them). Returns how many.
    pub fn visit_counters(
        &self,
        mut f: impl FnMut(ItemKey, BoundedCounter),
    ) -> Result<u64, StoreError> {
        self.try_visit_counters(|key, _, c| {
            f(key, c);
            Ok::<_, StoreError>(())
        })
    }

    /// Hands every counter to `f` with the inventory version it was
    /// last stamped with, one at a time, in (location, item) order,
    /// stopping at the first error `f` returns (a copy of the whole
    /// table elsewhere: memory stays flat). Returns how many.
    pub fn try_visit_counters<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(ItemKey, u64, BoundedCounter) -> Result<(), E>,
    ) -> Result<u64, E> {
        let table = self.txn.open_table(COUNTERS).map_err(StoreError::from)?;
        let mut n = 0;
        for row in table.iter().map_err(StoreError::from)? {
            let (k, v) = row.map_err(StoreError::from)?;
            let (loc, gtin) = k.value();
            let location = LocationId::new(loc).map_err(|e| corrupt("counters", e))?;
            let gtin = Gtin::from_u64(gtin).map_err(|e| corrupt("counters", e))?;
            let (version, c): (u64, BoundedCounter) = versioned("counters", v.value())?;
            f(ItemKey::new(location, gtin), version, c)?;
            n += 1;
        }
        Ok(n)
    }

    /// Entries in `location`'s change index, stale ones included
    /// (diagnostics and tests: pruning keeps this near the counter count).
    pub fn change_index_len(&self, location: &LocationId) -> Result<u64, StoreError> {
        let loc = location.as_str();
        let table = self.txn.open_table(CHANGES)?;
        let mut n = 0;
        for row in table.range((loc, 0u64)..=(loc, u64::MAX))? {
            row?;
            n += 1;
        }
        Ok(n)
    }

    /// The latest inventory version.
    pub fn inventory_version(&self) -> Result<u64, StoreError> {
        read_u64(&self.txn.open_table(META)?, INVENTORY_VERSION)
    }

    /// Counters at `location` changed after `cursor` (see `ReplicaStore`).
    pub fn delta_since(
        &self,
        location: &LocationId,
        cursor: u64,
        limit: usize,
    ) -> Result<(Delta, u64), StoreError> {
        let version = self.inventory_version()?;
        tables::delta_since(
            &self.txn.open_table(COUNTERS)?,
            &self.txn.open_table(CHANGES)?,
            version,
            location,
            cursor,
            limit,
        )
    }

    /// The stored event with `id`.
    pub fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        tables::event(&self.txn.open_table(EVENTS)?, id)
    }

    /// Number of stored events.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        Ok(self.txn.open_table(EVENTS)?.len()?)
    }

    /// Every stored event, in id order (UUIDv7: roughly time order).
    pub fn events(&self) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        self.visit_events(|e| out.push(e))?;
        Ok(out)
    }

    /// Hands every event to `f`, one at a time, in id order (memory stays
    /// flat however many there are). Returns how many.
    pub fn visit_events(&self, mut f: impl FnMut(Event)) -> Result<u64, StoreError> {
        self.try_visit_events(|e| {
            f(e);
            Ok::<_, StoreError>(())
        })
    }

    /// Like [`Self::visit_events`], stopping at the first error `f`
    /// returns.
    pub fn try_visit_events<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(Event) -> Result<(), E>,
    ) -> Result<u64, E> {
        let table = self.txn.open_table(EVENTS).map_err(StoreError::from)?;
        let mut n = 0;
        for row in table.iter().map_err(StoreError::from)? {
            let (_, v) = row.map_err(StoreError::from)?;
            f(tables::decode_event(v.value())?)?;
            n += 1;
        }
        Ok(n)
    }

    /// The summary of `epc` (one fixed-size row).
    pub fn epc_summary(&self, epc: &Epc) -> Result<Option<EpcSummary>, StoreError> {
        tables::epc_summary(&self.txn.open_table(EPC_STATE)?, epc)
    }

    /// The whole history of `epc`: a range read over its rows.
    pub fn epc_history(&self, epc: &Epc) -> Result<Option<EpcHistory>, StoreError> {
        tables::epc_history(
            &self.txn.open_table(EPC_STATE)?,
            &self.txn.open_table(EPC_ROWS)?,
            epc,
        )
    }

    /// A catalog item.
    pub fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StoreError> {
        catalog::item(&self.txn.open_table(CATALOG)?, gtin)
    }

    /// Number of catalog items.
    pub fn catalog_len(&self) -> Result<u64, StoreError> {
        Ok(self.txn.open_table(CATALOG)?.len()?)
    }

    /// The latest catalog version (the cursor covering every change).
    pub fn catalog_version(&self) -> Result<u64, StoreError> {
        read_u64(&self.txn.open_table(META)?, CATALOG_VERSION)
    }

    /// Hands every catalog item to `f` with the catalog version it was
    /// last stamped with, one at a time, in GTIN order, stopping at the
    /// first error `f` returns. Returns how many.
    pub fn try_visit_catalog<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(u64, CatalogItem) -> Result<(), E>,
    ) -> Result<u64, E> {
        let table = self.txn.open_table(CATALOG).map_err(StoreError::from)?;
        let mut n = 0;
        for row in table.iter().map_err(StoreError::from)? {
            let (_, v) = row.map_err(StoreError::from)?;
            let (version, item): (u64, CatalogItem) = versioned("catalog", v.value())?;
            f(version, item)?;
            n += 1;
        }
        Ok(n)
    }

    /// Catalog items changed after `cursor`, at most `limit`, and the next cursor.
    pub fn catalog_since(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<(Vec<CatalogItem>, u64), StoreError> {
        catalog::since(&self.txn, cursor, limit)
    }

    /// A metadata value.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        tables::get_meta(&self.txn.open_table(META)?, key)
    }
}

/// A table of a write transaction, opened on first use. redb looks up
/// every table a transaction opened when it commits, used or not (~9,000
/// instructions each, measured with callgrind), so a batch of sales should
/// open only the tables it touches.
pub struct LazyTable<'t, K: redb::Key + 'static, V: redb::Value + 'static> {
    txn: &'t redb::WriteTransaction,
    definition: TableDefinition<'static, K, V>,
    table: OnceCell<redb::Table<'t, K, V>>,
}

impl<K: redb::Key + 'static, V: redb::Value + 'static> std::fmt::Debug for LazyTable<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyTable")
            .field("table", &self.definition.to_string())
            .field("open", &self.table.get().is_some())
            .finish()
    }
}

impl<'t, K: redb::Key + 'static, V: redb::Value + 'static> LazyTable<'t, K, V> {
    /// `definition` in `txn`, not opened yet.
    pub fn new(
        txn: &'t redb::WriteTransaction,
        definition: TableDefinition<'static, K, V>,
    ) -> Self {
        Self {
            txn,
            definition,
            table: OnceCell::new(),
        }
    }

    /// The table, opened now if it was not.
    pub fn get(&self) -> Result<&redb::Table<'t, K, V>, StoreError> {
        if let Some(t) = self.table.get() {
            return Ok(t);
        }
        let opened = self.txn.open_table(self.definition)?;
        Ok(self.table.get_or_init(|| opened))
    }

    /// The table for writing, opened now if it was not.
    pub fn get_mut(&mut self) -> Result<&mut redb::Table<'t, K, V>, StoreError> {
        self.get()?;
        self.table
            .get_mut()
            .ok_or_else(|| StoreError::Storage(format!("table {} did not open", self.definition)))
    }
}
