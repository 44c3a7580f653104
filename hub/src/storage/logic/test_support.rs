//! What the logic modules' unit tests share: an embedded hub in a temp
//! dir and one-line events.
#![allow(clippy::unwrap_used)]

use tally_sync::exchange::HubLimits;
use tally_sync::{Event, EventId, EventKind, Gtin, Line, LocationId, ReplicaId, ReservePolicy};

use crate::storage::redb::SyncSettings;
use crate::storage::RedbHub;

/// An event `n` of kind `kind` at store `at`: `qty` units of one item.
pub(crate) fn event(n: u8, at: &str, kind: EventKind, qty: u64) -> Event {
    Event {
        id: EventId::v7(1_000 + u64::from(n), [n; 10]),
        location: LocationId::new(at).unwrap(),
        replica: ReplicaId::new(at).unwrap(),
        at_ms: 1_000,
        kind,
        lines: vec![Line {
            gtin: Gtin::from_body(96_385_074).unwrap(),
            qty,
            unit_price_minor: 100,
            epc: None,
        }],
        staff: Default::default(),
        price_overrides: Vec::new(),
    }
}

/// An embedded hub with default settings in `dir`.
pub(crate) fn hub(dir: &std::path::Path) -> RedbHub {
    let settings = SyncSettings {
        policy: ReservePolicy::default(),
        limits: HubLimits::default(),
        catalog_page: 100,
    };
    RedbHub::open(&dir.join("hub.redb"), settings).unwrap()
}
