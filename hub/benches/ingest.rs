//! Hub ingest benchmark: N simulated stores (default 1,000), each with its
//! own enrolled certificate and TLS connection to a hub on 127.0.0.1,
//! record sales with the real model and sync them concurrently.
//! Reports sale events acknowledged per second and sync latency
//! percentiles (client side: request sent → response decoded).
//!
//! `cargo bench -p tally-hub --bench ingest` (env: `TALLY_BENCH_STORES`,
//! `TALLY_BENCH_ROUNDS`, `TALLY_BENCH_SALES`, `TALLY_BENCH_ITEMS`,
//! `TALLY_BENCH_SEED`, `TALLY_BENCH_PACE_MS`, `TALLY_BENCH_HUBS`).
//! Prints one JSON line per hub set-up.
//!
//! `TALLY_BENCH_HUBS` lists the set-ups to run in turn, each from
//! scratch with the same seed (default `embedded`): `embedded` (the hub
//! in this process, on redb, as every run before issue 24 measured it),
//! `redb` (the real `tally-hub` binary in its own process, on redb),
//! `postgres` (that binary on PostgreSQL: a throwaway server this bench
//! starts, on the same machine, fsync on) and `postgres-x2` (two such
//! processes over one database, the stores split between them, as
//! behind a TCP balancer). Comparing `redb`, `postgres` and
//! `postgres-x2` from one run is the like-for-like comparison.
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
use support::child::ChildHub;
use support::{env_u64 as env, gtin, Admin, HubClient, SimStore, TestHub};

/// The hubs of one set-up, however they run.
enum Hubs {
    /// In this process.
    Embedded(TestHub),
    /// Real `tally-hub` processes (over one database, its URL, if
    /// several or on PostgreSQL).
    Processes(Vec<ChildHub>, Option<String>),
}

