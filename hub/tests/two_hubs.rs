//! Two real `tally-hub` processes over one PostgreSQL database and one
//! shared data directory (its PKI files), behind no balancer: each client
//! picks a hub, as a TCP load balancer would. What the embedded hub's one
//! writer guarantees must hold across processes: the same sync sent to
//! both hubs at once is counted once, and a store's request for the
//! hub's last units racing an online order for them on the other hub:
//! exactly one gets them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::child::ChildHub;
use support::{gtin, pg, HubClient, SimStore};
use tally_sync::EventId;

/// Two hubs over one fresh database; the first `init`ed the data dir.
fn two_hubs(extra: &[&str]) -> (ChildHub, ChildHub) {
    let url = pg::database("two_hubs");
    let mut args = vec!["--database", url.as_str()];
    args.extend_from_slice(extra);
    let a = ChildHub::start(&args);
    let b = a.beside(&args);
    (a, b)
}

fn client(hub: &ChildHub, bundle: &std::path::Path) -> HubClient {
    let pem = std::fs::read(bundle).unwrap();
    HubClient::new(&hub.base, &pem, true)
}

/// Each round the store sells and sends its one sync request to both
/// hubs at once: both answer it (one as new, one as a repeat, in either
/// order), and the hubs count every event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_sync_sent_to_two_hubs_at_once_is_counted_once() {
    support::crypto();
    let (a, b) = two_hubs(&[]);
    let bundle = a.enroll("s1");
    let (ca, cb) = (client(&a, &bundle), client(&b, &bundle));
    let g = gtin(1);
    let mut s1 = SimStore::new("s1", 7);
    s1.receive(g, 100);
    s1.sync_all(&ca, 10).await;
    const ROUNDS: u64 = 20;
    for round in 0..ROUNDS {
        s1.sell(g, 1).unwrap();
        let req = s1.request(1000);
        let (ra, rb) = tokio::join!(ca.sync(&req), cb.sync(&req));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.acked_events_upto, rb.acked_events_upto, "round {round}");
        assert!(ra.rejected_events.is_empty() && rb.rejected_events.is_empty());
        s1.apply(&req, if round % 2 == 0 { &ra } else { &rb });
    }
    s1.sync_all(&cb, 10).await;

    // Either hub reads the same chain: 1 receipt + 20 sales, once each.
    for hub in [&a, &b] {
        let admin = hub.admin();
        let (status, audit) = admin.get("/v1/audit").await;
        assert_eq!(status, StatusCode::OK, "{audit}");
        assert_eq!(audit["events"], 1 + ROUNDS, "{audit}");
        assert_eq!(audit["double_sold"], 0, "{audit}");
        assert_eq!(audit["items"][0]["sold"], ROUNDS, "{audit}");
        assert_eq!(audit["items"][0]["on_hand"], 100 - ROUNDS, "{audit}");
        let (_, stores) = admin.get("/v1/stores").await;
        let s = &stores["stores"][0];
        assert_eq!(s["events_received"], 1 + ROUNDS, "{stores}");
        // Each process says it follows the others and the revocations.
        let (_, metrics) = admin.get("/metrics").await;
        let metrics = metrics.as_str().unwrap();
        for line in [
            "tally_hub_bus_connected 1\n",
            "tally_hub_revocations_followed 1\n",
            "tally_hub_bus_messages_dropped_total 0\n",
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }
    }
    assert_eq!(s1.on_hand(g), 100 - ROUNDS);
    a.stop();
    b.stop();
}

