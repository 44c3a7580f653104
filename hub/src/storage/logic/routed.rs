//! Routed orders: an online order that names no store (`fulfilment:
//! "ship"`) is routed by the hub to the stores that can fill it, in one
//! write transaction: the candidates are read (the stores where the hub
//! holds rights to the order's items, from the holdings index: one range
//! per line), [`tally_sync::routing::route`] decides, and each
//! allocation is recorded as today's online order at its store (an
//! `Order` event against the hub's rights there, so stock, audits and the
//! store's sync need nothing new) and counted as online demand there.
//! All allocations or none.
//!
//! An order id names one order among routed and store-named orders: a
//! repeat with the same lines is answered alike, another is a conflict.
//! Cancellations and the stores' own moves (`fulfilment` events) move an
//! order's allocations; each change is announced to its store
//! (`HubTxn::announce`), whose next allocations page brings it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tally_sync::fulfilment::{Fulfilment, OrderAllocation, Status};
use tally_sync::message::AllocationsPage;
use tally_sync::routing::{route, AllocatedLine, Candidate, Preference, Unfillable};
use tally_sync::{Event, EventId, EventKind, Gtin, LocationId, ReplicaId, ReservePolicy};

use super::orders::{order_event, record_demand, record_hub_event};
use super::transfers::HubTransfer;
use crate::storage::txn::HubTxn;
use crate::storage::StorageError;

/// An order's status from its allocations': the least advanced of those
/// not cancelled (an order is collected when every part is), or
/// `cancelled` when all are.
fn order_status(allocations: &[AllocationRecord]) -> Status {
    let rank = |s: Status| match s {
        Status::Allocated => 0,
        Status::Picked => 1,
        Status::Collected | Status::Shipped => 2,
        Status::Cancelled => 3,
    };
    allocations
        .iter()
        .map(|a| a.status)
        .filter(|s| *s != Status::Cancelled)
        .min_by_key(|s| rank(*s))
        .unwrap_or(Status::Cancelled)
}

/// The allocation of `order` at `store`, as the store keeps it.
fn store_view(order: &RoutedOrder, store: &LocationId) -> Option<OrderAllocation> {
    let a = order.allocations.iter().find(|a| a.store == *store)?;
    Some(OrderAllocation {
        order_id: order.order_id.clone(),
        fulfilment: order.fulfilment,
        lines: a.lines.clone(),
        status: a.status,
        at_ms: order.at_ms,
    })
}

/// `store`'s allocations page: the changes after change version `after`
/// that `next_change` yields (version, `o:ORDER` or `t:TRANSFER`), oldest
/// first, each read by `order` or `transfer`; at most `limit` changes
/// (allocations and transfers alike, so a store back after a long time
/// away gets its backlog in pages), `more` if changes remain.
pub(crate) fn allocations_page(
    store: &LocationId,
    after: u64,
    limit: usize,
    mut next_change: impl FnMut() -> Result<Option<(u64, String)>, StorageError>,
    order: impl Fn(&str) -> Result<Option<RoutedOrder>, StorageError>,
    transfer: impl Fn(&str) -> Result<Option<HubTransfer>, StorageError>,
) -> Result<AllocationsPage, StorageError> {
    let mut page = AllocationsPage {
        allocations: Vec::new(),
        transfers: Vec::new(),
        cursor: after,
        more: false,
    };
    let mut taken = 0;
    while let Some((version, key)) = next_change()? {
        if taken == limit {
            page.more = true;
            break;
        }
        taken += 1;
        page.cursor = version;
        if let Some(order_id) = key.strip_prefix("o:") {
            if let Some(o) = order(order_id)? {
                page.allocations.extend(store_view(&o, store));
            }
        } else if let Some(id) = key.strip_prefix("t:") {
            page.transfers.extend(
                transfer(id)?
                    .map(|t| t.transfer)
                    .filter(|t| t.from == *store || t.to == *store),
            );
        }
    }
    Ok(page)
}

/// What a store's `fulfilment` event did to its allocation at the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Moved {
    /// Merged (or already known).
    Merged,
    /// Merged, but it handed over what HQ had cancelled meanwhile: the
    /// hand-over stands; the cancellation's units are back in stock while
    /// the customer has them.
    Conflict {
        /// The hand-over that stands.
        kept: Status,
    },
    /// No allocation of that order at that store.
    Unknown,
}

