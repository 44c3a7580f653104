//! End to end, with the real binaries on loopback and real TLS: a store
//! whose clock runs three days ahead (the agent's process under
//! libfaketime, its monotonic clock left alone) records sales the hub
//! refuses for their date. The agent keeps them and sends them again;
//! the hub holds the first one for HQ; once HQ admits it, the store syncs
//! at once, and its later sales, dated by the same clock, go through
//! without HQ. Nothing is lost, nothing counted twice. The agent shows
//! its clock against the hub's all along.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::chain::{hub_sees, init_hub, start_agent_env, start_hub, Api, LONG};
use support::procs::eventually;

const PEN: &str = "04006381333931";

/// Debian's libfaketime (package `libfaketime`), which `.ci/run` installs.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

async fn sell(agent: &Api) {
    let (status, body) = agent
        .post(
            "/v1/sales",
            &json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 250}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn held(hub: &Api) -> Vec<Value> {
    let (status, v) = hub.get("/v1/held").await.unwrap();
    assert_eq!(status, 200, "{v}");
    v["held"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_clock_days_ahead_loses_no_sale_and_hq_admits_it_once() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: apt-get install libfaketime"
    );
    let tmp = tempfile::tempdir().unwrap();
    let files = init_hub(tmp.path(), &["s1"]);
    let (hub_proc, hub_url) = start_hub(&files, "127.0.0.1:0", tmp.path().join("hub.log"));
    let hub = Api::hub(&hub_url, &files);
    let (agent_proc, agent_url) = start_agent_env(
        tmp.path(),
        "s1",
        &hub_url,
        &["--sync-interval", "1"],
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME", "+3d"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let agent = Api::agent(&agent_url);

    let (status, body) = agent
        .post("/v1/receipts", &json!({"lines": [{"gtin": PEN, "qty": 5}]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let receipt = body["receipt_id"].as_str().unwrap().to_string();
    sell(&agent).await;

    // Refused for its date: held at the hub, kept by the store.
    let first = eventually("the hub holds the store's receipt", LONG, || async {
        let list = held(&hub).await;
        match list.first() {
            Some(h) if list.len() == 1 => Ok(h.clone()),
            _ => Err(format!("{list:?}")),
        }
    })
    .await;
    assert_eq!(first["event_id"], receipt.as_str(), "{first}");
    assert_eq!(first["store"], "s1");
    let status = eventually("the agent says why it is stuck", LONG, || async {
        let (_, s) = agent.get("/v1/status").await?;
        let error = s["sync_error"].as_str().unwrap_or_default();
        if error.contains("event_out_of_window") {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
    .await;
    assert_eq!(
        status["outbox_events"], 2,
        "kept, not dead-lettered: {status}"
    );
    // The agent sees its clock against the hub's `Date`.
    let offset = status["hub_clock_offset_ms"].as_i64().unwrap();
    let three_days = 3 * 24 * 3_600_000;
    assert!(
        (offset + three_days).abs() < 60_000,
        "three days ahead of the hub: {status}"
    );
    let (_, metrics) = agent.get_text("/metrics").await.unwrap();
    assert!(
        metrics.contains(&format!(
            "tally_agent_hub_clock_offset_seconds {}",
            offset / 1_000
        )),
        "{metrics}"
    );
    assert!(
        status["sync_error"]
            .as_str()
            .unwrap()
            .contains(&format!("/v1/held/{receipt}/admit")),
        "{status}"
    );
    // Sent again and again, held once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(held(&hub).await.len(), 1);

    // HQ admits it: the store syncs at once, both events counted once.
    let (code, admitted) = hub
        .post(&format!("/v1/held/{receipt}/admit"), &json!({}))
        .await;
    assert_eq!(code, 200, "{admitted}");
    let ahead_ms = admitted["dates_allowed"]["ahead_ms"].as_u64().unwrap();
    assert!(ahead_ms > 3 * 24 * 3_600_000, "{admitted}");
    hub_sees(&hub, "s1", PEN, 4).await;

    // Its clock still ahead, its next sales need no HQ.
    sell(&agent).await;
    sell(&agent).await;
    hub_sees(&hub, "s1", PEN, 2).await;
    eventually("the store's outbox empties", LONG, || async {
        let (_, s) = agent.get("/v1/status").await?;
        if s["outbox_events"] == 0 && s["sync_error"].is_null() {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
    assert!(held(&hub).await.is_empty());
    let (_, x) = hub.get("/v1/exceptions").await.unwrap();
    let kinds: Vec<&str> = x["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "event_held").count(),
        1,
        "{x}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "event_admitted").count(),
        1,
        "{x}"
    );
    agent_proc.terminate(LONG);
    hub_proc.terminate(LONG);
}
