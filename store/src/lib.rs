//! `tally-store`: Tally's durable storage on redb, shared by the agent and
//! the hub (which never depend on each other).
//!
//! # Design constraints
//! - **Durable before acknowledged.** Every [`WriteTxn::commit`] uses redb's
//!   `Durability::Immediate`: it returns only after the data and the commit
//!   record are `fdatasync`ed. Callers answer clients after `commit` returns.
//!   A database file this crate creates has its directory fsynced too
//!   ([`sync_parent_dir`]): the file's own syncs do not make its name
//!   durable. Power cuts are tested on the simulated disk of `sim_disk`
//!   (feature `sim-disk`).
//!   Why redb and not sled: sled 0.34's flush uses `sync_file_range`, which
//!   does not flush the disk's write cache (sled #1452, #1351), so a power
//!   cut can lose what it called flushed; redb is ACID with a stable format.
//! - **One transaction, many tables.** [`WriteTxn::raw`] exposes the redb
//!   transaction so the agent and hub open their own tables (outbox, sales
//!   index, exceptions, …) and commit them atomically with the counters.
//! - **Same semantics as the model.** [`TxnReplica`] implements
//!   `tally_sync::exchange::ReplicaStore` with the version-stamp scheme of
//!   `tally_sync::Inventory`: every change to a counter stamps the next
//!   inventory version and adds its entry to a `(location, version)` change
//!   index, so `delta_since` reads only what changed. A property test runs
//!   both against the same operations.
//! - **Stale index entries are removed lazily.** Removing a counter's
//!   previous index entry at once would rewrite a random page of the index
//!   on every sale; instead `delta_since` skips entries whose version is not
//!   the counter's current one, and [`TxnReplica::prune_changes`] deletes
//!   them in version order (sequential pages) once a location's index has
//!   grown [`PRUNE_LAG`] versions past its pruning watermark, up to
//!   `PRUNE_LAG` versions behind the latest. An entry that goes stale below
//!   the watermark is removed at once. So the index holds at most the
//!   counters plus 2 × `PRUNE_LAG` stale entries, and hot items cost no
//!   random index writes. Measured: 2.5× the agent's committed sales/s at
//!   64 clients (docs/benchmarks.md).
//! - **Exclusive.** A database file is opened by one process at a time;
//!   a second gets [`StoreError::AlreadyOpen`].
//! - **Bad bytes are errors.** Records that fail to decode are
//!   [`StoreError::Corrupt`], never a panic.

pub mod holes;
pub mod prewrite;
#[cfg(any(test, feature = "sim-disk"))]
pub mod sim_disk;

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tally_sync::codec;
use tally_sync::epcs::{DoubleSale, EpcHistory, EpcRecord};
use tally_sync::exchange::ReplicaStore;
use tally_sync::journal::Inserted;
use tally_sync::message::CatalogItem;
use tally_sync::{
    BoundedCounter, Delta, DeltaEntry, Epc, Event, EventId, Gtin, ItemKey, LocationId,
};

pub use prewrite::{PrewriteConfig, PrewriteStats, PrewrittenFile};
pub use redb;

/// Counters: (location, gtin) → version (8 bytes LE) ‖ postcard counter.
const COUNTERS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("counters");
/// Change index: (location, version) → gtin.
const CHANGES: TableDefinition<(&str, u64), u64> = TableDefinition::new("counter_changes");
/// Events: UUID as u128 → postcard event.
const EVENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("events");
/// Sold EPCs: EPC bytes → postcard history.
const EPCS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("epcs");
/// Catalog: gtin → version (8 bytes LE) ‖ postcard item.
const CATALOG: TableDefinition<u64, &[u8]> = TableDefinition::new("catalog");
/// Catalog change index: version → gtin.
const CATALOG_CHANGES: TableDefinition<u64, u64> = TableDefinition::new("catalog_changes");
/// Metadata: key → bytes.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const INVENTORY_VERSION: &str = "inventory_version";
/// Per location: change-index entries at or below this version have been
/// pruned (`pruned/<location>`).
const PRUNED_PREFIX: &str = "pruned/";
/// How far behind the latest version stale change-index entries are left
/// for a pruning pass (see the module docs).
pub const PRUNE_LAG: u64 = 4096;
const CATALOG_VERSION: &str = "catalog_version";

