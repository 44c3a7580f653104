//! Rights on demand over real mutual TLS: a store that sold its own
//! rights asks the hub for the reserve it holds there, unit by unit; the
//! hub grants what it holds, durably and once per request id, and says
//! why when it holds no more.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{gtin, SimStore, TestHub};
use tally_sync::rights::RightsRequest;
use tally_sync::{BoundedCounter, EventId, Refusal, ReplicaId, Shortage};

fn request(n: u8, units: u64) -> RightsRequest {
    RightsRequest {
        request_id: EventId::v7(1_750_000_000_000, [n; 10]),
        gtin: gtin(1),
        units,
        own: BoundedCounter::default(),
    }
}

#[tokio::test]
async fn a_store_sells_the_hubs_reserve_on_request_and_never_twice() {
    let hub = TestHub::start(|_| {}).await;
    let client = hub.store_client(&hub.enroll("s1"));
    // Online demand for 15 units: the hub's reserve target is 2.
    hub.admin().online_demand("s1", gtin(1), 15).await;
    let mut s1 = SimStore::new("s1", 1);
    s1.receive(gtin(1), 10);
    s1.sync_all(&client, 10).await;
    // The hub keeps its reserve: the store may sell 8.
    assert_eq!(s1.rights(gtin(1)), 8);
    for _ in 0..8 {
        s1.sell(gtin(1), 1).unwrap();
    }
    let refused = s1.sell(gtin(1), 1).unwrap_err();
    assert_eq!(refused.shortage(true), Some(Shortage::HeldElsewhere));

    // Asked, the hub gives one unit of its reserve; the sale goes through.
    let g = client.rights(&request(1, 1)).await.unwrap();
    assert_eq!((g.asked, g.granted, g.reason), (1, 1, None));
    assert!(s1.mem.apply_grant(&g));
    s1.sell(gtin(1), 1).unwrap();

    // The same request again: the same answer, nothing more given.
    let again = client.rights(&request(1, 1)).await.unwrap();
    assert_eq!(again.granted, 1);
    assert!(!s1.mem.apply_grant(&again), "nothing new to merge");
    let admin = hub.admin();
    let (_, stock) = admin.get(&format!("/v1/stock/{}", gtin(1))).await;
    assert_eq!(stock["stores"]["s1"]["hub_rights"], 1, "{stock}");

    // More than the hub holds: what it holds, and why not the rest.
    let g = client.rights(&request(2, 5)).await.unwrap();
    assert_eq!((g.granted, g.reason), (1, Some(Shortage::NoStock)));
    s1.mem.apply_grant(&g);
    s1.sell(gtin(1), 1).unwrap();
    match s1.sell(gtin(1), 1).unwrap_err() {
        r @ Refusal::InsufficientStock { on_hand: 0, .. } => {
            assert_eq!(r.shortage(true), Some(Shortage::NoStock));
        }
        other => panic!("{other:?}"),
    }

    // An id reused for another request, a bad one, no certificate.
    let (status, body) = client.rights(&request(1, 2)).await.unwrap_err();
    assert_eq!(
        (status, body["error"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("request_id_conflict")
        )
    );
    let (status, _) = client.rights(&request(3, 0)).await.unwrap_err();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = hub
        .anonymous_client()
        .rights(&request(4, 1))
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Entries the store does not own (the hub's rights, raised) are forged.
    let mut forged = request(5, 1);
    forged.own.add(&ReplicaId::hub(), 100).unwrap();
    let (status, body) = client.rights(&forged).await.unwrap_err();
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::FORBIDDEN, json!("forbidden_update"))
    );

    // Everything settles: the shelf is empty, every counter agrees.
    s1.sync_all(&client, 10).await;
    let (_, stock) = admin.get(&format!("/v1/stock/{}", gtin(1))).await;
    assert_eq!(stock["on_hand"], 0, "{stock}");
    assert_eq!(s1.on_hand(gtin(1)), 0);
    let (_, metrics) = admin.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        "tally_hub_rights_requests_total{result=\"granted\"} 1",
        "tally_hub_rights_requests_total{result=\"partial\"} 1",
        "tally_hub_rights_requests_total{result=\"replayed\"} 1",
        "tally_hub_rights_granted_units_total 2",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    hub.stop().await;
}
