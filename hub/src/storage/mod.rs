//! The hub's storage, behind a small trait so another engine can come
//! later: what the HTTP layer asks of storage, and nothing more.
//!
//! # Design constraints
//! - **One writer, group commit.** Every write (a store's sync, an online
//!   order, a catalog change) goes through the [`crate::writer`] thread,
//!   which hands a batch of them to [`HubStorage::write_batch`]: storage
//!   opens **one** transaction and hands it over as a [`HubWrite`], whose
//!   typed methods ([`HubWrite::sync`], [`HubWrite::order`],
//!   [`HubWrite::catalog`]) the writer calls once per queued write, in
//!   order; then storage commits it durably (fsync) before returning, and
//!   only then are clients answered. A request that is refused (a forged
//!   delta, an order without stock) writes nothing, by construction:
//!   `hub_handle` and `apply_event` validate everything before they
//!   write; the one exception is an order refused for lack of stock,
//!   whose online demand is recorded (demand is what the reserve
//!   follows), and whose reason, once the HTTP layer knows it, is counted
//!   in the store's record by a write of its own
//!   ([`HubWrite::order_refused`]). A storage failure aborts the whole batch and every request in
//!   it gets a retriable error; nothing of it is kept.
//! - **Engine-neutral.** Nothing here names redb: a batch is "begin, run
//!   typed writes, commit or abort", which any transactional engine (e.g.
//!   PostgreSQL) can offer.
//! - **No second counter store.** Counters, events, EPCs and the catalog
//!   are `tally-store`'s; the hub adds only its bookkeeping (per-store sync
//!   records, exceptions, the order-id index, sales per minute, online
//!   demand) in the same transaction.
//! - Reads ([`HubStorage::stock`], …) see a consistent snapshot.

mod logic;
pub mod postgres;
pub mod recent;
pub mod redb;
mod status_counts;
mod txn;
pub mod verify;

use serde::{Deserialize, Serialize};
use tally_sync::exchange::{Identity, SyncRefusal};
use tally_sync::message::CatalogItem;
use tally_sync::rights::{RightsGrant, RightsReleased, RightsRequest};
use tally_sync::{
    BoundedCounter, ByReason, EventId, Gtin, ItemKey, LocationId, Lost, Shortage, SyncRequest,
    SyncResponse,
};

pub use self::logic::sync::SyncSettings;
pub use self::logic::{held, returns, routed, transfers};
pub use self::redb::RedbHub;
pub use self::status_counts::StatusCounts;

/// How far back the hub keeps units sold per store and minute (7 days,
/// the longest `GET /v1/stats/sales` answers); older minutes are
/// forgotten as they leave it.
pub const SALES_WINDOW_MINUTES: u64 = 7 * 24 * 60;

/// A storage failure: the batch did not commit, nothing of it was kept,
/// and the client may retry. The variants say what the writer may do
/// about it ([`StorageError::is_retriable`]).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The embedded store failed (I/O, a corrupt record, a broken
    /// invariant of the hub's own data). Re-running the batch will not
    /// help.
    #[error(transparent)]
    Store(#[from] tally_store::StoreError),
    /// A database server failed or broke the protocol (a server backend's
    /// I/O). Re-running the batch at once will not help.
    #[error("database failure: {0}")]
    Db(String),
    /// The batch lost a race with another writer of the same database
    /// (see [`RetryReason`]): running it again, whole, is expected to
    /// succeed.
    #[error("transaction must be retried: {0}")]
    Retry(RetryReason),
    /// The commit itself failed without saying whether it took (the
    /// connection to the database broke during it, the disk's flush
    /// failed): the batch may have been written. Never retriable as a
    /// lost race; its requests are answered that their outcome is
    /// unknown, and a client's retry under the same ids is answered
    /// alike whichever way it went.
    #[error("the commit was not confirmed (it may have been written): {0}")]
    CommitUnknown(String),
    /// The database's commit failed (redb: the disk's flush) and the
    /// open database takes no more writes: answered as
    /// [`Self::CommitUnknown`] (it may have been written), then the
    /// writer stops, and the hub with it, for a restart that reopens the
    /// database and recovers its last durable commit.
    #[error("the database failed to commit and must be reopened (it may have been written): {0}")]
    CommitFailed(String),
}

