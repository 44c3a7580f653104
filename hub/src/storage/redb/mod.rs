//! [`HubStorage`] on redb through `tally-store`: counters, events, EPCs and
//! catalog are `tally-store`'s tables; the hub's bookkeeping lives in
//! tables of its own, written in the same transaction. One batch's
//! transaction is a `RedbTxn` (`txn.rs`), the `HubTxn` the logic
//! runs on.
//!
//! The hub's own tables, one module each: `records.rs` (per store and
//! per id), `content.rs` (what a sync's content is checked against),
//! `routed.rs`, `transfers.rs`, `returns.rs`, `held.rs`, with their
//! indexes (`holdings.rs`, `tallies.rs`); `hub_exceptions` (sequence →
//! [`ExceptionRecord`], JSON) is here.

use std::ops::Bound;
use std::path::Path;

use serde::Serialize;
use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{Db, StoreError, WriteTxn};
use tally_sync::message::CatalogItem;
use tally_sync::{Gtin, ItemKey, LocationId, ReplicaId};

use self::records::{SALES, STORES};
use self::txn::RedbTxn;
use super::held::HeldEvent;
use super::logic;
use super::routed::{RoutedOrder, RoutingSettings};
use super::{
    AuditReport, ExceptionRecord, HubStorage, HubWrite, StorageError, StoreRecord, StoreStock,
};
pub use crate::storage::logic::sync::SyncSettings;

pub(in crate::storage) mod content;
pub(crate) mod export;
pub(in crate::storage) mod held;
pub(in crate::storage) mod holdings;
pub(in crate::storage) mod records;
pub(in crate::storage) mod returns;
pub(in crate::storage) mod routed;
pub(in crate::storage) mod tallies;
pub(in crate::storage) mod transfers;
pub(crate) mod txn;

const EXCEPTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("hub_exceptions");
/// The ids of the exceptions HQ acknowledged (its length is their count).
const EXCEPTIONS_ACKED: TableDefinition<u64, ()> = TableDefinition::new("hub_exceptions_acked");

/// The hub's storage on redb.
#[derive(Debug)]
pub struct RedbHub {
    db: Db,
    settings: SyncSettings,
    routing: RoutingSettings,
}

pub(in crate::storage) fn corrupt(table: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: e.to_string(),
    }
}

pub(in crate::storage) fn to_json<T: Serialize>(
    table: &'static str,
    v: &T,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| corrupt(table, e))
}

pub(in crate::storage) fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(table, e))
}

/// Appends `exceptions` to `hub_exceptions`, numbering them on from the
/// last.
///
/// (See also [`put_acknowledged`].)
pub(in crate::storage) fn append_exceptions(
    txn: &WriteTxn,
    exceptions: Vec<ExceptionRecord>,
) -> Result<(), StoreError> {
    if exceptions.is_empty() {
        return Ok(());
    }
    let mut table = txn.raw().open_table(EXCEPTIONS).map_err(redb_err)?;
    let first = match table.last().map_err(redb_err)? {
        Some((k, _)) => k.value() + 1,
        None => 1,
    };
    for (id, mut x) in (first..).zip(exceptions) {
        x.id = id;
        table
            .insert(id, to_json("hub_exceptions", &x)?.as_slice())
            .map_err(redb_err)?;
    }
    Ok(())
}

/// Exception `id`, if there is one.
pub(in crate::storage) fn exception(
    txn: &WriteTxn,
    id: u64,
) -> Result<Option<ExceptionRecord>, StoreError> {
    let table = txn.raw().open_table(EXCEPTIONS).map_err(redb_err)?;
    let found = table.get(id).map_err(redb_err)?;
    found
        .map(|v| from_json("hub_exceptions", v.value()))
        .transpose()
}

/// Stores `x` as acknowledged and counts it.
pub(in crate::storage) fn put_acknowledged(
    txn: &WriteTxn,
    x: &ExceptionRecord,
) -> Result<(), StoreError> {
    txn.raw()
        .open_table(EXCEPTIONS)
        .map_err(redb_err)?
        .insert(x.id, to_json("hub_exceptions", x)?.as_slice())
        .map_err(redb_err)?;
    txn.raw()
        .open_table(EXCEPTIONS_ACKED)
        .map_err(redb_err)?
        .insert(x.id, ())
        .map_err(redb_err)?;
    Ok(())
}

pub(in crate::storage) fn redb_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

impl RedbHub {
    /// Opens (creating) the hub database at `path`, exclusively.
    pub fn open(path: &Path, settings: SyncSettings) -> Result<Self, StorageError> {
        Self::with_tables(Db::open(path)?, settings)
    }

    /// Like [`RedbHub::open`], on a storage backend of the caller's (the
    /// power-loss tests' simulated disk), labelled `label` in messages.
    pub fn open_with_backend(
        backend: impl tally_store::redb::StorageBackend,
        label: &Path,
        settings: SyncSettings,
    ) -> Result<Self, StorageError> {
        Self::with_tables(Db::open_with_backend(backend, label, None)?, settings)
    }

