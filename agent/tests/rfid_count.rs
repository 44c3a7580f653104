//! An RFID cycle count end to end (issue 23): `tally-agent run --rfid PATH
//! --rfid-mode count`, the real binary driving a simulated M100 reader on
//! a real pseudo-terminal. A count session started over the API takes
//! the tags read (each once, however often it is read), finishing it
//! answers the variance report per item and per tag (a tag recorded as
//! sold is reported, not counted; a tag received here and not read is
//! missing), and accepting it records the adjustments through the
//! command core, once. The same count with an LLRP fixed reader on TCP
//! (the simulator of the hardware tests), its reports split across writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../hardware/tests/common/llrp_sim.rs"]
mod llrp_sim;

use std::time::Duration;

use common::pty::{metric, notice, tag, wait_metric, Pty};
use common::{agent_command, on_hand, AgentProcess, MUG, PEN};
use serde_json::json;
use tally_agent_api::client::AgentClient as ApiClient;
use tally_agent_api::counts::CountSessionRequest;
use tally_agent_api::ApiError;
use tally_sync::Epc;

const BIN: &str = env!("CARGO_BIN_EXE_tally-agent");
const WAIT: Duration = Duration::from_secs(20);
const STORE: &str = "count-1";
/// What the driver writes on connect: start multiple inventory.
const START: [u8; 10] = [0xBB, 0x00, 0x27, 0x00, 0x03, 0x22, 0xFF, 0xFF, 0x4A, 0x7E];
/// An item outside the session's list.
const GUM: &str = "0036000291452";
/// SSCC-96 (EPC TDS example): not an item.
const SSCC: &str = "3174257BF4499602D2000000";

/// Each tag read `times` times, interleaved.
fn reads(tags: &[&Epc], times: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for round in 0..times {
        for t in tags {
            out.extend(notice(t, -40 - (round % 30) as i8));
        }
    }
    out
}

async fn receive_tagged(client: &ApiClient, gtin: &str, serials: std::ops::RangeInclusive<u64>) {
    let lines: Vec<_> = serials
        .map(|n| json!({"gtin": gtin, "qty": 1, "epc": tag(gtin, n).to_hex()}))
        .collect();
    let (s, v) = client
        .post("/v1/receipts", &json!({ "lines": lines }))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 201, "{v}");
}

