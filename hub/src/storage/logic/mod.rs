//! The hub's write logic, written once for every storage engine: each
//! module is generic over [`HubTxn`](super::txn::HubTxn) and never names
//! a table. An engine's `HubWrite` opens its transaction, wraps it as a
//! `HubTxn` and delegates here (issue 24's design, §2.2).
//!
//! Modules move here one at a time from the redb code; what is still
//! there (store-named orders, rights, syncs, routed orders) follows.

pub(crate) mod exceptions;
pub mod held;
pub mod returns;
#[cfg(test)]
pub(crate) mod test_support;
pub mod transfers;
