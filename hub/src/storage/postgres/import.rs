//! `tally-hub migrate --from`: everything an embedded hub keeps, copied
//! into a PostgreSQL database, so a chain moves to PostgreSQL without
//! losing anything (the records come from `redb/export.rs`).
//!
//! # Design constraints
//! - **All or nothing.** The whole import is one transaction: a failure
//!   anywhere (a corrupt record, the server) rolls it back and leaves the
//!   database as it was. It holds the hub's write lock (as a batch does),
//!   so no hub process over the database writes meanwhile.
//! - **Only into an empty database.** A database any hub has written to
//!   (a row in any of the hub's data tables) is refused ([`hub_data_in`]):
//!   two histories cannot be merged by copying rows.
//! - **The rows `PgTxn` would have written.** Counters, events and
//!   catalog items as `tally_sync::codec` postcard (an event in today's
//!   layout, whichever the file kept), the hub's records as the same JSON,
//!   `hub_rights` the counter's rights of [`ReplicaId::hub`], a routed
//!   order's and a transfer's status from their records.
//! - **Cursors keep working.** Stores and HQ hold cursors the embedded hub
//!   handed out. Each counter keeps its version; the embedded hub's
//!   versions are one sequence for every location and PostgreSQL's are
//!   per location, so every location (each counter's and each store's)
//!   starts at the embedded hub's latest inventory version: a store's
//!   cursor brings exactly the counters changed after it, and new
//!   versions continue above it. Catalog versions and allocation change
//!   versions are copied as they are and their sequences set where the
//!   embedded hub's stood; the exception sequence goes on after the
//!   highest id. A transfer's `due_since_ms` and `received_hub_ms` come
//!   from the embedded hub's indexes of them.
//! - **Streaming, in bulk.** Records arrive one at a time, table by
//!   table; each table's are buffered up to [`BATCH_ROWS`] rows or about
//!   [`BATCH_BYTES`] bytes and sent with one binary `COPY`, so memory is
//!   bounded whatever the file's size. The indexes stay in place (the
//!   tables are new, and one transaction covers everything), and the
//!   tables are analysed before the commit, so the hub's first queries
//!   are planned on their real sizes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tally_sync::codec;
use tally_sync::exchange::EpcMove;
use tally_sync::ReplicaId;
use tokio_postgres::types::{Json, Type};

use super::conn::{to_i64, CopyCell, PgConn};
use super::txn::{col, json_bytes};
use super::{schema, DatabaseUrl, WRITE_LOCK};
use crate::storage::redb::export::{self, Cursors, Record, Sink};
use crate::storage::StorageError;

/// Most rows sent in one `COPY`.
pub const BATCH_ROWS: usize = 5_000;
/// About the most bytes sent in one `COPY`.
pub const BATCH_BYTES: usize = 8 << 20;

/// Why a migration (`tally-hub migrate --from`, and its `--verify`)
/// did not happen, by what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// `--from` names no embedded hub: give the data directory a hub ran
    /// on (the one holding `hub.redb`).
    #[error(
        "no embedded hub database at {}: --from names the data directory of a stopped hub, \
         the one holding hub.redb",
        .0.display()
    )]
    NoSource(PathBuf),
    /// The database holds a hub's data already (these tables have rows):
    /// import into a new, empty database.
    #[error(
        "the database already holds hub data (rows in {}): import only into a database \
         no hub has written to",
        .0.join(", ")
    )]
    NotEmpty(Vec<&'static str>),
    /// Reading the embedded hub or writing the database failed; nothing
    /// was imported.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What an import copied.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// The embedded hub's file.
    pub source: PathBuf,
    /// The database (password hidden).
    pub target: String,
    /// Rows written, by table.
    pub rows: BTreeMap<&'static str, u64>,
    /// Entries of the embedded hub's transfer indexes naming no transfer
    /// (nothing to copy them to; the embedded hub ignored them too).
    pub dangling: u64,
    /// Seconds the import took, from opening the file to the commit.
    pub seconds: f64,
}

impl ImportReport {
    /// Rows written in all.
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total_rows();
        write!(
            f,
            "Imported {total} rows from {} into {} in {:.2} s ({:.0} rows/s):",
            self.source.display(),
            self.target,
            self.seconds,
            total as f64 / self.seconds.max(1e-9),
        )?;
        for (table, n) in &self.rows {
            write!(f, " {table} {n}")?;
        }
        if self.dangling > 0 {
            write!(
                f,
                "; {} transfer index entries named no transfer",
                self.dangling
            )?;
        }
        Ok(())
    }
}