/// A storage failure, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database. Stop it first.
    #[error("database {0} is already open in another process (is another tally process running with this data dir?)")]
    AlreadyOpen(PathBuf),
    /// The disk or redb failed; the transaction did not commit.
    #[error("storage failure: {0}")]
    Storage(String),
    /// A stored record could not be decoded: the file is damaged or was
    /// written by an incompatible version.
    #[error("corrupt record in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What failed.
        detail: String,
    },
}

macro_rules! storage_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(e.to_string())
            }
        }
    )*};
}
storage_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn corrupt(table: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: e.to_string(),
    }
}

fn encode<T: Serialize>(table: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    codec::to_bytes(value).map_err(|e| corrupt(table, e))
}

fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    codec::from_bytes(bytes).map_err(|e| corrupt(table, e))
}

/// Splits a `version ‖ record` value.
fn versioned<T: DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<(u64, T), StoreError> {
    let (v, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt(table, "value shorter than its version stamp"))?;
    Ok((u64::from_le_bytes(*v), decode(table, rest)?))
}

fn with_version<T: Serialize>(
    table: &'static str,
    version: u64,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    let mut out = version.to_le_bytes().to_vec();
    out.extend_from_slice(&encode(table, value)?);
    Ok(out)
}

/// Makes the entry of `path` in its directory durable (fsync of the
/// directory), after the file or directory was created.
pub fn sync_parent_dir(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::Storage(format!("syncing the directory {}: {e}", dir.display())))
}

fn builder(cache_bytes: Option<usize>) -> redb::Builder {
    let mut builder = redb::Builder::new();
    if let Some(bytes) = cache_bytes {
        builder.set_cache_size(bytes);
    }
    builder
}

/// An open database.
#[derive(Debug)]
pub struct Db {
    db: redb::Database,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) the database at `path`, exclusively, with
    /// redb's default page cache (up to 1 GiB: a server's choice).
    pub fn open(path: impl AsRef<Path>) -> Result<Db, StoreError> {
        Self::open_with_cache(path, None)
    }

    /// Like [`Db::open`], with the page cache bounded to `cache_bytes`
    /// (`None`: redb's default). The cache holds pages read and pages
    /// written since the last commit; it is what grows an agent's memory
    /// as its journal grows, so a store box bounds it.
    pub fn open_with_cache(
        path: impl AsRef<Path>,
        cache_bytes: Option<usize>,
    ) -> Result<Db, StoreError> {
        let path = path.as_ref().to_path_buf();
        let new_file = !path.exists();
        let backend = PrewrittenFile::open(&path, PrewriteConfig::default())?;
        let db = match builder(cache_bytes).create_with_backend(backend) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::AlreadyOpen(path))
            }
            Err(e) => return Err(e.into()),
        };
        if new_file {
            // The file's own fdatasyncs do not make its name durable: a
            // power cut could otherwise lose a whole new database.
            sync_parent_dir(&path)?;
        }
        Self::with_tables(db, path)
    }

    /// Like [`Db::open_with_cache`], on a storage backend of the caller's
    /// (the power-loss tests' simulated disk); `label` stands in for the
    /// path in [`Db::path`] and messages.
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        label: impl Into<PathBuf>,
        cache_bytes: Option<usize>,
    ) -> Result<Db, StoreError> {
        let db = builder(cache_bytes).create_with_backend(backend)?;
        Self::with_tables(db, label.into())
    }

    /// Creates every table up front, so read transactions never miss one.
    fn with_tables(db: redb::Database, path: PathBuf) -> Result<Db, StoreError> {
        let txn = db.begin_write()?;
        {
            txn.open_table(COUNTERS)?;
            txn.open_table(CHANGES)?;
            txn.open_table(EVENTS)?;
            txn.open_table(EPCS)?;
            txn.open_table(CATALOG)?;
            txn.open_table(CATALOG_CHANGES)?;
            txn.open_table(META)?;
        }
        txn.commit()?;
        Ok(Db { db, path })
    }

    /// The file this database lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the (single) write transaction; waits while another is open.
    pub fn begin_write(&self) -> Result<WriteTxn, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        Ok(WriteTxn { txn })
    }

    /// Starts a read transaction: a consistent snapshot.
    pub fn begin_read(&self) -> Result<ReadTxn, StoreError> {
        Ok(ReadTxn {
            txn: self.db.begin_read()?,
        })
    }

    /// The underlying redb database (for tables of the caller's own).
    pub fn raw(&self) -> &redb::Database {
        &self.db
    }
}

