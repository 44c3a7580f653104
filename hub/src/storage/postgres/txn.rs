//! [`PgTxn`]: the hub's [`HubTxn`] on one PostgreSQL transaction, each
//! operation one prepared statement on the batch's connection.
//!
//! # Design constraints
//! - **Serialised by the batch's lock.** The batch that opened this
//!   transaction holds the hub's write lock (`PgHub::write_batch`), so
//!   reads here see every earlier commit and nothing commits in between:
//!   the read-validate-write steps of the logic hold across hub
//!   processes as they do in the embedded hub's one writer.
//! - **Sequences in commit order.** Counter versions (per location),
//!   catalog versions, exception ids and allocation change versions are
//!   taken by `UPDATE … RETURNING` under that lock, so once a value is
//!   visible no smaller one commits after it (a store's cursor never
//!   skips a change).
//! - **A read cache per batch.** Counters and what stores' events
//!   explain are read once per batch and then served from memory (and
//!   kept current by this transaction's own writes): nothing else writes
//!   them while the batch holds the lock, and the logic reads a counter
//!   before it writes it.
//! - **Counters written at the end.** A counter write takes the
//!   location's next version (read once per batch) and is kept in memory;
//!   reads of this batch (a counter, a store's delta, where the hub holds
//!   rights) see it over what the table holds, and `finish` writes every
//!   changed counter and location version in two statements.
//! - **Events written at the end.** A sync's events are looked up all at
//!   once before it is handled (`prefetch_sync`), and the new ones are
//!   inserted together, in one statement, when the batch finishes
//!   (`finish`); reads in between see them.
//! - **The same bytes as the embedded hub.** Counters, events and
//!   catalog items are `tally_sync::codec` postcard; the hub's records
//!   are the same JSON; `migrate --from` copies one into the other.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tally_sync::codec;
use tally_sync::epcs::{DoubleSale, EpcRecord, EpcState};
use tally_sync::exchange::{EpcMove, HubReplica, ReplicaStore};
use tally_sync::explain::Explained;
use tally_sync::fulfilment::Status;
use tally_sync::journal::Inserted;
use tally_sync::message::CatalogItem;
use tally_sync::transfer::TransferStatus;
use tally_sync::{
    BoundedCounter, Delta, DeltaEntry, DemandEstimate, Epc, Event, EventId, Gtin, ItemKey,
    LocationId, ReplicaId,
};
use tokio_postgres::types::{FromSql, Json};
use tokio_postgres::Row;

use super::conn::{cursor_i64, to_i64, to_u64, PgConn};
use crate::storage::held::HeldEvent;
use crate::storage::logic::orders::OrderIndex;
use crate::storage::logic::rights::GrantRecord;
use crate::storage::returns::{Claim, CrossReturn};
use crate::storage::routed::RoutedOrder;
use crate::storage::status_counts::{ORDERS, TRANSFERS};
use crate::storage::transfers::HubTransfer;
use crate::storage::txn::HubTxn;
use crate::storage::{ExceptionRecord, StorageError, StoreRecord};

/// Column `i` of `row` (from `table`): a type mismatch or a NULL where
/// none belongs is a corrupt row, never a panic.
pub(super) fn col<'a, T: FromSql<'a>>(
    row: &'a Row,
    i: usize,
    table: &'static str,
) -> Result<T, StorageError> {
    row.try_get(i).map_err(|e| StorageError::corrupt(table, e))
}

/// Column `i` of `row` as JSON of `T`.
pub(super) fn json<T: DeserializeOwned>(
    row: &Row,
    i: usize,
    table: &'static str,
) -> Result<T, StorageError> {
    Ok(col::<Json<T>>(row, i, table)?.0)
}

/// `v` as JSON text for a `bytea` column: for documents that may hold
/// any text a client sent, a NUL too, which `jsonb` refuses.
pub(super) fn json_bytes<T: Serialize>(
    table: &'static str,
    v: &T,
) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(v).map_err(|e| StorageError::corrupt(table, e))
}

/// Column `i` of `row`, JSON text of `T` in a `bytea` ([`json_bytes`]).
pub(super) fn json_in_bytes<T: DeserializeOwned>(
    row: &Row,
    i: usize,
    table: &'static str,
) -> Result<T, StorageError> {
    serde_json::from_slice(col::<&[u8]>(row, i, table)?)
        .map_err(|e| StorageError::corrupt(table, e))
}

/// Column `i` of `row` as a `u64` (a `bigint` never negative).
pub(super) fn int(row: &Row, i: usize, table: &'static str) -> Result<u64, StorageError> {
    to_u64(table, col::<i64>(row, i, table)?)
}

/// Column `i` of `row` as a GTIN.
pub(super) fn gtin(row: &Row, i: usize, table: &'static str) -> Result<Gtin, StorageError> {
    Gtin::from_u64(int(row, i, table)?).map_err(|e| StorageError::corrupt(table, e))
}

/// Column `i` of `row` as a location id.
pub(super) fn location(
    row: &Row,
    i: usize,
    table: &'static str,
) -> Result<LocationId, StorageError> {
    LocationId::new(&col::<String>(row, i, table)?).map_err(|e| StorageError::corrupt(table, e))
}