impl StorageError {
    /// Whether the writer should run the whole batch again (plan and
    /// writes) before answering its requests with an error: a lost race,
    /// not a failure.
    pub fn is_retriable(&self) -> bool {
        matches!(self, StorageError::Retry(_))
    }

    /// A record of `table` that does not decode or contradicts itself.
    pub(crate) fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> Self {
        StorageError::Store(tally_store::StoreError::Corrupt {
            table,
            detail: detail.to_string(),
        })
    }

    /// The hub's own records contradict what the logic just checked (a
    /// bug): the batch must abort rather than keep half of a write.
    pub(crate) fn broken(detail: impl Into<String>) -> Self {
        StorageError::Store(tally_store::StoreError::Storage(detail.into()))
    }
}

/// Why a batch lost a race with another writer of a shared database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RetryReason {
    /// A row changed since it was read (its revision moved).
    #[error("a row changed since it was read")]
    RevMismatch,
    /// The database broke a deadlock by aborting this transaction.
    #[error("deadlock")]
    Deadlock,
    /// The database could not serialise this transaction with another.
    #[error("serialization failure")]
    Serialization,
    /// A lock was not granted in time.
    #[error("lock timeout")]
    LockTimeout,
    /// Another writer inserted the same key first.
    #[error("unique key taken by another writer")]
    UniqueViolation,
    /// The batch needs a lock its plan did not take.
    #[error("the batch needs a lock it did not plan")]
    Replan,
    /// The connection broke during the COMMIT and the database, asked
    /// after, rolled the batch back: nothing was written.
    #[error("the commit was cut off and rolled back")]
    RolledBack,
}

/// A validated online order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// The client's id for idempotence (generated when absent).
    pub order_id: String,
    /// The store whose stock it takes.
    pub store: LocationId,
    /// Items and quantities, one line per item, in item order.
    pub lines: Vec<(Gtin, u64)>,
    /// The event id to record it under if it is new.
    pub event_id: EventId,
    /// The hub's clock (Unix ms).
    pub now_ms: u64,
    /// Whether to count the order as online demand (accepted or refused
    /// for lack of stock): true on a first attempt, false when the same
    /// order is retried (e.g. after asking a store for rights), so it is
    /// counted once.
    pub record_demand: bool,
}

impl OrderRequest {
    /// What must match for a repeated order id to be the same order.
    pub fn fingerprint(&self) -> String {
        let lines: Vec<String> = self.lines.iter().map(|(g, q)| format!("{g}x{q}")).collect();
        format!("{}|{}", self.store, lines.join(","))
    }
}

/// What a store's sync did.
#[derive(Debug, Clone)]
pub enum SyncResult {
    /// The sync was merged; answer with the response.
    Synced(Box<SyncResponse>, SyncSummary),
    /// The sync was refused whole; nothing was written.
    Refused(SyncRefusal),
}

/// What a catalog change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogResult {
    /// Items that were new or different (all were stored).
    pub changed: usize,
}

/// What a merged sync changed, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Events stored for the first time.
    pub new_events: u64,
    /// Events already stored (resent).
    pub duplicate_events: u64,
    /// Events refused for good (id reused with other content).
    pub rejected_events: u64,
    /// Counters changed by the merge.
    pub merged: u64,
    /// Units of rights the hub gave back.
    pub rights_given: u64,
    /// Exceptions recorded.
    pub exceptions: u64,
}

/// An accepted order, as answered to the client (and again, identically,
/// on a repeat of its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReceipt {
    /// The order id.
    pub order_id: String,
    /// The event recorded for it.
    pub event_id: EventId,
    /// The store.
    pub store: LocationId,
    /// The lines.
    pub lines: Vec<OrderLine>,
    /// When the hub took it (Unix ms).
    pub at_ms: u64,
}

/// One line of an [`OrderReceipt`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The item.
    pub gtin: Gtin,
    /// Units.
    pub qty: u64,
    /// Catalog unit price at the time (0 if the item has none).
    pub unit_price_minor: i64,
}

