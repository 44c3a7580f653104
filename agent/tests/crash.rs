//! Crash safety of the real `tally-agent` binary: concurrent sales and
//! receipts, `kill -9` at random moments (during start-up too), restart,
//! over many cycles. After every restart:
//! - every acknowledged sale and receipt is there (`GET /v1/sales/{id}`
//!   for sales), exactly once;
//! - every request that got no answer is re-posted with the same id and
//!   is then recorded exactly once (201 if the crash lost it, 200 if it had
//!   committed before the kill);
//! - on hand = received − sold for every item, and the outbox holds one
//!   entry per recorded event.
//!
//! Half the cycles run the agent with `[commit] flush_after_events` of
//! 1–31, so that the kills also hit the committer's own counter flushes
//! (under the default bound of 65,536 a cycle never reaches one, and every
//! restart replays from the last flush).
//!
//! Lives in `agent/tests/` because only a package's own tests get
//! `CARGO_BIN_EXE_tally-agent`, i.e. a binary cargo guarantees is freshly
//! built from the code under test.
//!
//! Cycles: `TALLY_CRASH_CYCLES`, default 200 when `CI` is set (CI's gate),
//! 30 otherwise. Seed: `TALLY_CRASH_SEED` (printed at start). The seed
//! fixes the commands and the kill delays; the exact interleaving with the
//! agent's threads is up to the OS, so a replay reproduces the scenario,
//! not the very same instant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{agent_command, AgentProcess, GUM, MUG, PEN};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tally_agent_api::client::AgentClient as ApiClient;

const BIN: &str = env!("CARGO_BIN_EXE_tally-agent");
const ITEMS: [&str; 3] = [PEN, GUM, MUG];
const CLIENTS: usize = 8;

/// One request the test sent, with what it does to stock.
#[derive(Debug, Clone)]
struct Op {
    path: &'static str,
    id: String,
    body: Value,
    /// Item index and signed units (receipt +, sale −).
    item: usize,
    delta: i64,
}

#[derive(Debug, Default)]
struct Ledger {
    /// Recorded for sure (acknowledged, or confirmed by a re-post).
    recorded: HashMap<String, Op>,
    /// Sent without an answer: unknown until re-posted.
    unknown: Vec<Op>,
    /// Recorded but not yet looked up after a restart.
    unverified: Vec<String>,
}

fn new_op(rng: &mut StdRng, n: &mut u64) -> Op {
    *n += 1;
    let id = format!("0190a5e0-0000-7000-8000-{:012x}", *n);
    let item = rng.gen_range(0..ITEMS.len());
    if rng.gen_bool(0.15) {
        let qty = rng.gen_range(1..20);
        Op {
            path: "/v1/receipts",
            body: json!({"receipt_id": id, "lines": [{"gtin": ITEMS[item], "qty": qty}]}),
            id,
            item,
            delta: qty,
        }
    } else {
        let qty = rng.gen_range(1..4);
        Op {
            path: "/v1/sales",
            body: json!({"sale_id": id, "lines": [{"gtin": ITEMS[item], "qty": qty, "unit_price_minor": 99}]}),
            id,
            item,
            delta: -qty,
        }
    }
}

fn cycles() -> usize {
    match std::env::var("TALLY_CRASH_CYCLES") {
        Ok(s) => s.parse().expect("TALLY_CRASH_CYCLES must be a number"),
        Err(_) if std::env::var_os("CI").is_some() => 200,
        Err(_) => 30,
    }
}

fn seed() -> u64 {
    match std::env::var("TALLY_CRASH_SEED") {
        Ok(s) => s.parse().expect("TALLY_CRASH_SEED must be a number"),
        Err(_) => rand::random(),
    }
}

