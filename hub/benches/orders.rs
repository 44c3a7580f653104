//! Orders at the hub (issue 22): how long the real hub takes to route an
//! order over a chain of 1,000 stores and a 100,000-item catalog, and what
//! mixed order traffic it sustains. One run:
//!
//! 0. **A chain.** A hub database (the real [`RedbHub`]: redb, an fsync
//!    per commit) with `N` stores (default 1,000) and `I` catalog items
//!    (default 100,000). Each store holds 1,000–2,000 of the items,
//!    10–30 units each, and got them the way a store does: it receives
//!    them with the real model (`MemStore`, receipts of up to 1,000 lines)
//!    and syncs through the hub's storage (`HubWrite::sync`: `hub_handle`
//!    in one durable transaction, what `POST /v1/sync` runs). The hub's
//!    reserve there is made the honest way too: online demand for each
//!    held item (an order of 90 units the hub refused before the stock
//!    arrived) gives a reserve target of 9 units, which the store gives the
//!    hub on its next sync, as the rebalance rule says. So the hub holds 9
//!    units at ~15 stores per item. The catalog (prices for the orders'
//!    events) is added after the stores synced, so that no store pages
//!    through it.
//! 1. **Routing in the writer's transaction.** Orders of 5 lines (1–3
//!    units each) through [`HubStorage::write_batch`] and its
//!    `HubWrite` methods, one order per transaction (the writer's batch
//!    when nothing else waits), the shapes interleaved round by round:
//!    a ship order some store can fill alone, a ship order drawn at random
//!    (split over several stores), a pickup order naming a store (the
//!    same path, with one candidate), a store-named order without
//!    fulfilment (no routing: the baseline), and a cancellation of an
//!    earlier routed order. For each, the time of the call inside the
//!    transaction and of the commit (fsync) after it. Then, for the
//!    attribution, in a transaction the bench aborts: the candidates
//!    read alone (the same reads as `routed::candidates`: the hub's rights
//!    at every synced store for the order's 5 items, copied here), the
//!    pure decision (`tally_sync::routing::route`) on them, and the same
//!    reads restricted to the stores that hold the items (what an index
//!    by item would read).
//! 2. **End to end, one order at a time**, over HTTPS (TLS 1.3, HTTP/2)
//!    against the real `tally-hub` binary in its own process, serving the
//!    same database (`--route-preference most-spare`): the same shapes,
//!    client side, request sent → answer read.
//! 3. **Mixed traffic.** `C` concurrent admin clients (default 32, each
//!    with its own connection), closed loop: routed ship orders (half
//!    one-store, half split), pickup orders, store-named orders and
//!    cancellations of routed orders; against a baseline of store-named
//!    orders alone, measured just before and just after with the same
//!    clients: orders/s, latency percentiles, the hub's CPU per order and
//!    requests per group commit.
//!
//! Orders naming a store take even-numbered items and routed ones
//! odd-numbered items, so the concurrent clients always know an order
//! the hub can fill: named orders claim units at their store before they
//! are sent, routed ones claim units of the chain's total per item.
//!
//! It asserts correctness, never timings: every order accepted; in part 1
//! each routed order's allocations equal what `route` decides from the
//! bench's own model of the hub's rights (so one store whenever one can
//! fill it); everywhere, allocations that sum to the order's lines
//! exactly, at stores holding the items; cancellations answered
//! `cancelled`; and at the end, read from the database the hub left, the
//! hub's rights and the units on hand at every (store, held item) equal
//! the model's (what the stores gave the hub, minus what was allocated,
//! plus what was cancelled).
//!
//! `cargo bench -p tally-hub --bench orders` (env: `TALLY_BENCH_STORES`,
//! default 1000; `TALLY_BENCH_ITEMS`, 100000; `TALLY_BENCH_HELD_MIN` /
//! `TALLY_BENCH_HELD_MAX`, 1000 / 2000 items per store;
//! `TALLY_BENCH_ORDERS`, 2000 rounds of part 1; `TALLY_BENCH_SEQUENTIAL`,
//! 300 rounds of part 2; `TALLY_BENCH_CLIENTS`, 32;
//! `TALLY_BENCH_PER_CLIENT`, 100 orders per client and phase of part 3;
//! `TALLY_BENCH_SEED`, 1). Progress on stderr, one JSON line on stdout.
//! The clients share the machine's cores with the hub.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::child::{cpu_secs, ChildHub};
use support::{env_u64, Admin, SimStore};
use tally_hub::pki::{self, DataDir};
use tally_hub::storage::redb::SyncSettings;
use tally_hub::storage::routed::{
    CancelResult, RoutedOrder, RoutedOrderRequest, RoutedResult, RoutingSettings,
};
use tally_hub::storage::RedbHub;
use tally_hub::storage::{HubStorage, HubWrite, OrderRequest, OrderResult, StorageError};
use tally_hub::Config;
use tally_store::redb::{ReadableTable, TableDefinition};
use tally_sync::clock::Clock;
use tally_sync::command::{counters_at, Command, ReceiptLine};
use tally_sync::fulfilment::{Fulfilment, Status};
use tally_sync::message::CatalogItem;
use tally_sync::routing::{route, AllocatedLine, Allocation, Candidate, Preference};
use tally_sync::{EventId, Gtin, LocationId, ReplicaId};