/// Column `i` of `row` as postcard bytes of `T`.
pub(super) fn postcard<T: DeserializeOwned>(
    row: &Row,
    i: usize,
    table: &'static str,
) -> Result<T, StorageError> {
    codec::from_bytes(col::<&[u8]>(row, i, table)?).map_err(|e| StorageError::corrupt(table, e))
}

/// Column `i` of `row` as a stored event.
pub(super) fn event(row: &Row, i: usize) -> Result<Event, StorageError> {
    Event::from_stored(col::<&[u8]>(row, i, "hub_events")?)
        .map_err(|e| StorageError::corrupt("hub_events", e))
}

/// The counter at `key` as committed (empty if never touched): one
/// lookup, shared by the batch's cache and the snapshot reads.
pub(super) fn stored_counter(conn: &PgConn, key: &ItemKey) -> Result<BoundedCounter, StorageError> {
    match conn.query_opt(
        "SELECT counter FROM hub_counters WHERE location = $1 AND gtin = $2",
        &[&key.location.as_str(), &g(key.gtin)?],
    )? {
        Some(r) => postcard(&r, 0, "hub_counters"),
        None => Ok(BoundedCounter::default()),
    }
}

/// The catalog item `gtin`.
pub(super) fn catalog_item(conn: &PgConn, gtin: Gtin) -> Result<Option<CatalogItem>, StorageError> {
    conn.query_opt("SELECT item FROM hub_catalog WHERE gtin = $1", &[&g(gtin)?])?
        .map(|r| postcard(&r, 0, "hub_catalog"))
        .transpose()
}

/// The routed order `order_id`.
pub(super) fn routed_order(
    conn: &PgConn,
    order_id: &str,
) -> Result<Option<RoutedOrder>, StorageError> {
    conn.query_opt(
        "SELECT doc FROM hub_routed_orders WHERE order_id = $1",
        &[&order_id],
    )?
    .map(|r| json(&r, 0, "hub_routed_orders"))
    .transpose()
}

/// The transfer `id`.
pub(super) fn transfer(conn: &PgConn, id: &str) -> Result<Option<HubTransfer>, StorageError> {
    conn.query_opt(
        "SELECT doc FROM hub_transfers WHERE transfer_id = $1",
        &[&id],
    )?
    .map(|r| json(&r, 0, "hub_transfers"))
    .transpose()
}

/// Those of `gtins` at `location` that `cache` does not hold, and their
/// keys as the table stores them.
fn uncached<V>(
    cache: &HashMap<ItemKey, V>,
    location: &LocationId,
    gtins: &[Gtin],
) -> Result<(Vec<Gtin>, Vec<i64>), StorageError> {
    let absent: Vec<Gtin> = gtins
        .iter()
        .copied()
        .filter(|g| !cache.contains_key(&ItemKey::new(location.clone(), *g)))
        .collect();
    let keys = absent
        .iter()
        .map(|gtin| g(*gtin))
        .collect::<Result<_, _>>()?;
    Ok((absent, keys))
}

fn to_postcard<T: Serialize>(table: &'static str, v: &T) -> Result<Vec<u8>, StorageError> {
    codec::to_bytes(v).map_err(|e| StorageError::corrupt(table, e))
}

fn g(gtin: Gtin) -> Result<i64, StorageError> {
    to_i64("gtin", gtin.as_u64())
}

/// One batch's PostgreSQL transaction as a [`HubTxn`]. See the module
/// docs.
#[derive(Debug)]
pub(crate) struct PgTxn<'c> {
    conn: &'c PgConn,
    counters: RefCell<HashMap<ItemKey, BoundedCounter>>,
    explained: RefCell<HashMap<ItemKey, Explained>>,
    /// Each location's counter version as this batch has moved it.
    versions: RefCell<HashMap<LocationId, u64>>,
    /// Counters written in this batch, with their versions, written to
    /// the table by `finish`.
    written: HashMap<ItemKey, (u64, BoundedCounter)>,
    /// Whether each event id looked up is stored (before this batch).
    stored: RefCell<HashMap<EventId, bool>>,
    /// New events of this batch, inserted by `finish`, in order.
    new_events: Vec<Event>,
    new_index: HashMap<EventId, usize>,
}

impl<'c> PgTxn<'c> {
    /// The transaction open on `conn` (the caller began it and holds the
    /// write lock).
    pub(crate) fn new(conn: &'c PgConn) -> Self {
        Self {
            conn,
            counters: RefCell::new(HashMap::new()),
            explained: RefCell::new(HashMap::new()),
            versions: RefCell::new(HashMap::new()),
            written: HashMap::new(),
            stored: RefCell::new(HashMap::new()),
            new_events: Vec::new(),
            new_index: HashMap::new(),
        }
    }

    /// `location`'s counter version now (read once per batch).
    fn location_version(&self, location: &LocationId) -> Result<u64, StorageError> {
        if let Some(&v) = self.versions.borrow().get(location) {
            return Ok(v);
        }
        let v = match self.conn.query_opt(
            "SELECT counter_version FROM hub_locations WHERE location = $1",
            &[&location.as_str()],
        )? {
            Some(r) => int(&r, 0, "hub_locations")?,
            None => 0,
        };
        self.versions.borrow_mut().insert(location.clone(), v);
        Ok(v)
    }

