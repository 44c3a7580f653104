//! The live link end to end, with the real binaries on loopback and real
//! mutual TLS: the agent keeps its link open and the hub sees the store
//! live; an online order beyond the hub's reserve takes the store's unsold
//! units at once (the hub asks over the link, the store releases them);
//! and a till and an online order racing for the last unit: exactly one
//! wins, every round.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::chain::{
    hub_sees, init_hub, start_agent, start_agent_with, start_hub, store_sees, Api, LONG,
};
use support::procs::{eventually, Proc};

const A: &str = "04006381333931";

/// A hub and store s1's agent, running, the store live.
async fn chain(tmp: &std::path::Path) -> ([Proc; 2], Api, Api) {
    let files = init_hub(tmp, &["s1"]);
    let (hub_proc, hub_url) = start_hub(&files, "127.0.0.1:0", tmp.join("hub.log"));
    let (agent_proc, agent_url) = start_agent(tmp, "s1", &hub_url);
    let agent = Api::agent(&agent_url);
    let hub = Api::hub(&hub_url, &files);
    live(&agent, &hub).await;
    ([hub_proc, agent_proc], agent, hub)
}

/// Waits until the agent and the hub both see the store live.
async fn live(agent: &Api, hub: &Api) {
    eventually("the store live at both ends", LONG, || async {
        let (_, st) = agent.get("/v1/status").await?;
        let (_, stores) = hub.get("/v1/stores").await?;
        let at_hub = stores["stores"]
            .as_array()
            .and_then(|v| v.iter().find(|r| r["store"] == "s1"))
            .map(|r| r["live"] == json!(true));
        if st["live"] == json!(true) && at_hub == Some(true) {
            Ok(())
        } else {
            Err(format!("agent {st}, hub {stores}"))
        }
    })
    .await;
}

/// Changes the catalog's price of A to `price`: the hub tells every live
/// store to sync.
async fn sync_now(hub: &Api, price: u64) {
    let item = json!({"items": [{"gtin": A, "name": "pencil", "price_minor": price}]});
    let (status, body) = hub.post("/v1/catalog", &item).await;
    assert!((200..300).contains(&status), "{status} {body}");
}

fn sale() -> Value {
    json!({"lines": [{"gtin": A, "qty": 1, "unit_price_minor": 100}]})
}

fn order(qty: u64) -> Value {
    json!({"store": "s1", "lines": [{"gtin": A, "qty": qty}]})
}