/// Units of online demand recorded per held item: a reserve target of
/// `ceil(90 × ln 2 / 7)` = 9 units under the default policy.
const DEMAND_UNITS: u64 = 90;
/// The hub's reserve at every (store, held item) after the stores synced.
const RESERVE: u64 = 9;
/// Lines per order.
const LINES: usize = 5;
/// Units per line: 1 to this.
const MAX_QTY: u64 = 3;
/// The hub's own `hub_stores` table (`storage/redb/mod.rs`): every store that
/// synced, the routing's candidates.
const HUB_STORES: TableDefinition<&str, &[u8]> = TableDefinition::new("hub_stores");

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let k = Knobs {
        stores: env_u64("TALLY_BENCH_STORES", 1000) as usize,
        items: env_u64("TALLY_BENCH_ITEMS", 100_000) as u32,
        held_min: env_u64("TALLY_BENCH_HELD_MIN", 1000) as usize,
        held_max: env_u64("TALLY_BENCH_HELD_MAX", 2000) as usize,
        rounds: env_u64("TALLY_BENCH_ORDERS", 2000) as usize,
        sequential: env_u64("TALLY_BENCH_SEQUENTIAL", 300) as usize,
        clients: env_u64("TALLY_BENCH_CLIENTS", 32) as usize,
        per_client: env_u64("TALLY_BENCH_PER_CLIENT", 100) as usize,
        seed: env_u64("TALLY_BENCH_SEED", 1),
    };
    assert!(k.held_min >= 2 * LINES && k.held_min <= k.held_max);
    assert!(k.held_max <= k.items as usize);
    eprintln!(
        "orders bench: {} stores, {} items, {}–{} held per store; {} rounds in storage, {} over HTTP, {} clients × {} per phase; seed {}",
        k.stores, k.items, k.held_min, k.held_max, k.rounds, k.sequential, k.clients, k.per_client, k.seed
    );
    let machine = machine();
    let mut rng = ChaCha8Rng::seed_from_u64(k.seed);

    // 0. The chain, in the hub's database.
    let tmp = tempfile::tempdir().unwrap();
    let data = DataDir::new(tmp.path().join("hub"));
    pki::init(&data, &[], &tally_store::SystemClock).unwrap();
    let hub = open(&data);
    let t = Instant::now();
    let mut model = populate(&hub, &k, &mut rng);
    let populated = t.elapsed();
    let db_bytes = std::fs::metadata(data.database()).unwrap().len();
    eprintln!(
        "chain ready in {populated:.1?}: {} (store, item) pairs, the hub's reserve at each checked; database {} MiB",
        model.pairs(),
        db_bytes >> 20
    );
    let disk_before = disk_sync(tmp.path());

    // 1. Routing in the writer's transaction.
    let in_storage = in_storage(&hub, &mut model, k.rounds, &mut rng);
    drop(hub);

    // 2 and 3. The real hub over HTTPS.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let model = Arc::new(Mutex::new(model));
    let child = ChildHub::serve(tmp, data, &["--route-preference", "most-spare"]);
    let (sequential, traffic) = rt.block_on(async {
        let sequential = sequential(&child, &model, k.sequential, k.seed).await;
        let traffic = traffic_phases(&child, &model, &k).await;
        (sequential, traffic)
    });
    let disk_after = disk_sync(child.tmp.path());
    let (status, _tmp, data) = child.stop_keeping_data();
    assert!(status.success(), "the hub stopped cleanly: {status:?}");

    // The hub's rights and stock everywhere, against the model.
    let model = Arc::try_unwrap(model).ok().unwrap().into_inner().unwrap();
    let checked = check_final(&open(&data), &model);
    eprintln!("final state checked: {checked} (store, item) pairs as the model says");

    println!(
        "{}",
        json!({
            "machine": machine,
            "stores": k.stores,
            "items": k.items,
            "held_per_store": [k.held_min, k.held_max],
            "pairs": model.pairs(),
            "reserve_per_pair": RESERVE,
            "populate_s": round3(populated.as_secs_f64()),
            "database_mib": db_bytes >> 20,
            "disk_before": disk_before,
            "disk_after": disk_after,
            "in_storage": in_storage,
            "sequential_http": sequential,
            "traffic": traffic,
            "final_pairs_checked": checked,
        })
    );
}

/// The run's knobs.
struct Knobs {
    stores: usize,
    items: u32,
    held_min: usize,
    held_max: usize,
    rounds: usize,
    sequential: usize,
    clients: usize,
    per_client: usize,
    seed: u64,
}

/// The hub's storage over `data`'s database, as `tally-hub run` opens it
/// (default settings) but routing by most spare.
fn open(data: &DataDir) -> RedbHub {
    let config = Config::new(data.root());
    let settings = SyncSettings {
        policy: config.policy,
        limits: tally_sync::exchange::HubLimits {
            max_delta_entries: config.max_delta_entries,
        },
        catalog_page: config.catalog_page,
    };
    RedbHub::open(&data.database(), settings)
        .unwrap()
        .with_routing(RoutingSettings {
            preference: Preference::MostSpare,
            priority: Vec::new(),
        })
}

fn now_ms() -> u64 {
    tally_store::SystemClock.now_ms()
}

fn gtin(item: u32) -> Gtin {
    support::gtin(u64::from(item))
}

fn item_of(g: Gtin) -> u32 {
    u32::try_from(g.as_u64() / 10 - 1_000_000).unwrap()
}

fn store_id(s: u32) -> LocationId {
    LocationId::new(&format!("store-{s:04}")).unwrap()
}

fn store_of(l: &LocationId) -> u32 {
    l.as_str().strip_prefix("store-").unwrap().parse().unwrap()
}

/// Whether orders naming a store (even items) or routed orders (odd
/// items) take `item`.
fn routed_item(item: u32) -> bool {
    item % 2 == 1
}

/// One (store, item) the store holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// Units on hand when the chain was made.
    on_hand: u64,
    /// The hub's rights then.
    rights0: u64,
    /// The hub's rights now, as far as the bench knows (orders whose
    /// answer came back).
    rights: u64,
}

/// The chain as the bench knows it: what each store holds and what the
/// hub's rights are there.
struct Model {
    /// Per store: item → what it holds.
    held: Vec<HashMap<u32, Held>>,
    /// Per store: its even (named orders) and odd (routed orders) items.
    named_items: Vec<Vec<u32>>,
    routed_items: Vec<Vec<u32>>,
    /// Per item: the stores holding it.
    holders: Vec<Vec<u32>>,
    /// Per routed item: the hub's rights over the chain not yet claimed by
    /// a routed order.
    free: Vec<u64>,
}

impl Model {
    fn pairs(&self) -> usize {
        self.held.iter().map(HashMap::len).sum()
    }

    fn stores(&self) -> u32 {
        self.held.len() as u32
    }