/// What became of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderResult {
    /// Recorded now.
    Accepted(OrderReceipt),
    /// Recorded earlier under the same id, same content.
    Replayed(OrderReceipt),
    /// The hub's rights at the store do not cover a line. Nothing written.
    InsufficientStock {
        /// The item.
        gtin: Gtin,
        /// Units asked.
        requested: u64,
        /// The hub's rights there.
        available: u64,
        /// Units on hand there (the store's rights are the rest).
        on_hand: u64,
    },
    /// The id was used for a different order. Nothing written.
    IdConflict {
        /// The order id.
        order_id: String,
    },
    /// Refused as invalid. Nothing written.
    Invalid(String),
}

/// Per-store sync bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRecord {
    /// The store.
    pub store: String,
    /// First accepted sync (hub clock, Unix ms).
    pub first_sync_ms: u64,
    /// Last accepted sync (hub clock, Unix ms).
    pub last_sync_ms: u64,
    /// Accepted syncs.
    pub syncs: u64,
    /// Events stored for the first time from this store.
    pub events_received: u64,
    /// The store's outbox sequence last acknowledged.
    pub acked_events_upto: u64,
    /// Sales the store refused for lack of rights, by reason: the largest
    /// totals its syncs reported (`tally_sync::lost`; records from before
    /// the field read as none).
    #[serde(default)]
    pub lost_sales: ByReason<Lost>,
    /// Online orders for this store the hub refused for lack of stock, by
    /// reason (one per refused request).
    #[serde(default)]
    pub refused_orders: ByReason<u64>,
    /// How far past the usual window HQ lets this store's events be
    /// dated for a while, after admitting one of its events held for its
    /// date (none: the usual window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dates_allowed: Option<tally_sync::limits::DateAllowance>,
    /// Return claims the store made on its last day of checks
    /// (`logic::returns::MAX_CLAIMS_PER_DAY` bounds them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_today: Option<DayCount>,
    /// Its lost sales and refused orders by the hour, the last 24 hours
    /// (records from before the field read as none).
    #[serde(default, skip_serializing_if = "recent::Recent::is_empty")]
    pub recent: recent::Recent,
}

/// A count within one day of the hub's clock (UTC days since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCount {
    /// The day (Unix ms / 86,400,000).
    pub day: u64,
    /// How many that day.
    pub count: u64,
}

impl StoreRecord {
    /// The record of a store the hub has not synced with yet (`syncs`
    /// 0: its first accepted sync sets the times).
    pub fn new(store: &str) -> Self {
        Self {
            store: store.to_string(),
            first_sync_ms: 0,
            last_sync_ms: 0,
            syncs: 0,
            events_received: 0,
            acked_events_upto: 0,
            lost_sales: ByReason::default(),
            refused_orders: ByReason::default(),
            dates_allowed: None,
            claims_today: None,
            recent: recent::Recent::default(),
        }
    }
}

/// Something HQ must look at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionRecord {
    /// Sequence number (rising).
    pub id: u64,
    /// `override_sale`, `epc_sold_twice` or `count_unresolved`.
    pub kind: String,
    /// The store whose sync surfaced it.
    pub store: String,
    /// The events involved.
    pub event_ids: Vec<EventId>,
    /// When it happened (the recording store's clock, Unix ms; for an EPC
    /// sold twice, the latest of the sales).
    pub at_ms: u64,
    /// When the hub learned of it (hub clock, Unix ms).
    pub detected_at_ms: u64,
    /// Kind-specific details.
    pub detail: serde_json::Value,
    /// Who at HQ looked at it, once someone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<ExceptionAck>,
}

/// An exception looked at by HQ: who, what they found, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionAck {
    /// Who (as they sign it).
    pub by: String,
    /// What they found or did (may be empty).
    #[serde(default)]
    pub note: String,
    /// When (hub clock, Unix ms).
    pub at_ms: u64,
}

/// The longest `by` and `note` of an acknowledgement, in bytes.
pub const MAX_ACK_BY_BYTES: usize = 100;
/// See [`MAX_ACK_BY_BYTES`].
pub const MAX_ACK_NOTE_BYTES: usize = 1_000;