/// The embedded hub database of the data directory `data_dir`, if there
/// is one.
pub fn source_path(data_dir: &Path) -> Result<PathBuf, MigrateError> {
    let file = crate::pki::DataDir::new(data_dir).database();
    if file.is_file() {
        Ok(file)
    } else {
        Err(MigrateError::NoSource(file))
    }
}

/// The hub's data tables, and how to tell one has a row.
const DATA_TABLES: &[(&str, &str)] = &[
    ("hub_events", "SELECT EXISTS (SELECT 1 FROM hub_events)"),
    ("hub_stores", "SELECT EXISTS (SELECT 1 FROM hub_stores)"),
    ("hub_counters", "SELECT EXISTS (SELECT 1 FROM hub_counters)"),
    (
        "hub_locations",
        "SELECT EXISTS (SELECT 1 FROM hub_locations)",
    ),
    ("hub_catalog", "SELECT EXISTS (SELECT 1 FROM hub_catalog)"),
    (
        "hub_epc_state",
        "SELECT EXISTS (SELECT 1 FROM hub_epc_state)",
    ),
    ("hub_epc_rows", "SELECT EXISTS (SELECT 1 FROM hub_epc_rows)"),
    (
        "hub_explained",
        "SELECT EXISTS (SELECT 1 FROM hub_explained)",
    ),
    (
        "hub_sales_per_minute",
        "SELECT EXISTS (SELECT 1 FROM hub_sales_per_minute)",
    ),
    (
        "hub_online_demand",
        "SELECT EXISTS (SELECT 1 FROM hub_online_demand)",
    ),
    (
        "hub_held_counts",
        "SELECT EXISTS (SELECT 1 FROM hub_held_counts)",
    ),
    (
        "hub_held_events",
        "SELECT EXISTS (SELECT 1 FROM hub_held_events)",
    ),
    ("hub_orders", "SELECT EXISTS (SELECT 1 FROM hub_orders)"),
    ("hub_grants", "SELECT EXISTS (SELECT 1 FROM hub_grants)"),
    (
        "hub_exceptions",
        "SELECT EXISTS (SELECT 1 FROM hub_exceptions)",
    ),
    (
        "hub_routed_orders",
        "SELECT EXISTS (SELECT 1 FROM hub_routed_orders)",
    ),
    (
        "hub_allocation_changes",
        "SELECT EXISTS (SELECT 1 FROM hub_allocation_changes)",
    ),
    (
        "hub_transfers",
        "SELECT EXISTS (SELECT 1 FROM hub_transfers)",
    ),
    (
        "hub_status_counts",
        "SELECT EXISTS (SELECT 1 FROM hub_status_counts)",
    ),
    ("hub_returned", "SELECT EXISTS (SELECT 1 FROM hub_returned)"),
    (
        "hub_return_claims",
        "SELECT EXISTS (SELECT 1 FROM hub_return_claims)",
    ),
    (
        "hub_cross_returns",
        "SELECT EXISTS (SELECT 1 FROM hub_cross_returns)",
    ),
];

/// The hub's data tables with a row in them, on `conn` (schema made).
fn tables_with_data(conn: &PgConn) -> Result<Vec<&'static str>, StorageError> {
    let mut found = Vec::new();
    for &(table, sql) in DATA_TABLES {
        let row = conn.query_one(sql, &[])?;
        if col::<bool>(&row, 0, table)? {
            found.push(table);
        }
    }
    Ok(found)
}

/// The hub's data tables at `url` that hold a row (none: nothing was
/// imported there, and no hub wrote to it), after bringing its schema up
/// to date. Blocks.
pub fn hub_data_in(url: &DatabaseUrl) -> Result<Vec<&'static str>, StorageError> {
    super::with_connection(url, |conn| {
        schema::migrate(conn)?;
        tables_with_data(conn)
    })
}

/// Copies everything the embedded hub of data directory `data_dir` keeps
/// into the database at `url` (schema made or brought up to date first),
/// in one transaction. See the module docs. Blocks.
pub fn import(url: &DatabaseUrl, data_dir: &Path) -> Result<ImportReport, MigrateError> {
    let source = source_path(data_dir)?;
    let started = Instant::now();
    let (rows, dangling) = super::with_connection(url, |conn| {
        schema::migrate(conn)?;
        in_one_transaction(conn, &source)
    })?;
    let report = ImportReport {
        source,
        target: url.to_string(),
        rows,
        dangling,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        rows = report.total_rows(),
        seconds = report.seconds,
        "Embedded hub imported."
    );
    Ok(report)
}

