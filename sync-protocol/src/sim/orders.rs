//! The hub's side of omnichannel orders (issue 22), in memory, kept small
//! and faithful to the hub server's rules:
//!
//! - routed orders mirror `hub/src/storage/routed.rs`: an order that names
//!   no store is routed over the hub's rights at every store with
//!   [`route`], each allocation recorded as an `Order` event at its store
//!   through [`crate::command::record_event`] (and counted as online demand there); a
//!   pickup order is routed over the named store only; a cancellation is
//!   refused whole once an allocation was handed over, else each open
//!   allocation gets a hub `Return` naming its `Order` event; a store's
//!   move merges with [`Status::merge`], a hand-over above a
//!   cancellation counted as a conflict (`store_moved`);
//! - transfers mirror `hub/src/storage/transfers.rs` (`on_event`): a
//!   `transfer_out` opens one in transit and announces it to the
//!   destination, a `transfer_in` closes it and announces it to the
//!   sender;
//! - return checks mirror `hub/src/storage/returns.rs`: `check` finds the
//!   original in the hub's journal, bounds the return by
//!   [`return_lines`] net of the returns the hub counted and the claims it
//!   holds, and claims the units; `on_return` redeems the claim and counts
//!   the return;
//! - each store's changes (`announce`) come back in its allocation page
//!   ([`AllocationsPage`]) after the cursor it sent, as
//!   `GET /v1/allocations` answers.

use std::collections::BTreeMap;

use rand::Rng;

use super::{Sim, PRICE};
use crate::command::{return_lines, LineIn, OriginalSale};
use crate::counter::BoundedCounter;
use crate::event::{Event, EventKind, Line, Staff};
use crate::fulfilment::{Fulfilment, OrderAllocation, Status};
use crate::gtin::Gtin;
use crate::ids::{EventId, LocationId, ReplicaId};
use crate::inventory::ItemKey;
use crate::ledger::{units_per_item, Refusal};
use crate::message::AllocationsPage;
use crate::returns::{ItemUnits, ReturnCheck};
use crate::routing::{route, AllocatedLine, Candidate, Preference};
use crate::transfer::{Transfer, TransferLine, TransferStatus};

/// One store's part of a routed order, as the hub keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HubAllocation {
    pub store: LocationId,
    pub event_id: EventId,
    pub lines: Vec<AllocatedLine>,
    pub status: Status,
}

/// A routed order at the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RoutedOrder {
    pub fulfilment: Fulfilment,
    pub at_ms: u64,
    pub allocations: Vec<HubAllocation>,
}

/// What the hub keeps for orders, transfers and return checks (durable,
/// as the hub's tables are).
#[derive(Debug, Clone, Default)]
pub(super) struct HubOrders {
    pub routed: BTreeMap<String, RoutedOrder>,
    pub transfers: BTreeMap<String, Transfer>,
    /// (original, return id) → units a checked return holds until its
    /// event arrives.
    pub claims: BTreeMap<(EventId, EventId), BTreeMap<Gtin, u64>>,
    /// original → units the returns that arrived took back.
    pub returned: BTreeMap<EventId, BTreeMap<Gtin, u64>>,
    /// store → (`o:ORDER` | `t:TRANSFER`) → change version.
    pub changes: BTreeMap<LocationId, BTreeMap<String, u64>>,
    pub version: u64,
    /// Hand-overs merged above a cancellation.
    pub conflicts: u64,
}

/// What became of a cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cancel {
    /// The open allocations' `Order` events to give back (the order is
    /// now cancelled).
    Cancelled(Vec<(LocationId, EventId)>),
    /// An allocation was handed over: nothing cancelled.
    HandedOver,
    /// No such order.
    NotFound,
}

impl HubOrders {
    /// Something of `store`'s changed: its next page brings `key`.
    pub fn announce(&mut self, store: &LocationId, key: String) {
        self.version += 1;
        self.changes
            .entry(store.clone())
            .or_default()
            .insert(key, self.version);
    }