    /// A store and `LINES` of its items of the routed or named partition,
    /// with 1–3 units each that it can give (for routed items, also free
    /// over the chain); claims them. Named items: taken off the store's
    /// rights now; routed items: off the chain's free units (the store's
    /// rights move when the hub says where it allocated).
    fn at_one_store(&mut self, rng: &mut ChaCha8Rng, routed: bool) -> (u32, Vec<(u32, u64)>) {
        loop {
            let s = rng.gen_range(0..self.stores());
            let list = if routed {
                &self.routed_items[s as usize]
            } else {
                &self.named_items[s as usize]
            };
            let mut picked: Vec<(u32, u64)> = Vec::with_capacity(LINES);
            for _ in 0..LINES * 20 {
                if picked.len() == LINES {
                    break;
                }
                let item = *list.choose(rng).unwrap();
                let qty = rng.gen_range(1..=MAX_QTY);
                let rights = self.held[s as usize][&item].rights;
                let free = !routed || self.free[item as usize] >= qty;
                if rights >= qty && free && !picked.iter().any(|(i, _)| *i == item) {
                    picked.push((item, qty));
                }
            }
            if picked.len() < LINES {
                continue;
            }
            picked.sort_unstable();
            for &(item, qty) in &picked {
                if routed {
                    self.free[item as usize] -= qty;
                } else {
                    self.held[s as usize].get_mut(&item).unwrap().rights -= qty;
                }
            }
            return (s, picked);
        }
    }

    /// `LINES` routed items drawn from the whole catalog (those some store
    /// holds), 1–3 units each, free over the chain; claims them.
    fn anywhere(&mut self, rng: &mut ChaCha8Rng) -> Vec<(u32, u64)> {
        let items = self.holders.len() as u32;
        let mut picked: Vec<(u32, u64)> = Vec::with_capacity(LINES);
        while picked.len() < LINES {
            let item = rng.gen_range(0..items / 2) * 2 + 1;
            let qty = rng.gen_range(1..=MAX_QTY);
            if self.free[item as usize] >= qty && !picked.iter().any(|(i, _)| *i == item) {
                picked.push((item, qty));
            }
        }
        picked.sort_unstable();
        for &(item, qty) in &picked {
            self.free[item as usize] -= qty;
        }
        picked
    }

    /// What `route` decides for `lines` from the model's rights: over
    /// every store, or only `at`.
    fn route(&self, lines: &[(u32, u64)], at: Option<u32>) -> Vec<Allocation> {
        let wanted: Vec<AllocatedLine> = lines
            .iter()
            .map(|&(i, qty)| AllocatedLine { gtin: gtin(i), qty })
            .collect();
        let candidates: Vec<Candidate> = (0..self.stores())
            .filter(|s| at.is_none_or(|only| only == *s))
            .map(|s| Candidate {
                store: store_id(s),
                priority: u32::MAX,
                available: lines
                    .iter()
                    .filter_map(|&(i, _)| {
                        let r = self.held[s as usize].get(&i).map_or(0, |h| h.rights);
                        (r > 0).then_some((gtin(i), r))
                    })
                    .collect(),
            })
            .collect();
        route(&wanted, &candidates, Preference::MostSpare).unwrap()
    }

    /// The hub allocated `order`'s lines as `allocations`: checks they
    /// add up to the lines exactly, at stores the model says hold the
    /// units, and takes them off those stores' rights (routed orders; a
    /// pickup's were claimed when it was made, so `claimed`).
    fn allocated(
        &mut self,
        lines: &[(u32, u64)],
        allocations: &[(u32, Vec<(u32, u64)>)],
        claimed: bool,
    ) {
        let mut sums: BTreeMap<u32, u64> = BTreeMap::new();
        for (s, alloc) in allocations {
            assert!(!alloc.is_empty(), "an allocation with no lines");
            for &(item, qty) in alloc {
                *sums.entry(item).or_default() += qty;
                let held = self.held[*s as usize]
                    .get_mut(&item)
                    .unwrap_or_else(|| panic!("store {s} was allocated item {item} it never held"));
                if !claimed {
                    assert!(
                        held.rights >= qty,
                        "store {s}: {qty} of item {item} allocated, the hub held {}",
                        held.rights
                    );
                    held.rights -= qty;
                }
            }
        }
        let want: BTreeMap<u32, u64> = lines.iter().copied().collect();
        assert_eq!(sums, want, "allocations do not add up to the order");
    }

    /// A cancellation gave `allocations` back to the hub's reserves.
    fn returned(&mut self, allocations: &[(u32, Vec<(u32, u64)>)]) {
        for (s, alloc) in allocations {
            for &(item, qty) in alloc {
                self.held[*s as usize].get_mut(&item).unwrap().rights += qty;
                if routed_item(item) {
                    self.free[item as usize] += qty;
                }
            }
        }
    }
}

/// A stored routed order's allocations as (store, lines).
fn allocations_of(o: &RoutedOrder) -> Vec<(u32, Vec<(u32, u64)>)> {
    o.allocations
        .iter()
        .map(|a| {
            (
                store_of(&a.store),
                a.lines.iter().map(|l| (item_of(l.gtin), l.qty)).collect(),
            )
        })
        .collect()
}

fn order_lines(lines: &[(u32, u64)]) -> Vec<(Gtin, u64)> {
    lines.iter().map(|&(i, q)| (gtin(i), q)).collect()
}

