//! Answer bodies. The agent builds each from the model's values with the
//! one function here ([`Recorded::of`], [`SaleView::of`], [`Stock::of`], …),
//! so a first answer and a retry's are the same; clients read them back
//! leniently (unknown fields are ignored, so the agent may add some).
//! Fields are declared in alphabetical order: the JSON prints as it did
//! when the agent built it from a map.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tally_sync::{
    BoundedCounter, Direction, Event, EventId, EventKind, Gtin, Line, LocationId, Override,
    PriceOverride, ReplicaId, Staff, Tender,
};

/// Σ qty over `lines`.
fn units(lines: &[Line]) -> u64 {
    lines.iter().fold(0u64, |a, l| a.saturating_add(l.qty))
}

/// The `status` of every recorded event.
pub const COMMITTED: &str = "committed";

fn committed() -> String {
    COMMITTED.to_string()
}

/// `201`/`200` answer to a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleRecorded {
    /// Sold beyond rights with a manager's approval.
    #[serde(default)]
    pub overridden: bool,
    /// The sale's id.
    pub sale_id: EventId,
    /// Always `committed`: durable on the store's disk.
    #[serde(default = "committed")]
    pub status: String,
    /// The sale's total.
    pub total_minor: i64,
}

/// `201`/`200` answer to a return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnRecorded {
    /// The return's id.
    pub return_id: EventId,
    /// Always `committed`.
    #[serde(default = "committed")]
    pub status: String,
    /// The refunded total.
    pub total_minor: i64,
}

/// `201`/`200` answer to a receipt of goods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptRecorded {
    /// The receipt's id.
    pub receipt_id: EventId,
    /// Always `committed`.
    #[serde(default = "committed")]
    pub status: String,
    /// Units received.
    pub units: u64,
}

/// `201`/`200` answer to a cycle count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRecorded {
    /// Units the adjustment moved.
    pub adjusted: u64,
    /// The count's id.
    pub count_id: EventId,
    /// What was counted.
    pub counted: u64,
    /// Which way on-hand moved.
    pub direction: Direction,
    /// The item.
    pub gtin: Option<Gtin>,
    /// Always `committed`.
    #[serde(default = "committed")]
    pub status: String,
    /// Units the count could not take away (others' rights).
    pub unresolved: u64,
}

/// An online order (the hub's; never posted to an agent, answered for
/// completeness should a retry name one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecorded {
    /// The order's event id.
    pub order_id: EventId,
    /// The hub's reference.
    pub reference: Option<String>,
    /// Always `committed`.
    #[serde(default = "committed")]
    pub status: String,
}

/// `201`/`200` answer to a move of an order's allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfilmentRecorded {
    /// The move's event id; null when the allocation was there already
    /// and nothing new was recorded.
    pub fulfilment_id: Option<EventId>,
    /// The order.
    pub order_id: String,
    /// Where the allocation stands now.
    pub order_status: tally_sync::fulfilment::Status,
    /// Always `committed`.
    #[serde(default = "committed")]
    pub status: String,
}

/// `201`/`200` answer to a transfer sent or received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecorded {
    /// The event's id.
    pub event_id: EventId,
    /// The other store (the destination of a transfer sent, the source of
    /// one received).
    pub store: LocationId,
    /// Always `committed`.
    #[serde(default = "committed")]
    pub status: String,
    /// The transfer.
    pub transfer_id: String,
    /// `in_transit` (sent) or `received`.
    pub transfer_status: tally_sync::transfer::TransferStatus,
    /// Units on it.
    pub units: u64,
}

/// The answer to a recorded command: the same for its first post and
/// every retry (built from the stored event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Recorded {
    /// A sale.
    Sale(SaleRecorded),
    /// A return.
    Return(ReturnRecorded),
    /// A receipt of goods.
    Receipt(ReceiptRecorded),
    /// A cycle count.
    Count(CountRecorded),
    /// A move of an order's allocation (before `Order`: its fields are
    /// a superset).
    Fulfilment(FulfilmentRecorded),
    /// A transfer sent or received.
    Transfer(TransferRecorded),
    /// An online order.
    Order(OrderRecorded),
}

