//! Opening the agent's database and reading it: [`AgentDb`] (open with
//! the store id checked or recorded, the journal replayed behind the
//! counters after a crash, the committed batches' held-back counters
//! published to readers) and the snapshot reads the API, devices and sync
//! client use.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use tally_agent_api::answers::Stock;
use tally_service::files::{self, FileError};
use tally_store::redb::ReadableTable;
use tally_store::{Db, ReadTxn, StoreError, WriteTxn};
use tally_sync::cycle_count::{self, CountReport, CountSession, Scope, MAX_LISTED_EPCS};
use tally_sync::epcs::{EpcHistory, EpcSummary};
use tally_sync::exchange::{Identity, ReplicaStore, SyncCursors};
use tally_sync::ledger::{replay_counters, touched_gtins};
use tally_sync::message::CatalogItem;
use tally_sync::{BoundedCounter, Epc, Event, EventId, Gtin, ItemKey, LocationId, ReplicaId};

use super::tables::{
    outbox_seq, read_cursors, read_demand, returned_from, storage, AGENT_META,
    COUNTERS_FLUSHED_UPTO, DEAD_LETTER, DEMAND, EVENT_ID_SECRET, LOST_SALES, RETURNED, STORE_ID,
};
use super::BatchCounters;
use crate::event_ids::{EventIds, SECRET_LEN};
use crate::outbox::{self, OUTBOX};

