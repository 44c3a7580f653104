//! Immutable business events: sales, returns, receipts, count adjustments
//! and online orders.
//!
//! An event is what happened, recorded once by the replica where it
//! happened, identified by a UUIDv7 and never changed afterwards. Its effect
//! on the counters is [`crate::ledger::apply_event`]. Every field that
//! depends on the state at the time (a count's adjustment, an override's
//! shortfall) is stored in the event, so the effect of an event never
//! depends on when or where it is replayed, and audits can be computed from
//! events alone ([`crate::audit`]).
//!
//! Wire note: these types are also encoded with postcard, which is not
//! self-describing, so no field may be skipped when serializing and enums
//! stay externally tagged.

use serde::{Deserialize, Serialize};

use crate::gtin::Gtin;
use crate::ids::{Epc, EventId, LocationId, ReplicaId};

/// One line of an event: an item and a quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The item.
    pub gtin: Gtin,
    /// Units, always > 0 in an accepted event; the kind gives the direction.
    pub qty: u64,
    /// Unit price in minor currency units (cents); 0 where prices do not apply.
    #[serde(default)]
    pub unit_price_minor: i64,
    /// The serialized item's EPC, for RFID-tagged goods (qty is then 1).
    #[serde(default)]
    pub epc: Option<Epc>,
}

/// How a sale was paid (also as posted to the agent's local API, which
/// refuses unknown fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tender {
    /// `cash`, `card`, … (free text from the front-end).
    pub method: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// Card authorisation or other reference, if any.
    #[serde(default)]
    pub reference: Option<String>,
}

/// Units of one item a sale took beyond the store's rights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortfall {
    /// The item.
    pub gtin: Gtin,
    /// Units beyond rights; recorded as found stock before the sale.
    pub units: u64,
}

/// A manager's approval to sell beyond the store's rights.
///
/// The cashier is holding the goods, so they exist: the shortfall is
/// recorded as units found (added) before the sale removes them. Counters
/// stay non-negative and the hub surfaces the sale as an exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// Who approved.
    pub approver: String,
    /// Why.
    pub reason: String,
    /// What the sale took beyond rights, per item (may be empty).
    pub shortfall: Vec<Shortfall>,
}

/// Which way a count adjustment moved the stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More was counted than recorded: units added.
    Up,
    /// Less was counted than recorded: units removed.
    Down,
}

/// What kind of event, with the fields only that kind has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A sale at the till: removes units from the store's rights.
    Sale {
        /// Payments.
        tenders: Vec<Tender>,
        /// Present if a manager allowed selling beyond rights.
        #[serde(rename = "override")]
        override_: Option<Override>,
    },
    /// Goods brought back: adds units to the store.
    Return {
        /// The sale they came from, if known.
        original_sale: Option<EventId>,
    },
    /// Goods received: adds units.
    Receipt,
    /// A cycle count: moves on-hand towards what was counted. One line,
    /// whose `qty` is the units actually moved.
    CountAdjustment {
        /// Units counted on the shelf.
        counted: u64,
        /// Up or down.
        direction: Direction,
        /// Units the count found missing that the store could not remove
        /// because it did not hold their rights (e.g. reserved online).
        /// Surfaced at the hub to resolve.
        unresolved: u64,
    },
    /// An online order taken by the hub from a store's stock: removes
    /// units from the hub's rights at that location.
    Order {
        /// The web shop's order reference, if any.
        reference: Option<String>,
    },
}

impl EventKind {
    /// A short lowercase name: `sale`, `return`, `receipt`, `count_adjustment`, `order`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Sale { .. } => "sale",
            EventKind::Return { .. } => "return",
            EventKind::Receipt => "receipt",
            EventKind::CountAdjustment { .. } => "count_adjustment",
            EventKind::Order { .. } => "order",
        }
    }
}

/// Σ qty × unit price over `lines`, in minor units, or `None` when it
/// does not fit in an `i64` (no till sells 10^16 of anything, so such a
/// total is a keying error, never an amount to record).
pub fn checked_total_minor(lines: &[Line]) -> Option<i64> {
    lines.iter().try_fold(0i64, |acc, l| {
        let qty = i64::try_from(l.qty).ok()?;
        acc.checked_add(qty.checked_mul(l.unit_price_minor)?)
    })
}

/// One business event. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUIDv7 when Tally creates it).
    pub id: EventId,
    /// The store whose stock it concerns.
    pub location: LocationId,
    /// The replica that recorded it and whose counter entries it moved.
    pub replica: ReplicaId,
    /// When it was recorded, Unix milliseconds (the recorder's clock).
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// Items and quantities.
    pub lines: Vec<Line>,
}

impl Event {
    /// Σ qty × unit price over the lines, in minor units. Saturates at
    /// `i64::MAX`, which the agent never records: it refuses a sale or a
    /// return whose [`checked_total_minor`] overflows.
    pub fn total_minor(&self) -> i64 {
        checked_total_minor(&self.lines).unwrap_or(i64::MAX)
    }

    /// Whether this is a sale recorded under a manager override.
    pub fn is_override(&self) -> bool {
        matches!(
            self.kind,
            EventKind::Sale {
                override_: Some(_),
                ..
            }
        )
    }
}
