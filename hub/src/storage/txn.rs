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
//! [`RedbTxn`](super::redb::txn::RedbTxn) is the embedded implementation.
//! The trait grows as modules move into `logic` (issue 24's design, §2.2).

use tally_sync::exchange::HubReplica;
use tally_sync::{Event, EventId};

use super::StorageError;

/// One write transaction of the hub, as its write logic sees it. See the
/// module docs.
pub(crate) trait HubTxn: HubReplica<Error = StorageError> {
    /// The stored event with `id`.
    fn event(&self, id: &EventId) -> Result<Option<Event>, StorageError>;
}