/// Part 0: the stores receive their stock and sync through the hub's
/// storage, the hub's reserve follows the online demand recorded for
/// every held item; then the catalog. Returns the model, checked
/// against the database.
fn populate(hub: &RedbHub, k: &Knobs, rng: &mut ChaCha8Rng) -> Model {
    let mut held = Vec::with_capacity(k.stores);
    let mut syncs = 0;
    for s in 0..k.stores as u32 {
        let n = rng.gen_range(k.held_min..=k.held_max);
        let mut items: Vec<u32> = rand::seq::index::sample(rng, k.items as usize, n)
            .into_iter()
            .map(|i| i as u32)
            .collect();
        items.sort_unstable();
        let stock: Vec<(u32, u64)> = items.iter().map(|&i| (i, rng.gen_range(10..=30))).collect();
        let location = store_id(s);
        // Online demand for every item it will hold: an order the hub
        // refuses (it holds nothing there yet), counted as demand.
        hub.write_batch(&mut |txn| {
            for (c, chunk) in stock.chunks(1000).enumerate() {
                let order = OrderRequest {
                    order_id: format!("demand-{s}-{c}"),
                    store: location.clone(),
                    lines: chunk
                        .iter()
                        .map(|&(i, _)| (gtin(i), DEMAND_UNITS))
                        .collect(),
                    event_id: EventId::v7(now_ms(), rand::random()),
                    now_ms: now_ms(),
                    record_demand: true,
                };
                let refused = txn.order(&order)?;
                assert!(
                    matches!(refused, OrderResult::InsufficientStock { .. }),
                    "{refused:?}"
                );
            }
            Ok(())
        })
        .unwrap();
        // The stock arrives and the store syncs until the hub and it
        // agree: receipts, then the reserve it gives the hub.
        let mut store = SimStore::new(location.as_str(), k.seed ^ (u64::from(s) << 24));
        store.set_clock(now_ms() - 60_000);
        for chunk in stock.chunks(1000) {
            store
                .run(Command::Receipt {
                    id: None,
                    lines: chunk
                        .iter()
                        .map(|&(i, q)| ReceiptLine::units(gtin(i), q))
                        .collect(),
                    staff: Default::default(),
                })
                .unwrap();
        }
        for round in 1.. {
            let (_, resp) = store.sync_in_storage(hub, now_ms());
            syncs += 1;
            if !resp.more && !store.has_pending() {
                break;
            }
            assert!(round < 10, "store {s} did not settle");
        }
        for &(i, q) in &stock {
            assert_eq!(store.rights(gtin(i)), q - RESERVE, "store {s}, item {i}");
        }
        held.push(stock);
        if (s + 1) % 100 == 0 {
            eprintln!("  {} stores synced ({syncs} syncs)", s + 1);
        }
    }
    // The catalog, 10,000 items a write.
    let catalog: Vec<CatalogItem> = (0..k.items)
        .map(|i| CatalogItem::new(gtin(i), &format!("item {i}"), 100 + i64::from(i % 900)).unwrap())
        .collect();
    hub.write_batch(&mut |txn| {
        for chunk in catalog.chunks(10_000) {
            txn.catalog(chunk)?;
        }
        Ok(())
    })
    .unwrap();

    // The model, each pair checked against what the hub holds.
    let hub_replica = ReplicaId::hub();
    let read = hub.db().begin_read().unwrap();
    let mut model = Model {
        held: Vec::with_capacity(k.stores),
        named_items: Vec::with_capacity(k.stores),
        routed_items: Vec::with_capacity(k.stores),
        holders: vec![Vec::new(); k.items as usize],
        free: vec![0; k.items as usize],
    };
    for (s, stock) in held.into_iter().enumerate() {
        let counters: HashMap<u32, (u64, u64)> = read
            .counters_at(&store_id(s as u32))
            .unwrap()
            .into_iter()
            .map(|(g, c)| (item_of(g), (c.value(), c.rights(&hub_replica))))
            .collect();
        assert_eq!(counters.len(), stock.len(), "store {s}: counters");
        let mut map = HashMap::with_capacity(stock.len());
        for (item, on_hand) in stock {
            assert_eq!(
                counters[&item],
                (on_hand, RESERVE),
                "store {s}, item {item}"
            );
            map.insert(
                item,
                Held {
                    on_hand,
                    rights0: RESERVE,
                    rights: RESERVE,
                },
            );
            model.holders[item as usize].push(s as u32);
            model.free[item as usize] += RESERVE;
        }
        let mut items: Vec<u32> = map.keys().copied().collect();
        items.sort_unstable();
        let (routed, named): (Vec<u32>, Vec<u32>) =
            items.into_iter().partition(|&i| routed_item(i));
        assert!(routed.len() >= LINES && named.len() >= LINES);
        model.named_items.push(named);
        model.routed_items.push(routed);
        model.held.push(map);
    }
    model
}

/// Durations of one kind of operation.
#[derive(Default)]
struct Times(Vec<Duration>);

impl Times {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Count, mean and percentiles in ms.
    fn summary(&mut self) -> Value {
        let lat = &mut self.0;
        if lat.is_empty() {
            return json!({"n": 0});
        }
        lat.sort();
        let at = |p: f64| {
            let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
            ms(lat[i])
        };
        let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
        json!({"n": lat.len(), "mean_ms": ms(mean), "p50_ms": at(0.50), "p90_ms": at(0.90),
               "p99_ms": at(0.99), "max_ms": at(1.0)})
    }

