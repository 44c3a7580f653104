//! Rights on demand and the live link, against the real `tally-hub` binary
//! in its own process on 127.0.0.1 (TLS 1.3 with client certificates,
//! HTTP/2, redb with an fsync per group commit), in one run:
//!
//! 1. **Round trips.** One live store asks for 1 unit of the hub's rights
//!    at a time (`POST /v1/rights`, carrying its own entries, as the agent
//!    does), then sells it; another live store sells 1 unit and syncs
//!    (`POST /v1/sync`, binary). The two alternate, one request in flight
//!    at a time: p50/p99 of each (client side: request encoded → answer
//!    decoded) and their ratio.
//! 2. **Idle live links.** `N` stores (default 1,000), each with its own
//!    certificate and connection: the hub process's resident memory before
//!    they connect, once each has an idle connection (one refused request
//!    opens it) and once each holds `GET /v1/link` open; per connection and
//!    per link. `tally_hub_stores_live` must say `N`.
//! 3. **Many live stores asking at once.** The same `N` stores, links
//!    open, each ask for 1 unit at the same moment, in waves: requests/s
//!    and latency percentiles; then each asks once more and must be
//!    refused (`no_stock`): never more granted than the reserve.
//!
//! The hub's reserve at each store is made by the store itself: it
//! receives units, syncs, and transfers its rights to the hub
//! (`MemStore::release`, an ordinary escrow transfer); its requests carry
//! that transfer in their own entries, which the hub merges before it
//! grants.
//!
//! `cargo bench -p tally-hub --bench live` (env: `TALLY_BENCH_STORES`,
//! default 1000; `TALLY_BENCH_ROUND_TRIPS`, default 2000;
//! `TALLY_BENCH_WAVES`, default 10). Progress on stderr, one JSON line on
//! stdout. It asserts correctness, never timings. The clients share the
//! machine's cores with the hub.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::child::{cpu_secs, ChildHub, Memory};
use support::link::Link;
use support::{env_u64, gtin, Admin, HubClient, SimStore};
use tally_sync::link::Notice;
use tally_sync::{BoundedCounter, EventId, Gtin, Shortage};

/// Round trips not measured (connection warm-up).
const WARM_UP: usize = 100;

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let stores = env_u64("TALLY_BENCH_STORES", 1000) as usize;
    let trips = env_u64("TALLY_BENCH_ROUND_TRIPS", 2000) as usize;
    let waves = env_u64("TALLY_BENCH_WAVES", 10);
    eprintln!("live bench: {trips} round trips; {stores} live stores, {waves} waves");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(async {
        let hub = ChildHub::start(&[]);
        let started = hub.memory();
        let disk_before = disk_sync(hub.tmp.path());
        eprintln!("disk: {disk_before}");
        let round_trips = round_trips(&hub, trips).await;
        let (links, live) = idle_links(&hub, stores).await;
        let burst = burst(&hub, live, waves).await;
        let disk_after = disk_sync(hub.tmp.path());
        let status = hub.stop();
        assert!(status.success(), "the hub stopped cleanly: {status:?}");
        json!({
            "disk_before": disk_before,
            "disk_after": disk_after,
            "hub_rss_at_start_kib": started.rss_kib,
            "round_trips": round_trips,
            "idle_links": links,
            "rights_burst": burst,
        })
    });
    println!("{report}");
}

/// A store with its client and open link.
struct Live {
    store: SimStore,
    client: HubClient,
    _link: Link,
}

impl Live {
    /// Enrolls `id` and opens its link.
    async fn enroll(hub: &ChildHub, id: &str, seed: u64) -> Live {
        let pem = std::fs::read(hub.enroll(id)).unwrap();
        Live::open(HubClient::new(&hub.base, &pem, true), id, seed).await
    }