impl Recorded {
    /// The answer for `event`.
    pub fn of(event: &Event) -> Self {
        let (id, status) = (event.id, committed());
        match &event.kind {
            EventKind::Sale { .. } => Recorded::Sale(SaleRecorded {
                overridden: event.is_override(),
                sale_id: id,
                status,
                total_minor: event.total_minor(),
            }),
            EventKind::Return { .. } => Recorded::Return(ReturnRecorded {
                return_id: id,
                status,
                total_minor: event.total_minor(),
            }),
            EventKind::Receipt => Recorded::Receipt(ReceiptRecorded {
                receipt_id: id,
                status,
                units: units(&event.lines),
            }),
            EventKind::CountAdjustment {
                counted,
                direction,
                unresolved,
            } => Recorded::Count(CountRecorded {
                adjusted: event.lines.first().map_or(0, |l| l.qty),
                count_id: id,
                counted: *counted,
                direction: *direction,
                gtin: event.lines.first().map(|l| l.gtin),
                status,
                unresolved: *unresolved,
            }),
            EventKind::Order { reference } => Recorded::Order(OrderRecorded {
                order_id: id,
                reference: reference.clone(),
                status,
            }),
            EventKind::TransferOut { transfer_id, to } => Recorded::Transfer(TransferRecorded {
                event_id: id,
                store: to.clone(),
                status,
                transfer_id: transfer_id.clone(),
                transfer_status: tally_sync::transfer::TransferStatus::InTransit,
                units: units(&event.lines),
            }),
            EventKind::TransferIn { transfer_id, from } => Recorded::Transfer(TransferRecorded {
                event_id: id,
                store: from.clone(),
                status,
                transfer_id: transfer_id.clone(),
                transfer_status: tally_sync::transfer::TransferStatus::Received,
                units: units(&event.lines),
            }),
            EventKind::Fulfilment {
                order_id,
                status: order_status,
            } => Recorded::Fulfilment(FulfilmentRecorded {
                fulfilment_id: Some(id),
                order_id: order_id.clone(),
                order_status: *order_status,
                status,
            }),
        }
    }
}

/// Units of an item that returns naming a sale took back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnedUnits {
    /// The item.
    pub gtin: Gtin,
    /// Units.
    pub units: u64,
}

/// `GET /v1/sales/{id}`: a recorded sale and what returns took back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleView {
    /// When it was recorded (the store's clock, Unix ms).
    pub at_ms: u64,
    /// What it sold.
    pub lines: Vec<Line>,
    /// Sold beyond rights with a manager's approval.
    #[serde(default)]
    pub overridden: bool,
    /// The approval and the units it found, if any.
    #[serde(default, rename = "override")]
    pub override_: Option<Override>,
    /// Units returns naming it took back, per item.
    #[serde(default)]
    pub returned: Vec<ReturnedUnits>,
    /// The sale's id.
    pub sale_id: EventId,
    /// Always `committed`.
    #[serde(default = "committed")]
    pub status: String,
    /// The store.
    pub store_id: LocationId,
    /// How it was paid.
    #[serde(default)]
    pub tenders: Vec<Tender>,
    /// Its total.
    pub total_minor: i64,
    /// Who keyed it and who approved it.
    #[serde(default, skip_serializing_if = "Staff::is_empty")]
    pub staff: Staff,
    /// Lines priced other than the catalog's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub price_overrides: Vec<PriceOverride>,
}

impl SaleView {
    /// The view of `event` with the units `returned` from it, or `None`
    /// if the event is not a sale.
    pub fn of(event: &Event, returned: &BTreeMap<Gtin, u64>) -> Option<Self> {
        let EventKind::Sale { tenders, override_ } = &event.kind else {
            return None;
        };
        Some(Self {
            at_ms: event.at_ms,
            lines: event.lines.clone(),
            overridden: event.is_override(),
            override_: override_.clone(),
            returned: returned
                .iter()
                .map(|(&gtin, &units)| ReturnedUnits { gtin, units })
                .collect(),
            sale_id: event.id,
            status: committed(),
            store_id: event.location.clone(),
            tenders: tenders.clone(),
            total_minor: event.total_minor(),
            staff: event.staff.clone(),
            price_overrides: event.price_overrides.clone(),
        })
    }

    /// Units sold and units still returnable, over all items.
    pub fn sold_and_left(&self) -> (u64, u64) {
        let sold = self.lines.iter().fold(0u64, |a, l| a.saturating_add(l.qty));
        let returned = self
            .returned
            .iter()
            .fold(0u64, |a, r| a.saturating_add(r.units));
        (sold, sold.saturating_sub(returned))
    }
}

