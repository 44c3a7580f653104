//! `tally-agent run --rfid PATH --rfid-mode receive` end to end: the real
//! binary drives a simulated M100 reader on a real pseudo-terminal (it must
//! send start-inventory first, as to a real module), and each newly seen
//! SGTIN-96 tag becomes a receipt of one unit carrying its EPC. Re-reads,
//! a restart and non-item tags receive nothing; a tag sold with its EPC
//! and read again at the dock is received again. A tag on a transfer sent
//! to the store receives the whole transfer, once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::pty::{metric, notice, tag, wait_metric, Pty};
use common::{agent_command, on_hand, AgentProcess, MUG, PEN};
use serde_json::json;
use tally_agent::store::AgentDb;
use tally_agent_api::client::AgentClient as ApiClient;
use tally_sync::{Epc, EventKind, Gtin};

const BIN: &str = env!("CARGO_BIN_EXE_tally-agent");
const WAIT: Duration = Duration::from_secs(20);
const STORE: &str = "dock-1";
/// What the driver writes on connect: start multiple inventory, 65535 rounds.
const START: [u8; 10] = [0xBB, 0x00, 0x27, 0x00, 0x03, 0x22, 0xFF, 0xFF, 0x4A, 0x7E];
/// SSCC-96 from the EPC Tag Data Standard's examples: a pallet, not an item.
const SSCC: &str = "3174257BF4499602D2000000";

/// Each tag read `times` times, interleaved, as a portal sees a pallet.
fn reads(tags: &[&Epc], times: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for round in 0..times {
        for (i, t) in tags.iter().enumerate() {
            out.extend(notice(t, -40 - (round as i8) - (i as i8)));
        }
    }
    out
}

async fn start(data: &std::path::Path, reader: &mut Pty) -> (AgentProcess, ApiClient) {
    let mut cmd = agent_command(BIN, data, STORE);
    cmd.arg("--rfid").arg(&reader.slave_path).args([
        "--rfid-mode",
        "receive",
        "--rfid-window-ms",
        "200",
    ]);
    let agent = AgentProcess::spawn(cmd).await;
    // A real module answers only once told to inventory.
    let got = reader.read_exact_within(START.len(), WAIT);
    assert_eq!(got, START, "the driver starts inventory on connect");
    let client = ApiClient::new(&agent.url, std::time::Duration::from_secs(30)).unwrap();
    (agent, client)
}

const RECEIVED: &str = "tally_agent_device_tags_total{outcome=\"received\"}";
const AGAIN: &str = "tally_agent_device_tags_total{outcome=\"already_received\"}";
const NOT_ITEM: &str = "tally_agent_device_tags_total{outcome=\"not_an_item\"}";