/// A write transaction. Nothing is visible or durable until [`Self::commit`].
#[allow(missing_debug_implementations)]
pub struct WriteTxn {
    txn: redb::WriteTransaction,
}

impl WriteTxn {
    /// The redb transaction, to open the caller's own tables in it.
    pub fn raw(&self) -> &redb::WriteTransaction {
        &self.txn
    }

    /// Counters, events and EPCs in this transaction.
    pub fn replica(&self) -> Result<TxnReplica<'_>, StoreError> {
        Ok(TxnReplica {
            counters: LazyTable::new(&self.txn, COUNTERS),
            changes: LazyTable::new(&self.txn, CHANGES),
            events: LazyTable::new(&self.txn, EVENTS),
            epcs: LazyTable::new(&self.txn, EPCS),
            catalog: LazyTable::new(&self.txn, CATALOG),
            meta: LazyTable::new(&self.txn, META),
            version: std::cell::Cell::new(None),
            pruned: std::collections::HashMap::new(),
        })
    }

    /// Stores a catalog item, stamping a new catalog version if it changed.
    /// Returns whether it changed.
    pub fn put_catalog_item(&self, item: &CatalogItem) -> Result<bool, StoreError> {
        let mut catalog = self.txn.open_table(CATALOG)?;
        let mut changes = self.txn.open_table(CATALOG_CHANGES)?;
        let mut meta = self.txn.open_table(META)?;
        let key = item.gtin.as_u64();
        let old: Option<(u64, CatalogItem)> = match catalog.get(key)? {
            Some(v) => Some(versioned("catalog", v.value())?),
            None => None,
        };
        if old.as_ref().is_some_and(|(_, o)| o == item) {
            return Ok(false);
        }
        if let Some((v, _)) = old {
            changes.remove(v)?;
        }
        let version = read_u64(&meta, CATALOG_VERSION)? + 1;
        meta.insert(CATALOG_VERSION, version.to_le_bytes().as_slice())?;
        changes.insert(version, key)?;
        catalog.insert(key, with_version("catalog", version, item)?.as_slice())?;
        Ok(true)
    }

    /// A catalog item.
    pub fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StoreError> {
        catalog_item(&self.txn.open_table(CATALOG)?, gtin)
    }

    /// Catalog items changed after `cursor`, at most `limit`, and the cursor
    /// to ask from next time.
    pub fn catalog_since(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<(Vec<CatalogItem>, u64), StoreError> {
        catalog_since(
            &self.txn.open_table(CATALOG)?,
            &self.txn.open_table(CATALOG_CHANGES)?,
            &self.txn.open_table(META)?,
            cursor,
            limit,
        )
    }

    /// A metadata value.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        get_meta(&self.txn.open_table(META)?, key)
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

/// What inserting `new` means when `existing` has its id already.
fn already_stored(existing: &Event, new: &Event) -> Inserted {
    if existing == new {
        Inserted::Duplicate
    } else {
        Inserted::Conflict
    }
}

/// A table of a write transaction, opened on first use. redb looks up
/// every table a transaction opened when it commits, used or not (~9,000
/// instructions each, measured with callgrind), so a batch of sales should
/// open only the tables it touches.
pub struct LazyTable<'t, K: redb::Key + 'static, V: redb::Value + 'static> {
    txn: &'t redb::WriteTransaction,
    definition: TableDefinition<'static, K, V>,
    table: std::cell::OnceCell<redb::Table<'t, K, V>>,
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
            table: std::cell::OnceCell::new(),
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

/// The model's storage (`ReplicaStore`) inside one write transaction. Its
/// tables are opened on first use ([`LazyTable`]).
#[allow(missing_debug_implementations)]
pub struct TxnReplica<'t> {
    counters: LazyTable<'t, (&'static str, u64), &'static [u8]>,
    changes: LazyTable<'t, (&'static str, u64), u64>,
    events: LazyTable<'t, u128, &'static [u8]>,
    epcs: LazyTable<'t, &'static [u8], &'static [u8]>,
    catalog: LazyTable<'t, u64, &'static [u8]>,
    meta: LazyTable<'t, &'static str, &'static [u8]>,
    /// The inventory version, once read.
    version: std::cell::Cell<Option<u64>>,
    /// Pruning watermarks read so far, by location.
    pruned: std::collections::HashMap<String, u64>,
}

