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

/// A manager's approval of what an event needed approval for: selling
/// beyond rights, a refund the store cannot check against its sale, a
/// price other than the catalog's. The agent records it only once the
/// manager's credential is checked; the credential itself is never
/// recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approving manager's id.
    pub approver: String,
    /// Why.
    pub reason: String,
}

/// Who keyed an event at the store and who approved its exceptions. Empty
/// on events recorded before protocol 4 and on the hub's own events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    /// The cashier or staff member, as the front-end names them.
    #[serde(default)]
    pub cashier: Option<String>,
    /// The till (or device) it was keyed at; with till tokens configured,
    /// the till whose token the request carried.
    #[serde(default)]
    pub till: Option<String>,
    /// The manager's approval, when the event needed one.
    #[serde(default)]
    pub approval: Option<Approval>,
}

impl Staff {
    /// Whether nothing is known of who keyed it.
    pub fn is_empty(&self) -> bool {
        self.cashier.is_none() && self.till.is_none() && self.approval.is_none()
    }
}

/// A line sold or refunded at a price other than the catalog's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceOverride {
    /// The item.
    pub gtin: Gtin,
    /// The catalog's price per unit when the event was recorded.
    pub catalog_minor: i64,
    /// The price the line was keyed at.
    pub keyed_minor: i64,
}

/// What an event did that a manager approved and HQ reviews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exception {
    /// A sale recorded under a manager override.
    OverrideSale,
    /// A return the store could not check against a sale it recorded.
    NoReceiptRefund,
    /// A line priced other than the catalog's.
    PriceOverride,
}

impl Exception {
    /// The snake_case name, as HQ lists it.
    pub fn name(self) -> &'static str {
        match self {
            Exception::OverrideSale => "override_sale",
            Exception::NoReceiptRefund => "no_receipt_refund",
            Exception::PriceOverride => "price_override",
        }
    }
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
    /// A store moved its allocation of an order on (picked, collected,
    /// shipped). Moves no counters (the hub's `Order` event took the
    /// units when it allocated them) and has no lines.
    Fulfilment {
        /// The order.
        order_id: String,
        /// Where the allocation stands now.
        status: crate::fulfilment::Status,
    },
    /// Units sent to another store: removes them from the sender's rights
    /// (they are in transit until the destination receives them).
    TransferOut {
        /// The transfer.
        transfer_id: String,
        /// The destination store.
        to: LocationId,
    },
    /// A transfer received from another store: adds its units.
    TransferIn {
        /// The transfer.
        transfer_id: String,
        /// The source store.
        from: LocationId,
    },
}

