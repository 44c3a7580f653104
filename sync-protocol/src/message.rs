//! Sync messages between a store's agent and the hub (DESIGN.md §4).
//!
//! One exchange: the agent POSTs a [`SyncRequest`] with its own counter
//! changes since the hub last acknowledged them, its new events and its
//! cursor into the hub's changes; the hub answers with a [`SyncResponse`]
//! acknowledging what it durably merged and carrying what the store lacks.
//!
//! # Design constraints
//! - Every cursor is a high-water mark and every payload is idempotent
//!   (deltas merge by max, events are keyed by id), so a lost, duplicated,
//!   reordered or interrupted exchange is always safe to repeat.
//! - The store's identity is *not* taken from `replica`/`location` here:
//!   the hub derives it from the client certificate and refuses a request
//!   whose body names another store.
//! - Messages carry a [`ProtocolVersion`]; a peer refuses an unknown major
//!   version with a clear error (see [`crate::codec`]).

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::gtin::Gtin;
use crate::ids::{EventId, LocationId, ReplicaId};
use crate::inventory::Delta;
use crate::ledger::Shortage;

/// A protocol version. Peers must share the major version; minor versions
/// only add optional meaning and are accepted both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProtocolVersion {
    /// Incompatible changes bump this.
    pub major: u16,
    /// Compatible additions bump this.
    pub minor: u16,
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The version this build speaks.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 4, minor: 0 };

/// Units of an item a store was refused for lack of rights since its last
/// acknowledged sync: the demand signal for rebalancing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demand {
    /// The item.
    pub gtin: Gtin,
    /// Units refused.
    pub units: u64,
}

/// Sales a store refused for lack of rights for one reason, counted since
/// the store's database was created: cumulative totals, which the hub
/// keeps as the largest seen ([`crate::lost::ByReason::merge`]), so a
/// repeated request is never counted twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostSales {
    /// Why those sales were refused.
    pub reason: Shortage,
    /// Sales refused.
    pub sales: u64,
    /// Units those sales asked for.
    pub units: u64,
}

/// The hub's online-reserve target for one item at the syncing store's
/// location: the online units it expects over the offline horizon
/// ([`crate::reserve::ReservePolicy::wanted`]), not yet capped at on hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveTarget {
    /// The item.
    pub gtin: Gtin,
    /// Units the hub wants to hold (each side caps it at on hand).
    pub units: u64,
}

/// A catalog entry: what an item is called and costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogItem {
    /// The item.
    pub gtin: Gtin,
    /// Display name.
    pub name: String,
    /// Unit price in minor units.
    pub price_minor: i64,
}

/// One catalog item as posted to `POST /v1/catalog`, at the agent or at
/// the hub (the GTIN as text, so a bad one is refused by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogItemBody {
    /// The item (GTIN-8, -12, -13 or -14).
    pub gtin: String,
    /// Display name (1-200 bytes after trimming, no control characters).
    pub name: String,
    /// Price per unit (per kilogram for weighed goods), >= 0.
    pub price_minor: i64,
}

impl CatalogItemBody {
    /// The item it describes, or why it is refused.
    pub fn parse(&self) -> Result<CatalogItem, String> {
        let gtin = Gtin::parse(&self.gtin).map_err(|e| format!("gtin {:?}: {e}", self.gtin))?;
        CatalogItem::new(gtin, &self.name, self.price_minor).map_err(|e| e.to_string())
    }
}

/// The body of `POST /v1/catalog`, at the agent or at the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogRequest {
    /// The items.
    pub items: Vec<CatalogItemBody>,
}

/// The longest catalog name, in bytes (after trimming).
pub const MAX_ITEM_NAME_BYTES: usize = 200;

/// Why a catalog entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogItemError {
    /// Empty, too long, or with control characters.
    #[error("name for {0} must be 1 to {MAX_ITEM_NAME_BYTES} bytes without control characters")]
    Name(Gtin),
    /// A negative price.
    #[error("price_minor for {0} must be >= 0")]
    Price(Gtin),
}

impl CatalogItem {
    /// A catalog entry as Tally accepts one, wherever it is entered (the
    /// hub's catalog API, the agent's, a CSV import): the name trimmed,
    /// 1 to [`MAX_ITEM_NAME_BYTES`] bytes, without control characters (a
    /// cashier's terminal prints it: a newline or an escape sequence in it
    /// would garble the screen); the price ≥ 0.
    pub fn new(gtin: Gtin, name: &str, price_minor: i64) -> Result<Self, CatalogItemError> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_ITEM_NAME_BYTES || name.chars().any(char::is_control)
        {
            return Err(CatalogItemError::Name(gtin));
        }
        if price_minor < 0 {
            return Err(CatalogItemError::Price(gtin));
        }
        Ok(Self {
            gtin,
            name: name.to_string(),
            price_minor,
        })
    }
}

