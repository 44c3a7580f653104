//! [`HubTxn`]: what the hub's write logic asks of one write transaction,
//! whatever the engine underneath.
//!
//! # Design constraints
//! - **One object per transaction.** A `HubTxn` is both the model's
//!   replica ([`HubReplica`]: counters, events, EPCs, what a store's
//!   events explain) and the hub's bookkeeping (transfers, returns, held
//!   events, routed orders, exceptions), so the logic in
//!   [`super::logic`] is written once, generic over `T: HubTxn`, and
//!   never names a table.
//! - **Typed operations, not tables.** Each method is one thing the logic
//!   does (open a transfer, claim a return's units, announce a change to
//!   a store); an index an engine keeps beside a record (a status index,
//!   counts by status, the hub's holdings by item) is the engine's
//!   business, moved by the method that moves the record.
//! - **Synchronous.** The writer is a thread and `tally-sync` is pure; a
//!   server backend runs its I/O to completion inside each call.
//! - **Errors are [`StorageError`]**, so a server backend can say
//!   [`StorageError::Retry`] from anywhere the logic reaches it.
//!
//! [`RedbTxn`](super::redb::txn::RedbTxn) is the embedded implementation
//! (issue 24's design, §2.2).

use std::collections::BTreeMap;

use tally_sync::exchange::HubReplica;
use tally_sync::message::CatalogItem;
use tally_sync::transfer::TransferStatus;
use tally_sync::{DemandEstimate, Epc, Event, EventId, Gtin, LocationId};

use super::held::HeldEvent;
use super::logic::orders::OrderIndex;
use super::logic::rights::GrantRecord;
use super::returns::{Claim, CrossReturn};
use super::routed::RoutedOrder;
use super::transfers::HubTransfer;
use super::{ExceptionRecord, StorageError, StoreRecord};

/// One write transaction of the hub, as its write logic sees it. See the
/// module docs.
pub(crate) trait HubTxn: HubReplica<Error = StorageError> {
    /// The stored event with `id`.
    fn event(&self, id: &EventId) -> Result<Option<Event>, StorageError>;

    /// A hint before a store's sync is handled: the events and items `req`
    /// names will be read, so an engine that pays a round trip per read
    /// may fetch them all at once now. The default does nothing.
    fn prefetch_sync(
        &mut self,
        _who: &tally_sync::exchange::Identity,
        _req: &tally_sync::SyncRequest,
    ) -> Result<(), StorageError> {
        Ok(())
    }

