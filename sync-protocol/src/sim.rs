//! Deterministic simulation: one hub and N stores selling, receiving and
//! syncing over a faulty network, all driven by one seed.
//!
//! # Design constraints
//! - Deterministic: every choice comes from one ChaCha generator seeded by
//!   [`SimConfig::seed`]; no clock, no threads, no hashing order. The same
//!   seed replays the same run exactly.
//! - Real logic: stores and hub run [`crate::ledger::apply_event`],
//!   [`crate::exchange::hub_handle`] and [`crate::exchange::store_apply`],
//!   the code the agent and hub run, and every message goes through the
//!   binary [`crate::codec`].
//! - Faults: message loss, duplication and reordering; store partitions
//!   that last many steps; store and hub restarts (volatile state and
//!   in-flight messages are lost, durable state is kept, as redb does).
//! - Independent checks: `double_sold` is computed from the events every
//!   replica accepted ([`crate::audit`]), not from the counters; the
//!   counters are then cross-checked against the events, and `converged`
//!   compares every replica's full counter state with the hub's after the
//!   network heals.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::codec::{self, Encoding};
use crate::event::{Event, EventKind, Line, Override, Tender};
use crate::exchange::{
    hub_handle, store_apply, HandleError, HubLimits, Identity, MemoryReplica, SyncCursors,
};
use crate::gtin::Gtin;
use crate::ids::{Epc, EventId, LocationId, ReplicaId};
use crate::inventory::ItemKey;
use crate::ledger::{apply_event, plan_count, plan_override, Refusal};
use crate::message::{Demand, SyncRequest, SyncResponse, PROTOCOL_VERSION};
use crate::policy::ReservePolicy;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed every choice derives from.
    pub seed: u64,
    /// Number of stores (besides the hub).
    pub stores: usize,
    /// Number of steps before the network heals.
    pub steps: usize,
    /// Number of distinct items (few means much contention).
    pub items: usize,
    /// The rebalancing policy.
    pub policy: ReservePolicy,
    /// Probability a delivered message is lost.
    pub loss: f64,
    /// Probability a delivered message is also duplicated.
    pub duplication: f64,
    /// Most events a store sends in one request (exercises paging).
    pub max_events_per_sync: usize,
}

impl SimConfig {
    /// Defaults for a seed: 8 items, 10 % loss, 5 % duplication.
    pub fn new(seed: u64, stores: usize, steps: usize) -> Self {
        Self {
            seed,
            stores,
            steps,
            items: 8,
            policy: ReservePolicy::default(),
            loss: 0.10,
            duplication: 0.05,
            max_events_per_sync: 16,
        }
    }
}

/// What a run found. `ok()` is the verdict.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimReport {
    /// The seed (replay with it).
    pub seed: u64,
    /// Stores simulated.
    pub stores: usize,
    /// Steps simulated.
    pub steps: usize,
    /// Every store's counters equal the hub's after healing, and the hub
    /// holds every store's events.
    pub converged: bool,
    /// Units sold or ordered beyond units received, from the events.
    pub double_sold: u64,
    /// EPCs sold twice.
    pub double_sold_epcs: usize,
    /// Sales refused for lack of rights.
    pub refused_sales: u64,
    /// Online orders refused for lack of hub rights.
    pub refused_orders: u64,
    /// Sales accepted.
    pub sales: u64,
    /// Online orders accepted.
    pub orders: u64,
    /// Sales refused for lack of rights and then made with a manager's
    /// override (the shortfall is recorded as found units).
    pub overrides: u64,
    /// Units the overrides found beyond the store's rights.
    pub override_units: u64,
    /// Tagged units returned with their EPC (back on the shelf).
    pub epc_returns: u64,
    /// Sales of an EPC that had been sold and returned before.
    pub epc_resales: u64,
    /// Messages sent (requests and responses, duplicates included).
    pub messages: u64,
    /// Messages lost (to faults or partitions).
    pub lost: u64,
    /// Restarts of stores and the hub.
    pub restarts: u64,
    /// Units of rights moved by rebalancing (both directions).
    pub rights_moved: u64,
    /// Sync rounds needed to quiesce after healing.
    pub heal_rounds: usize,
    /// Every broken invariant, described.
    pub violations: Vec<String>,
}

impl SimReport {
    /// Whether the run upheld every promise.
    pub fn ok(&self) -> bool {
        self.converged
            && self.double_sold == 0
            && self.double_sold_epcs == 0
            && self.violations.is_empty()
    }
}