    /// Creates the hub's own tables. Every commit records the allocator
    /// state (quick repair): a hub's file holds every event of the chain,
    /// and walking it after a crash would take minutes; one more
    /// `fdatasync` per batch of many requests costs little.
    fn with_tables(mut db: Db, settings: SyncSettings) -> Result<Self, StorageError> {
        db.set_quick_repair(true);
        let txn = db.begin_write()?;
        {
            let raw = txn.raw();
            raw.open_table(STORES).map_err(redb_err)?;
            raw.open_table(EXCEPTIONS).map_err(redb_err)?;
            raw.open_table(EXCEPTIONS_ACKED).map_err(redb_err)?;
            raw.open_table(records::ORDERS).map_err(redb_err)?;
            raw.open_table(SALES).map_err(redb_err)?;
            raw.open_table(records::GRANTS).map_err(redb_err)?;
            raw.open_table(records::DEMAND).map_err(redb_err)?;
            raw.open_table(content::EPC_STATE).map_err(redb_err)?;
            raw.open_table(content::EPC_ROWS).map_err(redb_err)?;
            raw.open_table(content::EXPLAINED).map_err(redb_err)?;
            raw.open_table(routed::ROUTED).map_err(redb_err)?;
            raw.open_table(routed::BY_STATUS).map_err(redb_err)?;
            raw.open_table(routed::CHANGES).map_err(redb_err)?;
            raw.open_table(routed::VERSIONS).map_err(redb_err)?;
            raw.open_table(routed::META).map_err(redb_err)?;
            raw.open_table(transfers::TRANSFERS).map_err(redb_err)?;
            raw.open_table(transfers::BY_STATUS).map_err(redb_err)?;
            raw.open_table(transfers::DUE).map_err(redb_err)?;
            raw.open_table(transfers::RECEIVED).map_err(redb_err)?;
            raw.open_table(tallies::COUNTS).map_err(redb_err)?;
            raw.open_table(holdings::HOLDINGS).map_err(redb_err)?;
            raw.open_table(returns::RETURNED).map_err(redb_err)?;
            raw.open_table(returns::CLAIMS).map_err(redb_err)?;
            raw.open_table(returns::CROSS).map_err(redb_err)?;
            raw.open_table(held::HELD).map_err(redb_err)?;
            raw.open_table(held::HELD_COUNT).map_err(redb_err)?;
        }
        txn.commit()?;
        content::migrate(&db)?;
        holdings::build(&db)?;
        tallies::build(&db)?;
        Ok(Self {
            db,
            settings,
            routing: RoutingSettings::default(),
        })
    }

    /// The hub with `routing` for orders that name no store.
    pub fn with_routing(mut self, routing: RoutingSettings) -> Self {
        self.routing = routing;
        self
    }

    /// The underlying database (tests read it directly).
    pub fn db(&self) -> &Db {
        &self.db
    }
}

impl HubStorage for RedbHub {
    fn write_batch(
        &self,
        batch: &mut dyn FnMut(&mut dyn HubWrite) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let txn = self.db.begin_write()?;
        let written = batch(&mut logic::BatchWrite {
            txn: RedbTxn::new(&txn),
            settings: &self.settings,
            routing: &self.routing,
        });
        if let Err(e) = written {
            // Dropping the transaction aborts it; say why.
            let _ = txn.abort();
            return Err(e);
        }
        // A failed commit (the disk's flush) may have left it on disk,
        // and redb takes it as the end of the open database: every later
        // write would fail. The writer stops the hub for a restart.
        txn.commit()
            .map_err(|e| StorageError::CommitFailed(e.to_string()))?;
        Ok(())
    }

    fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StorageError> {
        Ok(self.db.begin_read()?.catalog_item(gtin)?)
    }

    fn counter(&self, key: &ItemKey) -> Result<tally_sync::BoundedCounter, StorageError> {
        Ok(self.db.begin_read()?.counter(key)?)
    }

    fn stock(&self, gtin: Gtin) -> Result<Vec<(String, StoreStock)>, StorageError> {
        let txn = self.db.begin_read()?;
        let stores = txn.raw().open_table(STORES).map_err(redb_err)?;
        let hub = ReplicaId::hub();
        let mut out = Vec::new();
        for row in stores.iter().map_err(redb_err)? {
            let (k, _) = row.map_err(redb_err)?;
            let id = k.value().to_string();
            let (Ok(location), Ok(replica)) = (
                tally_sync::LocationId::new(&id),
                tally_sync::ReplicaId::new(&id),
            ) else {
                return Err(corrupt("hub_stores", format!("bad store id {id:?}")).into());
            };
            let c = txn.counter(&ItemKey::new(location, gtin))?;
            if c.is_empty() {
                continue;
            }
            out.push((
                id,
                StoreStock {
                    on_hand: c.value(),
                    store_rights: c.rights(&replica),
                    hub_rights: c.rights(&hub),
                },
            ));
        }
        Ok(out)
    }

