//! End to end, with the real binaries on loopback and real TLS: a hub
//! whose body limit is smaller than any sync request (a proxy's limit
//! set too low, say) answers every sync 413. The agent halves the events
//! per request down to one, then backs off as for an unreachable hub
//! instead of sending the same request again at once, forever (each
//! round an fsync and a TLS exchange); it keeps selling meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::chain::{init_hub, start_agent, start_hub_with, Api, LONG};
use support::procs::eventually;

const PEN: &str = "04006381333931";

/// `tally_hub_sync_requests_total{outcome="too_large"}`.
async fn too_large(hub: &Api) -> u64 {
    let (_, text) = hub.get_text("/metrics").await.unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("tally_hub_sync_requests_total{outcome=\"too_large\"} ")?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answered_413_at_one_event_backs_off() {
    let tmp = tempfile::tempdir().unwrap();
    let files = init_hub(tmp.path(), &["s1"]);
    let (hub_proc, hub_url) = start_hub_with(
        &files,
        "127.0.0.1:0",
        tmp.path().join("hub.log"),
        &["--max-sync-body", "64"],
    );
    let hub = Api::hub(&hub_url, &files);
    // Syncs every second; backoff of at most 2 s.
    let (agent_proc, agent_url) = start_agent(tmp.path(), "s1", &hub_url);
    let agent = Api::agent(&agent_url);
    let (status, body) = agent
        .post("/v1/receipts", &json!({"lines": [{"gtin": PEN, "qty": 5}]}))
        .await;
    assert_eq!(status, 201, "{body}");
    // Halved down to one event, still too large.
    let first = eventually("the hub refuses the syncs", LONG, || async {
        let n = too_large(&hub).await;
        if n >= 5 {
            Ok(n)
        } else {
            Err(n.to_string())
        }
    })
    .await;
    // Then at most one try per backoff (0 to 2 s, full jitter): a dozen
    // or so in 8 s. Sent again at once, it would be thousands.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let later = too_large(&hub).await - first;
    assert!(later < 100, "{later} refused syncs in 8 s: no backoff");
    // The store sells all the while.
    let (status, body) = agent
        .post(
            "/v1/sales",
            &json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 250}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    agent_proc.terminate(LONG);
    hub_proc.terminate(LONG);
}
