//! Orders with a lifecycle end to end (issue 22), with the real binaries
//! on loopback and real mutual TLS: a ship order that names no store is
//! routed to the only store holding the item and appears on that store's
//! pick list; the store picks and ships it and the hub sees each move; a
//! pickup order is collected at its store; a cancelled order gives its
//! units back at the hub and at the store, and a collected one cannot be
//! cancelled; a transfer from one store to another conserves units, shows
//! in transit until received, and one never received is flagged overdue;
//! returns of another store's sale, a web order or a tag sold elsewhere
//! are bounded chain-wide.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::chain::{hub_sees, init_hub, start_agent, start_hub_with, store_sees, Api, LONG};
use support::procs::{eventually, Proc};

const A: &str = "04006381333931";
const B: &str = "09506000134352";

/// A hub and two stores' agents, both live; s1 holds 5 of A, s2 5 of B.
async fn chain(tmp: &std::path::Path) -> (Vec<Proc>, [Api; 2], Api) {
    let files = init_hub(tmp, &["s1", "s2"]);
    // Transfers in transit over 2 s are overdue (exceptions raised).
    let (hub_proc, hub_url) = start_hub_with(
        &files,
        "127.0.0.1:0",
        tmp.join("hub.log"),
        &["--transfer-overdue-secs", "2"],
    );
    let (p1, url1) = start_agent(tmp, "s1", &hub_url);
    let (p2, url2) = start_agent(tmp, "s2", &hub_url);
    let hub = Api::hub(&hub_url, &files);
    let stores = [Api::agent(&url1), Api::agent(&url2)];
    for (agent, gtin) in stores.iter().zip([A, B]) {
        let (status, body) = agent
            .post(
                "/v1/receipts",
                &json!({"lines": [{"gtin": gtin, "qty": 5}]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    for (name, gtin) in [("s1", A), ("s2", B)] {
        hub_sees(&hub, name, gtin, 5).await;
    }
    eventually("both stores live", LONG, || async {
        let (_, stores) = hub.get("/v1/stores").await?;
        let live = stores["stores"]
            .as_array()
            .map_or(0, |v| v.iter().filter(|r| r["live"] == json!(true)).count());
        if live == 2 {
            Ok(())
        } else {
            Err(stores.to_string())
        }
    })
    .await;
    (vec![hub_proc, p1, p2], stores, hub)
}

/// Waits until the store's allocation of `order_id` has `status`.
async fn store_has(agent: &Api, order_id: &str, status: &str) -> Value {
    eventually("the store's allocation", LONG, || async {
        let (code, order) = agent.get(&format!("/v1/orders/{order_id}")).await?;
        if code == 200 && order["status"] == status {
            Ok(order)
        } else {
            Err(format!("{code} {order}"))
        }
    })
    .await
}

/// Waits until the hub's order `order_id` has `status`.
async fn hub_has(hub: &Api, order_id: &str, status: &str) -> Value {
    eventually("the hub's order", LONG, || async {
        let (code, order) = hub.get(&format!("/v1/orders/{order_id}")).await?;
        if code == 200 && order["status"] == status {
            Ok(order)
        } else {
            Err(format!("{code} {order}"))
        }
    })
    .await
}

#[tokio::test]
async fn a_ship_order_without_a_store_is_routed_picked_and_shipped() {
    let tmp = tempfile::tempdir().unwrap();
    let (_procs, [s1, s2], hub) = chain(tmp.path()).await;

    let (status, body) = hub
        .post(
            "/v1/orders",
            &json!({"order_id": "web-1", "fulfilment": "ship", "lines": [{"gtin": A, "qty": 2}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["allocations"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["allocations"][0]["store"], "s1", "{body}");
    assert_eq!(body["allocations"][0]["lines"][0]["qty"], 2, "{body}");
    // The rights came from s1 over its live link, asked and timed as for
    // an order naming the store.
    let (_, metrics) = hub.get_text("/metrics").await.unwrap();
    assert!(
        metrics.contains("tally_hub_release_requests_total{result=\"reported\"} 1"),
        "{metrics}"
    );
    let took: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tally_hub_release_duration_seconds_sum "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no release duration: {metrics}"));
    assert!(took > 0.0, "the release took no time? {metrics}");

    // On s1's pick list, not on s2's.
    let on_list = eventually("web-1 on s1's pick list", LONG, || async {
        let (_, list) = s1.get("/v1/orders?status=open").await?;
        let orders = list["orders"].as_array().cloned().unwrap_or_default();
        match orders.iter().find(|o| o["order_id"] == "web-1") {
            Some(o) => Ok(o.clone()),
            None => Err(list.to_string()),
        }
    })
    .await;
    assert_eq!(on_list["fulfilment"], "ship");
    assert_eq!(on_list["status"], "allocated");
    assert_eq!(on_list["lines"][0]["gtin"], A);
    let (code, _) = s2.get("/v1/orders/web-1").await.unwrap();
    assert_eq!(code, 404);
    store_sees(&s1, A, 3).await;

    // Picked, then shipped; a pickup move is refused; a repeat is a no-op.
    let (code, body) = s1.post("/v1/orders/web-1/picked", &json!({})).await;
    assert_eq!(
        (code, &body["order_status"]),
        (201, &json!("picked")),
        "{body}"
    );
    let (code, body) = s1.post("/v1/orders/web-1/picked", &json!({})).await;
    assert_eq!(
        (code, &body["fulfilment_id"]),
        (200, &Value::Null),
        "{body}"
    );
    let (code, body) = s1.post("/v1/orders/web-1/collected", &json!({})).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("order_status")),
        "{body}"
    );
    let (code, body) = s1
        .post("/v1/orders/web-1/shipped", &json!({"cashier": "ann"}))
        .await;
    assert_eq!(
        (code, &body["order_status"]),
        (201, &json!("shipped")),
        "{body}"
    );
    let (_, list) = s1.get("/v1/orders?status=open").await.unwrap();
    assert_eq!(list["orders"], json!([]), "{list}");

    // The hub hears of it by sync; a shipped order is not cancelled.
    let order = hub_has(&hub, "web-1", "shipped").await;
    assert_eq!(order["allocations"][0]["status"], "shipped");
    let (code, body) = hub.post("/v1/orders/web-1/cancel", &json!({})).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("handed_over")),
        "{body}"
    );
    hub_sees(&hub, "s1", A, 3).await;

    // Unknown orders and moves are refused clearly.
    let (code, body) = s1.post("/v1/orders/nope/picked", &json!({})).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (code, _) = s1.post("/v1/orders/web-1/lost", &json!({})).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn pickup_orders_are_collected_and_cancelled_orders_give_their_units_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (_procs, [s1, s2], hub) = chain(tmp.path()).await;

    // A pickup order names its store; the chain cannot fill one elsewhere.
    let (code, body) = hub
        .post(
            "/v1/orders",
            &json!({"order_id": "bopis-1", "fulfilment": "pickup", "store": "s2",
                    "lines": [{"gtin": B, "qty": 1}]}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = hub
        .post(
            "/v1/orders",
            &json!({"order_id": "bopis-x", "fulfilment": "pickup", "store": "s2",
                    "lines": [{"gtin": A, "qty": 1}]}),
        )
        .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("insufficient_stock")),
        "{body}"
    );
    let (code, body) = hub
        .post(
            "/v1/orders",
            &json!({"fulfilment": "pickup", "lines": [{"gtin": B, "qty": 1}]}),
        )
        .await;
    assert_eq!(code, 422, "{body}");

    // Collected at the counter (picking skipped).
    store_has(&s2, "bopis-1", "allocated").await;
    let (code, body) = s2
        .post("/v1/orders/bopis-1/collected", &json!({"cashier": "bo"}))
        .await;
    assert_eq!(code, 201, "{body}");
    hub_has(&hub, "bopis-1", "collected").await;
    store_sees(&s2, B, 4).await;

    // A cancelled order: its units come back at the hub and at the store,
    // and the store's pick list drops it.
    let (code, body) = hub
        .post(
            "/v1/orders",
            &json!({"order_id": "bopis-2", "fulfilment": "pickup", "store": "s1",
                    "lines": [{"gtin": A, "qty": 3}]}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    store_has(&s1, "bopis-2", "allocated").await;
    store_sees(&s1, A, 2).await;
    let (code, body) = s1.post("/v1/orders/bopis-2/picked", &json!({})).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = hub.post("/v1/orders/bopis-2/cancel", &json!({})).await;
    assert_eq!(
        (code, &body["status"]),
        (200, &json!("cancelled")),
        "{body}"
    );
    store_has(&s1, "bopis-2", "cancelled").await;
    store_sees(&s1, A, 5).await;
    hub_sees(&hub, "s1", A, 5).await;
    let (_, list) = s1.get("/v1/orders?status=open").await.unwrap();
    assert_eq!(list["orders"], json!([]), "{list}");
    let (code, body) = s1.post("/v1/orders/bopis-2/collected", &json!({})).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("order_status")),
        "{body}"
    );
    let (_, list) = hub.get("/v1/orders?status=cancelled").await.unwrap();
    assert_eq!(list["orders"][0]["order_id"], "bopis-2", "{list}");
    // The chain's audit: nothing sold twice.
    let (_, audit) = hub.get("/v1/audit").await.unwrap();
    assert_eq!(audit["double_sold"], 0, "{audit}");
    assert_eq!(audit["counters_disagreeing"], 0, "{audit}");
    assert_eq!(audit["holdings_disagreeing"], 0, "{audit}");
}

#[tokio::test]
async fn a_transfer_between_stores_conserves_units_and_shows_in_transit_until_received() {
    let tmp = tempfile::tempdir().unwrap();
    let (_procs, [s1, s2], hub) = chain(tmp.path()).await;

    // Beyond s1's rights: refused, nothing sent.
    let send = |id: &str, qty: u64| json!({"transfer_id": id, "to_store": "s2", "lines": [{"gtin": A, "qty": qty}]});
    let (code, body) = s1.post("/v1/transfers", &send("t-x", 6)).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("insufficient_stock")),
        "{body}"
    );
    let (code, body) = s1.post("/v1/transfers", &send("t-1", 2)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["transfer_status"], "in_transit", "{body}");
    // A retry of the same transfer is the recorded one; another under its id is not.
    let (code, body) = s1.post("/v1/transfers", &send("t-1", 2)).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = s1.post("/v1/transfers", &send("t-1", 1)).await;
    assert_eq!(code, 422, "{body}");
    store_sees(&s1, A, 3).await;

    // In transit at the hub and announced to s2.
    eventually("t-1 in transit at the hub", LONG, || async {
        let (_, list) = hub.get("/v1/transfers?status=in_transit").await?;
        match list["transfers"].as_array().and_then(|v| v.first()) {
            Some(t) if t["transfer_id"] == "t-1" && t["units"] == 2 => Ok(()),
            _ => Err(list.to_string()),
        }
    })
    .await;
    let inbound = eventually("t-1 announced to s2", LONG, || async {
        let (code, t) = s2.get("/v1/transfers/t-1").await?;
        if code == 200 {
            Ok(t)
        } else {
            Err(format!("{code} {t}"))
        }
    })
    .await;
    assert_eq!(inbound["direction"], "in", "{inbound}");
    assert_eq!(inbound["from_store"], "s1", "{inbound}");
    // Only the destination receives it, once.
    let (code, _) = s1.post("/v1/transfers/t-1/received", &json!({})).await;
    assert_eq!(code, 422);
    let (code, body) = s2.post("/v1/transfers/t-1/received", &json!({})).await;
    assert_eq!(
        (code, &body["transfer_status"]),
        (201, &json!("received")),
        "{body}"
    );
    let (code, body) = s2.post("/v1/transfers/t-1/received", &json!({})).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("transfer_received")),
        "{body}"
    );
    store_sees(&s2, A, 2).await;

    // The hub sees it received, the sender hears of it, units conserved.
    eventually("t-1 received at the hub", LONG, || async {
        let (_, t) = hub.get("/v1/transfers/t-1").await?;
        if t["status"] == "received" {
            Ok(())
        } else {
            Err(t.to_string())
        }
    })
    .await;
    eventually("s1 hears t-1 was received", LONG, || async {
        let (_, t) = s1.get("/v1/transfers/t-1").await?;
        if t["status"] == "received" && t["direction"] == "out" {
            Ok(())
        } else {
            Err(t.to_string())
        }
    })
    .await;
    hub_sees(&hub, "s1", A, 3).await;
    hub_sees(&hub, "s2", A, 2).await;
    let (_, audit) = hub.get("/v1/audit").await.unwrap();
    assert_eq!(audit["double_sold"], 0, "{audit}");
    assert_eq!(audit["counters_disagreeing"], 0, "{audit}");
    assert_eq!(audit["holdings_disagreeing"], 0, "{audit}");

    // A transfer never received is flagged overdue, once.
    let (code, body) = s1.post("/v1/transfers", &send("t-2", 1)).await;
    assert_eq!(code, 201, "{body}");
    eventually("t-2 overdue", LONG, || async {
        let (_, x) = hub.get("/v1/exceptions").await?;
        let overdue: Vec<&Value> = x["exceptions"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter(|e| e["kind"] == "transfer_overdue")
                    .collect()
            })
            .unwrap_or_default();
        match overdue.as_slice() {
            [one] if one["detail"]["transfer_id"] == "t-2" => Ok(()),
            _ => Err(x.to_string()),
        }
    })
    .await;
    let (_, t) = hub.get("/v1/transfers/t-2").await.unwrap();
    assert_eq!(
        (&t["status"], &t["overdue"]),
        (&json!("in_transit"), &json!(true)),
        "{t}"
    );
}