/// Runs one simulation.
pub fn run(cfg: &SimConfig) -> SimReport {
    let mut sim = Sim::new(cfg);
    for step in 0..cfg.steps {
        sim.step(step);
    }
    sim.heal();
    sim.check();
    sim.report
}

const BASE_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const MAX_HEAL_ROUNDS: usize = 50;

#[derive(Debug, Clone)]
enum Msg {
    Request {
        store: usize,
        req_id: u64,
        bytes: Vec<u8>,
    },
    Response {
        store: usize,
        req_id: u64,
        bytes: Vec<u8>,
    },
}

impl Msg {
    fn store(&self) -> usize {
        match self {
            Msg::Request { store, .. } | Msg::Response { store, .. } => *store,
        }
    }
}

#[derive(Debug)]
struct Store {
    who: Identity,
    // Durable (survives restarts, as the agent's redb does).
    state: MemoryReplica,
    cursors: SyncCursors,
    outbox: BTreeMap<u64, Event>,
    next_seq: u64,
    demand: BTreeMap<Gtin, u64>,
    shelf_tags: Vec<(Gtin, Epc)>,
    /// Tags sold here and not returned (a customer may bring one back).
    sold_tags: Vec<(Gtin, Epc)>,
    sold_units: BTreeMap<Gtin, u64>,
    next_tag: u64,
    // Volatile.
    pending: BTreeMap<u64, SyncRequest>,
    partitioned_until: usize,
}

#[derive(Debug)]
struct Sim {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    hub: MemoryReplica,
    stores: Vec<Store>,
    items: Vec<Gtin>,
    net: Vec<Msg>,
    next_req: u64,
    now_ms: u64,
    report: SimReport,
}

impl Sim {
    fn new(cfg: &SimConfig) -> Self {
        let items = (0..cfg.items.max(1) as u64)
            .filter_map(|i| Gtin::from_body(400_638_133_390 + i * 7))
            .collect();
        let stores = (0..cfg.stores)
            .filter_map(|i| {
                let id = format!("store-{i:03}");
                let replica = ReplicaId::new(&id).ok()?;
                let location = LocationId::new(&id).ok()?;
                Some(Store {
                    who: Identity { replica, location },
                    state: MemoryReplica::default(),
                    cursors: SyncCursors::default(),
                    outbox: BTreeMap::new(),
                    next_seq: 1,
                    demand: BTreeMap::new(),
                    shelf_tags: Vec::new(),
                    sold_tags: Vec::new(),
                    sold_units: BTreeMap::new(),
                    next_tag: 1,
                    pending: BTreeMap::new(),
                    partitioned_until: 0,
                })
            })
            .collect();
        Sim {
            cfg: cfg.clone(),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            hub: MemoryReplica::default(),
            stores,
            items,
            net: Vec::new(),
            next_req: 1,
            now_ms: BASE_MS,
            report: SimReport {
                seed: cfg.seed,
                stores: cfg.stores,
                steps: cfg.steps,
                ..Default::default()
            },
        }
    }

    fn violation(&mut self, what: String) {
        if self.report.violations.len() < 20 {
            self.report.violations.push(what);
        }
    }

    fn event_id(&mut self) -> EventId {
        let mut random = [0u8; 10];
        self.rng.fill_bytes(&mut random);
        EventId::v7(self.now_ms, random)
    }

    fn step(&mut self, step: usize) {
        self.now_ms += 10;
        if self.stores.is_empty() {
            return;
        }
        let s = self.rng.gen_range(0..self.stores.len());
        let roll = self.rng.gen_range(0..1000u32);
        match roll {
            0..=299 => self.sale(s),
            300..=419 => self.receipt(s),
            420..=499 => self.order(s),
            500..=519 => self.give_back(s),
            520..=534 => self.count(s),
            535..=734 => self.sync(s),
            735..=979 => self.deliver_one(step),
            980..=989 => {
                let len = self.rng.gen_range(50..500);
                self.stores[s].partitioned_until = step + len;
            }
            990..=997 => self.restart_store(s),
            _ => self.restart_hub(),
        }
        if step % 500 == 0 {
            self.check_escrow("during run");
        }
    }

    fn item(&mut self) -> Gtin {
        self.items[self.rng.gen_range(0..self.items.len())]
    }