    /// Writes the batch's counters and location versions.
    fn flush_counters(&mut self) -> Result<(), StorageError> {
        if self.written.is_empty() {
            return Ok(());
        }
        let hub = ReplicaId::hub();
        let n = self.written.len();
        let (mut locs, mut gtins, mut versions, mut bodies, mut rights) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (key, (version, counter)) in &self.written {
            locs.push(key.location.as_str().to_string());
            gtins.push(g(key.gtin)?);
            versions.push(to_i64("counter version", *version)?);
            bodies.push(to_postcard("hub_counters", counter)?);
            rights.push(to_i64("rights", counter.rights(&hub))?);
        }
        self.conn.execute(
            "INSERT INTO hub_counters (location, gtin, version, counter, hub_rights)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[], $5::bigint[])
             ON CONFLICT (location, gtin) DO UPDATE
                 SET version = EXCLUDED.version, counter = EXCLUDED.counter,
                     hub_rights = EXCLUDED.hub_rights",
            &[&locs, &gtins, &versions, &bodies, &rights],
        )?;
        let mut moved: HashMap<&LocationId, u64> = HashMap::new();
        for (key, (version, _)) in &self.written {
            let v = moved.entry(&key.location).or_default();
            *v = (*v).max(*version);
        }
        let (mut locs, mut versions) = (Vec::new(), Vec::new());
        for (location, version) in moved {
            locs.push(location.as_str().to_string());
            versions.push(to_i64("counter version", version)?);
        }
        self.conn.execute(
            "INSERT INTO hub_locations (location, counter_version)
             SELECT * FROM unnest($1::text[], $2::bigint[])
             ON CONFLICT (location) DO UPDATE SET counter_version = EXCLUDED.counter_version",
            &[&locs, &versions],
        )?;
        self.written.clear();
        Ok(())
    }

    /// Whether event `id` was stored before this batch (cached).
    fn stored_before(&self, id: &EventId) -> Result<bool, StorageError> {
        if let Some(&known) = self.stored.borrow().get(id) {
            return Ok(known);
        }
        let found = self
            .conn
            .query_opt("SELECT 1 FROM hub_events WHERE id = $1", &[&id.0])?
            .is_some();
        self.stored.borrow_mut().insert(*id, found);
        Ok(found)
    }

    /// The event `id` as stored before this batch.
    fn stored_event(&self, id: &EventId) -> Result<Option<Event>, StorageError> {
        self.conn
            .query_opt("SELECT body FROM hub_events WHERE id = $1", &[&id.0])?
            .map(|r| event(&r, 0))
            .transpose()
    }

    /// Hands out the next `n` values of sequence `name`: the last one.
    fn next(&self, name: &'static str, n: u64) -> Result<u64, StorageError> {
        let row = self.conn.query_one(
            "UPDATE hub_sequences SET value = value + $2 WHERE name = $1 RETURNING value",
            &[&name, &to_i64("sequence step", n)?],
        )?;
        int(&row, 0, "hub_sequences")
    }

    /// Counts one record of `kind` moved from status `was` to `now`.
    fn moved(&self, kind: &'static str, was: Option<&str>, now: &str) -> Result<(), StorageError> {
        if was == Some(now) {
            return Ok(());
        }
        if let Some(was) = was {
            self.conn.execute(
                "UPDATE hub_status_counts SET n = greatest(n - 1, 0) WHERE kind = $1 AND status = $2",
                &[&kind, &was],
            )?;
        }
        self.conn.execute(
            "INSERT INTO hub_status_counts (kind, status, n) VALUES ($1, $2, 1)
             ON CONFLICT (kind, status) DO UPDATE SET n = hub_status_counts.n + 1",
            &[&kind, &now],
        )?;
        Ok(())
    }
}

