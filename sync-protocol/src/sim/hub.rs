//! The hub's side of the simulation: online orders, recorded through
//! [`record_event`] against the hub's own rights as the hub server records
//! them, and a store's sync handled by [`hub_handle`]. Every online order,
//! accepted or refused, is demand: it raises the hub's estimate for that
//! (store, item), from which the reserve targets of a sync come.

use rand::Rng;

use super::{Msg, Sim, PRICE};
use crate::codec::{self, Encoding};
use crate::command::{counters_at, record_event};
use crate::epcs::EpcLedger;
use crate::event::{Event, EventKind, Line};
use crate::exchange::{hub_handle, HandleError, HubLimits, ReserveTargets};
use crate::gtin::Gtin;
use crate::ids::ReplicaId;
use crate::ledger::Refusal;
use crate::message::SyncRequest;

impl Sim {
    /// An online order for store `s`'s stock, sold from the hub's rights
    /// there.
    pub(super) fn order(&mut self, s: usize) {
        let gtin = self.item();
        let qty = self.rng.gen_range(1..=2);
        let location = self.stores[s].mem.who.location.clone();
        let event = Event {
            id: self.event_id(),
            location: location.clone(),
            replica: ReplicaId::hub(),
            at_ms: self.now_ms,
            kind: EventKind::Order { reference: None },
            lines: vec![Line {
                gtin,
                qty,
                unit_price_minor: PRICE,
                epc: None,
            }],
        };
        let policy = self.cfg.policy;
        self.demand
            .entry((s, gtin))
            .or_default()
            .observe(qty, self.now_ms, &policy);
        let recorded = counters_at(&self.hub, &location, [gtin])
            .and_then(|counters| record_event(&mut self.hub, &event, &counters, &EpcLedger::new()));
        match recorded {
            Ok(Ok(_)) => self.report.orders += 1,
            Ok(Err(Refusal::InsufficientStock { .. })) => self.report.refused_orders += 1,
            Ok(Err(e)) => self.violation(format!("order refused unexpectedly: {e}")),
            Err(never) => match never {},
        }
    }

    /// A request from store `s` arrives at the hub.
    pub(super) fn at_hub(&mut self, s: usize, req_id: u64, bytes: &[u8]) {
        let req: SyncRequest =
            match codec::decode(bytes, Encoding::Binary, codec::DEFAULT_MAX_MESSAGE_BYTES) {
                Ok(r) => r,
                Err(e) => return self.violation(format!("hub decode: {e}")),
            };
        let who = self.stores[s].mem.who.clone();
        let policy = self.cfg.policy;
        let targets: ReserveTargets = self
            .demand
            .range((s, Gtin::MIN)..=(s, Gtin::MAX))
            .map(|(&(_, gtin), d)| (gtin, policy.wanted(d.level_at(self.now_ms, &policy))))
            .collect();
        match hub_handle(&mut self.hub, &who, &req, &targets, &HubLimits::default()) {
            Ok((resp, outcome)) => {
                self.report.rights_moved += outcome.given.iter().map(|(_, n)| n).sum::<u64>();
                match codec::encode(&resp, Encoding::Binary) {
                    Ok(bytes) => self.send(Msg::Response {
                        store: s,
                        req_id,
                        bytes,
                    }),
                    Err(e) => self.violation(format!("encode response: {e}")),
                }
            }
            Err(HandleError::Refused(r)) => {
                self.violation(format!("hub refused a store's honest request: {r}"))
            }
            Err(HandleError::Storage(never)) => match never {},
        }
    }
}
