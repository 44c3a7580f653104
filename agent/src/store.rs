//! The agent's durable state: `tally-store` (counters, events, sold EPCs,
//! catalog, metadata on redb) plus the tables only the agent keeps, all in
//! one database file and written in one transaction per batch.
//!
//! # Design constraints
//! - **One writer.** Only the committer ([`crate::commit`]) opens write
//!   transactions; readers take redb snapshots and never block it.
//! - **Outbox before acknowledgement.** Every recorded event is appended to
//!   the outbox ([`crate::outbox`]: runs of sequence numbers, one row per
//!   batch) under the next sequence number in the same transaction that
//!   records it (Vector's disk-buffer ledger: the writer's next id is
//!   stored with the data). Entries leave only when the hub acknowledges
//!   them (the sync client, issue 5); sequence numbers never repeat, even
//!   after the outbox empties, because the last one is kept in
//!   `agent_meta`.
//! - **Demand is a hint.** Units refused for lack of rights accumulate in
//!   `agent_demand` until a sync hands them to the hub; losing them in a
//!   crash costs a rebalancing round, never a sale.
//! - **The store id is fixed at first run.** It is stored in the database's
//!   metadata; opening with another id is refused.
//! - **Counters are written behind the journal.** A sale's durable record
//!   is its event and its outbox entry (appends: the pages at the end of
//!   two tables). The counters it moved are kept in memory ([`AgentDb`]'s
//!   unflushed map, which every read consults first) and written to the
//!   counters table in a later transaction: a *flush*, which also records
//!   in `agent_meta` the outbox sequence number it covers. Writing a
//!   random counter page per sale was most of a commit's cost
//!   (docs/benchmarks.md). After a crash, [`AgentDb::open`] replays the
//!   outbox entries past that number through
//!   `tally_sync::ledger::replay_counters`, the same arithmetic that first
//!   applied them, so the counters come back exactly. This works because
//!   (a) only recorded events move counters between flushes: anything
//!   else that writes counters (a sync) is preceded by a flush in its
//!   transaction, and (b) outbox entries past the flushed number are never
//!   removed: the only removals (hub acks, dead letters) also follow a
//!   flush in their transaction.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use tally_agent_api::answers::Stock;
use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{Db, LazyTable, ReadTxn, StoreError, TxnReplica, WriteTxn};
use tally_sync::command::Ledger;
use tally_sync::epcs::{DoubleSale, EpcHistory, EpcRecord};
use tally_sync::exchange::{store_apply, store_request, Identity, ReplicaStore, SyncCursors};
use tally_sync::journal::Inserted;
use tally_sync::ledger::{replay_counters, touched_gtins};
use tally_sync::message::CatalogItem;
use tally_sync::{
    BoundedCounter, Delta, Epc, Event, EventId, Gtin, ItemKey, LocationId, ReplicaId, SyncRequest,
    SyncResponse,
};

use crate::outbox::{self, OUTBOX};

/// Refused demand: gtin → units.
const DEMAND: TableDefinition<u64, u64> = TableDefinition::new("agent_demand");
/// Units returns took back from this store's sales: (sale id, gtin) →
/// units. Written with each return that names a sale recorded here.
const RETURNED: TableDefinition<(u128, u64), u64> = TableDefinition::new("agent_returned");
/// The agent's counters: name → value.
const AGENT_META: TableDefinition<&str, u64> = TableDefinition::new("agent_meta");
/// Events the hub refused for good: event id → reason (UTF-8).
const DEAD_LETTER: TableDefinition<u128, &[u8]> = TableDefinition::new("agent_dead_letter");
/// Last outbox sequence number handed out, written when entries are
/// removed (otherwise the outbox's last key is newer).
const OUTBOX_SEQ: &str = "outbox_seq";
/// The counters table holds the effect of every outbox entry up to this
/// sequence number (see the module docs).
const COUNTERS_FLUSHED_UPTO: &str = "counters_flushed_upto";
/// The sync cursors (`tally_sync::exchange::SyncCursors`), one key each.
const CURSOR_KEYS: [&str; 4] = [
    "sync_acked_delta_version",
    "sync_acked_events_upto",
    "sync_hub_cursor",
    "sync_catalog_cursor",
];
/// `tally-store` metadata key of the store id.
const STORE_ID: &str = "store_id";