/// `GET /v1/returns/{id}`: a recorded return (a refund's receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnView {
    /// When it was recorded (the store's clock, Unix ms).
    pub at_ms: u64,
    /// What came back, at the refunded prices.
    pub lines: Vec<Line>,
    /// The sale it named, if any.
    pub original_sale_id: Option<EventId>,
    /// The return's id.
    pub return_id: EventId,
    /// Always `committed`.
    #[serde(default = "committed")]
    pub status: String,
    /// The store.
    pub store_id: LocationId,
    /// The refunded total.
    pub total_minor: i64,
    /// Who keyed it and who approved it.
    #[serde(default, skip_serializing_if = "Staff::is_empty")]
    pub staff: Staff,
    /// Lines priced other than the catalog's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub price_overrides: Vec<PriceOverride>,
}

impl ReturnView {
    /// The view of `event`, or `None` if it is not a return.
    pub fn of(event: &Event) -> Option<Self> {
        let EventKind::Return { original_sale } = &event.kind else {
            return None;
        };
        Some(Self {
            at_ms: event.at_ms,
            lines: event.lines.clone(),
            original_sale_id: *original_sale,
            return_id: event.id,
            status: committed(),
            store_id: event.location.clone(),
            total_minor: event.total_minor(),
            staff: event.staff.clone(),
            price_overrides: event.price_overrides.clone(),
        })
    }
}

/// `GET /v1/stock/{gtin}`: one item's stock at this store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    /// The item.
    pub gtin: Gtin,
    /// Units on hand at this store (all replicas).
    pub on_hand: u64,
    /// Units whose rights other replicas hold (the hub's online reserve).
    #[serde(default)]
    pub others_rights: u64,
    /// Units this store may still sell.
    pub rights: u64,
}

impl Stock {
    /// The stock view of one counter for replica `me`.
    pub fn of(gtin: Gtin, c: &BoundedCounter, me: &ReplicaId) -> Self {
        let others_rights = c
            .replicas()
            .iter()
            .filter(|r| *r != me)
            .fold(0u64, |acc, r| acc.saturating_add(c.rights(r)));
        Self {
            gtin,
            on_hand: c.value(),
            others_rights,
            rights: c.rights(me),
        }
    }
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The last accepted sync, RFC 3339 (UTC).
    #[serde(default)]
    pub last_sync_at: Option<String>,
    /// The last accepted sync, Unix ms.
    #[serde(default)]
    pub last_sync_ms: Option<u64>,
    /// Whether the last sync attempt reached the hub.
    pub online: bool,
    /// Whether the live link to the hub is open now.
    #[serde(default)]
    pub live: bool,
    /// Since when the live link is open, RFC 3339 (UTC).
    #[serde(default)]
    pub live_since: Option<String>,
    /// Events waiting in the outbox.
    #[serde(default)]
    pub outbox_events: u64,
    /// The agent's replica.
    pub replica_id: ReplicaId,
    /// The store.
    pub store_id: LocationId,
    /// Why the last sync failed, if it did.
    #[serde(default)]
    pub sync_error: Option<String>,
    /// The hub's clock less the agent's box's, ms (to a second or so),
    /// from the hub's last answer: events are dated by the box's clock,
    /// and the hub refuses those more than a day ahead.
    #[serde(default)]
    pub hub_clock_offset_ms: Option<i64>,
    /// The agent's version.
    #[serde(default)]
    pub version: String,
    /// Whether sales and returns need a signed-in cashier
    /// (`POST /v1/cashiers/sign-in`).
    #[serde(default)]
    pub cashier_sign_in: bool,
    /// The catalog's version: it rises with every change of an item (a
    /// terminal reads its basket's prices again when it moves).
    #[serde(default)]
    pub catalog_version: u64,
}

/// How far the agent's box's clock may be from the hub's
/// ([`AgentStatus::hub_clock_offset_ms`]) before the agent and the
/// terminal warn: sales are dated by it, and the hub refuses events
/// dated more than a day ahead.
pub const CLOCK_WARN_MS: i64 = 2 * 60_000;

impl AgentStatus {
    /// The hub's clock less the box's, if beyond [`CLOCK_WARN_MS`].
    pub fn clock_off_ms(&self) -> Option<i64> {
        self.hub_clock_offset_ms
            .filter(|o| o.unsigned_abs() > CLOCK_WARN_MS.unsigned_abs())
    }
}

