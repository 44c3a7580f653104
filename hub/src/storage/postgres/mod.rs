//! [`HubStorage`](super::HubStorage) on PostgreSQL: several hub processes over one
//! database (issue 24).
//!
//! - `conn.rs`: one blocking connection (`tokio-postgres` on the
//!   backend's own runtime), errors mapped to [`StorageError`].
//! - `schema.rs` + `migrations/`: the versioned schema, applied at start
//!   or by `tally-hub migrate`.
//! - `txn.rs`: `PgTxn`, the `HubTxn` the write logic runs
//!   on; `reads.rs`: the snapshot reads.
//! - [`import`]: an embedded hub's data copied in (`migrate --from`).
//! - [`revocations`], [`enroll_codes`], [`bus`]: what the hub processes
//!   over one database share besides its data (revoked certificates,
//!   one-time enrollment codes, live-link messages).
//! - `tls.rs`: TLS to the server, set by libpq's `sslmode`,
//!   `sslrootcert`, `sslcert` and `sslkey` in the URL.
//! - [`unknown_commit`]: a COMMIT that got no answer, resolved by looking
//!   for the batch's mark on a new connection.
//!
//! # Design constraints
//! - **Group commit, as the embedded hub.** [`HubStorage::write_batch`](super::HubStorage::write_batch)
//!   runs the writer's whole batch in one transaction on the process's
//!   writer connection and commits it once (`synchronous_commit` on,
//!   set so by every hub session whatever the database, role or URL say:
//!   committed means on the server's disk, so a 2xx still means
//!   durable; a server with `fsync` off is warned of at start).
//! - **One write at a time across processes.** Each batch first takes a
//!   transaction-scoped advisory lock (the hub's write lock), so batches
//!   of every hub process over the database run one after another and
//!   the logic's read-validate-write steps hold as with one writer
//!   (nothing the embedded hub refuses slips through a race between two
//!   processes). Finer locks (per location) are the next step.
//! - **Reads off the writer.** Snapshot reads use a small pool of other
//!   connections, each multi-statement read in one `REPEATABLE READ`
//!   transaction.

pub mod bus;
mod conn;
pub use self::conn::Durability;
pub mod enroll_codes;
pub mod import;
mod listen;
mod reads;
pub mod revocations;
pub mod schema;
mod tls;
mod txn;
pub mod unknown_commit;

use std::sync::{Condvar, Mutex, MutexGuard};

use tracing::{info, warn};

pub use self::conn::DatabaseUrl;
use self::conn::PgConn;
pub use self::schema::MigrationReport;
use self::txn::PgTxn;
use super::logic::BatchWrite;
use super::routed::RoutingSettings;
use super::txn::HubTxn;
use super::{HubWrite, StorageError, SyncSettings};

/// The advisory lock every write batch takes ("tally-wr" in ASCII).
pub(crate) const WRITE_LOCK: i64 = 0x7461_6c6c_792d_7772;

/// Most read connections open at once, by default.
pub const DEFAULT_READ_CONNECTIONS: usize = 16;

/// How long a read waits for a connection when all are busy.
const READ_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The runtime that drives the backend's connections: its own, so the
/// blocking storage calls never run on (or stall) the hub's.
fn runtime() -> Result<tokio::runtime::Runtime, StorageError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tally-hub-pg")
        .enable_all()
        .build()
        .map_err(|e| StorageError::Db(format!("cannot start the database runtime: {e}")))
}

/// Runs `work` on a connection to `url` of its own, on a runtime of its
/// own that is stopped after: what the one-shot commands (`migrate`,
/// `revoke`, the import) share. Blocks.
pub(crate) fn with_connection<T, E: From<StorageError>>(
    url: &DatabaseUrl,
    work: impl FnOnce(&PgConn) -> Result<T, E>,
) -> Result<T, E> {
    let rt = runtime()?;
    let out = match PgConn::connect(url, rt.handle()) {
        Ok(conn) => work(&conn),
        Err(e) => Err(E::from(e)),
    };
    rt.shutdown_background();
    out
}

