//! The RFID driver against a simulated LLRP reader on 127.0.0.1
//! (`common::llrp_sim`, whose bytes are built by hand from the
//! specification, not by the codec under test): the configuration
//! sequence and its contents, reports split across TCP writes at seeded
//! and deliberately awkward offsets amid vendor parameters and unknown
//! messages, keepalive acknowledgements, de-duplication, a dropped
//! connection, a silent reader, a refused connection, a hostile length, a
//! refused configuration step, and a clean close on stop. Every wait is a
//! deadline-bounded poll; seeds are printed (`TALLY_TEST_SEED` replays).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::llrp_sim::{self as sim, LlrpSim, SimTag};
use common::{next, Noise};
use tally_hardware::dedup::TagReport;
use tally_hardware::driver::rfid::{self, RfidConfig, RfidEvent};
use tally_hardware::driver::{Backoff, DeviceStatus, DriverHandle};
use tally_hardware::rfid::llrp::{Llrp, LlrpSettings};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

const A: &str = "3074257BF7194E4000001A85"; // TDS SGTIN-96 example
const B: &str = "E2801160600002054C0DB71D00000001"; // 128 bits: EPCData
const C: &str = "3074257BF7194E4000001A86";
const D: &str = "3074257BF7194E4000001A87";
const E: &str = "3074257BF7194E4000001A88";

fn start(sim: &LlrpSim, keepalive: Duration) -> (DriverHandle, mpsc::Receiver<RfidEvent>) {
    let mut c = RfidConfig::tcp("127.0.0.1", sim.port());
    c.window = Duration::from_millis(300);
    c.port.read_timeout = Duration::from_millis(20);
    c.port.backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(200),
    };
    let (tx, rx) = mpsc::channel(64);
    let protocol = Llrp::new(LlrpSettings::with_keepalive(keepalive));
    (rfid::spawn(c, protocol, tx).unwrap(), rx)
}

fn name(sim: &LlrpSim) -> PathBuf {
    PathBuf::from(format!("llrp://127.0.0.1:{}", sim.port()))
}

async fn expect_connected(rx: &mut mpsc::Receiver<RfidEvent>, sim: &LlrpSim) {
    match next(rx, WAIT, "connect").await {
        RfidEvent::Status(DeviceStatus::Connected { path }) => assert_eq!(path, name(sim)),
        other => panic!("expected connect, got {other:?}"),
    }
}

async fn expect_disconnected(rx: &mut mpsc::Receiver<RfidEvent>, because: &str) {
    match next(rx, WAIT, "disconnect").await {
        RfidEvent::Status(DeviceStatus::Disconnected { reason, .. }) => {
            assert!(
                reason.contains(because),
                "reason {reason:?}, want {because:?}"
            );
        }
        other => panic!("expected disconnect ({because}), got {other:?}"),
    }
}

async fn expect_tag(rx: &mut mpsc::Receiver<RfidEvent>) -> TagReport {
    match next(rx, WAIT, "tag").await {
        RfidEvent::Tag(report) => report,
        other => panic!("expected a tag, got {other:?}"),
    }
}

/// Reports sorted by EPC as (hex, count, best RSSI).
async fn expect_tags(rx: &mut mpsc::Receiver<RfidEvent>, n: usize) -> Vec<(String, u32, i8)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let r = expect_tag(rx).await;
        got.push((r.epc.to_hex(), r.count, r.best_rssi));
    }
    got.sort();
    got
}

fn tag_report(id: u32, tags: &[SimTag]) -> Vec<u8> {
    let params: Vec<Vec<u8>> = tags.iter().map(SimTag::encode).collect();
    sim::report(id, &params)
}

/// Stops the driver and checks the polite close: STOP_ROSPEC and
/// CLOSE_CONNECTION on `conn`, then the driver's side closed, not reset.
fn stop_cleanly(handle: DriverHandle, sim: &LlrpSim, conn: usize) {
    handle.stop();
    sim.wait_message(conn, sim::STOP_ROSPEC, WAIT);
    sim.wait_message(conn, sim::CLOSE_CONNECTION, WAIT);
    assert_eq!(sim.wait_ended(conn, WAIT), "eof");
}

