//! The hub's wall clock is the one it is given: a hub started with a
//! `ManualClock` records a store's sync at the manual time and counts the
//! store online exactly as long as the online window after it, by that
//! clock alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use support::{gtin, TestHub};
use tally_sync::clock::ManualClock;

/// 2025-06-15T12:00:00Z.
const T0: u64 = 1_749_988_800_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_window_follows_the_injected_clock() {
    let clock = Arc::new(ManualClock::new(T0));
    let hub = TestHub::start_with_clock(clock.clone(), |c| {
        c.online_window = Duration::from_secs(120);
    })
    .await;
    let client = hub.store_client(&hub.enroll("s1"));
    let admin = hub.admin();
    let mut s1 = support::SimStore::new("s1", 7);
    s1.receive(gtin(1), 3);
    s1.sync_all(&client, 10).await;

    let store = |v: &serde_json::Value| v["stores"][0].clone();
    let (status, stores) = admin.get("/v1/stores").await;
    assert_eq!(status, StatusCode::OK);
    let s = store(&stores);
    assert_eq!(s["store"], "s1");
    assert_eq!(s["last_sync_ms"].as_u64(), Some(T0), "{s}");
    assert_eq!(s["first_sync_ms"].as_u64(), Some(T0), "{s}");
    assert_eq!(s["last_sync_at"], "2025-06-15T12:00:00Z");
    assert_eq!(s["online"], true);

    // At the window's end the store is still online; one ms later it is not.
    clock.advance(120_000);
    let s = store(&admin.get("/v1/stores").await.1);
    assert_eq!(
        (&s["online"], s["seconds_since_last_sync"].as_u64()),
        (&serde_json::json!(true), Some(120)),
        "{s}"
    );
    clock.advance(1);
    let s = store(&admin.get("/v1/stores").await.1);
    assert_eq!(s["online"], false, "{s}");
    let (_, metrics) = admin.get("/metrics").await;
    let text = metrics.as_str().unwrap();
    assert!(text.contains("tally_hub_stores_online 0"), "{text}");

    // The next sync is recorded at the clock's new time.
    s1.receive(gtin(2), 1);
    s1.sync_all(&client, 10).await;
    let s = store(&admin.get("/v1/stores").await.1);
    assert_eq!(s["last_sync_ms"].as_u64(), Some(T0 + 120_001), "{s}");
    assert_eq!(s["first_sync_ms"].as_u64(), Some(T0), "{s}");
    assert_eq!(s["online"], true, "{s}");
    hub.stop().await;
}