    /// `store`'s allocation page after `cursor` (every change, one page).
    pub fn page(&self, store: &LocationId, cursor: u64) -> AllocationsPage {
        let mut page = AllocationsPage {
            allocations: Vec::new(),
            transfers: Vec::new(),
            cursor,
            more: false,
        };
        let Some(changes) = self.changes.get(store) else {
            return page;
        };
        let mut changed: Vec<(u64, &String)> = changes
            .iter()
            .filter(|(_, &v)| v > cursor)
            .map(|(k, &v)| (v, k))
            .collect();
        changed.sort();
        for (v, key) in changed {
            page.cursor = page.cursor.max(v);
            if let Some(id) = key.strip_prefix("o:") {
                let Some(order) = self.routed.get(id) else {
                    continue;
                };
                for a in order.allocations.iter().filter(|a| a.store == *store) {
                    page.allocations.push(OrderAllocation {
                        order_id: id.to_string(),
                        fulfilment: order.fulfilment,
                        lines: a.lines.clone(),
                        status: a.status,
                        at_ms: order.at_ms,
                    });
                }
            } else if let Some(t) = key.strip_prefix("t:").and_then(|id| self.transfers.get(id)) {
                page.transfers.push(t.clone());
            }
        }
        page
    }

    /// Cancels `order_id` (see the module docs).
    pub fn cancel(&mut self, order_id: &str) -> Cancel {
        let Some(order) = self.routed.get_mut(order_id) else {
            return Cancel::NotFound;
        };
        if order.allocations.iter().any(|a| a.status.handed_over()) {
            return Cancel::HandedOver;
        }
        let mut give_back = Vec::new();
        for a in order.allocations.iter_mut().filter(|a| a.status.open()) {
            a.status = Status::Cancelled;
            give_back.push((a.store.clone(), a.event_id));
        }
        for (store, _) in &give_back {
            self.announce(store, format!("o:{order_id}"));
        }
        Cancel::Cancelled(give_back)
    }

    /// Units returns took back from `original` before return `return_id`:
    /// those that arrived and those the hub authorized (its claims).
    pub fn returned_before(&self, original: &EventId, return_id: &EventId) -> BTreeMap<Gtin, u64> {
        let mut out = self.returned.get(original).cloned().unwrap_or_default();
        for ((_, id), units) in self.claims.range(
            (*original, EventId(uuid::Uuid::nil()))..=(*original, EventId(uuid::Uuid::max())),
        ) {
            if id == return_id {
                continue;
            }
            for (gtin, n) in units {
                let r = out.entry(*gtin).or_default();
                *r = r.saturating_add(*n);
            }
        }
        out
    }

    /// A store's event the hub just stored: a move of its allocation, a
    /// transfer sent or received, a return counted against its original.
    pub fn on_event(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Fulfilment { order_id, status } => {
                let Some(a) = self
                    .routed
                    .get_mut(order_id)
                    .and_then(|o| o.allocations.iter_mut().find(|a| a.store == event.location))
                else {
                    return;
                };
                let (merged, conflict) = a.status.merge(*status);
                if merged != a.status {
                    a.status = merged;
                    self.conflicts += u64::from(conflict.is_some());
                }
            }
            EventKind::TransferOut { transfer_id, to } => {
                if self.transfers.contains_key(transfer_id) {
                    return; // `transfer_conflict` at the hub server
                }
                self.transfers.insert(
                    transfer_id.clone(),
                    Transfer {
                        transfer_id: transfer_id.clone(),
                        from: event.location.clone(),
                        to: to.clone(),
                        lines: TransferLine::of_event(&event.lines),
                        status: TransferStatus::InTransit,
                        sent_at_ms: event.at_ms,
                        sent_event: Some(event.id),
                    },
                );
                self.announce(to, format!("t:{transfer_id}"));
            }
            EventKind::TransferIn { transfer_id, from } => {
                let Some(t) = self
                    .transfers
                    .get_mut(transfer_id)
                    .filter(|t| t.to == event.location && t.from == *from)
                else {
                    return; // `transfer_unknown`
                };
                if t.status == TransferStatus::Received {
                    return;
                }
                t.status = TransferStatus::Received;
                let sender = t.from.clone();
                self.announce(&sender, format!("t:{transfer_id}"));
            }
            EventKind::Return {
                original_sale: Some(original),
            } => {
                self.claims.remove(&(*original, event.id));
                let counted = self.returned.entry(*original).or_default();
                for (gtin, units) in units_per_item(&event.lines) {
                    let r = counted.entry(gtin).or_default();
                    *r = r.saturating_add(units);
                }
            }
            _ => {}
        }
    }

    /// The hub's check of a return naming `original` (found in its
    /// journal, or `None`): the [`ReturnCheck`] it answers, with the units
    /// claimed under `return_id`, or the refusal.
    pub fn check(
        &mut self,
        original: Option<&Event>,
        return_id: EventId,
        lines: &[LineIn],
    ) -> Result<ReturnCheck, Refusal> {
        let Some(original) = original else {
            return Err(Refusal::Invalid(
                "no sale or online order the hub holds matches this return".into(),
            ));
        };
        let returned = self.returned_before(&original.id, &return_id);
        return_lines(
            lines,
            &OriginalSale {
                event: original.clone(),
                returned: returned.clone(),
            },
        )?;
        let mut units: BTreeMap<Gtin, u64> = BTreeMap::new();
        for l in lines {
            *units.entry(l.gtin).or_default() += l.qty;
        }
        self.claims.insert((original.id, return_id), units);
        Ok(ReturnCheck {
            original: original.clone(),
            returned: returned
                .into_iter()
                .map(|(gtin, units)| ItemUnits { gtin, units })
                .collect(),
            tags: Vec::new(),
        })
    }
}