/// Merges `store`'s move of its allocation of `order_id` to `status`
/// into the order (a join: a late or repeated move changes nothing).
pub(crate) fn store_moved<T: HubTxn>(
    txn: &mut T,
    store: &LocationId,
    order_id: &str,
    status: Status,
) -> Result<Moved, StorageError> {
    let Some(mut order) = txn.routed_order(order_id)? else {
        return Ok(Moved::Unknown);
    };
    let Some(a) = order.allocations.iter_mut().find(|a| a.store == *store) else {
        return Ok(Moved::Unknown);
    };
    let (merged, conflict) = a.status.merge(status);
    if merged == a.status {
        return Ok(Moved::Merged);
    }
    a.status = merged;
    let was = order.status;
    order.status = order_status(&order.allocations);
    txn.put_routed_order(&order, Some(was))?;
    Ok(match conflict {
        Some(c) => Moved::Conflict { kept: c.kept },
        None => Moved::Merged,
    })
}

/// How the hub chooses stores for orders that name none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingSettings {
    /// Among stores that can fill an order: priority list or most spare.
    pub preference: Preference,
    /// Stores in order of preference (others after them, by id).
    pub priority: Vec<LocationId>,
}

/// A routed order to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedOrderRequest {
    /// The client's id for idempotence.
    pub order_id: String,
    /// How it reaches the customer.
    pub fulfilment: Fulfilment,
    /// The store it must be filled at (a pickup order's, or a ship order
    /// HQ placed at one store); `None`: routed over every store.
    pub store: Option<LocationId>,
    /// Items and quantities, one line per item, in item order.
    pub lines: Vec<(Gtin, u64)>,
    /// Randomness for the allocations' event ids.
    pub seed: [u8; 10],
    /// The hub's clock (Unix ms).
    pub now_ms: u64,
}

impl RoutedOrderRequest {
    fn fingerprint(&self) -> String {
        let lines: Vec<String> = self.lines.iter().map(|(g, q)| format!("{g}x{q}")).collect();
        match &self.store {
            None => format!("route:{:?}|{}", self.fulfilment, lines.join(",")),
            Some(at) => format!("route:{:?}@{at}|{}", self.fulfilment, lines.join(",")),
        }
    }
}

/// One store's part of a routed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRecord {
    /// The store.
    pub store: LocationId,
    /// Where it stands.
    pub status: Status,
    /// The `Order` event that took the units from the hub's rights there.
    pub event_id: EventId,
    /// Its lines.
    pub lines: Vec<AllocatedLine>,
}

/// A routed order as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutedOrder {
    /// The client's id.
    pub order_id: String,
    /// How it reaches the customer.
    pub fulfilment: Fulfilment,
    /// Where the order stands: `allocated` until it is cancelled (the
    /// stores' moves are not reported yet).
    pub status: Status,
    /// Its allocations.
    pub allocations: Vec<AllocationRecord>,
    /// When it was taken (hub clock, Unix ms).
    pub at_ms: u64,
    #[serde(default)]
    fingerprint: String,
}

/// What became of a routed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutedResult {
    /// Routed and recorded now.
    Accepted(RoutedOrder),
    /// Recorded earlier under the same id, same lines.
    Replayed(RoutedOrder),
    /// The id names another order.
    IdConflict,
    /// The chain's reserves cannot fill it: units missing per item, and
    /// what the reserves would give meanwhile. Nothing written.
    Unfillable(Unfillable),
}

/// The id of the event for a routed order's `i`th allocation: `seed` made
/// distinct per allocation.
fn allocation_event_id(seed: [u8; 10], now_ms: u64, i: usize) -> EventId {
    let mut random = seed;
    random[9] ^= u8::try_from(i % 256).unwrap_or(0);
    random[8] ^= u8::try_from(i / 256 % 256).unwrap_or(0);
    EventId::v7(now_ms, random)
}

/// Records the hub's own `event` of a routed order. The candidates were
/// read in this transaction, so the hub's rights cover it: a refusal is a
/// bug, and aborts the whole batch rather than keep half an order.
fn record<T: HubTxn>(txn: &mut T, event: &Event, order_id: &str) -> Result<(), StorageError> {
    match record_hub_event(txn, event)? {
        Ok(_) => Ok(()),
        Err(refusal) => Err(StorageError::broken(format!(
            "routed order {order_id}: its event at {} refused: {refusal}",
            event.location
        ))),
    }
}

