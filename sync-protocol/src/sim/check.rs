//! The verdict: the escrow invariant on every replica, convergence after
//! healing, double-selling computed from the events alone, counters
//! cross-checked against those events, units conserved chain-wide (in
//! transit included), returns within their original's bound, and
//! allocation and transfer statuses the same at the hub and the stores.

use std::collections::BTreeMap;

use super::Sim;
use crate::audit::Flow;
use crate::event::{Event, EventKind};
use crate::exchange::MemoryReplica;
use crate::gtin::Gtin;
use crate::ids::EventId;
use crate::inventory::ItemKey;
use crate::ledger::units_per_item;

/// The flows of every location summed per item: the chain's view.
pub(super) fn chain_flows(flows: &BTreeMap<ItemKey, Flow>) -> BTreeMap<Gtin, Flow> {
    let mut out: BTreeMap<Gtin, Flow> = BTreeMap::new();
    for (key, f) in flows {
        let c = out.entry(key.gtin).or_default();
        c.units_in += f.units_in;
        c.sold += f.sold;
        c.ordered += f.ordered;
        c.shrink += f.shrink;
        c.transferred_out += f.transferred_out;
        c.transferred_in += f.transferred_in;
    }
    out
}

/// A return bound broken: returns naming `original` took back
/// `returned` units of `gtin`, which it sold `sold` of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OverBound {
    pub original: EventId,
    pub gtin: Gtin,
    pub returned: u64,
    pub sold: u64,
}

