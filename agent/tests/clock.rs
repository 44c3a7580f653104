//! The agent's wall clock is the one it is given: an agent started with a
//! `ManualClock` records events at the manual time, and only moves when
//! the clock does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{TestAgent, PEN};
use serde_json::json;
use tally_agent::config::{parse_store_id, Config};
use tally_sync::clock::ManualClock;

/// 2025-06-15T12:00:00Z.
const T0: u64 = 1_749_988_800_000;

#[tokio::test]
async fn events_are_stamped_with_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let config = Config::new(dir.path(), Some(parse_store_id("s1").unwrap()));
    let a = TestAgent::try_start_with_clock(config, clock.clone())
        .await
        .unwrap();
    a.receive(PEN, 5).await;

    let sell = || {
        a.post(
            "/v1/sales",
            json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 100}]}),
        )
    };
    let (s, first) = sell().await;
    assert_eq!(s, 201, "{first}");
    let first_id = first["sale_id"].as_str().unwrap().to_string();
    // Time passes only when the clock is told to.
    clock.advance(90_000);
    let (s, second) = sell().await;
    assert_eq!(s, 201, "{second}");
    let second_id = second["sale_id"].as_str().unwrap().to_string();

    for (id, at) in [(&first_id, T0), (&second_id, T0 + 90_000)] {
        let (s, sale) = a.get(&format!("/v1/sales/{id}")).await;
        assert_eq!(s, 200, "{sale}");
        assert_eq!(sale["at_ms"].as_u64(), Some(at), "{sale}");
        // The generated id is a UUIDv7 carrying the same time.
        let uuid: uuid::Uuid = id.parse().unwrap();
        let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
        assert_eq!(secs * 1_000 + u64::from(nanos / 1_000_000), at, "{id}");
    }
    a.stop().await.unwrap();
}
