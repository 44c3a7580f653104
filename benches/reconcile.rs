//! Benchmark (issue 5, 7a): a store back after a week offline with 50,000
//! sales over a 100,000-item catalog — how long and how many bytes to
//! reconcile with the hub, with the real release binaries over real TLS.
//!
//! ```text
//! cargo build --release --workspace --bins && cargo bench --bench reconcile
//! ```
//! Bytes are counted on the wire (TLS records, both directions) by a
//! proxy between agent and hub, from the moment the store comes back until
//! the hub holds every event and agrees with the store on every item
//! sold; they are compared with the binary (postcard) encoding of the
//! sale events themselves, read back from the agent's database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/procs.rs"]
mod procs;

use std::process::Command;
use std::time::{Duration, Instant};

use procs::{bin, run_ok, Proc};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tally::demo::proxy::{FaultProxy, Mode};

const ITEMS: u64 = 100_000;
const SALES: u64 = 50_000;
const CLIENTS: usize = 32;
const LONG: Duration = Duration::from_secs(300);

fn gtin(i: u64) -> String {
    tally_sync::Gtin::from_body(400_000_000_000 + i)
        .unwrap()
        .to_string()
}

async fn json(c: &reqwest::Client, req: reqwest::RequestBuilder) -> (u16, Value) {
    let _ = c;
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let hub_dir = t.join("hub");
    run_ok(
        Command::new(bin("tally-hub"))
            .args(["init", "--data-dir"])
            .arg(&hub_dir),
    );
    run_ok(
        Command::new(bin("tally-hub"))
            .args(["enroll", "--data-dir"])
            .arg(&hub_dir)
            .args(["--store", "s1", "--out"])
            .arg(t.join("s1.pem")),
    );
    let mut cmd = Command::new(bin("tally-hub"));
    cmd.args(["run", "--data-dir"])
        .arg(&hub_dir)
        .args(["--listen", "127.0.0.1:0"]);
    let (hub_proc, hub_url) = Proc::start(
        "tally-hub",
        cmd,
        t.join("hub.log"),
        "tally-hub listening on",
        LONG,
    );
    let token = std::fs::read_to_string(hub_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(hub_dir.join("ca.pem")).unwrap()).unwrap();
    let hub = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let hub_addr: std::net::SocketAddr = hub_url.trim_start_matches("https://").parse().unwrap();
    let proxy = FaultProxy::start(hub_addr).await.unwrap();

    println!("reconcile benchmark: {ITEMS} catalog items, {SALES} sales made offline");
    let started = Instant::now();
    for chunk in (0..ITEMS).collect::<Vec<_>>().chunks(5_000) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|&i| json!({"gtin": gtin(i), "name": format!("item {i}"), "price_minor": 100 + i % 900}))
            .collect();
        let (s, b) = json(
            &hub,
            hub.post(format!("{hub_url}/v1/catalog"))
                .bearer_auth(&token)
                .json(&json!({"items": items})),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }

    let mut cmd = Command::new(bin("tally-agent"));
    cmd.args(["run", "--data-dir"])
        .arg(t.join("s1"))
        .args(["--store-id", "s1", "--listen", "127.0.0.1:0", "--hub"])
        .arg(format!("https://{}", proxy.addr()))
        .arg("--identity")
        .arg(t.join("s1.pem"))
        .args([
            "--sync-interval",
            "1",
            "--sync-timeout",
            "30",
            "--sync-backoff-cap",
            "1",
        ]);
    let (agent_proc, agent_url) = Proc::start(
        "tally-agent",
        cmd,
        t.join("agent.log"),
        "tally-agent listening on",
        LONG,
    );
    let agent = reqwest::Client::new();

    // Stock for every item, synced while online.
    for chunk in (0..ITEMS).collect::<Vec<_>>().chunks(500) {
        let lines: Vec<Value> = chunk
            .iter()
            .map(|&i| json!({"gtin": gtin(i), "qty": 5}))
            .collect();
        let (s, b) = json(
            &agent,
            agent
                .post(format!("{agent_url}/v1/receipts"))
                .json(&json!({"lines": lines})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
    let receipts = ITEMS / 500;
    procs::eventually("initial sync", LONG, || async {
        let (_, st) = json(&agent, agent.get(format!("{agent_url}/v1/status"))).await;
        let (_, cat) = json(
            &agent,
            agent.get(format!("{agent_url}/v1/catalog/{}", gtin(ITEMS - 1))),
        )
        .await;
        (st["outbox_events"] == 0 && st["online"] == true && cat["gtin"].is_string())
            .then_some(())
            .ok_or(st.to_string())
    })
    .await;
    println!(
        "setup (catalog, receipts, first sync): {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A week offline: 50,000 sales from 32 tills.
    proxy.set(Mode::Refuse);
    let offline = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (agent, url) = (agent.clone(), agent_url.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(c as u64);
            let (mut ok, mut refused) = (0u64, 0u64);
            for _ in 0..SALES / CLIENTS as u64 {
                let g = gtin(rng.gen_range(0..ITEMS));
                let body = json!({"lines": [{"gtin": g, "qty": 1}], "tenders": [{"method": "cash", "amount_minor": 1000}]});
                let r = agent.post(format!("{url}/v1/sales")).json(&body).send().await.unwrap();
                match r.status().as_u16() {
                    201 => ok += 1,
                    409 => refused += 1,
                    s => panic!("sale: {s}"),
                }
            }
            (ok, refused)
        }));
    }
    let (mut sold, mut refused) = (0, 0);
    for t in tasks {
        let (o, r) = t.await.unwrap();
        sold += o;
        refused += r;
    }
    println!(
        "offline: {sold} sales recorded ({refused} refused for lack of rights) in {:.1} s",
        offline.elapsed().as_secs_f64()
    );
    let (_, st) = json(&agent, agent.get(format!("{agent_url}/v1/status"))).await;
    println!("outbox before reconnecting: {}", st["outbox_events"]);

    // Back online: time and bytes until the hub has everything.
    let (up0, down0) = proxy.bytes();
    let back = Instant::now();
    proxy.set(Mode::Pass);
    procs::eventually("reconciliation", LONG, || async {
        let (_, st) = json(&agent, agent.get(format!("{agent_url}/v1/status"))).await;
        let (_, stores) = json(
            &hub,
            hub.get(format!("{hub_url}/v1/stores")).bearer_auth(&token),
        )
        .await;
        let received = stores["stores"][0]["events_received"].as_u64().unwrap_or(0);
        (st["outbox_events"] == 0 && received == receipts + sold)
            .then_some(())
            .ok_or(format!(
                "outbox {} hub events {received}",
                st["outbox_events"]
            ))
    })
    .await;
    let elapsed = back.elapsed();
    let (up1, down1) = proxy.bytes();
    // The hub agrees with the store on every item sold (sampled).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    for _ in 0..50 {
        let g = gtin(rng.gen_range(0..ITEMS));
        let (_, s) = json(&agent, agent.get(format!("{agent_url}/v1/stock/{g}"))).await;
        let (_, h) = json(
            &hub,
            hub.get(format!("{hub_url}/v1/stock/{g}"))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(h["stores"]["s1"]["on_hand"], s["on_hand"], "{g}");
    }
    let (up, down) = (up1 - up0, down1 - down0);

    agent_proc.terminate(LONG);
    hub_proc.terminate(LONG);
    let db = tally_store::Db::open(t.join("s1").join("agent.redb")).unwrap();
    let events = db.begin_read().unwrap().events().unwrap();
    let sale_bytes: usize = events
        .iter()
        .filter(|e| matches!(e.kind, tally_sync::EventKind::Sale { .. }))
        .map(|e| tally_sync::codec::to_bytes(e).unwrap().len())
        .sum();
    let ratio = (up + down) as f64 / sale_bytes as f64;
    println!(
        "reconcile time: {:.2} s (target <= 5 s)",
        elapsed.as_secs_f64()
    );
    println!(
        "bytes on the wire: {} up + {} down = {} ({:.2} MB)",
        up,
        down,
        up + down,
        (up + down) as f64 / 1e6
    );
    println!(
        "binary-encoded sale events: {sale_bytes} bytes ({:.1} per event); wire/events = {ratio:.2} (target <= 2)",
        sale_bytes as f64 / sold as f64
    );
}
