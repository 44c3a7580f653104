//! `tally-sync`: Tally's pure model.
//!
//! Everything here is a value and every function is a pure function of its
//! arguments: no I/O, no tokio, no clock reads, no entropy (the simulation
//! draws from a seeded generator it is given). Time comes in as an
//! argument, or through a [`clock::Clock`] the caller hands over. The agent, the hub and the
//! simulation all build on it, so the rules that keep stock consistent
//! (escrow counters, validation, event effects, rebalancing) exist once.
//!
//! Map:
//! - [`gtin`], [`ids`]: validated identifiers; [`store_id`]: the narrower
//!   rule for a store's id (a file name and a certificate field too).
//! - [`counter`]: the escrow counter for one (item, location).
//! - [`inventory`]: many counters with version stamps and delta extraction.
//! - [`epcs`]: sold serialized items, and double-sale detection.
//! - [`event`], [`journal`], [`ledger`]: events, the grow-only journal, and
//!   how an event moves the counters.
//! - [`command`]: the command core (sell, return, receive, count,
//!   override): plan, idempotent retries, refund bounds, and
//!   [`command::record_event`], the one place an event is recorded.
//! - [`memstore`]: a whole store in memory over the command core (the
//!   simulation's and tests' stores).
//! - [`policy`]: the rights-rebalancing policy.
//! - [`reserve`]: the hub's online-reserve target, from an O(1) decayed
//!   estimate of online demand per (item, location).
//! - [`rights`]: rights on demand: the hub's grant of its reserve to a
//!   store that asks, and the store's merge of it.
//! - [`returns`]: returns across stores and channels, bounded chain-wide
//!   by the hub (what a store asks, what the hub answers).
//! - [`transfer`]: transfers of stock between stores (in transit until
//!   received), as the hub and both stores keep them.
//! - [`routing`]: which stores fill an order that names none (pure,
//!   from what each can give); [`fulfilment`]: an allocation's status
//!   (`allocated → picked → collected | shipped`, or `cancelled`) as a
//!   lattice both sides merge.
//! - [`link`]: the live link's notices (hub to store) and their framing.
//! - [`message`], [`codec`]: sync messages and their encodings.
//! - [`audit`]: checks computed from events alone.
//! - [`error_body`]: the error body every HTTP API of Tally answers with.
//! - [`sim`]: the deterministic simulation of a hub and stores.
//! - [`clock`]: the [`clock::Clock`] trait every part that stamps a time
//!   is given, and [`clock::ManualClock`] for tests and simulations (the
//!   system clock is `tally_store::SystemClock`).
//! - [`timestamp`]: how the APIs show a time (RFC 3339, UTC).
//! - [`report`]: how the binaries show an error (one line, each cause once).

pub mod audit;
pub mod clock;
pub mod codec;
pub mod command;
pub mod counter;
pub mod cycle_count;
pub mod epcs;
pub mod error_body;
pub mod event;
pub mod exchange;
pub mod explain;
pub mod fulfilment;
pub mod gtin;
pub mod ids;
pub mod inventory;
pub mod journal;
pub mod ledger;
pub mod limits;
pub mod link;
pub mod lost;
pub mod memstore;
pub mod message;
pub mod policy;
pub mod report;
pub mod reserve;
pub mod returns;
pub mod rights;
pub mod routing;
pub mod sim;
pub mod store_id;
pub mod timestamp;
pub mod transfer;

pub use counter::{BoundedCounter, CounterError, Violation};
pub use epcs::{DoubleSale, EpcLedger};
pub use event::{
    Approval, Direction, Event, EventKind, Exception, Line, Override, PriceOverride, Shortfall,
    Staff, Tender,
};
pub use gtin::{Gtin, GtinError};
pub use ids::{Epc, EventId, IdError, LocationId, ReplicaId};
pub use inventory::{Delta, DeltaEntry, DeltaViolation, Inventory, ItemKey};
pub use journal::Journal;
pub use ledger::{apply_event, Refusal, Shortage};
pub use lost::{ByReason, Lost};
pub use message::{LostSales, ReserveTarget, SyncRequest, SyncResponse, PROTOCOL_VERSION};
pub use policy::{rebalance, Rebalance, RightsView};
pub use reserve::{DemandEstimate, ReservePolicy};
