//! Enrollment by certificate signing request and renewal, against the
//! real hub in-process: a store makes its own key, redeems a one-time code
//! over server-authenticated TLS (`POST /v1/enroll`) and syncs with the
//! certificate it got; a code is good once, for its store only; a store
//! renews over its mutual-TLS connection (`POST /v1/renew`) and syncs
//! with the new certificate; a revoked certificate cannot renew; a CA
//! rotation in its three steps keeps every store that renewed syncing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::Value;
use support::{csr, gtin, HubClient, SimStore, TestHub};
use tally_hub::pki;
use tally_service::identity::{bundle_pem, EnrollRequest, IssuedIdentity, RenewRequest};

/// Redeems `code` for `store` with a new key; the bundle on success.
async fn enroll(hub: &TestHub, store: &str, code: &str) -> Result<String, (StatusCode, Value)> {
    support::redeem_code(&hub.anonymous_client(), store, code).await
}

fn code(hub: &TestHub, store: &str) -> String {
    pki::enroll_code(&hub.data, store, 3_600_000, &tally_store::SystemClock)
        .unwrap()
        .code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_enrolls_with_a_code_and_syncs() {
    let hub = TestHub::start(|_| {}).await;
    let c = code(&hub, "store-north");
    let bundle = enroll(&hub, "store-north", &c).await.unwrap();
    let client = HubClient::new(&hub.base(), bundle.as_bytes(), true);
    let mut store = SimStore::new("store-north", 1);
    store.receive(gtin(1), 5);
    store.sell(gtin(1), 2).unwrap();
    store.sync_all(&client, 10).await;
    let (status, stock) = hub.admin().get(&format!("/v1/stock/{}", gtin(1))).await;
    assert_eq!(status, StatusCode::OK, "{stock}");
    assert_eq!(stock["on_hand"], 3, "{stock}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_good_once_for_its_store_only() {
    let hub = TestHub::start(|_| {}).await;
    let c = code(&hub, "s1");
    // Another store cannot use it, and that does not burn it.
    let (status, body) = enroll(&hub, "s2", &c).await.unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "enrollment_refused", "{body}");
    // A malformed request does not burn it either.
    let bad = EnrollRequest {
        store: "s1".into(),
        code: c.clone(),
        csr: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            .into(),
    };
    let (status, body) = hub.anonymous_client().post_json("/v1/enroll", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "bad_csr", "{body}");
    // An unsafe store id is refused as such.
    let (status, body) = enroll(&hub, "..", &c).await.unwrap_err();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Good once.
    enroll(&hub, "s1", &c).await.unwrap();
    let (status, body) = enroll(&hub, "s1", &c).await.unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "enrollment_refused", "{body}");
    // A made-up code.
    let (status, _) = enroll(&hub, "s1", "aaaa-bbbb").await.unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Enrollments are redeemed a few at a time: beyond, `503 busy` at
/// once, and the code is not spent (0 here: every one is beyond).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_beyond_the_ones_at_once_is_busy_and_spends_no_code() {
    let hub = TestHub::start(|c| c.max_enrollments = 0).await;
    let c = code(&hub, "s1");
    let (status, body) = enroll(&hub, "s1", &c).await.unwrap_err();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "busy", "{body}");
    let (tmp, data) = hub.stop().await;
    let hub = TestHub::serve(tmp, data, |_| {}).await;
    enroll(&hub, "s1", &c).await.unwrap();
}

