//! Routed online orders against the real hub: an order that names no
//! store (`fulfilment: "ship"`) goes to the store whose reserve holds it,
//! or is split over the fewest stores, or is refused with what the chain
//! lacks; allocations are recorded as orders at their stores, all or
//! nothing, and answered again on a repeat.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{gtin, SimStore, TestHub};

fn ship(id: &str, qty: u64) -> Value {
    json!({"order_id": id, "fulfilment": "ship",
           "lines": [{"gtin": gtin(1).to_string(), "qty": qty}]})
}

async fn hub_rights(admin: &support::Admin, store: &str) -> u64 {
    let (_, stock) = admin.get(&format!("/v1/stock/{}", gtin(1))).await;
    stock["stores"][store]["hub_rights"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_without_a_store_are_routed_split_or_refused() {
    let hub = TestHub::start(|c| {
        c.routing.priority = vec![tally_sync::LocationId::new("s2").unwrap()];
    })
    .await;
    let admin = hub.admin();
    // Online demand at both stores: the hub holds a reserve at each.
    let mut held = 0;
    for (i, name) in ["s1", "s2"].into_iter().enumerate() {
        let client = hub.store_client(&hub.enroll(name));
        admin.online_demand(name, gtin(1), 40).await;
        let mut s = SimStore::new(name, i as u64 + 1);
        s.receive(gtin(1), 10);
        s.sync_all(&client, 10).await;
        held += hub_rights(&admin, name).await;
    }
    let (r1, r2) = (
        hub_rights(&admin, "s1").await,
        hub_rights(&admin, "s2").await,
    );
    assert!(r1 >= 2 && r2 >= 2, "reserves {r1} and {r2}");

    // One unit: one store, the priority list's first.
    let (status, one) = admin.post("/v1/orders", &ship("web-1", 1)).await;
    assert_eq!(status, StatusCode::CREATED, "{one}");
    assert_eq!(one["status"], "allocated");
    let allocs = one["allocations"].as_array().unwrap();
    assert_eq!(allocs.len(), 1, "{one}");
    assert_eq!(allocs[0]["store"], "s2");
    assert_eq!(
        allocs[0]["lines"],
        json!([{"gtin": gtin(1).to_string(), "qty": 1}])
    );
    assert_eq!(hub_rights(&admin, "s2").await, r2 - 1);
    // A repeat is answered alike; the same id with other lines is not.
    let (status, again) = admin.post("/v1/orders", &ship("web-1", 1)).await;
    assert_eq!((status, &again), (StatusCode::OK, &one));
    let (status, v) = admin.post("/v1/orders", &ship("web-1", 2)).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("order_id_conflict"))
    );
    let (status, got) = admin.get("/v1/orders/web-1").await;
    assert_eq!((status, &got), (StatusCode::OK, &one));
    // Lines of one item are added up, and held to a line's limit.
    let line = json!({"gtin": gtin(1).to_string(), "qty": 600_000});
    let (status, v) = admin
        .post(
            "/v1/orders",
            &json!({"order_id": "web-big", "fulfilment": "ship", "lines": [line.clone(), line]}),
        )
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")),
        "{v}"
    );

    // More than the chain's reserves: refused, nothing allocated.
    let left = held - 1;
    let (status, short) = admin.post("/v1/orders", &ship("web-2", left + 1)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{short}");
    assert_eq!(short["error"], "insufficient_stock");
    assert_eq!(
        short["missing"],
        json!([{"gtin": gtin(1).to_string(), "qty": 1}])
    );
    assert_eq!(
        hub_rights(&admin, "s1").await + hub_rights(&admin, "s2").await,
        left
    );
    // Everything left: split over both stores.
    let (status, split) = admin.post("/v1/orders", &ship("web-3", left)).await;
    assert_eq!(status, StatusCode::CREATED, "{split}");
    let allocs = split["allocations"].as_array().unwrap();
    assert_eq!(allocs.len(), 2, "{split}");
    let total: u64 = allocs
        .iter()
        .map(|a| a["lines"][0]["qty"].as_u64().unwrap())
        .sum();
    assert_eq!(total, left);
    assert_eq!(
        hub_rights(&admin, "s1").await + hub_rights(&admin, "s2").await,
        0
    );

    // A store-named order's id cannot name a routed one; no store needs ship.
    let (status, v) = admin
        .post(
            "/v1/orders",
            &json!({"order_id": "web-1", "store": "s1",
                    "lines": [{"gtin": gtin(1).to_string(), "qty": 1}]}),
        )
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("order_id_conflict"))
    );
    let (status, _) = admin
        .post(
            "/v1/orders",
            &json!({"lines": [{"gtin": gtin(1).to_string(), "qty": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = admin.get("/v1/orders/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    hub.stop().await;
}