/// Starts the agent on `data`, has the portal read `tags` (two pens and
/// a mug, all held here) and checks that nothing is received: the shelf
/// stays at 2 pens and 1 mug.
async fn rereads_receive_nothing(data: &std::path::Path, tags: &[&Epc]) {
    let mut reader = Pty::open();
    let (mut agent, client) = start(data, &mut reader).await;
    reader.write(&reads(tags, 2));
    wait_metric(&client, AGAIN, 3, WAIT).await;
    assert_eq!(metric(&client, RECEIVED).await, 0);
    assert_eq!(on_hand(&client, PEN).await, 2);
    assert_eq!(on_hand(&client, MUG).await, 1);
    agent.terminate(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_tags_are_received_once_each_and_carry_their_epc() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (pen1, pen2, mug1) = (tag(PEN, 1), tag(PEN, 2), tag(MUG, 1));
    let sscc = Epc::from_hex(SSCC).unwrap();

    let mut reader = Pty::open();
    let (mut agent, client) = start(&data, &mut reader).await;
    wait_metric(
        &client,
        "tally_agent_device_connected{device=\"rfid\"}",
        1,
        WAIT,
    )
    .await;

    // A pallet through the portal: three tagged items read three times
    // each (de-duplicated into one report per window) and the pallet's
    // own SSCC tag.
    let mut bytes = reads(&[&pen1, &pen2, &mug1], 3);
    bytes.extend(notice(&sscc, -60));
    reader.write(&bytes);
    wait_metric(&client, RECEIVED, 3, WAIT).await;
    wait_metric(&client, NOT_ITEM, 1, WAIT).await;
    assert_eq!(on_hand(&client, PEN).await, 2);
    assert_eq!(on_hand(&client, MUG).await, 1);

    // The same pallet read again later: nothing is received twice.
    reader.write(&reads(&[&pen1, &pen2, &mug1], 2));
    wait_metric(&client, AGAIN, 3, WAIT).await;
    assert_eq!(metric(&client, RECEIVED).await, 3);
    assert_eq!(on_hand(&client, PEN).await, 2);

    // pen1 is sold with its EPC (it left the store); when its tag comes
    // back through the dock it is a new receipt. pen2 and the mug are
    // still on hand.
    let (s, v) = client
        .post(
            "/v1/sales",
            &json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 129, "epc": pen1.to_hex()}]}),
        )
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 201, "{v}");
    assert_eq!(on_hand(&client, PEN).await, 1);
    reader.write(&reads(&[&pen1, &pen2, &mug1], 1));
    wait_metric(&client, RECEIVED, 4, WAIT).await;
    wait_metric(&client, AGAIN, 5, WAIT).await;
    assert_eq!(on_hand(&client, PEN).await, 2);
    agent.terminate(WAIT).await;
    drop(agent);

    // After a restart every tag is still known: a re-read receives nothing.
    rereads_receive_nothing(&data, &[&pen1, &pen2, &mug1]).await;

    // The receipts as recorded: one tagged unit each, with the EPC on the
    // line, under the id derived from (store, EPC, sales so far), keyed
    // by the store's secret.
    let db = AgentDb::open(&data, None).unwrap();
    let ids = db.event_ids();
    let mut receipts: Vec<_> = db
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Receipt))
        .map(|e| {
            assert_eq!(e.lines.len(), 1);
            let line = &e.lines[0];
            assert_eq!(line.qty, 1);
            (e.id, line.gtin.to_string(), line.epc.clone().unwrap())
        })
        .collect();
    receipts.sort();
    let mut want = vec![
        (ids.receipt(&pen1, 0), PEN, pen1.clone()),
        (ids.receipt(&pen2, 0), PEN, pen2.clone()),
        (ids.receipt(&mug1, 0), MUG, mug1.clone()),
        (ids.receipt(&pen1, 1), PEN, pen1.clone()),
    ]
    .into_iter()
    .map(|(id, g, epc)| (id, Gtin::parse(g).unwrap().to_string(), epc))
    .collect::<Vec<_>>();
    want.sort();
    assert_eq!(receipts, want);
    drop(db);

    // A database whose receipts were recorded under ids of another secret
    // (one from before the secret existed, made when this version first
    // opened it): re-reads of the units held here still receive nothing.
    let raw = tally_store::Db::open(data.join("agent.redb")).unwrap();
    let txn = raw.begin_write().unwrap();
    txn.put_meta("event_id_secret", &[0x5A; 32]).unwrap();
    txn.commit().unwrap();
    drop(raw);
    rereads_receive_nothing(&data, &[&pen1, &pen2, &mug1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_of_a_transfer_in_transit_receives_the_whole_transfer_once() {
    use tally_sync::transfer::{Transfer, TransferLine, TransferStatus};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (pen1, pen2, pen3) = (tag(PEN, 11), tag(PEN, 12), tag(PEN, 13));
    let at = |id: &str| tally_sync::LocationId::new(id).unwrap();
    // The hub told the store of a transfer from store-a: two tagged pens
    // and a mug without a tag.
    let transfer = Transfer {
        transfer_id: "t-dock".into(),
        from: at("store-a"),
        to: at(STORE),
        lines: vec![
            TransferLine {
                gtin: Gtin::parse(PEN).unwrap(),
                qty: 1,
                epc: Some(pen1.clone()),
            },
            TransferLine {
                gtin: Gtin::parse(PEN).unwrap(),
                qty: 1,
                epc: Some(pen2.clone()),
            },
            TransferLine {
                gtin: Gtin::parse(MUG).unwrap(),
                qty: 1,
                epc: None,
            },
        ],
        status: TransferStatus::InTransit,
        sent_at_ms: 1,
        sent_event: None,
    };
    common::merge_page(
        &data,
        STORE,
        tally_sync::message::AllocationsPage {
            allocations: Vec::new(),
            transfers: vec![transfer],
            cursor: 1,
            more: false,
        },
    )
    .await;

    let mut reader = Pty::open();
    let (mut agent, client) = start(&data, &mut reader).await;
    // Both tags of the transfer through the portal: the transfer is
    // received once, with its untagged mug; a pen on no transfer is a
    // receipt of its own.
    reader.write(&reads(&[&pen1, &pen2, &pen3], 3));
    wait_metric(
        &client,
        "tally_agent_device_tags_total{outcome=\"transfer_received\"}",
        1,
        WAIT,
    )
    .await;
    wait_metric(&client, RECEIVED, 1, WAIT).await;
    // The transfer's other tag: arrived with it, on hand.
    wait_metric(
        &client,
        "tally_agent_device_tags_total{outcome=\"on_hand\"}",
        1,
        WAIT,
    )
    .await;
    assert_eq!(on_hand(&client, PEN).await, 3);
    assert_eq!(on_hand(&client, MUG).await, 1);
    let (s, t) = client.get("/v1/transfers/t-dock").await.unwrap();
    assert_eq!((s.as_u16(), &t["status"]), (200, &json!("received")), "{t}");
    // Read again (once or twice per tag, by the read window): on hand,
    // nothing more received.
    reader.write(&reads(&[&pen1, &pen2], 2));
    let deadline = std::time::Instant::now() + WAIT;
    while metric(
        &client,
        "tally_agent_device_tags_total{outcome=\"on_hand\"}",
    )
    .await
        < 3
    {
        assert!(std::time::Instant::now() < deadline, "re-reads not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&client, RECEIVED).await, 1);
    assert_eq!(on_hand(&client, PEN).await, 3);
    agent.terminate(WAIT).await;
}