    /// Opens store `id`'s link on `client` (hello read); its events'
    /// ids are drawn from `seed` (one per store: ids are global).
    async fn open(client: HubClient, id: &str, seed: u64) -> Live {
        let mut link = Link::open(&client).await;
        match link.next().await {
            Notice::Hello { store, .. } => assert_eq!(store.to_string(), id),
            other => panic!("expected hello, got {other:?}"),
        }
        Live {
            store: SimStore::new(id, seed),
            client,
            _link: link,
        }
    }

    /// Receives `units` of `g`, syncs them and gives the hub the rights to
    /// all of them: the hub's reserve here.
    async fn stock_hub_reserve(&mut self, g: Gtin, units: u64, tag: u16) {
        self.store.receive(g, units);
        self.store.sync_all(&self.client, 10).await;
        let given = self.store.mem.release(
            request_id(tag, u32::MAX),
            g,
            units,
            &BoundedCounter::default(),
        );
        assert_eq!(given.released, units);
        assert_eq!(self.store.rights(g), 0);
    }

    /// Asks for one unit under request `(tag, n)`, merges the grant and
    /// sells the unit; the round trip's time.
    async fn ask_one_and_sell(&mut self, g: Gtin, tag: u16, n: u32) -> Duration {
        let req = self.store.rights_request(request_id(tag, n), g, 1);
        let t = Instant::now();
        let grant = self.client.rights(&req).await.unwrap();
        let took = t.elapsed();
        assert_eq!((grant.granted, grant.reason), (1, None), "{grant:?}");
        assert!(self.store.mem.apply_grant(&grant));
        self.store.sell(g, 1).unwrap();
        took
    }
}

/// A request id unique to (store tag, request number).
fn request_id(tag: u16, n: u32) -> EventId {
    let mut random = [0u8; 10];
    random[..2].copy_from_slice(&tag.to_be_bytes());
    random[2..6].copy_from_slice(&n.to_be_bytes());
    EventId::v7(1_750_000_000_000 + u64::from(n % 1_000_000), random)
}

/// The disk's speed just then, for reading the rest: 4 KiB overwritten
/// in place and `fdatasync`ed, 200 times, one at a time, in `dir` (the
/// hub's disk).
fn disk_sync(dir: &std::path::Path) -> Value {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(dir.join("disk-probe")).unwrap();
    let page = [7u8; 4096];
    let mut lat: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            f.write_all_at(&page, 0).unwrap();
            f.sync_data().unwrap();
            t.elapsed()
        })
        .collect();
    percentiles(&mut lat)
}

/// Percentiles of `lat` in ms (sorts it).
fn percentiles(lat: &mut [Duration]) -> Value {
    lat.sort();
    let at = |p: f64| {
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        (lat[i].as_secs_f64() * 1e6).round() / 1e3
    };
    json!({"n": lat.len(), "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": at(1.0)})
}

fn ratio(a: &Value, b: &Value, field: &str) -> f64 {
    (a[field].as_f64().unwrap() / b[field].as_f64().unwrap() * 100.0).round() / 100.0
}

/// Part 1: rights round trips against sync round trips, alternating.
async fn round_trips(hub: &ChildHub, trips: usize) -> Value {
    let g = gtin(1);
    let total = (WARM_UP + trips) as u64;
    let mut asker = Live::enroll(hub, "rt-rights", 1).await;
    let mut syncer = Live::enroll(hub, "rt-sync", 2).await;
    asker.stock_hub_reserve(g, total, 0).await;
    syncer.store.receive(g, total);
    syncer.store.sync_all(&syncer.client, 10).await;

    let (mut rights, mut syncs) = (Vec::new(), Vec::new());
    for i in 0..WARM_UP + trips {
        let r = asker.ask_one_and_sell(g, 0, i as u32).await;

        syncer.store.sell(g, 1).unwrap();
        let req = syncer.store.request(1000);
        let t = Instant::now();
        let resp = syncer.client.sync(&req).await.unwrap();
        let s = t.elapsed();
        syncer.store.apply(&req, &resp);
        assert!(!resp.more && !syncer.store.has_pending(), "one exchange");

        if i >= WARM_UP {
            rights.push(r);
            syncs.push(s);
        }
    }
    assert_eq!(asker.store.on_hand(g), 0);
    let rights = percentiles(&mut rights);
    let syncs = percentiles(&mut syncs);
    let out = json!({
        "rights": rights,
        "sync": syncs,
        "rights_over_sync_p50": ratio(&rights, &syncs, "p50_ms"),
        "rights_over_sync_p99": ratio(&rights, &syncs, "p99_ms"),
    });
    eprintln!("round trips: {out}");
    out
}