impl EventKind {
    /// A short lowercase name: `sale`, `return`, `receipt`, `count_adjustment`,
    /// `order`, `fulfilment`, `transfer_out`, `transfer_in`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Sale { .. } => "sale",
            EventKind::Return { .. } => "return",
            EventKind::Receipt => "receipt",
            EventKind::CountAdjustment { .. } => "count_adjustment",
            EventKind::Order { .. } => "order",
            EventKind::Fulfilment { .. } => "fulfilment",
            EventKind::TransferOut { .. } => "transfer_out",
            EventKind::TransferIn { .. } => "transfer_in",
        }
    }

    /// Whether the tagged units on this event's lines arrive at its store
    /// (`Some(true)`: receipt, return, transfer in), leave it
    /// (`Some(false)`: sale, transfer out, an order's allocation) or stay
    /// (`None`). What a store keeps of the tags it holds follows this.
    pub fn tags_arrive(&self) -> Option<bool> {
        match self {
            EventKind::Receipt | EventKind::Return { .. } | EventKind::TransferIn { .. } => {
                Some(true)
            }
            EventKind::Sale { .. } | EventKind::TransferOut { .. } | EventKind::Order { .. } => {
                Some(false)
            }
            EventKind::CountAdjustment { .. } | EventKind::Fulfilment { .. } => None,
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
    /// Who keyed it and who approved it (protocol 4).
    #[serde(default)]
    pub staff: Staff,
    /// Lines keyed at a price other than the catalog's (protocol 4).
    #[serde(default)]
    pub price_overrides: Vec<PriceOverride>,
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

    /// The exceptions HQ reviews for this event, each once. A return is
    /// a no-receipt refund when it was approved as one (the agent asks for
    /// approval exactly when it cannot check the return against a sale
    /// it recorded).
    pub fn exceptions(&self) -> Vec<Exception> {
        let mut out = Vec::new();
        if self.is_override() {
            out.push(Exception::OverrideSale);
        }
        if let EventKind::Return { original_sale } = &self.kind {
            if original_sale.is_none() || self.staff.approval.is_some() {
                out.push(Exception::NoReceiptRefund);
            }
        }
        if !self.price_overrides.is_empty() {
            out.push(Exception::PriceOverride);
        }
        out
    }

    /// Decodes an event stored (postcard) by this version or by one before
    /// protocol 4, whose events end after `lines`: those get an empty
    /// [`Staff`] and no price overrides. Used by every table that keeps
    /// events, so databases written by older versions read without a
    /// migration.
    pub fn from_stored(bytes: &[u8]) -> Result<Event, crate::codec::CodecError> {
        match crate::codec::from_bytes::<Event>(bytes) {
            Ok(e) => Ok(e),
            Err(current) => match crate::codec::from_bytes::<EventV3>(bytes) {
                Ok(old) => Ok(Event {
                    id: old.id,
                    location: old.location,
                    replica: old.replica,
                    at_ms: old.at_ms,
                    kind: old.kind,
                    lines: old.lines,
                    staff: Staff::default(),
                    price_overrides: Vec::new(),
                }),
                Err(_) => Err(current),
            },
        }
    }
}

/// An event as stored before protocol 4 (see [`Event::from_stored`]).
#[derive(Deserialize)]
struct EventV3 {
    id: EventId,
    location: LocationId,
    replica: ReplicaId,
    at_ms: u64,
    kind: EventKind,
    lines: Vec<Line>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gtin::Gtin;

    fn sample() -> Event {
        Event {
            id: EventId::v7(1_700_000_000_000, [3; 10]),
            location: LocationId::new("s1").unwrap(),
            replica: ReplicaId::new("s1").unwrap(),
            at_ms: 1_700_000_000_000,
            kind: EventKind::Return {
                original_sale: None,
            },
            lines: vec![Line {
                gtin: Gtin::from_body(17).unwrap(),
                qty: 2,
                unit_price_minor: 450,
                epc: None,
            }],
            staff: Staff {
                cashier: Some("c-1".into()),
                till: Some("till-1".into()),
                approval: Some(Approval {
                    approver: "m-1".into(),
                    reason: "no receipt".into(),
                }),
            },
            price_overrides: vec![PriceOverride {
                gtin: Gtin::from_body(17).unwrap(),
                catalog_minor: 500,
                keyed_minor: 450,
            }],
        }
    }

    #[test]
    fn an_event_stored_before_protocol_4_reads_with_no_staff() {
        let e = sample();
        // Postcard writes a struct as its fields in order: the old layout
        // is the first six.
        let old =
            crate::codec::to_bytes(&(e.id, &e.location, &e.replica, e.at_ms, &e.kind, &e.lines))
                .unwrap();
        let read = Event::from_stored(&old).unwrap();
        assert_eq!(read.staff, Staff::default());
        assert!(read.price_overrides.is_empty());
        assert_eq!((read.id, &read.lines), (e.id, &e.lines));
        // Today's layout reads back whole; garbage is an error either way.
        let now = crate::codec::to_bytes(&e).unwrap();
        assert_eq!(Event::from_stored(&now).unwrap(), e);
        assert!(Event::from_stored(&now[..now.len() - 1]).is_err());
        assert!(Event::from_stored(&[0xff; 7]).is_err());
    }

    #[test]
    fn exceptions_name_what_a_manager_approved() {
        let e = sample();
        assert_eq!(
            e.exceptions(),
            vec![Exception::NoReceiptRefund, Exception::PriceOverride]
        );
        let names: Vec<_> = e.exceptions().into_iter().map(Exception::name).collect();
        assert_eq!(names, ["no_receipt_refund", "price_override"]);
    }
}