#[tokio::test]
async fn configures_the_reader_and_reports_tags_from_fragmented_reports() {
    let sim = LlrpSim::start();
    let (handle, mut rx) = start(&sim, Duration::from_secs(2));
    expect_connected(&mut rx, &sim).await;

    // The configuration sequence, in order, one step per response.
    let config = sim.wait_configured(1, WAIT);
    let kinds: Vec<u16> = config.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, sim::CONFIG_SEQUENCE);
    assert!(config.iter().all(|m| m.version == 1));
    let mut ids: Vec<u32> = config.iter().map(|m| m.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "message IDs are distinct");
    // SET_READER_CONFIG: no factory reset; KeepaliveSpec (220) periodic
    // every 2000 ms; TagReportContentSelector (238) with antenna ID (bit
    // 12), peak RSSI (bit 10) and first-seen timestamp (bit 9).
    let set = &config[0].body;
    assert_eq!(set[0], 0);
    assert!(sim::contains(set, &sim::tlv(220, &[1, 0, 0, 0x07, 0xD0])));
    assert!(sim::contains(set, &sim::tlv(238, &[0x16, 0x00])));
    // DELETE_ROSPEC 0: all.
    assert_eq!(config[1].body, [0, 0, 0, 0]);
    // ADD_ROSPEC: ROSpec (177) ID 1, priority 0, disabled; a null start
    // trigger (179); one antenna, ID 0 (all), followed by the AISpec stop
    // trigger (184); InventoryParameterSpec (186) ID 1, protocol 1 (Gen2).
    let add = &config[2].body;
    assert_eq!(&add[..2], &[0x00, 0xB1]);
    assert_eq!(&add[4..10], &[0, 0, 0, 1, 0, 0]);
    assert!(sim::contains(add, &sim::tlv(179, &[0])));
    assert!(sim::contains(add, &[0x00, 0x01, 0x00, 0x00, 0x00, 0xB8]));
    assert!(sim::contains(add, &sim::tlv(186, &[0, 1, 1])));
    assert_eq!(config[3].body, [0, 0, 0, 1]);
    assert_eq!(config[4].body, [0, 0, 0, 1]);

    // Two reports, a vendor CUSTOM_MESSAGE, a KEEPALIVE and a message of
    // an unknown type, in one byte stream cut at awkward offsets.
    let mut a1 = SimTag::new(A, 1, -60);
    // Vendor parameters inside the tag: a Custom (1023) and an unknown TLV.
    a1.extra = [sim::custom(25, 7, &[1, 2, 3]), sim::tlv(999, &[9, 9])].concat();
    let mut r1 = vec![a1.encode()];
    r1.push(sim::custom(25, 1, &[0xAA]));
    let mut stream = sim::report(100, &r1);
    stream.extend(sim::message(sim::CUSTOM_MESSAGE, 101, &[0, 0, 0, 25, 1, 2]));
    stream.extend(tag_report(
        102,
        &[SimTag::new(B, 2, -48), SimTag::new(A, 2, -50)],
    ));
    stream.extend(sim::keepalive(0x4242));
    stream.extend(sim::message(900, 103, &[1, 2, 3, 4]));
    let mut noise = Noise::new(common::seed("llrp split"));
    // Inside the first header, its last byte, the first TLV header, the
    // EPC-96 type byte and value, then seeded cuts.
    let mut cuts = vec![1, 9, 10, 12, 14, 15, 20];
    cuts.extend((0..12).map(|_| (noise.next_u64() as usize) % stream.len()));
    cuts.sort_unstable();
    cuts.dedup();
    sim.write_split(&stream, &cuts).unwrap();

    let ack = sim.wait_message(1, sim::KEEPALIVE_ACK, WAIT);
    assert_eq!((ack.id, ack.body.len()), (0x4242, 0));
    let got = expect_tags(&mut rx, 2).await;
    assert_eq!(
        got,
        [(A.to_owned(), 2, -50), (B.to_owned(), 1, -48)],
        "A read twice (best −50 dBm), B once, nothing from the skipped parts"
    );
    common::assert_quiet(&mut rx, Duration::from_millis(400)).await;
    stop_cleanly(handle, &sim, 1);
}

#[tokio::test]
async fn reconnects_after_the_reader_drops_the_connection() {
    let sim = LlrpSim::start();
    let (handle, mut rx) = start(&sim, Duration::from_secs(2));
    expect_connected(&mut rx, &sim).await;
    sim.wait_configured(1, WAIT);
    sim.write(&tag_report(1, &[SimTag::new(C, 1, -40)]));
    assert_eq!(expect_tags(&mut rx, 1).await, [(C.to_owned(), 1, -40)]);

    // Half a report in flight, then the reader is gone.
    let half = tag_report(2, &[SimTag::new(D, 1, -40)]);
    sim.write(&half[..half.len() / 2]);
    sim.drop_connection();
    expect_disconnected(&mut rx, "").await;
    expect_connected(&mut rx, &sim).await;
    let again = sim.wait_configured(2, WAIT);
    assert_eq!(again.len(), 5, "configured again from the start");
    // The rest of the half report would be garbage now: it is gone with
    // the old connection. A new report reads normally.
    sim.write(&tag_report(3, &[SimTag::new(E, 4, -70)]));
    assert_eq!(expect_tags(&mut rx, 1).await, [(E.to_owned(), 1, -70)]);
    common::assert_quiet(&mut rx, Duration::from_millis(400)).await;
    stop_cleanly(handle, &sim, 2);
}

