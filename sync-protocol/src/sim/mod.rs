//! Deterministic simulation: one hub and N stores selling, receiving and
//! syncing over a faulty network, all driven by one seed.
//!
//! # Design constraints
//! - Deterministic: every choice comes from one ChaCha generator seeded by
//!   [`SimConfig::seed`]; no clock, no threads, no hashing order. The same
//!   seed replays the same run exactly.
//! - Real logic: every store is a [`MemStore`] and records through
//!   [`crate::command::execute`], the command core the agent's committer
//!   runs, so idempotent retries, refund bounds, overrides and EPC rules
//!   are exercised as the till runs them; the hub records online orders
//!   through [`crate::command::record_event`] as the hub server does; the
//!   exchange is [`crate::exchange::hub_handle`] and
//!   [`MemStore::apply_response`] (the agent's `store_apply`), and every
//!   message goes through the binary [`crate::codec`].
//! - Faults: message loss, duplication and reordering; store partitions
//!   that last many steps; store and hub restarts (volatile state and
//!   in-flight messages are lost, durable state is kept, as redb does);
//!   tills that re-post a request whose answer was lost, or post another
//!   request under a recorded id; a till short of rights the hub holds
//!   asks the hub for them over a live link that is up unless the store
//!   is partitioned (a request may be lost), as the agent does; customers who try to return more than
//!   their sale left; a tag that was sold scanned again.
//! - Omnichannel (issue 22): routed orders at the hub (shipped from any
//!   store, or picked up at a named one) over the hub's rights with
//!   [`crate::routing::route`], delivered to the stores in their
//!   allocation pages with each sync's answer and merged with
//!   [`crate::command::merge_allocations`]; stores pick, hand over and
//!   ship through `Command::Fulfil`; HQ cancels (a hub return naming the
//!   order event) unless the hub knows of a hand-over, and a store that
//!   handed over while cut off makes a counted conflict; transfers between
//!   stores (some never received during the run); returns at one store of
//!   a sale made at another, checked by the hub chain-wide while the link
//!   is up, else taken on a manager's approval or declined.
//! - Independent checks: the sim keeps its own model of what each sale
//!   has left to return and of which tags are sold, and checks every
//!   answer of the command core against it; `double_sold` is computed from
//!   the events every replica accepted ([`crate::audit`]), not from the
//!   counters; the counters are then cross-checked against the events, and
//!   `converged` compares every replica's full counter state with the
//!   hub's after the network heals.
//!
//! Map: this file holds the configuration, the report and the step loop;
//! `till.rs` what happens at a store's tills (through the command core),
//! `hub.rs` online orders and the hub's side of a sync, `orders.rs` the
//! hub's routed orders, transfers and return checks (mirroring the hub
//! server's `routed`, `transfers` and `returns` storage modules),
//! `omni.rs` the stores' side of them, `net.rs` the faulty network,
//! restarts and healing, `check.rs` the final verdict.

mod check;
mod hub;
mod net;
mod omni;
mod orders;
mod till;

use std::collections::BTreeMap;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::command::Stamp;
use crate::exchange::{Identity, MemoryReplica};
use crate::gtin::Gtin;
use crate::ids::{Epc, EventId, LocationId, ReplicaId};
use crate::memstore::MemStore;
use crate::message::{AllocationsPage, SyncRequest};
use crate::reserve::{DemandEstimate, ReservePolicy};

use self::omni::{ChainSale, SimTransfer};
use self::orders::HubOrders;
use self::till::{ReturnableSale, SoldTag};

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
    /// The online-reserve policy, in simulated time (a step is 10 ms).
    pub policy: ReservePolicy,
    /// Probability a delivered message is lost.
    pub loss: f64,
    /// Probability a delivered message is also duplicated.
    pub duplication: f64,
    /// Most events a store sends in one request (exercises paging).
    pub max_events_per_sync: usize,
}