/// The hub's storage on PostgreSQL. See the module docs.
#[derive(Debug)]
pub struct PgHub {
    url: DatabaseUrl,
    rt: Option<tokio::runtime::Runtime>,
    writer: Mutex<Option<PgConn>>,
    /// The token of this process's last committed writing batch, deleted
    /// by the next ([`unknown_commit`]).
    last_mark: Mutex<Option<uuid::Uuid>>,
    readers: ReadPool,
    settings: SyncSettings,
    routing: RoutingSettings,
}

impl PgHub {
    /// Connects to the database at `url` and brings its schema up to
    /// date. Blocks: call it outside async tasks.
    pub fn connect(url: &DatabaseUrl, settings: SyncSettings) -> Result<Self, StorageError> {
        let rt = runtime()?;
        let writer = PgConn::connect(url, rt.handle())?;
        schema::migrate(&writer)?;
        let durability = writer.durability()?;
        if durability.fsync {
            info!(synchronous_commit = %durability.synchronous_commit, "PostgreSQL commits are durable before the hub answers.");
        } else {
            warn!("The PostgreSQL server runs with fsync off: a power cut or an OS crash can lose writes the hub acknowledged. Turn fsync on for production.");
        }
        Ok(Self {
            url: url.clone(),
            rt: Some(rt),
            writer: Mutex::new(Some(writer)),
            last_mark: Mutex::new(None),
            readers: ReadPool::new(DEFAULT_READ_CONNECTIONS),
            settings,
            routing: RoutingSettings::default(),
        })
    }

    /// The server's durability settings as the writer session sees them
    /// (read now).
    pub fn durability(&self) -> Result<Durability, StorageError> {
        let guard = self.writer()?;
        match guard.as_ref() {
            Some(conn) => conn.durability(),
            None => Err(StorageError::Db("no writer connection".into())),
        }
    }

    /// The hub with `routing` for orders that name no store.
    pub fn with_routing(mut self, routing: RoutingSettings) -> Self {
        self.routing = routing;
        self
    }

    /// The hub with at most `n` (at least 1) read connections open at
    /// once; reads beyond wait for one (up to 10 s, then an error).
    pub fn with_read_connections(mut self, n: usize) -> Self {
        self.readers = ReadPool::new(n.max(1));
        self
    }

    /// Brings the schema at `url` up to date and says what it did
    /// (`tally-hub migrate`). Blocks.
    pub fn migrate(url: &DatabaseUrl) -> Result<MigrationReport, StorageError> {
        with_connection(url, schema::migrate)
    }

    fn handle(&self) -> Result<&tokio::runtime::Handle, StorageError> {
        self.rt
            .as_ref()
            .map(|rt| rt.handle())
            .ok_or_else(|| StorageError::Db("the database runtime is stopped".into()))
    }

    /// The writer connection, reconnected if the last one broke.
    fn writer(&self) -> Result<MutexGuard<'_, Option<PgConn>>, StorageError> {
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| StorageError::Db("the writer connection is poisoned".into()))?;
        if guard.as_ref().is_none_or(PgConn::is_closed) {
            *guard = Some(PgConn::connect(&self.url, self.handle()?)?);
        }
        Ok(guard)
    }

    /// Runs `read` on a pooled read connection.
    fn read<T>(
        &self,
        read: impl FnOnce(&PgConn) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let handle = self.handle()?;
        let lease = self
            .readers
            .take(|| PgConn::connect(&self.url, handle), READ_WAIT)?;
        read(lease.conn()?)
    }
}

/// The read connections: at most `max` open at once (the database's
/// `max_connections` is shared by every hub process); a read takes an
/// idle one, opens one while fewer are open, or waits for one.
#[derive(Debug)]
struct ReadPool {
    state: Mutex<PoolState>,
    freed: Condvar,
    max: usize,
}

#[derive(Debug, Default)]
struct PoolState {
    idle: Vec<PgConn>,
    /// Connections open: idle and lent.
    open: usize,
}