impl TxnReplica<'_> {
    fn pruned_upto(&mut self, location: &str) -> Result<u64, StoreError> {
        if let Some(&v) = self.pruned.get(location) {
            return Ok(v);
        }
        let v = read_u64(self.meta.get()?, &format!("{PRUNED_PREFIX}{location}"))?;
        self.pruned.insert(location.to_string(), v);
        Ok(v)
    }

    fn version(&self) -> Result<u64, StoreError> {
        if let Some(v) = self.version.get() {
            return Ok(v);
        }
        let v = read_u64(self.meta.get()?, INVENTORY_VERSION)?;
        self.version.set(Some(v));
        Ok(v)
    }

    /// Deletes the stale change-index entries of `location` (entries of
    /// counters changed again since) up to version `upto`, scanning only
    /// what was not scanned before; returns how many it deleted. Never
    /// changes what `delta_since` returns, for any cursor.
    pub fn prune_changes(&mut self, location: &LocationId, upto: u64) -> Result<u64, StoreError> {
        let loc = location.as_str();
        let from = self.pruned_upto(loc)?;
        let upto = upto.min(self.version()?);
        if upto <= from {
            return Ok(0);
        }
        let mut stale = Vec::new();
        for row in self.changes.get()?.range((loc, from + 1)..=(loc, upto))? {
            let (k, gtin) = row?;
            let version = k.value().1;
            let gtin = Gtin::from_u64(gtin.value()).map_err(|e| corrupt("counter_changes", e))?;
            let key = ItemKey::new(location.clone(), gtin);
            if counter(self.counters.get()?, &key)?.map(|(v, _)| v) != Some(version) {
                stale.push(version);
            }
        }
        let changes = self.changes.get_mut()?;
        for v in &stale {
            changes.remove((loc, *v))?;
        }
        self.meta.get_mut()?.insert(
            format!("{PRUNED_PREFIX}{loc}").as_str(),
            upto.to_le_bytes().as_slice(),
        )?;
        self.pruned.insert(loc.to_string(), upto);
        Ok(stale.len() as u64)
    }

    /// The latest inventory version (a cursor covering every change).
    pub fn inventory_version(&self) -> Result<u64, StoreError> {
        self.version()
    }

    /// The stored event with `id`.
    pub fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        event(self.events.get()?, id)
    }

    /// The history of `epc`.
    pub fn epc_history(&self, epc: &Epc) -> Result<Option<EpcHistory>, StoreError> {
        epc_history(self.epcs.get()?, epc)
    }

    /// A catalog item.
    pub fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StoreError> {
        catalog_item(self.catalog.get()?, gtin)
    }

    /// Like [`ReplicaStore::insert_event`], for a caller that has looked
    /// the id up already in this transaction or has just generated it: one
    /// descent of the event tree instead of two (a lookup costs as much as
    /// the insert). Should the id be there after all, the stored record is
    /// put back, never replaced, and the answer is `Duplicate` or
    /// `Conflict` as from `insert_event`.
    pub fn insert_new_event(&mut self, e: &Event) -> Result<Inserted, StoreError> {
        let bytes = encode("events", e)?;
        let events = self.events.get_mut()?;
        let Some(old) = events
            .insert(e.id.0.as_u128(), bytes.as_slice())?
            .map(|v| v.value().to_vec())
        else {
            return Ok(Inserted::New);
        };
        events.insert(e.id.0.as_u128(), old.as_slice())?;
        Ok(already_stored(&decode("events", &old)?, e))
    }

    fn update_epc(
        &mut self,
        epc: &Epc,
        f: impl FnOnce(&mut EpcHistory),
    ) -> Result<EpcHistory, StoreError> {
        let mut h = self.epc_history(epc)?.unwrap_or_default();
        f(&mut h);
        self.epcs
            .get_mut()?
            .insert(epc.as_bytes(), encode("epcs", &h)?.as_slice())?;
        Ok(h)
    }
}