    /// Records an event at a store: apply, then store everything durably.
    fn record_at_store(&mut self, s: usize, event: Event) -> Result<(), Refusal> {
        let st = &self.stores[s];
        let counters = event
            .lines
            .iter()
            .map(|l| {
                let key = ItemKey::new(st.who.location.clone(), l.gtin);
                (l.gtin, st.state.inventory.counter(&key))
            })
            .collect();
        let applied = apply_event(&event, &counters, &st.state.epcs)?;
        let st = &mut self.stores[s];
        for (gtin, c) in applied.counters {
            st.state
                .inventory
                .put(&ItemKey::new(st.who.location.clone(), gtin), c);
        }
        let record = crate::epcs::EpcRecord {
            event: event.id,
            replica: st.who.replica.clone(),
        };
        for epc in &applied.sold {
            st.state.epcs.record_sale(epc, record.clone());
        }
        for epc in &applied.returned {
            st.state.epcs.record_return(epc, record.clone());
        }
        st.state.journal.insert(event.clone());
        st.outbox.insert(st.next_seq, event);
        st.next_seq += 1;
        Ok(())
    }

    fn new_event(&mut self, s: usize, kind: EventKind, lines: Vec<Line>) -> Event {
        let who = self.stores[s].who.clone();
        Event {
            id: self.event_id(),
            location: who.location,
            replica: who.replica,
            at_ms: self.now_ms,
            kind,
            lines,
        }
    }

    fn sale(&mut self, s: usize) {
        let tagged = !self.stores[s].shelf_tags.is_empty() && self.rng.gen_bool(0.3);
        let (line, tag_index) = if tagged {
            let i = self.rng.gen_range(0..self.stores[s].shelf_tags.len());
            let (gtin, epc) = self.stores[s].shelf_tags[i].clone();
            (line(gtin, 1, Some(epc)), Some(i))
        } else {
            let gtin = self.item();
            let qty = self.rng.gen_range(1..=3);
            (line(gtin, qty, None), None)
        };
        let (gtin, qty) = (line.gtin, line.qty);
        let resale = line.epc.as_ref().is_some_and(|epc| {
            self.stores[s]
                .state
                .epcs
                .get(epc)
                .is_some_and(|h| !h.returns.is_empty())
        });
        let kind = sale_kind(qty, None);
        let event = self.new_event(s, kind, vec![line.clone()]);
        let recorded = match self.record_at_store(s, event) {
            Ok(()) => true,
            Err(Refusal::InsufficientStock {
                requested,
                available,
                ..
            }) => {
                self.report.refused_sales += 1;
                *self.stores[s].demand.entry(gtin).or_default() += requested - available;
                // Sometimes the unit is in the cashier's hand all the same
                // (a miscount, a unit reserved online but taken from the
                // shelf) and a manager approves the sale.
                self.rng.gen_bool(0.25) && self.override_sale(s, line)
            }
            Err(other) => {
                self.violation(format!("sale refused unexpectedly: {other}"));
                false
            }
        };
        if recorded {
            self.report.sales += 1;
            self.report.epc_resales += u64::from(resale);
            let st = &mut self.stores[s];
            *st.sold_units.entry(gtin).or_default() += qty;
            if let Some(i) = tag_index {
                let tag = st.shelf_tags.swap_remove(i);
                st.sold_tags.push(tag);
            }
        }
    }

    /// A manager-approved sale of `line` beyond the store's rights; the
    /// units short are recorded as found. Returns whether it was recorded.
    fn override_sale(&mut self, s: usize, line: Line) -> bool {
        let st = &self.stores[s];
        let key = ItemKey::new(st.who.location.clone(), line.gtin);
        let counters = BTreeMap::from([(line.gtin, st.state.inventory.counter(&key))]);
        let shortfall = plan_override(std::slice::from_ref(&line), &counters, &st.who.replica);
        let units: u64 = shortfall.iter().map(|x| x.units).sum();
        let ov = Override {
            approver: "manager-1".into(),
            reason: "unit on the shelf".into(),
            shortfall,
        };
        let event = self.new_event(s, sale_kind(line.qty, Some(ov)), vec![line]);
        match self.record_at_store(s, event) {
            Ok(()) => {
                self.report.overrides += 1;
                self.report.override_units += units;
                true
            }
            Err(e) => {
                self.violation(format!("override sale refused: {e}"));
                false
            }
        }
    }

