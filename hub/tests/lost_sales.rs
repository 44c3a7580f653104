//! Sales lost for lack of rights and refused online orders, per store and
//! reason, in `GET /v1/stores`: stores report cumulative totals in their
//! syncs and the hub keeps the largest (a repeated or older request
//! changes nothing; a hostile total overflows nothing and touches no other
//! store); the hub counts its own refused orders in the store's record,
//! and both in the last 24 hours' (`last_24h`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{gtin, SimStore, TestHub};
use tally_sync::Shortage;

fn store<'a>(stores: &'a Value, id: &str) -> &'a Value {
    stores["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["store"] == id)
        .unwrap_or_else(|| panic!("no {id} in {stores}"))
}

fn lost(no_stock: (u64, u64), held: (u64, u64), offline: (u64, u64)) -> Value {
    let l = |(sales, units): (u64, u64)| json!({"sales": sales, "units": units});
    json!({"no_stock": l(no_stock), "held_elsewhere": l(held), "offline": l(offline)})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_show_lost_sales_and_refused_orders_by_reason() {
    let hub = TestHub::start(|_| {}).await;
    let (c1, c2) = (
        hub.store_client(&hub.enroll("s1")),
        hub.store_client(&hub.enroll("s2")),
    );
    let admin = hub.admin();
    let a = gtin(1);

    // An order for a store that never synced is refused and counted
    // nowhere: an order may name any store.
    admin.online_demand("s1", a, 1).await;

    let mut s1 = SimStore::new("s1", 1);
    s1.receive(a, 3);
    s1.mem.lost.get_mut(Shortage::Offline).add_sale(2);
    s1.mem.lost.get_mut(Shortage::NoStock).add_sale(1);
    let old = s1.request(100);
    s1.sync_all(&c1, 10).await;
    let (status, stores) = admin.get("/v1/stores").await;
    assert_eq!(status, StatusCode::OK);
    let rec = store(&stores, "s1");
    assert_eq!(rec["lost_sales"], lost((1, 1), (0, 0), (1, 2)), "{rec}");
    assert_eq!(
        rec["refused_orders"],
        json!({"no_stock": 0, "held_elsewhere": 0, "offline": 0})
    );

    // More lost sales; the request is sent twice (its answer lost), then
    // an older request arrives late: each total counts once, never falls.
    s1.mem.lost.get_mut(Shortage::Offline).add_sale(3);
    s1.mem.lost.get_mut(Shortage::HeldElsewhere).add_sale(1);
    let req = s1.request(100);
    c1.sync(&req).await.unwrap();
    c1.sync(&req).await.unwrap();
    c1.sync(&old).await.unwrap();
    let (_, stores) = admin.get("/v1/stores").await;
    assert_eq!(
        store(&stores, "s1")["lost_sales"],
        lost((1, 1), (1, 1), (2, 5))
    );

    // A hostile store's totals: saturated at u64::MAX, in its own record.
    let mut s2 = SimStore::new("s2", 2);
    for reason in tally_sync::lost::REASONS {
        let l = s2.mem.lost.get_mut(reason);
        l.sales = u64::MAX;
        l.units = u64::MAX;
    }
    s2.sync_all(&c2, 10).await;
    let mut req = s2.request(100);
    req.lost.extend(req.lost.clone());
    c2.sync(&req).await.unwrap();
    let (_, stores) = admin.get("/v1/stores").await;
    let max = (u64::MAX, u64::MAX);
    assert_eq!(store(&stores, "s2")["lost_sales"], lost(max, max, max));
    assert_eq!(
        store(&stores, "s1")["lost_sales"],
        lost((1, 1), (1, 1), (2, 5))
    );

    // Refused online orders, by reason: more than the store has on hand
    // (no_stock); within it, but s1 is not live to release rights
    // (offline). An accepted or replayed order is not counted.
    let order = |qty: u64| json!({"store": "s1", "lines": [{"gtin": a.to_string(), "qty": qty}]});
    let (status, body) = admin.post("/v1/orders", &order(50)).await;
    assert_eq!(
        (status, &body["reason"]),
        (StatusCode::CONFLICT, &json!("no_stock"))
    );
    let (status, body) = admin.post("/v1/orders", &order(2)).await;
    assert_eq!(
        (status, &body["reason"]),
        (StatusCode::CONFLICT, &json!("offline"))
    );
    let (status, body) = admin.post("/v1/orders", &order(2)).await;
    assert_eq!(
        (status, &body["reason"]),
        (StatusCode::CONFLICT, &json!("offline"))
    );
    let (_, stores) = admin.get("/v1/stores").await;
    assert_eq!(
        store(&stores, "s1")["refused_orders"],
        json!({"no_stock": 1, "held_elsewhere": 0, "offline": 2})
    );
    assert_eq!(
        store(&stores, "s2")["refused_orders"],
        json!({"no_stock": 0, "held_elsewhere": 0, "offline": 0})
    );

    // All of it within the last 24 hours: counted there once too (the
    // repeated and late requests added nothing).
    for id in ["s1", "s2"] {
        let rec = store(&stores, id);
        assert_eq!(rec["last_24h"]["lost_sales"], rec["lost_sales"], "{rec}");
        assert_eq!(
            rec["last_24h"]["refused_orders"], rec["refused_orders"],
            "{rec}"
        );
    }

    // Durable: the same after a restart.
    let (dir, data) = hub.stop().await;
    let hub = TestHub::serve(dir, data, |_| {}).await;
    let (_, after) = hub.admin().get("/v1/stores").await;
    for id in ["s1", "s2"] {
        let (before, now) = (store(&stores, id), store(&after, id));
        assert_eq!(before["lost_sales"], now["lost_sales"]);
        assert_eq!(before["refused_orders"], now["refused_orders"]);
        assert_eq!(before["last_24h"], now["last_24h"]);
    }
    hub.stop().await;
}