impl ReplicaStore for PgTxn<'_> {
    type Error = StorageError;

    fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, StorageError> {
        if let Some(c) = self.counters.borrow().get(key) {
            return Ok(c.clone());
        }
        let c = stored_counter(self.conn, key)?;
        self.counters.borrow_mut().insert(key.clone(), c.clone());
        Ok(c)
    }

    fn put_counter(&mut self, key: &ItemKey, counter: BoundedCounter) -> Result<(), StorageError> {
        let old = self.counter(key)?;
        if old == counter {
            return Ok(());
        }
        let version = self.location_version(&key.location)? + 1;
        self.versions
            .borrow_mut()
            .insert(key.location.clone(), version);
        self.counters
            .borrow_mut()
            .insert(key.clone(), counter.clone());
        self.written.insert(key.clone(), (version, counter));
        Ok(())
    }

    fn delta_since(
        &self,
        location: &LocationId,
        cursor: u64,
        limit: usize,
    ) -> Result<(Delta, u64), StorageError> {
        // This batch's writes at the location stand over the table's rows
        // of the same counters: fetch as many more rows as there are such
        // writes, so `limit + 1` current ones remain if the table has them.
        let written: Vec<(u64, &ItemKey, &BoundedCounter)> = self
            .written
            .iter()
            .filter(|(k, _)| k.location == *location)
            .map(|(k, (v, c))| (*v, k, c))
            .collect();
        let rows = self.conn.query(
            "SELECT gtin, version, counter FROM hub_counters
             WHERE location = $1 AND version > $2 ORDER BY version LIMIT $3",
            &[
                &location.as_str(),
                &cursor_i64(cursor),
                &to_i64(
                    "limit",
                    (limit as u64).saturating_add(1 + written.len() as u64),
                )?,
            ],
        )?;
        let mut changed: Vec<(u64, DeltaEntry)> = Vec::with_capacity(rows.len() + written.len());
        for row in &rows {
            let key = ItemKey::new(location.clone(), gtin(row, 0, "hub_counters")?);
            if self.written.contains_key(&key) {
                continue;
            }
            changed.push((
                int(row, 1, "hub_counters")?,
                DeltaEntry {
                    key,
                    counter: postcard(row, 2, "hub_counters")?,
                },
            ));
        }
        for (version, key, counter) in written {
            if version > cursor {
                changed.push((
                    version,
                    DeltaEntry {
                        key: key.clone(),
                        counter: counter.clone(),
                    },
                ));
            }
        }
        changed.sort_by_key(|(v, _)| *v);
        if changed.len() > limit {
            // One more than fits: the next page starts at it.
            let next = changed[limit].0.saturating_sub(1);
            changed.truncate(limit);
            let entries = changed.into_iter().map(|(_, e)| e).collect();
            return Ok((Delta { entries }, next));
        }
        let entries = changed.into_iter().map(|(_, e)| e).collect();
        Ok((
            Delta { entries },
            self.location_version(location)?.max(cursor),
        ))
    }

    fn insert_event(&mut self, e: &Event) -> Result<Inserted, StorageError> {
        let same = |old: &Event| {
            if old == e {
                Inserted::Duplicate
            } else {
                Inserted::Conflict
            }
        };
        if let Some(&i) = self.new_index.get(&e.id) {
            return Ok(same(&self.new_events[i]));
        }
        if self.stored_before(&e.id)? {
            return Ok(match self.stored_event(&e.id)? {
                Some(old) => same(&old),
                None => Inserted::Conflict,
            });
        }
        self.new_index.insert(e.id, self.new_events.len());
        self.new_events.push(e.clone());
        Ok(Inserted::New)
    }

    fn record_epc_sale(
        &mut self,
        epc: &Epc,
        _record: EpcRecord,
    ) -> Result<Option<DoubleSale>, StorageError> {
        Err(StorageError::broken(format!(
            "the hub recorded an event of its own naming tag {epc}: its orders and cancellations carry none"
        )))
    }

    fn record_epc_return(&mut self, epc: &Epc, _record: EpcRecord) -> Result<(), StorageError> {
        Err(StorageError::broken(format!(
            "the hub recorded an event of its own naming tag {epc}: its orders and cancellations carry none"
        )))
    }
}

impl HubReplica for PgTxn<'_> {
    fn has_event(&self, id: &EventId) -> Result<bool, StorageError> {
        Ok(self.new_index.contains_key(id) || self.stored_before(id)?)
    }

    fn epc_state(&self, epc: &Epc) -> Result<Option<EpcState>, StorageError> {
        self.conn
            .query_opt(
                "SELECT state FROM hub_epc_state WHERE epc = $1",
                &[&epc.as_bytes()],
            )?
            .map(|r| json(&r, 0, "hub_epc_state"))
            .transpose()
    }

    fn put_epc(
        &mut self,
        epc: &Epc,
        movement: EpcMove,
        record: &EpcRecord,
        state: &EpcState,
    ) -> Result<(), StorageError> {
        let code: i16 = match movement {
            EpcMove::Sale => 0,
            EpcMove::Return => 1,
        };
        self.conn.execute(
            "INSERT INTO hub_epc_rows (epc, move, event, replica) VALUES ($1, $2, $3, $4)
             ON CONFLICT (epc, move, event) DO UPDATE SET replica = $4",
            &[
                &epc.as_bytes(),
                &code,
                &record.event.0,
                &record.replica.as_str(),
            ],
        )?;
        self.conn.execute(
            "INSERT INTO hub_epc_state (epc, state, double_sold) VALUES ($1, $2, $3)
             ON CONFLICT (epc) DO UPDATE SET state = $2, double_sold = $3",
            &[&epc.as_bytes(), &Json(state), &state.double_sold],
        )?;
        Ok(())
    }

    fn epc_sales(&self, epc: &Epc, limit: usize) -> Result<Vec<EpcRecord>, StorageError> {
        let rows = self.conn.query(
            "SELECT event, replica FROM hub_epc_rows WHERE epc = $1 AND move = 0
             ORDER BY event LIMIT $2",
            &[&epc.as_bytes(), &to_i64("limit", limit as u64)?],
        )?;
        rows.iter()
            .map(|r| {
                Ok(EpcRecord {
                    event: EventId(col(r, 0, "hub_epc_rows")?),
                    replica: ReplicaId::new(&col::<String>(r, 1, "hub_epc_rows")?)
                        .map_err(|e| StorageError::corrupt("hub_epc_rows", e))?,
                })
            })
            .collect()
    }

    fn explained(&self, key: &ItemKey) -> Result<Explained, StorageError> {
        if let Some(x) = self.explained.borrow().get(key) {
            return Ok(*x);
        }
        let row = self.conn.query_opt(
            "SELECT added, removed FROM hub_explained WHERE location = $1 AND gtin = $2",
            &[&key.location.as_str(), &g(key.gtin)?],
        )?;
        let x = match row {
            Some(r) => Explained {
                added: int(&r, 0, "hub_explained")?,
                removed: int(&r, 1, "hub_explained")?,
            },
            None => Explained::default(),
        };
        self.explained.borrow_mut().insert(key.clone(), x);
        Ok(x)
    }

    fn put_explained(&mut self, key: &ItemKey, x: Explained) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT INTO hub_explained (location, gtin, added, removed) VALUES ($1, $2, $3, $4)
             ON CONFLICT (location, gtin) DO UPDATE SET added = $3, removed = $4",
            &[
                &key.location.as_str(),
                &g(key.gtin)?,
                &to_i64("added", x.added)?,
                &to_i64("removed", x.removed)?,
            ],
        )?;
        self.explained.borrow_mut().insert(key.clone(), x);
        Ok(())
    }
}