impl Sim {
    /// The hub's counter of `gtin` at store `s`.
    pub(super) fn hub_counter(&self, s: usize, gtin: Gtin) -> BoundedCounter {
        let key = ItemKey::new(self.stores[s].mem.who.location.clone(), gtin);
        self.hub.inventory.counter(&key)
    }

    /// The hub's rights to `gtin` at store `s`.
    fn hub_holds(&self, s: usize, gtin: Gtin) -> u64 {
        self.hub_counter(s, gtin).rights(&ReplicaId::hub())
    }

    /// An online order HQ routes: shipped (no store named: every store
    /// the hub holds rights at is a candidate) or picked up at store `s`.
    pub(super) fn routed_order(&mut self, s: usize) {
        let pickup = self.rng.gen_bool(0.3);
        let mut wanted = vec![AllocatedLine {
            gtin: self.item(),
            qty: self.rng.gen_range(1..=3),
        }];
        if self.rng.gen_bool(0.4) {
            let gtin = self.item();
            if gtin != wanted[0].gtin {
                wanted.push(AllocatedLine {
                    gtin,
                    qty: self.rng.gen_range(1..=2),
                });
            }
        }
        let stores: Vec<usize> = if pickup {
            vec![s]
        } else {
            (0..self.stores.len()).collect()
        };
        let candidates: Vec<Candidate> = stores
            .into_iter()
            .filter_map(|i| {
                let available: BTreeMap<Gtin, u64> = wanted
                    .iter()
                    .map(|l| (l.gtin, self.hub_holds(i, l.gtin)))
                    .filter(|(_, n)| *n > 0)
                    .collect();
                (!available.is_empty()).then(|| Candidate {
                    store: self.stores[i].mem.who.location.clone(),
                    priority: i as u32,
                    available,
                })
            })
            .collect();
        let preference = if self.rng.gen_bool(0.5) {
            Preference::Priority
        } else {
            Preference::MostSpare
        };
        // Every order is demand where it would be filled.
        let policy = self.cfg.policy;
        let allocations = match route(&wanted, &candidates, preference) {
            Ok(a) => a,
            Err(_) => {
                self.report.routed_refused += 1;
                return;
            }
        };
        self.next_order += 1;
        let order_id = format!("web-{:06}", self.next_order);
        let mut records = Vec::with_capacity(allocations.len());
        for a in allocations {
            let event = Event {
                id: self.event_id(),
                location: a.store.clone(),
                replica: ReplicaId::hub(),
                at_ms: self.now_ms,
                kind: EventKind::Order {
                    reference: Some(order_id.clone()),
                },
                lines: a
                    .lines
                    .iter()
                    .map(|l| Line {
                        gtin: l.gtin,
                        qty: l.qty,
                        unit_price_minor: PRICE,
                        epc: None,
                    })
                    .collect(),
                staff: Staff::default(),
                price_overrides: Vec::new(),
            };
            if let Err(e) = self.record_order(&event) {
                // The candidates were the hub's rights: a refusal is a bug.
                return self.violation(format!("routed order {order_id} refused: {e}"));
            }
            if let Some(i) = self.store_at(&a.store) {
                for l in &a.lines {
                    self.demand.entry((i, l.gtin)).or_default().observe(
                        l.qty,
                        self.now_ms,
                        &policy,
                    );
                }
            }
            records.push(HubAllocation {
                store: a.store,
                event_id: event.id,
                lines: a.lines,
                status: Status::Allocated,
            });
        }
        self.report.routed_orders += 1;
        self.report.allocations += records.len() as u64;
        let stores: Vec<LocationId> = records.iter().map(|a| a.store.clone()).collect();
        self.orders.routed.insert(
            order_id.clone(),
            RoutedOrder {
                fulfilment: if pickup {
                    Fulfilment::Pickup
                } else {
                    Fulfilment::Ship
                },
                at_ms: self.now_ms,
                allocations: records,
            },
        );
        for store in stores {
            self.orders.announce(&store, format!("o:{order_id}"));
        }
    }