/// Renews over the connection of `bundle`; the new bundle.
async fn renew(hub: &TestHub, bundle: &str) -> Result<String, (StatusCode, Value)> {
    let client = HubClient::new(&hub.base(), bundle.as_bytes(), true);
    let (key, csr) = csr("hub");
    let (status, body) = client.post_json("/v1/renew", &RenewRequest { csr }).await;
    if status != StatusCode::OK {
        return Err((status, body));
    }
    let issued: IssuedIdentity = serde_json::from_value(body).unwrap();
    Ok(bundle_pem(
        &issued.certificate,
        &key.serialize_pem(),
        &issued.ca,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_renews_over_mtls_and_syncs_with_the_new_certificate() {
    let hub = TestHub::start(|_| {}).await;
    let old = std::fs::read_to_string(hub.enroll("s1")).unwrap();
    let new = renew(&hub, &old).await.unwrap();
    assert_ne!(old, new);
    let mut store = SimStore::new("s1", 7);
    store.receive(gtin(2), 4);
    let client = HubClient::new(&hub.base(), new.as_bytes(), true);
    store.sync_all(&client, 10).await;
    // The old certificate stays valid until it expires (or is revoked).
    store.receive(gtin(2), 1);
    let client = HubClient::new(&hub.base(), old.as_bytes(), true);
    store.sync_all(&client, 10).await;
    let (_, stock) = hub.admin().get(&format!("/v1/stock/{}", gtin(2))).await;
    assert_eq!(stock["on_hand"], 5, "{stock}");

    // Without a certificate there is nothing to renew.
    let (status, body) = hub
        .anonymous_client()
        .post_json("/v1/renew", &RenewRequest { csr: csr("s1").1 })
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_cannot_renew() {
    let hub = TestHub::start(|_| {}).await;
    let bundle = std::fs::read_to_string(hub.enroll("s1")).unwrap();
    let renewed = renew(&hub, &bundle).await.unwrap();
    // Revocation covers every certificate issued so far, renewed ones too.
    pki::revoke(&hub.data, "s1").unwrap();
    for b in [&bundle, &renewed] {
        let (status, body) = renew(&hub, b).await.unwrap_err();
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"], "certificate_revoked", "{body}");
    }
}

/// A store is issued at most `MAX_ISSUED_PER_DAY` certificates in any
/// 24 hours (its enrollment counts): a key run amok cannot make the hub
/// sign without end. Refused renewals leave the certificate valid, and
/// a day later the store renews again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_are_limited_per_store_and_day() {
    let clock = std::sync::Arc::new(tally_sync::clock::ManualClock::new(
        tally_sync::clock::Clock::now_ms(&tally_store::SystemClock),
    ));
    let hub = TestHub::start_with_clock(clock.clone(), |_| {}).await;
    let bundle = std::fs::read_to_string(hub.enroll("s1")).unwrap();
    for _ in 1..pki::MAX_ISSUED_PER_DAY {
        renew(&hub, &bundle).await.unwrap();
    }
    let client = HubClient::new(&hub.base(), bundle.as_bytes(), true);
    let body = RenewRequest { csr: csr("s1").1 };
    let resp = client
        .http
        .post(format!("{}/v1/renew", client.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()[reqwest::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=24 * 3600).contains(&retry), "Retry-After {retry}");
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["error"], "renewals_limited", "{answer}");
    // Another store is not limited by it, and s1 still syncs.
    let other = std::fs::read_to_string(hub.enroll("s2")).unwrap();
    renew(&hub, &other).await.unwrap();
    can_sync(&hub, &bundle, "s1").await.unwrap();
    assert_eq!(
        pki::issued_serials(&hub.data, "s1").unwrap().len(),
        pki::MAX_ISSUED_PER_DAY,
        "nothing signed for a refused renewal"
    );
    // A day later the store renews again.
    clock.advance(24 * 3600 * 1000 + 10 * 60 * 1000);
    renew(&hub, &bundle).await.unwrap();
}

/// A burst of renewals sent at once (a stolen key) gets no more than
/// the limit: each is counted after the one before it is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_sent_at_once_get_no_more_than_the_limit() {
    let hub = TestHub::start(|_| {}).await;
    let bundle = std::fs::read_to_string(hub.enroll("s1")).unwrap();
    let burst = 4 * pki::MAX_ISSUED_PER_DAY;
    // Each on a connection of its own, already open (its TLS handshake
    // done), so the renewals arrive together.
    let clients: Vec<HubClient> = (0..burst)
        .map(|_| HubClient::new(&hub.base(), bundle.as_bytes(), true))
        .collect();
    for c in &clients {
        let warm = c
            .http
            .get(format!("{}/v1/allocations", c.base))
            .send()
            .await;
        assert!(warm.is_ok(), "{warm:?}");
    }
    let requests: Vec<RenewRequest> = (0..burst)
        .map(|_| RenewRequest { csr: csr("s1").1 })
        .collect();
    let answers = futures_util::future::join_all(
        clients
            .iter()
            .zip(&requests)
            .map(|(c, r)| c.post_json("/v1/renew", r)),
    )
    .await;
    let issued = answers.iter().filter(|a| a.0 == StatusCode::OK).count();
    assert_eq!(issued, pki::MAX_ISSUED_PER_DAY - 1, "the enrollment counts");
    for refused in answers.iter().filter(|a| a.0 != StatusCode::OK) {
        assert_eq!(refused.0, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
    }
    assert_eq!(
        pki::issued_serials(&hub.data, "s1").unwrap().len(),
        pki::MAX_ISSUED_PER_DAY
    );
}

/// A renewal that passed the certificate check, its body still on the
/// way when the store is revoked (a stolen key keeping a renewal open to
/// outlive its revocation): refused, and no certificate leaves the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_racing_a_revocation_is_refused() {
    let hub = TestHub::start(|_| {}).await;
    let bundle = std::fs::read_to_string(hub.enroll("s1")).unwrap();
    let client = HubClient::new(&hub.base(), bundle.as_bytes(), true);
    let body = serde_json::to_vec(&RenewRequest { csr: csr("s1").1 }).unwrap();
    let (send_body, body_sent) = tokio::sync::oneshot::channel::<()>();
    let slow_body = futures::stream::once(async move {
        let _ = body_sent.await;
        Ok::<_, std::io::Error>(body)
    });
    let renewing = tokio::spawn(
        client
            .http
            .post(format!("{}/v1/renew", client.base))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(slow_body))
            .send(),
    );
    // Time for the request's head to be checked before the revocation.
    // Had it not been, it is refused all the same: the assertion below
    // holds for every order of the two.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    pki::revoke(&hub.data, "s1").unwrap();
    send_body.send(()).unwrap();
    let resp = renewing.await.unwrap().unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "certificate_revoked", "{body}");
}