type Imported = (BTreeMap<&'static str, u64>, u64);

fn in_one_transaction(conn: &PgConn, source: &Path) -> Result<Imported, MigrateError> {
    conn.in_transaction(|| copy_all(conn, source))
}

fn copy_all(conn: &PgConn, source: &Path) -> Result<Imported, MigrateError> {
    conn.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    let found = tables_with_data(conn)?;
    if !found.is_empty() {
        return Err(MigrateError::NotEmpty(found));
    }
    let mut importer = Importer {
        conn,
        pending: None,
        pending_bytes: 0,
        rows: BTreeMap::new(),
        dangling: 0,
        locations: BTreeSet::new(),
    };
    let cursors = export::export(source, &mut importer)?;
    importer.flush()?;
    importer.set_cursors(&cursors)?;
    conn.batch("ANALYZE")?;
    Ok((importer.rows, importer.dangling))
}

/// Where a table's rows go: one binary `COPY` into its columns.
struct CopyTo {
    table: &'static str,
    sql: &'static str,
    types: &'static [Type],
}

macro_rules! copy_to {
    ($name:ident, $table:literal, ($($column:literal),+), [$($ty:ident),+]) => {
        const $name: CopyTo = CopyTo {
            table: $table,
            sql: concat!(
                "COPY ", $table, " (", copy_to!(@columns $($column),+),
                ") FROM STDIN (FORMAT binary)"
            ),
            types: &[$(Type::$ty),+],
        };
    };
    (@columns $first:literal $(, $rest:literal)*) => {
        concat!($first $(, ", ", $rest)*)
    };
}

copy_to!(
    COUNTERS,
    "hub_counters",
    ("location", "gtin", "version", "counter", "hub_rights"),
    [TEXT, INT8, INT8, BYTEA, INT8]
);
copy_to!(
    EVENTS,
    "hub_events",
    ("id", "location", "body"),
    [UUID, TEXT, BYTEA]
);
copy_to!(
    CATALOG,
    "hub_catalog",
    ("gtin", "version", "item"),
    [INT8, INT8, BYTEA]
);
copy_to!(
    EPC_STATE,
    "hub_epc_state",
    ("epc", "state", "double_sold"),
    [BYTEA, JSONB, BOOL]
);
copy_to!(
    EPC_ROWS,
    "hub_epc_rows",
    ("epc", "move", "event", "replica"),
    [BYTEA, INT2, UUID, TEXT]
);
copy_to!(
    EXPLAINED,
    "hub_explained",
    ("location", "gtin", "added", "removed"),
    [TEXT, INT8, INT8, INT8]
);
copy_to!(STORES, "hub_stores", ("store", "record"), [TEXT, JSONB]);
copy_to!(
    SALES,
    "hub_sales_per_minute",
    ("store", "minute", "units"),
    [TEXT, INT8, INT8]
);
copy_to!(
    DEMAND,
    "hub_online_demand",
    ("location", "gtin", "estimate"),
    [TEXT, INT8, JSONB]
);
copy_to!(HELD_COUNTS, "hub_held_counts", ("store", "n"), [TEXT, INT8]);
copy_to!(HELD, "hub_held_events", ("id", "doc"), [UUID, BYTEA]);
copy_to!(ORDERS, "hub_orders", ("order_id", "doc"), [TEXT, JSONB]);
copy_to!(GRANTS, "hub_grants", ("request_id", "doc"), [UUID, JSONB]);
copy_to!(EXCEPTIONS, "hub_exceptions", ("id", "doc"), [INT8, JSONB]);
copy_to!(
    ROUTED,
    "hub_routed_orders",
    ("order_id", "status", "doc"),
    [TEXT, TEXT, JSONB]
);
copy_to!(
    CHANGES,
    "hub_allocation_changes",
    ("store", "key", "version"),
    [TEXT, TEXT, INT8]
);
copy_to!(
    TRANSFERS,
    "hub_transfers",
    ("transfer_id", "status", "doc"),
    [TEXT, TEXT, JSONB]
);
copy_to!(
    COUNTS,
    "hub_status_counts",
    ("kind", "status", "n"),
    [TEXT, TEXT, INT8]
);
copy_to!(
    RETURNED,
    "hub_returned",
    ("original", "gtin", "units"),
    [UUID, INT8, INT8]
);
copy_to!(
    CLAIMS,
    "hub_return_claims",
    ("original", "return_id", "claim"),
    [UUID, UUID, JSONB]
);
copy_to!(
    CROSS,
    "hub_cross_returns",
    ("return_id", "doc"),
    [UUID, JSONB]
);

/// Which of a transfer's times an index entry sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransferTime {
    /// `due_since_ms`, from `hub_transfers_due`.
    Due,
    /// `received_hub_ms`, from `hub_transfers_received`.
    Received,
}