    fn p(&mut self, q: f64) -> f64 {
        self.summary()[format!("p{}_ms", (q * 100.0).round())]
            .as_f64()
            .unwrap()
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ratio(a: f64, b: f64) -> f64 {
    (a / b * 100.0).round() / 100.0
}

/// Runs `write` alone in one write transaction and commits it: its
/// result, the time of the call inside the transaction, and the time of
/// the rest (begin and the durable commit).
fn timed<T>(
    hub: &RedbHub,
    write: impl Fn(&mut dyn HubWrite) -> Result<T, StorageError>,
) -> (T, Duration, Duration) {
    let mut out = None;
    let mut inside = Duration::ZERO;
    let started = Instant::now();
    hub.write_batch(&mut |txn| {
        let t = Instant::now();
        out = Some(write(txn)?);
        inside = t.elapsed();
        Ok(())
    })
    .unwrap();
    let rest = started.elapsed() - inside;
    (out.unwrap(), inside, rest)
}

/// A routed order for `lines` (at `at`, if any) with a fresh seed.
fn routed_request(
    id: String,
    fulfilment: Fulfilment,
    at: Option<u32>,
    lines: &[(u32, u64)],
    rng: &mut ChaCha8Rng,
) -> RoutedOrderRequest {
    RoutedOrderRequest {
        order_id: id,
        fulfilment,
        store: at.map(store_id),
        lines: order_lines(lines),
        seed: rng.gen(),
        now_ms: now_ms(),
    }
}

/// Per shape: time inside the transaction, time of the commit, and
/// stores per order.
#[derive(Default)]
struct Shape {
    inside: Times,
    commit: Times,
    stores: usize,
}

impl Shape {
    fn add(&mut self, inside: Duration, commit: Duration, stores: usize) {
        self.inside.push(inside);
        self.commit.push(commit);
        self.stores += stores;
    }

    fn summary(&mut self) -> Value {
        let n = self.inside.0.len().max(1);
        json!({
            "in_transaction": self.inside.summary(),
            "commit": self.commit.summary(),
            "stores_per_order": (self.stores as f64 / n as f64 * 100.0).round() / 100.0,
        })
    }
}

/// Part 1. See the module docs.
fn in_storage(hub: &RedbHub, model: &mut Model, rounds: usize, rng: &mut ChaCha8Rng) -> Value {
    let t = Instant::now();
    let mut one = Shape::default();
    let mut split = Shape::default();
    let mut pickup = Shape::default();
    let mut plain = Shape::default();
    let mut cancel = Shape::default();
    let (mut read_all, mut decide, mut read_holders) =
        (Times::default(), Times::default(), Times::default());
    let (mut counters_read, mut candidates_with_stock, mut holder_reads) = (0usize, 0usize, 0usize);
    let mut previous: Vec<RoutedOrder> = Vec::new();
    for r in 0..rounds {
        // A cancellation of one of the last round's two ship orders.
        if let Some(victim) = std::mem::take(&mut previous).into_iter().nth(r % 2) {
            let id = victim.order_id.clone();
            let seed: [u8; 10] = rng.gen();
            let (result, inside, commit) = timed(hub, |txn| txn.cancel_order(&id, seed, now_ms()));
            let CancelResult::Cancelled(order) = result else {
                panic!("cancel {id}: {result:?}");
            };
            assert_eq!(order.status, Status::Cancelled);
            assert!(order
                .allocations
                .iter()
                .all(|a| a.status == Status::Cancelled));
            assert_eq!(allocations_of(&order), allocations_of(&victim));
            model.returned(&allocations_of(&victim));
            cancel.add(inside, commit, victim.allocations.len());
        }
        // A ship order one store can fill.
        let (_, lines) = model.at_one_store(rng, true);
        let order = route_in_storage(hub, model, &mut one, format!("one-{r}"), None, &lines, rng);
        assert_eq!(order.allocations.len(), 1, "{order:?}");
        previous.push(order);
        // A ship order of items drawn anywhere.
        let lines = model.anywhere(rng);
        let order = route_in_storage(
            hub,
            model,
            &mut split,
            format!("split-{r}"),
            None,
            &lines,
            rng,
        );
        previous.push(order);
        // A pickup order at one store.
        let (s, lines) = model.at_one_store(rng, false);
        let order = route_in_storage(
            hub,
            model,
            &mut pickup,
            format!("pickup-{r}"),
            Some(s),
            &lines,
            rng,
        );
        assert_eq!(allocations_of(&order), vec![(s, lines.clone())]);
        // A store-named order, no routing.
        let (s, lines) = model.at_one_store(rng, false);
        let request = OrderRequest {
            order_id: format!("plain-{r}"),
            store: store_id(s),
            lines: order_lines(&lines),
            event_id: EventId::v7(now_ms(), rng.gen()),
            now_ms: now_ms(),
            record_demand: true,
        };
        let (result, inside, commit) = timed(hub, |txn| txn.order(&request));
        let OrderResult::Accepted(receipt) = result else {
            panic!("plain-{r}: {result:?}");
        };
        let got: Vec<(u32, u64)> = receipt
            .lines
            .iter()
            .map(|l| (item_of(l.gtin), l.qty))
            .collect();
        assert_eq!((store_of(&receipt.store), got), (s, lines));
        plain.add(inside, commit, 1);
        // Attribution: the candidates read alone, the decision, and the
        // reads an index by item would make, for a split-shaped order
        // that is not placed.
        let lines: Vec<(u32, u64)> = {
            let claimed = model.anywhere(rng);
            for &(i, q) in &claimed {
                model.free[i as usize] += q;
            }
            claimed
        };
        let a = attribution(hub, model, &lines);
        read_all.push(a.read);
        decide.push(a.decide);
        read_holders.push(a.read_holders);
        counters_read += a.counters;
        candidates_with_stock += a.with_stock;
        holder_reads += a.holder_reads;
        if (r + 1) % 500 == 0 {
            eprintln!("  {} rounds in storage ({:.1?})", r + 1, t.elapsed());
        }
    }
    let n = rounds.max(1) as f64;
    let (one_p50, split_p50, pickup_p50, plain_p50) = (
        one.inside.p(0.5),
        split.inside.p(0.5),
        pickup.inside.p(0.5),
        plain.inside.p(0.5),
    );
    let (one_p99, split_p99, pickup_p99, plain_p99) = (
        one.inside.p(0.99),
        split.inside.p(0.99),
        pickup.inside.p(0.99),
        plain.inside.p(0.99),
    );
    eprintln!(
        "in storage: route_order p50/p99 one store {one_p50}/{one_p99} ms, split {split_p50}/{split_p99} ms, pickup {pickup_p50}/{pickup_p99} ms; store-named order {plain_p50}/{plain_p99} ms; candidates read p50 {} ms",
        read_all.p(0.5)
    );
    json!({
        "rounds": rounds,
        "seconds": round3(t.elapsed().as_secs_f64()),
        "ship_one_store": one.summary(),
        "ship_split": split.summary(),
        "pickup": pickup.summary(),
        "store_named": plain.summary(),
        "cancel": cancel.summary(),
        "ratio_to_store_named": {
            "ship_one_store": {"p50": ratio(one_p50, plain_p50), "p99": ratio(one_p99, plain_p99)},
            "ship_split": {"p50": ratio(split_p50, plain_p50), "p99": ratio(split_p99, plain_p99)},
            "pickup": {"p50": ratio(pickup_p50, plain_p50), "p99": ratio(pickup_p99, plain_p99)},
        },
        "attribution": {
            "candidates_read": read_all.summary(),
            "counters_read_per_order": (counters_read as f64 / n).round(),
            "stores_with_rights_per_order": (candidates_with_stock as f64 / n * 10.0).round() / 10.0,
            "route_decision": decide.summary(),
            "holders_only_read": read_holders.summary(),
            "holder_counters_per_order": (holder_reads as f64 / n * 10.0).round() / 10.0,
        },
    })
}

/// Routes `lines` (ship, or pickup at `at`) through the hub's storage,
/// one transaction; checks the allocations against the model's `route`
/// and applies them.
fn route_in_storage(
    hub: &RedbHub,
    model: &mut Model,
    shape: &mut Shape,
    id: String,
    at: Option<u32>,
    lines: &[(u32, u64)],
    rng: &mut ChaCha8Rng,
) -> RoutedOrder {
    let fulfilment = if at.is_some() {
        Fulfilment::Pickup
    } else {
        Fulfilment::Ship
    };
    let request = routed_request(id, fulfilment, at, lines, rng);
    // A pickup's units were taken off the store's rights in the model when
    // it was made: give them back to ask `route` what the hub sees.
    let expected = if let Some(s) = at {
        for &(i, q) in lines {
            model.held[s as usize].get_mut(&i).unwrap().rights += q;
        }
        let e = model.route(lines, at);
        for &(i, q) in lines {
            model.held[s as usize].get_mut(&i).unwrap().rights -= q;
        }
        e
    } else {
        model.route(lines, None)
    };
    let (result, inside, commit) = timed(hub, |txn| txn.route_order(&request));
    let RoutedResult::Accepted(order) = result else {
        panic!("{}: {result:?}", request.order_id);
    };
    let got: Vec<(LocationId, Vec<AllocatedLine>)> = order
        .allocations
        .iter()
        .map(|a| (a.store.clone(), a.lines.clone()))
        .collect();
    let want: Vec<(LocationId, Vec<AllocatedLine>)> =
        expected.into_iter().map(|a| (a.store, a.lines)).collect();
    assert_eq!(got, want, "{}: the hub's allocations", request.order_id);
    model.allocated(lines, &allocations_of(&order), at.is_some());
    shape.add(inside, commit, order.allocations.len());
    order
}

/// What reading an order's candidates costs.
struct Attribution {
    read: Duration,
    decide: Duration,
    read_holders: Duration,
    counters: usize,
    with_stock: usize,
    holder_reads: usize,
}

/// In a write transaction the bench then aborts: the candidates of a ship
/// order for `lines` read as `routed::candidates` reads them (every store
/// in `hub_stores`, the counters of the order's items there), the
/// decision on them (checked against the model's), and the counters of
/// only the stores that hold the items.
fn attribution(hub: &RedbHub, model: &Model, lines: &[(u32, u64)]) -> Attribution {
    let txn = hub.db().begin_write().unwrap();
    let hub_replica = ReplicaId::hub();
    let gtins: Vec<Gtin> = lines.iter().map(|&(i, _)| gtin(i)).collect();
    let t = Instant::now();
    let stores: Vec<String> = {
        let table = txn.raw().open_table(HUB_STORES).unwrap();
        table
            .iter()
            .unwrap()
            .map(|row| row.unwrap().0.value().to_string())
            .collect()
    };
    let replica = txn.replica().unwrap();
    let mut candidates = Vec::with_capacity(stores.len());
    for id in &stores {
        let store = LocationId::new(id).unwrap();
        let counters = counters_at(&replica, &store, gtins.iter().copied()).unwrap();
        let available: BTreeMap<Gtin, u64> = counters
            .into_iter()
            .map(|(g, c)| (g, c.rights(&hub_replica)))
            .filter(|(_, n)| *n > 0)
            .collect();
        candidates.push(Candidate {
            store,
            priority: u32::MAX,
            available,
        });
    }
    let read = t.elapsed();
    let wanted: Vec<AllocatedLine> = lines
        .iter()
        .map(|&(i, qty)| AllocatedLine { gtin: gtin(i), qty })
        .collect();
    let t = Instant::now();
    let decided = route(&wanted, &candidates, Preference::MostSpare).unwrap();
    let decide = t.elapsed();
    assert_eq!(decided, model.route(lines, None));
    let with_stock = candidates
        .iter()
        .filter(|c| !c.available.is_empty())
        .count();

    // The same counters, only where the items are held.
    let mut holders: Vec<(u32, Gtin)> = lines
        .iter()
        .flat_map(|&(i, _)| model.holders[i as usize].iter().map(move |&s| (s, gtin(i))))
        .collect();
    holders.sort_unstable();
    let t = Instant::now();
    let mut rights = 0u64;
    for (s, g) in &holders {
        let c = counters_at(&replica, &store_id(*s), [*g]).unwrap();
        rights += c[g].rights(&hub_replica);
    }
    let read_holders = t.elapsed();
    let total: u64 = candidates.iter().flat_map(|c| c.available.values()).sum();
    assert_eq!(rights, total);
    drop(replica);
    txn.abort().unwrap();
    Attribution {
        read,
        decide,
        read_holders,
        counters: stores.len() * lines.len(),
        with_stock,
        holder_reads: holders.len(),
    }
}

/// The kinds of operation over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    ShipOneStore,
    ShipSplit,
    Pickup,
    StoreNamed,
    Cancel,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ShipOneStore => "ship_one_store",
            Kind::ShipSplit => "ship_split",
            Kind::Pickup => "pickup",
            Kind::StoreNamed => "store_named",
            Kind::Cancel => "cancel",
        }
    }
}