impl ReadPool {
    fn new(max: usize) -> Self {
        Self {
            state: Mutex::new(PoolState::default()),
            freed: Condvar::new(),
            max,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, PoolState>, StorageError> {
        self.state
            .lock()
            .map_err(|_| StorageError::Db("the read pool is poisoned".into()))
    }

    /// A connection, lent until the lease drops: an idle one, a new one
    /// (`connect`) while fewer than `max` are open, else the next one
    /// freed within `wait`.
    fn take(
        &self,
        connect: impl FnOnce() -> Result<PgConn, StorageError>,
        wait: std::time::Duration,
    ) -> Result<Lease<'_>, StorageError> {
        let deadline = std::time::Instant::now() + wait;
        let mut state = self.lock()?;
        loop {
            while let Some(conn) = state.idle.pop() {
                if conn.is_closed() {
                    state.open -= 1;
                    continue;
                }
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match connect() {
                    Ok(conn) => Ok(Lease {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.state
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(StorageError::Db(format!(
                    "all {} read connections stayed busy for {} s",
                    self.max,
                    wait.as_secs()
                )));
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .map_err(|_| StorageError::Db("the read pool is poisoned".into()))?
                .0;
        }
    }
}

/// A read connection lent by the pool, given back when dropped (a closed
/// one is counted out).
struct Lease<'p> {
    pool: &'p ReadPool,
    conn: Option<PgConn>,
}

impl Lease<'_> {
    fn conn(&self) -> Result<&PgConn, StorageError> {
        // Present from creation until drop.
        self.conn
            .as_ref()
            .ok_or_else(|| StorageError::Db("a read connection was given back twice".into()))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut state = self
            .pool
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if conn.is_closed() {
            state.open -= 1;
        } else {
            state.idle.push(conn);
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}

impl Drop for PgHub {
    fn drop(&mut self) {
        // Close the connections first, then stop their runtime without
        // waiting (dropping a runtime may not block inside async code).
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        if let Ok(mut pool) = self.readers.state.lock() {
            pool.idle.clear();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgHub {
    /// Runs `batch` in one transaction under the hub's write lock and
    /// commits it; see the module docs.
    fn run_batch(
        &self,
        batch: &mut dyn FnMut(&mut dyn HubWrite) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let mut guard = self.writer()?;
        let conn = guard
            .as_ref()
            .ok_or_else(|| StorageError::Db("no writer connection".into()))?;
        let mut last_mark = self
            .last_mark
            .lock()
            .map_err(|_| StorageError::Db("the commit mark is poisoned".into()))?;
        let mut noted = None;
        let done = conn.in_transaction(|| {
            // A writer that waits this long for the lock gives up, and
            // the batch runs again (a retriable race): the lock's holder
            // is stuck, and the server ends its session in a minute
            // (five runs of 15 s outlast that).
            conn.batch("SET LOCAL lock_timeout = '15s'")?;
            conn.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
            schema::check_not_newer(conn)?;
            let mut write = BatchWrite {
                txn: PgTxn::new(conn),
                settings: &self.settings,
                routing: &self.routing,
            };
            batch(&mut write)?;
            write.txn.finish()?;
            // Its mark: if the COMMIT gets no answer, the database is
            // asked whether it is there.
            noted = Some(unknown_commit::note(conn, *last_mark)?);
            Ok(())
        });
        if matches!(done, Err(StorageError::CommitUnknown(_))) || conn.is_closed() {
            // The connection broke (its client may not know yet): the
            // next batch opens a new one.
            *guard = None;
        }
        let done = match (done, &noted) {
            (Err(StorageError::CommitUnknown(why)), Some(noted)) => {
                drop(guard);
                let handle = self.handle()?;
                unknown_commit::resolve(noted, why, || PgConn::connect(&self.url, handle))
            }
            (done, _) => done,
        };
        if let (Ok(()), Some(token)) = (&done, noted.and_then(|n| n.token)) {
            *last_mark = Some(token);
        }
        done
    }
}
