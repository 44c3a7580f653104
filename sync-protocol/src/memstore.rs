//! An in-memory store: what the agent keeps, as plain values. The command
//! core's [`Ledger`] over a [`MemoryReplica`], plus the outbox, the sync
//! cursors, the demand signal, the returns taken back per sale and the
//! catalog; it builds sync requests and applies the hub's responses with
//! the very functions the agent calls ([`store_request`], [`store_apply`]).
//!
//! The simulation's stores and the hub's test stores are `MemStore`s, so
//! what they record went through [`execute`](crate::command::execute) exactly as at a till.
//! Everything is infallible (`Infallible` storage errors) and pure.

use std::collections::BTreeMap;
use std::convert::Infallible;

use crate::command::{execute_with, Command, Ledger, Outcome, Overrides, Stamp};
use crate::counter::BoundedCounter;
use crate::epcs::{DoubleSale, EpcRecord, EpcSummary};
use crate::event::Event;
use crate::exchange::{
    store_apply, store_request, Identity, MemoryReplica, ReplicaStore, StoreApplied, SyncCursors,
};
use crate::explain::Unsynced;
use crate::fulfilment::OrderAllocation;
use crate::gtin::Gtin;
use crate::ids::{Epc, EventId, LocationId};
use crate::inventory::{Delta, ItemKey};
use crate::journal::Inserted;
use crate::limits;
use crate::lost::{ByReason, Lost};
use crate::message::{CatalogItem, SyncRequest, SyncResponse};
use crate::rights::{apply_grant, release, RightsGrant, RightsReleased};
use crate::transfer::Transfer;

/// One store's whole state in memory (see the module docs).
#[derive(Debug, Clone)]
pub struct MemStore {
    /// The store's replica and location.
    pub who: Identity,
    /// Counters, events and sold EPCs.
    pub replica: MemoryReplica,
    /// The catalog (prices of lines given without one).
    pub catalog: BTreeMap<Gtin, CatalogItem>,
    /// Outbox: sequence number → event id, until the hub acknowledges it.
    pub outbox: BTreeMap<u64, EventId>,
    /// The next outbox sequence number.
    pub next_seq: u64,
    /// Units refused for lack of rights, per item, not yet sent to the hub.
    pub demand: BTreeMap<Gtin, u64>,
    /// Units each sale's returns took back, per item.
    pub returned: BTreeMap<EventId, BTreeMap<Gtin, u64>>,
    /// Sync cursors.
    pub cursors: SyncCursors,
    /// Sales refused for lack of rights, per reason, since the store
    /// began (cumulative: every request carries them).
    pub lost: ByReason<Lost>,
    /// This store's allocations of orders, by order id.
    pub allocations: BTreeMap<String, OrderAllocation>,
    /// Transfers to and from this store, by id.
    pub transfers: BTreeMap<String, Transfer>,
}

impl MemStore {
    /// An empty store.
    pub fn new(who: Identity) -> Self {
        Self {
            who,
            replica: MemoryReplica::default(),
            catalog: BTreeMap::new(),
            outbox: BTreeMap::new(),
            next_seq: 1,
            demand: BTreeMap::new(),
            returned: BTreeMap::new(),
            cursors: SyncCursors::default(),
            lost: ByReason::default(),
            allocations: BTreeMap::new(),
            transfers: BTreeMap::new(),
        }
    }

    /// Runs one command, as the agent's committer does.
    pub fn execute(&mut self, cmd: &Command, stamp: Stamp) -> Outcome {
        self.execute_with(cmd, stamp, Overrides::Apply)
    }

    /// [`Self::execute`], an approved sale beyond rights as `overrides`
    /// say (the agent holds the override while it asks the hub).
    pub fn execute_with(&mut self, cmd: &Command, stamp: Stamp, overrides: Overrides) -> Outcome {
        let who = self.who.clone();
        match execute_with(self, &who, cmd, stamp, overrides) {
            Ok(outcome) => outcome,
            Err(never) => match never {},
        }
    }

    /// Sets an item's catalog price (named after its GTIN).
    pub fn set_price(&mut self, gtin: Gtin, price_minor: i64) {
        let item = CatalogItem {
            gtin,
            name: gtin.to_string(),
            price_minor,
        };
        self.catalog.insert(gtin, item);
    }

    /// The counter of `gtin` here.
    pub fn counter(&self, gtin: Gtin) -> BoundedCounter {
        self.replica
            .inventory
            .counter(&ItemKey::new(self.who.location.clone(), gtin))
    }