/// The value of an unlabelled metric (or one with its labels) in `/metrics`.
async fn metric(admin: &Admin, name: &str) -> f64 {
    let (_, text) = admin.get("/metrics").await;
    let text = text.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The hub's memory after things settle.
async fn settled(hub: &ChildHub) -> Memory {
    tokio::time::sleep(Duration::from_secs(1)).await;
    hub.memory()
}

fn per(from: Memory, to: Memory, n: usize) -> Value {
    let kib = |a: u64, b: u64| ((b as f64 - a as f64) / n as f64 * 100.0).round() / 100.0;
    json!({"rss_kib": kib(from.rss_kib, to.rss_kib), "anon_kib": kib(from.anon_kib, to.anon_kib)})
}

/// Part 2: `n` stores connect, then open their links and stay idle; the
/// hub's memory at each step. Returns the stores, live.
async fn idle_links(hub: &ChildHub, n: usize) -> (Value, Vec<Live>) {
    let admin = hub.admin();
    let t = Instant::now();
    let ids: Vec<String> = (0..n).map(|i| format!("store-{i:04}")).collect();
    let bundles: Vec<_> = ids.iter().map(|id| hub.enroll(id)).collect();
    eprintln!("enrolled {n} stores in {:.1?}", t.elapsed());
    // The round-trip stores' links are gone.
    let t = Instant::now();
    while metric(&admin, "tally_hub_stores_live").await != 0.0 {
        assert!(t.elapsed() < Duration::from_secs(10), "links still live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = settled(hub).await;

    // Each store's connection, opened by a request the hub refuses without
    // touching storage (0 units).
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (i, bundle) in bundles.iter().enumerate() {
        let client = HubClient::new(&hub.base, &std::fs::read(bundle).unwrap(), true);
        let req = SimStore::new(&ids[i], 7).rights_request(request_id(1, i as u32), gtin(1), 0);
        tasks.push(tokio::spawn(async move {
            let (status, _) = client.rights(&req).await.unwrap_err();
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            client
        }));
    }
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    eprintln!("{n} connections in {:.1?}", t.elapsed());
    let connected = settled(hub).await;

    // Each opens its link on that connection.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (i, (client, id)) in clients.into_iter().zip(&ids).enumerate() {
        let id = id.clone();
        let seed = 100 + i as u64;
        tasks.push(tokio::spawn(
            async move { Live::open(client, &id, seed).await },
        ));
    }
    let mut live = Vec::new();
    for task in tasks {
        live.push(task.await.unwrap());
    }
    eprintln!("{n} links in {:.1?}", t.elapsed());
    let linked = settled(hub).await;
    let live_now = metric(&admin, "tally_hub_stores_live").await;
    assert_eq!(live_now, n as f64, "tally_hub_stores_live");
    let out = json!({
        "stores": n,
        "tally_hub_stores_live": live_now,
        "hub_kib": {"before": before.rss_kib, "connected": connected.rss_kib, "linked": linked.rss_kib},
        "hub_anon_kib": {"before": before.anon_kib, "connected": connected.anon_kib, "linked": linked.anon_kib},
        "per_connection": per(before, connected, n),
        "per_link": per(connected, linked, n),
        "per_live_store": per(before, linked, n),
    });
    eprintln!("idle links: {out}");
    (out, live)
}

/// Part 3: every live store asks for 1 unit at once, `waves` times; then
/// once more, refused.
async fn burst(hub: &ChildHub, live: Vec<Live>, waves: u64) -> Value {
    let g = gtin(1);
    let n = live.len();
    let admin = hub.admin();

    let t = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut s) in live.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            s.stock_hub_reserve(g, waves, 2 + i as u16).await;
            s
        }));
    }
    let mut live = Vec::new();
    for task in tasks {
        live.push(task.await.unwrap());
    }
    eprintln!(
        "{n} stores synced, {waves} units each in the hub's reserve, in {:.1?}",
        t.elapsed()
    );
    let linked = hub.memory();
    let commits = metric(&admin, "tally_hub_commits_total").await;
    let committed = metric(&admin, "tally_hub_committed_requests_total").await;

    // Every store waits at the barrier before each wave, after the last,
    // and once more before the refused request; so does this task, which
    // reads the clock and the hub's commit counts there.
    let barrier = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut tasks = Vec::new();
    for (i, mut s) in live.into_iter().enumerate() {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let tag = 2 + i as u16;
            let mut lat = Vec::with_capacity(waves as usize);
            for w in 0..waves {
                barrier.wait().await;
                lat.push(s.ask_one_and_sell(g, tag, w as u32).await);
            }
            barrier.wait().await;
            barrier.wait().await;
            // The reserve is spent: one more is refused.
            let req = s.store.rights_request(request_id(tag, waves as u32), g, 1);
            let grant = s.client.rights(&req).await.unwrap();
            assert_eq!((grant.granted, grant.reason), (0, Some(Shortage::NoStock)));
            (lat, s)
        }));
    }
    let mut marks = Vec::new();
    let mut cpu_at_start = (0.0, 0.0);
    for w in 0..=waves {
        barrier.wait().await;
        marks.push(Instant::now());
        if w == 0 {
            cpu_at_start = (hub.cpu_secs(), cpu_secs("self"));
        }
    }
    let cpu = (
        hub.cpu_secs() - cpu_at_start.0,
        cpu_secs("self") - cpu_at_start.1,
    );
    let commits = metric(&admin, "tally_hub_commits_total").await - commits;
    let committed = metric(&admin, "tally_hub_committed_requests_total").await - committed;
    barrier.wait().await;
    let mut lat = Vec::new();
    let mut live = Vec::new();
    for task in tasks {
        let (l, s) = task.await.unwrap();
        lat.extend(l);
        live.push(s);
    }
    let elapsed = marks[marks.len() - 1] - marks[0];
    let wave_ms: Vec<f64> = marks
        .windows(2)
        .map(|w| ((w[1] - w[0]).as_secs_f64() * 1e4).round() / 10.0)
        .collect();

    // The hub's view agrees: its reserve at every store is spent.
    let (_, stock) = admin.get(&format!("/v1/stock/{g}")).await;
    for s in &live {
        let id = s.store.mem.who.replica.to_string();
        assert_eq!(
            stock["stores"][&id]["hub_rights"], 0,
            "{id}: {}",
            stock["stores"][&id]
        );
        assert_eq!(s.store.on_hand(g), 0);
    }
    let requests = lat.len();
    let out = json!({
        "stores": n,
        "waves": waves,
        "requests": requests,
        "seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "requests_per_s": (requests as f64 / elapsed.as_secs_f64()).round(),
        "latency": percentiles(&mut lat),
        "wave_ms": wave_ms,
        "commits": commits,
        "mean_requests_per_commit": if commits > 0.0 { (committed / commits * 10.0).round() / 10.0 } else { 0.0 },
        "cpu_us_per_request": {
            "hub": (cpu.0 / requests as f64 * 1e7).round() / 10.0,
            "clients": (cpu.1 / requests as f64 * 1e7).round() / 10.0,
            "both_over_wall_clock_cores": ((cpu.0 + cpu.1) / elapsed.as_secs_f64() * 100.0).round() / 100.0,
        },
        "hub_kib_linked_with_stock": linked.rss_kib,
        "hub_kib_after": hub.memory().rss_kib,
    });
    eprintln!("rights burst: {out}");
    drop(live);
    out
}
