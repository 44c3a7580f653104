//! The hub's side of the simulation: online orders, recorded through
//! [`record_event`] against the hub's own rights as the hub server records
//! them (short of its reserve while the store's live link is up, the
//! order asks the store to release unsold rights, `rights::release` at
//! the store and `rights::merge_released` at the hub, and runs again; the
//! notice or the report may be lost like any message), and a store's sync handled by [`hub_handle`]. Every online order,
//! accepted or refused, is demand: it raises the hub's estimate for that
//! (store, item), from which the reserve targets of a sync come.

use rand::Rng;

use super::{Msg, Sim, PRICE};
use crate::codec::{self, Encoding};
use crate::command::{counters_at, record_event};
use crate::epcs::EpcLedger;
use crate::event::{Event, EventKind, Line, Staff};
use crate::exchange::{hub_handle, HandleError, Held, HubLimits, ReserveTargets};
use crate::gtin::Gtin;
use crate::ids::ReplicaId;
use crate::ledger::Refusal;
use crate::limits::DateWindow;
use crate::message::SyncRequest;
use crate::rights::{self, RightsReleased};

/// Sync rounds a store runs before giving an order rights the hub cannot
/// explain yet, beyond twice the pages of its backlog: the simulation's
/// requests are small (16 events), the agent's 1,000, and it syncs for
/// most of the order's wait (1.5 s by default), enough for a few
/// thousand events ([`crate::explain::Unsynced::MAX_EVENTS`] at most).
const SYNC_ROUNDS_BEFORE_RELEASE: usize = 8;

/// Most sync rounds before a release (twice the pages of
/// [`crate::explain::Unsynced::MAX_EVENTS`] events).
const MAX_SYNC_ROUNDS: usize = 512;

impl Sim {
    /// An online order for store `s`'s stock, sold from the hub's rights
    /// there.
    pub(super) fn order(&mut self, s: usize) {
        let gtin = self.item();
        let qty = self.rng.gen_range(1..=2);
        let event = Event {
            id: self.event_id(),
            location: self.stores[s].mem.who.location.clone(),
            replica: ReplicaId::hub(),
            at_ms: self.now_ms,
            kind: EventKind::Order { reference: None },
            lines: vec![Line {
                gtin,
                qty,
                unit_price_minor: PRICE,
                epc: None,
            }],
            staff: Staff::default(),
            price_overrides: Vec::new(),
        };
        let policy = self.cfg.policy;
        self.demand
            .entry((s, gtin))
            .or_default()
            .observe(qty, self.now_ms, &policy);
        let mut asked = false;
        let mut answer = self.record_order(&event);
        for _ in 0..3 {
            let Err(Refusal::InsufficientStock {
                requested,
                available,
                on_hand,
                ..
            }) = answer
            else {
                break;
            };
            // Short of the hub's reserve: ask the store over its live
            // link, as the hub server does: once even when the hub's books
            // show nothing more there (a receipt not synced yet is not in
            // them), again while they do.
            if (asked && on_hand <= available) || !self.link_up(s) {
                break;
            }
            if self.rng.gen_bool(self.cfg.loss) {
                // The notice is lost: the order's wait ends, refused.
                self.report.releases_lost += 1;
                break;
            }
            let request_id = self.event_id();
            let who = self.stores[s].mem.who.clone();
            let seen = self.hub_counter(s, gtin).without(&who.replica);
            let wanted = requested - available;
            let mut released = self.stores[s].mem.release(request_id, gtin, wanted, &seen);
            if released.released < wanted && self.stores[s].mem.unexplained_rights(gtin) > 0 {
                // As the agent does: rights the hub cannot explain yet
                // (units received since the last sync) are given after
                // the syncs that carry their events (a lost message is
                // sent again). The hub holds what the order needs there
                // meanwhile.
                self.held = Some((s, gtin, requested));
                let pages = self.stores[s].mem.outbox.len() / self.cfg.max_events_per_sync.max(1);
                for _ in 0..(2 * pages + SYNC_ROUNDS_BEFORE_RELEASE).min(MAX_SYNC_ROUNDS) {
                    if self.stores[s].mem.unexplained_rights(gtin) == 0 {
                        break;
                    }
                    self.sync_at_once(s);
                }
                self.held = None;
                let seen = self.hub_counter(s, gtin).without(&who.replica);
                let more =
                    self.stores[s]
                        .mem
                        .release(request_id, gtin, wanted - released.released, &seen);
                released = RightsReleased {
                    released: released.released + more.released,
                    ..more
                };
            }
            self.report.releases += 1;
            self.report.released_units += released.released;
            if self.rng.gen_bool(self.cfg.loss) {
                // The report is lost: the transfer reaches the hub with
                // the store's next sync.
                self.report.releases_lost += 1;
                break;
            }
            match rights::merge_released(&mut self.hub, &who, &released) {
                Ok(Ok(_)) => {}
                Ok(Err(v)) => {
                    self.violation(format!("the hub refused an honest release: {v}"));
                    break;
                }
                Err(never) => match never {},
            }
            asked = true;
            answer = self.record_order(&event);
            if released.released == 0 {
                break;
            }
        }
        match answer {
            Ok(()) => self.report.orders += 1,
            Err(Refusal::InsufficientStock { requested, .. }) => {
                self.report.refused_orders += 1;
                if self.on_shelf(s, event.lines[0].gtin) >= requested {
                    if asked {
                        self.report.refused_orders_while_stocked_link_up += 1;
                    } else {
                        self.report.refused_orders_while_stocked_link_down += 1;
                    }
                }
            }
            Err(e) => self.violation(format!("order refused unexpectedly: {e}")),
        }
    }

