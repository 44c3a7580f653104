//! The hub over real TLS on 127.0.0.1: enrollment, stores syncing, online
//! orders, catalog paging, exceptions, restart durability, and every kind
//! of refused request leaving the hub's state exactly as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{gtin, SimStore, TestHub};
use tally_store::SystemClock;
use tally_sync::clock::Clock;
use tally_sync::codec::{self, Encoding};
use tally_sync::counter::TransferKey;
use tally_sync::{BoundedCounter, DeltaEntry, ItemKey, LocationId, ReplicaId, PROTOCOL_VERSION};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_syncs_and_the_hub_reserves_and_sells_online() {
    let hub = TestHub::start(|_| {}).await;
    let bundle = hub.enroll("s1");
    let client = hub.store_client(&bundle);
    let admin = hub.admin();
    let (a, b) = (gtin(1), gtin(2));

    // Online demand for both items (refused: the hub holds nothing yet);
    // the reserve follows it.
    admin.online_demand("s1", a, 1).await;
    admin.online_demand("s1", b, 1).await;
    let mut s1 = SimStore::new("s1", 1);
    s1.receive(a, 10);
    s1.receive(b, 1);
    s1.sell(a, 2).unwrap();
    s1.sync_all(&client, 10).await;

    // The store gave the hub its reserve (one unit for that demand) on
    // its own, as an ordinary transfer, and the hub has it.
    let (status, stock) = admin.get(&format!("/v1/stock/{a}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stock,
        json!({"gtin": a.to_string(), "name": null, "on_hand": 8,
               "stores": {"s1": {"on_hand": 8, "store_rights": 7, "hub_rights": 1}}})
    );
    assert_eq!(s1.rights(a), 7);

    let (_, stores) = admin.get("/v1/stores").await;
    let rec = &stores["stores"][0];
    assert_eq!(rec["store"], "s1");
    assert_eq!(rec["events_received"], 3);
    assert_eq!(rec["online"], true);
    assert!(rec["last_sync_at"].as_str().unwrap().ends_with('Z'));

    // Online orders: within the hub's rights → 201; repeat → 200, same body.
    let order =
        json!({"order_id": "web-1", "store": "s1", "lines": [{"gtin": a.to_string(), "qty": 1}]});
    let (status, first) = admin.post("/v1/orders", &order).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = admin.post("/v1/orders", &order).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, again);
    // Same id, different order → refused.
    let other =
        json!({"order_id": "web-1", "store": "s1", "lines": [{"gtin": a.to_string(), "qty": 2}]});
    let (status, body) = admin.post("/v1/orders", &other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Beyond the hub's rights → 409 with the numbers.
    let big = json!({"store": "s1", "lines": [{"gtin": a.to_string(), "qty": 5}]});
    let (status, body) = admin.post("/v1/orders", &big).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "insufficient_stock");
    assert_eq!(body["gtin"], a.to_string());
    assert_eq!(
        (body["requested"].clone(), body["available"].clone()),
        (json!(5), json!(0))
    );

    // The store learns of the online sale on its next sync.
    s1.sync_all(&client, 10).await;
    assert_eq!(s1.on_hand(a), 7);
    let (_, stock) = admin.get(&format!("/v1/stock/{a}")).await;
    assert_eq!(stock["on_hand"], 7);
    assert_eq!(stock["stores"]["s1"]["on_hand"], 7);

    // A store short of rights gets the hub's unused rights back: its
    // refused sale is demand; one exchange brings the unit back.
    assert_eq!(s1.rights(b), 0, "b's only unit is the hub's reserve");
    assert!(s1.sell(b, 1).is_err());
    let req = s1.request(100);
    assert_eq!(req.demand.len(), 1);
    let resp = client.sync(&req).await.unwrap();
    s1.apply(&req, &resp);
    assert_eq!(
        s1.rights(b),
        1,
        "the hub gave its reserve back to a store with demand"
    );
    s1.sell(b, 1).unwrap();
    s1.sync_all(&client, 10).await;
    let (_, stock) = admin.get(&format!("/v1/stock/{b}")).await;
    assert_eq!(stock["on_hand"], 0);

    // The JSON encoding works the same and answers in JSON.
    let req = s1.request(100);
    let (status, bytes) = client
        .post_raw("application/json", serde_json::to_vec(&req).unwrap())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let resp: tally_sync::SyncResponse =
        codec::decode(&bytes, Encoding::Json, codec::DEFAULT_MAX_MESSAGE_BYTES).unwrap();
    assert_eq!(resp.acked_events_upto, req.events_upto);
    s1.apply(&req, &resp);

    // Metrics are Prometheus text and count what happened.
    let (status, text) = admin.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains("tally_hub_events_received_total 4"), "{text}");
    assert!(text.contains("tally_hub_orders_total{result=\"accepted\"} 1"));
    // The two orders that made the demand, and the one beyond the reserve.
    assert!(text.contains("tally_hub_orders_total{result=\"insufficient_stock\"} 3"));
    assert!(text.contains("tally_hub_stores 1"));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_per_minute_feed_the_dashboard_once_per_sale() {
    let hub = TestHub::start(|_| {}).await;
    let client = hub.store_client(&hub.enroll("s1"));
    let admin = hub.admin();
    let now = SystemClock.now_ms();
    let mut s1 = SimStore::new("s1", 9);
    s1.set_clock(now - 120_000);
    s1.receive(gtin(1), 20);
    s1.sell(gtin(1), 2).unwrap();
    s1.set_clock(now - 30_000);
    s1.sell(gtin(1), 3).unwrap();
    let req = s1.request(100);
    let resp = client.sync(&req).await.unwrap();
    // A re-sent request (lost response) must not count the sales twice.
    client.sync(&req).await.unwrap();
    s1.apply(&req, &resp);

    let (status, body) = admin.get("/v1/stats/sales?minutes=10").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["bucket_seconds"], 60);
    let points = body["stores"]["s1"].as_array().unwrap();
    let units: u64 = points.iter().map(|p| p["units"].as_u64().unwrap()).sum();
    assert_eq!(units, 5, "{body}");
    assert!(points.iter().all(|p| p["t"].as_u64().unwrap() % 60 == 0));
    let (status, _) = admin.get("/v1/stats/sales?minutes=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_changes_reach_stores_in_pages_and_state_survives_restart() {
    let hub = TestHub::start(|c| c.catalog_page = 10).await;
    let bundle = hub.enroll("s1");
    let admin = hub.admin();
    let items: Vec<_> = (0..25)
        .map(|i| json!({"gtin": gtin(i).to_string(), "name": format!("item {i}"), "price_minor": 100 + i}))
        .collect();
    let (status, body) = admin.post("/v1/catalog", &json!({ "items": items })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"received": 25, "changed": 25}));
    let (status, _) = admin
        .post(
            "/v1/catalog",
            &json!({"items": [{"gtin": "123", "name": "x", "price_minor": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let client = hub.store_client(&bundle);
    let mut s1 = SimStore::new("s1", 2);
    let mut pages = Vec::new();
    loop {
        let req = s1.request(100);
        let resp = client.sync(&req).await.unwrap();
        pages.push((resp.catalog.len(), resp.more));
        s1.apply(&req, &resp);
        if !resp.more {
            break;
        }
    }
    assert_eq!(pages, vec![(10, true), (10, true), (5, false)]);
    assert_eq!(s1.mem.catalog.len(), 25);
    assert_eq!(s1.mem.catalog[&gtin(3)].price_minor, 103);

    s1.receive(gtin(1), 4);
    s1.sync_all(&client, 10).await;
    let (_, stock) = admin.get(&format!("/v1/stock/{}", gtin(1))).await;
    assert_eq!(stock["name"], "item 1", "the catalog name: {stock}");
    let before = admin.snapshot(&[gtin(1)]).await;

    // Restart on the same data directory: everything acknowledged is there.
    let (tmp, data) = hub.stop().await;
    let hub = TestHub::serve(tmp, data, |c| c.catalog_page = 10).await;
    let admin = hub.admin();
    assert_eq!(admin.snapshot(&[gtin(1)]).await, before);
    let client = hub.store_client(&bundle);
    let req = s1.request(100);
    let resp = client.sync(&req).await.unwrap();
    assert!(
        resp.catalog.is_empty(),
        "the store's catalog cursor is current"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn override_sales_and_epcs_sold_twice_are_exceptions() {
    let hub = TestHub::start(|_| {}).await;
    let (c1, c2) = (
        hub.store_client(&hub.enroll("s1")),
        hub.store_client(&hub.enroll("s2")),
    );
    let admin = hub.admin();
    let g = gtin(7);
    let epc = "3074257BF7194E4000001A85";
    let mut s1 = SimStore::new("s1", 3);
    let mut s2 = SimStore::new("s2", 4);
    s1.receive(g, 5);
    s2.receive(g, 5);
    let sale1 = s1.sell_epc(g, epc).unwrap();
    let sale2 = s2.sell_epc(g, epc).unwrap();
    let ov = s1.sell_override(gtin(8), 2);
    s1.sync_all(&c1, 10).await;
    s2.sync_all(&c2, 10).await;

    let (status, body) = admin.get("/v1/exceptions").await;
    assert_eq!(status, StatusCode::OK);
    let list = body["exceptions"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{body}");
    let before = list.len();
    let ovx = list.iter().find(|x| x["kind"] == "override_sale").unwrap();
    assert_eq!(ovx["store"], "s1");
    assert_eq!(ovx["event_ids"], json!([ov.to_string()]));
    assert!(ovx["at_ms"].as_u64().unwrap() > 0);
    assert_eq!(ovx["detail"]["approver"], "manager");
    let dx = list.iter().find(|x| x["kind"] == "epc_sold_twice").unwrap();
    assert_eq!(dx["store"], "s2");
    assert_eq!(dx["detail"]["epc"], epc);
    let mut ids: Vec<String> = dx["event_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want = vec![sale1.to_string(), sale2.to_string()];
    want.sort();
    assert_eq!(ids, want);
    // A refund without a receipt and a keyed price, each approved: an
    // exception each, with who keyed it and who approved it.
    let refund = s2.refund_without_receipt(g, 1);
    let keyed = s2.sell_keyed(g, 129, 100);
    s2.sync_all(&c2, 10).await;
    let (_, more) = admin.get("/v1/exceptions").await;
    let all = more["exceptions"].as_array().unwrap();
    assert_eq!(all.len(), before + 2, "{more}");
    let rx = all
        .iter()
        .find(|x| x["kind"] == "no_receipt_refund")
        .unwrap();
    assert_eq!(rx["event_ids"], json!([refund.to_string()]));
    assert_eq!(
        (&rx["detail"]["approver"], &rx["detail"]["reason"]),
        (&json!("manager"), &json!("no receipt"))
    );
    assert_eq!(
        (&rx["detail"]["cashier"], &rx["detail"]["till"]),
        (&json!("c-1"), &json!("till-1"))
    );
    assert_eq!(rx["detail"]["total_minor"], 100);
    let px = all.iter().find(|x| x["kind"] == "price_override").unwrap();
    assert_eq!(px["event_ids"], json!([keyed.to_string()]));
    assert_eq!(
        px["detail"]["price_overrides"],
        json!([{"gtin": g.to_string(), "catalog_minor": 129, "keyed_minor": 100}])
    );
    assert_eq!(px["detail"]["cashier"], "c-1");
    // Paging by id.
    let first = list[0]["id"].as_u64().unwrap();
    let (_, rest) = admin.get(&format!("/v1/exceptions?since={first}")).await;
    assert_eq!(rest["exceptions"].as_array().unwrap().len(), all.len() - 1);
    // Re-sending the same events records nothing new.
    s2.sync_all(&c2, 10).await;
    let (_, again) = admin.get("/v1/exceptions").await;
    assert_eq!(again, more);
    assert_eq!(
        (&more["open"], &more["acknowledged"]),
        (&json!(4), &json!(0))
    );

    // HQ acknowledges one: who, the note, when; once.
    let rid = rx["id"].as_u64().unwrap();
    let path = format!("/v1/exceptions/{rid}/ack");
    let anonymous = admin
        .client
        .http
        .post(format!("{}{path}", admin.client.base))
        .json(&json!({"by": "eve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = admin
        .post(&path, &json!({"by": "lp-ann", "note": "receipt found"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["already"], false, "{body}");
    assert_eq!(body["acknowledged"]["by"], "lp-ann", "{body}");
    assert_eq!(body["acknowledged"]["note"], "receipt found", "{body}");
    assert!(body["acknowledged"]["at"].as_str().unwrap().ends_with('Z'));
    let (status, body) = admin.post(&path, &json!({"by": "bo"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["already"], &body["acknowledged"]["by"]),
        (&json!(true), &json!("lp-ann")),
        "the first stands"
    );
    for (bad, want) in [
        (json!({"by": ""}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"by": "x\u{7}"}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"by": "x", "note": "n".repeat(1_001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"who": "x"}), StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = admin.post(&path, &bad).await;
        assert_eq!(status, want, "{bad}: {body}");
    }
    for id in ["999", "0", "9223372036854775808"] {
        let (status, _) = admin
            .post(&format!("/v1/exceptions/{id}/ack"), &json!({"by": "bo"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
    }
    let (status, _) = admin
        .post("/v1/exceptions/x/ack", &json!({"by": "bo"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, listed) = admin.get("/v1/exceptions").await;
    assert_eq!(
        (&listed["open"], &listed["acknowledged"]),
        (&json!(3), &json!(1))
    );
    let acked: Vec<&serde_json::Value> = listed["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| !x["acknowledged"].is_null())
        .collect();
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0]["id"].as_u64(), Some(rid));
    hub.stop().await;
}

/// Posts raw bytes to `/v1/sync` and names the answer, for the table of
/// refused requests.
async fn raw_case(
    name: &'static str,
    client: &support::HubClient,
    content_type: &str,
    body: Vec<u8>,
) -> (&'static str, StatusCode, String) {
    let (status, bytes) = client.post_raw(content_type, body).await.unwrap();
    (name, status, String::from_utf8_lossy(&bytes).into())
}

/// `req` with `entry` as its delta's entry for that counter (a delta
/// names each counter once).
fn put_entry(req: &mut tally_sync::SyncRequest, entry: DeltaEntry) {
    req.delta.entries.retain(|e| e.key != entry.key);
    req.delta.entries.push(entry);
}

/// Every refused request, and the hub's state before and after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_change_nothing() {
    let hub = TestHub::start(|c| c.max_sync_body = 64 * 1024).await;
    let admin = hub.admin();
    let (b1, b2, b3) = (hub.enroll("s1"), hub.enroll("s2"), hub.enroll("s3"));
    let (c1, c2, c3) = (
        hub.store_client(&b1),
        hub.store_client(&b2),
        hub.store_client(&b3),
    );
    let g = gtin(1);
    let mut s1 = SimStore::new("s1", 5);
    let mut s2 = SimStore::new("s2", 6);
    let mut s3 = SimStore::new("s3", 7);
    s1.receive(g, 10);
    s2.receive(g, 10);
    s3.receive(g, 10);
    s1.sync_all(&c1, 10).await;
    s2.sync_all(&c2, 10).await;
    s3.sync_all(&c3, 10).await;
    // Pending honest work that must not sneak in with a refused request.
    s1.sell(g, 1).unwrap();
    let before = admin.snapshot(&[g]).await;

    let mut cases: Vec<(&str, StatusCode, String)> = Vec::new();

    // No client certificate.
    let anon = hub.anonymous_client();
    let req = s1.request(10);
    let body = codec::encode(&req, Encoding::Binary).unwrap();
    cases.push(
        raw_case(
            "no certificate",
            &anon,
            Encoding::Binary.content_type(),
            body,
        )
        .await,
    );

    // s2's certificate, body naming s1.
    let err = c2.sync(&s1.request(10)).await.unwrap_err();
    cases.push(("another store in the body", err.0, err.1.to_string()));

    // s1's events inside s2's request: events naming another store.
    let mut req = s2.request(10);
    req.events = s1.request(10).events;
    let err = c2.sync(&req).await.unwrap_err();
    assert_eq!(
        err.1["event_id"],
        json!(req.events[0].id),
        "names the event to dead-letter"
    );
    cases.push(("another store's events", err.0, err.1.to_string()));

    // A forged delta: s1 raises the hub's P entry.
    let mut req = s1.request(10);
    let key = ItemKey::new(LocationId::new("s1").unwrap(), g);
    put_entry(
        &mut req,
        DeltaEntry {
            key: key.clone(),
            counter: BoundedCounter::from_entries([(ReplicaId::hub(), 100)], [], []),
        },
    );
    let err = c1.sync(&req).await.unwrap_err();
    cases.push(("forged hub entry", err.0, err.1.to_string()));

    // A forged delta: s1 writes s2's counter.
    let mut req = s1.request(10);
    put_entry(
        &mut req,
        DeltaEntry {
            key: ItemKey::new(LocationId::new("s2").unwrap(), g),
            counter: BoundedCounter::from_entries([(ReplicaId::new("s1").unwrap(), 1)], [], []),
        },
    );
    let err = c1.sync(&req).await.unwrap_err();
    cases.push(("another location's counter", err.0, err.1.to_string()));

    // An impossible delta: s1 sells 50 of the 10 it has.
    let mut req = s1.request(10);
    let s1r = ReplicaId::new("s1").unwrap();
    put_entry(
        &mut req,
        DeltaEntry {
            key: key.clone(),
            counter: BoundedCounter::from_entries([(s1r.clone(), 10)], [(s1r.clone(), 50)], []),
        },
    );
    let err = c1.sync(&req).await.unwrap_err();
    cases.push(("overdrawn rights", err.0, err.1.to_string()));

    // A transfer from the hub to s1, signed by s1.
    let mut req = s1.request(10);
    put_entry(
        &mut req,
        DeltaEntry {
            key: key.clone(),
            counter: BoundedCounter::from_entries(
                [],
                [],
                [(
                    TransferKey {
                        from: ReplicaId::hub(),
                        to: s1r.clone(),
                    },
                    5,
                )],
            ),
        },
    );
    let err = c1.sync(&req).await.unwrap_err();
    cases.push(("forged transfer from the hub", err.0, err.1.to_string()));

    // Unknown protocol major version, binary and JSON.
    let mut body = codec::encode(&s1.request(10), Encoding::Binary).unwrap();
    body[2..4].copy_from_slice(&(PROTOCOL_VERSION.major + 1).to_be_bytes());
    let (status, bytes) = c1
        .post_raw(Encoding::Binary.content_type(), body)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).to_string();
    assert!(text.contains("unsupported_protocol_version"), "{text}");
    assert!(
        text.contains(&format!("\"found\":\"{}.0\"", PROTOCOL_VERSION.major + 1)),
        "{text}"
    );
    cases.push(("protocol 3.0 (binary)", status, text));
    let mut v = serde_json::to_value(s1.request(10)).unwrap();
    v["version"] = json!({"major": 9, "minor": 0});
    cases.push(
        raw_case(
            "protocol 9.0 (json)",
            &c1,
            "application/json",
            serde_json::to_vec(&v).unwrap(),
        )
        .await,
    );

    // Oversized: announced by Content-Length.
    cases.push(
        raw_case(
            "oversized body",
            &c1,
            Encoding::Binary.content_type(),
            vec![0u8; 100 * 1024],
        )
        .await,
    );

    // Garbage bytes, binary and JSON; a wrong content type.
    cases.push(
        raw_case(
            "garbage (binary)",
            &c1,
            Encoding::Binary.content_type(),
            b"\x00\xffgarbage\x13\x37".to_vec(),
        )
        .await,
    );
    let mut almost = codec::encode(&s1.request(10), Encoding::Binary).unwrap();
    almost.truncate(almost.len() - 3);
    cases.push(
        raw_case(
            "truncated (binary)",
            &c1,
            Encoding::Binary.content_type(),
            almost,
        )
        .await,
    );
    cases.push(
        raw_case(
            "garbage (json)",
            &c1,
            "application/json",
            b"{\"version\":".to_vec(),
        )
        .await,
    );
    cases.push(raw_case("wrong content type", &c1, "text/plain", b"hello".to_vec()).await);

    // A certificate for "s1" from another CA: the TLS handshake fails.
    let other = tally_hub::pki::DataDir::new(hub.tmp.path().join("other-hub"));
    tally_hub::pki::init(&other, &[], &tally_store::SystemClock).unwrap();
    let forged = hub.tmp.path().join("forged-s1.pem");
    tally_hub::pki::enroll(&other, "s1", &forged, &tally_store::SystemClock).unwrap();
    let mut pem = std::fs::read_to_string(&forged).unwrap();
    let cut = pem.rfind("-----BEGIN CERTIFICATE-----").unwrap();
    pem.truncate(cut); // drop the other CA; trust the real hub's
    pem.push_str(&std::fs::read_to_string(hub.data.ca_cert()).unwrap());
    let forger = support::HubClient::new(&hub.base(), pem.as_bytes(), true);
    let body = codec::encode(&s1.request(10), Encoding::Binary).unwrap();
    let err = forger
        .post_raw(Encoding::Binary.content_type(), body)
        .await
        .expect_err("a foreign CA's certificate must not get through TLS");
    assert!(err.is_connect() || err.is_request(), "{err}");

    // Revoked certificate.
    tally_hub::pki::revoke(&hub.data, "s3").unwrap();
    s3.sell(g, 1).unwrap();
    let err = c3.sync(&s3.request(10)).await.unwrap_err();
    cases.push(("revoked certificate", err.0, err.1.to_string()));

    let expected = [
        ("no certificate", 401, "client_certificate_required"),
        ("another store in the body", 403, "forbidden_update"),
        ("another store's events", 422, "refused_update"),
        ("forged hub entry", 403, "forbidden_update"),
        ("another location's counter", 403, "forbidden_update"),
        ("overdrawn rights", 422, "refused_update"),
        ("forged transfer from the hub", 403, "forbidden_update"),
        ("protocol 3.0 (binary)", 400, "unsupported_protocol_version"),
        ("protocol 9.0 (json)", 400, "unsupported_protocol_version"),
        ("oversized body", 413, "body_too_large"),
        ("garbage (binary)", 400, "malformed_request"),
        ("truncated (binary)", 400, "malformed_request"),
        ("garbage (json)", 400, "malformed_request"),
        ("wrong content type", 415, "unsupported_content_type"),
        ("revoked certificate", 403, "certificate_revoked"),
    ];
    assert_eq!(cases.len(), expected.len());
    for ((what, status, body), (want_what, want_status, want_code)) in cases.iter().zip(expected) {
        assert_eq!(*what, want_what);
        assert_eq!(status.as_u16(), want_status, "{what}: {body}");
        assert!(body.contains(want_code), "{what}: {body}");
    }

    // Nothing changed: stock, store records, exceptions.
    assert_eq!(admin.snapshot(&[g]).await, before);
    let (_, text) = admin.get("/metrics").await;
    let text = text.as_str().unwrap().to_string();
    assert!(
        text.contains("tally_hub_sync_requests_total{outcome=\"forbidden\"} 4"),
        "{text}"
    );
    assert!(text.contains("tally_hub_sync_requests_total{outcome=\"cert_refused\"} 1"));

    // And at the storage level: only the three receipts are stored; the
    // pending sales carried by refused requests are not.
    let pending: Vec<_> = s1
        .request(10)
        .events
        .iter()
        .chain(s3.request(10).events.iter())
        .map(|e| e.id)
        .collect();
    assert_eq!(pending.len(), 2);
    let (tmp, data) = hub.stop().await;
    {
        let audit = support::with_storage(tmp.path(), &data, |s| s.audit().unwrap());
        assert_eq!(audit.events, 3, "the receipts only");
        assert!(
            audit.rows.iter().all(|r| r.sold == 0),
            "no pending sale stored: {pending:?}"
        );
    }
    let hub = TestHub::serve(tmp, data, |c| c.max_sync_body = 64 * 1024).await;
    let admin = hub.admin();
    let c1 = hub.store_client(&b1);

    // The honest request still goes through afterwards.
    s1.sync_all(&c1, 10).await;
    let (_, stock) = admin.get(&format!("/v1/stock/{g}")).await;
    assert_eq!(stock["stores"]["s1"]["on_hand"], 9);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_the_token_and_validates_bodies() {
    let hub = TestHub::start(|_| {}).await;
    let anon = hub.anonymous_client();
    for path in [
        "/v1/stores",
        "/v1/exceptions",
        "/metrics",
        "/v1/stock/04006381333931",
    ] {
        let r = anon
            .http
            .get(format!("{}{path}", anon.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // The dashboard's static page needs no token (its data does).
    for (path, ct) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
    ] {
        let r = anon
            .http
            .get(format!("{}{path}", anon.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let got = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(got.starts_with(ct), "{path}: {got}");
    }
    let r = anon
        .http
        .get(format!("{}/v1/stores", anon.base))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The metrics token (made by init) reads /metrics and nothing else.
    let scraper = hub.data.read_metrics_token().unwrap().unwrap();
    assert_ne!(scraper, hub.data.read_admin_token().unwrap());
    for (path, status) in [
        ("/metrics", StatusCode::OK),
        ("/v1/stores", StatusCode::UNAUTHORIZED),
        ("/v1/exceptions", StatusCode::UNAUTHORIZED),
    ] {
        let r = anon
            .http
            .get(format!("{}{path}", anon.base))
            .bearer_auth(&scraper)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
    }
    // A store certificate is no admin credential.
    let store = hub.store_client(&hub.enroll("s1"));
    let r = store
        .http
        .post(format!("{}/v1/orders", store.base))
        .json(&json!({"store": "s1", "lines": [{"gtin": "04006381333931", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let admin = hub.admin();
    let (status, _) = admin.get("/v1/stock/12345").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = admin.post("/v1/orders", &json!({"store": "s1"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = admin
        .post(
            "/v1/orders",
            &json!({"store": "s1", "lines": [], "extra": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin
        .post(
            "/v1/orders",
            &json!({"store": "hub", "lines": [{"gtin": "04006381333931", "qty": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A store never seen: the hub holds nothing there.
    let (status, body) = admin
        .post(
            "/v1/orders",
            &json!({"store": "nowhere", "lines": [{"gtin": "04006381333931", "qty": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["available"], 0);
    let (status, body) = admin.get("/v1/stock/04006381333931").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"gtin": "04006381333931", "name": null, "on_hand": 0, "stores": {}})
    );
    hub.stop().await;
}

/// A body with no Content-Length (chunked) is cut off while it is read,
/// not after it was buffered whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_refused_while_reading() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let hub = TestHub::start(|c| c.max_sync_body = 64 * 1024).await;
    let bundle = hub.enroll("s1");
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(hub.data.ca_cert()).unwrap())
        .unwrap();
    let certs: Vec<_> = CertificateDer::pem_file_iter(&bundle)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&bundle).unwrap();
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let (mut rd, mut wr) = tokio::io::split(tls);
    let writer = tokio::spawn(async move {
        let head = "POST /v1/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-tally-sync\r\nTransfer-Encoding: chunked\r\n\r\n";
        if wr.write_all(head.as_bytes()).await.is_err() {
            return 0usize;
        }
        let chunk = vec![b'x'; 16 * 1024];
        let mut sent = 0;
        for _ in 0..256 {
            let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            if wr.write_all(&frame).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut response = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    response.extend_from_slice(&buf[..n]);
                    if response.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no response within 20 s");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    writer.abort();
    hub.stop().await;
}

/// Many stores sync at once (so the writer commits several requests per
/// transaction) while HQ takes online orders; afterwards every store and
/// the hub agree, and units are conserved exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stores_and_orders_converge_and_conserve_stock() {
    use rand::{Rng, SeedableRng};
    const STORES: usize = 16;
    const ITEMS: u64 = 3;
    const RECEIVED: u64 = 20;
    let seed = 20_261_123u64;
    println!("seed {seed}");
    let hub = TestHub::start(|_| {}).await;
    // Online demand everywhere first, so the hub takes a reserve at every
    // store on its first sync.
    for i in 0..STORES {
        for g in 0..ITEMS {
            hub.admin()
                .online_demand(&format!("s{i:02}"), gtin(g), 1)
                .await;
        }
    }
    let mut tasks = Vec::new();
    for i in 0..STORES {
        let id = format!("s{i:02}");
        let client = hub.store_client(&hub.enroll(&id));
        tasks.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + i as u64);
            let mut store = SimStore::new(&id, seed + 100 + i as u64);
            for g in 0..ITEMS {
                store.receive(gtin(g), RECEIVED);
            }
            store.sync_all(&client, 20).await;
            let mut sold = 0u64;
            for _ in 0..4 {
                for _ in 0..6 {
                    if store.sell(gtin(rng.gen_range(0..ITEMS)), 1).is_ok() {
                        sold += 1;
                    }
                }
                let req = store.request(1000);
                let resp = client.sync(&req).await.unwrap();
                store.apply(&req, &resp);
            }
            (store, client, sold)
        }));
    }
    // Online orders race the stores' syncs.
    let admin = hub.admin();
    let mut ordered = 0u64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for n in 0..60 {
        let store = format!("s{:02}", rng.gen_range(0..STORES));
        let g = gtin(rng.gen_range(0..ITEMS));
        let order = json!({"order_id": format!("o{n}"), "store": store,
                           "lines": [{"gtin": g.to_string(), "qty": 1}]});
        let (status, body) = admin.post("/v1/orders", &order).await;
        match status {
            StatusCode::CREATED => ordered += 1,
            StatusCode::CONFLICT => assert_eq!(body["error"], "insufficient_stock"),
            other => panic!("order {n}: {other} {body}"),
        }
    }
    let mut stores = Vec::new();
    let mut sold = 0;
    for t in tasks {
        let (store, client, s) = t.await.unwrap();
        sold += s;
        stores.push((store, client));
    }
    assert!(
        ordered > 0,
        "some orders must find hub rights (seed {seed})"
    );
    // Heal: every store catches up with the orders.
    for (store, client) in &mut stores {
        store.sync_all(client, 20).await;
    }
    let mut total_on_hand = 0;
    for g in 0..ITEMS {
        let (_, stock) = admin.get(&format!("/v1/stock/{}", gtin(g))).await;
        for (store, _) in &stores {
            let id = store.mem.who.replica.to_string();
            let hub_view = &stock["stores"][&id];
            assert_eq!(hub_view["on_hand"], store.on_hand(gtin(g)), "{id} {g}");
            assert_eq!(hub_view["store_rights"], store.rights(gtin(g)), "{id} {g}");
        }
        total_on_hand += stock["on_hand"].as_u64().unwrap();
    }
    let received = STORES as u64 * ITEMS * RECEIVED;
    assert_eq!(
        total_on_hand + sold + ordered,
        received,
        "units are conserved"
    );
    let (_, text) = admin.get("/metrics").await;
    let text = text.as_str().unwrap().to_string();
    let expected_events = STORES as u64 * ITEMS + sold;
    assert!(
        text.contains(&format!(
            "tally_hub_events_received_total {expected_events}\n"
        )),
        "{text}"
    );
    hub.stop().await;
}

/// A large request (decoded off the async workers) goes through whole,
/// with the cap on events per request raised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_syncs_in_one_request() {
    let hub = TestHub::start(|c| c.max_sync_events = 10_000).await;
    let client = hub.store_client(&hub.enroll("s1"));
    let mut s1 = SimStore::new("s1", 9);
    for i in 0..8000 {
        s1.receive(gtin(i % 50), 1);
    }
    let req = s1.request(10_000);
    let size = codec::encode(&req, Encoding::Binary).unwrap().len();
    assert!(size > 256 * 1024, "{size} bytes");
    let resp = client.sync(&req).await.unwrap();
    assert_eq!(resp.acked_events_upto, 8000);
    s1.apply(&req, &resp);
    let (_, stores) = hub.admin().get("/v1/stores").await;
    assert_eq!(stores["stores"][0]["events_received"], 8000);
    hub.stop().await;
}

/// More events than the cap in one request: 413 `too_many_events`, and
/// nothing is stored; the same events in requests under the cap go
/// through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_events_than_the_cap_are_refused_whole() {
    let hub = TestHub::start(|_| {}).await;
    let client = hub.store_client(&hub.enroll("s1"));
    let mut s1 = SimStore::new("s1", 9);
    for i in 0..1001 {
        s1.receive(gtin(i % 7), 1);
    }
    let (status, body) = client.sync(&s1.request(1001)).await.unwrap_err();
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "too_many_events", "{body}");
    let (_, stores) = hub.admin().get("/v1/stores").await;
    assert_eq!(
        stores["stores"].as_array().map(Vec::len),
        Some(0),
        "{stores}"
    );
    let (_, text) = hub.admin().get("/metrics").await;
    let text = text.as_str().unwrap_or_default();
    assert!(
        text.contains("tally_hub_shed_total{reason=\"too_many_events\"} 1"),
        "{text}"
    );
    assert_eq!(s1.sync_all(&client, 10).await, 2, "1,000 then 1");
    hub.stop().await;
}

/// Online demand is recorded per (store, item) by every first attempt of
/// an order, refused or accepted, durably in the order's own transaction,
/// and a retry flagged `record_demand: false` does not count it again; the
/// reserve targets a sync answers follow it.
#[test]
fn online_orders_are_demand_and_the_reserve_follows_it() {
    use tally_hub::storage::redb::SyncSettings;
    use tally_hub::storage::{HubStorage, OrderRequest, OrderResult, RedbHub};
    const NOW: u64 = 1_750_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let defaults = tally_hub::Config::new(dir.path());
    let settings = SyncSettings {
        policy: defaults.policy,
        limits: tally_sync::exchange::HubLimits::default(),
        catalog_page: defaults.catalog_page,
    };
    let path = dir.path().join("hub.redb");
    let hub = RedbHub::open(&path, settings).unwrap();
    let (a, b) = (gtin(1), gtin(2));
    let order = |id: &str, g, qty, record_demand| OrderRequest {
        order_id: id.into(),
        store: LocationId::new("s1").unwrap(),
        lines: vec![(g, qty)],
        event_id: tally_sync::EventId::v7(NOW, [id.as_bytes()[1]; 10]),
        now_ms: NOW,
        record_demand,
    };
    let place = |hub: &RedbHub, o: OrderRequest| {
        let mut out = None;
        hub.write_batch(&mut |txn| {
            out = Some(txn.order(&o)?);
            Ok(())
        })
        .unwrap();
        out.unwrap()
    };
    // A retry flagged not to count: no demand, no reserve.
    let r = place(&hub, order("w1", a, 15, false));
    assert!(matches!(r, OrderResult::InsufficientStock { .. }), "{r:?}");
    let mut s1 = SimStore::new("s1", 1);
    s1.receive(a, 10);
    s1.receive(b, 10);
    let (_, resp) = s1.sync_in_storage(&hub, NOW);
    assert!(resp.reserve.is_empty(), "{:?}", resp.reserve);
    assert_eq!(s1.rights(a), 10);

    // The same order refused as a first attempt is demand, kept across a
    // restart: 15 units want a reserve of 2 under the defaults.
    drop(hub);
    let hub = RedbHub::open(&path, settings).unwrap();
    let r = place(&hub, order("w2", a, 15, true));
    assert!(matches!(r, OrderResult::InsufficientStock { .. }), "{r:?}");
    drop(hub);
    let hub = RedbHub::open(&path, settings).unwrap();
    let (_, resp) = s1.sync_in_storage(&hub, NOW);
    assert_eq!(
        resp.reserve,
        vec![tally_sync::ReserveTarget { gtin: a, units: 2 }]
    );
    assert_eq!((s1.rights(a), s1.rights(b)), (8, 10), "b has no demand");
    // The hub learns of the store's transfer on the next sync.
    s1.sync_in_storage(&hub, NOW);
    // An accepted order is demand too.
    let r = place(&hub, order("w3", a, 2, true));
    assert!(matches!(r, OrderResult::Accepted(_)), "{r:?}");
    let (_, resp) = s1.sync_in_storage(&hub, NOW);
    assert_eq!(resp.reserve[0].units, 2, "17 units: ceil(1.68)");
    // Months later the demand is negligible: the hub gives its reserve
    // back.
    let later = NOW + 120 * 24 * 3_600_000;
    let (_, resp) = s1.sync_in_storage(&hub, later);
    assert!(resp.reserve.is_empty(), "{:?}", resp.reserve);
    let (_, _) = s1.sync_in_storage(&hub, later);
    assert_eq!(s1.rights(a), 8, "10 received, 2 ordered online");
}

/// A store whose clock ran two days ahead records a sale the hub refuses
/// for its date (`event_out_of_window`): the store keeps it and sends it
/// again (a store that dead-letters it instead has its own entries, which
/// only that sale explains, refused on every later sync). The hub held
/// the event: HQ lists it and admits it, and the store syncs again, its
/// sales dated alike for a week with it. An event refused for anything
/// but its date stays refused when admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_refused_for_its_date_is_held_and_admitted_by_hq() {
    let hub = TestHub::start(|_| {}).await;
    let c1 = hub.store_client(&hub.enroll("s1"));
    let admin = hub.admin();
    let g = gtin(7);
    let mut s1 = SimStore::new("s1", 3);
    s1.receive(g, 5);
    s1.sync_all(&c1, 10).await;
    let now = SystemClock.now_ms();
    s1.set_clock(now + 2 * 24 * 3_600_000);
    let ahead = s1.sell(g, 1).unwrap();
    let req = s1.request(1000);
    let (status, body) = c1.sync(&req).await.unwrap_err();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "event_out_of_window", "{body}");
    assert_eq!(body["event_id"], json!(ahead.to_string()));
    // Dead-lettered by the store: the rest is refused all the same.
    let mut rest = req.clone();
    rest.events.retain(|e| e.id != ahead);
    let (status, body) = c1.sync(&rest).await.unwrap_err();
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden_update")),
        "{body}"
    );

    let (_, held) = admin.get("/v1/held").await;
    let list = held["held"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{held}");
    assert_eq!(list[0]["event_id"], json!(ahead.to_string()));
    assert_eq!(list[0]["store"], "s1");
    // What admitting it would let through: the store's two days ahead.
    let offset = list[0]["clock_offset_ms"].as_i64().unwrap();
    assert!((offset - 2 * 24 * 3_600_000).abs() < 60_000, "{held}");
    assert!(
        list[0]["reason"]
            .as_str()
            .unwrap()
            .contains("outside the hub's window"),
        "{held}"
    );
    let (_, x) = admin.get("/v1/exceptions").await;
    assert!(
        x["exceptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "event_held" && e["event_ids"] == json!([ahead.to_string()])),
        "{x}"
    );
    // Refused again, it is held once.
    c1.sync(&req).await.unwrap_err();
    let (_, again) = admin.get("/v1/held").await;
    assert_eq!(again["held"].as_array().unwrap().len(), 1);

    let admit = format!("/v1/held/{ahead}/admit");
    let (status, v) = admin.post(&admit, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["store"], "s1");
    let ahead_ms = v["dates_allowed"]["ahead_ms"].as_u64().unwrap();
    assert!(ahead_ms > 2 * 24 * 3_600_000, "{v}");
    let resp = c1.sync(&req).await.expect("the store syncs again");
    s1.apply(&req, &resp);
    // Its clock still ahead, its next sale goes through without HQ.
    s1.sell(g, 1).unwrap();
    s1.sync_all(&c1, 10).await;
    let (_, held) = admin.get("/v1/held").await;
    assert!(held["held"].as_array().unwrap().is_empty(), "{held}");
    let (status, _) = admin.post(&admit, &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, stock) = admin.get(&format!("/v1/stock/{g}")).await;
    assert_eq!(stock["on_hand"], 3, "the admitted sale counts: {stock}");

    // Another store's event, sent by s1: held, but never admitted.
    let mut s2 = SimStore::new("s2", 4);
    s2.receive(g, 1);
    let foreign = s2.request(1000).events[0].clone();
    let mut forged = s1.request(1000);
    forged.events.push(foreign.clone());
    let (status, _) = c1.sync(&forged).await.unwrap_err();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, v) = admin
        .post(&format!("/v1/held/{}/admit", foreign.id), &json!({}))
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("still_refused")),
        "{v}"
    );
    let (status, _) = admin.post("/v1/held/not-a-uuid/admit", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    hub.stop().await;
}