    fn receipt(&mut self, s: usize) {
        let gtin = self.item();
        let line = if self.rng.gen_bool(0.2) {
            let st = &mut self.stores[s];
            let mut bytes = [0u8; 12];
            bytes[0] = 0x30;
            bytes[1] = s as u8;
            bytes[4..].copy_from_slice(&st.next_tag.to_be_bytes());
            st.next_tag += 1;
            let Ok(epc) = Epc::from_bytes(&bytes) else {
                return;
            };
            st.shelf_tags.push((gtin, epc.clone()));
            line(gtin, 1, Some(epc))
        } else {
            let qty = self.rng.gen_range(1..=10);
            line(gtin, qty, None)
        };
        let event = self.new_event(s, EventKind::Receipt, vec![line]);
        if let Err(e) = self.record_at_store(s, event) {
            self.violation(format!("receipt refused: {e}"));
        }
    }

    /// A customer brings a unit back: sometimes a tagged unit sold here,
    /// returned with its EPC (on the shelf again, so it can be sold
    /// again), otherwise a unit of an item sold here.
    fn give_back(&mut self, s: usize) {
        let tag = (!self.stores[s].sold_tags.is_empty() && self.rng.gen_bool(0.3))
            .then(|| self.rng.gen_range(0..self.stores[s].sold_tags.len()));
        let (gtin, epc) = match tag {
            Some(i) => {
                let (gtin, epc) = self.stores[s].sold_tags[i].clone();
                (gtin, Some(epc))
            }
            None => {
                let sold: Vec<Gtin> = self.stores[s]
                    .sold_units
                    .iter()
                    .filter(|(_, &n)| n > 0)
                    .map(|(g, _)| *g)
                    .collect();
                let Some(&gtin) = sold.choose(&mut self.rng) else {
                    return;
                };
                (gtin, None)
            }
        };
        let event = self.new_event(
            s,
            EventKind::Return {
                original_sale: None,
            },
            vec![line(gtin, 1, epc)],
        );
        if let Err(e) = self.record_at_store(s, event) {
            return self.violation(format!("return refused: {e}"));
        }
        let st = &mut self.stores[s];
        if let Some(n) = st.sold_units.get_mut(&gtin) {
            *n = n.saturating_sub(1);
        }
        if let Some(i) = tag {
            self.report.epc_returns += 1;
            let tag = st.sold_tags.swap_remove(i);
            st.shelf_tags.push(tag);
        }
    }

    fn count(&mut self, s: usize) {
        let gtin = self.item();
        let key = ItemKey::new(self.stores[s].who.location.clone(), gtin);
        let counter = self.stores[s].state.inventory.counter(&key);
        let on_hand = counter.value();
        let counted = (on_hand + self.rng.gen_range(0..3)).saturating_sub(self.rng.gen_range(0..3));
        let plan = plan_count(&counter, &self.stores[s].who.replica, counted);
        if plan.units == 0 && plan.unresolved == 0 {
            return;
        }
        let kind = EventKind::CountAdjustment {
            counted,
            direction: plan.direction,
            unresolved: plan.unresolved,
        };
        let event = self.new_event(s, kind, vec![line(gtin, plan.units, None)]);
        if let Err(e) = self.record_at_store(s, event) {
            self.violation(format!("count refused: {e}"));
        }
    }

    fn order(&mut self, s: usize) {
        let gtin = self.item();
        let qty = self.rng.gen_range(1..=2);
        let location = self.stores[s].who.location.clone();
        let event = Event {
            id: self.event_id(),
            location: location.clone(),
            replica: ReplicaId::hub(),
            at_ms: self.now_ms,
            kind: EventKind::Order { reference: None },
            lines: vec![line(gtin, qty, None)],
        };
        let key = ItemKey::new(location, gtin);
        let counters = BTreeMap::from([(gtin, self.hub.inventory.counter(&key))]);
        match apply_event(&event, &counters, &self.hub.epcs) {
            Ok(applied) => {
                for (g, c) in applied.counters {
                    self.hub
                        .inventory
                        .put(&ItemKey::new(key.location.clone(), g), c);
                }
                self.hub.journal.insert(event);
                self.report.orders += 1;
            }
            Err(Refusal::InsufficientStock { .. }) => self.report.refused_orders += 1,
            Err(e) => self.violation(format!("order refused unexpectedly: {e}")),
        }
    }