#[tokio::test]
async fn an_online_order_takes_a_live_stores_unsold_units_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (_procs, agent, hub) = chain(tmp.path()).await;

    let (status, body) = agent
        .post("/v1/receipts", &json!({"lines": [{"gtin": A, "qty": 10}]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let stock = hub_sees(&hub, "s1", A, 10).await;
    let reserve = stock["stores"]["s1"]["hub_rights"].as_u64().unwrap();
    assert!(reserve < 6, "{stock}");

    // More than the hub holds: it asks the live store, which gives its
    // unsold rights; the order is filled within 2 s.
    let started = Instant::now();
    let (status, body) = hub.post("/v1/orders", &order(6)).await;
    let took = started.elapsed();
    assert_eq!(status, 201, "{body}");
    assert!(took < Duration::from_secs(2), "the order took {took:?}");

    // The store sells the 4 left, then nothing more is there.
    store_sees(&agent, A, 4).await;
    for n in 1..=4 {
        let (status, body) = agent.post("/v1/sales", &sale()).await;
        assert_eq!(status, 201, "sale {n}: {body}");
    }
    let (status, body) = agent.post("/v1/sales", &sale()).await;
    assert_eq!((status, body["reason"].as_str()), (409, Some("no_stock")));
    hub_sees(&hub, "s1", A, 0).await;
    // The store is asked once more (a receipt not synced would not be in
    // the hub's books) and answers that it has nothing: no_stock.
    let (status, body) = hub.post("/v1/orders", &order(1)).await;
    assert_eq!((status, body["reason"].as_str()), (409, Some("no_stock")));

    let (_, metrics) = agent.get_text("/metrics").await.unwrap();
    assert!(metrics.contains("tally_agent_link_live 1"), "{metrics}");
    assert!(
        metrics.contains("tally_agent_link_notices_total{kind=\"rights_wanted\"} 2"),
        "{metrics}"
    );
    let (_, metrics) = hub.get_text("/metrics").await.unwrap();
    assert!(metrics.contains("tally_hub_stores_live 1"), "{metrics}");
    assert!(
        metrics.contains("tally_hub_release_requests_total{result=\"reported\"} 2"),
        "{metrics}"
    );
}

/// An order short of two items at the store: the hub asks for both at
/// once, the agent releases both (each on its own task), and the order is
/// filled with both reports.
#[tokio::test]
async fn an_online_order_short_of_two_items_takes_both_at_once() {
    const B: &str = "00036000291452";
    let tmp = tempfile::tempdir().unwrap();
    let (_procs, agent, hub) = chain(tmp.path()).await;
    let receipt = json!({"lines": [{"gtin": A, "qty": 10}, {"gtin": B, "qty": 10}]});
    let (status, body) = agent.post("/v1/receipts", &receipt).await;
    assert_eq!(status, 201, "{body}");
    let mut lines = Vec::new();
    for g in [A, B] {
        let stock = hub_sees(&hub, "s1", g, 10).await;
        let reserve = stock["stores"]["s1"]["hub_rights"].as_u64().unwrap();
        assert!(reserve < 6, "{stock}");
        lines.push((g, reserve + 3));
    }
    let lines: Vec<Value> = lines
        .iter()
        .map(|(g, qty)| json!({"gtin": g, "qty": qty}))
        .collect();
    let (status, body) = hub
        .post("/v1/orders", &json!({"store": "s1", "lines": lines}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, metrics) = hub.get_text("/metrics").await.unwrap();
    assert!(
        metrics.contains("tally_hub_release_requests_total{result=\"reported\"} 2"),
        "one request per item: {metrics}"
    );
    // The store hears of the order at its next sync; both shelves agree.
    for line in &lines {
        let (g, qty) = (
            line["gtin"].as_str().unwrap(),
            line["qty"].as_u64().unwrap(),
        );
        hub_sees(&hub, "s1", g, 10 - qty).await;
        store_sees(&agent, g, 10 - qty).await;
    }
}

/// Once the hub's catalog has reached a store, its prices are HQ's: a
/// till cannot set an item's price at the agent (and then sell at it
/// with no override).
#[tokio::test]
async fn a_store_following_the_hubs_catalog_refuses_local_prices() {
    let tmp = tempfile::tempdir().unwrap();
    let (_procs, agent, hub) = chain(tmp.path()).await;
    sync_now(&hub, 250).await;
    eventually("the hub's price at the store", LONG, || async {
        let (_, item) = agent.get(&format!("/v1/catalog/{A}")).await?;
        if item["price_minor"] == json!(250) {
            Ok(())
        } else {
            Err(item.to_string())
        }
    })
    .await;
    let cheap = json!({"items": [{"gtin": A, "name": "pencil", "price_minor": 1}]});
    let (status, body) = agent.post("/v1/catalog", &cheap).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let (_, item) = agent.get(&format!("/v1/catalog/{A}")).await.unwrap();
    assert_eq!(item["price_minor"], json!(250), "{item}");
    // Nor straight into the stopped agent's database.
    let [hub_proc, agent_proc] = _procs;
    agent_proc.terminate(LONG);
    let csv = tmp.path().join("prices.csv");
    std::fs::write(&csv, format!("{A},pencil,1\n")).unwrap();
    let out = std::process::Command::new(support::procs::bin("tally-agent"))
        .args(["catalog", "import"])
        .arg(&csv)
        .arg("--data-dir")
        .arg(tmp.path().join("s1"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("follows the hub's catalog"),
        "{err}"
    );
    drop(hub_proc);
}

/// Units received since the store's last sync are on its shelf but not
/// in the hub's books: the hub would refuse rights given out of them. The
/// store syncs first, then gives them, within the order's wait. The agent
/// here syncs only when told to (a catalog change), so the window stays
/// open until the order comes.
#[tokio::test]
async fn an_online_order_gets_units_received_since_the_stores_last_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let files = init_hub(tmp.path(), &["s1"]);
    let (_hub_proc, hub_url) = start_hub(&files, "127.0.0.1:0", tmp.path().join("hub.log"));
    let config = tmp.path().join("s1.toml");
    std::fs::write(&config, "[sync]\ndebounce_ms = 600000\n").unwrap();
    let config = config.to_str().unwrap();
    let sync_flags = ["--sync-interval", "3600", "--config", config];
    let (_agent_proc, agent_url) = start_agent_with(tmp.path(), "s1", &hub_url, &sync_flags);
    let agent = Api::agent(&agent_url);
    let hub = Api::hub(&hub_url, &files);
    live(&agent, &hub).await;

    let (status, body) = agent
        .post("/v1/receipts", &json!({"lines": [{"gtin": A, "qty": 10}]}))
        .await;
    assert_eq!(status, 201, "{body}");
    sync_now(&hub, 100).await;
    let stock = hub_sees(&hub, "s1", A, 10).await;
    let reserve = stock["stores"]["s1"]["hub_rights"].as_u64().unwrap();
    assert!(reserve <= 8, "{stock}");

    // Synced: sales that leave the store 2 rights of its own.
    for n in 1..=8 - reserve {
        let (status, body) = agent.post("/v1/sales", &sale()).await;
        assert_eq!(status, 201, "sale {n}: {body}");
    }
    sync_now(&hub, 101).await;
    hub_sees(&hub, "s1", A, 2 + reserve).await;

    // Not synced: a receipt of 5. The store holds 7 rights; 5 of them
    // the hub cannot explain yet.
    let (status, body) = agent
        .post("/v1/receipts", &json!({"lines": [{"gtin": A, "qty": 5}]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, stock) = hub.get(&format!("/v1/stock/{A}")).await.unwrap();
    assert_eq!(
        stock["stores"]["s1"]["on_hand"],
        json!(2 + reserve),
        "{stock}"
    );

    // An order needing 4 of the store's rights: 2 it can give at once,
    // 2 only once the receipt is synced. Before, the store gave all 4 at
    // once, the hub refused the report as overdrawn, and the order was
    // refused with the units on the shelf.
    let started = Instant::now();
    let (status, body) = hub.post("/v1/orders", &order(reserve + 4)).await;
    let took = started.elapsed();
    assert_eq!(status, 201, "{body}");
    assert!(took < Duration::from_secs(2), "the order took {took:?}");
    // The hub has the receipt (that sync was the release's); the store
    // learns of the order at its next sync.
    hub_sees(&hub, "s1", A, 3).await;
    sync_now(&hub, 102).await;
    store_sees(&agent, A, 3).await;
}

#[tokio::test]
async fn a_till_and_an_online_order_race_for_the_last_unit_and_exactly_one_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let (_procs, agent, hub) = chain(tmp.path()).await;

    let (mut till_wins, mut online_wins) = (0, 0);
    for round in 1..=12 {
        let (status, _) = agent
            .post("/v1/receipts", &json!({"lines": [{"gtin": A, "qty": 1}]}))
            .await;
        assert_eq!(status, 201);
        hub_sees(&hub, "s1", A, 1).await;
        let (sale, order) = (sale(), order(1));
        let (till, online) = tokio::join!(
            agent.post("/v1/sales", &sale),
            hub.post("/v1/orders", &order)
        );
        let won = [till.0 == 201, online.0 == 201];
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: till {till:?}, online {online:?}"
        );
        for (status, body) in [&till, &online] {
            // The loser is refused: no stock left, or (a till that lost to
            // an order still being recorded) the unit held for it.
            assert!(
                *status == 201
                    || (*status == 409
                        && (body["reason"] == "no_stock" || body["reason"] == "held_elsewhere")),
                "round {round}: {status} {body}"
            );
        }
        if won[0] {
            till_wins += 1;
        } else {
            online_wins += 1;
        }
        // Both sides agree the unit is gone before the next round.
        store_sees(&agent, A, 0).await;
        hub_sees(&hub, "s1", A, 0).await;
    }
    println!("till won {till_wins}, online won {online_wins} of 12 rounds");
    // The audit, from events alone: 12 units in, 12 out, none twice.
    // (The counters can reach the hub before the sale events, with a
    // request for rights: wait for the events too.)
    let audit = eventually("every event at the hub", LONG, || async {
        let (_, audit) = hub.get("/v1/audit").await?;
        if audit["events"].as_u64() == Some(24) {
            Ok(audit)
        } else {
            Err(audit.to_string())
        }
    })
    .await;
    assert_eq!(
        (
            audit["double_sold"].as_u64(),
            audit["counters_disagreeing"].as_u64()
        ),
        (Some(0), Some(0)),
        "{audit}"
    );
    let row = &audit["items"][0];
    assert_eq!(
        (
            row["units_in"].as_u64(),
            row["sold"].as_u64(),
            row["ordered"].as_u64()
        ),
        (Some(12), Some(till_wins), Some(online_wins)),
        "{audit}"
    );
}

#[tokio::test]
async fn tills_short_of_one_item_at_once_share_their_requests_for_rights() {
    let tmp = tempfile::tempdir().unwrap();
    let (_procs, agent, hub) = chain(tmp.path()).await;
    // Online demand for 100 units, refused (nothing there yet): with the
    // default policy the hub's target is ceil(100 × ln 2 / 7) = 10 units,
    // so it takes every right of the 10 the store then receives.
    let (status, _) = hub.post("/v1/orders", &order(100)).await;
    assert_eq!(status, 409);
    let (status, _) = agent
        .post("/v1/receipts", &json!({"lines": [{"gtin": A, "qty": 10}]}))
        .await;
    assert_eq!(status, 201);
    // The reserve held at the hub, not only given at the store: a store
    // applying its sync's reserve target moves rights from a receipt the
    // hub has not seen yet (it arrives with the next sync), and until
    // then the hub cannot grant them back.
    eventually("the hub's reserve", LONG, || async {
        let (_, here) = agent.get(&format!("/v1/stock/{A}")).await?;
        let (_, at_hub) = hub.get(&format!("/v1/stock/{A}")).await?;
        if here["others_rights"].as_u64() == Some(10)
            && at_hub["stores"]["s1"]["hub_rights"].as_u64() == Some(10)
        {
            Ok(())
        } else {
            Err(format!("store {here}, hub {at_hub}"))
        }
    })
    .await;

    // Ten tills sell one unit each at the same moment: every sale needs
    // the hub's rights; they share requests instead of asking ten times.
    let started = Instant::now();
    let sales: Vec<_> = (0..10)
        .map(|_| {
            let agent = agent.clone();
            tokio::spawn(async move { agent.post("/v1/sales", &sale()).await })
        })
        .collect();
    let mut answers = Vec::new();
    for s in sales {
        answers.push(s.await.unwrap());
    }
    let (_, here) = agent.get(&format!("/v1/stock/{A}")).await.unwrap();
    let (_, audit) = hub.get("/v1/audit").await.unwrap();
    assert!(
        answers.iter().all(|(status, _)| *status == 201),
        "{:?}, stock {here} audit {audit}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let (_, metrics) = hub.get_text("/metrics").await.unwrap();
    let requests: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("tally_hub_rights_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    println!("10 sales short of rights took {requests} requests");
    assert!(
        (1..10).contains(&requests),
        "{requests} requests: {metrics}"
    );
}