/// The database file inside the data directory.
pub const DB_FILE: &str = "agent.redb";
/// redb's page cache for the agent (its default is 1 GiB): the pages a
/// sale touches are the end of the journal and outbox and the counters
/// being flushed, a few MiB; the rest is reads of old events.
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Why the agent's database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory could not be created, or it or the database
    /// could not be made private.
    #[error("creating data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// First run without a store id.
    #[error("{0} holds no store yet: give the store id (--store-id or store_id in the config file) on the first run")]
    NoStoreId(PathBuf),
    /// The database belongs to another store.
    #[error("{path} belongs to store {stored:?}, not {configured:?}; use the right data directory or drop --store-id")]
    StoreIdMismatch {
        /// The database.
        path: PathBuf,
        /// What it holds.
        stored: String,
        /// What was configured.
        configured: String,
    },
    /// The stored store id is not a valid id.
    #[error("{path}: stored store id is invalid: {detail}")]
    BadStoredId {
        /// The database.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The stored secret of derived event ids is not [`SECRET_LEN`]
    /// bytes: the database was altered or is damaged.
    #[error("{path}: the stored event id secret is {found} bytes, not {SECRET_LEN}")]
    BadSecret {
        /// The database.
        path: PathBuf,
        /// Its length.
        found: usize,
    },
    /// Storage failed (including [`StoreError::AlreadyOpen`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counters changed by committed events but not yet written to the
/// counters table (see [`crate::store`]'s design constraints).
pub type Unflushed = HashMap<ItemKey, BoundedCounter>;

/// The agent's open database.
#[derive(Debug)]
pub struct AgentDb {
    db: Db,
    who: Identity,
    event_ids: EventIds,
    /// Only the committer writes it, after a commit and before answering.
    unflushed: RwLock<Unflushed>,
}

/// An event and the units of each item that returns took back from it.
pub type SaleWithReturns = (Event, BTreeMap<Gtin, u64>);
impl AgentDb {
    /// Runs `read` (a snapshot read) on the blocking pool, so no async
    /// worker waits on the disk; a panic in it is a storage failure. The
    /// API's handlers and the device tasks read through it.
    pub async fn read_blocking<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        read: impl FnOnce(&AgentDb) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || read(&db))
            .await
            .map_err(|e| StoreError::Storage(format!("a read panicked: {e}")))?
    }

    /// Opens (creating if needed) the database in `data_dir`, exclusively,
    /// and checks or records the store id.
    pub fn open(data_dir: &Path, store_id: Option<&ReplicaId>) -> Result<Self, OpenError> {
        let new_dir = !data_dir.exists();
        let private = |e: FileError| match e {
            FileError::Io { path, source } => OpenError::DataDir { path, source },
            FileError::Exists(path) => OpenError::DataDir {
                path,
                source: std::io::ErrorKind::AlreadyExists.into(),
            },
        };
        // The store's sales and its identity: the owner's only (0700, and
        // the database 0600, also when made before this rule).
        files::create_private_dir(data_dir).map_err(private)?;
        if new_dir {
            tally_store::sync_parent_dir(data_dir)?;
        }
        let path = data_dir.join(DB_FILE);
        let db = Db::open_with_cache(&path, Some(CACHE_BYTES))?;
        files::make_private(&path).map_err(private)?;
        Self::init(db, store_id)
    }

    /// Like [`AgentDb::open`], on a storage backend of the caller's (the
    /// power-loss tests' simulated disk), labelled `label` in messages.
    pub fn open_with_backend(
        backend: impl tally_store::redb::StorageBackend,
        label: &Path,
        store_id: Option<&ReplicaId>,
    ) -> Result<Self, OpenError> {
        Self::init(
            Db::open_with_backend(backend, label, Some(CACHE_BYTES))?,
            store_id,
        )
    }

    /// Checks or records the store id, creates the agent's tables and
    /// replays the journal behind the counters.
    fn init(db: Db, store_id: Option<&ReplicaId>) -> Result<Self, OpenError> {
        let path = db.path().to_path_buf();
        let txn = db.begin_write()?;
        let stored = txn.get_meta(STORE_ID)?;
        let id = match (stored, store_id) {
            (None, None) => return Err(OpenError::NoStoreId(path)),
            (None, Some(id)) => {
                txn.put_meta(STORE_ID, id.as_str().as_bytes())?;
                id.clone()
            }
            (Some(bytes), configured) => {
                let stored = String::from_utf8_lossy(&bytes).into_owned();
                let id = ReplicaId::new(&stored).map_err(|e| OpenError::BadStoredId {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
                if let Some(c) = configured {
                    if *c != id {
                        return Err(OpenError::StoreIdMismatch {
                            path,
                            stored,
                            configured: c.to_string(),
                        });
                    }
                }
                id
            }
        };
        let secret = match txn.get_meta(EVENT_ID_SECRET)? {
            Some(stored) => <[u8; SECRET_LEN]>::try_from(stored.as_slice()).map_err(|_| {
                OpenError::BadSecret {
                    path: path.clone(),
                    found: stored.len(),
                }
            })?,
            None => {
                // Made once, in the transaction that opens the store's
                // database for the first time with this version.
                let secret: [u8; SECRET_LEN] = rand::random();
                txn.put_meta(EVENT_ID_SECRET, &secret)?;
                secret
            }
        };
        {
            let raw = txn.raw();
            raw.open_table(OUTBOX).map_err(storage)?;
            raw.open_table(DEMAND).map_err(storage)?;
            raw.open_table(AGENT_META).map_err(storage)?;
            raw.open_table(DEAD_LETTER).map_err(storage)?;
            raw.open_table(RETURNED).map_err(storage)?;
            raw.open_table(LOST_SALES).map_err(storage)?;
            raw.open_table(super::orders::ORDERS).map_err(storage)?;
            raw.open_table(super::orders::BY_STATUS).map_err(storage)?;
            raw.open_table(super::transfers::TRANSFERS)
                .map_err(storage)?;
            raw.open_table(super::transfers::BY_STATUS)
                .map_err(storage)?;
            raw.open_table(super::transfers::BY_EPC).map_err(storage)?;
            raw.open_table(super::counts::SESSIONS).map_err(storage)?;
            raw.open_table(super::counts::BY_STATUS).map_err(storage)?;
            raw.open_table(super::counts::TAGS).map_err(storage)?;
            raw.open_table(super::counts::ITEMS).map_err(storage)?;
            raw.open_table(super::counts::TAGS_HERE).map_err(storage)?;
        }
        let migrated = outbox::migrate(txn.raw())?;
        if migrated > 0 {
            tracing::info!(
                entries = migrated,
                "Outbox moved to the run layout (one row per batch)."
            );
        }
        let replayed = replay_unflushed(&txn)?;
        txn.commit()?;
        if replayed > 0 {
            tracing::info!(
                events = replayed,
                "Counters recovered from the journal (written behind it)."
            );
        }
        let location = LocationId::new(id.as_str()).map_err(|e| OpenError::BadStoredId {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let indexed = index_tags_here(&db, &location)?;
        if indexed > 0 {
            tracing::info!(
                events = indexed,
                "Tags held here indexed from the journal (first start with RFID counts)."
            );
        }
        Ok(Self {
            db,
            event_ids: EventIds::new(id.clone(), secret),
            who: Identity {
                replica: id,
                location,
            },
            unflushed: RwLock::new(Unflushed::new()),
        })
    }

    /// Counters changed since the last flush.
    pub fn unflushed_len(&self) -> usize {
        self.read_unflushed().len()
    }

    /// The unflushed counters, locked for reading (a poisoned lock still
    /// holds whole entries: the committer only inserts and clears).
    pub(super) fn read_unflushed(&self) -> RwLockReadGuard<'_, Unflushed> {
        self.unflushed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a committed batch's counters visible to readers (the
    /// committer, after the commit returned and before answering).
    pub fn publish(&self, batch: BatchCounters) {
        let mut unflushed = self
            .unflushed
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if batch.flushed {
            unflushed.clear();
        }
        unflushed.extend(batch.changed);
    }

    /// This store's identity.
    pub fn who(&self) -> &Identity {
        &self.who
    }

    /// The ids of events this store derives from what it saw, keyed by
    /// its database's secret.
    pub fn event_ids(&self) -> &EventIds {
        &self.event_ids
    }

    /// Starts the write transaction (the committer's alone).
    pub fn begin_write(&self) -> Result<WriteTxn, StoreError> {
        self.db.begin_write()
    }

    pub(super) fn read(&self) -> Result<ReadTxn, StoreError> {
        self.db.begin_read()
    }

    /// The stock of one item, as of the last commit.
    pub fn stock(&self, gtin: Gtin) -> Result<Stock, StoreError> {
        Ok(Stock::of(gtin, &self.counter(gtin)?, &self.who.replica))
    }

    /// The variance report of count session `id`, from one snapshot with
    /// the counters held back overlaid (`tally_sync::cycle_count`): what
    /// the records expect per item, the tags counted (less those the chain
    /// records as sold: `sold_not_stock`), and the tags of the items held
    /// here that were not read. Reads the session's tags and the scope's
    /// tags held here once each.
    pub fn count_report(&self, id: &str) -> Result<Option<CountReport>, StoreError> {
        let here = &self.who.location;
        let unflushed = self.read_unflushed();
        let overlay: HashMap<Gtin, u64> = unflushed
            .iter()
            .filter(|(k, _)| k.location == *here)
            .map(|(k, c)| (k.gtin, c.value()))
            .collect();
        let txn = self.read()?;
        drop(unflushed);
        let Some(session) = super::counts::read(&txn, id)? else {
            return Ok(None);
        };
        let mut counted = super::counts::items(&txn, id)?;
        let on_hand = |gtin: Gtin| -> Result<u64, StoreError> {
            match overlay.get(&gtin) {
                Some(&n) => Ok(n),
                None => Ok(txn.counter(&ItemKey::new(here.clone(), gtin))?.value()),
            }
        };
        let mut expected = BTreeMap::new();
        match session.scope() {
            Scope::Listed(list) => {
                for &g in list {
                    expected.insert(g, on_hand(g)?);
                }
            }
            Scope::Seen => {
                for &g in counted.keys() {
                    expected.insert(g, on_hand(g)?);
                }
            }
            Scope::Store => {
                txn.visit_counters(|key, c| {
                    if key.location == *here {
                        expected.insert(key.gtin, c.value());
                    }
                })?;
                expected.extend(overlay.iter().map(|(g, n)| (*g, *n)));
            }
        }
        let mut sold_but_present = Vec::new();
        let mut sold_but_present_total = 0u64;
        super::counts::visit_tags(&txn, id, |epc, gtin| {
            if txn.epc_summary(&epc)?.is_some_and(|s| s.is_sold()) {
                sold_but_present_total += 1;
                if let Some(n) = gtin.and_then(|g| counted.get_mut(&g)) {
                    *n = n.saturating_sub(1);
                }
                if sold_but_present.len() < MAX_LISTED_EPCS {
                    sold_but_present.push(epc);
                }
            }
            Ok(())
        })?;
        counted.retain(|_, n| *n > 0);
        let items = cycle_count::variance(session.scope(), &expected, &counted);
        let mut missing = Vec::new();
        let mut missing_total = 0u64;
        for line in &items {
            super::counts::visit_tags_here(&txn, line.gtin, |epc| {
                let gone = super::counts::read_tag(&txn, id, &epc)?
                    || txn.epc_summary(&epc)?.is_some_and(|s| s.is_sold());
                if !gone {
                    missing_total += 1;
                    if missing.len() < MAX_LISTED_EPCS {
                        missing.push(epc);
                    }
                }
                Ok(())
            })?;
        }
        Ok(Some(CountReport {
            session,
            items,
            sold_but_present,
            sold_but_present_total,
            missing,
            missing_total,
        }))
    }

    /// The count session `id`, and its tags counted per item.
    pub fn count_session(&self, id: &str) -> Result<Option<SessionItems>, StoreError> {
        let txn = self.read()?;
        let Some(session) = super::counts::read(&txn, id)? else {
            return Ok(None);
        };
        Ok(Some((session, super::counts::items(&txn, id)?)))
    }

    /// The current counter of `gtin` here, as committed.
    pub fn counter(&self, gtin: Gtin) -> Result<BoundedCounter, StoreError> {
        let key = ItemKey::new(self.who.location.clone(), gtin);
        // The snapshot is taken under the lock, so it is never older than
        // the flush that emptied the map (the committer empties it only
        // after that flush committed).
        let unflushed = self.read_unflushed();
        let c = match unflushed.get(&key) {
            Some(c) => c.clone(),
            None => self.read()?.counter(&key)?,
        };
        drop(unflushed);
        Ok(c)
    }

    /// A recorded event.
    pub fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        self.read()?.event(id)
    }

    /// Every recorded event (tests, audits).
    pub fn events(&self) -> Result<Vec<Event>, StoreError> {
        self.read()?.events()
    }

    /// The sale and return history of one EPC, if it was ever sold: a
    /// range read over its rows (a lookup; commands read the summary).
    pub fn epc_history(&self, epc: &Epc) -> Result<Option<EpcHistory>, StoreError> {
        self.read()?.epc_history(epc)
    }

    /// The summary of one EPC's sales and returns, if it was ever sold:
    /// one fixed-size row, whatever the tag's history.
    pub fn epc_summary(&self, epc: &Epc) -> Result<Option<EpcSummary>, StoreError> {
        self.read()?.epc_summary(epc)
    }

    /// Whether the tagged unit `epc` of `gtin` is held here: received
    /// (a receipt, a return, a transfer in) and not sent out since
    /// (`agent_tags_here`).
    pub fn tag_held_here(&self, gtin: Gtin, epc: &Epc) -> Result<bool, StoreError> {
        let txn = self.read()?;
        let table = txn
            .raw()
            .open_table(super::counts::TAGS_HERE)
            .map_err(storage)?;
        Ok(table
            .get((gtin.as_u64(), epc.as_bytes()))
            .map_err(storage)?
            .is_some())
    }

    /// When sale `id` was first refused for lack of rights (the agent's
    /// clock, Unix ms), if it was, within the last day.
    pub fn first_refused_at(&self, id: EventId) -> Result<Option<u64>, StoreError> {
        super::lost::first_refused_at(&self.read()?, id)
    }

    /// A catalog item.
    pub fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StoreError> {
        self.read()?.catalog_item(gtin)
    }

    /// The catalog's version: it rises with every change of an item.
    pub fn catalog_version(&self) -> Result<u64, StoreError> {
        self.read()?.catalog_version()
    }

    /// Events waiting in the outbox.
    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let t = txn.raw().open_table(OUTBOX).map_err(storage)?;
        outbox::len(&t)
    }

    /// Outbox entries after sequence `after`, oldest first, at most `limit`.
    pub fn outbox(&self, after: u64, limit: usize) -> Result<Vec<(u64, EventId)>, StoreError> {
        let txn = self.read()?;
        let t = txn.raw().open_table(OUTBOX).map_err(storage)?;
        outbox::entries_after(&t, after, limit)
    }

    /// Outstanding refused demand per item.
    pub fn demand(&self) -> Result<BTreeMap<Gtin, u64>, StoreError> {
        read_demand(&self.read()?)
    }

    /// The event with `id` and the units of each item that returns
    /// recorded here took back from it, read from one snapshot (so a
    /// return committing meanwhile is seen in both or in neither).
    pub fn event_and_returned(&self, id: &EventId) -> Result<Option<SaleWithReturns>, StoreError> {
        let txn = self.read()?;
        let Some(event) = txn.event(id)? else {
            return Ok(None);
        };
        let returned = returned_from(&txn.raw().open_table(RETURNED).map_err(storage)?, id)?;
        Ok(Some((event, returned)))
    }

    /// This store's allocations with one of `statuses` (by status, then
    /// order id after `after`), at most `limit`.
    pub fn allocations(
        &self,
        statuses: &[tally_sync::fulfilment::Status],
        after: &str,
        limit: usize,
    ) -> Result<Vec<tally_sync::fulfilment::OrderAllocation>, StoreError> {
        super::orders::list(&self.read()?, statuses, after, limit)
    }

    /// This store's allocation of `order_id`.
    pub fn allocation(
        &self,
        order_id: &str,
    ) -> Result<Option<tally_sync::fulfilment::OrderAllocation>, StoreError> {
        super::orders::read(&self.read()?, order_id)
    }

    /// Transfers to or from this store with one of `statuses`, by status
    /// then id after `after`, at most `limit`.
    pub fn transfers(
        &self,
        statuses: &[tally_sync::transfer::TransferStatus],
        after: &str,
        limit: usize,
    ) -> Result<Vec<tally_sync::transfer::Transfer>, StoreError> {
        super::transfers::list(&self.read()?, statuses, after, limit)
    }

    /// The transfer the tag `epc` is on, if this store knows one.
    pub fn transfer_of_epc(
        &self,
        epc: &Epc,
    ) -> Result<Option<tally_sync::transfer::Transfer>, StoreError> {
        super::transfers::of_epc(&self.read()?, epc)
    }

    /// The transfer `id`, if this store knows it.
    pub fn transfer(&self, id: &str) -> Result<Option<tally_sync::transfer::Transfer>, StoreError> {
        super::transfers::read(&self.read()?, id)
    }

    /// The hub's allocation changes merged here.
    pub fn allocations_cursor(&self) -> Result<u64, StoreError> {
        super::orders::cursor(&self.read()?)
    }

    /// The persisted sync cursors.
    pub fn cursors(&self) -> Result<SyncCursors, StoreError> {
        read_cursors(&self.read()?)
    }

    /// Whether the hub's catalog has reached this store: its prices are
    /// then HQ's, and a local catalog write is refused (a till could set a
    /// price and sell at it with no override).
    pub fn follows_hub_catalog(&self) -> Result<bool, StoreError> {
        Ok(self.cursors()?.catalog_cursor > 0)
    }

    /// Events the hub refused for good, with the reasons.
    pub fn dead_letters(&self) -> Result<Vec<(EventId, String)>, StoreError> {
        let txn = self.read()?;
        let t = txn.raw().open_table(DEAD_LETTER).map_err(storage)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(storage)? {
            let (k, v) = row.map_err(storage)?;
            out.push((
                EventId(uuid::Uuid::from_u128(k.value())),
                String::from_utf8_lossy(v.value()).into_owned(),
            ));
        }
        Ok(out)
    }
}

/// Recovery: re-applies the counter effect of the outbox entries past the
/// last flush, in order, and records the flush. Returns how many.
/// A count session and its tags counted per item.
pub type SessionItems = (CountSession, BTreeMap<Gtin, u64>);

/// Builds `agent_tags_here` from the recorded events, once (a database
/// from before RFID counts): every event since keeps it. Returns how many
/// events were read (0 when it was built already).
fn index_tags_here(db: &Db, location: &LocationId) -> Result<u64, StoreError> {
    const BUILT: &str = "tags_here_built";
    let txn = db.begin_write()?;
    {
        let raw = txn.raw();
        let mut meta = raw.open_table(AGENT_META).map_err(storage)?;
        if meta.get(BUILT).map_err(storage)?.is_some() {
            return Ok(0);
        }
        meta.insert(BUILT, 1).map_err(storage)?;
    }
    let mut failed = None;
    let read = {
        let mut here = txn
            .raw()
            .open_table(super::counts::TAGS_HERE)
            .map_err(storage)?;
        db.begin_read()?.visit_events(|e| {
            if failed.is_none() && e.location == *location {
                failed = super::counts::note_tags(&mut here, &e).err();
            }
        })?
    };
    if let Some(e) = failed {
        return Err(e);
    }
    txn.commit()?;
    Ok(read)
}

fn replay_unflushed(txn: &WriteTxn) -> Result<u64, StoreError> {
    let raw = txn.raw();
    let mut meta = raw.open_table(AGENT_META).map_err(storage)?;
    let outbox = raw.open_table(OUTBOX).map_err(storage)?;
    let seq = outbox_seq(&meta, &outbox)?;
    // A database without the mark is new or predates write-behind (its
    // counters were written with their events): either way the table is
    // complete. The mark is recorded now, in this transaction.
    let mark = meta
        .get(COUNTERS_FLUSHED_UPTO)
        .map_err(storage)?
        .map(|v| v.value());
    let flushed = mark.unwrap_or(seq);
    if flushed >= seq {
        if mark != Some(seq) {
            meta.insert(COUNTERS_FLUSHED_UPTO, seq).map_err(storage)?;
        }
        return Ok(0);
    }
    let mut replica = txn.replica()?;
    let mut replayed = 0;
    outbox::for_each_after(&outbox, flushed, |s, id| {
        let corrupt = |detail: String| StoreError::Corrupt {
            table: "agent_outbox_runs",
            detail: format!("replaying outbox entry {s} (event {id}): {detail}"),
        };
        let event = replica
            .event(&id)?
            .ok_or_else(|| corrupt("the event is missing".into()))?;
        let mut before = BTreeMap::new();
        for gtin in touched_gtins(&event) {
            let key = ItemKey::new(event.location.clone(), gtin);
            before.insert(gtin, replica.counter(&key)?);
        }
        let after = replay_counters(&event, &before).map_err(|r| corrupt(r.to_string()))?;
        for (gtin, c) in after {
            replica.put_counter(&ItemKey::new(event.location.clone(), gtin), c)?;
        }
        replayed += 1;
        Ok(ControlFlow::Continue(()))
    })?;
    drop(replica);
    meta.insert(COUNTERS_FLUSHED_UPTO, seq).map_err(storage)?;
    Ok(replayed)
}
