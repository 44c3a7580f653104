//! Two real `tally-hub` processes over one PostgreSQL database (a
//! throwaway cluster), with real `tally-agent` processes, real mutual TLS
//! and loopback only: the chain as a load-balanced HQ runs it.
//!
//! - Stores on different hub processes are one chain: either process
//!   shows both; an online order taken at one process gets a store's
//!   unsold units at once though the store's live link is at the other;
//!   a till and an online order racing across processes for the last
//!   unit: exactly one wins, every round.
//! - A hub process killed with `kill -9` while a store sells, the load
//!   balancer moving the store to the other process: every sale the till
//!   took reaches the hub once, and a restarted process reads the same
//!   chain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::chain::{
    hub_sees, init_hub, start_agent, start_hub_with, store_sees, Api, HubFiles, LONG,
};
use support::pg;
use support::procs::{eventually, Proc};
use tally::demo::proxy::FaultProxy;

const A: &str = "04006381333931";

/// A hub process over the database at `url`.
fn hub(files: &HubFiles, tmp: &std::path::Path, name: &str, url: &str) -> (Proc, String) {
    start_hub_with(
        files,
        "127.0.0.1:0",
        tmp.join(format!("{name}.log")),
        &["--database", url],
    )
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// Waits until `hub` sees every store in `stores` live (wherever its link
/// is).
async fn live(hub: &Api, stores: &[&str]) {
    eventually("the stores live", LONG, || async {
        let (_, listed) = hub.get("/v1/stores").await?;
        let all = stores.iter().all(|s| {
            listed["stores"]
                .as_array()
                .and_then(|v| v.iter().find(|r| r["store"] == *s))
                .is_some_and(|r| r["live"] == json!(true))
        });
        if all {
            Ok(())
        } else {
            Err(listed.to_string())
        }
    })
    .await;
}

/// Waits until `hub`'s audit counts `events` events, and answers it.
async fn audit_with(hub: &Api, events: u64) -> Value {
    eventually("every event at the hub", LONG, || async {
        let (_, audit) = hub.get("/v1/audit").await?;
        if audit["events"].as_u64() == Some(events) {
            Ok(audit)
        } else {
            Err(audit.to_string())
        }
    })
    .await
}

fn sale() -> Value {
    json!({"lines": [{"gtin": A, "qty": 1, "unit_price_minor": 100}]})
}

fn order(store: &str, qty: u64) -> Value {
    json!({"store": store, "lines": [{"gtin": A, "qty": qty}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_on_two_hub_processes_are_one_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let url = pg::database("e2e_chain");
    let files = init_hub(tmp.path(), &["s1", "s2"]);
    let (_hub_a, url_a) = hub(&files, tmp.path(), "hub-a", &url);
    let (_hub_b, url_b) = hub(&files, tmp.path(), "hub-b", &url);
    let (_s1, agent_url1) = start_agent(tmp.path(), "s1", &url_a);
    let (_s2, agent_url2) = start_agent(tmp.path(), "s2", &url_b);
    let (hub_a, hub_b) = (Api::hub(&url_a, &files), Api::hub(&url_b, &files));
    let (s1, s2) = (Api::agent(&agent_url1), Api::agent(&agent_url2));
    for agent in [&s1, &s2] {
        let (status, body) = agent
            .post("/v1/receipts", &json!({"lines": [{"gtin": A, "qty": 10}]}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // Either process shows both stores, live, and their stock.
    for hub in [&hub_a, &hub_b] {
        live(hub, &["s1", "s2"]).await;
        hub_sees(hub, "s1", A, 10).await;
        hub_sees(hub, "s2", A, 10).await;
    }

    // An online order at A for s2, whose link is at B, beyond the hub's
    // reserve there: s2 gives its unsold units over its link at B, and
    // the order at A is filled within 2 s.
    let started = Instant::now();
    let (status, body) = hub_a.post("/v1/orders", &order("s2", 8)).await;
    let took = started.elapsed();
    assert_eq!(status, 201, "{body}");
    assert!(took < Duration::from_secs(2), "the order took {took:?}");
    store_sees(&s2, A, 2).await;
    for n in 1..=2 {
        let (status, body) = s2.post("/v1/sales", &sale()).await;
        assert_eq!(status, 201, "sale {n}: {body}");
    }
    let (status, body) = s2.post("/v1/sales", &sale()).await;
    assert_eq!((status, body["reason"].as_str()), (409, Some("no_stock")));

    // s1 (at A) sells down to its last unit; then its till and an online
    // order at B race for it: exactly one wins, every round.
    for _ in 0..9 {
        let (status, body) = s1.post("/v1/sales", &sale()).await;
        assert_eq!(status, 201, "{body}");
    }
    let (mut till_wins, mut online_wins) = (0u64, 0u64);
    for round in 1..=6 {
        if round > 1 {
            let (status, _) = s1
                .post("/v1/receipts", &json!({"lines": [{"gtin": A, "qty": 1}]}))
                .await;
            assert_eq!(status, 201);
        }
        hub_sees(&hub_b, "s1", A, 1).await;
        let (sale, order) = (sale(), order("s1", 1));
        let (till, online) = tokio::join!(
            s1.post("/v1/sales", &sale),
            hub_b.post("/v1/orders", &order)
        );
        let won = [till.0 == 201, online.0 == 201];
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: till {till:?}, online {online:?}"
        );
        if won[0] {
            till_wins += 1;
        } else {
            online_wins += 1;
        }
        store_sees(&s1, A, 0).await;
        hub_sees(&hub_b, "s1", A, 0).await;
    }
    println!("till won {till_wins}, online won {online_wins} of 6 rounds");

    // From either process, the same chain from its events: 2 + 5
    // receipts, 2 + 9 + till_wins sales, 1 + online_wins orders; nothing
    // sold twice, every counter agrees with its events, per store.
    let events = 7 + 11 + till_wins + 1 + online_wins;
    for hub in [&hub_a, &hub_b] {
        let audit = audit_with(hub, events).await;
        assert_eq!(
            (
                audit["double_sold"].as_u64(),
                audit["counters_disagreeing"].as_u64()
            ),
            (Some(0), Some(0)),
            "{audit}"
        );
        for (store, expected) in [("s1", (15, 9 + till_wins, online_wins)), ("s2", (10, 2, 8))] {
            let row = audit["items"]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["store"] == store))
                .unwrap_or_else(|| panic!("no row for {store}: {audit}"));
            assert_eq!(
                (
                    row["units_in"].as_u64(),
                    row["sold"].as_u64(),
                    row["ordered"].as_u64(),
                    row["on_hand"].as_u64()
                ),
                (
                    Some(expected.0),
                    Some(expected.1),
                    Some(expected.2),
                    Some(0)
                ),
                "{store}: {audit}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_process_killed_mid_day_loses_no_sale() {
    let tmp = tempfile::tempdir().unwrap();
    let url = pg::database("e2e_failover");
    let files = init_hub(tmp.path(), &["s1"]);
    let (hub_a_proc, url_a) = hub(&files, tmp.path(), "hub-a", &url);
    let mut hub_a_proc = Some(hub_a_proc);
    let (_hub_b_proc, url_b) = hub(&files, tmp.path(), "hub-b", &url);
    // The store reaches the hubs through a TCP load balancer, at A first.
    let balancer = FaultProxy::start(addr_of(&url_a)).await.unwrap();
    let (_s1, agent_url) = start_agent(tmp.path(), "s1", &format!("https://{}", balancer.addr()));
    let (s1, hub_b) = (Api::agent(&agent_url), Api::hub(&url_b, &files));
    let (status, body) = s1
        .post("/v1/receipts", &json!({"lines": [{"gtin": A, "qty": 30}]}))
        .await;
    assert_eq!(status, 201, "{body}");
    hub_sees(&hub_b, "s1", A, 30).await;

    // Sales go on while A dies (SIGKILL) and the balancer moves the store
    // to B: the till takes every sale (it sells on its own rights), and
    // each reaches the hub once.
    let mut sold = 0u64;
    for n in 0..20 {
        if n == 10 {
            drop(hub_a_proc.take());
            balancer.set_upstream(addr_of(&url_b));
        }
        let (status, body) = s1.post("/v1/sales", &sale()).await;
        assert_eq!(status, 201, "sale {n}: {body}");
        sold += 1;
    }
    let audit = audit_with(&hub_b, 1 + sold).await;
    assert_eq!(
        (
            audit["double_sold"].as_u64(),
            audit["counters_disagreeing"].as_u64(),
            audit["items"][0]["sold"].as_u64(),
            audit["items"][0]["on_hand"].as_u64()
        ),
        (Some(0), Some(0), Some(sold), Some(30 - sold)),
        "{audit}"
    );
    eventually("the store caught up", LONG, || async {
        let (_, st) = s1.get("/v1/status").await?;
        if st["outbox_events"].as_u64() == Some(0) {
            Ok(())
        } else {
            Err(st.to_string())
        }
    })
    .await;

    // A process started again reads the same chain from the database.
    let (_hub_a2, url_a2) = hub(&files, tmp.path(), "hub-a2", &url);
    let again = audit_with(&Api::hub(&url_a2, &files), 1 + sold).await;
    assert_eq!(again["items"], audit["items"], "{again}");
}