/// A routed order this client placed (to cancel later).
struct Placed {
    order_id: String,
    allocations: Vec<(u32, Vec<(u32, u64)>)>,
}

/// One admin client: its connection, randomness and routed orders.
struct Client {
    admin: Admin,
    rng: ChaCha8Rng,
    tag: String,
    next: usize,
    placed: Vec<Placed>,
}

impl Client {
    async fn new(hub: &ChildHub, tag: String, seed: u64) -> Client {
        let admin = hub.admin();
        // Opens the connection (TLS handshake) before anything is timed.
        let (status, _) = admin.get("/v1/orders/warm-up").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        Client {
            admin,
            rng: ChaCha8Rng::seed_from_u64(seed),
            tag,
            next: 0,
            placed: Vec::new(),
        }
    }

    /// Performs one operation of `kind` (a cancellation only if this
    /// client has a routed order to cancel, else a store-named order):
    /// the kind done and its latency, request sent → answer read.
    async fn op(&mut self, model: &Mutex<Model>, kind: Kind) -> (Kind, Duration) {
        self.next += 1;
        let id = format!("{}-{}", self.tag, self.next);
        let kind = if kind == Kind::Cancel && self.placed.is_empty() {
            Kind::StoreNamed
        } else {
            kind
        };
        let lines_json = |lines: &[(u32, u64)]| -> Value {
            lines
                .iter()
                .map(|&(i, q)| json!({"gtin": gtin(i).to_string(), "qty": q}))
                .collect()
        };
        match kind {
            Kind::ShipOneStore | Kind::ShipSplit | Kind::Pickup => {
                let (at, lines) = {
                    let mut m = model.lock().unwrap();
                    match kind {
                        Kind::ShipOneStore => (None, m.at_one_store(&mut self.rng, true).1),
                        Kind::ShipSplit => (None, m.anywhere(&mut self.rng)),
                        _ => {
                            let (s, l) = m.at_one_store(&mut self.rng, false);
                            (Some(s), l)
                        }
                    }
                };
                let body = match at {
                    None => {
                        json!({"order_id": id, "fulfilment": "ship", "lines": lines_json(&lines)})
                    }
                    Some(s) => json!({"order_id": id, "fulfilment": "pickup",
                                      "store": store_id(s).as_str(), "lines": lines_json(&lines)}),
                };
                let t = Instant::now();
                let (status, answer) = self.admin.post("/v1/orders", &body).await;
                let took = t.elapsed();
                assert_eq!(status, StatusCode::CREATED, "{id}: {answer}");
                assert_eq!(answer["status"], "allocated", "{answer}");
                let allocations = parse_allocations(&answer);
                if let Some(s) = at {
                    assert_eq!(allocations, vec![(s, lines.clone())], "{answer}");
                }
                model
                    .lock()
                    .unwrap()
                    .allocated(&lines, &allocations, at.is_some());
                self.placed.push(Placed {
                    order_id: id,
                    allocations,
                });
                (kind, took)
            }
            Kind::StoreNamed => {
                let (s, lines) = model.lock().unwrap().at_one_store(&mut self.rng, false);
                let body = json!({"order_id": id, "store": store_id(s).as_str(),
                                  "lines": lines_json(&lines)});
                let t = Instant::now();
                let (status, answer) = self.admin.post("/v1/orders", &body).await;
                let took = t.elapsed();
                assert_eq!(status, StatusCode::CREATED, "{id}: {answer}");
                assert_eq!(answer["store"], store_id(s).as_str(), "{answer}");
                assert_eq!(parse_lines(&answer["lines"]), lines, "{answer}");
                (kind, took)
            }
            Kind::Cancel => {
                let i = self.rng.gen_range(0..self.placed.len());
                let victim = self.placed.swap_remove(i);
                let t = Instant::now();
                let r = self
                    .admin
                    .client
                    .http
                    .post(format!(
                        "{}/v1/orders/{}/cancel",
                        self.admin.client.base, victim.order_id
                    ))
                    .bearer_auth(&self.admin.token)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let answer: Value = r.json().await.unwrap();
                let took = t.elapsed();
                assert_eq!(status, StatusCode::OK, "{answer}");
                assert_eq!(answer["status"], "cancelled", "{answer}");
                assert_eq!(parse_allocations(&answer), victim.allocations, "{answer}");
                assert!(answer["allocations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|a| a["status"] == "cancelled"));
                model.lock().unwrap().returned(&victim.allocations);
                (kind, took)
            }
        }
    }
}

fn parse_lines(v: &Value) -> Vec<(u32, u64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                item_of(Gtin::parse(l["gtin"].as_str().unwrap()).unwrap()),
                l["qty"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn parse_allocations(order: &Value) -> Vec<(u32, Vec<(u32, u64)>)> {
    order["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let store = LocationId::new(a["store"].as_str().unwrap()).unwrap();
            (store_of(&store), parse_lines(&a["lines"]))
        })
        .collect()
}

/// Part 2: one order at a time over HTTPS, the shapes interleaved, a
/// cancellation of the round's routed ship orders every other round.
async fn sequential(hub: &ChildHub, model: &Mutex<Model>, rounds: usize, seed: u64) -> Value {
    let t = Instant::now();
    let mut client = Client::new(hub, "seq".into(), seed ^ 0x5e9).await;
    let mut times: BTreeMap<Kind, Times> = BTreeMap::new();
    for r in 0..rounds {
        for kind in [
            Kind::ShipOneStore,
            Kind::ShipSplit,
            Kind::Pickup,
            Kind::StoreNamed,
        ] {
            let (k, took) = client.op(model, kind).await;
            times.entry(k).or_default().push(took);
        }
        if r % 2 == 1 {
            let (k, took) = client.op(model, Kind::Cancel).await;
            times.entry(k).or_default().push(took);
        }
        // Cancel only this round's orders: keep the last ones.
        let keep = client.placed.len().saturating_sub(3);
        client.placed.drain(..keep);
    }
    let plain = times.get_mut(&Kind::StoreNamed).unwrap();
    let (p50, p99) = (plain.p(0.5), plain.p(0.99));
    let mut out = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    for (k, tm) in &mut times {
        ratios.insert(
            k.name().into(),
            json!({"p50": ratio(tm.p(0.5), p50), "p99": ratio(tm.p(0.99), p99)}),
        );
        out.insert(k.name().into(), tm.summary());
    }
    eprintln!(
        "sequential over HTTP ({:.1?}): {}",
        t.elapsed(),
        Value::Object(ratios.clone())
    );
    out.insert("ratio_to_store_named".into(), Value::Object(ratios));
    out.insert("rounds".into(), json!(rounds));
    Value::Object(out)
}

/// Part 3: a baseline of store-named orders, mixed traffic, the baseline
/// again.
async fn traffic_phases(hub: &ChildHub, model: &Arc<Mutex<Model>>, k: &Knobs) -> Value {
    let mut clients = Vec::with_capacity(k.clients);
    for c in 0..k.clients {
        clients.push(Client::new(hub, format!("c{c}"), k.seed ^ ((c as u64 + 1) << 32)).await);
    }
    let plain = [(Kind::StoreNamed, 1)];
    let mixed = [
        (Kind::ShipOneStore, 2),
        (Kind::ShipSplit, 2),
        (Kind::Pickup, 2),
        (Kind::StoreNamed, 3),
        (Kind::Cancel, 1),
    ];
    let (before, clients) = phase(hub, model, clients, &plain, k.per_client, "baseline").await;
    let (during, clients) = phase(hub, model, clients, &mixed, k.per_client, "mixed").await;
    let (after, _) = phase(hub, model, clients, &plain, k.per_client, "baseline again").await;
    let rate = |v: &Value| v["ops_per_s"].as_f64().unwrap();
    let lat = |v: &Value, p: &str| v["latency"][p].as_f64().unwrap();
    let base_rate = (rate(&before) + rate(&after)) / 2.0;
    json!({
        "clients": k.clients,
        "per_client": k.per_client,
        "mix_weights": mixed.iter().map(|(kind, w)| (kind.name().to_string(), json!(w))).collect::<serde_json::Map<_, _>>(),
        "baseline_before": before,
        "mixed": during,
        "baseline_after": after,
        "mixed_over_baseline": {
            "ops_per_s": ratio(rate(&during), base_rate),
            "p50": ratio(lat(&during, "p50_ms"), (lat(&before, "p50_ms") + lat(&after, "p50_ms")) / 2.0),
            "p99": ratio(lat(&during, "p99_ms"), (lat(&before, "p99_ms") + lat(&after, "p99_ms")) / 2.0),
        },
    })
}

/// The hub's group-commit counters now.
async fn commits(admin: &Admin) -> (f64, f64) {
    let (_, metrics) = admin.get("/metrics").await;
    let text = metrics.as_str().unwrap_or_default().to_string();
    let metric = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    (
        metric("tally_hub_commits_total "),
        metric("tally_hub_committed_requests_total "),
    )
}

/// One closed-loop phase: every client does `per_client` operations drawn
/// from `mix` (kind, weight), all starting together.
async fn phase(
    hub: &ChildHub,
    model: &Arc<Mutex<Model>>,
    clients: Vec<Client>,
    mix: &[(Kind, u32)],
    per_client: usize,
    name: &str,
) -> (Value, Vec<Client>) {
    let admin = hub.admin();
    let (commits0, requests0) = commits(&admin).await;
    let (hub_cpu0, own_cpu0) = (hub.cpu_secs(), cpu_secs("self"));
    let barrier = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let total_weight: u32 = mix.iter().map(|(_, w)| w).sum();
    let mix: Vec<(Kind, u32)> = mix.to_vec();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    for mut client in clients {
        let (barrier, model, mix) = (barrier.clone(), model.clone(), mix.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut done = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let mut w = client.rng.gen_range(0..total_weight);
                let kind = mix
                    .iter()
                    .find(|(_, weight)| {
                        if w < *weight {
                            true
                        } else {
                            w -= weight;
                            false
                        }
                    })
                    .unwrap()
                    .0;
                done.push(client.op(&model, kind).await);
            }
            (client, done)
        }));
    }
    let mut clients = Vec::new();
    let mut all = Times::default();
    let mut by_kind: BTreeMap<Kind, Times> = BTreeMap::new();
    for t in tasks {
        let (client, done) = t.await.unwrap();
        clients.push(client);
        for (k, took) in done {
            all.push(took);
            by_kind.entry(k).or_default().push(took);
        }
    }
    let elapsed = started.elapsed();
    let (hub_cpu, own_cpu) = (hub.cpu_secs() - hub_cpu0, cpu_secs("self") - own_cpu0);
    let (commits1, requests1) = commits(&admin).await;
    let orders = all.0.len();
    let per_s = (orders as f64 / elapsed.as_secs_f64()).round();
    let latency = all.summary();
    eprintln!(
        "{name}: {orders} operations in {elapsed:.1?}: {per_s} /s, p50 {} ms, p99 {} ms",
        latency["p50_ms"], latency["p99_ms"]
    );
    let kinds: serde_json::Map<String, Value> = by_kind
        .iter_mut()
        .map(|(k, t)| (k.name().to_string(), t.summary()))
        .collect();
    let commits = commits1 - commits0;
    (
        json!({
            "operations": orders,
            "seconds": round3(elapsed.as_secs_f64()),
            "ops_per_s": per_s,
            "latency": latency,
            "by_kind": kinds,
            "hub_cpu_us_per_order": (hub_cpu / orders as f64 * 1e6).round(),
            "bench_cpu_us_per_order": (own_cpu / orders as f64 * 1e6).round(),
            "hub_cores": round3(hub_cpu / elapsed.as_secs_f64()),
            "commits": commits,
            "requests_per_commit": if commits > 0.0 { ((requests1 - requests0) / commits * 10.0).round() / 10.0 } else { 0.0 },
        }),
        clients,
    )
}