/// `POST /v1/cashiers/sign-in`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    /// The session's token: send it as `X-Tally-Session` with every
    /// request (shown once).
    pub session: String,
    /// The cashier signed in.
    pub cashier: String,
    /// Seconds the session lasts without a request.
    pub idle_timeout_s: u64,
}

/// `POST /v1/catalog`'s answer (and `catalog import`'s output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogImported {
    /// Items that were new or different.
    pub changed: usize,
    /// Items in the request.
    pub items: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sale_answer_prints_as_before() {
        let body = Recorded::Sale(SaleRecorded {
            overridden: false,
            sale_id: EventId(uuid::Uuid::nil()),
            status: committed(),
            total_minor: 129,
        });
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"overridden":false,"sale_id":"00000000-0000-0000-0000-000000000000","status":"committed","total_minor":129}"#
        );
    }
}

/// One line of an order's allocation, with the item's name when the
/// catalog knows it (for the pick list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLineView {
    /// The item.
    pub gtin: Gtin,
    /// Its catalog name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Units to hand over.
    pub qty: u64,
}

/// This store's allocation of an order (`GET /v1/orders`,
/// `GET /v1/orders/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// When the hub allocated it.
    pub allocated_at: String,
    /// How it reaches the customer: `pickup` or `ship`.
    pub fulfilment: tally_sync::fulfilment::Fulfilment,
    /// What to hand over.
    pub lines: Vec<OrderLineView>,
    /// The order.
    pub order_id: String,
    /// Where it stands: `allocated`, `picked`, `collected`, `shipped`,
    /// `cancelled`.
    pub status: tally_sync::fulfilment::Status,
}

impl OrderView {
    /// The view of `a`, naming items with `name`.
    pub fn of(
        a: &tally_sync::fulfilment::OrderAllocation,
        name: impl Fn(Gtin) -> Option<String>,
    ) -> Self {
        Self {
            allocated_at: tally_sync::timestamp::rfc3339(a.at_ms),
            fulfilment: a.fulfilment,
            lines: a
                .lines
                .iter()
                .map(|l| OrderLineView {
                    gtin: l.gtin,
                    name: name(l.gtin),
                    qty: l.qty,
                })
                .collect(),
            order_id: a.order_id.clone(),
            status: a.status,
        }
    }
}

/// `GET /v1/orders?status=…`: a page of this store's allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderList {
    /// Pass as `after` for the next page (the last order id), when the
    /// page was full.
    #[serde(default)]
    pub next: Option<String>,
    /// The allocations.
    pub orders: Vec<OrderView>,
}

/// One line of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLineView {
    /// The tag of a serialized unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epc: Option<tally_sync::Epc>,
    /// The item.
    pub gtin: Gtin,
    /// Its catalog name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Units.
    pub qty: u64,
}

/// A transfer to or from this store (`GET /v1/transfers`,
/// `GET /v1/transfers/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    /// `out` (this store sent it) or `in` (sent to this store).
    pub direction: String,
    /// The source store.
    pub from_store: LocationId,
    /// What was sent.
    pub lines: Vec<TransferLineView>,
    /// When the source recorded it.
    pub sent_at: String,
    /// `in_transit` or `received`.
    pub status: tally_sync::transfer::TransferStatus,
    /// The destination store.
    pub to_store: LocationId,
    /// The transfer.
    pub transfer_id: String,
}

impl TransferView {
    /// The view of `t` at store `here`, naming items with `name`.
    pub fn of(
        t: &tally_sync::transfer::Transfer,
        here: &LocationId,
        name: impl Fn(Gtin) -> Option<String>,
    ) -> Self {
        Self {
            direction: if t.from == *here { "out" } else { "in" }.into(),
            from_store: t.from.clone(),
            lines: t
                .lines
                .iter()
                .map(|l| TransferLineView {
                    epc: l.epc.clone(),
                    gtin: l.gtin,
                    name: name(l.gtin),
                    qty: l.qty,
                })
                .collect(),
            sent_at: tally_sync::timestamp::rfc3339(t.sent_at_ms),
            status: t.status,
            to_store: t.to.clone(),
            transfer_id: t.transfer_id.clone(),
        }
    }
}

/// `GET /v1/transfers?status=…`: a page of this store's transfers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferList {
    /// The last id when the page was full (pass as `after`).
    #[serde(default)]
    pub next: Option<String>,
    /// The transfers.
    pub transfers: Vec<TransferView>,
}