impl ReplicaStore for TxnReplica<'_> {
    type Error = StoreError;

    fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, StoreError> {
        Ok(counter(self.counters.get()?, key)?
            .map(|(_, c)| c)
            .unwrap_or_default())
    }

    fn put_counter(&mut self, key: &ItemKey, c: BoundedCounter) -> Result<(), StoreError> {
        let loc = key.location.as_str();
        let old = counter(self.counters.get()?, key)?;
        match &old {
            Some((_, o)) if *o == c => return Ok(()),
            None if c.is_empty() => return Ok(()),
            _ => {}
        }
        if let Some((v, _)) = old {
            // Below the watermark no pruning scan will pass again.
            if v <= self.pruned_upto(loc)? {
                self.changes.get_mut()?.remove((loc, v))?;
            }
        }
        let version = self.version()? + 1;
        self.version.set(Some(version));
        self.meta
            .get_mut()?
            .insert(INVENTORY_VERSION, version.to_le_bytes().as_slice())?;
        self.changes
            .get_mut()?
            .insert((loc, version), key.gtin.as_u64())?;
        self.counters.get_mut()?.insert(
            (loc, key.gtin.as_u64()),
            with_version("counters", version, &c)?.as_slice(),
        )?;
        if version.saturating_sub(self.pruned_upto(loc)?) > 2 * PRUNE_LAG {
            self.prune_changes(&key.location, version - PRUNE_LAG)?;
        }
        Ok(())
    }

    fn delta_since(
        &self,
        location: &LocationId,
        cursor: u64,
        limit: usize,
    ) -> Result<(Delta, u64), StoreError> {
        delta_since(
            self.counters.get()?,
            self.changes.get()?,
            self.version()?,
            location,
            cursor,
            limit,
        )
    }

    fn insert_event(&mut self, e: &Event) -> Result<Inserted, StoreError> {
        if let Some(existing) = self.event(&e.id)? {
            return Ok(already_stored(&existing, e));
        }
        self.events
            .get_mut()?
            .insert(e.id.0.as_u128(), encode("events", e)?.as_slice())?;
        Ok(Inserted::New)
    }

    fn record_epc_sale(
        &mut self,
        epc: &Epc,
        record: EpcRecord,
    ) -> Result<Option<DoubleSale>, StoreError> {
        let before = self.epc_history(epc)?.is_some_and(|h| h.is_double_sold());
        let h = self.update_epc(epc, |h| {
            h.sales.insert(record);
        })?;
        Ok((!before && h.is_double_sold()).then(|| DoubleSale {
            epc: epc.clone(),
            sales: h.sales.iter().cloned().collect(),
        }))
    }

    fn record_epc_return(&mut self, epc: &Epc, record: EpcRecord) -> Result<(), StoreError> {
        self.update_epc(epc, |h| {
            h.returns.insert(record);
        })?;
        Ok(())
    }
}

/// A read transaction: a consistent snapshot of everything.
#[allow(missing_debug_implementations)]
pub struct ReadTxn {
    txn: redb::ReadTransaction,
}

impl ReadTxn {
    /// The redb transaction, to read the caller's own tables.
    pub fn raw(&self) -> &redb::ReadTransaction {
        &self.txn
    }