    /// Units of `gtin` on hand here.
    pub fn on_hand(&self, gtin: Gtin) -> u64 {
        self.counter(gtin).value()
    }

    /// Units of `gtin` this store may sell.
    pub fn rights(&self, gtin: Gtin) -> u64 {
        self.counter(gtin).rights(&self.who.replica)
    }

    /// The recorded event with `id`.
    pub fn recorded(&self, id: &EventId) -> Option<&Event> {
        self.replica.journal.get(id)
    }

    /// What the outbox's events after sequence number `acked` add
    /// (unknown if one is missing from the journal, as the agent takes
    /// it).
    fn unsynced_after(&self, acked: u64) -> Unsynced {
        let mut out = Unsynced::none();
        for (_, id) in self.outbox.range(acked.saturating_add(1)..) {
            let Some(event) = self.replica.journal.get(id) else {
                return Unsynced::unknown();
            };
            if out.add(event).is_break() {
                break;
            }
        }
        out
    }

    /// Own counter entries the hub has not acknowledged, at most
    /// [`limits::MAX_DELTA_ENTRIES`] changed counters (a page, oldest
    /// change first), and the inventory version they reach.
    fn unacked_delta(&self) -> (Delta, u64) {
        let (delta, version) = self.replica.inventory.delta_since_limited(
            &self.who.location,
            self.cursors.acked_delta_version,
            limits::MAX_DELTA_ENTRIES,
        );
        (delta.owned_by(&self.who.replica), version)
    }

    /// The next request: own entries changed since the hub's ack, up to
    /// `max_events` unacknowledged events, and the refused demand.
    pub fn sync_request(&self, max_events: usize) -> SyncRequest {
        let mut events = Vec::new();
        let mut events_upto = self.cursors.acked_events_upto;
        let mut pending = self
            .outbox
            .range(self.cursors.acked_events_upto + 1..)
            .peekable();
        while events.len() < max_events.max(1) {
            let Some((&seq, id)) = pending.next() else {
                break;
            };
            if let Some(event) = self.replica.journal.get(id) {
                events.push(event.clone());
                events_upto = seq;
            }
        }
        let more_events = pending.peek().is_some();
        let (delta, delta_version) = self.unacked_delta();
        let req = store_request(
            &self.who,
            &self.cursors,
            delta,
            delta_version,
            events,
            events_upto,
            &self.demand,
        )
        .with_lost(&self.lost);
        if more_events {
            req.holding_delta_back(self.cursors.acked_delta_version)
        } else {
            req
        }
    }

    /// Applies the hub's answer to `req` (`None` when the request is
    /// forgotten, e.g. after a restart): merge, cursors, reserve transfers,
    /// acknowledged outbox entries dropped, the request's demand
    /// subtracted, the catalog updated. Safe with a stale, duplicated or
    /// reordered response.
    pub fn apply_response(
        &mut self,
        req: Option<&SyncRequest>,
        resp: &SyncResponse,
    ) -> StoreApplied {
        let who = self.who.clone();
        let mut cursors = self.cursors;
        let demand = self.demand.clone();
        let own = req
            .iter()
            .flat_map(|r| r.delta.entries.iter().map(|e| e.key.gtin));
        let unsynced = self.unsynced_after(cursors.acked_events_upto.max(resp.acked_events_upto));
        let applied = match store_apply(self, &who, &mut cursors, resp, own, &demand, &unsynced) {
            Ok(a) => a,
            Err(never) => match never {},
        };
        self.cursors = cursors;
        let acked = self.cursors.acked_events_upto;
        self.outbox.retain(|&seq, _| seq > acked);
        for d in req.iter().flat_map(|r| &r.demand) {
            if let Some(units) = self.demand.get_mut(&d.gtin) {
                *units = units.saturating_sub(d.units);
            }
        }
        self.demand.retain(|_, units| *units > 0);
        for item in &resp.catalog {
            self.catalog.insert(item.gtin, item.clone());
        }
        applied
    }

    /// Merges the hub's grant of rights (a duplicate changes nothing);
    /// whether it changed the counter.
    pub fn apply_grant(&mut self, grant: &RightsGrant) -> bool {
        let who = self.who.clone();
        match apply_grant(self, &who, grant) {
            Ok(changed) => changed,
            Err(never) => match never {},
        }
    }

