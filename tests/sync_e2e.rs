//! End to end, with the real binaries on loopback and real TLS: a hub and
//! three stores; receipts; a partition (one store's traffic black-holed by
//! a fault-injecting proxy) and the hub process stopped and restarted;
//! the cut-off store's agent killed with SIGKILL and restarted;
//! sales at every store and online orders at the hub until refusals;
//! healing; then every replica converges, hub totals equal the sum of the
//! stores' views, Σ sold + Σ ordered ≤ Σ received per item, and nothing
//! acknowledged is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use support::chain::{init_hub, start_agent, start_hub, Api, LONG};
use support::procs::eventually;
use tally::demo::proxy::{FaultProxy, Mode};

const A: &str = "04006381333931";
const B: &str = "09780201379624";

/// What each store was acknowledged, counted by the test itself.
#[derive(Debug, Default)]
struct Ledger {
    received: BTreeMap<(String, String), u64>,
    sold: BTreeMap<(String, String), u64>,
    ordered: BTreeMap<(String, String), u64>,
    events: BTreeMap<String, Vec<String>>,
    sales: BTreeMap<String, Vec<String>>,
}

async fn receive(api: &Api, store: &str, gtin: &str, qty: u64, ledger: &mut Ledger) {
    let (status, body) = api
        .post(
            "/v1/receipts",
            &json!({"lines": [{"gtin": gtin, "qty": qty}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    *ledger
        .received
        .entry((store.into(), gtin.into()))
        .or_default() += qty;
    ledger
        .events
        .entry(store.into())
        .or_default()
        .push(body["receipt_id"].as_str().unwrap().into());
}

/// Sells one unit at a time until the store refuses; returns units sold.
async fn sell_until_refused(api: &Api, store: &str, gtin: &str, ledger: &mut Ledger) -> u64 {
    let mut n = 0;
    loop {
        let (status, body) = api
            .post(
                "/v1/sales",
                &json!({"lines": [{"gtin": gtin, "qty": 1, "unit_price_minor": 250}],
                        "tenders": [{"method": "cash", "amount_minor": 250}]}),
            )
            .await;
        match status {
            201 => {
                n += 1;
                *ledger.sold.entry((store.into(), gtin.into())).or_default() += 1;
                let id: String = body["sale_id"].as_str().unwrap().into();
                ledger
                    .events
                    .entry(store.into())
                    .or_default()
                    .push(id.clone());
                ledger.sales.entry(store.into()).or_default().push(id);
            }
            409 => {
                assert_eq!(body["error"], "insufficient_stock", "{body}");
                return n;
            }
            other => panic!("sale at {store}: {other} {body}"),
        }
        assert!(n < 1000, "a store sold more than it ever received");
    }
}

/// Orders one unit at a time at the hub until it refuses; returns units.
async fn order_until_refused(hub: &Api, store: &str, gtin: &str, ledger: &mut Ledger) -> u64 {
    let mut n = 0;
    loop {
        let (status, body) = hub
            .post(
                "/v1/orders",
                &json!({"store": store, "lines": [{"gtin": gtin, "qty": 1}]}),
            )
            .await;
        match status {
            201 => {
                n += 1;
                *ledger
                    .ordered
                    .entry((store.into(), gtin.into()))
                    .or_default() += 1;
            }
            409 => return n,
            other => panic!("order for {store}: {other} {body}"),
        }
        assert!(n < 1000);
    }
}

/// Both sides agree on every item at every store, and outboxes are empty.
async fn converged(agents: &[(String, Api)], hub: &Api) -> Result<Value, String> {
    let mut views = json!({});
    for gtin in [A, B] {
        let (_, h) = hub.get(&format!("/v1/stock/{gtin}")).await?;
        for (store, api) in agents {
            let (_, status) = api.get("/v1/status").await?;
            if status["outbox_events"] != 0 || status["online"] != true {
                return Err(format!("{store} not drained/online: {status}"));
            }
            let (Some(at), Some(ms)) = (
                status["last_sync_at"].as_str(),
                status["last_sync_ms"].as_u64(),
            ) else {
                return Err(format!("{store} online without a last sync time: {status}"));
            };
            if at != tally_sync::timestamp::rfc3339(ms) || !at.ends_with('Z') {
                return Err(format!(
                    "{store}: last_sync_at {at} is not RFC 3339 of {ms}"
                ));
            }
            let (_, s) = api.get(&format!("/v1/stock/{gtin}")).await?;
            let at_hub = &h["stores"][store];
            let same = at_hub["on_hand"] == s["on_hand"]
                && at_hub["store_rights"] == s["rights"]
                && at_hub["hub_rights"] == s["others_rights"];
            if !same {
                return Err(format!("{store} {gtin}: store {s} vs hub {at_hub}"));
            }
        }
        views[gtin] = h;
    }
    Ok(views)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_and_hub_restart_converge_without_double_selling() {
    let tmp = tempfile::tempdir().unwrap();
    let stores = ["s1", "s2", "s3"];
    let files = init_hub(tmp.path(), &stores);
    let (hub_proc, hub_url) = start_hub(&files, "127.0.0.1:0", tmp.path().join("hub.log"));
    let hub_addr: std::net::SocketAddr = hub_url.trim_start_matches("https://").parse().unwrap();
    let hub = Api::hub(&hub_url, &files);

    let mut proxies = Vec::new();
    let mut agents = Vec::new();
    let mut procs = Vec::new();
    for s in stores {
        let proxy = FaultProxy::start(hub_addr).await.unwrap();
        let (p, url) = start_agent(tmp.path(), s, &format!("https://{}", proxy.addr()));
        proxies.push(proxy);
        procs.push(p);
        agents.push((s.to_string(), Api::agent(&url)));
    }

    // Online demand everywhere (refused: nothing received yet): 15 units
    // of A (reserve target 2 under the default 24 h horizon and 7-day
    // half-life) and 5 of B (target 1).
    for s in stores {
        for (gtin, qty) in [(A, 15), (B, 5)] {
            let (status, body) = hub
                .post(
                    "/v1/orders",
                    &json!({"store": s, "lines": [{"gtin": gtin, "qty": qty}]}),
                )
                .await;
            assert_eq!(status, 409, "{body}");
        }
    }
    // Receipts everywhere; the hub takes its online reserve as stores sync.
    let mut ledger = Ledger::default();
    for (s, api) in &agents {
        receive(api, s, A, 10, &mut ledger).await;
        receive(api, s, B, 4, &mut ledger).await;
    }
    eventually("initial sync and reserve", LONG, || {
        converged(&agents, &hub)
    })
    .await;

    // Partition s1, and stop the hub process.
    proxies[0].set(Mode::Blackhole);
    let status = hub_proc.terminate(LONG);
    assert!(status.success(), "hub exit: {status}");

    // Every store keeps selling on its own rights until refused; s1 also
    // receives more while cut off.
    receive(&agents[0].1, "s1", A, 5, &mut ledger).await;
    for (s, api) in &agents {
        let a = sell_until_refused(api, s, A, &mut ledger).await;
        let b = sell_until_refused(api, s, B, &mut ledger).await;
        assert!(a > 0 && b > 0, "{s} sold {a} A and {b} B offline");
    }
    for (s, api) in &agents {
        eventually(&format!("{s} sees the hub gone"), LONG, || async {
            let (_, st) = api.get("/v1/status").await?;
            (st["online"] == false && st["outbox_events"].as_u64() > Some(0))
                .then_some(())
                .ok_or(st.to_string())
        })
        .await;
    }
    // s1 loses power while cut off: SIGKILL, then a restart on the same
    // data. Its sync client is now in a timed-out exchange or backing off,
    // so it flushes no counters: the receipt just acknowledged is most
    // likely only in the journal, and the restart replays it. Everything
    // s1 acknowledged must be there and reach the hub once the partition
    // heals.
    receive(&agents[0].1, "s1", B, 3, &mut ledger).await;
    drop(procs.remove(0));
    let (p, url) = start_agent(tmp.path(), "s1", &format!("https://{}", proxies[0].addr()));
    let log = p.log.clone();
    let replayed = eventually("s1 opened its database", LONG, || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Agent ready") {
            Ok(text.contains("Counters recovered"))
        } else {
            Err(text)
        }
    })
    .await;
    eprintln!("s1 restarted after SIGKILL; replayed unflushed counters: {replayed}");
    procs.insert(0, p);
    agents[0].1 = Api::agent(&url);

    // The hub comes back on the same address; s1 is still cut off. Online
    // orders take the hub's reserve at every store until refused.
    let (hub_proc, again) = start_hub(&files, &hub_addr.to_string(), tmp.path().join("hub2.log"));
    assert_eq!(again, hub_url);
    for s in stores {
        order_until_refused(&hub, s, A, &mut ledger).await;
        order_until_refused(&hub, s, B, &mut ledger).await;
    }
    let s1_orders = ledger
        .ordered
        .get(&("s1".into(), A.into()))
        .copied()
        .unwrap_or(0);
    assert_eq!(
        s1_orders, 2,
        "the hub sold exactly its reserve at the partitioned store"
    );

    // Heal, then everything converges.
    proxies[0].set(Mode::Pass);
    let views = eventually("convergence after healing", LONG, || {
        converged(&agents, &hub)
    })
    .await;

    // Exact accounting per store and item, from what was acknowledged.
    for gtin in [A, B] {
        let (mut received, mut out, mut hub_sum) = (0, 0, 0);
        for s in stores {
            let key = (s.to_string(), gtin.to_string());
            let r = ledger.received.get(&key).copied().unwrap_or(0);
            let sold = ledger.sold.get(&key).copied().unwrap_or(0);
            let ordered = ledger.ordered.get(&key).copied().unwrap_or(0);
            let on_hand = views[gtin]["stores"][s]["on_hand"].as_u64().unwrap();
            assert_eq!(
                on_hand,
                r - sold - ordered,
                "{s} {gtin}: received {r}, sold {sold}, ordered {ordered}"
            );
            assert!(sold + ordered <= r, "{s} {gtin} oversold");
            received += r;
            out += sold + ordered;
            hub_sum += on_hand;
        }
        assert!(out <= received, "{gtin}: Σ sold + Σ ordered > Σ received");
        assert_eq!(
            views[gtin]["on_hand"].as_u64().unwrap(),
            hub_sum,
            "hub total = Σ stores"
        );
    }

    // Nothing acknowledged is missing: every event is at its store and the
    // hub received each exactly once.
    let (_, list) = hub.get("/v1/stores").await.unwrap();
    for (s, api) in &agents {
        let ids = &ledger.events[s.as_str()];
        for id in &ledger.sales[s.as_str()] {
            let (status, sale) = api.get(&format!("/v1/sales/{id}")).await.unwrap();
            assert_eq!(status, 200, "acknowledged sale {id} at {s}: {sale}");
        }
        let rec = list["stores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["store"] == s.as_str())
            .unwrap();
        assert_eq!(
            rec["events_received"].as_u64().unwrap(),
            ids.len() as u64,
            "{s}: {rec}"
        );
    }
    let (_, exceptions) = hub.get("/v1/exceptions").await.unwrap();
    assert_eq!(
        exceptions["exceptions"],
        json!([]),
        "no overrides, no EPC sold twice"
    );

    for p in procs {
        assert!(p.terminate(LONG).success());
    }
    assert!(hub_proc.terminate(LONG).success());
}