    fn build_request(&self, s: usize) -> SyncRequest {
        let st = &self.stores[s];
        let delta = st
            .state
            .inventory
            .delta_since(&st.who.location, st.cursors.acked_delta_version)
            .owned_by(&st.who.replica);
        let events: Vec<Event> = st
            .outbox
            .range(st.cursors.acked_events_upto + 1..)
            .take(self.cfg.max_events_per_sync)
            .map(|(_, e)| e.clone())
            .collect();
        let events_upto = st
            .outbox
            .range(st.cursors.acked_events_upto + 1..)
            .take(self.cfg.max_events_per_sync)
            .map(|(seq, _)| *seq)
            .last()
            .unwrap_or(st.cursors.acked_events_upto);
        SyncRequest {
            version: PROTOCOL_VERSION,
            replica: st.who.replica.clone(),
            location: st.who.location.clone(),
            delta,
            delta_version: st.state.inventory.version(),
            events,
            events_upto,
            hub_cursor: st.cursors.hub_cursor,
            catalog_cursor: st.cursors.catalog_cursor,
            demand: st
                .demand
                .iter()
                .filter(|(_, &u)| u > 0)
                .map(|(&gtin, &units)| Demand { gtin, units })
                .collect(),
        }
    }

    fn sync(&mut self, s: usize) {
        let req = self.build_request(s);
        match codec::encode(&req, Encoding::Binary) {
            Ok(bytes) => {
                let req_id = self.next_req;
                self.next_req += 1;
                self.stores[s].pending.insert(req_id, req);
                self.send(Msg::Request {
                    store: s,
                    req_id,
                    bytes,
                });
            }
            Err(e) => self.violation(format!("encode request: {e}")),
        }
    }

    fn send(&mut self, msg: Msg) {
        self.report.messages += 1;
        self.net.push(msg);
    }