    /// The counter for `key` (empty if never touched).
    pub fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, StoreError> {
        Ok(counter(&self.txn.open_table(COUNTERS)?, key)?
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
        delta_since(
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
        event(&self.txn.open_table(EVENTS)?, id)
    }

    /// Number of stored events.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
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
        let table = self.txn.open_table(EVENTS)?;
        let mut n = 0;
        for row in table.iter()? {
            let (_, v) = row?;
            f(decode("events", v.value())?);
            n += 1;
        }
        Ok(n)
    }

    /// The history of `epc`.
    pub fn epc_history(&self, epc: &Epc) -> Result<Option<EpcHistory>, StoreError> {
        epc_history(&self.txn.open_table(EPCS)?, epc)
    }

    /// A catalog item.
    pub fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StoreError> {
        catalog_item(&self.txn.open_table(CATALOG)?, gtin)
    }

    /// Number of catalog items.
    pub fn catalog_len(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        Ok(self.txn.open_table(CATALOG)?.len()?)
    }

    /// Catalog items changed after `cursor`, at most `limit`, and the next cursor.
    pub fn catalog_since(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<(Vec<CatalogItem>, u64), StoreError> {
        catalog_since(
            &self.txn.open_table(CATALOG)?,
            &self.txn.open_table(CATALOG_CHANGES)?,
            &self.txn.open_table(META)?,
            cursor,
            limit,
        )
    }

    /// A metadata value.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        get_meta(&self.txn.open_table(META)?, key)
    }
}

// Shared readers, generic over read-only and writable tables.

fn read_u64(
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

fn get_meta(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(meta.get(key)?.map(|v| v.value().to_vec()))
}

fn counter(
    table: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    key: &ItemKey,
) -> Result<Option<(u64, BoundedCounter)>, StoreError> {
    match table.get((key.location.as_str(), key.gtin.as_u64()))? {
        Some(v) => Ok(Some(versioned("counters", v.value())?)),
        None => Ok(None),
    }
}

fn delta_since(
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

fn event(
    table: &impl ReadableTable<u128, &'static [u8]>,
    id: &EventId,
) -> Result<Option<Event>, StoreError> {
    match table.get(id.0.as_u128())? {
        Some(v) => Ok(Some(decode("events", v.value())?)),
        None => Ok(None),
    }
}

fn epc_history(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    epc: &Epc,
) -> Result<Option<EpcHistory>, StoreError> {
    match table.get(epc.as_bytes())? {
        Some(v) => Ok(Some(decode("epcs", v.value())?)),
        None => Ok(None),
    }
}

fn catalog_item(
    table: &impl ReadableTable<u64, &'static [u8]>,
    gtin: Gtin,
) -> Result<Option<CatalogItem>, StoreError> {
    match table.get(gtin.as_u64())? {
        Some(v) => Ok(Some(versioned::<CatalogItem>("catalog", v.value())?.1)),
        None => Ok(None),
    }
}

fn catalog_since(
    catalog: &impl ReadableTable<u64, &'static [u8]>,
    changes: &impl ReadableTable<u64, u64>,
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    cursor: u64,
    limit: usize,
) -> Result<(Vec<CatalogItem>, u64), StoreError> {
    let mut next = read_u64(meta, CATALOG_VERSION)?.max(cursor);
    let mut out = Vec::new();
    for row in changes.range(cursor.saturating_add(1)..)? {
        let (v, gtin) = row?;
        if out.len() == limit {
            next = v.value() - 1;
            break;
        }
        let gtin = Gtin::from_u64(gtin.value()).map_err(|e| corrupt("catalog_changes", e))?;
        if let Some(item) = catalog_item(catalog, gtin)? {
            out.push(item);
        }
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_new_database_file_is_opened_and_its_directory_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.redb");
        let db = Db::open(&path).unwrap();
        assert_eq!(db.path(), path);
        assert!(sync_parent_dir(&path).is_ok());
        let err = sync_parent_dir(&dir.path().join("missing/new.redb")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn an_event_inserted_as_new_is_written_once_and_never_replaced() {
        use tally_sync::{EventKind, Line, ReplicaId};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("e.redb")).unwrap();
        let event = |units: u64| Event {
            id: EventId::v7(7, [7; 10]),
            location: LocationId::new("s1").unwrap(),
            replica: ReplicaId::new("s1").unwrap(),
            at_ms: 1,
            kind: EventKind::Receipt,
            lines: vec![Line {
                gtin: Gtin::from_body(7).unwrap(),
                qty: units,
                unit_price_minor: 0,
                epc: None,
            }],
        };
        let txn = db.begin_write().unwrap();
        {
            let mut r = txn.replica().unwrap();
            assert_eq!(r.insert_new_event(&event(1)).unwrap(), Inserted::New);
            assert_eq!(r.insert_new_event(&event(1)).unwrap(), Inserted::Duplicate);
            assert_eq!(r.insert_new_event(&event(2)).unwrap(), Inserted::Conflict);
            // The same answers as the looking-up insert.
            assert_eq!(r.insert_event(&event(1)).unwrap(), Inserted::Duplicate);
            assert_eq!(r.insert_event(&event(2)).unwrap(), Inserted::Conflict);
        }
        txn.commit().unwrap();
        let stored = db.begin_read().unwrap().event(&event(1).id).unwrap();
        assert_eq!(stored, Some(event(1)), "the first record stays");
    }
}