/// The hub holds the last 2 units of an item at s1 (its online reserve).
/// At once, s1 asks hub A for them (a till needs them) and an online
/// order for them reaches hub B: exactly one of the two gets them, every
/// round, and nothing is ever sold twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_and_an_online_order_racing_for_the_last_units_on_two_hubs_one_wins() {
    support::crypto();
    // B does not ask the store to release: the race is the point.
    let (a, b) = two_hubs(&["--rights-wait-ms", "0"]);
    let bundle = a.enroll("s1");
    let ca = client(&a, &bundle);
    let (admin_a, admin_b) = (a.admin(), b.admin());
    let mut s1 = SimStore::new("s1", 11);
    const ROUNDS: u64 = 12;
    let (mut store_won, mut order_won) = (0, 0);
    for round in 0..ROUNDS {
        let g = gtin(100 + round);
        // Online demand for 15 units: the hub's reserve target is 2.
        admin_a.online_demand("s1", g, 15).await;
        s1.receive(g, 10);
        s1.sync_all(&ca, 10).await;
        assert_eq!(s1.rights(g), 8, "round {round}: the hub keeps 2");
        s1.sell(g, 8).unwrap();
        s1.sync_all(&ca, 10).await;

        let request = s1.rights_request(EventId::v7(1_750_000_000_000 + round, [7; 10]), g, 2);
        let order = json!({"order_id": format!("web-{round}"), "store": "s1",
                           "lines": [{"gtin": g.to_string(), "qty": 2}]});
        let (granted, (status, body)) =
            tokio::join!(ca.rights(&request), admin_b.post("/v1/orders", &order));
        let granted = granted.unwrap();
        match (granted.granted, status) {
            (2, StatusCode::CONFLICT) => store_won += 1,
            (0, StatusCode::CREATED) => order_won += 1,
            other => panic!("round {round}: both or neither won: {other:?} {body}"),
        }
        assert!(s1.mem.apply_grant(&granted) || granted.granted == 0);
        if granted.granted == 2 {
            s1.sell(g, 2).unwrap();
        }
        s1.sync_all(&ca, 10).await;
        assert_eq!(s1.on_hand(g), 0, "round {round}");
    }
    assert_eq!(store_won + order_won, ROUNDS);
    eprintln!("store won {store_won}, online order won {order_won} of {ROUNDS}");
    let (_, audit) = admin_a.get("/v1/audit").await;
    assert_eq!(audit["double_sold"], 0, "{audit}");
    assert_eq!(audit["holdings_disagreeing"], 0, "{audit}");
    a.stop();
    b.stop();
}

/// `revoke --database` while two hub processes serve the database, the
/// second on its own copy of the data directory (another host: it never
/// sees the first's `revoked.txt`): both refuse the store's next sync,
/// with its first certificate and with the one it renewed at the second
/// host (which only that host's directory and the database know).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_in_the_database_reaches_every_hub_process_at_once() {
    use tally_service::identity::{bundle_pem, IssuedIdentity, RenewRequest};
    support::crypto();
    let url = pg::database("revoke");
    let args = ["--database", url.as_str()];
    let a = ChildHub::start(&args);
    let bundle = a.enroll("s1");
    let b = a.on_a_copy(&args);
    let (ca, cb) = (client(&a, &bundle), client(&b, &bundle));
    let mut s1 = SimStore::new("s1", 5);
    s1.receive(gtin(1), 3);
    s1.sync_all(&ca, 10).await;
    s1.sync_all(&cb, 10).await;

    // The store renews at B.
    let (key, csr) = support::csr("s1");
    let (status, body) = cb.post_json("/v1/renew", &RenewRequest { csr }).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let issued: IssuedIdentity = serde_json::from_value(body).unwrap();
    let renewed = bundle_pem(&issued.certificate, &key.serialize_pem(), &issued.ca);
    let (ra, rb) = (
        HubClient::new(&a.base, renewed.as_bytes(), true),
        HubClient::new(&b.base, renewed.as_bytes(), true),
    );
    s1.sync_all(&ra, 10).await;

    let stdout = support::child::revoke_in_database(a.data.root(), "s1", &url);
    assert!(stdout.contains("Recorded 2 new revocation(s)"), "{stdout}");

    // B learns of it by notification: poll briefly, with a deadline.
    s1.sell(gtin(1), 1).unwrap();
    let req = s1.request(1000);
    for (c, name) in [
        (&ca, "a"),
        (&cb, "b"),
        (&ra, "a, renewed"),
        (&rb, "b, renewed"),
    ] {
        support::child::until_revoked(c, &req, name).await;
    }
    a.stop();
    b.stop();
}

