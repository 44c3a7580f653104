//! Hub ingest benchmark: N simulated stores (default 1,000), each with its
//! own enrolled certificate and TLS connection to a hub on 127.0.0.1,
//! record sales with the real model and sync them concurrently.
//! Reports sale events acknowledged per second and sync latency
//! percentiles (client side: request sent → response decoded).
//!
//! `cargo bench -p tally-hub --bench ingest` (env: `TALLY_BENCH_STORES`,
//! `TALLY_BENCH_ROUNDS`, `TALLY_BENCH_SALES`, `TALLY_BENCH_ITEMS`,
//! `TALLY_BENCH_SEED`, `TALLY_BENCH_PACE_MS`). Prints one JSON line.
//!
//! By default every store syncs again as soon as its last sync returned
//! (closed loop, the hub saturated: measures throughput; latency is then
//! mostly queueing behind the other 999 stores). With
//! `TALLY_BENCH_PACE_MS=P` each store starts its rounds P ms apart, from a
//! random offset in [0, P): an offered load, to measure latency below
//! saturation. The hub and the clients
//! share this machine's cores, as they would in no real deployment, so the
//! number is a floor.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::{env_u64 as env, gtin, HubClient, SimStore, TestHub};

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let stores = env("TALLY_BENCH_STORES", 1000) as usize;
    let rounds = env("TALLY_BENCH_ROUNDS", 5) as usize;
    let sales = env("TALLY_BENCH_SALES", 50) as usize;
    let items = env("TALLY_BENCH_ITEMS", 20);
    let seed = env("TALLY_BENCH_SEED", 1);
    let pace = Duration::from_millis(env("TALLY_BENCH_PACE_MS", 0));
    eprintln!(
        "ingest bench: seed {seed}, {stores} stores x {rounds} rounds x {sales} sales over {items} items, pace {pace:?}"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(stores, rounds, sales, items, seed, pace));
}

async fn run(stores: usize, rounds: usize, sales: usize, items: u64, seed: u64, pace: Duration) {
    let hub = TestHub::start(|_| {}).await;
    let t = Instant::now();
    let mut clients = Vec::with_capacity(stores);
    for i in 0..stores {
        let id = format!("store-{i:04}");
        let bundle = hub.enroll(&id);
        let client = HubClient::new(&hub.base(), &std::fs::read(&bundle).unwrap(), true);
        clients.push((
            SimStore::new(&id, seed.wrapping_mul(1_000_003) + i as u64),
            client,
        ));
    }
    eprintln!("enrolled {stores} stores in {:.1?}", t.elapsed());

    // Warm-up (not measured): stock every store, connect, settle rights.
    let t = Instant::now();
    let per_item = (rounds * sales) as u64 + 10;
    let mut tasks = Vec::new();
    for (mut store, client) in clients {
        tasks.push(tokio::spawn(async move {
            for g in 0..items {
                store.receive(gtin(g), per_item);
            }
            store.sync_all(&client, 20).await;
            (store, client)
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    eprintln!("warm-up (receipts, TLS handshakes) in {:.1?}", t.elapsed());

    // Measured: every store records `sales` sales, syncs, `rounds` times.
    let start = Instant::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(stores));
    let mut tasks = Vec::new();
    for (i, (mut store, client)) in clients.into_iter().enumerate() {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (i as u64) << 20);
            let mut latencies = Vec::with_capacity(rounds * 2);
            let mut sold = 0u64;
            barrier.wait().await;
            let begin = tokio::time::Instant::now();
            let offset = if pace.is_zero() {
                Duration::ZERO
            } else {
                pace.mul_f64(rng.gen::<f64>())
            };
            for round in 0..rounds {
                if !pace.is_zero() {
                    tokio::time::sleep_until(begin + offset + pace * round as u32).await;
                }
                for _ in 0..sales {
                    let g = gtin(rng.gen_range(0..items));
                    if store.sell(g, 1).is_ok() {
                        sold += 1;
                    }
                }
                loop {
                    let req = store.request(10_000);
                    let t = Instant::now();
                    let resp = client.sync(&req).await.unwrap();
                    latencies.push(t.elapsed());
                    store.apply(&req, &resp);
                    if !resp.more && store.mem.outbox.is_empty() {
                        break;
                    }
                }
            }
            (sold, latencies, store)
        }));
    }
    let mut sold = 0;
    let mut latencies: Vec<Duration> = Vec::new();
    let mut sims = Vec::new();
    for t in tasks {
        let (s, l, store) = t.await.unwrap();
        sold += s;
        latencies.extend(l);
        sims.push(store);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };

    // Cross-check: the hub's on-hand for an item equals the stores' views.
    let admin = hub.admin();
    let (_, stock) = admin.get(&format!("/v1/stock/{}", gtin(0))).await;
    let stores_view: u64 = sims.iter().map(|s| s.on_hand(gtin(0))).sum();
    assert_eq!(
        stock["on_hand"].as_u64().unwrap(),
        stores_view,
        "hub and stores disagree"
    );
    let (_, metrics) = admin.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    let commits = metric("tally_hub_commits_total ");
    let committed = metric("tally_hub_committed_requests_total ");
    println!(
        "{}",
        serde_json::json!({
            "seed": seed,
            "pace_ms": pace.as_millis() as u64,
            "stores": stores,
            "rounds": rounds,
            "sales_per_round": sales,
            "items": items,
            "sale_events": sold,
            "seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "sale_events_per_s": (sold as f64 / elapsed.as_secs_f64()).round(),
            "sync_requests": latencies.len(),
            "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
            "commits": commits,
            "mean_requests_per_commit": if commits > 0.0 { (committed / commits * 10.0).round() / 10.0 } else { 0.0 },
        })
    );
    hub.stop().await;
}