/// What acknowledging an exception came to.
#[derive(Debug, Clone, PartialEq)]
pub enum AckResult {
    /// Acknowledged now.
    Acknowledged(Box<ExceptionRecord>),
    /// Acknowledged before (the first acknowledgement stands).
    Already(Box<ExceptionRecord>),
    /// No such exception.
    NotFound,
}

/// One store's part of an item's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStock {
    /// Units on hand.
    pub on_hand: u64,
    /// Rights the store holds.
    pub store_rights: u64,
    /// Rights the hub holds there (its online reserve).
    pub hub_rights: u64,
}

/// One (store, item) of the audit: units in and out summed from the
/// events the hub holds (`tally_sync::audit::flows`), beside the counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// The store (location).
    pub store: String,
    /// The item.
    pub gtin: Gtin,
    /// Received, returned, counted up or found by an override.
    pub units_in: u128,
    /// Sold at the store's tills.
    pub sold: u128,
    /// Ordered online from the store's stock.
    pub ordered: u128,
    /// Counted down (shrink).
    pub shrink: u128,
    /// Sent to other stores.
    #[serde(default)]
    pub transferred_out: u128,
    /// Received from other stores.
    #[serde(default)]
    pub transferred_in: u128,
    /// Units that left beyond what ever arrived: units sold twice.
    pub oversold: u128,
    /// What the events say is on hand (`units_in` + `transferred_in` −
    /// out, at least 0).
    pub on_hand_by_events: u128,
    /// What the hub's counter says is on hand.
    pub on_hand: u64,
}

/// Flows of every (store, item), computed from every event the hub holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Events the hub holds.
    pub events: u64,
    /// One row per (store, item) any event touched, in store then GTIN order.
    pub rows: Vec<AuditRow>,
    /// Σ oversold over every row (`u128`: cannot wrap).
    pub double_sold: u128,
    /// EPCs ever sold by more than one sale with no return between (a
    /// later return does not take one off this list).
    pub epcs_sold_twice: Vec<tally_sync::Epc>,
    /// (store, item) pairs where the index of the hub's rights by item
    /// disagrees with the counters (0 is the invariant routing relies on).
    #[serde(default)]
    pub holdings_disagreeing: u64,
}

impl AuditReport {
    /// The report from the flows of `events` events (`tally`), each row
    /// beside what the counter says is on hand (`on_hand`).
    pub(crate) fn from_flows(
        events: u64,
        tally: tally_sync::audit::FlowTally,
        mut on_hand: impl FnMut(&ItemKey) -> Result<u64, StorageError>,
        epcs_sold_twice: Vec<tally_sync::Epc>,
        holdings_disagreeing: u64,
    ) -> Result<Self, StorageError> {
        let mut rows = Vec::new();
        for (key, flow) in tally.into_flows() {
            rows.push(AuditRow {
                store: key.location.as_str().to_string(),
                gtin: key.gtin,
                units_in: flow.units_in,
                sold: flow.sold,
                ordered: flow.ordered,
                shrink: flow.shrink,
                transferred_out: flow.transferred_out,
                transferred_in: flow.transferred_in,
                oversold: flow.oversold(),
                on_hand_by_events: flow.on_hand(),
                on_hand: on_hand(&key)?,
            });
        }
        Ok(AuditReport {
            events,
            double_sold: rows
                .iter()
                .fold(0u128, |sum, r| sum.saturating_add(r.oversold)),
            rows,
            epcs_sold_twice,
            holdings_disagreeing,
        })
    }
}

