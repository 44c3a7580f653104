//! `tally-sync`: Tally's pure model.
//!
//! Everything here is a value and every function is a pure function of its
//! arguments: no I/O, no tokio, no clock reads, no entropy. The agent, the
//! hub and the simulation all build on it, so the rules that keep stock
//! consistent (escrow counters, validation, rebalancing) are written once.

pub mod gtin;
pub mod ids;

pub use gtin::{Gtin, GtinError};
pub use ids::{Epc, EventId, IdError, LocationId, ReplicaId};
