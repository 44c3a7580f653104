//! `tally-agent run --scanner PATH --scanner-mode sell` end to end: the real
//! binary reads a real pseudo-terminal with the real scanner driver, and
//! every code scanned is a one-unit sale through the committer. Checked
//! from the outside (stock, metrics) and, after a graceful stop, from the
//! events in the agent's database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::pty::{metric, wait_metric, Pty};
use common::{agent_command, on_hand, AgentProcess, MUG, PEN};
use serde_json::json;
use tally_agent::store::AgentDb;
use tally_agent_api::client::AgentClient as ApiClient;
use tally_sync::EventKind;

const BIN: &str = env!("CARGO_BIN_EXE_tally-agent");
const WAIT: Duration = Duration::from_secs(20);
/// A variable-measure trade item (indicator 9): sold by weight, priced per kg.
const CHEDDAR: &str = "90614141000015";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanned_codes_are_sold_and_a_scan_without_stock_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut scanner = Pty::open();
    let mut cmd = agent_command(BIN, &data, "self-checkout-1");
    cmd.arg("--scanner")
        .arg(&scanner.slave_path)
        .args(["--scanner-mode", "sell"]);
    let mut agent = AgentProcess::spawn(cmd).await;
    let client = ApiClient::new(&agent.url, std::time::Duration::from_secs(30)).unwrap();

    let (s, v) = client
        .post(
            "/v1/catalog",
            &json!({"items": [
                {"gtin": PEN, "name": "Pen, blue", "price_minor": 129},
                {"gtin": MUG, "name": "Mug", "price_minor": 899},
                {"gtin": CHEDDAR, "name": "Cheddar, per kg", "price_minor": 1299},
            ]}),
        )
        .await
        .unwrap();
    assert!(s.is_success(), "{v}");
    for (gtin, qty) in [(PEN, 2), (CHEDDAR, 2)] {
        let (s, v) = client
            .post(
                "/v1/receipts",
                &json!({"lines": [{"gtin": gtin, "qty": qty}]}),
            )
            .await
            .unwrap();
        assert_eq!(s.as_u16(), 201, "{v}");
    }
    wait_metric(
        &client,
        "tally_agent_device_connected{device=\"scanner\"}",
        1,
        WAIT,
    )
    .await;

    // What a real scanner sends: AIM identifier, data, CR LF (or CR).
    scanner.write(b"]E04006381333931\r\n"); // EAN-13 at the catalog price
    scanner.write(b"4006381333931\r"); // no identifier, CR only
                                       // A price in the barcode of an item that is not variable-measure is
                                       // no label price (anyone can print one): a keyed price, which a
                                       // self-checkout cannot approve. Refused.
    scanner.write(b"]C101040063813339313922099\r\n"); // GS1-128, pen at 0.99 (AI 3922)
    scanner.write(b"]C101906141410000153922099\r\n"); // GS1-128, cheese at 0.99 (AI 3922)
    scanner.write(b"]C101906141410000153103000750\r\n"); // GS1-128, 0.750 kg (AI 3103)
    wait_metric(
        &client,
        "tally_agent_device_scans_total{outcome=\"sold\"}",
        4,
        WAIT,
    )
    .await;
    assert_eq!(on_hand(&client, PEN).await, 0);
    assert_eq!(on_hand(&client, CHEDDAR).await, 0);

    // No stock left (and none ever for the mug): refused, nothing changes.
    scanner.write(b"]E04006381333931\r\n");
    scanner.write(b"]E05901234123457\r\n");
    // A misread check digit and a loyalty card: no sale either.
    scanner.write(b"]E04006381333932\r\nLOYALTY-42\r\n");
    wait_metric(
        &client,
        "tally_agent_device_scans_total{outcome=\"refused\"}",
        3,
        WAIT,
    )
    .await;
    wait_metric(
        &client,
        "tally_agent_device_scans_total{outcome=\"undecodable\"}",
        1,
        WAIT,
    )
    .await;
    wait_metric(
        &client,
        "tally_agent_device_scans_total{outcome=\"not_an_item\"}",
        1,
        WAIT,
    )
    .await;
    assert_eq!(on_hand(&client, PEN).await, 0);
    assert_eq!(on_hand(&client, MUG).await, 0);
    assert_eq!(
        metric(
            &client,
            "tally_agent_refusals_total{reason=\"insufficient_stock\"}"
        )
        .await,
        2
    );
    assert_eq!(metric(&client, "tally_agent_sales_total").await, 4);
    assert_eq!(metric(&client, "tally_agent_outbox_events").await, 6);

    // The sales as recorded: one line of one unit each, at the catalog
    // price, the embedded price, or weight × price per kg.
    agent.terminate(WAIT).await;
    let db = AgentDb::open(&data, None).unwrap();
    let mut sold: Vec<(String, u64, i64)> = db
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Sale { .. }))
        .map(|e| {
            assert_eq!(e.lines.len(), 1);
            let l = &e.lines[0];
            assert!(l.epc.is_none());
            (l.gtin.to_string(), l.qty, l.unit_price_minor)
        })
        .collect();
    sold.sort();
    assert_eq!(
        sold,
        vec![
            ("04006381333931".to_string(), 1, 129),
            ("04006381333931".to_string(), 1, 129),
            (CHEDDAR.to_string(), 1, 99),
            // 0.750 kg × 12.99/kg = 9.7425
            (CHEDDAR.to_string(), 1, 974),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_without_a_mode_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = agent_command(BIN, &dir.path().join("d"), "s1")
        .args(["--scanner", "/dev/null"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--scanner-mode sell"), "{err}");
}