/// Rows waiting to be sent.
enum Pending {
    Copy(&'static CopyTo, Vec<Vec<CopyCell>>),
    Times(TransferTime, Vec<String>, Vec<i64>),
}

/// The [`Sink`] the export hands records to: each record as the rows
/// `PgTxn` would have written, batched per table.
struct Importer<'c> {
    conn: &'c PgConn,
    pending: Option<Pending>,
    pending_bytes: usize,
    rows: BTreeMap<&'static str, u64>,
    dangling: u64,
    /// Every location a counter or a store names.
    locations: BTreeSet<String>,
}

/// An estimate of a JSON document's size, for batching.
const DOC_BYTES: usize = 512;

fn cell<T: tokio_postgres::types::ToSql + Sync + Send + 'static>(v: T) -> CopyCell {
    Box::new(v)
}

fn int(what: &'static str, v: u64) -> Result<CopyCell, StorageError> {
    Ok(cell(to_i64(what, v)?))
}

fn doc<T: Serialize + fmt::Debug + Sync + Send + 'static>(v: T) -> CopyCell {
    cell(Json(v))
}

fn postcard<T: Serialize>(table: &'static str, v: &T) -> Result<Vec<u8>, StorageError> {
    codec::to_bytes(v).map_err(|e| StorageError::corrupt(table, e))
}