    /// Writes what the engine deferred during the batch; called once,
    /// after the batch's last write and before its commit. The default
    /// does nothing.
    fn finish(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Appends `exceptions` to the exceptions HQ pages through, numbering
    /// them on from the last (their `id` is ignored).
    fn append_exceptions(&mut self, exceptions: Vec<ExceptionRecord>) -> Result<(), StorageError>;

    /// Exception `id`, if there is one.
    fn exception(&self, id: u64) -> Result<Option<ExceptionRecord>, StorageError>;

    /// Stores `x` (an exception that exists, not acknowledged before) as
    /// acknowledged, counting it among the acknowledged.
    fn put_acknowledged(&mut self, x: &ExceptionRecord) -> Result<(), StorageError>;

    /// Records that something of `store`'s changed at the hub, `key` being
    /// `o:ORDER` (its allocation of an order) or `t:TRANSFER` (a transfer
    /// to or from it): it gets the next change version, so the store's
    /// next allocations page brings it.
    fn announce(&mut self, store: &LocationId, key: &str) -> Result<(), StorageError>;

    /// The latest sale of `epc` the hub holds, if any.
    fn last_sale_of(&self, epc: &Epc) -> Result<Option<EventId>, StorageError>;

    // The catalog.

    /// The catalog item `gtin`.
    fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StorageError>;
    /// Stores `item`, with the next catalog version if it changed;
    /// answers whether it did.
    fn put_catalog_item(&mut self, item: &CatalogItem) -> Result<bool, StorageError>;
    /// Up to `limit` items changed after catalog version `cursor`, and
    /// the cursor to ask from next time.
    fn catalog_since(
        &mut self,
        cursor: u64,
        limit: usize,
    ) -> Result<(Vec<CatalogItem>, u64), StorageError>;

    // Per store.

    /// What the hub keeps of `store`'s syncs (none before its first).
    fn store_record(&self, store: &str) -> Result<Option<StoreRecord>, StorageError>;
    /// Stores `record`, under its store.
    fn put_store_record(&mut self, record: &StoreRecord) -> Result<(), StorageError>;
    /// Adds `units` sold at `store` in Unix minute `minute`.
    fn add_sales(&mut self, store: &str, minute: u64, units: u64) -> Result<(), StorageError>;
    /// Forgets `store`'s sales per minute before Unix minute `minute`
    /// (past [`SALES_WINDOW_MINUTES`](crate::storage::SALES_WINDOW_MINUTES)).
    fn drop_sales_before(&mut self, store: &str, minute: u64) -> Result<(), StorageError>;
    /// Online demand recorded at `location`, per item.
    fn demand_at(&self, location: &LocationId)
        -> Result<Vec<(Gtin, DemandEstimate)>, StorageError>;
    /// Online demand for `gtin` at `location`.
    fn demand(
        &self,
        location: &LocationId,
        gtin: Gtin,
    ) -> Result<Option<DemandEstimate>, StorageError>;
    /// Sets the online demand for `gtin` at `location`.
    fn put_demand(
        &mut self,
        location: &LocationId,
        gtin: Gtin,
        demand: &DemandEstimate,
    ) -> Result<(), StorageError>;
    /// Forgets the online demand for `gtin` at `location` (decayed to
    /// nothing, with no reserve left there).
    fn forget_demand(&mut self, location: &LocationId, gtin: Gtin) -> Result<(), StorageError>;
    /// What the request for rights `request_id` was granted.
    fn grant_record(&self, request_id: u128) -> Result<Option<GrantRecord>, StorageError>;
    /// Records what the request for rights `request_id` was granted.
    fn put_grant_record(
        &mut self,
        request_id: u128,
        record: &GrantRecord,
    ) -> Result<(), StorageError>;

    // Orders.

    /// The stores where the hub holds rights to `gtin`, with how many,
    /// in store order (routing's candidates).
    fn holders(&self, gtin: Gtin) -> Result<Vec<(LocationId, u64)>, StorageError>;
    /// The hub's rights to `gtin` at `store`.
    fn held_at(&self, gtin: Gtin, store: &LocationId) -> Result<u64, StorageError>;
    /// The routed order `order_id`.
    fn routed_order(&self, order_id: &str) -> Result<Option<RoutedOrder>, StorageError>;
    /// Stores `order`, which had status `was` (`None`: new), moving its
    /// status index and the counts by status.
    fn put_routed_order(
        &mut self,
        order: &RoutedOrder,
        was: Option<tally_sync::fulfilment::Status>,
    ) -> Result<(), StorageError>;
    /// The store-named online order `order_id`, if any.
    fn store_named_order(&self, order_id: &str) -> Result<Option<OrderIndex>, StorageError>;
    /// Records the store-named online order `order_id`.
    fn put_store_named_order(
        &mut self,
        order_id: &str,
        index: &OrderIndex,
    ) -> Result<(), StorageError>;

    // Returns, each kept per original (the sale or order returned).

    /// Units returned against `original` so far, per item.
    fn returned(&self, original: EventId) -> Result<BTreeMap<Gtin, u64>, StorageError>;
    /// Adds `units` of `gtin` returned against `original`; answers the
    /// new total.
    fn add_returned(
        &mut self,
        original: EventId,
        gtin: Gtin,
        units: u64,
    ) -> Result<u64, StorageError>;
    /// The units checked returns claim against `original`, by return id.
    fn return_claims(&self, original: EventId) -> Result<Vec<(EventId, Claim)>, StorageError>;
    /// Holds `claim` against `original` for the return `return_id`.
    fn put_return_claim(
        &mut self,
        original: EventId,
        return_id: EventId,
        claim: &Claim,
    ) -> Result<(), StorageError>;
    /// Redeems the claim of `return_id` against `original`: whether there
    /// was one.
    fn take_return_claim(
        &mut self,
        original: EventId,
        return_id: EventId,
    ) -> Result<bool, StorageError>;
    /// Keeps a return across stores or channels for HQ.
    fn put_cross_return(&mut self, cross: &CrossReturn) -> Result<(), StorageError>;

    // Events a sync refused, held for HQ.

    /// How many events `store` holds.
    fn held_count(&self, store: &str) -> Result<u64, StorageError>;
    /// Sets how many events `store` holds.
    fn put_held_count(&mut self, store: &str, n: u64) -> Result<(), StorageError>;
    /// The held event `id`.
    fn held_event(&self, id: EventId) -> Result<Option<HeldEvent>, StorageError>;
    /// Holds `held`, under its event's id.
    fn put_held(&mut self, held: &HeldEvent) -> Result<(), StorageError>;
    /// No longer holds the event `id`.
    fn remove_held(&mut self, id: EventId) -> Result<(), StorageError>;

    // Transfers.

    /// The transfer `id`.
    fn transfer(&self, id: &str) -> Result<Option<HubTransfer>, StorageError>;
    /// Stores `t`, which had status `was` (`None`: new), moving its
    /// status index and the counts by status.
    fn put_transfer(
        &mut self,
        t: &HubTransfer,
        was: Option<TransferStatus>,
    ) -> Result<(), StorageError>;
    /// Puts transfer `id`, first seen by the hub at `seen_at_ms`, among
    /// the transfers the overdue sweep reads (`due`), or takes it out.
    fn set_transfer_due(
        &mut self,
        seen_at_ms: u64,
        id: &str,
        due: bool,
    ) -> Result<(), StorageError>;
    /// Records that the hub learned of transfer `id`'s receipt at
    /// `now_ms` (hub clock), for HQ's latest receipts.
    fn transfer_received_at_hub(&mut self, id: &str, now_ms: u64) -> Result<(), StorageError>;
    /// Up to `limit` transfers due that the hub first saw before
    /// `cutoff_ms`, oldest first: (when it saw it, id).
    fn transfers_due(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StorageError>;
}
