//! Throughput of the pure model for a store with 100,000 items:
//! counter merges/s, delta extraction, validation, and a whole delta
//! round (extract → encode → decode → validate → merge) at the hub.
//!
//! `cargo bench -p tally-sync --bench model` prints one line per
//! measurement; docs/benchmarks.md records a run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use tally_sync::codec::{decode, encode, Encoding};
use tally_sync::{
    Delta, Gtin, Inventory, ItemKey, LocationId, ReplicaId, SyncRequest, PROTOCOL_VERSION,
};

const ITEMS: u64 = 100_000;

fn measure<T>(name: &str, units: &str, per_iter: u64, mut f: impl FnMut() -> T) {
    // Warm up, then run for at least a second.
    black_box(f());
    let started = Instant::now();
    let mut iters = 0u64;
    while started.elapsed() < Duration::from_secs(1) || iters < 3 {
        black_box(f());
        iters += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = (iters * per_iter) as f64 / secs;
    println!(
        "{name:<58} {rate:>14.0} {units}/s   ({:.3} ms per iteration of {per_iter})",
        secs * 1e3 / iters as f64
    );
}

/// Like [`measure`], but `setup` runs outside the timed part.
fn measure_with<S, T>(
    name: &str,
    units: &str,
    per_iter: u64,
    mut setup: impl FnMut() -> S,
    mut f: impl FnMut(S) -> T,
) {
    let mut timed = Duration::ZERO;
    let mut iters = 0u64;
    while timed < Duration::from_secs(1) || iters < 3 {
        let s = setup();
        let started = Instant::now();
        let out = black_box(f(s));
        timed += started.elapsed();
        drop(out); // freeing large states is not what is measured
        iters += 1;
    }
    let secs = timed.as_secs_f64();
    let rate = (iters * per_iter) as f64 / secs;
    println!(
        "{name:<58} {rate:>14.0} {units}/s   ({:.3} ms per iteration of {per_iter})",
        secs * 1e3 / iters as f64
    );
}

fn main() {
    let store = ReplicaId::new("store-001").unwrap();
    let hub = ReplicaId::hub();
    let loc = LocationId::new("store-001").unwrap();
    let keys: Vec<ItemKey> = (0..ITEMS)
        .map(|i| ItemKey::new(loc.clone(), Gtin::from_body(400_000_000_000 + i).unwrap()))
        .collect();

    // The store: every item received, some sold, 20 % of them the hub's
    // rights (an online reserve, as a demand-driven policy may set).
    let mut at_store = Inventory::new();
    for (i, k) in keys.iter().enumerate() {
        at_store.add(k, &store, 10 + (i as u64 % 7)).unwrap();
        at_store.remove(k, &store, i as u64 % 3).unwrap();
        at_store.transfer(k, &store, &hub, 2).unwrap();
    }
    // The hub's view: the store's entries plus online orders.
    let mut at_hub = Inventory::new();
    at_hub.merge_delta(&at_store.delta_since(&loc, 0));
    for k in keys.iter().step_by(3) {
        at_hub.remove(k, &hub, 1).unwrap();
    }
    println!("model benchmark: one store, {ITEMS} items, counters with 2 replicas");

    let a = at_store.counter(&keys[0]);
    let b = at_hub.counter(&keys[0]);
    measure("BoundedCounter::merge (one counter)", "merges", 1, || {
        let mut m = a.clone();
        m.merge(&b);
        m
    });
    measure(
        "BoundedCounter::validate (one counter)",
        "validations",
        1,
        || a.validate(&store, &b),
    );

    let full_from_hub = at_hub.delta_since(&loc, 0);
    measure_with(
        "Inventory::merge_delta, 100k counters changed",
        "merges",
        ITEMS,
        || at_store.clone(),
        |mut inv| {
            inv.merge_delta(&full_from_hub);
            inv
        },
    );

    measure("Inventory::delta_since, all 100k", "entries", ITEMS, || {
        at_store.delta_since(&loc, 0)
    });

    // A day of sales: 5,000 items changed since the last sync.
    let cursor = at_store.version();
    let mut day = at_store.clone();
    for k in keys.iter().step_by(20) {
        day.remove(k, &store, 1).unwrap();
    }
    let changed = ITEMS / 20;
    measure(
        "Inventory::delta_since, 5k of 100k changed",
        "deltas",
        changed,
        || day.delta_since(&loc, cursor),
    );
    let delta: Delta = day.delta_since(&loc, cursor).owned_by(&store);
    measure(
        "Inventory::validate_delta at the hub, 5k entries",
        "entries",
        changed,
        || at_hub.validate_delta(&store, &loc, &delta).unwrap(),
    );
    measure_with(
        "delta round: extract+encode+decode+validate+merge, 5k",
        "entries",
        changed,
        || at_hub.clone(),
        |mut hub| {
            let d = day.delta_since(&loc, cursor).owned_by(&store);
            let req = SyncRequest {
                version: PROTOCOL_VERSION,
                replica: store.clone(),
                location: loc.clone(),
                delta: d,
                delta_version: day.version(),
                events: vec![],
                events_upto: 0,
                hub_cursor: 0,
                catalog_cursor: 0,
                demand: vec![],
                lost: vec![],
            };
            let bytes = encode(&req, Encoding::Binary).unwrap();
            let back: SyncRequest = decode(&bytes, Encoding::Binary, 1 << 26).unwrap();
            hub.validate_delta(&store, &loc, &back.delta).unwrap();
            hub.merge_delta(&back.delta);
            hub
        },
    );
    let bytes = encode(
        &SyncRequest {
            version: PROTOCOL_VERSION,
            replica: store.clone(),
            location: loc.clone(),
            delta,
            delta_version: 0,
            events: vec![],
            events_upto: 0,
            hub_cursor: 0,
            catalog_cursor: 0,
            demand: vec![],
            lost: vec![],
        },
        Encoding::Binary,
    )
    .unwrap();
    println!(
        "binary size of a 5k-entry delta: {} bytes ({:.1} bytes/entry)",
        bytes.len(),
        bytes.len() as f64 / changed as f64
    );

    routing();
}

/// Routing a 5-line order over 1,000 stores of a 100,000-item catalog:
/// the pure decision (`routing::route`) once the hub has read, per store,
/// what it can give of the order's 5 items. Two shapes: one store holds
/// it all (the common case), and none does (a split over the fewest
/// stores). Latency per decision, p50 / p99 over 2,000 orders each.
fn routing() {
    use rand::{Rng, SeedableRng};
    use tally_sync::routing::{route, AllocatedLine, Candidate, Preference};

    const STORES: usize = 1_000;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let gtin = |i: u64| Gtin::from_body(400_000_000_000 + i).unwrap();
    for (shape, per_store) in [("one store holds it", 0..8u64), ("split", 0..2u64)] {
        let mut took = Vec::with_capacity(2_000);
        let mut splits = 0usize;
        for _ in 0..2_000 {
            let items: Vec<u64> = (0..5).map(|_| rng.gen_range(0..ITEMS)).collect();
            let lines: Vec<AllocatedLine> = items
                .iter()
                .map(|&i| AllocatedLine {
                    gtin: gtin(i),
                    qty: 3,
                })
                .collect();
            let candidates: Vec<Candidate> = (0..STORES)
                .map(|s| Candidate {
                    store: LocationId::new(&format!("store-{s:04}")).unwrap(),
                    priority: rng.gen_range(0..10),
                    available: items
                        .iter()
                        .map(|&i| (gtin(i), rng.gen_range(per_store.clone())))
                        .collect(),
                })
                .collect();
            let started = Instant::now();
            let allocs = black_box(route(&lines, &candidates, Preference::MostSpare)).unwrap();
            took.push(started.elapsed());
            splits += allocs.len();
        }
        took.sort();
        let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
        println!(
            "route a 5-line order over {STORES} stores ({shape}): p50 {:.3} ms, p99 {:.3} ms, {:.1} stores per order",
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            splits as f64 / took.len() as f64
        );
    }
}