/// One batch's write transaction, as [`HubStorage::write_batch`] hands it
/// to the writer: one typed method per kind of write. A method's `Ok`
/// holds its result (a refusal among them, which wrote nothing); it is
/// kept only if the batch then commits. After an `Err` the batch must
/// stop: the transaction will be aborted.
pub trait HubWrite {
    /// A store's sync: `who` from its certificate, `holds` the hub's
    /// rights at its location held for orders waiting on its release
    /// (never given to it), `now_ms` the hub's clock when it arrived
    /// (Unix ms).
    fn sync(
        &mut self,
        who: &Identity,
        req: &SyncRequest,
        holds: &tally_sync::exchange::Held,
        now_ms: u64,
    ) -> Result<SyncResult, StorageError>;
    /// An online order.
    fn order(&mut self, order: &OrderRequest) -> Result<OrderResult, StorageError>;
    /// Counts an online order for `store` refused for `reason` at
    /// `now_ms` (hub clock) in the store's record; false (nothing
    /// written) if the store never synced.
    fn order_refused(
        &mut self,
        store: &LocationId,
        reason: Shortage,
        now_ms: u64,
    ) -> Result<bool, StorageError>;
    /// Catalog items to add or change.
    fn catalog(&mut self, items: &[CatalogItem]) -> Result<CatalogResult, StorageError>;
    /// A store's request for the hub's rights at its location (`who`
    /// from its certificate), idempotent by request id, keeping
    /// `hold_back` of the hub's rights there (held for waiting orders).
    fn grant(
        &mut self,
        who: &Identity,
        req: &RightsRequest,
        hold_back: u64,
    ) -> Result<GrantResult, StorageError>;
    /// A store's report of rights it released to the hub (`who` from its
    /// certificate): its own entries, checked and merged.
    fn release(
        &mut self,
        who: &Identity,
        released: &RightsReleased,
    ) -> Result<ReleaseResult, StorageError>;
    /// Admits the held event `id` (`now_ms` the hub's clock): checked as
    /// a synced event except for its date, then stored.
    fn admit_held(&mut self, id: EventId, now_ms: u64) -> Result<held::AdmitResult, StorageError>;
    /// An order that names no store: routed to the stores that can fill
    /// it and recorded there, or refused with what is missing.
    fn route_order(
        &mut self,
        o: &routed::RoutedOrderRequest,
    ) -> Result<routed::RoutedResult, StorageError>;
    /// A store's return across stores or channels, checked against its
    /// original chain-wide and its units claimed (`returns::check`).
    fn check_return(
        &mut self,
        req: &tally_sync::returns::ReturnCheckRequest,
        store: &tally_sync::LocationId,
        now_ms: u64,
    ) -> Result<returns::CheckResult, StorageError>;
    /// HQ acknowledges exception `id` (`by`, `note`; the first
    /// acknowledgement stands).
    fn acknowledge_exception(
        &mut self,
        id: u64,
        by: &str,
        note: &str,
        now_ms: u64,
    ) -> Result<AckResult, StorageError>;
    /// Raises `transfer_overdue` for transfers in transit known for longer
    /// than `overdue_ms`, each once; answers how many.
    fn flag_overdue_transfers(
        &mut self,
        now_ms: u64,
        overdue_ms: u64,
    ) -> Result<usize, StorageError>;
    /// Cancels a routed order's open allocations (`seed`: randomness for
    /// the events that give their units back).
    fn cancel_order(
        &mut self,
        order_id: &str,
        seed: [u8; 10],
        now_ms: u64,
    ) -> Result<routed::CancelResult, StorageError>;
}

/// What became of a store's report of released rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseResult {
    /// Merged (`true`: the counter changed).
    Merged(bool),
    /// The entries advance what the store does not own. Nothing written.
    Forged(String),
}

/// What became of a request for rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantResult {
    /// Granted now (perhaps fewer units than asked, or none).
    Granted(RightsGrant),
    /// Granted earlier under the same id, same request: answered again,
    /// nothing more transferred.
    Replayed(RightsGrant),
    /// The id was used for another request (another store, item or
    /// quantity). Nothing written.
    IdConflict,
    /// The store's entries advance what it does not own (a forged
    /// request). Nothing written.
    Forged(String),
}