/// Whether a store with `bundle` can sync (`Err`: the status or the
/// connection error).
async fn can_sync(hub: &TestHub, bundle: &str, store: &str) -> Result<(), String> {
    let client = HubClient::new(&hub.base(), bundle.as_bytes(), true);
    let s = SimStore::new(store, 3);
    client
        .sync(&s.request(10))
        .await
        .map(drop)
        .map_err(|(status, body)| format!("{status} {body}"))
}

fn cas_in(bundle: &str) -> usize {
    bundle.matches("BEGIN CERTIFICATE").count() - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rotation_keeps_every_store_syncing() {
    let clock = tally_store::SystemClock;
    let hub = TestHub::start(|_| {}).await;
    let old_only = std::fs::read_to_string(hub.enroll("s1")).unwrap();
    assert_eq!(cas_in(&old_only), 1);
    let (tmp, data) = hub.stop().await;

    // Step 1: a new signing CA; the old one stays trusted.
    let rotated = pki::rotate_ca(&data, &clock).unwrap();
    assert_eq!(rotated.trusted, 2);
    assert!(rotated.retired_key.exists());
    let hub = TestHub::serve(tmp, data, |_| {}).await;
    can_sync(&hub, &old_only, "s1").await.unwrap();
    // New certificates come from the new CA with both CAs to trust.
    let renewed = renew(&hub, &old_only).await.unwrap();
    assert_eq!(cas_in(&renewed), 2);
    can_sync(&hub, &renewed, "s1").await.unwrap();
    let c = code(&hub, "s2");
    let s2 = enroll(&hub, "s2", &c).await.unwrap();
    assert_eq!(cas_in(&s2), 2);
    can_sync(&hub, &s2, "s2").await.unwrap();
    let (tmp, data) = hub.stop().await;

    // Step 2: the server certificate from the new CA. Stores that renewed
    // trust it; one that never did cannot reach the hub any more (which
    // is why this waits until every store has renewed).
    pki::reissue_server_cert(&data, &[], &clock).unwrap();
    let hub = TestHub::serve(tmp, data, |_| {}).await;
    can_sync(&hub, &renewed, "s1").await.unwrap();
    can_sync(&hub, &s2, "s2").await.unwrap();
    assert!(can_sync(&hub, &old_only, "s1").await.is_err());
    let (tmp, data) = hub.stop().await;

    // Step 3: only the new CA is trusted; a certificate of the old one no
    // longer gets through, even with the new CA to trust the hub by.
    assert_eq!(pki::retire_old_cas(&data).unwrap(), 1);
    let hub = TestHub::serve(tmp, data, |_| {}).await;
    can_sync(&hub, &renewed, "s1").await.unwrap();
    let mut old_cert_new_ca = old_only.clone();
    let cut = old_cert_new_ca
        .rfind("-----BEGIN CERTIFICATE-----")
        .unwrap();
    old_cert_new_ca.truncate(cut);
    old_cert_new_ca.push_str(&std::fs::read_to_string(hub.data.ca_cert()).unwrap());
    assert!(can_sync(&hub, &old_cert_new_ca, "s1").await.is_err());
    let again = renew(&hub, &renewed).await.unwrap();
    assert_eq!(cas_in(&again), 1);
}
