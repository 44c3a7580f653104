//! The live link over real mutual TLS (HTTP/2): a store that holds the
//! link open is live (`GET /v1/stores`, `/metrics`); the hub pushes it
//! notices; an online order the hub's reserve cannot fill asks the live
//! store for its unsold rights and is filled; without the link it is
//! refused with reason `offline`, and with nothing left on the shelf,
//! `no_stock`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::link::Link;
use support::{gtin, Admin, HubClient, SimStore, TestHub};
use tally_sync::link::Notice;
use tally_sync::Gtin;

/// Polls `GET /v1/stores` until store `s`'s `live` is `want`.
async fn wait_live(admin: &Admin, s: &str, want: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, stores) = admin.get("/v1/stores").await;
        let row = stores["stores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["store"] == s)
            .cloned()
            .unwrap_or(Value::Null);
        if row["live"] == want {
            return row;
        }
        assert!(Instant::now() < deadline, "{s} live={want}: {stores}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Store s1, enrolled, with 10 units of item 1 synced: its client, its
/// state, and the rights the hub holds there.
async fn store_with_ten(hub: &TestHub) -> (HubClient, SimStore, u64) {
    let client = hub.store_client(&hub.enroll("s1"));
    let mut s1 = SimStore::new("s1", 1);
    s1.receive(gtin(1), 10);
    s1.sync_all(&client, 10).await;
    let hub_rights = 10 - s1.rights(gtin(1));
    (client, s1, hub_rights)
}

fn order(id: &str, qty: u64) -> Value {
    json!({"order_id": id, "store": "s1", "lines": [{"gtin": gtin(1).to_string(), "qty": qty}]})
}

#[tokio::test]
async fn an_online_order_gets_a_live_stores_unsold_rights_at_once() {
    let hub = TestHub::start(|c| c.heartbeat = Duration::from_millis(200)).await;
    let admin = hub.admin();
    let (client, mut s1, hub_rights) = store_with_ten(&hub).await;

    // The link opens with a hello naming the store; the store is live.
    let mut link = Link::open(&client).await;
    assert_eq!(
        link.next().await,
        Notice::Hello {
            store: "s1".parse().unwrap(),
            heartbeat_ms: 200
        }
    );
    let row = wait_live(&admin, "s1", true).await;
    assert_eq!(row["online"], true, "{row}");
    assert!(row["live_since"].is_string(), "{row}");

    // An order for more than the hub holds: the hub asks the store.
    let ordering = {
        let admin = hub.admin();
        tokio::spawn(async move { admin.post("/v1/orders", &order("web-1", 6)).await })
    };
    let (request_id, g, units, counter) = link.wanted().await;
    assert_eq!((g, units), (gtin(1), 6 - hub_rights));
    // The hub's view comes with the request: its entries only.
    assert_eq!(counter.rights(&tally_sync::ReplicaId::hub()), hub_rights);
    assert!(counter.owned_by(&"s1".parse().unwrap()).is_empty());
    let released = s1.mem.release(request_id, g, units, &counter);
    assert_eq!(released.released, units);
    let (status, body) = client.released(&released).await;
    assert_eq!(
        (status, body["merged_by"].clone()),
        (StatusCode::OK, json!("order"))
    );
    let (status, receipt) = ordering.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{receipt}");

    // The store sells what it kept; the hub's view and the store's agree.
    for _ in 0..4 {
        s1.sell(gtin(1), 1).unwrap();
    }
    s1.sync_all(&client, 10).await;
    let (_, stock) = admin.get(&format!("/v1/stock/{}", gtin(1))).await;
    assert_eq!(stock["on_hand"], 0, "{stock}");

    // Nothing left in the hub's books: the store is asked once all the
    // same (a receipt it has not synced would not be in them); it gives
    // nothing, and the order is refused, no_stock.
    let ordering = {
        let admin = hub.admin();
        tokio::spawn(async move { admin.post("/v1/orders", &order("web-2", 1)).await })
    };
    let (asked, _, units, counter) = link.wanted().await;
    let nothing = s1.mem.release(asked, gtin(1), units, &counter);
    assert_eq!(nothing.released, 0);
    assert_eq!(client.released(&nothing).await.0, StatusCode::OK);
    let (status, body) = ordering.await.unwrap();
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::CONFLICT, json!("no_stock")),
        "{body}"
    );

    // A catalog change is pushed to the live store.
    let (status, _) = admin
        .post(
            "/v1/catalog",
            &json!({"items": [{"gtin": gtin(1).to_string(), "name": "Tea", "price_minor": 250}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(link.next().await, Notice::CatalogChanged);

    // A report that names another request is kept by the hub (the order
    // stopped waiting); a forged one is refused.
    let late = s1.mem.release(request_id, gtin(1), 1, &counter);
    assert_eq!(client.released(&late).await.1["merged_by"], "hub");
    let mut forged = late.clone();
    forged.own.add(&tally_sync::ReplicaId::hub(), 5).unwrap();
    assert_eq!(client.released(&forged).await.0, StatusCode::FORBIDDEN);

    let (_, metrics) = admin.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        "tally_hub_stores_live 1",
        "tally_hub_release_requests_total{result=\"reported\"} 2",
        "tally_hub_orders_refused_total{reason=\"no_stock\"} 1",
        "tally_hub_link_notices_total{kind=\"catalog_changed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // The link goes: the store is no longer live.
    drop(link);
    wait_live(&admin, "s1", false).await;
    hub.stop().await;
}

/// An order short of two items at a live store asks for both at once
/// (one round, not one round per item), and is filled with both reports
/// merged.
#[tokio::test]
async fn an_order_short_of_several_items_asks_for_them_all_at_once() {
    let hub = TestHub::start(|c| c.rights_wait = Duration::from_secs(5)).await;
    let client = hub.store_client(&hub.enroll("s1"));
    let mut s1 = SimStore::new("s1", 1);
    s1.receive(gtin(1), 10);
    s1.receive(gtin(2), 10);
    s1.sync_all(&client, 10).await;
    let hub_rights = |s1: &SimStore, g| 10 - s1.rights(g);
    let want = [
        (gtin(1), hub_rights(&s1, gtin(1)) + 2),
        (gtin(2), hub_rights(&s1, gtin(2)) + 3),
    ];
    let mut link = Link::open(&client).await;
    assert!(matches!(link.next().await, Notice::Hello { .. }));
    let ordering = {
        let admin = hub.admin();
        let lines: Vec<Value> = want
            .iter()
            .map(|(g, qty)| json!({"gtin": g.to_string(), "qty": qty}))
            .collect();
        tokio::spawn(async move {
            admin
                .post(
                    "/v1/orders",
                    &json!({"order_id": "web-1", "store": "s1", "lines": lines}),
                )
                .await
        })
    };
    // Both asked before the store answers either.
    let first = link.wanted().await;
    let second = link.wanted().await;
    let mut asked: Vec<(Gtin, u64)> = vec![(first.1, first.2), (second.1, second.2)];
    asked.sort();
    assert_eq!(asked, vec![(gtin(1), 2), (gtin(2), 3)]);
    for (request_id, g, units, counter) in [first, second] {
        let released = s1.mem.release(request_id, g, units, &counter);
        assert_eq!(released.released, units);
        let (status, body) = client.released(&released).await;
        assert_eq!(
            (status, body["merged_by"].clone()),
            (StatusCode::OK, json!("order"))
        );
    }
    let (status, receipt) = ordering.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    let (_, metrics) = hub.admin().get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("tally_hub_release_requests_total{result=\"reported\"} 2"),
        "{metrics}"
    );
    hub.stop().await;
}

/// The value of a gauge on the hub's `/metrics`.
async fn gauge(admin: &Admin, name: &str) -> u64 {
    let (_, metrics) = admin.get("/metrics").await;
    let text = metrics.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// An order that takes two rounds of asks holds, at the store, what it
/// needs there once, not once per round: stacked holds would keep back
/// from the store's tills more than the order needs for the rest of its
/// wait. Routed and store-named orders alike.
#[tokio::test]
async fn an_order_asked_twice_holds_what_it_needs_once() {
    for routed in [true, false] {
        let hub = TestHub::start(|c| c.rights_wait = Duration::from_secs(10)).await;
        let admin = hub.admin();
        let (client, mut s1, hub_rights) = store_with_ten(&hub).await;
        let mut link = Link::open(&client).await;
        assert!(matches!(link.next().await, Notice::Hello { .. }));
        let want = hub_rights + 4;
        let line = json!([{"gtin": gtin(1).to_string(), "qty": want}]);
        let body = if routed {
            json!({"order_id": "web-2", "fulfilment": "ship", "lines": line})
        } else {
            json!({"order_id": "web-2", "store": "s1", "lines": line})
        };
        let ordering = {
            let admin = hub.admin();
            tokio::spawn(async move { admin.post("/v1/orders", &body).await })
        };
        // Round one: 4 wanted, 2 given.
        let (request_id, g, units, counter) = link.wanted().await;
        assert_eq!(units, 4, "routed {routed}");
        assert_eq!(gauge(&admin, "tally_hub_units_held").await, want);
        let released = s1.mem.release(request_id, g, 2, &counter);
        assert_eq!(released.released, 2);
        client.released(&released).await;
        // Round two: the other 2; held still what the order needs there.
        let (request_id, g, units, counter) = link.wanted().await;
        assert_eq!(units, 2, "routed {routed}");
        assert_eq!(
            gauge(&admin, "tally_hub_units_held").await,
            want,
            "routed {routed}: one round's hold, not two"
        );
        let released = s1.mem.release(request_id, g, 2, &counter);
        client.released(&released).await;
        let (status, order) = ordering.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "routed {routed}: {order}");
        assert_eq!(gauge(&admin, "tally_hub_units_held").await, 0);
        hub.stop().await;
    }
}

/// While an order waits for a store to release one item, the items the
/// hub's reserve covers already are held too: a till at that store asking
/// for them meanwhile gets none, and the order, first come, is served.
/// Store-named and routed orders alike (a routed one holds what its plan
/// counts on from the reserves).
#[tokio::test]
async fn an_order_waiting_on_one_item_keeps_the_others_from_the_tills() {
    for routed in [false, true] {
        let hub = TestHub::start(|c| c.rights_wait = Duration::from_secs(10)).await;
        let admin = hub.admin();
        let client = hub.store_client(&hub.enroll("s1"));
        admin.online_demand("s1", gtin(2), 15).await;
        let mut s1 = SimStore::new("s1", 1);
        s1.receive(gtin(1), 10);
        s1.receive(gtin(2), 10);
        s1.sync_all(&client, 10).await;
        let hub_x = 10 - s1.rights(gtin(1));
        let hub_y = 10 - s1.rights(gtin(2));
        assert!(hub_y >= 1, "the hub holds a reserve of the covered item");
        let mut link = Link::open(&client).await;
        assert!(matches!(link.next().await, Notice::Hello { .. }));
        let lines = json!([
            {"gtin": gtin(1).to_string(), "qty": hub_x + 2},
            {"gtin": gtin(2).to_string(), "qty": hub_y},
        ]);
        let body = if routed {
            json!({"order_id": "web-3", "fulfilment": "ship", "lines": lines})
        } else {
            json!({"order_id": "web-3", "store": "s1", "lines": lines})
        };
        let ordering = {
            let admin = hub.admin();
            tokio::spawn(async move { admin.post("/v1/orders", &body).await })
        };
        let (request_id, g, units, counter) = link.wanted().await;
        assert_eq!((g, units), (gtin(1), 2), "routed {routed}");
        // A till at s1 asks for the covered item meanwhile: held for the
        // order.
        let till = tally_sync::rights::RightsRequest {
            request_id: tally_sync::EventId::v7(1_750_000_000_000, [7; 10]),
            gtin: gtin(2),
            units: 1,
            own: s1.mem.counter(gtin(2)),
        };
        let grant = client.rights(&till).await.unwrap();
        assert_eq!(grant.granted, 0, "routed {routed}: {grant:?}");
        let released = s1.mem.release(request_id, g, units, &counter);
        client.released(&released).await;
        let (status, order) = ordering.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "routed {routed}: {order}");
        assert_eq!(gauge(&admin, "tally_hub_units_held").await, 0);
        hub.stop().await;
    }
}

/// A store whose release report the hub refuses (its entries fail the
/// check, e.g. while one of its events is dead-lettered) is not asked
/// again for that item by the same order: each round would move more of
/// its rights to the hub in its own books only. The order is answered
/// from that report, not after the wait.
#[tokio::test]
async fn a_refused_release_report_is_not_asked_for_again() {
    let hub = TestHub::start(|c| c.rights_wait = Duration::from_secs(5)).await;
    let admin = hub.admin();
    let (client, mut s1, hub_rights) = store_with_ten(&hub).await;
    let mut link = Link::open(&client).await;
    assert!(matches!(link.next().await, Notice::Hello { .. }));
    let ordering = {
        let admin = hub.admin();
        tokio::spawn(async move {
            admin
                .post("/v1/orders", &order("web-1", hub_rights + 2))
                .await
        })
    };
    let (request_id, g, units, counter) = link.wanted().await;
    let mut forged = s1.mem.release(request_id, g, units, &counter);
    forged.own.add(&tally_sync::ReplicaId::hub(), 5).unwrap();
    client.released(&forged).await;
    // Answered from the refused report, not after the wait ("offline").
    let (status, body) = ordering.await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["reason"], "held_elsewhere", "{body}");
    let (_, metrics) = admin.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("tally_hub_release_requests_total{result=\"reported\"} 1")
            && !metrics.contains("result=\"no_answer\"} 1"),
        "asked once: {metrics}"
    );
    // Another order for that item a moment later: the store is not asked
    // again (each ask would strand more of its rights), answered at once.
    let asked = Instant::now();
    let (status, body) = admin
        .post("/v1/orders", &order("web-2", hub_rights + 2))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "not after the wait"
    );
    let (_, metrics) = admin.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("tally_hub_release_requests_total{result=\"reported\"} 1"),
        "still asked once: {metrics}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn without_the_link_an_order_beyond_the_reserve_is_refused_offline() {
    let hub = TestHub::start(|c| c.rights_wait = Duration::from_millis(300)).await;
    let admin = hub.admin();
    let (client, _s1, hub_rights) = store_with_ten(&hub).await;
    let (status, body) = admin
        .post("/v1/orders", &order("web-1", hub_rights + 1))
        .await;
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::CONFLICT, json!("offline")),
        "{body}"
    );

    // Live, but the store never answers: refused offline after the wait.
    let mut link = Link::open(&client).await;
    assert!(matches!(link.next().await, Notice::Hello { .. }));
    let asked = Instant::now();
    let (status, body) = admin
        .post("/v1/orders", &order("web-2", hub_rights + 1))
        .await;
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::CONFLICT, json!("offline")),
        "{body}"
    );
    assert!(asked.elapsed() >= Duration::from_millis(300));
    assert!(matches!(link.next().await, Notice::RightsWanted { .. }));

    // The hub stops with a link open: the link ends, the hub does not
    // wait out its grace period.
    let stopping = Instant::now();
    hub.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(20));
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = link.resp.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the link ends with the hub");
}