    fn deliver_one(&mut self, step: usize) {
        if self.net.is_empty() {
            return;
        }
        let i = self.rng.gen_range(0..self.net.len());
        let msg = self.net.swap_remove(i);
        if self.stores[msg.store()].partitioned_until > step || self.rng.gen_bool(self.cfg.loss) {
            self.report.lost += 1;
            return;
        }
        if self.rng.gen_bool(self.cfg.duplication) {
            self.send(msg.clone());
        }
        self.deliver(msg);
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Request {
                store,
                req_id,
                bytes,
            } => self.at_hub(store, req_id, &bytes),
            Msg::Response {
                store,
                req_id,
                bytes,
            } => self.at_store(store, req_id, &bytes),
        }
    }

    fn at_hub(&mut self, s: usize, req_id: u64, bytes: &[u8]) {
        let req: SyncRequest =
            match codec::decode(bytes, Encoding::Binary, codec::DEFAULT_MAX_MESSAGE_BYTES) {
                Ok(r) => r,
                Err(e) => return self.violation(format!("hub decode: {e}")),
            };
        let who = self.stores[s].who.clone();
        let policy = self.cfg.policy;
        match hub_handle(&mut self.hub, &who, &req, &policy, &HubLimits::default()) {
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

    fn at_store(&mut self, s: usize, req_id: u64, bytes: &[u8]) {
        let resp: SyncResponse =
            match codec::decode(bytes, Encoding::Binary, codec::DEFAULT_MAX_MESSAGE_BYTES) {
                Ok(r) => r,
                Err(e) => return self.violation(format!("store decode: {e}")),
            };
        let st = &mut self.stores[s];
        let req = st.pending.remove(&req_id);
        let own: BTreeSet<Gtin> = req
            .iter()
            .flat_map(|r| r.delta.entries.iter().map(|e| e.key.gtin))
            .collect();
        let who = st.who.clone();
        let applied =
            match store_apply(&mut st.state, &who, &mut st.cursors, &resp, own, &st.demand) {
                Ok(a) => a,
                Err(never) => match never {},
            };
        let acked = st.cursors.acked_events_upto;
        st.outbox.retain(|&seq, _| seq > acked);
        if let Some(req) = req {
            for d in &req.demand {
                if let Some(u) = st.demand.get_mut(&d.gtin) {
                    *u = u.saturating_sub(d.units);
                }
            }
        }
        self.report.rights_moved += applied.given.iter().map(|(_, n)| n).sum::<u64>();
        if !applied.rejected.is_empty() {
            self.violation(format!("hub rejected events: {:?}", applied.rejected));
        }
    }

    fn restart_store(&mut self, s: usize) {
        self.report.restarts += 1;
        self.stores[s].pending.clear();
        self.net.retain(|m| m.store() != s);
    }

    fn restart_hub(&mut self) {
        self.report.restarts += 1;
        self.net.clear();
    }

    /// Heals the network and syncs every store until nothing changes.
    fn heal(&mut self) {
        for st in &mut self.stores {
            st.partitioned_until = 0;
        }
        self.net.clear();
        let mut last = self.fingerprint();
        let mut quiet_rounds = 0;
        for round in 1..=MAX_HEAL_ROUNDS {
            self.report.heal_rounds = round;
            for s in 0..self.stores.len() {
                // Like the agent: keep syncing while the outbox has a backlog.
                let pages = self.stores[s].outbox.len() / self.cfg.max_events_per_sync.max(1) + 1;
                for _ in 0..pages {
                    self.sync(s);
                    while let Some(msg) = self.net.pop() {
                        self.deliver(msg);
                    }
                }
            }
            let now = self.fingerprint();
            let drained = self.stores.iter().all(|s| s.outbox.is_empty());
            if now == last && drained {
                quiet_rounds += 1;
                if quiet_rounds == 2 {
                    return;
                }
            } else {
                quiet_rounds = 0;
            }
            last = now;
        }
        self.violation(format!("no quiescence after {MAX_HEAL_ROUNDS} heal rounds"));
    }

    fn fingerprint(&self) -> Vec<u64> {
        let mut v = vec![self.hub.inventory.version()];
        v.extend(self.stores.iter().map(|s| s.state.inventory.version()));
        v
    }

    fn check_escrow(&mut self, when: &str) {
        let mut found = Vec::new();
        let replicas: Vec<&MemoryReplica> = std::iter::once(&self.hub)
            .chain(self.stores.iter().map(|s| &s.state))
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

    fn check(&mut self) {
        self.check_escrow("after healing");
        // Convergence: every store's counters equal the hub's, and the hub
        // holds every store's events.
        let mut converged = true;
        for st in &self.stores {
            if !st
                .state
                .inventory
                .same_state_at(&self.hub.inventory, &st.who.location)
            {
                converged = false;
            }
            if st
                .state
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
            all.merge(&st.state.journal);
        }
        self.report.double_sold = crate::audit::double_sold(all.iter());
        let mut epcs = self.hub.epcs.clone();
        for st in &self.stores {
            epcs.merge(&st.state.epcs);
        }
        self.report.double_sold_epcs = epcs.double_sold().len();

        // Counters and events must tell the same story.
        let flows = crate::audit::flows(all.iter());
        let mut mismatches = Vec::new();
        for (key, flow) in &flows {
            let on_hand = self.hub.inventory.counter(key).value();
            if on_hand != flow.on_hand() {
                mismatches.push(format!(
                    "{key:?}: counters say {on_hand} on hand, events say {}",
                    flow.on_hand()
                ));
            }
        }
        for m in mismatches {
            self.violation(m);
        }
    }
}

/// A cash sale of `qty` units at the simulation's one price.
fn sale_kind(qty: u64, override_: Option<Override>) -> EventKind {
    EventKind::Sale {
        tenders: vec![Tender {
            method: "cash".into(),
            amount_minor: 199 * i64::try_from(qty).unwrap_or(0),
            reference: None,
        }],
        override_,
    }
}

fn line(gtin: Gtin, qty: u64, epc: Option<Epc>) -> Line {
    Line {
        gtin,
        qty,
        unit_price_minor: 199,
        epc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_report() {
        let cfg = SimConfig::new(7, 3, 2_000);
        let a = serde_json::to_string(&run(&cfg)).unwrap();
        let b = serde_json::to_string(&run(&cfg)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_short_run_upholds_every_promise() {
        let report = run(&SimConfig::new(1, 4, 3_000));
        assert!(report.ok(), "{report:?}");
        assert!(
            report.sales > 0 && report.refused_sales > 0 && report.orders > 0,
            "{report:?}"
        );
        assert!(
            report.overrides > 0 && report.override_units > 0,
            "{report:?}"
        );
        assert!(
            report.epc_returns > 0 && report.epc_resales > 0,
            "{report:?}"
        );
        assert!(report.rights_moved > 0, "{report:?}");
    }
}