    /// Units of `gtin` on store `s`'s shelf as they really are: the
    /// store's counter and the hub's merged (the hub does not see the
    /// store's sales it has not synced, nor the store the hub's orders).
    fn on_shelf(&self, s: usize, gtin: Gtin) -> u64 {
        let mut c = self.stores[s].mem.counter(gtin);
        c.merge(&self.hub_counter(s, gtin));
        c.value()
    }

    /// Records an online order (or the hub's own return of one) at the
    /// hub, against its own rights.
    pub(super) fn record_order(&mut self, event: &Event) -> Result<(), Refusal> {
        let gtins = event.lines.iter().map(|l| l.gtin);
        let recorded = counters_at(&self.hub, &event.location, gtins)
            .and_then(|counters| record_event(&mut self.hub, event, &counters, &EpcLedger::new()));
        match recorded {
            Ok(r) => r.map(drop),
            Err(never) => match never {},
        }
    }

    /// A request from store `s` arrives at the hub.
    ///
    /// The events the hub stores are then handed to its order, transfer
    /// and return tables ([`super::orders::HubOrders::on_event`], as the
    /// hub server does after storing them), and the response carries the
    /// store's allocation page after `cursor`.
    pub(super) fn at_hub(&mut self, s: usize, req_id: u64, bytes: &[u8], cursor: u64) {
        let req: SyncRequest =
            match codec::decode(bytes, Encoding::Binary, codec::DEFAULT_MAX_MESSAGE_BYTES) {
                Ok(r) => r,
                Err(e) => return self.violation(format!("hub decode: {e}")),
            };
        let who = self.stores[s].mem.who.clone();
        let fresh: Vec<&Event> = req
            .events
            .iter()
            .filter(|e| !self.hub.journal.contains(&e.id))
            .collect();
        let policy = self.cfg.policy;
        let targets: ReserveTargets = self
            .demand
            .range((s, Gtin::MIN)..=(s, Gtin::MAX))
            .map(|(&(_, gtin), d)| (gtin, policy.wanted(d.level_at(self.now_ms, &policy))))
            .collect();
        let held: Held = self
            .held
            .iter()
            .filter(|(at, _, _)| *at == s)
            .map(|&(_, gtin, units)| (gtin, units))
            .collect();
        match hub_handle(
            &mut self.hub,
            &who,
            &req,
            &targets,
            &held,
            &HubLimits::default(),
            &DateWindow::at(self.now_ms),
        ) {
            Ok((resp, outcome)) => {
                self.report.rights_moved += outcome.given.iter().map(|(_, n)| n).sum::<u64>();
                for e in fresh {
                    if self.hub.journal.contains(&e.id) {
                        self.orders.on_event(e);
                    }
                }
                let page = Box::new(self.orders.page(&who.location, cursor));
                match codec::encode(&resp, Encoding::Binary) {
                    Ok(bytes) => self.send(Msg::Response {
                        store: s,
                        req_id,
                        bytes,
                        page,
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