    fn stores(&self) -> Result<Vec<StoreRecord>, StorageError> {
        let txn = self.db.begin_read()?;
        let stores = txn.raw().open_table(STORES).map_err(redb_err)?;
        let mut out = Vec::new();
        for row in stores.iter().map_err(redb_err)? {
            let (_, v) = row.map_err(redb_err)?;
            out.push(from_json("hub_stores", v.value())?);
        }
        Ok(out)
    }

    fn sales_per_minute(&self, since_minute: u64) -> Result<Vec<(String, u64, u64)>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.raw().open_table(SALES).map_err(redb_err)?;
        let mut out = Vec::new();
        // One store at a time: seek to its first key, read its minutes
        // from `since_minute`, then seek past its last possible key.
        let mut next = table
            .first()
            .map_err(redb_err)?
            .map(|(k, _)| k.value().0.to_string());
        while let Some(store) = next {
            let s = store.as_str();
            for row in table
                .range((s, since_minute)..=(s, u64::MAX))
                .map_err(redb_err)?
            {
                let (k, v) = row.map_err(redb_err)?;
                out.push((store.clone(), k.value().1, v.value()));
            }
            let after = (Bound::Excluded((s, u64::MAX)), Bound::Unbounded);
            next = match table.range::<(&str, u64)>(after).map_err(redb_err)?.next() {
                Some(row) => Some(row.map_err(redb_err)?.0.value().0.to_string()),
                None => None,
            };
        }
        Ok(out)
    }

    fn routed_orders(
        &self,
        status: tally_sync::fulfilment::Status,
        after: &str,
        limit: usize,
    ) -> Result<Vec<RoutedOrder>, StorageError> {
        Ok(routed::list(&self.db.begin_read()?, status, after, limit)?)
    }

    fn routed_order(&self, order_id: &str) -> Result<Option<RoutedOrder>, StorageError> {
        Ok(routed::read(&self.db.begin_read()?, order_id)?)
    }

    fn transfers(
        &self,
        status: tally_sync::transfer::TransferStatus,
        after: &str,
        limit: usize,
    ) -> Result<Vec<logic::transfers::HubTransfer>, StorageError> {
        Ok(transfers::list(
            &self.db.begin_read()?,
            status,
            after,
            limit,
        )?)
    }

    fn cross_returns(
        &self,
        limit: usize,
    ) -> Result<Vec<logic::returns::CrossReturn>, StorageError> {
        Ok(returns::cross_returns(&self.db.begin_read()?, limit)?)
    }

    fn transfer(&self, id: &str) -> Result<Option<logic::transfers::HubTransfer>, StorageError> {
        Ok(transfers::read(&self.db.begin_read()?, id)?)
    }

    fn transfers_received_recently(
        &self,
        limit: usize,
    ) -> Result<Vec<logic::transfers::HubTransfer>, StorageError> {
        Ok(transfers::recent(&self.db.begin_read()?, limit)?)
    }

    fn status_counts(&self) -> Result<super::StatusCounts, StorageError> {
        Ok(tallies::read(&self.db.begin_read()?)?)
    }

    fn allocations(
        &self,
        store: &LocationId,
        after: u64,
        limit: usize,
    ) -> Result<tally_sync::message::AllocationsPage, StorageError> {
        routed::allocations_page(&self.db.begin_read()?, store, after, limit)
    }

    fn held_events(&self, limit: usize) -> Result<Vec<HeldEvent>, StorageError> {
        Ok(held::list(&self.db.begin_read()?, limit)?)
    }

    fn exceptions(&self, since: u64, limit: usize) -> Result<Vec<ExceptionRecord>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.raw().open_table(EXCEPTIONS).map_err(redb_err)?;
        let mut out = Vec::new();
        for row in table
            .range(since.saturating_add(1)..)
            .map_err(redb_err)?
            .take(limit)
        {
            let (_, v) = row.map_err(redb_err)?;
            out.push(from_json("hub_exceptions", v.value())?);
        }
        Ok(out)
    }

    fn acknowledged_exceptions(&self) -> Result<u64, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.raw().open_table(EXCEPTIONS_ACKED).map_err(redb_err)?;
        Ok(tally_store::redb::ReadableTableMetadata::len(&table).map_err(redb_err)?)
    }

    fn last_exception_id(&self) -> Result<u64, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.raw().open_table(EXCEPTIONS).map_err(redb_err)?;
        let last = table
            .last()
            .map_err(redb_err)?
            .map_or(0, |(k, _)| k.value());
        Ok(last)
    }

    fn audit(&self) -> Result<AuditReport, StorageError> {
        let txn = self.db.begin_read()?;
        // Streamed: memory grows with items × stores, not with the
        // chain's whole history of events.
        let mut tally = tally_sync::audit::FlowTally::default();
        let events = txn.visit_events(|e| tally.add(&e))?;
        AuditReport::from_flows(
            events,
            tally,
            |key| Ok(txn.counter(key)?.value()),
            content::epcs_sold_twice(&txn)?,
            holdings::disagreeing(&txn)?,
        )
    }
}