/// From the events alone: the originals (sales, online orders) whose
/// returns took back more than they sold, among those none of whose
/// returns was taken on a manager's approval (a return taken offline,
/// which the hub could not bound).
pub(super) fn returns_over_bound<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> Vec<OverBound> {
    let mut sold: BTreeMap<EventId, BTreeMap<Gtin, u64>> = BTreeMap::new();
    let mut returned: BTreeMap<EventId, BTreeMap<Gtin, u64>> = BTreeMap::new();
    let mut unchecked = std::collections::BTreeSet::new();
    for e in events {
        match &e.kind {
            EventKind::Sale { .. } | EventKind::Order { .. } => {
                sold.insert(e.id, units_per_item(&e.lines));
            }
            EventKind::Return {
                original_sale: Some(o),
            } => {
                if e.staff.approval.is_some() {
                    unchecked.insert(*o);
                }
                let r = returned.entry(*o).or_default();
                for (gtin, n) in units_per_item(&e.lines) {
                    let t = r.entry(gtin).or_default();
                    *t = t.saturating_add(n);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (original, items) in returned {
        let Some(s) = sold.get(&original) else {
            continue;
        };
        if unchecked.contains(&original) {
            continue;
        }
        for (gtin, n) in items {
            let sold = s.get(&gtin).copied().unwrap_or(0);
            if n > sold {
                out.push(OverBound {
                    original,
                    gtin,
                    returned: n,
                    sold,
                });
            }
        }
    }
    out
}

impl Sim {
    /// No replica anywhere has negative on-hand or negative rights.
    pub(super) fn check_escrow(&mut self, when: &str) {
        let mut found = Vec::new();
        let replicas: Vec<&MemoryReplica> = std::iter::once(&self.hub)
            .chain(self.stores.iter().map(|s| &s.mem.replica))
            .collect();
        for state in replicas {
            for (key, c) in state.inventory.iter() {
                if c.on_hand_signed() < 0 {
                    found.push(format!("{when}: negative on-hand at {key:?}"));
                }
                for r in c.replicas() {
                    if c.balance(&r) < 0 {
                        found.push(format!("{when}: negative rights for {r} at {key:?}"));
                    }
                }
            }
        }
        for f in found {
            self.violation(f);
        }
    }

    pub(super) fn check(&mut self) {
        self.check_escrow("after healing");
        // Convergence: every store's counters equal the hub's, and the hub
        // holds every store's events.
        let mut converged = true;
        for st in &self.stores {
            let mine = &st.mem.replica;
            if !mine
                .inventory
                .same_state_at(&self.hub.inventory, &st.mem.who.location)
            {
                converged = false;
            }
            if mine
                .journal
                .iter()
                .any(|e| !self.hub.journal.contains(&e.id))
            {
                converged = false;
            }
        }
        self.report.converged = converged;

        // Double-selling, from the events every replica accepted.
        let mut all = crate::journal::Journal::new();
        all.merge(&self.hub.journal);
        for st in &self.stores {
            all.merge(&st.mem.replica.journal);
        }
        self.report.double_sold = crate::audit::double_sold(all.iter());
        let mut epcs = self.hub.epcs.clone();
        for st in &self.stores {
            epcs.merge(&st.mem.replica.epcs);
        }
        self.report.double_sold_epcs = epcs.double_sold().len();

        // Counters and events must tell the same story.
        let flows = crate::audit::flows(all.iter());
        let mut mismatches = Vec::new();
        for (key, flow) in &flows {
            let on_hand = self.hub.inventory.counter(key).value();
            if u128::from(on_hand) != flow.on_hand() {
                mismatches.push(format!(
                    "{key:?}: counters say {on_hand} on hand, events say {}",
                    flow.on_hand()
                ));
            }
        }
        for m in mismatches {
            self.violation(m);
        }
        self.check_omnichannel(&all, &flows);
    }

    /// Units conserved chain-wide, return bounds, and the allocation and
    /// transfer statuses of the hub and the stores converged.
    fn check_omnichannel(
        &mut self,
        all: &crate::journal::Journal,
        flows: &BTreeMap<ItemKey, Flow>,
    ) {
        let mut found = Vec::new();
        // Units conserved per item: the counters after healing hold what
        // the events left on hand, and what left one store and has not
        // reached another is exactly the transfers not received.
        let mut in_transit_model: BTreeMap<Gtin, u128> = BTreeMap::new();
        for t in self.transfers.values().filter(|t| !t.received) {
            *in_transit_model.entry(t.gtin).or_default() += u128::from(t.qty);
        }
        let mut in_transit_hub: BTreeMap<Gtin, u128> = BTreeMap::new();
        for t in self.orders.transfers.values() {
            if t.status == crate::transfer::TransferStatus::InTransit {
                for (gtin, n) in t.units() {
                    *in_transit_hub.entry(gtin).or_default() += u128::from(n);
                }
            }
        }
        let chain = chain_flows(flows);
        for &gtin in &self.items {
            let f = chain.get(&gtin).copied().unwrap_or_default();
            let on_hand: u128 = self
                .stores
                .iter()
                .map(|st| u128::from(st.mem.on_hand(gtin)))
                .sum();
            let arrived = f.arrived() as i128;
            let out = f.out() as i128;
            if on_hand as i128 != arrived - out {
                found.push(format!(
                    "{gtin}: stores hold {on_hand}, events say {} arrived and {} left",
                    arrived, out
                ));
            }
            let transit = f.transferred_out as i128 - f.transferred_in as i128;
            let model = in_transit_model.get(&gtin).copied().unwrap_or(0);
            let hub = in_transit_hub.get(&gtin).copied().unwrap_or(0);
            if transit != model as i128 || hub != model {
                found.push(format!(
                    "{gtin}: in transit {transit} by the events, {hub} at the hub, {model} by the model"
                ));
            }
        }
        if self.orders.transfers.len() != self.transfers.len() {
            found.push(format!(
                "the hub knows {} transfers, {} were sent",
                self.orders.transfers.len(),
                self.transfers.len()
            ));
        }
        self.report.conservation_ok = found.is_empty();
        self.report.transfers_in_transit =
            self.transfers.values().filter(|t| !t.received).count() as u64;
        // Every return checked while connected within its original's
        // bound, from the events.
        for o in returns_over_bound(all.iter()) {
            found.push(format!(
                "returns naming {} took back {} of {}, which it sold {}",
                o.original, o.returned, o.gtin, o.sold
            ));
        }
        // The hub and the stores agree on every allocation and transfer.
        self.report.conflicts = self.orders.conflicts;
        for (order_id, order) in &self.orders.routed {
            for a in &order.allocations {
                let at_store = self
                    .store_at(&a.store)
                    .and_then(|i| self.stores[i].mem.allocations.get(order_id))
                    .map(|x| x.status);
                if at_store != Some(a.status) {
                    found.push(format!(
                        "{order_id} at {}: {:?} at the hub, {at_store:?} at the store",
                        a.store, a.status
                    ));
                }
            }
        }
        for (id, t) in &self.orders.transfers {
            for end in [&t.from, &t.to] {
                let at_store = self
                    .store_at(end)
                    .and_then(|i| self.stores[i].mem.transfers.get(id))
                    .map(|x| x.status);
                if at_store != Some(t.status) {
                    found.push(format!(
                        "transfer {id} at {end}: {:?} at the hub, {at_store:?} at the store",
                        t.status
                    ));
                }
            }
        }
        for f in found {
            self.violation(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Approval, Line, Staff};
    use crate::ids::{LocationId, ReplicaId};

    fn gtin() -> Gtin {
        Gtin::from_body(7).unwrap()
    }

    fn event(n: u8, kind: EventKind, qty: u64, approved: bool) -> Event {
        Event {
            id: EventId::v7(u64::from(n), [n; 10]),
            location: LocationId::new("a").unwrap(),
            replica: ReplicaId::new("a").unwrap(),
            at_ms: u64::from(n),
            kind,
            lines: vec![Line {
                gtin: gtin(),
                qty,
                unit_price_minor: 1,
                epc: None,
            }],
            staff: Staff {
                approval: approved.then(|| Approval {
                    approver: "m".into(),
                    reason: "offline".into(),
                }),
                ..Staff::default()
            },
            price_overrides: Vec::new(),
        }
    }

    fn ret(n: u8, of: &Event, qty: u64, approved: bool) -> Event {
        event(
            n,
            EventKind::Return {
                original_sale: Some(of.id),
            },
            qty,
            approved,
        )
    }

    #[test]
    fn returns_above_their_sale_are_found_unless_one_was_taken_offline() {
        let sale = |n| {
            event(
                n,
                EventKind::Sale {
                    tenders: vec![],
                    override_: None,
                },
                3,
                false,
            )
        };
        let (a, b) = (sale(1), sale(2));
        let events = [
            a.clone(),
            ret(3, &a, 2, false),
            ret(4, &a, 2, false),
            b.clone(),
            ret(5, &b, 2, false),
            ret(6, &b, 2, true),
        ];
        assert_eq!(
            returns_over_bound(events.iter()),
            [OverBound {
                original: a.id,
                gtin: gtin(),
                returned: 4,
                sold: 3
            }]
        );
        assert!(returns_over_bound(events[..2].iter()).is_empty());
    }

    #[test]
    fn chain_flows_sum_every_location() {
        let key = |l: &str| ItemKey::new(LocationId::new(l).unwrap(), gtin());
        let flows = BTreeMap::from([
            (
                key("a"),
                Flow {
                    units_in: 5,
                    transferred_out: 2,
                    ..Flow::default()
                },
            ),
            (
                key("b"),
                Flow {
                    sold: 1,
                    transferred_in: 1,
                    ..Flow::default()
                },
            ),
        ]);
        let chain = chain_flows(&flows)[&gtin()];
        assert_eq!((chain.arrived(), chain.out()), (6, 3));
        assert_eq!(chain.transferred_out - chain.transferred_in, 1);
    }
}