/// The limit of certificates a store is issued a day holds across hosts:
/// renewals at a hub on another host (its own copy of the data
/// directory, which never sees the first's certificates) count against
/// the same limit, read from the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_renewal_limit_counts_every_hosts_certificates() {
    use tally_service::identity::RenewRequest;
    support::crypto();
    let url = pg::database("renewals");
    let args = ["--database", url.as_str()];
    let a = ChildHub::start(&args);
    let bundle = a.enroll("s1");
    let b = a.on_a_copy(&args);
    let (ca, cb) = (client(&a, &bundle), client(&b, &bundle));
    // The enrollment counts: the store may renew MAX - 1 times a day,
    // here at either host in turn.
    let request = || RenewRequest {
        csr: support::csr("s1").1,
    };
    for i in 1..tally_hub::pki::MAX_ISSUED_PER_DAY {
        let c = if i % 2 == 0 { &cb } else { &ca };
        let (status, body) = c.post_json("/v1/renew", &request()).await;
        assert_eq!(status, StatusCode::OK, "renewal {i}: {body}");
    }
    for (c, name) in [(&ca, "a"), (&cb, "b")] {
        let (status, body) = c.post_json("/v1/renew", &request()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "at {name}: {body}");
        assert_eq!(body["error"], "renewals_limited", "at {name}: {body}");
    }
    a.stop();
    b.stop();
}

