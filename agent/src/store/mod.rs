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
//! - **Lost sales are cumulative.** Sales refused for lack of rights are
//!   counted by reason in `agent_lost_sales` (totals that only rise), and
//!   every sync request carries the totals; the hub keeps the largest it
//!   saw, so nothing is taken off on its answer and a repeated request
//!   counts once. Written in the batch after the refusal (which is
//!   answered without waiting for it). A refused sale with an id counts
//!   once per id, and only if no sale under that id was recorded within
//!   `lost::GRACE_MS` of its first refusal (`lost.rs`).
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
//!
//! # Code map
//! - `db.rs`: [`AgentDb`]: opening (store id, tables, the replay after a
//!   crash), the held-back counters readers see, and the snapshot reads.
//! - `txn.rs`: [`AgentTxn`], the command core's `Ledger` over one write
//!   transaction, and [`BatchCounters`], what a batch held back.
//! - `sync.rs`: the sync request from one snapshot and the writes outside
//!   the `Ledger`: [`apply_sync`], [`dead_letter`], [`put_catalog`].
//! - `orders.rs`: this store's allocations of orders (the pick list), by
//!   order id and by status. `transfers.rs`: transfers to and from this
//!   store, by id and by status.
//! - `counts.rs`: RFID cycle-count sessions (their tags and items) and
//!   the tagged units this store holds, for counts' findings.
//! - `lost.rs`: refused sales by id until they count as lost (retries
//!   and overrides of one sale are not lost sales).
//! - `tables.rs`: the agent's table definitions and metadata keys, and
//!   the reads and writes on them the others share.
//! - The outbox's own layout is [`crate::outbox`].

mod counts;
mod db;
mod lost;
mod orders;
mod sync;
mod tables;
mod transfers;
mod txn;

pub use self::counts::{CountDone, CountJob, CountRefusal, TagSeen};
pub use self::db::{AgentDb, OpenError, SaleWithReturns, Unflushed, CACHE_BYTES, DB_FILE};
pub(crate) use self::lost::{note_refused, refused_before, settle as settle_lost};
pub use self::lost::{GRACE_MS as LOST_GRACE_MS, RETAIN_MS as LOST_RETAIN_MS};
pub use self::sync::{apply_sync, dead_letter, put_catalog, unsynced, SyncApplied, SyncPage};
pub(crate) use self::tables::{add_lost, storage};
pub use self::txn::{AgentTxn, BatchCounters};