fn conflict(e: ApiError) -> String {
    match e {
        ApiError::Conflict(body) => body.message,
        other => panic!("expected 409, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_session_counts_each_tag_once_and_accepts_its_variance() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut reader = Pty::open();
    let mut cmd = agent_command(BIN, &data, STORE);
    cmd.arg("--rfid").arg(&reader.slave_path).args([
        "--rfid-mode",
        "count",
        "--rfid-window-ms",
        "200",
    ]);
    let mut agent = AgentProcess::spawn(cmd).await;
    assert_eq!(reader.read_exact_within(START.len(), WAIT), START);
    let client = ApiClient::new(&agent.url, Duration::from_secs(30)).unwrap();

    // Stock: pens 1–5 and mugs 1–3 received with their tags; pen 5 sold
    // by its tag (the customer left it on the shelf after all).
    receive_tagged(&client, PEN, 1..=5).await;
    receive_tagged(&client, MUG, 1..=3).await;
    let (s, v) = client
        .post(
            "/v1/sales",
            &json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 129, "epc": tag(PEN, 5).to_hex()}]}),
        )
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 201, "{v}");
    assert_eq!(on_hand(&client, PEN).await, 4);

    // Reads before any session are dropped, and counted as such.
    reader.write(&reads(&[&tag(PEN, 1)], 1));
    wait_metric(
        &client,
        "tally_agent_device_tags_total{outcome=\"count_no_session\"}",
        1,
        WAIT,
    )
    .await;

    let session = client
        .start_count(&CountSessionRequest {
            session_id: Some("cycle-1".into()),
            gtins: Some(vec![PEN.into(), MUG.into()]),
            zone: Some("aisle 3".into()),
            cashier: Some("ana".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(session.status, "counting");
    // One session counts at a time.
    let e = client
        .start_count(&CountSessionRequest::default())
        .await
        .unwrap_err();
    assert!(conflict(e).contains("cycle-1 is counting"));

    // The aisle: pens 1–3 and 5, mugs 1–3, a gum (not on the list) and a
    // pallet tag, each read ten times amid the reader's other traffic.
    let (p1, p2, p3, p5) = (tag(PEN, 1), tag(PEN, 2), tag(PEN, 3), tag(PEN, 5));
    let (m1, m2, m3) = (tag(MUG, 1), tag(MUG, 2), tag(MUG, 3));
    let (gum, pallet) = (tag(GUM, 9), Epc::from_hex(SSCC).unwrap());
    let all = [&p1, &p2, &p3, &p5, &m1, &m2, &m3, &gum, &pallet];
    for chunk in reads(&all, 10).chunks(37) {
        reader.write(chunk);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let seen = loop {
        let s = client.count_session("cycle-1").await.unwrap();
        if s.tags == 9 || tokio::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (seen.tags, seen.unknown_tags, seen.out_of_scope_tags),
        (9, 1, 1),
        "{seen:?}"
    );
    let counted: Vec<(String, u64)> = seen
        .items
        .iter()
        .map(|i| (i.gtin.to_string(), i.counted))
        .collect();
    assert_eq!(
        counted,
        vec![(format!("0{PEN}"), 4), (format!("0{MUG}"), 3)]
    );

    let report = client.finish_count("cycle-1").await.unwrap();
    assert_eq!(report.status, "finished");
    let lines: Vec<(String, u64, u64, i64)> = report
        .items
        .iter()
        .map(|l| (l.gtin.to_string(), l.expected, l.counted, l.difference))
        .collect();
    assert_eq!(
        lines,
        vec![(format!("0{PEN}"), 4, 3, -1), (format!("0{MUG}"), 3, 3, 0)]
    );
    assert_eq!(report.epcs.sold_but_present, vec![p5.clone()]);
    assert_eq!(report.epcs.missing, vec![tag(PEN, 4)]);
    // Reads after the finish go nowhere.
    let dropped = metric(
        &client,
        "tally_agent_device_tags_total{outcome=\"count_no_session\"}",
    )
    .await;
    reader.write(&reads(&[&tag(PEN, 4)], 1));
    wait_metric(
        &client,
        "tally_agent_device_tags_total{outcome=\"count_no_session\"}",
        dropped + 1,
        WAIT,
    )
    .await;
    assert_eq!(client.count_session("cycle-1").await.unwrap().tags, 9);

    let accepted = client.accept_count("cycle-1").await.unwrap();
    assert_eq!(accepted.status, "accepted");
    assert_eq!(accepted.adjustments.len(), 1);
    let a = &accepted.adjustments[0];
    assert_eq!(
        (
            a.gtin.to_string(),
            a.direction.as_str(),
            a.units,
            a.unresolved
        ),
        (format!("0{PEN}"), "down", 1, 0)
    );
    assert_eq!(on_hand(&client, PEN).await, 3);
    assert_eq!(on_hand(&client, MUG).await, 3);
    // Once: a second accept is refused and moves nothing.
    let e = client.accept_count("cycle-1").await.unwrap_err();
    assert!(conflict(e).contains("accepted"));
    assert_eq!(on_hand(&client, PEN).await, 3);
    // A finished session's report stays readable; unknown ones are 404.
    assert_eq!(
        client.count_report("cycle-1").await.unwrap().status,
        "accepted"
    );
    assert!(matches!(
        client.count_session("nope").await,
        Err(ApiError::NotFound)
    ));

    // Pen 4 was written off: the next count does not report it missing
    // again.
    let report = count_pens(&mut reader, &client, "cycle-2", &[&p1, &p2, &p3]).await;
    assert_eq!(pen_line(&report), (3, 3, 0));
    assert!(report.epcs.missing.is_empty(), "{:?}", report.epcs.missing);
    client.accept_count("cycle-2").await.unwrap();
    // Pen 4 turns up and pen 3 goes: no change in quantity, but the
    // shelf's tags change with the accepted count.
    let report = count_pens(&mut reader, &client, "cycle-3", &[&p1, &p2, &tag(PEN, 4)]).await;
    assert_eq!(pen_line(&report), (3, 3, 0));
    assert_eq!(report.epcs.missing, vec![p3.clone()]);
    assert!(client
        .accept_count("cycle-3")
        .await
        .unwrap()
        .adjustments
        .is_empty());
    let report = count_pens(&mut reader, &client, "cycle-4", &[&p1, &p2, &p3]).await;
    assert_eq!(report.epcs.missing, vec![tag(PEN, 4)]);

    agent.terminate(WAIT).await;
}

/// A count of pens reading `tags` (three times each), finished: its
/// report.
async fn count_pens(
    reader: &mut Pty,
    client: &ApiClient,
    id: &str,
    tags: &[&Epc],
) -> tally_agent_api::counts::CountReportView {
    client
        .start_count(&CountSessionRequest {
            session_id: Some(id.into()),
            gtins: Some(vec![PEN.into()]),
            cashier: Some("ana".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    reader.write(&reads(tags, 3));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = client.count_session(id).await.unwrap();
        if s.tags == tags.len() as u64 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.finish_count(id).await.unwrap()
}

/// The pen's line of `report`: expected, counted, difference.
fn pen_line(report: &tally_agent_api::counts::CountReportView) -> (u64, u64, i64) {
    let l = report
        .items
        .iter()
        .find(|l| l.gtin.to_string() == format!("0{PEN}"))
        .unwrap();
    (l.expected, l.counted, l.difference)
}

/// A count fed by an LLRP reader: the agent connects, configures the
/// reader, and the tags of its RO_ACCESS_REPORTs (EPC-96, split across
/// TCP writes, each tag in several reports) count once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llrp_reader_feeds_a_count_session() {
    let dir = tempfile::tempdir().unwrap();
    let sim = llrp_sim::LlrpSim::start();
    let mut cmd = agent_command(BIN, &dir.path().join("data"), STORE);
    cmd.args([
        "--rfid",
        &format!("llrp://127.0.0.1:{}", sim.port()),
        "--rfid-mode",
        "count",
        "--rfid-window-ms",
        "200",
    ]);
    let mut agent = AgentProcess::spawn(cmd).await;
    let client = ApiClient::new(&agent.url, Duration::from_secs(30)).unwrap();
    receive_tagged(&client, MUG, 1..=4).await;
    sim.wait_configured(1, WAIT);
    client
        .start_count(&CountSessionRequest {
            session_id: Some("llrp-1".into()),
            gtins: Some(vec![MUG.into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    // Mugs 1–3 in view of antennas 1 and 2, five reports each.
    let tags: Vec<Vec<u8>> = (1..=3u64)
        .flat_map(|n| {
            let hex = tag(MUG, n).to_hex();
            [
                llrp_sim::SimTag::new(&hex, 1, -50).encode(),
                llrp_sim::SimTag::new(&hex, 2, -61).encode(),
            ]
        })
        .collect();
    for id in 0..5 {
        let report = llrp_sim::report(100 + id, &tags);
        let cuts = [7, report.len() / 2];
        sim.write_split(&report, &cuts).unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = client.count_session("llrp-1").await.unwrap();
        if s.tags == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = client.finish_count("llrp-1").await.unwrap();
    assert_eq!((report.items[0].expected, report.items[0].counted), (4, 3));
    assert_eq!(report.epcs.missing, vec![tag(MUG, 4)]);
    agent.terminate(WAIT).await;
}