impl SimConfig {
    /// Defaults for a seed: 8 items, 10 % loss, 5 % duplication, and a
    /// reserve policy scaled to simulated time: a 5 s offline horizon (the
    /// longest partition) and a 30 s demand half-life.
    pub fn new(seed: u64, stores: usize, steps: usize) -> Self {
        Self {
            seed,
            stores,
            steps,
            items: 8,
            policy: ReservePolicy {
                horizon_ms: 5_000,
                half_life_ms: 30_000,
            },
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
    pub double_sold: u128,
    /// EPCs sold twice.
    pub double_sold_epcs: usize,
    /// Sales refused for lack of rights (after asking the hub, when the
    /// link was up).
    pub refused_sales: u64,
    /// Sales refused while the store's counter had the units on hand
    /// (their rights held by the hub) and its link to the hub was up:
    /// lost sales rights on demand exists to prevent. Must be 0.
    pub refused_while_stocked_link_up: u64,
    /// Sales refused while the units were on hand but the link was down
    /// (a partition, or the request lost): the price of being offline.
    pub refused_while_stocked_link_down: u64,
    /// Requests for the hub's rights made by tills (rights on demand).
    pub rights_requests: u64,
    /// Requests for rights lost on the way (the sale then refused as
    /// offline).
    pub rights_lost: u64,
    /// Units of rights the hub granted on request.
    pub rights_granted: u64,
    /// Online orders refused for lack of hub rights.
    pub refused_orders: u64,
    /// Online orders refused while the store had the units unsold and its
    /// link was up (after asking it to release them): orders the live
    /// link exists to save. Must be 0.
    pub refused_orders_while_stocked_link_up: u64,
    /// Online orders refused while the store had the units unsold but its
    /// link was down (a partition, or the notice or report lost).
    pub refused_orders_while_stocked_link_down: u64,
    /// Online orders that asked a live store to release rights.
    pub releases: u64,
    /// Units of rights stores released for online orders.
    pub released_units: u64,
    /// Release notices or reports lost on the way.
    pub releases_lost: u64,
    /// Sales accepted.
    pub sales: u64,
    /// Online orders accepted.
    pub orders: u64,
    /// Sales refused for lack of rights and then made with a manager's
    /// override (the shortfall is recorded as found units).
    pub overrides: u64,
    /// Units the overrides found beyond the store's rights.
    pub override_units: u64,
    /// Refused sales re-posted with a manager's approval that asked the
    /// hub for the units on the shelf before the approval found any.
    pub overrides_asked: u64,
    /// Returns naming the sale they came from (bounded and priced by it).
    pub returns_against_sales: u64,
    /// Returns refused because they took back more than their sale left
    /// (`exceeds_sale`), each as the sim's own model expected.
    pub refund_bound_refusals: u64,
    /// Refunds without a receipt refused until a manager approved them.
    pub approvals_required: u64,
    /// RFID count sessions run and accepted (`crate::cycle_count`).
    pub rfid_counts: u64,
    /// Distinct tags those sessions counted.
    pub rfid_count_tags: u64,
    /// Requests re-posted under a recorded id with the same content,
    /// answered with the recorded event and changing nothing.
    pub retries: u64,
    /// Requests posted under a recorded id with other content, refused.
    pub retry_mismatches: u64,
    /// Tagged units returned with their EPC (back on the shelf).
    pub epc_returns: u64,
    /// Sales of an EPC that had been sold and returned before.
    pub epc_resales: u64,
    /// Sales of a tag that was sold and not returned, refused
    /// (`already_sold`).
    pub epc_refusals: u64,
    /// Messages sent (requests and responses, duplicates included).
    pub messages: u64,
    /// Messages lost (to faults or partitions).
    pub lost: u64,
    /// Restarts of stores and the hub.
    pub restarts: u64,
    /// Units of rights moved by rebalancing (both directions).
    pub rights_moved: u64,
    /// Online orders naming no store (shipped) or picked up at a named
    /// one, routed by the hub over its rights (`routing::route`).
    pub routed_orders: u64,
    /// Routed orders the chain could not fill.
    pub routed_refused: u64,
    /// Allocations of routed orders (one per store filling a part).
    pub allocations: u64,
    /// Allocations a store picked (`Command::Fulfil`).
    pub allocations_picked: u64,
    /// Allocations a store handed to their customer.
    pub allocations_collected: u64,
    /// Allocations a store shipped.
    pub allocations_shipped: u64,
    /// Allocations HQ cancelled (each a hub `Return` naming its `Order`).
    pub allocations_cancelled: u64,
    /// Cancellations refused because the hub knew of a hand-over.
    pub cancels_refused: u64,
    /// Hand-overs made at a store (cut off) after HQ cancelled: the
    /// hand-over wins, counted (allowed).
    pub conflicts: u64,
    /// Transfers sent between stores (`Command::TransferOut`).
    pub transfers_sent: u64,
    /// Transfers refused for lack of the sender's rights.
    pub transfers_refused: u64,
    /// Transfers received at their destination (`Command::TransferIn`).
    pub transfers_received: u64,
    /// Transfers still in transit at the end (never received in the run).
    pub transfers_in_transit: u64,
    /// Returns at one store of a sale made at another, checked by the hub
    /// chain-wide and taken.
    pub cross_store_returns_checked: u64,
    /// Cross-store returns the hub refused (beyond the sale's chain-wide
    /// bound, or the sale not at the hub yet).
    pub cross_store_returns_refused: u64,
    /// Cross-store returns taken offline with a manager's approval.
    pub cross_store_returns_offline: u64,
    /// Cross-store returns offline that no manager approved (not taken).
    pub cross_store_returns_declined: u64,
    /// Units conserved per item chain-wide: the counters after healing
    /// match the events, and units in transit match the transfers the
    /// sim's model says were not received.
    pub conservation_ok: bool,
    /// Sync rounds needed to quiesce after healing.
    pub heal_rounds: usize,
    /// Every broken invariant, described.
    pub violations: Vec<String>,
}

impl SimReport {
    /// Whether the run upheld every promise.
    pub fn ok(&self) -> bool {
        self.converged
            && self.conservation_ok
            && self.double_sold == 0
            && self.double_sold_epcs == 0
            && self.refused_while_stocked_link_up == 0
            && self.refused_orders_while_stocked_link_up == 0
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
/// Every item's catalog price.
const PRICE: i64 = 199;

#[derive(Debug, Clone)]
enum Msg {
    Request {
        store: usize,
        req_id: u64,
        bytes: Vec<u8>,
        /// The store's allocation cursor (`GET /v1/allocations?after=`).
        cursor: u64,
    },
    Response {
        store: usize,
        req_id: u64,
        bytes: Vec<u8>,
        /// The store's allocation page after its cursor.
        page: Box<AllocationsPage>,
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
    // Durable (survives restarts, as the agent's redb does).
    mem: MemStore,
    // What the shop floor knows (the sim's own model, checked against the
    // command core's answers).
    shelf_tags: Vec<(Gtin, Epc)>,
    /// Tags sold here and not returned (a customer may bring one back).
    sold_tags: Vec<SoldTag>,
    /// Recent untagged sales with units left to return.
    sales: Vec<ReturnableSale>,
    /// Units of each item sold here and not returned.
    sold_units: BTreeMap<Gtin, u64>,
    /// The last command recorded here, for a till's retry.
    last: Option<crate::command::Command>,
    next_tag: u64,
    /// The hub's allocation change version this store merged up to.
    alloc_cursor: u64,
    // Volatile.
    pending: BTreeMap<u64, SyncRequest>,
    partitioned_until: usize,
}

#[derive(Debug)]
struct Sim {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    hub: MemoryReplica,
    /// The hub's record of online demand per (store, item), durable as
    /// the hub's demand table is.
    demand: BTreeMap<(usize, Gtin), DemandEstimate>,
    /// The hub's rights held for the online order waiting on a store's
    /// release: (store, item, units).
    held: Option<(usize, Gtin, u64)>,
    stores: Vec<Store>,
    items: Vec<Gtin>,
    net: Vec<Msg>,
    /// The hub's routed orders, transfers and return checks.
    orders: HubOrders,
    next_order: u64,
    next_transfer: u64,
    /// The sim's model of every transfer sent.
    transfers: BTreeMap<String, SimTransfer>,
    /// The sim's model of sales whose returns may now happen anywhere in
    /// the chain: what each has left to return chain-wide.
    chain_sales: Vec<ChainSale>,
    next_req: u64,
    now_ms: u64,
    /// The step being simulated (a store's link is up unless partitioned).
    step: usize,
    report: SimReport,
}

impl Sim {
    fn new(cfg: &SimConfig) -> Self {
        let items: Vec<Gtin> = (0..cfg.items.max(1) as u64)
            .filter_map(|i| Gtin::from_body(400_638_133_390 + i * 7))
            .collect();
        let stores = (0..cfg.stores)
            .filter_map(|i| {
                let id = format!("store-{i:03}");
                let replica = ReplicaId::new(&id).ok()?;
                let location = LocationId::new(&id).ok()?;
                let mut mem = MemStore::new(Identity { replica, location });
                for &gtin in &items {
                    mem.set_price(gtin, PRICE);
                }
                Some(Store {
                    mem,
                    shelf_tags: Vec::new(),
                    sold_tags: Vec::new(),
                    sales: Vec::new(),
                    sold_units: BTreeMap::new(),
                    last: None,
                    next_tag: 1,
                    alloc_cursor: 0,
                    pending: BTreeMap::new(),
                    partitioned_until: 0,
                })
            })
            .collect();
        Sim {
            cfg: cfg.clone(),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            hub: MemoryReplica::default(),
            demand: BTreeMap::new(),
            held: None,
            stores,
            items,
            net: Vec::new(),
            orders: HubOrders::default(),
            next_order: 0,
            next_transfer: 0,
            transfers: BTreeMap::new(),
            chain_sales: Vec::new(),
            next_req: 1,
            now_ms: BASE_MS,
            step: 0,
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

    /// Now and 10 random bytes: what a new event's id is made of.
    fn stamp(&mut self) -> Stamp {
        let mut random = [0u8; 10];
        self.rng.fill_bytes(&mut random);
        Stamp {
            now_ms: self.now_ms,
            random,
        }
    }

    /// A fresh id, as a till picks one before its first post.
    fn event_id(&mut self) -> EventId {
        let stamp = self.stamp();
        EventId::v7(stamp.now_ms, stamp.random)
    }

    fn step(&mut self, step: usize) {
        self.now_ms += 10;
        self.step = step;
        if self.stores.is_empty() {
            return;
        }
        let s = self.rng.gen_range(0..self.stores.len());
        let roll = self.rng.gen_range(0..1000u32);
        match roll {
            0..=259 => self.sale(s),
            260..=374 => self.receipt(s),
            375..=429 => self.order(s),
            430..=454 => self.routed_order(s),
            455..=474 => self.fulfil(s),
            475..=479 => self.cancel_order(),
            480..=487 => self.transfer_out(s),
            488..=495 => self.transfer_in(s),
            496..=519 => self.give_back(s),
            520..=525 => self.count(s),
            526..=529 => self.rfid_count(s),
            530..=536 => self.retry(s),
            537..=544 => self.cross_store_return(s),
            545..=734 => self.sync(s),
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
            report.overrides > 0 && report.override_units > 0 && report.overrides_asked > 0,
            "{report:?}"
        );
        assert!(
            report.epc_returns > 0 && report.epc_resales > 0 && report.epc_refusals > 0,
            "{report:?}"
        );
        assert!(report.rights_moved > 0, "{report:?}");
        // Tills asked the hub for rights it held, and got some.
        assert!(
            report.rights_requests > 0 && report.rights_granted > 0,
            "{report:?}"
        );
        // Online orders asked live stores for rights, and got some.
        assert!(
            report.releases > 0 && report.released_units > 0,
            "{report:?}"
        );
    }

    /// The stores run the agent's command core: its refusals of a changed
    /// retry and of a return beyond its sale arise in the simulation, each
    /// where the sim's own model expected one, and true retries change
    /// nothing.
    #[test]
    fn retries_and_refund_bounds_arise_as_the_till_runs_them() {
        let report = run(&SimConfig::new(3, 3, 4_000));
        assert!(report.ok(), "{report:?}");
        assert!(report.retries > 0, "{report:?}");
        assert!(report.retry_mismatches > 0, "{report:?}");
        assert!(report.returns_against_sales > 0, "{report:?}");
        assert!(report.refund_bound_refusals > 0, "{report:?}");
        assert!(report.approvals_required > 0, "{report:?}");
    }

    /// Routed orders are allocated, picked, handed over, shipped and
    /// cancelled; transfers are sent, received and some left in transit;
    /// returns of other stores' sales are checked by the hub, refused by
    /// it, or taken offline; and units are conserved throughout.
    #[test]
    fn omnichannel_orders_transfers_and_returns_arise_under_faults() {
        let report = run(&SimConfig::new(5, 4, 6_000));
        assert!(report.ok(), "{report:?}");
        assert!(report.conservation_ok, "{report:?}");
        assert!(
            report.routed_orders > 0
                && report.allocations_picked > 0
                && report.allocations_collected > 0
                && report.allocations_shipped > 0
                && report.allocations_cancelled > 0,
            "{report:?}"
        );
        assert!(
            report.transfers_sent > 0
                && report.transfers_received > 0
                && report.transfers_in_transit > 0,
            "{report:?}"
        );
        assert!(
            report.cross_store_returns_checked > 0
                && report.cross_store_returns_refused > 0
                && report.cross_store_returns_offline > 0,
            "{report:?}"
        );
    }
}