    /// HQ cancels a routed order: refused once handed over, else each
    /// open allocation's units go back to the hub's rights at its store
    /// (a hub `Return` naming the allocation's `Order` event).
    pub(super) fn cancel_order(&mut self) {
        if self.orders.routed.is_empty() {
            return;
        }
        // A recent order: the ones a customer still cancels.
        let n = self.orders.routed.len();
        let pick = self.rng.gen_range(n.saturating_sub(20)..n);
        let Some(order_id) = self.orders.routed.keys().nth(pick).cloned() else {
            return;
        };
        let give_back = match self.orders.cancel(&order_id) {
            Cancel::Cancelled(g) => g,
            Cancel::HandedOver => {
                self.report.cancels_refused += 1;
                return;
            }
            Cancel::NotFound => return,
        };
        for (store, order_event) in give_back {
            let Some(placed) = self.hub.journal.get(&order_event).cloned() else {
                return self.violation(format!("the order event {order_event} is missing"));
            };
            let event = Event {
                id: self.event_id(),
                location: store,
                replica: ReplicaId::hub(),
                at_ms: self.now_ms,
                kind: EventKind::Return {
                    original_sale: Some(order_event),
                },
                lines: placed.lines,
                staff: Staff::default(),
                price_overrides: Vec::new(),
            };
            if let Err(e) = self.record_order(&event) {
                return self.violation(format!("cancellation of {order_id} refused: {e}"));
            }
            self.orders.on_event(&event);
            self.report.allocations_cancelled += 1;
        }
    }