/// Routes and records `o` (see the module docs), counting each
/// allocation as online demand at its store by `policy`.
pub(crate) fn route_order<T: HubTxn>(
    txn: &mut T,
    o: &RoutedOrderRequest,
    routing: &RoutingSettings,
    policy: &ReservePolicy,
) -> Result<RoutedResult, StorageError> {
    // A store-named order refused under this id leaves it free.
    if txn
        .store_named_order(&o.order_id)?
        .is_some_and(|index| index.receipt.is_some())
    {
        return Ok(RoutedResult::IdConflict);
    }
    if let Some(old) = txn.routed_order(&o.order_id)? {
        return Ok(if old.fingerprint == o.fingerprint() {
            RoutedResult::Replayed(old)
        } else {
            RoutedResult::IdConflict
        });
    }
    let candidates = candidates(txn, o, routing)?;
    let wanted: Vec<AllocatedLine> = o
        .lines
        .iter()
        .map(|&(gtin, qty)| AllocatedLine { gtin, qty })
        .collect();
    let allocations = match route(&wanted, &candidates, routing.preference) {
        Ok(a) => a,
        Err(short) => return Ok(RoutedResult::Unfillable(short)),
    };
    let mut records = Vec::with_capacity(allocations.len());
    for (i, a) in allocations.into_iter().enumerate() {
        let event_id = allocation_event_id(o.seed, o.now_ms, i);
        let units: Vec<(Gtin, u64)> = a.lines.iter().map(|l| (l.gtin, l.qty)).collect();
        let event = order_event(&*txn, event_id, &a.store, &o.order_id, &units, o.now_ms)?;
        record(txn, &event, &o.order_id)?;
        record_demand(txn, &a.store, &units, o.now_ms, policy)?;
        records.push(AllocationRecord {
            store: a.store,
            status: Status::Allocated,
            event_id,
            lines: a.lines,
        });
    }
    let order = RoutedOrder {
        order_id: o.order_id.clone(),
        fulfilment: o.fulfilment,
        status: Status::Allocated,
        allocations: records,
        at_ms: o.now_ms,
        fingerprint: o.fingerprint(),
    };
    txn.put_routed_order(&order, None)?;
    for a in &order.allocations {
        txn.announce(&a.store, &format!("o:{}", order.order_id))?;
    }
    Ok(RoutedResult::Accepted(order))
}

/// What became of a cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelResult {
    /// Every allocation not handed over is cancelled now or was before.
    Cancelled(RoutedOrder),
    /// No routed order has this id.
    NotFound,
    /// An allocation was already handed over (collected or shipped):
    /// nothing cancelled.
    HandedOver(RoutedOrder),
}

/// Cancels routed order `order_id`: each open allocation gives its units
/// back to the hub's rights at its store (a `Return` by the hub naming
/// the allocation's `Order` event, the mirror of its lines), and is
/// `cancelled`. Idempotent; refused whole if any allocation was handed
/// over.
pub(crate) fn cancel<T: HubTxn>(
    txn: &mut T,
    order_id: &str,
    seed: [u8; 10],
    now_ms: u64,
) -> Result<CancelResult, StorageError> {
    let Some(mut order) = txn.routed_order(order_id)? else {
        return Ok(CancelResult::NotFound);
    };
    if order.allocations.iter().any(|a| a.status.handed_over()) {
        return Ok(CancelResult::HandedOver(order));
    }
    for (i, a) in order.allocations.iter_mut().enumerate() {
        if !a.status.open() {
            continue;
        }
        let Some(placed) = txn.event(&a.event_id)? else {
            return Err(StorageError::broken(format!(
                "routed order {order_id}: the event {} of its allocation at {} is missing",
                a.event_id, a.store
            )));
        };
        let event = Event {
            id: allocation_event_id(seed, now_ms, i),
            location: a.store.clone(),
            replica: ReplicaId::hub(),
            at_ms: now_ms,
            kind: EventKind::Return {
                original_sale: Some(a.event_id),
            },
            lines: placed.lines,
            staff: Default::default(),
            price_overrides: Vec::new(),
        };
        record(txn, &event, order_id)?;
        a.status = Status::Cancelled;
        txn.announce(&a.store, &format!("o:{order_id}"))?;
    }
    let was = order.status;
    order.status = Status::Cancelled;
    txn.put_routed_order(&order, Some(was))?;
    Ok(CancelResult::Cancelled(order))
}

/// The stores where the hub holds rights to any of the order's items
/// (only the named store, if the order names one), with those rights:
/// one range of the holdings index per line, so the cost grows with the
/// stores holding the items, not with the chain.
fn candidates<T: HubTxn>(
    txn: &T,
    o: &RoutedOrderRequest,
    routing: &RoutingSettings,
) -> Result<Vec<Candidate>, StorageError> {
    let mut by_store: BTreeMap<LocationId, Vec<(Gtin, u64)>> = BTreeMap::new();
    for &(gtin, _) in &o.lines {
        let held = match &o.store {
            Some(only) => vec![(only.clone(), txn.held_at(gtin, only)?)],
            None => txn.holders(gtin)?,
        };
        for (store, n) in held.into_iter().filter(|(_, n)| *n > 0) {
            by_store.entry(store).or_default().push((gtin, n));
        }
    }
    Ok(by_store
        .into_iter()
        .map(|(store, available)| {
            let priority = routing
                .priority
                .iter()
                .position(|p| *p == store)
                .map_or(u32::MAX, |i| u32::try_from(i).unwrap_or(u32::MAX));
            Candidate {
                store,
                priority,
                available: available.into_iter().collect(),
            }
        })
        .collect())
}