/// Polls hub `admin`'s `GET /v1/stores` until store `s` is live there.
async fn wait_live(admin: &support::Admin, s: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, stores) = admin.get("/v1/stores").await;
        let live = stores["stores"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["store"] == s && r["live"] == true);
        if live {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{s} never live: {stores}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// s1's live link is on hub A; online orders reach hub B for more than
/// the hub's reserve. B asks s1 through A (the bus), s1 releases, and its
/// report reaches B (where the order waits) the first time and A (a
/// balancer's choice) the second: both orders go through at once. A
/// catalog change at B reaches s1's link at A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_at_one_hub_gets_rights_from_a_store_live_at_the_other() {
    use support::link::Link;
    use tally_sync::link::Notice;
    support::crypto();
    let (a, b) = two_hubs(&["--heartbeat-ms", "200", "--rights-wait-ms", "5000"]);
    let bundle = a.enroll("s1");
    let (ca, cb) = (client(&a, &bundle), client(&b, &bundle));
    let admin_b = b.admin();
    let g = gtin(1);
    let mut s1 = SimStore::new("s1", 3);
    s1.receive(g, 10);
    s1.sync_all(&ca, 10).await;
    let hub_rights = 10 - s1.rights(g);

    let mut link = Link::open(&ca).await;
    assert!(matches!(link.next().await, Notice::Hello { .. }));
    wait_live(&admin_b, "s1").await;

    for (round, report_to) in [(1u64, &cb), (2, &ca)] {
        let want = hub_rights + 2;
        let ordering = {
            let admin = b.admin();
            let body = json!({"order_id": format!("web-{round}"), "store": "s1",
                              "lines": [{"gtin": g.to_string(), "qty": want}]});
            tokio::spawn(async move { admin.post("/v1/orders", &body).await })
        };
        let notice = link.next().await;
        let Notice::RightsWanted {
            request_id,
            gtin: wanted,
            units,
            counter,
            ..
        } = notice
        else {
            panic!("round {round}: expected rights_wanted, got {notice:?}");
        };
        assert_eq!(wanted, g);
        let released = s1.mem.release(request_id, g, units, &counter);
        assert!(released.released > 0, "round {round}");
        let (status, _) = report_to.released(&released).await;
        assert_eq!(status, StatusCode::OK, "round {round}");
        let (status, receipt) = ordering.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "round {round}: {receipt}");
        s1.sync_all(&ca, 10).await;
    }

    let (status, _) = admin_b
        .post(
            "/v1/catalog",
            &json!({"items": [{"gtin": g.to_string(), "name": "Tea", "price_minor": 250}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(link.next().await, Notice::CatalogChanged);
    let (_, audit) = admin_b.get("/v1/audit").await;
    assert_eq!(audit["double_sold"], 0, "{audit}");
    drop(link);
    a.stop();
    b.stop();
}

/// An online order at hub B asks s1 (live at hub A) for its unsold
/// units and holds them; s1 releases them, but before its report arrives
/// its till asks hub A for rights (a balancer may send it anywhere): A
/// holds back what B's order holds, as one hub would, so the report then
/// fills the order. Without the hold shared, A would hand the released
/// units straight back to the till and the online sale would be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_held_for_an_order_at_one_hub_are_not_granted_at_the_other() {
    use support::link::Link;
    use tally_sync::link::Notice;
    support::crypto();
    let (a, b) = two_hubs(&["--heartbeat-ms", "200", "--rights-wait-ms", "5000"]);
    let bundle = a.enroll("s1");
    let (ca, cb) = (client(&a, &bundle), client(&b, &bundle));
    let g = gtin(1);
    let mut s1 = SimStore::new("s1", 4);
    s1.receive(g, 10);
    s1.sync_all(&ca, 10).await;
    let mut link = Link::open(&ca).await;
    assert!(matches!(link.next().await, Notice::Hello { .. }));
    wait_live(&b.admin(), "s1").await;

    let want = 10 - s1.rights(g) + 3;
    let ordering = {
        let admin = b.admin();
        let body = json!({"order_id": "web-held", "store": "s1",
                          "lines": [{"gtin": g.to_string(), "qty": want}]});
        tokio::spawn(async move { admin.post("/v1/orders", &body).await })
    };
    let (request_id, _, units, counter) = link.wanted().await;
    let released = s1.mem.release(request_id, g, units, &counter);
    assert!(released.released >= 3, "{released:?}");
    // The till, short now, asks A for 3 units: all are held for B's order.
    let asked = s1.rights_request(EventId::v7(1, [7; 10]), g, 3);
    let grant = ca.rights(&asked).await.unwrap();
    assert_eq!(grant.granted, 0, "A must hold back B's units: {grant:?}");
    // The report reaches B: the order is filled.
    assert_eq!(cb.released(&released).await.0, StatusCode::OK);
    let (status, receipt) = ordering.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    s1.sync_all(&ca, 10).await;
    let (_, audit) = b.admin().get("/v1/audit").await;
    assert_eq!(audit["double_sold"], 0, "{audit}");
    drop(link);
    a.stop();
    b.stop();
}

/// Redeems enrollment `code` for `store` at `hub` with a new key: the
/// identity bundle, or the refusal.
async fn redeem(
    hub: &ChildHub,
    store: &str,
    code: &str,
) -> Result<String, (StatusCode, serde_json::Value)> {
    support::redeem_code(
        &support::anonymous_client(&hub.base, &hub.data),
        store,
        code,
    )
    .await
}

/// `tally-hub enroll-code --database` on one host; two hub processes on
/// their own copies of the data directory (other hosts, which never see
/// a code file): the store redeems the code at either, once. Raced at
/// both at once, exactly one issues a certificate, and the store syncs
/// with it at the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_code_in_the_database_is_redeemed_once_at_any_hub() {
    support::crypto();
    let url = pg::database("codes");
    let args = ["--database", url.as_str()];
    let a = ChildHub::start(&args);
    let b = a.on_a_copy(&args);
    let data = a.data.root().to_str().unwrap().to_string();
    let make_code = |store: &str| {
        support::child::hub_command(&[
            "enroll-code",
            "--store",
            store,
            "--data-dir",
            &data,
            "--database",
            &url,
        ])
        .trim()
        .to_string()
    };
    // Kept in the database, not in the data directory.
    let code = make_code("s1");
    assert!(
        std::fs::read_dir(a.data.enroll_codes())
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "no code file"
    );
    // Another store's try at B does not burn it; s1 redeems it at B.
    let (status, _) = redeem(&b, "s2", &code).await.unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let bundle = redeem(&b, "s1", &code).await.unwrap();
    let (status, body) = redeem(&a, "s1", &code).await.unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let mut s1 = SimStore::new("s1", 9);
    s1.receive(gtin(1), 4);
    s1.sync_all(&HubClient::new(&a.base, bundle.as_bytes(), true), 10)
        .await;

    // Raced at both hubs at once: one certificate.
    for round in 0..5 {
        let code = make_code("s3");
        let (ra, rb) = tokio::join!(redeem(&a, "s3", &code), redeem(&b, "s3", &code));
        assert_eq!(
            u8::from(ra.is_ok()) + u8::from(rb.is_ok()),
            1,
            "round {round}: {:?} {:?}",
            ra.err(),
            rb.err()
        );
    }
    a.stop();
    b.stop();
}