/// What the HTTP layer needs from storage. See the module docs.
pub trait HubStorage: Send + Sync + 'static {
    /// Opens one write transaction and calls `batch` once with it; if
    /// `batch` returns `Ok`, commits it durably (fsync) before returning.
    /// On any `Err` (from opening, from `batch`, which passes on the first
    /// [`HubWrite`] error, or from the commit) nothing was committed.
    fn write_batch(
        &self,
        batch: &mut dyn FnMut(&mut dyn HubWrite) -> Result<(), StorageError>,
    ) -> Result<(), StorageError>;
    /// One counter as the hub holds it now.
    fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, StorageError>;
    /// An item's stock at every store that has it.
    fn stock(&self, gtin: Gtin) -> Result<Vec<(String, StoreStock)>, StorageError>;
    /// An item's catalog entry (name, price), if the hub has one.
    fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StorageError>;
    /// Every store that has synced.
    fn stores(&self) -> Result<Vec<StoreRecord>, StorageError>;
    /// Units sold at the tills per (store, Unix minute), for minutes ≥
    /// `since_minute`, in store then minute order. Reads the rows
    /// answered and one seek per store, however many minutes are kept.
    fn sales_per_minute(&self, since_minute: u64) -> Result<Vec<(String, u64, u64)>, StorageError>;
    /// Exceptions with id > `since`, oldest first, at most `limit`.
    fn exceptions(&self, since: u64, limit: usize) -> Result<Vec<ExceptionRecord>, StorageError>;
    /// The newest exception's id (0: none yet). Ids rise from 1 without
    /// gaps, so it is also how many there are.
    fn last_exception_id(&self) -> Result<u64, StorageError>;
    /// How many exceptions HQ acknowledged (a count kept as they are, not
    /// a scan).
    fn acknowledged_exceptions(&self) -> Result<u64, StorageError>;
    /// Events syncs refused, held for HQ to review, at most `limit`.
    fn held_events(&self, limit: usize) -> Result<Vec<held::HeldEvent>, StorageError>;
    /// Routed orders with `status`, by id after `after`, at most `limit`.
    fn routed_orders(
        &self,
        status: tally_sync::fulfilment::Status,
        after: &str,
        limit: usize,
    ) -> Result<Vec<routed::RoutedOrder>, StorageError>;
    /// The routed order with this id, if any.
    fn routed_order(&self, order_id: &str) -> Result<Option<routed::RoutedOrder>, StorageError>;
    /// Transfers with `status`, by id after `after`, at most `limit`.
    fn transfers(
        &self,
        status: tally_sync::transfer::TransferStatus,
        after: &str,
        limit: usize,
    ) -> Result<Vec<transfers::HubTransfer>, StorageError>;
    /// The transfer with this id, if any.
    fn transfer(&self, id: &str) -> Result<Option<transfers::HubTransfer>, StorageError>;
    /// The latest `limit` returns across stores or channels, newest first.
    fn cross_returns(&self, limit: usize) -> Result<Vec<returns::CrossReturn>, StorageError>;
    /// The latest `limit` transfers received, the latest first (by when
    /// the hub learned of the receipt).
    fn transfers_received_recently(
        &self,
        limit: usize,
    ) -> Result<Vec<transfers::HubTransfer>, StorageError>;
    /// Routed orders and transfers counted by status.
    fn status_counts(&self) -> Result<StatusCounts, StorageError>;
    /// `store`'s allocations changed after change version `after`, at
    /// most `limit` (`GET /v1/allocations`).
    fn allocations(
        &self,
        store: &LocationId,
        after: u64,
        limit: usize,
    ) -> Result<tally_sync::message::AllocationsPage, StorageError>;
    /// The audit of every event held, against the counters, from one
    /// snapshot. Reads every event (time O(events)), one at a time
    /// (memory O(items × stores + sold EPCs)).
    fn audit(&self) -> Result<AuditReport, StorageError>;
    /// The next place in the order of live links opened at every hub
    /// process over this storage (`crate::link::LiveStore::order`): a
    /// shared sequence, so which link of a store is the newest does not
    /// hang on the hosts' clocks. `None` where one process is all there
    /// is (the embedded hub).
    fn next_link_order(&self) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lost_race_is_retried() {
        let store = StorageError::from(tally_store::StoreError::Storage("disk".into()));
        assert!(!store.is_retriable());
        assert!(!StorageError::Db("connection reset".into()).is_retriable());
        for reason in [
            RetryReason::RevMismatch,
            RetryReason::Deadlock,
            RetryReason::Serialization,
            RetryReason::LockTimeout,
            RetryReason::UniqueViolation,
            RetryReason::Replan,
        ] {
            assert!(StorageError::Retry(reason).is_retriable(), "{reason}");
        }
        // The embedded store's message is passed on as it was.
        assert_eq!(store.to_string(), "storage failure: disk");
    }
}