#[tokio::test]
async fn returns_across_stores_and_channels_are_bounded_chain_wide() {
    let tmp = tempfile::tempdir().unwrap();
    let (_procs, [s1, s2], hub) = chain(tmp.path()).await;
    let epc = "3074257BF7194E4000001A85";

    // A sale at s1: two units, one of them tagged.
    let (code, sale) = s1
        .post(
            "/v1/sales",
            &json!({"lines": [{"gtin": A, "qty": 1, "unit_price_minor": 500},
                              {"gtin": A, "qty": 1, "unit_price_minor": 500, "epc": epc}]}),
        )
        .await;
    assert_eq!(code, 201, "{sale}");
    let sale_id = sale["sale_id"].as_str().unwrap().to_string();
    hub_sees(&hub, "s1", A, 3).await;

    // At s2, a return naming s1's sale: checked with the hub, priced by
    // the sale, no manager needed.
    let ret = |qty: u64| json!({"original_sale_id": sale_id, "lines": [{"gtin": A, "qty": qty}]});
    let (code, body) = s2.post("/v1/returns", &ret(1)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["total_minor"], 500, "{body}");
    store_sees(&s2, A, 1).await;
    // At s1, its own sale has one unit left to give back chain-wide (the
    // tagged one), not two.
    let (code, body) = s1.post("/v1/returns", &ret(2)).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("exceeds_sale")),
        "{body}"
    );
    assert_eq!(body["returnable"], 1, "{body}");
    // The tag sold at s1 comes back at s2 by the tag alone.
    let mut tag_return = json!({"lines": [{"gtin": A, "qty": 1, "epc": epc}]});
    let (code, first_tag) = s2.post("/v1/returns", &tag_return).await;
    assert_eq!(code, 201, "{first_tag}");
    tag_return["return_id"] = first_tag["return_id"].clone();
    let (code, body) = s2.post("/v1/returns", &ret(1)).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("exceeds_sale")),
        "{body}"
    );
    let (code, body) = s1
        .post(
            "/v1/returns",
            &json!({"lines": [{"gtin": A, "qty": 1, "epc": epc}]}),
        )
        .await;
    assert!(code == 409 || code == 422, "{code} {body}");
    store_sees(&s2, A, 2).await;
    hub_sees(&hub, "s2", A, 2).await;
    // A till retrying the tag's return (say, after a restart), once it
    // reached the hub: answered as recorded, not checked again (the tag
    // is no longer sold, the hub would refuse it).
    let (code, again) = s2.post("/v1/returns", &tag_return).await;
    assert_eq!((code, &again), (200, &first_tag), "{again}");

    // A web order collected at s2, returned at s1 by the order's id.
    let (code, body) = hub
        .post(
            "/v1/orders",
            &json!({"order_id": "web-9", "fulfilment": "pickup", "store": "s2",
                    "lines": [{"gtin": B, "qty": 2}]}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    store_has(&s2, "web-9", "allocated").await;
    let (code, _) = s2.post("/v1/orders/web-9/collected", &json!({})).await;
    assert_eq!(code, 201);
    let web_return = |qty: u64| json!({"order_id": "web-9", "lines": [{"gtin": B, "qty": qty}]});
    let mut whole = web_return(2);
    let (code, first_web) = s1.post("/v1/returns", &whole).await;
    assert_eq!(code, 201, "{first_web}");
    whole["return_id"] = first_web["return_id"].clone();
    store_sees(&s1, B, 2).await;
    hub_sees(&hub, "s1", B, 2).await;
    // Its retry once synced: the recorded return, the original the hub
    // found by the order's id compared, nothing claimed again.
    let (code, again) = s1.post("/v1/returns", &whole).await;
    assert_eq!((code, &again), (200, &first_web), "{again}");
    let (code, body) = s1.post("/v1/returns", &web_return(1)).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("exceeds_sale")),
        "{body}"
    );

    // HQ lists the returns across stores and channels, the latest first.
    let returns = eventually("the hub's returns across stores", LONG, || async {
        let (_, r) = hub.get("/v1/returns").await?;
        match r["returns"].as_array() {
            Some(v) if v.len() == 3 => Ok(v.clone()),
            _ => Err(r.to_string()),
        }
    })
    .await;
    assert_eq!(
        (
            &returns[0]["store"],
            &returns[0]["original_kind"],
            &returns[0]["checked"]
        ),
        (&json!("s1"), &json!("order"), &json!(true)),
        "{returns:?}"
    );
    assert!(
        returns[1..].iter().all(|r| r["store"] == "s2"
            && r["original_store"] == "s1"
            && r["original_id"] == sale_id.as_str()),
        "{returns:?}"
    );

    // Nothing beyond any bound reached the hub.
    hub_sees(&hub, "s2", A, 2).await;
    let (_, x) = hub.get("/v1/exceptions").await.unwrap();
    let over = x["exceptions"].as_array().map_or(0, |v| {
        v.iter()
            .filter(|e| e["kind"] == "return_exceeds_sale")
            .count()
    });
    assert_eq!(over, 0, "{x}");
    let (_, audit) = hub.get("/v1/audit").await.unwrap();
    assert_eq!(audit["double_sold"], 0, "{audit}");
    assert_eq!(audit["holdings_disagreeing"], 0, "{audit}");
}