    /// Gives the hub up to `units` unsold rights to `gtin`, as asked for an
    /// online order under `request_id` (a live link's `rights_wanted`,
    /// carrying the hub's entries `seen`): the report to send back.
    pub fn release(
        &mut self,
        request_id: EventId,
        gtin: Gtin,
        units: u64,
        seen: &BoundedCounter,
    ) -> RightsReleased {
        let who = self.who.clone();
        let unsynced = self.unsynced_after(self.cursors.acked_events_upto);
        let done = match release(self, &who, gtin, units, seen, &unsynced) {
            Ok(r) => r,
            Err(never) => match never {},
        };
        RightsReleased {
            request_id,
            gtin,
            released: done.given,
            own: done.own,
        }
    }

    /// Rights to `gtin` this store holds that the hub cannot explain yet:
    /// added by events it has not acknowledged ([`Unsynced`]).
    pub fn unexplained_rights(&self, gtin: Gtin) -> u64 {
        self.unsynced_after(self.cursors.acked_events_upto)
            .unexplained_rights(&self.counter(gtin), &self.who.replica, gtin)
    }

    /// Whether the store holds anything the hub has not acknowledged.
    pub fn has_pending(&self) -> bool {
        !self.outbox.is_empty()
            || !self
                .replica
                .inventory
                .delta_since(&self.who.location, self.cursors.acked_delta_version)
                .owned_by(&self.who.replica)
                .is_empty()
    }
}

impl ReplicaStore for MemStore {
    type Error = Infallible;

    fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, Infallible> {
        self.replica.counter(key)
    }

    fn put_counter(&mut self, key: &ItemKey, counter: BoundedCounter) -> Result<(), Infallible> {
        self.replica.put_counter(key, counter)
    }

    fn delta_since(
        &self,
        location: &LocationId,
        cursor: u64,
        limit: usize,
    ) -> Result<(Delta, u64), Infallible> {
        self.replica.delta_since(location, cursor, limit)
    }

    fn insert_event(&mut self, event: &Event) -> Result<Inserted, Infallible> {
        self.replica.insert_event(event)
    }

    fn record_epc_sale(
        &mut self,
        epc: &Epc,
        record: EpcRecord,
    ) -> Result<Option<DoubleSale>, Infallible> {
        self.replica.record_epc_sale(epc, record)
    }

    fn record_epc_return(&mut self, epc: &Epc, record: EpcRecord) -> Result<(), Infallible> {
        self.replica.record_epc_return(epc, record)
    }
}

impl Ledger for MemStore {
    fn event(&self, id: &EventId) -> Result<Option<Event>, Infallible> {
        Ok(self.replica.journal.get(id).cloned())
    }

    fn epc_summary(&self, epc: &Epc) -> Result<Option<EpcSummary>, Infallible> {
        Ok(self.replica.epcs.get(epc).map(EpcSummary::of))
    }

    fn catalog_price(&self, gtin: Gtin) -> Result<Option<i64>, Infallible> {
        Ok(self.catalog.get(&gtin).map(|c| c.price_minor))
    }

    fn append_outbox(&mut self, id: EventId) -> Result<u64, Infallible> {
        let seq = self.next_seq;
        self.outbox.insert(seq, id);
        self.next_seq += 1;
        Ok(seq)
    }

    fn add_demand(&mut self, gtin: Gtin, units: u64) -> Result<(), Infallible> {
        let d = self.demand.entry(gtin).or_default();
        *d = d.saturating_add(units);
        Ok(())
    }

    fn returned_from(&self, sale: &EventId) -> Result<BTreeMap<Gtin, u64>, Infallible> {
        Ok(self.returned.get(sale).cloned().unwrap_or_default())
    }

    fn add_returned(
        &mut self,
        sale: &EventId,
        units: &BTreeMap<Gtin, u64>,
    ) -> Result<(), Infallible> {
        let returned = self.returned.entry(*sale).or_default();
        for (gtin, u) in units {
            let r = returned.entry(*gtin).or_default();
            *r = r.saturating_add(*u);
        }
        Ok(())
    }

    fn allocation(&self, order_id: &str) -> Result<Option<OrderAllocation>, Infallible> {
        Ok(self.allocations.get(order_id).cloned())
    }

    fn put_allocation(&mut self, allocation: &OrderAllocation) -> Result<(), Infallible> {
        self.allocations
            .insert(allocation.order_id.clone(), allocation.clone());
        Ok(())
    }

    fn transfer(&self, transfer_id: &str) -> Result<Option<Transfer>, Infallible> {
        Ok(self.transfers.get(transfer_id).cloned())
    }

    fn put_transfer(&mut self, transfer: &Transfer) -> Result<(), Infallible> {
        self.transfers
            .insert(transfer.transfer_id.clone(), transfer.clone());
        Ok(())
    }
}
