//! `GET /v1/audit`: units in and out per (store, item) from every event the
//! hub holds, beside its counters, and EPCs sold twice: what the demo's
//! `double_sold=0` is measured from.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{gtin, SimStore, TestHub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_per_store_and_item_come_from_the_hubs_events() {
    let hub = TestHub::start(|_| {}).await;
    let (c1, c2) = (
        hub.store_client(&hub.enroll("s1")),
        hub.store_client(&hub.enroll("s2")),
    );
    let admin = hub.admin();
    let (a, b) = (gtin(1), gtin(2));

    // Nothing yet: an empty, clean audit.
    let (status, body) = admin.get("/v1/audit").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"events": 0, "double_sold": 0, "epcs_sold_twice": 0,
               "epcs_sold_twice_list": [], "counters_disagreeing": 0,
               "holdings_disagreeing": 0, "items": []})
    );

    // Online demand at s1 (refused: no stock there yet) makes the hub
    // take a reserve there; a refused order is no event.
    admin.online_demand("s1", a, 1).await;
    let mut s1 = SimStore::new("s1", 1);
    let mut s2 = SimStore::new("s2", 2);
    s1.receive(a, 10);
    s1.sell(a, 3).unwrap();
    s2.receive(b, 2);
    // Two partitioned stores sell the same tag: no unit is oversold (each
    // had its own), but the EPC was sold twice.
    let epc = "3074257BF7194E4000001A85";
    s1.sell_epc(a, epc).unwrap();
    s2.sell_epc(b, epc).unwrap();
    s1.sync_all(&c1, 10).await;
    s2.sync_all(&c2, 10).await;
    // An online order from the hub's reserve at s1.
    let order = json!({"store": "s1", "lines": [{"gtin": a.to_string(), "qty": 1}]});
    let (status, receipt) = admin.post("/v1/orders", &order).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");

    let (status, body) = admin.get("/v1/audit").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"], 6, "{body}");
    assert_eq!(body["double_sold"], 0);
    assert_eq!(body["epcs_sold_twice"], 1);
    assert_eq!(body["epcs_sold_twice_list"], json!([epc]));
    assert_eq!(body["counters_disagreeing"], 0);
    assert_eq!(body["holdings_disagreeing"], 0, "{body}");
    assert_eq!(
        body["items"],
        json!([
            {"store": "s1", "gtin": a.to_string(), "units_in": 10, "sold": 4, "ordered": 1,
             "shrink": 0, "transferred_out": 0, "transferred_in": 0, "oversold": 0,
             "on_hand_by_events": 5, "on_hand": 5},
            {"store": "s2", "gtin": b.to_string(), "units_in": 2, "sold": 1, "ordered": 0,
             "shrink": 0, "transferred_out": 0, "transferred_in": 0, "oversold": 0,
             "on_hand_by_events": 1, "on_hand": 1},
        ])
    );

    // Admin only.
    let anonymous = hub.anonymous_client();
    let r = anonymous
        .http
        .get(format!("{}/v1/audit", anonymous.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