/// Reads every (store, item) the stores hold from the database the hub
/// left: the hub's rights and the units on hand must be the model's.
fn check_final(hub: &RedbHub, model: &Model) -> usize {
    let hub_replica = ReplicaId::hub();
    let read = hub.db().begin_read().unwrap();
    let mut checked = 0;
    for (s, held) in model.held.iter().enumerate() {
        let counters = read.counters_at(&store_id(s as u32)).unwrap();
        assert_eq!(counters.len(), held.len());
        for (g, c) in counters {
            let h = held[&item_of(g)];
            let ordered = h.rights0 - h.rights;
            assert_eq!(
                (c.rights(&hub_replica), c.value()),
                (h.rights, h.on_hand - ordered),
                "store {s}, item {}",
                item_of(g)
            );
            checked += 1;
        }
    }
    checked
}

/// The disk's speed just then: 4 KiB overwritten in place and
/// `fdatasync`ed, 200 times, in `dir` (the hub's disk).
fn disk_sync(dir: &std::path::Path) -> Value {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(dir.join("disk-probe")).unwrap();
    let page = [7u8; 4096];
    let mut lat = Times::default();
    for _ in 0..200 {
        let t = Instant::now();
        f.write_all_at(&page, 0).unwrap();
        f.sync_data().unwrap();
        lat.push(t.elapsed());
    }
    lat.summary()
}

/// Cores, CPU model and load, for reading the numbers.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": model,
        "loadavg_at_start": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}