/// What PostgreSQL did for the bench's database so far: transactions
/// committed, index scans, rows read, inserted and updated (its own
/// statistics views; `None` for the embedded engine).
fn db_work(url: Option<&str>) -> Option<serde_json::Value> {
    let url = url?;
    let stats = support::pg::with_client(url, async |client| {
        // Statistics are flushed by each backend now and then: ask for a
        // snapshot that includes them.
        let _ = client
            .batch_execute("SELECT pg_stat_force_next_flush()")
            .await;
        let db = client
            .query_one(
                "SELECT xact_commit, tup_fetched, tup_inserted, tup_updated
                 FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await?;
        let scans = client
            .query_one(
                "SELECT coalesce(sum(idx_scan), 0)::bigint,
                        coalesce(sum(seq_tup_read), 0)::bigint
                 FROM pg_stat_user_tables",
                &[],
            )
            .await?;
        let by_table = client
            .query(
                "SELECT relname::text, seq_scan, seq_tup_read FROM pg_stat_user_tables
                 WHERE seq_tup_read > 0 ORDER BY seq_tup_read DESC LIMIT 3",
                &[],
            )
            .await?;
        let tables: Vec<serde_json::Value> = by_table
            .iter()
            .map(|r| {
                serde_json::json!([
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, i64>(2)
                ])
            })
            .collect();
        Ok(serde_json::json!({
            "table_scans_by_table": tables,
            "commits": db.get::<_, i64>(0),
            "rows_fetched": db.get::<_, i64>(1),
            "rows_inserted": db.get::<_, i64>(2),
            "rows_updated": db.get::<_, i64>(3),
            "index_scans": scans.get::<_, i64>(0),
            "rows_read_by_table_scans": scans.get::<_, i64>(1),
        }))
    });
    Some(stats.unwrap())
}

impl Hubs {
    /// Starts `setup` for `stores` stores, all connecting from 127.0.0.1
    /// (so the per-peer connection cap is raised to let them in).
    async fn start(setup: &str, stores: usize) -> Hubs {
        let per_peer = (stores + 16).to_string();
        let cap = ["--max-connections-per-peer", per_peer.as_str()];
        match setup {
            "embedded" => {
                Hubs::Embedded(TestHub::start(|c| c.max_connections_per_peer = stores + 16).await)
            }
            "redb" => Hubs::Processes(vec![ChildHub::start(&cap)], None),
            "postgres" | "postgres-x2" => {
                let url = support::pg::database("ingest");
                let args = [cap[0], cap[1], "--database", url.as_str()];
                let first = ChildHub::start(&args);
                let mut hubs = vec![];
                if setup == "postgres-x2" {
                    hubs.push(first.beside(&args));
                }
                hubs.insert(0, first);
                Hubs::Processes(hubs, Some(url))
            }
            other => panic!("TALLY_BENCH_HUBS: unknown set-up {other:?}"),
        }
    }

    /// Enrolls `store`; its client, on the `i`th store's hub.
    fn client(&self, store: &str, i: usize) -> HubClient {
        let (bundle, base) = match self {
            Hubs::Embedded(hub) => (hub.enroll(store), hub.base()),
            Hubs::Processes(hubs, _) => (hubs[0].enroll(store), hubs[i % hubs.len()].base.clone()),
        };
        HubClient::new(&base, &std::fs::read(&bundle).unwrap(), true)
    }

    fn admins(&self) -> Vec<Admin> {
        match self {
            Hubs::Embedded(hub) => vec![hub.admin()],
            Hubs::Processes(hubs, _) => hubs.iter().map(ChildHub::admin).collect(),
        }
    }

    /// CPU seconds the hub processes have used so far (0 embedded).
    fn cpu_secs(&self) -> f64 {
        match self {
            Hubs::Embedded(_) => 0.0,
            Hubs::Processes(hubs, _) => hubs.iter().map(ChildHub::cpu_secs).sum(),
        }
    }

    async fn stop(self) {
        match self {
            Hubs::Embedded(hub) => {
                hub.stop().await;
            }
            Hubs::Processes(hubs, _) => hubs.into_iter().for_each(|h| {
                h.stop();
            }),
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let stores = env("TALLY_BENCH_STORES", 1000) as usize;
    let rounds = env("TALLY_BENCH_ROUNDS", 5) as usize;
    let sales = env("TALLY_BENCH_SALES", 50) as usize;
    let items = env("TALLY_BENCH_ITEMS", 20);
    let seed = env("TALLY_BENCH_SEED", 1);
    let pace = Duration::from_millis(env("TALLY_BENCH_PACE_MS", 0));
    let setups = std::env::var("TALLY_BENCH_HUBS").unwrap_or_else(|_| "embedded".into());
    support::crypto();
    for setup in setups.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        eprintln!(
            "ingest bench ({setup}): seed {seed}, {stores} stores x {rounds} rounds x {sales} sales over {items} items, pace {pace:?}"
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(setup, stores, rounds, sales, items, seed, pace));
    }
}

async fn run(
    setup: &str,
    stores: usize,
    rounds: usize,
    sales: usize,
    items: u64,
    seed: u64,
    pace: Duration,
) {
    let hub = Hubs::start(setup, stores).await;
    let t = Instant::now();
    let mut clients = Vec::with_capacity(stores);
    for i in 0..stores {
        let id = format!("store-{i:04}");
        let client = hub.client(&id, i);
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
    let db_url = match &hub {
        Hubs::Processes(_, url) => url.clone(),
        Hubs::Embedded(_) => None,
    };
    let db_before = db_work(db_url.as_deref());
    let cpu_before = (
        hub.cpu_secs(),
        support::child::cpu_secs_of("postgres"),
        support::child::cpu_secs("self"),
    );
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
    let cpu = serde_json::json!({
        "hubs": hub.cpu_secs() - cpu_before.0,
        "postgres": support::child::cpu_secs_of("postgres") - cpu_before.1,
        "bench_clients": support::child::cpu_secs("self") - cpu_before.2,
    });
    let db_after = db_work(db_url.as_deref());
    let db = match (db_before, db_after) {
        (Some(b), Some(a)) => {
            let d = |k: &str| a[k].as_i64().unwrap_or(0) - b[k].as_i64().unwrap_or(0);
            serde_json::json!({
                "commits": d("commits"),
                "index_scans": d("index_scans"),
                "rows_read_by_table_scans": d("rows_read_by_table_scans"),
                "table_scans_by_table_so_far": a["table_scans_by_table"].clone(),
                "rows_fetched": d("rows_fetched"),
                "rows_inserted": d("rows_inserted"),
                "rows_updated": d("rows_updated"),
            })
        }
        _ => serde_json::Value::Null,
    };
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };

    // Cross-check: the hub's on-hand for an item equals the stores' views.
    let admins = hub.admins();
    let admin = &admins[0];
    let (_, stock) = admin.get(&format!("/v1/stock/{}", gtin(0))).await;
    let stores_view: u64 = sims.iter().map(|s| s.on_hand(gtin(0))).sum();
    assert_eq!(
        stock["on_hand"].as_u64().unwrap(),
        stores_view,
        "hub and stores disagree"
    );
    // Every process's commits.
    let (mut commits, mut committed) = (0.0, 0.0);
    for admin in &admins {
        let (_, metrics) = admin.get("/metrics").await;
        let metrics = metrics.as_str().unwrap_or_default().to_string();
        let metric = |name: &str| -> f64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
                .unwrap_or(0.0)
        };
        commits += metric("tally_hub_commits_total ");
        committed += metric("tally_hub_committed_requests_total ");
    }
    println!(
        "{}",
        serde_json::json!({
            "hubs": setup,
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
            "cpu_s": cpu,
            "db": db,
        })
    );
    hub.stop().await;
}