/// The store's release arrives after the order stopped waiting (the
/// order was refused, `offline`): the hub keeps the rights in its reserve
/// (none lost, none counted twice), and the order retried under its id is
/// filled from them without asking the store again. Sequenced by the
/// test, not by timing: the report is sent only once the order answered.
#[tokio::test]
async fn a_release_after_the_order_gave_up_is_kept_and_fills_its_retry() {
    let hub = TestHub::start(|c| c.rights_wait = Duration::from_millis(300)).await;
    let admin = hub.admin();
    let (client, mut s1, hub_rights) = store_with_ten(&hub).await;
    let mut link = Link::open(&client).await;
    assert!(matches!(link.next().await, Notice::Hello { .. }));
    wait_live(&admin, "s1", true).await;

    let want = hub_rights + 2;
    let ordering = {
        let admin = hub.admin();
        tokio::spawn(async move { admin.post("/v1/orders", &order("web-late", want)).await })
    };
    let (request_id, g, units, counter) = link.wanted().await;
    assert_eq!(units, 2);
    let (status, body) = ordering.await.unwrap();
    assert_eq!(
        (status, body["reason"].clone()),
        (StatusCode::CONFLICT, json!("offline")),
        "no answer in time: {body}"
    );

    // Now the store releases, as asked: the hub keeps what it sent.
    let store_rights = s1.rights(g);
    let released = s1.mem.release(request_id, g, units, &counter);
    assert_eq!(released.released, 2);
    let (status, body) = client.released(&released).await;
    assert_eq!(
        (status, &body["merged_by"]),
        (StatusCode::OK, &json!("hub"))
    );
    assert_eq!(s1.rights(g), store_rights - 2);
    let (_, stock) = admin.get(&format!("/v1/stock/{g}")).await;
    assert_eq!(stock["stores"]["s1"]["hub_rights"], want, "{stock}");

    // The order again, same id: filled from the hub's reserve, the store
    // not asked again.
    let (status, receipt) = admin.post("/v1/orders", &order("web-late", want)).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    let (_, metrics) = admin.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        "tally_hub_release_requests_total{result=\"no_answer\"} 1",
        "tally_hub_release_requests_total{result=\"reported\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // The store syncs: its books and the hub's agree, every unit
    // accounted for (10 received, `want` sold online; the hub may take a
    // reserve for the online demand again).
    s1.sync_all(&client, 10).await;
    let (_, stock) = admin.get(&format!("/v1/stock/{g}")).await;
    let row = &stock["stores"]["s1"];
    assert_eq!(row["on_hand"], 10 - want, "{stock}");
    let (store, reserve) = (
        row["store_rights"].as_u64().unwrap(),
        row["hub_rights"].as_u64().unwrap(),
    );
    assert_eq!(store + reserve, 10 - want, "no unit lost: {stock}");
    assert_eq!(s1.rights(g), store, "the store's books agree");
    hub.stop().await;
}

#[tokio::test]
async fn a_link_needs_a_store_certificate_and_a_new_link_replaces_the_old() {
    let hub = TestHub::start(|_| {}).await;
    let r = hub
        .anonymous_client()
        .http
        .get(format!("{}/v1/link", hub.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let (client, _s1, _) = store_with_ten(&hub).await;
    let mut first = Link::open(&client).await;
    assert!(matches!(first.next().await, Notice::Hello { .. }));
    let mut second = Link::open(&client).await;
    assert!(matches!(second.next().await, Notice::Hello { .. }));
    // The first stream ends; the store stays live on the second.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = first.resp.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the replaced link ends");
    wait_live(&hub.admin(), "s1", true).await;
    hub.stop().await;
}