/// After a restart: re-posts what got no answer, looks up what was
/// recorded, and checks stock and outbox against the ledger.
async fn verify(client: &ApiClient, ledger: &mut Ledger, cycle: usize) {
    for op in std::mem::take(&mut ledger.unknown) {
        let (s, v) = client.post(op.path, &op.body).await.unwrap();
        match s.as_u16() {
            201 | 200 => {
                ledger.unverified.push(op.id.clone());
                assert!(
                    ledger.recorded.insert(op.id.clone(), op).is_none(),
                    "cycle {cycle}: id recorded twice"
                );
            }
            code => panic!("cycle {cycle}: re-post of {} answered {code} {v}", op.id),
        }
    }
    for id in std::mem::take(&mut ledger.unverified) {
        let op = &ledger.recorded[&id];
        if op.path == "/v1/sales" {
            let (s, v) = client.get(&format!("/v1/sales/{id}")).await.unwrap();
            assert_eq!(
                s.as_u16(),
                200,
                "cycle {cycle}: acknowledged sale {id} lost: {v}"
            );
            assert_eq!(v["lines"][0]["qty"].as_i64(), Some(-op.delta), "{v}");
        } else {
            // Receipts have no GET; re-posting the same id must be a retry.
            let (s, v) = client.post(op.path, &op.body).await.unwrap();
            assert_eq!(
                s.as_u16(),
                200,
                "cycle {cycle}: acknowledged receipt {id} lost: {v}"
            );
        }
    }
    let mut want: BTreeMap<usize, i64> = BTreeMap::new();
    for op in ledger.recorded.values() {
        *want.entry(op.item).or_default() += op.delta;
    }
    for (i, gtin) in ITEMS.iter().enumerate() {
        let (_, v) = client.get(&format!("/v1/stock/{gtin}")).await.unwrap();
        assert_eq!(
            v["on_hand"].as_i64(),
            Some(want.get(&i).copied().unwrap_or(0)),
            "cycle {cycle}: on hand of {gtin} != received - sold"
        );
    }
    let (_, status) = client.get("/v1/status").await.unwrap();
    assert_eq!(
        status["outbox_events"].as_u64(),
        Some(ledger.recorded.len() as u64),
        "cycle {cycle}: outbox must hold each recorded event once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sales_survive_kill_9() {
    let seed = seed();
    let cycles = cycles();
    eprintln!("crash test: seed {seed}, {cycles} cycles (replay: TALLY_CRASH_SEED={seed} TALLY_CRASH_CYCLES={cycles})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("agent.toml");
    let mut small_bound_cycles = 0;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut n = 0u64;
    let started = Instant::now();
    let mut kills_during_startup = 0;
    let mut acked_total = 0usize;

    // Opening stock, acknowledged before the first kill.
    {
        let agent = AgentProcess::spawn(agent_command(BIN, dir.path(), "s1")).await;
        let client = ApiClient::new(&agent.url, std::time::Duration::from_secs(30)).unwrap();
        for (item, gtin) in ITEMS.iter().enumerate() {
            n += 1;
            let id = format!("0190a5e0-0000-7000-8000-{n:012x}");
            let op = Op {
                path: "/v1/receipts",
                body: json!({"receipt_id": id, "lines": [{"gtin": gtin, "qty": 1_000_000}]}),
                id: id.clone(),
                item,
                delta: 1_000_000,
            };
            let (s, _) = client.post(op.path, &op.body).await.unwrap();
            assert_eq!(s.as_u16(), 201);
            ledger.lock().unwrap().recorded.insert(id, op);
        }
    }

    for cycle in 0..cycles {
        // Sometimes kill while the agent is still starting (opening and
        // recovering the database).
        if rng.gen_bool(0.1) {
            let mut child = agent_command(BIN, dir.path(), "s1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            tokio::time::sleep(Duration::from_micros(rng.gen_range(0..20_000))).await;
            child.kill().unwrap();
            child.wait().unwrap();
            kills_during_startup += 1;
        }
        // Half the cycles flush the held-back counters every few events,
        // so kills also land in and around those flushes' commits.
        let mut cmd = agent_command(BIN, dir.path(), "s1");
        if rng.gen_bool(0.5) {
            let every = rng.gen_range(1..32u32);
            std::fs::write(&config, format!("[commit]\nflush_after_events = {every}\n")).unwrap();
            cmd.arg("--config").arg(&config);
            small_bound_cycles += 1;
        }
        let mut agent = AgentProcess::spawn(cmd).await;
        let client = ApiClient::new(&agent.url, std::time::Duration::from_secs(30)).unwrap();
        {
            let mut l = std::mem::take(&mut *ledger.lock().unwrap());
            verify(&client, &mut l, cycle).await;
            *ledger.lock().unwrap() = l;
        }

        // Load: CLIENTS tasks posting back to back until the kill.
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let ops: Vec<Op> = (0..400).map(|_| new_op(&mut rng, &mut n)).collect();
            let (client, stop, ledger) = (client.clone(), stop.clone(), ledger.clone());
            tasks.push(tokio::spawn(async move {
                let mut acked = 0usize;
                for op in ops {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match client.post(op.path, &op.body).await {
                        Ok((s, v)) => {
                            assert_eq!(s.as_u16(), 201, "{v}");
                            let mut l = ledger.lock().unwrap();
                            l.unverified.push(op.id.clone());
                            l.recorded.insert(op.id.clone(), op);
                            acked += 1;
                        }
                        Err(_) => {
                            ledger.lock().unwrap().unknown.push(op);
                            break;
                        }
                    }
                }
                acked
            }));
        }
        tokio::time::sleep(Duration::from_micros(rng.gen_range(0..40_000))).await;
        agent.kill();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            acked_total += t.await.unwrap();
        }
    }

    // Final restart: everything acknowledged, ever, is there exactly once.
    let agent = AgentProcess::spawn(agent_command(BIN, dir.path(), "s1")).await;
    let client = ApiClient::new(&agent.url, std::time::Duration::from_secs(30)).unwrap();
    let mut l = std::mem::take(&mut *ledger.lock().unwrap());
    verify(&client, &mut l, cycles).await;
    l.unverified = l.recorded.keys().cloned().collect();
    verify(&client, &mut l, cycles).await;
    drop(agent);

    // Exactly once, from the journal itself: the stopped agent's database
    // holds one event per recorded id and nothing else.
    let db = tally_agent::store::AgentDb::open(dir.path(), None).unwrap();
    let events = db.events().unwrap();
    assert_eq!(
        events.len(),
        l.recorded.len(),
        "journal has unexpected events"
    );
    for e in &events {
        assert!(
            l.recorded.contains_key(&e.id.to_string()),
            "unknown event {}",
            e.id
        );
    }
    eprintln!(
        "crash test: {cycles} kill -9 cycles ({kills_during_startup} during start-up, \
         {small_bound_cycles} flushing every 1-31 events), \
         {acked_total} acknowledged under load, {} events recorded, {:.1}s",
        l.recorded.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(acked_total > cycles, "too little load to mean anything");
}

#[test]
fn second_process_on_the_same_data_dir_fails_clearly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _first = rt.block_on(AgentProcess::spawn(agent_command(BIN, dir.path(), "s1")));
    let out = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already open in another process"), "{err}");
}