/// The database file inside the data directory.
pub const DB_FILE: &str = "agent.redb";
/// redb's page cache for the agent (its default is 1 GiB): the pages a
/// sale touches are the end of the journal and outbox and the counters
/// being flushed, a few MiB; the rest is reads of old events.
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Why the agent's database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory could not be created.
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
    /// Storage failed (including [`StoreError::AlreadyOpen`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

/// Counters changed by committed events but not yet written to the
/// counters table (see the module docs).
pub type Unflushed = HashMap<ItemKey, BoundedCounter>;

/// The agent's open database.
#[derive(Debug)]
pub struct AgentDb {
    db: Db,
    who: Identity,
    /// Only the committer writes it, after a commit and before answering.
    unflushed: RwLock<Unflushed>,
}

/// An event and the units of each item that returns took back from it.
pub type SaleWithReturns = (Event, BTreeMap<Gtin, u64>);

impl AgentDb {
    /// Opens (creating if needed) the database in `data_dir`, exclusively,
    /// and checks or records the store id.
    pub fn open(data_dir: &Path, store_id: Option<&ReplicaId>) -> Result<Self, OpenError> {
        let new_dir = !data_dir.exists();
        std::fs::create_dir_all(data_dir).map_err(|source| OpenError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        if new_dir {
            tally_store::sync_parent_dir(data_dir)?;
        }
        let path = data_dir.join(DB_FILE);
        Self::init(Db::open_with_cache(&path, Some(CACHE_BYTES))?, store_id)
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
        {
            let raw = txn.raw();
            raw.open_table(OUTBOX).map_err(storage)?;
            raw.open_table(DEMAND).map_err(storage)?;
            raw.open_table(AGENT_META).map_err(storage)?;
            raw.open_table(DEAD_LETTER).map_err(storage)?;
            raw.open_table(RETURNED).map_err(storage)?;
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
        Ok(Self {
            db,
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
    fn read_unflushed(&self) -> RwLockReadGuard<'_, Unflushed> {
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

    /// Starts the write transaction (the committer's alone).
    pub fn begin_write(&self) -> Result<WriteTxn, StoreError> {
        self.db.begin_write()
    }

    fn read(&self) -> Result<ReadTxn, StoreError> {
        self.db.begin_read()
    }

    /// The stock of one item, as of the last commit.
    pub fn stock(&self, gtin: Gtin) -> Result<Stock, StoreError> {
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
        Ok(Stock::of(gtin, &c, &self.who.replica))
    }

    /// A recorded event.
    pub fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        self.read()?.event(id)
    }

    /// Every recorded event (tests, audits).
    pub fn events(&self) -> Result<Vec<Event>, StoreError> {
        self.read()?.events()
    }

    /// The sale and return history of one EPC, if it was ever sold.
    pub fn epc_history(&self, epc: &Epc) -> Result<Option<EpcHistory>, StoreError> {
        self.read()?.epc_history(epc)
    }

    /// A catalog item.
    pub fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StoreError> {
        self.read()?.catalog_item(gtin)
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

    /// The persisted sync cursors.
    pub fn cursors(&self) -> Result<SyncCursors, StoreError> {
        read_cursors(&self.read()?)
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

    /// The next sync request, built from ONE snapshot so the delta, its
    /// version, the events and the cursors agree (docs/sync.md): own
    /// counter entries changed since the hub's last ack, at most
    /// `max_events` outbox events after the acked sequence, refused demand.
    pub fn sync_request(&self, max_events: usize) -> Result<SyncRequest, StoreError> {
        let txn = self.read()?;
        let cursors = read_cursors(&txn)?;
        let (delta, delta_version) =
            txn.delta_since(&self.who.location, cursors.acked_delta_version, usize::MAX)?;
        let outbox = txn.raw().open_table(OUTBOX).map_err(storage)?;
        let mut events = Vec::new();
        let mut events_upto = cursors.acked_events_upto;
        for (seq, id) in
            outbox::entries_after(&outbox, cursors.acked_events_upto, max_events.max(1))?
        {
            let event = txn.event(&id)?.ok_or_else(|| StoreError::Corrupt {
                table: "agent_outbox_runs",
                detail: format!("outbox entry {seq} names missing event {id}"),
            })?;
            events.push(event);
            events_upto = seq;
        }
        Ok(store_request(
            &self.who,
            &cursors,
            delta.owned_by(&self.who.replica),
            delta_version,
            events,
            events_upto,
            &read_demand(&txn)?,
        ))
    }
}

/// What applying a sync response did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncApplied {
    /// Counters the hub's entries changed here.
    pub merged: usize,
    /// Rights given to the hub for its online reserve, per item.
    pub given: Vec<(Gtin, u64)>,
    /// Outbox entries the hub acknowledged and that were removed.
    pub acked: u64,
    /// Events the hub refused for good, now dead-lettered.
    pub dead_lettered: usize,
    /// Catalog items that changed.
    pub catalog_changed: usize,
}

/// Applies the hub's answer to `req` in `txn` (no [`AgentTxn`] may be
/// open on it): `store_apply` (merge, cursors, reserve transfers),
/// persisted cursors, acknowledged outbox entries removed, refused events
/// dead-lettered, the request's demand subtracted, catalog upserted.
/// Safe with a stale, duplicated or reordered response.
pub fn apply_sync(
    txn: &WriteTxn,
    who: &Identity,
    req: &SyncRequest,
    resp: &SyncResponse,
) -> Result<SyncApplied, StoreError> {
    let raw = txn.raw();
    let mut out = SyncApplied::default();
    {
        let mut meta = raw.open_table(AGENT_META).map_err(storage)?;
        let mut cursors = cursors_from(&meta)?;
        let mut demand = raw.open_table(DEMAND).map_err(storage)?;
        let mut current: BTreeMap<Gtin, u64> = BTreeMap::new();
        for row in demand.iter().map_err(storage)? {
            let (k, v) = row.map_err(storage)?;
            if let Ok(g) = Gtin::from_u64(k.value()) {
                current.insert(g, v.value());
            }
        }
        let mut replica = txn.replica()?;
        let applied = store_apply(
            &mut replica,
            who,
            &mut cursors,
            resp,
            req.delta.entries.iter().map(|e| e.key.gtin),
            &current,
        )?;
        drop(replica);
        out.merged = applied.merged;
        out.given = applied.given;
        for (key, value) in CURSOR_KEYS.iter().zip([
            cursors.acked_delta_version,
            cursors.acked_events_upto,
            cursors.hub_cursor,
            cursors.catalog_cursor,
        ]) {
            meta.insert(*key, value).map_err(storage)?;
        }
        // The hub committed everything up to the ack: only now may the
        // outbox let go of it.
        let mut outbox = raw.open_table(OUTBOX).map_err(storage)?;
        pin_outbox_seq(&mut meta, &outbox)?;
        out.acked = outbox::remove_upto(&mut outbox, cursors.acked_events_upto)?;
        // The hub has acted on the demand this request carried.
        for d in &req.demand {
            let key = d.gtin.as_u64();
            let left = current
                .get(&d.gtin)
                .copied()
                .unwrap_or(0)
                .saturating_sub(d.units);
            if left == 0 {
                demand.remove(key).map_err(storage)?;
            } else {
                demand.insert(key, left).map_err(storage)?;
            }
        }
    }
    for rejected in &resp.rejected_events {
        dead_letter(txn, rejected.id, &rejected.reason)?;
        out.dead_lettered += 1;
    }
    out.catalog_changed = put_catalog(txn, &resp.catalog)?;
    Ok(out)
}

/// Moves an event the hub will never accept out of the outbox into the
/// dead-letter table (the event itself stays recorded locally).
pub fn dead_letter(txn: &WriteTxn, id: EventId, reason: &str) -> Result<bool, StoreError> {
    let raw = txn.raw();
    let mut outbox = raw.open_table(OUTBOX).map_err(storage)?;
    pin_outbox_seq(&mut raw.open_table(AGENT_META).map_err(storage)?, &outbox)?;
    let found = outbox::remove_id(&mut outbox, id)?;
    raw.open_table(DEAD_LETTER)
        .map_err(storage)?
        .insert(id.0.as_u128(), reason.as_bytes())
        .map_err(storage)?;
    Ok(found.is_some())
}

/// The last outbox sequence number handed out.
fn outbox_seq(
    meta: &impl ReadableTable<&'static str, u64>,
    outbox: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<u64, StoreError> {
    let stored = meta
        .get(OUTBOX_SEQ)
        .map_err(storage)?
        .map_or(0, |v| v.value());
    Ok(stored.max(outbox::last_seq(outbox)?))
}

/// Stores the last outbox sequence number before entries are removed, so
/// numbers never repeat once the outbox empties.
fn pin_outbox_seq(
    meta: &mut tally_store::redb::Table<'_, &'static str, u64>,
    outbox: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<(), StoreError> {
    let seq = outbox_seq(meta, outbox)?;
    meta.insert(OUTBOX_SEQ, seq).map_err(storage)?;
    Ok(())
}

/// Recovery: re-applies the counter effect of the outbox entries past the
/// last flush, in order, and records the flush. Returns how many.
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

fn read_demand(txn: &ReadTxn) -> Result<BTreeMap<Gtin, u64>, StoreError> {
    let t = txn.raw().open_table(DEMAND).map_err(storage)?;
    let mut out = BTreeMap::new();
    for row in t.iter().map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let gtin = Gtin::from_u64(k.value()).map_err(|e| StoreError::Corrupt {
            table: "agent_demand",
            detail: e.to_string(),
        })?;
        out.insert(gtin, v.value());
    }
    Ok(out)
}

fn returned_from(
    t: &impl ReadableTable<(u128, u64), u64>,
    sale: &EventId,
) -> Result<BTreeMap<Gtin, u64>, StoreError> {
    let sale = sale.0.as_u128();
    let mut units = BTreeMap::new();
    for row in t.range((sale, 0)..=(sale, u64::MAX)).map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let gtin = Gtin::from_u64(k.value().1).map_err(|e| StoreError::Corrupt {
            table: "agent_returned",
            detail: e.to_string(),
        })?;
        units.insert(gtin, v.value());
    }
    Ok(units)
}

fn read_cursors(txn: &ReadTxn) -> Result<SyncCursors, StoreError> {
    cursors_from(&txn.raw().open_table(AGENT_META).map_err(storage)?)
}

fn cursors_from(meta: &impl ReadableTable<&'static str, u64>) -> Result<SyncCursors, StoreError> {
    let mut v = [0u64; 4];
    for (slot, key) in v.iter_mut().zip(CURSOR_KEYS) {
        *slot = meta.get(key).map_err(storage)?.map_or(0, |x| x.value());
    }
    Ok(SyncCursors {
        acked_delta_version: v[0],
        acked_events_upto: v[1],
        hub_cursor: v[2],
        catalog_cursor: v[3],
    })
}

/// Stores catalog items in `txn` (no [`AgentTxn`] may be open on it);
/// returns how many changed.
pub fn put_catalog(txn: &WriteTxn, items: &[CatalogItem]) -> Result<usize, StoreError> {
    let mut changed = 0;
    for item in items {
        if txn.put_catalog_item(item)? {
            changed += 1;
        }
    }
    Ok(changed)
}

/// The counters a batch changed that are not in the counters table yet,
/// carried across the [`AgentTxn`]s of one write transaction and handed
/// to [`AgentDb::publish`] once it committed.
#[derive(Debug, Default)]
pub struct BatchCounters {
    changed: Unflushed,
    /// The transaction flushed (the counters table now holds everything
    /// changed before the flush).
    flushed: bool,
}

impl BatchCounters {
    /// Whether the transaction flushed.
    pub fn flushed(&self) -> bool {
        self.flushed
    }
}

/// The command core's [`Ledger`] over one write transaction: the shared
/// store's tables plus the agent's own. Counter writes are held back (see
/// the module docs) until [`AgentTxn::flush`].
#[allow(missing_debug_implementations)]
pub struct AgentTxn<'t> {
    db: &'t AgentDb,
    replica: TxnReplica<'t>,
    outbox: tally_store::redb::Table<'t, u64, &'static [u8]>,
    /// Ids appended in this transaction and not written yet: they go in as
    /// one run ([`outbox`]) when the tables close.
    appending: Vec<EventId>,
    /// Opened only when a refusal adds to it.
    demand: LazyTable<'t, u64, u64>,
    /// Opened only by returns that name a sale.
    returned: LazyTable<'t, (u128, u64), u64>,
    meta: tally_store::redb::Table<'t, &'static str, u64>,
    outbox_seq: u64,
    /// The counters table covers the outbox up to here.
    flushed_upto: u64,
    appended: u64,
    batch: BatchCounters,
}

impl<'t> AgentTxn<'t> {
    /// Opens the tables in `txn`, continuing `batch` (the counters earlier
    /// jobs of this transaction changed).
    pub fn open(
        txn: &'t WriteTxn,
        db: &'t AgentDb,
        batch: BatchCounters,
    ) -> Result<Self, StoreError> {
        let raw = txn.raw();
        let meta = raw.open_table(AGENT_META).map_err(storage)?;
        let outbox = raw.open_table(OUTBOX).map_err(storage)?;
        let outbox_seq = outbox_seq(&meta, &outbox)?;
        // `AgentDb::open` always records the mark.
        let flushed_upto = meta
            .get(COUNTERS_FLUSHED_UPTO)
            .map_err(storage)?
            .map_or(outbox_seq, |v| v.value());
        Ok(Self {
            db,
            replica: txn.replica()?,
            outbox,
            appending: Vec::new(),
            demand: LazyTable::new(raw, DEMAND),
            returned: LazyTable::new(raw, RETURNED),
            meta,
            outbox_seq,
            flushed_upto,
            appended: 0,
            batch,
        })
    }

    /// What a flush now would cover: the events recorded since the last
    /// one (the replay after a crash) and the counters held in memory.
    pub fn unflushed(&self) -> (u64, usize) {
        let committed = if self.batch.flushed {
            0
        } else {
            self.db.unflushed_len()
        };
        (
            self.outbox_seq.saturating_sub(self.flushed_upto),
            committed + self.batch.changed.len(),
        )
    }

    /// Writes the appended outbox entries and closes the tables; returns
    /// the events appended and the batch's counters. Call it before the
    /// transaction commits: until then the entries are only in memory (so
    /// that a batch writes one outbox row), and an `AgentTxn` dropped
    /// without it leaves its events out of the outbox.
    pub fn close(mut self) -> Result<(u64, BatchCounters), StoreError> {
        let first = self.outbox_seq - self.appending.len() as u64 + 1;
        outbox::append(&mut self.outbox, first, &self.appending)?;
        Ok((self.appended, self.batch))
    }

    /// Writes every unflushed counter (the committed ones and this
    /// batch's) to the counters table and records the outbox sequence
    /// number the table now covers. Returns how many counters it wrote.
    pub fn flush(&mut self) -> Result<usize, StoreError> {
        let mut writes: Vec<(ItemKey, BoundedCounter)> = Vec::new();
        if !self.batch.flushed {
            let unflushed = self.db.read_unflushed();
            writes.extend(
                unflushed
                    .iter()
                    .filter(|(k, _)| !self.batch.changed.contains_key(*k))
                    .map(|(k, c)| (k.clone(), c.clone())),
            );
        }
        writes.extend(self.batch.changed.drain());
        // Key order: neighbouring counters share pages.
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        let written = writes.len();
        for (key, c) in writes {
            self.replica.put_counter(&key, c)?;
        }
        self.meta
            .insert(COUNTERS_FLUSHED_UPTO, self.outbox_seq)
            .map_err(storage)?;
        self.flushed_upto = self.outbox_seq;
        self.batch.flushed = true;
        Ok(written)
    }
}

impl ReplicaStore for AgentTxn<'_> {
    type Error = StoreError;

    fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, StoreError> {
        if let Some(c) = self.batch.changed.get(key) {
            return Ok(c.clone());
        }
        if !self.batch.flushed {
            let unflushed = self.db.read_unflushed();
            if let Some(c) = unflushed.get(key) {
                return Ok(c.clone());
            }
        }
        self.replica.counter(key)
    }

    fn put_counter(&mut self, key: &ItemKey, counter: BoundedCounter) -> Result<(), StoreError> {
        self.batch.changed.insert(key.clone(), counter);
        Ok(())
    }

    /// Only what was flushed: callers flush first.
    fn delta_since(
        &self,
        location: &LocationId,
        cursor: u64,
        limit: usize,
    ) -> Result<(Delta, u64), StoreError> {
        self.replica.delta_since(location, cursor, limit)
    }

    /// The command core looks a caller's id up before it plans, and
    /// generates the others: the insert need not look again.
    fn insert_event(&mut self, event: &Event) -> Result<Inserted, StoreError> {
        self.replica.insert_new_event(event)
    }

    fn record_epc_sale(
        &mut self,
        epc: &Epc,
        record: EpcRecord,
    ) -> Result<Option<DoubleSale>, StoreError> {
        self.replica.record_epc_sale(epc, record)
    }

    fn record_epc_return(&mut self, epc: &Epc, record: EpcRecord) -> Result<(), StoreError> {
        self.replica.record_epc_return(epc, record)
    }
}

impl Ledger for AgentTxn<'_> {
    fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        self.replica.event(id)
    }

    fn epc_history(&self, epc: &Epc) -> Result<Option<EpcHistory>, StoreError> {
        self.replica.epc_history(epc)
    }

    fn catalog_price(&self, gtin: Gtin) -> Result<Option<i64>, StoreError> {
        Ok(self.replica.catalog_item(gtin)?.map(|i| i.price_minor))
    }

    fn append_outbox(&mut self, id: EventId) -> Result<u64, StoreError> {
        self.outbox_seq += 1;
        self.appending.push(id);
        self.appended += 1;
        Ok(self.outbox_seq)
    }

    fn add_demand(&mut self, gtin: Gtin, units: u64) -> Result<(), StoreError> {
        let key = gtin.as_u64();
        let demand = self.demand.get_mut()?;
        let old = demand.get(key).map_err(storage)?.map_or(0, |v| v.value());
        demand
            .insert(key, old.saturating_add(units))
            .map_err(storage)?;
        Ok(())
    }

    fn returned_from(&self, sale: &EventId) -> Result<BTreeMap<Gtin, u64>, StoreError> {
        returned_from(self.returned.get()?, sale)
    }

    fn add_returned(
        &mut self,
        sale: &EventId,
        units: &BTreeMap<Gtin, u64>,
    ) -> Result<(), StoreError> {
        let sale = sale.0.as_u128();
        let returned = self.returned.get_mut()?;
        for (gtin, u) in units {
            let key = (sale, gtin.as_u64());
            let old = returned.get(key).map_err(storage)?.map_or(0, |v| v.value());
            returned
                .insert(key, old.saturating_add(*u))
                .map_err(storage)?;
        }
        Ok(())
    }
}