/// `record` as a row of its table, with the row's estimated size.
fn row(record: Record) -> Result<(&'static CopyTo, Vec<CopyCell>, usize), StorageError> {
    Ok(match record {
        Record::Counter {
            key,
            version,
            counter,
        } => {
            let body = postcard("hub_counters", &counter)?;
            let size = body.len() + 64;
            let row = vec![
                cell(key.location.as_str().to_string()),
                int("gtin", key.gtin.as_u64())?,
                int("counter version", version)?,
                cell(body),
                int("rights", counter.rights(&ReplicaId::hub()))?,
            ];
            (&COUNTERS, row, size)
        }
        Record::Event(e) => {
            let body = postcard("hub_events", &*e)?;
            let size = body.len() + 64;
            let row = vec![
                cell(e.id.0),
                cell(e.location.as_str().to_string()),
                cell(body),
            ];
            (&EVENTS, row, size)
        }
        Record::Catalog { version, item } => {
            let body = postcard("hub_catalog", &item)?;
            let size = body.len() + 32;
            let row = vec![
                int("gtin", item.gtin.as_u64())?,
                int("catalog version", version)?,
                cell(body),
            ];
            (&CATALOG, row, size)
        }
        Record::EpcState { epc, state } => {
            let double_sold = state.double_sold;
            let row = vec![cell(epc.as_bytes().to_vec()), doc(state), cell(double_sold)];
            (&EPC_STATE, row, DOC_BYTES)
        }
        Record::EpcRow {
            epc,
            movement,
            event,
            replica,
        } => {
            let code: i16 = match movement {
                EpcMove::Sale => 0,
                EpcMove::Return => 1,
            };
            let row = vec![
                cell(epc.as_bytes().to_vec()),
                cell(code),
                cell(event.0),
                cell(replica.as_str().to_string()),
            ];
            (&EPC_ROWS, row, 96)
        }
        Record::Explained { key, explained } => {
            let row = vec![
                cell(key.location.as_str().to_string()),
                int("gtin", key.gtin.as_u64())?,
                int("added", explained.added)?,
                int("removed", explained.removed)?,
            ];
            (&EXPLAINED, row, 64)
        }
        Record::Store(record) => {
            let row = vec![cell(record.store.clone()), doc(record)];
            (&STORES, row, DOC_BYTES)
        }
        Record::Sales {
            store,
            minute,
            units,
        } => {
            let row = vec![cell(store), int("minute", minute)?, int("units", units)?];
            (&SALES, row, 48)
        }
        Record::Demand { key, estimate } => {
            let row = vec![
                cell(key.location.as_str().to_string()),
                int("gtin", key.gtin.as_u64())?,
                doc(estimate),
            ];
            (&DEMAND, row, DOC_BYTES)
        }
        Record::HeldCount { store, n } => {
            let row = vec![cell(store), int("held count", n)?];
            (&HELD_COUNTS, row, 48)
        }
        Record::Held(h) => {
            let size = postcard("hub_held_events", &h.event)?.len() + DOC_BYTES;
            let row = vec![
                cell(h.event.id.0),
                cell(json_bytes("hub_held_events", &*h)?),
            ];
            (&HELD, row, size)
        }
        Record::StoreNamedOrder { order_id, index } => {
            let row = vec![cell(order_id), doc(index)];
            (&ORDERS, row, DOC_BYTES)
        }
        Record::Grant { request_id, record } => {
            let row = vec![cell(uuid::Uuid::from_u128(request_id)), doc(record)];
            (&GRANTS, row, DOC_BYTES)
        }
        Record::Exception(x) => {
            let row = vec![int("exception id", x.id)?, doc(x)];
            (&EXCEPTIONS, row, DOC_BYTES)
        }
        Record::RoutedOrder(o) => {
            let row = vec![
                cell(o.order_id.clone()),
                cell(o.status.name().to_string()),
                doc(o),
            ];
            (&ROUTED, row, DOC_BYTES)
        }
        Record::AllocationChange {
            store,
            key,
            version,
        } => {
            let row = vec![
                cell(store.as_str().to_string()),
                cell(key),
                int("allocation version", version)?,
            ];
            (&CHANGES, row, 64)
        }
        Record::Transfer(t) => {
            let row = vec![
                cell(t.transfer.transfer_id.clone()),
                cell(t.transfer.status.name().to_string()),
                doc(*t),
            ];
            (&TRANSFERS, row, DOC_BYTES)
        }
        Record::StatusCount { kind, status, n } => {
            let row = vec![cell(kind), cell(status), int("count", n)?];
            (&COUNTS, row, 48)
        }
        Record::Returned {
            original,
            gtin,
            units,
        } => {
            let row = vec![
                cell(original.0),
                int("gtin", gtin.as_u64())?,
                int("units", units)?,
            ];
            (&RETURNED, row, 48)
        }
        Record::ReturnClaim {
            original,
            return_id,
            claim,
        } => {
            let row = vec![cell(original.0), cell(return_id.0), doc(claim)];
            (&CLAIMS, row, DOC_BYTES)
        }
        Record::CrossReturn(c) => {
            let row = vec![cell(c.return_id.0), doc(*c)];
            (&CROSS, row, DOC_BYTES)
        }
        Record::TransferDue { .. } | Record::TransferReceived { .. } => {
            return Err(StorageError::broken(
                "a transfer's time reached the row encoder",
            ))
        }
    })
}

impl Sink for Importer<'_> {
    fn put(&mut self, record: Record) -> Result<(), StorageError> {
        match record {
            Record::TransferDue { id, since_ms } => self.time(TransferTime::Due, id, since_ms),
            Record::TransferReceived { id, at_ms } => self.time(TransferTime::Received, id, at_ms),
            record => {
                match &record {
                    Record::Counter { key, .. } => self.location(key.location.as_str()),
                    Record::Store(s) => self.location(&s.store),
                    _ => {}
                }
                let (to, row, size) = row(record)?;
                self.copy(to, row, size)
            }
        }
    }
}