/// Agent → hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Protocol version of the sender.
    pub version: ProtocolVersion,
    /// The sending replica (checked against its certificate).
    pub replica: ReplicaId,
    /// The sender's location (checked against its certificate).
    pub location: LocationId,
    /// The sender's own counter entries changed since the hub's last
    /// acknowledgement.
    pub delta: Delta,
    /// The sender's inventory version this delta covers; the hub echoes it
    /// back in [`SyncResponse::acked_delta_version`] once merged.
    pub delta_version: u64,
    /// Events not yet acknowledged, oldest first.
    pub events: Vec<Event>,
    /// The sender's outbox sequence number of the last event included.
    pub events_upto: u64,
    /// The hub version the sender has applied: send changes after it.
    pub hub_cursor: u64,
    /// The catalog version the sender has applied.
    pub catalog_cursor: u64,
    /// Refused demand per item since the last acknowledged sync.
    pub demand: Vec<Demand>,
    /// Sales refused for lack of rights, per reason: cumulative totals
    /// (see [`LostSales`]); a reason with none is left out.
    pub lost: Vec<LostSales>,
}

impl SyncRequest {
    /// The request without its counter delta, for a store whose outbox
    /// holds more events than this request carries: the hub refuses own
    /// counter entries that the events it has seen do not explain
    /// ([`crate::explain`]), so the delta goes with the request carrying
    /// the last of them. `acked_delta_version` is the store's cursor: the
    /// hub's acknowledgement then moves nothing.
    #[must_use]
    pub fn holding_delta_back(mut self, acked_delta_version: u64) -> Self {
        self.delta = crate::inventory::Delta::default();
        self.delta_version = acked_delta_version;
        self
    }

    /// The request carrying the store's totals of lost sales, by reason.
    #[must_use]
    pub fn with_lost(mut self, lost: &crate::lost::ByReason<crate::lost::Lost>) -> Self {
        self.lost = lost.to_wire();
        self
    }
}

/// An event the hub refused for good (to dead-letter, not retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedEvent {
    /// The event.
    pub id: EventId,
    /// Why.
    pub reason: String,
}

/// Hub → agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Protocol version of the hub.
    pub version: ProtocolVersion,
    /// The request's `delta_version`, now durably merged at the hub.
    pub acked_delta_version: u64,
    /// The request's `events_upto`, now durably stored at the hub.
    pub acked_events_upto: u64,
    /// Events the hub will never accept (e.g. an id reused with other content).
    pub rejected_events: Vec<RejectedEvent>,
    /// Counters at the store's location changed at the hub after the
    /// request's `hub_cursor` (other replicas' entries, transfers), minus
    /// what the request itself just carried.
    pub delta: Delta,
    /// The hub version `delta` brings the store up to.
    pub hub_cursor: u64,
    /// The hub's reserve target per item at this location, so the store
    /// moves rights the same way; an item not listed has target 0 (no
    /// online demand there).
    pub reserve: Vec<ReserveTarget>,
    /// Catalog changes after the request's `catalog_cursor`.
    pub catalog: Vec<CatalogItem>,
    /// The catalog version `catalog` brings the store up to.
    pub catalog_cursor: u64,
    /// The hub had more to send than fits one response: sync again.
    pub more: bool,
}

/// Hub → store, `GET /v1/allocations?after=CURSOR` (mutual TLS): the
/// store's allocations that changed at the hub after its cursor (new
/// ones, cancelled ones), oldest change first. The store merges each
/// ([`crate::fulfilment::OrderAllocation::merge`]) and keeps `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationsPage {
    /// The changed allocations.
    pub allocations: Vec<crate::fulfilment::OrderAllocation>,
    /// Transfers to or from the store that changed at the hub (sent to
    /// it, received by their destination).
    #[serde(default)]
    pub transfers: Vec<crate::transfer::Transfer>,
    /// The hub's change version this page brings the store up to.
    pub cursor: u64,
    /// More changes wait: ask again from `cursor`.
    pub more: bool,
}

/// A message that carries a protocol version.
pub trait Versioned {
    /// The version the sender spoke.
    fn version(&self) -> ProtocolVersion;
}

impl Versioned for SyncRequest {
    fn version(&self) -> ProtocolVersion {
        self.version
    }
}

impl Versioned for SyncResponse {
    fn version(&self) -> ProtocolVersion {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalog_item_has_a_printable_name_and_a_price() {
        let g = Gtin::parse("96385074").unwrap();
        let item = CatalogItem::new(g, "  Gum, mint  ", 50).unwrap();
        assert_eq!((item.name.as_str(), item.price_minor), ("Gum, mint", 50));
        assert!(CatalogItem::new(g, &"é".repeat(100), 0).is_ok()); // 200 bytes
        for name in ["", "   ", "Gum\nmint", "Gum\u{1b}[2J", &"x".repeat(201)] {
            assert_eq!(
                CatalogItem::new(g, name, 50),
                Err(CatalogItemError::Name(g)),
                "{name:?}"
            );
        }
        let e = CatalogItem::new(g, "Gum", -1).unwrap_err();
        assert_eq!(e.to_string(), "price_minor for 00000096385074 must be >= 0");
    }
}