impl HubTxn for PgTxn<'_> {
    fn event(&self, id: &EventId) -> Result<Option<Event>, StorageError> {
        if let Some(&i) = self.new_index.get(id) {
            return Ok(Some(self.new_events[i].clone()));
        }
        self.stored_event(id)
    }

    fn prefetch_sync(
        &mut self,
        who: &tally_sync::exchange::Identity,
        req: &tally_sync::SyncRequest,
    ) -> Result<(), StorageError> {
        // Which of the request's events are stored already: one query.
        let ids: Vec<uuid::Uuid> = req.events.iter().map(|e| e.id.0).collect();
        if !ids.is_empty() {
            let rows = self
                .conn
                .query("SELECT id FROM hub_events WHERE id = ANY($1)", &[&ids])?;
            let mut stored = self.stored.borrow_mut();
            for id in &ids {
                stored.entry(EventId(*id)).or_insert(false);
            }
            for r in &rows {
                stored.insert(EventId(col(r, 0, "hub_events")?), true);
            }
        }
        // The counters and explained sums of the items it names at the
        // store's location: one query each.
        let mut gtins: Vec<Gtin> = req
            .delta
            .entries
            .iter()
            .filter(|d| d.key.location == who.location)
            .map(|d| d.key.gtin)
            .chain(
                req.events
                    .iter()
                    .flat_map(|e| e.lines.iter().map(|l| l.gtin)),
            )
            .collect();
        gtins.sort_unstable();
        gtins.dedup();
        if gtins.is_empty() {
            return Ok(());
        }
        let loc = who.location.as_str();
        let key = |g: Gtin| ItemKey::new(who.location.clone(), g);
        // Only what this batch has not read yet: an earlier write of the
        // batch may have changed a cached counter that the table does not
        // show until `finish` (so the table's row must not replace it).
        let (absent, keys) = uncached(&self.counters.borrow(), &who.location, &gtins)?;
        if !keys.is_empty() {
            let rows = self.conn.query(
                "SELECT gtin, counter FROM hub_counters WHERE location = $1 AND gtin = ANY($2)",
                &[&loc, &keys],
            )?;
            let mut counters = self.counters.borrow_mut();
            for r in &rows {
                counters.insert(
                    key(gtin(r, 0, "hub_counters")?),
                    postcard(r, 1, "hub_counters")?,
                );
            }
            for g in absent {
                counters.entry(key(g)).or_default();
            }
        }
        let (absent, keys) = uncached(&self.explained.borrow(), &who.location, &gtins)?;
        if !keys.is_empty() {
            let rows = self.conn.query(
                "SELECT gtin, added, removed FROM hub_explained WHERE location = $1 AND gtin = ANY($2)",
                &[&loc, &keys],
            )?;
            let mut explained = self.explained.borrow_mut();
            for r in &rows {
                explained.insert(
                    key(gtin(r, 0, "hub_explained")?),
                    Explained {
                        added: int(r, 1, "hub_explained")?,
                        removed: int(r, 2, "hub_explained")?,
                    },
                );
            }
            for g in absent {
                explained.entry(key(g)).or_default();
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StorageError> {
        self.flush_counters()?;
        if self.new_events.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(self.new_events.len());
        let mut locations = Vec::with_capacity(self.new_events.len());
        let mut bodies = Vec::with_capacity(self.new_events.len());
        for e in &self.new_events {
            ids.push(e.id.0);
            locations.push(e.location.as_str().to_string());
            bodies.push(to_postcard("hub_events", e)?);
        }
        let n = self.conn.execute(
            "INSERT INTO hub_events (id, location, body)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[])
             ON CONFLICT (id) DO NOTHING",
            &[&ids, &locations, &bodies],
        )?;
        if n != ids.len() as u64 {
            // Looked up absent under the write lock, present now: a
            // writer outside the lock. Run the batch again.
            return Err(StorageError::Retry(
                crate::storage::RetryReason::UniqueViolation,
            ));
        }
        self.new_events.clear();
        self.new_index.clear();
        Ok(())
    }

    fn exception(&self, id: u64) -> Result<Option<ExceptionRecord>, StorageError> {
        let row = self.conn.query_opt(
            "SELECT doc FROM hub_exceptions WHERE id = $1",
            &[&to_i64("exception id", id)?],
        )?;
        row.map(|r| json(&r, 0, "hub_exceptions")).transpose()
    }

    fn put_acknowledged(&mut self, x: &ExceptionRecord) -> Result<(), StorageError> {
        self.conn.execute(
            "UPDATE hub_exceptions SET doc = $2 WHERE id = $1",
            &[&to_i64("exception id", x.id)?, &Json(x)],
        )?;
        self.next("exceptions_acked", 1)?;
        Ok(())
    }

    fn append_exceptions(&mut self, exceptions: Vec<ExceptionRecord>) -> Result<(), StorageError> {
        if exceptions.is_empty() {
            return Ok(());
        }
        let last = self.next("exceptions", exceptions.len() as u64)?;
        let first = last + 1 - exceptions.len() as u64;
        for (id, mut x) in (first..).zip(exceptions) {
            x.id = id;
            self.conn.execute(
                "INSERT INTO hub_exceptions (id, doc) VALUES ($1, $2)",
                &[&to_i64("exception id", id)?, &Json(&x)],
            )?;
        }
        Ok(())
    }

    fn announce(&mut self, store: &LocationId, key: &str) -> Result<(), StorageError> {
        let version = to_i64("allocation version", self.next("allocations", 1)?)?;
        self.conn.execute(
            "INSERT INTO hub_allocation_changes (store, key, version) VALUES ($1, $2, $3)
             ON CONFLICT (store, key) DO UPDATE SET version = $3",
            &[&store.as_str(), &key, &version],
        )?;
        Ok(())
    }

    fn last_sale_of(&self, epc: &Epc) -> Result<Option<EventId>, StorageError> {
        self.conn
            .query_opt(
                "SELECT event FROM hub_epc_rows WHERE epc = $1 AND move = 0
                 ORDER BY event DESC LIMIT 1",
                &[&epc.as_bytes()],
            )?
            .map(|r| Ok(EventId(col(&r, 0, "hub_epc_rows")?)))
            .transpose()
    }

    fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StorageError> {
        catalog_item(self.conn, gtin)
    }

    fn put_catalog_item(&mut self, item: &CatalogItem) -> Result<bool, StorageError> {
        if self.catalog_item(item.gtin)?.as_ref() == Some(item) {
            return Ok(false);
        }
        let version = to_i64("catalog version", self.next("catalog", 1)?)?;
        self.conn.execute(
            "INSERT INTO hub_catalog (gtin, version, item) VALUES ($1, $2, $3)
             ON CONFLICT (gtin) DO UPDATE SET version = $2, item = $3",
            &[&g(item.gtin)?, &version, &to_postcard("hub_catalog", item)?],
        )?;
        Ok(true)
    }

    fn catalog_since(
        &mut self,
        cursor: u64,
        limit: usize,
    ) -> Result<(Vec<CatalogItem>, u64), StorageError> {
        let rows = self.conn.query(
            "SELECT version, item FROM hub_catalog WHERE version > $1 ORDER BY version LIMIT $2",
            &[&cursor_i64(cursor), &to_i64("limit", limit as u64)?],
        )?;
        let mut next = cursor;
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            next = next.max(int(r, 0, "hub_catalog")?);
            items.push(postcard(r, 1, "hub_catalog")?);
        }
        Ok((items, next))
    }

    fn store_record(&self, store: &str) -> Result<Option<StoreRecord>, StorageError> {
        self.conn
            .query_opt("SELECT record FROM hub_stores WHERE store = $1", &[&store])?
            .map(|r| json(&r, 0, "hub_stores"))
            .transpose()
    }

    fn put_store_record(&mut self, record: &StoreRecord) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT INTO hub_stores (store, record) VALUES ($1, $2)
             ON CONFLICT (store) DO UPDATE SET record = $2",
            &[&record.store.as_str(), &Json(record)],
        )?;
        Ok(())
    }

    fn add_sales(&mut self, store: &str, minute: u64, units: u64) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT INTO hub_sales_per_minute (store, minute, units) VALUES ($1, $2, $3)
             ON CONFLICT (store, minute) DO UPDATE SET units = hub_sales_per_minute.units + $3",
            &[&store, &to_i64("minute", minute)?, &to_i64("units", units)?],
        )?;
        Ok(())
    }

    fn drop_sales_before(&mut self, store: &str, minute: u64) -> Result<(), StorageError> {
        self.conn.execute(
            "DELETE FROM hub_sales_per_minute WHERE store = $1 AND minute < $2",
            &[&store, &to_i64("minute", minute)?],
        )?;
        Ok(())
    }

    fn demand_at(
        &self,
        location: &LocationId,
    ) -> Result<Vec<(Gtin, DemandEstimate)>, StorageError> {
        let rows = self.conn.query(
            "SELECT gtin, estimate FROM hub_online_demand WHERE location = $1 ORDER BY gtin",
            &[&location.as_str()],
        )?;
        rows.iter()
            .map(|r| {
                Ok((
                    gtin(r, 0, "hub_online_demand")?,
                    json(r, 1, "hub_online_demand")?,
                ))
            })
            .collect()
    }

    fn demand(
        &self,
        location: &LocationId,
        gtin: Gtin,
    ) -> Result<Option<DemandEstimate>, StorageError> {
        self.conn
            .query_opt(
                "SELECT estimate FROM hub_online_demand WHERE location = $1 AND gtin = $2",
                &[&location.as_str(), &g(gtin)?],
            )?
            .map(|r| json(&r, 0, "hub_online_demand"))
            .transpose()
    }

    fn put_demand(
        &mut self,
        location: &LocationId,
        gtin: Gtin,
        demand: &DemandEstimate,
    ) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT INTO hub_online_demand (location, gtin, estimate) VALUES ($1, $2, $3)
             ON CONFLICT (location, gtin) DO UPDATE SET estimate = $3",
            &[&location.as_str(), &g(gtin)?, &Json(demand)],
        )?;
        Ok(())
    }

    fn forget_demand(&mut self, location: &LocationId, gtin: Gtin) -> Result<(), StorageError> {
        self.conn.execute(
            "DELETE FROM hub_online_demand WHERE location = $1 AND gtin = $2",
            &[&location.as_str(), &g(gtin)?],
        )?;
        Ok(())
    }

    fn grant_record(&self, request_id: u128) -> Result<Option<GrantRecord>, StorageError> {
        self.conn
            .query_opt(
                "SELECT doc FROM hub_grants WHERE request_id = $1",
                &[&uuid::Uuid::from_u128(request_id)],
            )?
            .map(|r| json(&r, 0, "hub_grants"))
            .transpose()
    }

    fn put_grant_record(
        &mut self,
        request_id: u128,
        record: &GrantRecord,
    ) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT INTO hub_grants (request_id, doc) VALUES ($1, $2)
             ON CONFLICT (request_id) DO UPDATE SET doc = $2",
            &[&uuid::Uuid::from_u128(request_id), &Json(record)],
        )?;
        Ok(())
    }

    fn holders(&self, gtin: Gtin) -> Result<Vec<(LocationId, u64)>, StorageError> {
        let rows = self.conn.query(
            "SELECT location, hub_rights FROM hub_counters WHERE gtin = $1 AND hub_rights > 0
             ORDER BY location",
            &[&g(gtin)?],
        )?;
        let mut held: BTreeMap<LocationId, u64> = BTreeMap::new();
        for r in &rows {
            held.insert(location(r, 0, "hub_counters")?, int(r, 1, "hub_counters")?);
        }
        // This batch's writes stand over the table's rows.
        let hub = ReplicaId::hub();
        for (key, (_, counter)) in self.written.iter().filter(|(k, _)| k.gtin == gtin) {
            match counter.rights(&hub) {
                0 => held.remove(&key.location),
                n => held.insert(key.location.clone(), n),
            };
        }
        Ok(held.into_iter().collect())
    }

    fn held_at(&self, gtin: Gtin, store: &LocationId) -> Result<u64, StorageError> {
        if let Some((_, c)) = self.written.get(&ItemKey::new(store.clone(), gtin)) {
            return Ok(c.rights(&ReplicaId::hub()));
        }
        match self.conn.query_opt(
            "SELECT hub_rights FROM hub_counters WHERE location = $1 AND gtin = $2",
            &[&store.as_str(), &g(gtin)?],
        )? {
            Some(r) => int(&r, 0, "hub_counters"),
            None => Ok(0),
        }
    }

    fn routed_order(&self, order_id: &str) -> Result<Option<RoutedOrder>, StorageError> {
        routed_order(self.conn, order_id)
    }

    fn put_routed_order(
        &mut self,
        order: &RoutedOrder,
        was: Option<Status>,
    ) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT INTO hub_routed_orders (order_id, status, doc) VALUES ($1, $2, $3)
             ON CONFLICT (order_id) DO UPDATE SET status = $2, doc = $3",
            &[&order.order_id.as_str(), &order.status.name(), &Json(order)],
        )?;
        self.moved(ORDERS, was.map(Status::name), order.status.name())
    }

    fn store_named_order(&self, order_id: &str) -> Result<Option<OrderIndex>, StorageError> {
        self.conn
            .query_opt(
                "SELECT doc FROM hub_orders WHERE order_id = $1",
                &[&order_id],
            )?
            .map(|r| json(&r, 0, "hub_orders"))
            .transpose()
    }

    fn put_store_named_order(
        &mut self,
        order_id: &str,
        index: &OrderIndex,
    ) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT INTO hub_orders (order_id, doc) VALUES ($1, $2)
             ON CONFLICT (order_id) DO UPDATE SET doc = $2",
            &[&order_id, &Json(index)],
        )?;
        Ok(())
    }

    fn returned(&self, original: EventId) -> Result<BTreeMap<Gtin, u64>, StorageError> {
        let rows = self.conn.query(
            "SELECT gtin, units FROM hub_returned WHERE original = $1",
            &[&original.0],
        )?;
        let mut out = BTreeMap::new();
        for r in &rows {
            out.insert(gtin(r, 0, "hub_returned")?, int(r, 1, "hub_returned")?);
        }
        Ok(out)
    }

    fn add_returned(
        &mut self,
        original: EventId,
        gtin: Gtin,
        units: u64,
    ) -> Result<u64, StorageError> {
        let row = self.conn.query_one(
            "INSERT INTO hub_returned (original, gtin, units) VALUES ($1, $2, $3)
             ON CONFLICT (original, gtin) DO UPDATE SET units = hub_returned.units + $3
             RETURNING units",
            &[&original.0, &g(gtin)?, &to_i64("units", units)?],
        )?;
        int(&row, 0, "hub_returned")
    }

    fn return_claims(&self, original: EventId) -> Result<Vec<(EventId, Claim)>, StorageError> {
        let rows = self.conn.query(
            "SELECT return_id, claim FROM hub_return_claims WHERE original = $1
             ORDER BY return_id",
            &[&original.0],
        )?;
        rows.iter()
            .map(|r| {
                Ok((
                    EventId(col(r, 0, "hub_return_claims")?),
                    json(r, 1, "hub_return_claims")?,
                ))
            })
            .collect()
    }

    fn put_return_claim(
        &mut self,
        original: EventId,
        return_id: EventId,
        claim: &Claim,
    ) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT INTO hub_return_claims (original, return_id, claim) VALUES ($1, $2, $3)
             ON CONFLICT (original, return_id) DO UPDATE SET claim = $3",
            &[&original.0, &return_id.0, &Json(claim)],
        )?;
        Ok(())
    }

    fn take_return_claim(
        &mut self,
        original: EventId,
        return_id: EventId,
    ) -> Result<bool, StorageError> {
        Ok(self.conn.execute(
            "DELETE FROM hub_return_claims WHERE original = $1 AND return_id = $2",
            &[&original.0, &return_id.0],
        )? > 0)
    }

    fn put_cross_return(&mut self, cross: &CrossReturn) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT INTO hub_cross_returns (return_id, doc) VALUES ($1, $2)
             ON CONFLICT (return_id) DO UPDATE SET doc = $2",
            &[&cross.return_id.0, &Json(cross)],
        )?;
        Ok(())
    }

    fn held_count(&self, store: &str) -> Result<u64, StorageError> {
        match self
            .conn
            .query_opt("SELECT n FROM hub_held_counts WHERE store = $1", &[&store])?
        {
            Some(r) => int(&r, 0, "hub_held_counts"),
            None => Ok(0),
        }
    }

    fn put_held_count(&mut self, store: &str, n: u64) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT INTO hub_held_counts (store, n) VALUES ($1, $2)
             ON CONFLICT (store) DO UPDATE SET n = $2",
            &[&store, &to_i64("held count", n)?],
        )?;
        Ok(())
    }

    fn held_event(&self, id: EventId) -> Result<Option<HeldEvent>, StorageError> {
        self.conn
            .query_opt("SELECT doc FROM hub_held_events WHERE id = $1", &[&id.0])?
            .map(|r| json_in_bytes(&r, 0, "hub_held_events"))
            .transpose()
    }

    fn put_held(&mut self, held: &HeldEvent) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT INTO hub_held_events (id, doc) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET doc = $2",
            &[&held.event.id.0, &json_bytes("hub_held_events", held)?],
        )?;
        Ok(())
    }

    fn remove_held(&mut self, id: EventId) -> Result<(), StorageError> {
        self.conn
            .execute("DELETE FROM hub_held_events WHERE id = $1", &[&id.0])?;
        Ok(())
    }

    fn transfer(&self, id: &str) -> Result<Option<HubTransfer>, StorageError> {
        transfer(self.conn, id)
    }

    fn put_transfer(
        &mut self,
        t: &HubTransfer,
        was: Option<TransferStatus>,
    ) -> Result<(), StorageError> {
        let status = t.transfer.status.name();
        self.conn.execute(
            "INSERT INTO hub_transfers (transfer_id, status, doc) VALUES ($1, $2, $3)
             ON CONFLICT (transfer_id) DO UPDATE SET status = $2, doc = $3",
            &[&t.transfer.transfer_id.as_str(), &status, &Json(t)],
        )?;
        self.moved(TRANSFERS, was.map(TransferStatus::name), status)
    }

    fn set_transfer_due(
        &mut self,
        seen_at_ms: u64,
        id: &str,
        due: bool,
    ) -> Result<(), StorageError> {
        let since = due.then(|| to_i64("seen at", seen_at_ms)).transpose()?;
        self.conn.execute(
            "UPDATE hub_transfers SET due_since_ms = $2 WHERE transfer_id = $1",
            &[&id, &since],
        )?;
        Ok(())
    }

    fn transfer_received_at_hub(&mut self, id: &str, now_ms: u64) -> Result<(), StorageError> {
        self.conn.execute(
            "UPDATE hub_transfers SET received_hub_ms = $2 WHERE transfer_id = $1",
            &[&id, &to_i64("received at", now_ms)?],
        )?;
        Ok(())
    }

    fn transfers_due(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StorageError> {
        let rows = self.conn.query(
            "SELECT due_since_ms, transfer_id FROM hub_transfers
             WHERE due_since_ms IS NOT NULL AND due_since_ms < $1
             ORDER BY due_since_ms, transfer_id LIMIT $2",
            &[
                &to_i64("cutoff", cutoff_ms)?,
                &to_i64("limit", limit as u64)?,
            ],
        )?;
        rows.iter()
            .map(|r| Ok((int(r, 0, "hub_transfers")?, col(r, 1, "hub_transfers")?)))
            .collect()
    }
}