#[tokio::test]
async fn reconnects_when_the_reader_misses_its_keepalives() {
    let sim = LlrpSim::start();
    // Keepalive every 200 ms: silence for 600 ms means a dead connection.
    let (handle, mut rx) = start(&sim, Duration::from_millis(200));
    expect_connected(&mut rx, &sim).await;
    let config = sim.wait_configured(1, WAIT);
    assert!(sim::contains(
        &config[0].body,
        &sim::tlv(220, &[1, 0, 0, 0, 200])
    ));
    sim.write(&sim::keepalive(7));
    assert_eq!(sim.wait_message(1, sim::KEEPALIVE_ACK, WAIT).id, 7);
    // The simulator sends nothing more.
    expect_disconnected(&mut rx, "no data from the reader").await;
    // The connection still worked: the driver said goodbye on it.
    sim.wait_message(1, sim::CLOSE_CONNECTION, WAIT);
    expect_connected(&mut rx, &sim).await;
    sim.wait_configured(2, WAIT);
    sim.write(&tag_report(1, &[SimTag::new(C, 1, -41)]));
    assert_eq!(expect_tags(&mut rx, 1).await, [(C.to_owned(), 1, -41)]);
    stop_cleanly(handle, &sim, 2);
}

#[tokio::test]
async fn a_refused_connection_and_a_hostile_length_reconnect() {
    let sim = LlrpSim::start();
    // ConnectionAttemptEvent status 2: another client is connected.
    sim.refuse_next(2);
    let (handle, mut rx) = start(&sim, Duration::from_secs(2));
    expect_connected(&mut rx, &sim).await;
    expect_disconnected(&mut rx, "refused the connection").await;
    expect_connected(&mut rx, &sim).await;
    sim.wait_configured(2, WAIT);
    let first: Vec<u16> = sim
        .received()
        .iter()
        .filter(|m| m.conn == 1)
        .map(|m| m.kind)
        .collect();
    assert_eq!(
        first,
        [sim::CLOSE_CONNECTION],
        "nothing configured on a refused connection"
    );

    // A header claiming a 4 GB report: no way to find the next message.
    sim.write(&[0x04, 0x3D, 0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 0, 9, 1, 2, 3]);
    expect_disconnected(&mut rx, "limit").await;
    expect_connected(&mut rx, &sim).await;
    sim.wait_configured(3, WAIT);
    sim.write(&tag_report(1, &[SimTag::new(D, 2, -33)]));
    assert_eq!(expect_tags(&mut rx, 1).await, [(D.to_owned(), 1, -33)]);
    stop_cleanly(handle, &sim, 3);
}

#[tokio::test]
async fn a_refused_configuration_step_is_reported_and_retried() {
    let sim = LlrpSim::start();
    // ADD_ROSPEC answered with M_ParameterError (100).
    sim.fail_next(sim::ADD_ROSPEC, 100);
    let (handle, mut rx) = start(&sim, Duration::from_secs(2));
    expect_connected(&mut rx, &sim).await;
    assert_eq!(
        next(&mut rx, WAIT, "reader error").await,
        RfidEvent::ReaderError { code: 100 }
    );
    expect_disconnected(&mut rx, "ADD_ROSPEC").await;
    expect_connected(&mut rx, &sim).await;
    sim.wait_configured(2, WAIT);
    let on_first: Vec<u16> = sim
        .received()
        .iter()
        .filter(|m| m.conn == 1)
        .map(|m| m.kind)
        .collect();
    assert!(
        !on_first.contains(&sim::ENABLE_ROSPEC),
        "no step after the refused one: {on_first:?}"
    );
    sim.write(&tag_report(1, &[SimTag::new(A, 1, -52)]));
    assert_eq!(expect_tags(&mut rx, 1).await, [(A.to_owned(), 1, -52)]);
    stop_cleanly(handle, &sim, 2);
}

/// Seeded random bytes after configuration: whatever they parse as (a
/// hostile length, a partial message, stray messages), the driver neither
/// panics nor stops; it reconnects (at the latest after the silence limit)
/// and reads tags again.
#[tokio::test]
async fn random_bytes_never_stop_the_driver() {
    let mut noise = Noise::new(common::seed("llrp garbage"));
    let sim = LlrpSim::start();
    let (handle, mut rx) = start(&sim, Duration::from_millis(200));
    expect_connected(&mut rx, &sim).await;
    for round in 1..=4usize {
        sim.wait_configured(round, WAIT);
        let len = 1 + (noise.next_u64() % 600) as usize;
        let mut garbage: Vec<u8> = (0..len).map(|_| noise.next_u64() as u8).collect();
        if round % 2 == 0 {
            // Start with a plausible header so the body is parsed too.
            garbage.splice(0..0, [0x04, 0x3D, 0, 0, 0, 40, 0, 0, 0, 1]);
        }
        // The driver may close the connection before all of it is sent.
        let _ = sim.write_split(&garbage, &[3, 11, 17]);
        loop {
            match next(&mut rx, WAIT, "disconnect after garbage").await {
                RfidEvent::Status(DeviceStatus::Disconnected { .. }) => break,
                // Stray bytes may decode as a tag or an error report.
                RfidEvent::Tag(_) | RfidEvent::ReaderError { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        expect_connected(&mut rx, &sim).await;
        assert!(!handle.is_finished());
    }
    sim.wait_configured(5, WAIT);
    sim.write(&tag_report(1, &[SimTag::new(C, 1, -44)]));
    loop {
        let r = expect_tag(&mut rx).await;
        if r.epc.to_hex() == C {
            break;
        }
    }
    stop_cleanly(handle, &sim, 5);
}