impl Importer<'_> {
    fn location(&mut self, location: &str) {
        // Counters come in location order: most are the last one seen.
        if self.locations.last().map(String::as_str) != Some(location) {
            self.locations.insert(location.to_string());
        }
    }

    fn copy(
        &mut self,
        to: &'static CopyTo,
        row: Vec<CopyCell>,
        size: usize,
    ) -> Result<(), StorageError> {
        if !matches!(&self.pending, Some(Pending::Copy(t, _)) if t.table == to.table) {
            self.flush()?;
            self.pending = Some(Pending::Copy(to, Vec::new()));
        }
        let Some(Pending::Copy(_, rows)) = &mut self.pending else {
            return Err(StorageError::broken("no batch to add a row to"));
        };
        rows.push(row);
        self.pending_bytes += size;
        if rows.len() >= BATCH_ROWS || self.pending_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn time(&mut self, which: TransferTime, id: String, ms: u64) -> Result<(), StorageError> {
        if !matches!(&self.pending, Some(Pending::Times(w, _, _)) if *w == which) {
            self.flush()?;
            self.pending = Some(Pending::Times(which, Vec::new(), Vec::new()));
        }
        let Some(Pending::Times(_, ids, times)) = &mut self.pending else {
            return Err(StorageError::broken("no batch to add a time to"));
        };
        times.push(to_i64("transfer time", ms)?);
        ids.push(id);
        if ids.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what is waiting.
    fn flush(&mut self) -> Result<(), StorageError> {
        self.pending_bytes = 0;
        match self.pending.take() {
            None => Ok(()),
            Some(Pending::Copy(to, rows)) => {
                let n = self
                    .conn
                    .copy_in(to.sql, to.types, &rows)
                    .map_err(|e| match e {
                        StorageError::Db(m) => {
                            StorageError::Db(format!("copying {}: {m}", to.table))
                        }
                        other => other,
                    })?;
                *self.rows.entry(to.table).or_default() += n;
                Ok(())
            }
            Some(Pending::Times(which, ids, times)) => {
                let sql = match which {
                    TransferTime::Due => {
                        "UPDATE hub_transfers t SET due_since_ms = v.ms
                         FROM unnest($1::text[], $2::bigint[]) AS v(id, ms)
                         WHERE t.transfer_id = v.id"
                    }
                    TransferTime::Received => {
                        "UPDATE hub_transfers t SET received_hub_ms = v.ms
                         FROM unnest($1::text[], $2::bigint[]) AS v(id, ms)
                         WHERE t.transfer_id = v.id"
                    }
                };
                let set = self.conn.execute(sql, &[&ids, &times])?;
                self.dangling += (ids.len() as u64).saturating_sub(set);
                Ok(())
            }
        }
    }

    /// Sets the sequences where the embedded hub's stood and starts every
    /// location at its inventory version (see the module docs).
    fn set_cursors(&mut self, c: &Cursors) -> Result<(), StorageError> {
        for (name, value) in [
            ("catalog", c.catalog_version),
            ("exceptions", c.last_exception),
            ("exceptions_acked", c.acked_exceptions),
            ("allocations", c.allocation_version),
        ] {
            self.conn.execute(
                "UPDATE hub_sequences SET value = $2 WHERE name = $1",
                &[&name, &to_i64("sequence", value)?],
            )?;
        }
        let version = to_i64("inventory version", c.inventory_version)?;
        let locations: Vec<String> = std::mem::take(&mut self.locations).into_iter().collect();
        for chunk in locations.chunks(BATCH_ROWS) {
            let n = self.conn.execute(
                "INSERT INTO hub_locations (location, counter_version)
                 SELECT location, $2 FROM unnest($1::text[]) AS l(location)",
                &[&chunk, &version],
            )?;
            *self.rows.entry("hub_locations").or_default() += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table the migrations create is either one the import checks
    /// and fills, or one that holds no hub data (the sequences, set from
    /// the file's; revocations, kept beside the PKI files): a table added
    /// later cannot be forgotten by the import.
    #[test]
    fn every_table_of_the_schema_is_checked_and_filled() {
        let filled: BTreeSet<&str> = [
            &COUNTERS,
            &EVENTS,
            &CATALOG,
            &EPC_STATE,
            &EPC_ROWS,
            &EXPLAINED,
            &STORES,
            &SALES,
            &DEMAND,
            &HELD_COUNTS,
            &HELD,
            &ORDERS,
            &GRANTS,
            &EXCEPTIONS,
            &ROUTED,
            &CHANGES,
            &TRANSFERS,
            &COUNTS,
            &RETURNED,
            &CLAIMS,
            &CROSS,
        ]
        .iter()
        .map(|c| c.table)
        .chain(["hub_locations"])
        .collect();
        let checked: BTreeSet<&str> = DATA_TABLES.iter().map(|(t, _)| *t).collect();
        assert_eq!(checked, filled);
        let mut created = BTreeSet::new();
        for (_, _, sql) in schema::MIGRATIONS {
            for part in sql.split("CREATE TABLE ").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                created.insert(name);
            }
        }
        let created: BTreeSet<&str> = created.iter().map(String::as_str).collect();
        // PKI records (the data directory keeps its own), sequences, and
        // the writers' commit marks (a process's own bookkeeping).
        let no_hub_data = BTreeSet::from([
            "hub_sequences",
            "hub_revocations",
            "hub_enroll_codes",
            "hub_issued",
            "hub_commit_marks",
        ]);
        assert_eq!(
            created
                .difference(&no_hub_data)
                .copied()
                .collect::<BTreeSet<_>>(),
            filled
        );
    }
}