    /// The store at `location`.
    pub(super) fn store_at(&self, location: &LocationId) -> Option<usize> {
        self.stores
            .iter()
            .position(|st| st.mem.who.location == *location)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gtin(n: u64) -> Gtin {
        Gtin::from_body(n).unwrap()
    }

    fn loc(s: &str) -> LocationId {
        LocationId::new(s).unwrap()
    }

    fn event(n: u64, at: &str, kind: EventKind, lines: &[(u64, u64)]) -> Event {
        Event {
            id: EventId::v7(n, [n as u8; 10]),
            location: loc(at),
            replica: ReplicaId::new(at).unwrap(),
            at_ms: n,
            kind,
            lines: lines
                .iter()
                .map(|&(g, qty)| Line {
                    gtin: gtin(g),
                    qty,
                    unit_price_minor: 100,
                    epc: None,
                })
                .collect(),
            staff: Staff::default(),
            price_overrides: Vec::new(),
        }
    }

    fn line_in(g: u64, qty: u64) -> LineIn {
        LineIn {
            gtin: gtin(g),
            qty,
            unit_price_minor: None,
            price_from_label: false,
            epc: None,
        }
    }

    fn order(stores: &[&str]) -> RoutedOrder {
        RoutedOrder {
            fulfilment: Fulfilment::Ship,
            at_ms: 1,
            allocations: stores
                .iter()
                .enumerate()
                .map(|(i, s)| HubAllocation {
                    store: loc(s),
                    event_id: EventId::v7(1, [i as u8; 10]),
                    lines: vec![AllocatedLine {
                        gtin: gtin(1),
                        qty: 1,
                    }],
                    status: Status::Allocated,
                })
                .collect(),
        }
    }

    #[test]
    fn a_checked_return_counts_arrived_returns_and_other_claims() {
        let mut hub = HubOrders::default();
        let sale = event(
            1,
            "a",
            EventKind::Sale {
                tenders: vec![],
                override_: None,
            },
            &[(1, 3)],
        );
        let first = EventId::v7(2, [2; 10]);
        let check = hub.check(Some(&sale), first, &[line_in(1, 2)]).unwrap();
        assert!(check.returned.is_empty());
        // A retry of the same return does not count its own claim.
        assert!(hub.check(Some(&sale), first, &[line_in(1, 2)]).is_ok());
        // Another return sees the claim: one unit left.
        let second = EventId::v7(3, [3; 10]);
        assert!(matches!(
            hub.check(Some(&sale), second, &[line_in(1, 2)]),
            Err(Refusal::ExceedsSale { returnable: 1, .. })
        ));
        // The first return arrives: its claim is redeemed, counted once.
        let mut arrived = event(
            2,
            "b",
            EventKind::Return {
                original_sale: Some(sale.id),
            },
            &[(1, 2)],
        );
        arrived.id = first;
        hub.on_event(&arrived);
        assert!(hub.claims.is_empty());
        assert_eq!(
            hub.returned_before(&sale.id, &second),
            BTreeMap::from([(gtin(1), 2)])
        );
        assert!(hub.check(Some(&sale), second, &[line_in(1, 1)]).is_ok());
        assert!(hub.check(None, second, &[line_in(1, 1)]).is_err());
    }

    #[test]
    fn a_cancellation_is_refused_once_handed_over_and_a_late_hand_over_is_a_conflict() {
        let mut hub = HubOrders::default();
        hub.routed.insert("o1".into(), order(&["a", "b"]));
        hub.routed.insert("o2".into(), order(&["a"]));
        hub.routed.get_mut("o2").unwrap().allocations[0].status = Status::Shipped;
        assert_eq!(hub.cancel("o2"), Cancel::HandedOver);
        assert_eq!(hub.cancel("nope"), Cancel::NotFound);
        let Cancel::Cancelled(back) = hub.cancel("o1") else {
            panic!("not cancelled")
        };
        assert_eq!(back.len(), 2);
        // Idempotent: nothing more to give back.
        assert_eq!(hub.cancel("o1"), Cancel::Cancelled(Vec::new()));
        // Store a shipped while cut off: the hand-over wins, counted.
        let moved = event(
            9,
            "a",
            EventKind::Fulfilment {
                order_id: "o1".into(),
                status: Status::Shipped,
            },
            &[],
        );
        hub.on_event(&moved);
        hub.on_event(&moved);
        assert_eq!(hub.conflicts, 1);
        assert_eq!(hub.routed["o1"].allocations[0].status, Status::Shipped);
        assert_eq!(hub.routed["o1"].allocations[1].status, Status::Cancelled);
    }

    #[test]
    fn pages_bring_each_store_its_changes_after_its_cursor() {
        let mut hub = HubOrders::default();
        hub.routed.insert("o1".into(), order(&["a", "b"]));
        hub.announce(&loc("a"), "o:o1".into());
        hub.announce(&loc("b"), "o:o1".into());
        let sent = event(
            5,
            "a",
            EventKind::TransferOut {
                transfer_id: "t1".into(),
                to: loc("b"),
            },
            &[(1, 2)],
        );
        hub.on_event(&sent);
        let page = hub.page(&loc("b"), 0);
        assert_eq!(page.allocations.len(), 1);
        assert_eq!(page.transfers.len(), 1);
        assert_eq!(page.transfers[0].status, TransferStatus::InTransit);
        assert!(hub.page(&loc("b"), page.cursor).allocations.is_empty());
        let a = hub.page(&loc("a"), 0);
        assert_eq!((a.allocations.len(), a.transfers.len()), (1, 0));
        // Received: the sender hears of it.
        let received = event(
            6,
            "b",
            EventKind::TransferIn {
                transfer_id: "t1".into(),
                from: loc("a"),
            },
            &[(1, 2)],
        );
        hub.on_event(&received);
        let a2 = hub.page(&loc("a"), a.cursor);
        assert_eq!(a2.transfers[0].status, TransferStatus::Received);
    }
}
