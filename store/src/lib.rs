//! `tally-store`: Tally's durable storage on redb, shared by the agent and
//! the hub (which never depend on each other).
//!
//! Unlike `tally-sync`, this crate does I/O: it owns the database files
//! and syncs them (and their directories) to disk, and runs a thread per
//! file that writes its new space ahead ([`prewrite`]). It reads the
//! system clock in one place, [`SystemClock`] (the one
//! `tally_sync::clock::Clock` that does), and nowhere else: the storage
//! itself stamps no times. It has no network and no async runtime.
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
//! - **EPC history is rows.** Costs grow with the work, not with history:
//!   per EPC the store keeps a fixed-width summary
//!   (`tally_sync::epcs::EpcSummary`: sales, returns, first sale) and one
//!   row per sale or return, keyed by the EPC then the record. Recording
//!   an event that touches a tag reads and rewrites the summary and
//!   appends a row, however long the tag's past; a double sale is seen
//!   in the summary and lists a bounded number of sales. Whoever needs
//!   the whole history ([`ReadTxn::epc_history`]) reads the EPC's rows
//!   by range. A database from before (one history per EPC, rewritten
//!   whole per event) is converted once, in the transaction that opens
//!   it.
//! - **Exclusive.** A database file is opened by one process at a time;
//!   a second gets [`StoreError::AlreadyOpen`].
//! - **Bad bytes are errors.** Records that fail to decode are
//!   [`StoreError::Corrupt`], never a panic.
//!
//! # Code map
//! - `db.rs`: [`Db`], opening a database file exclusively and starting
//!   transactions; [`ReadOnlyDb`], a file opened only to read it;
//!   [`sync_parent_dir`].
//! - `txn.rs`: [`WriteTxn`], [`ReadTxn`], and [`LazyTable`] (a table of a
//!   write transaction opened on first use).
//! - `replica.rs`: [`TxnReplica`], `ReplicaStore` over a write
//!   transaction, with the counters' change index and its pruning
//!   ([`PRUNE_LAG`]).
//! - `catalog.rs`: the catalog tables: store an item, read one, read what
//!   changed after a cursor.
//! - `tables.rs`: the file format: table definitions, metadata keys,
//!   record encoding, the reads every transaction type shares, and the
//!   one-time conversion of the old EPC histories.
//! - `error.rs`: [`StoreError`].
//! - `clock.rs`: [`SystemClock`], the system's wall clock, which the
//!   agent's and hub's binaries pass to everything that stamps a time.
//! - [`prewrite`]: the file backend every database is opened with
//!   ([`PrewrittenFile`]), writing zeros ahead of the database's growth.
//! - [`holes`]: the pure set of not-yet-written ranges `prewrite` tracks.
//! - `sim_disk` (feature `sim-disk`, tests only): a simulated disk with a
//!   volatile write cache, for power-cut tests.

pub mod by_status;
mod catalog;
mod clock;
mod db;
mod error;
pub mod holes;
pub mod prewrite;
mod replica;
#[cfg(any(test, feature = "sim-disk"))]
pub mod sim_disk;
mod tables;
mod txn;

pub use clock::SystemClock;
pub use db::{sync_parent_dir, Db, ReadOnlyDb};
pub use error::StoreError;
pub use prewrite::{PrewriteConfig, PrewriteStats, PrewrittenFile};
pub use redb;
pub use replica::{TxnReplica, PRUNE_LAG};
pub use txn::{LazyTable, ReadTxn, WriteTxn};
