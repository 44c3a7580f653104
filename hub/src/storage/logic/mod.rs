//! The hub's write logic, written once for every storage engine: each
//! module is generic over [`HubTxn`](super::txn::HubTxn) and never names
//! a table. An engine's `HubWrite` opens its transaction, wraps it as a
//! `HubTxn` and delegates here (issue 24's design, §2.2).

pub(crate) mod exceptions;
pub mod held;
pub(crate) mod orders;
pub mod returns;
pub(crate) mod rights;
pub mod routed;
pub mod sync;
#[cfg(test)]
pub(crate) mod test_support;
pub mod transfers;
