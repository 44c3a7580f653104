//! The RFID driver against real pseudo-terminals standing in for an
//! M100-protocol reader: the command bytes the reader receives, notices
//! split across writes amid garbage, a bad checksum, error frames, a
//! corrupted length, de-duplication, unplug/replug, and throughput at
//! 2,000 reads/s with zero loss.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{next, DeviceLink, Noise, Pty};
use tally_hardware::driver::rfid::{self, RfidConfig, RfidEvent};
use tally_hardware::driver::{Backoff, DeviceStatus};
use tally_hardware::rfid::frame::{encode_into, FrameType};
use tally_hardware::rfid::m100::{self, notice_payload, pc_for_len, M100};
use tally_hardware::rfid::{ReaderProtocol, TagRead};
use tally_sync::Epc;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
const START: [u8; 10] = [0xBB, 0x00, 0x27, 0x00, 0x03, 0x22, 0xFF, 0xFF, 0x4A, 0x7E];
const STOP: [u8; 7] = [0xBB, 0x00, 0x28, 0x00, 0x00, 0x28, 0x7E];

fn config(link: &DeviceLink, window: Duration) -> RfidConfig {
    let mut c = RfidConfig::new(&link.path);
    c.window = window;
    c.idle_restart = Duration::from_secs(60);
    c.stale_after = Duration::from_millis(100);
    c.port.read_timeout = Duration::from_millis(20);
    c.port.backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(200),
    };
    c
}

fn notice(epc_hex: &str, rssi: i8) -> Vec<u8> {
    let epc = Epc::from_hex(epc_hex).unwrap();
    let read = TagRead {
        pc: pc_for_len(epc.as_bytes().len()),
        epc,
        rssi,
        antenna: None,
    };
    let mut out = Vec::new();
    encode_into(
        FrameType::Notice,
        m100::CMD_SINGLE_INVENTORY,
        &notice_payload(&read),
        &mut out,
    )
    .unwrap();
    out
}

fn error_frame(code: u8) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(FrameType::Response, m100::CMD_ERROR, &[code], &mut out).unwrap();
    out
}

async fn expect_connected(rx: &mut mpsc::Receiver<RfidEvent>) {
    match next(rx, WAIT, "connect").await {
        RfidEvent::Status(DeviceStatus::Connected { .. }) => {}
        other => panic!("expected connect, got {other:?}"),
    }
}

async fn expect_tag(rx: &mut mpsc::Receiver<RfidEvent>) -> tally_hardware::dedup::TagReport {
    match next(rx, WAIT, "tag").await {
        RfidEvent::Tag(report) => report,
        other => panic!("expected a tag, got {other:?}"),
    }
}

const A: &str = "3074257BF7194E4000001A85"; // TDS SGTIN-96 example
const B: &str = "E2801160600002054C0DB71D";
const C: &str = "3074257BF7194E4000001A86";
const D: &str = "3074257BF7194E4000001A87";

#[tokio::test]
async fn sends_commands_and_reports_deduplicated_tags_amid_noise() {
    let mut noise = Noise::new(common::seed("rfid noise"));
    let mut pty = Pty::open();
    let link = DeviceLink::new(&pty.slave_path);
    let (tx, mut rx) = mpsc::channel(64);
    let handle = rfid::spawn(
        config(&link, Duration::from_millis(300)),
        M100::default(),
        tx,
    )
    .unwrap();
    expect_connected(&mut rx).await;

    // The reader received exactly the start-multiple-inventory frame.
    assert_eq!(pty.read_exact_within(START.len(), WAIT), START);
    assert_eq!(M100::default().start_inventory(), START);

    let garbage: Vec<u8> = (0u8..=0xFF).filter(|&b| b != 0xBB).collect();
    let mut stream = Vec::new();
    stream.extend(noise.bytes_from(&garbage, 11));
    stream.extend(notice(A, -60));
    stream.extend(noise.bytes_from(&garbage, 4));
    stream.extend(notice(A, -48));
    let mut bad = notice(C, -30);
    let n = bad.len();
    bad[n - 2] ^= 0x01; // bad checksum: C must never be reported
    stream.extend(bad);
    stream.extend(error_frame(0x09)); // a real reader error
    stream.extend(error_frame(m100::ERR_NO_TAG)); // routine, not reported
    stream.extend(notice(B, -71));
    // A frame whose length was corrupted upward swallows D's frame; once the
    // reader goes quiet the driver drops the stale partial and finds D.
    stream.extend([0xBB, 0x02, 0x22, 0x00, 0x40]);
    stream.extend(notice(D, -55));
    for chunk in noise.split(&stream, 7) {
        pty.write(chunk);
    }

    // The error is reported at once; tags when their window closes.
    assert_eq!(
        next(&mut rx, WAIT, "reader error").await,
        RfidEvent::ReaderError { code: 0x09 }
    );
    let mut reports = [
        expect_tag(&mut rx).await,
        expect_tag(&mut rx).await,
        expect_tag(&mut rx).await,
    ];
    reports.sort_by_key(|r| r.epc.to_hex());
    let got: Vec<(String, u32, i8)> = reports
        .iter()
        .map(|r| (r.epc.to_hex(), r.count, r.best_rssi))
        .collect();
    // Sorted by EPC hex: A (…85), D (…87), B (E2…).
    let want: Vec<(String, u32, i8)> = [(A, 2, -48), (D, 1, -55), (B, 1, -71)]
        .iter()
        .map(|&(e, c, r)| (e.to_owned(), c, r))
        .collect();
    assert_eq!(got, want);
    common::assert_quiet(&mut rx, Duration::from_millis(400)).await;

    // Stopping sends stop-inventory, and nothing else was sent meanwhile.
    handle.stop();
    assert_eq!(pty.read_exact_within(STOP.len(), WAIT), STOP);
}

#[tokio::test]
async fn restarts_inventory_when_reader_goes_idle() {
    let mut pty = Pty::open();
    let link = DeviceLink::new(&pty.slave_path);
    let (tx, mut rx) = mpsc::channel(16);
    let mut c = config(&link, Duration::from_millis(100));
    c.idle_restart = Duration::from_millis(150);
    let handle = rfid::spawn(c, M100::new(10_000), tx).unwrap();
    expect_connected(&mut rx).await;
    let start = [0xBB, 0x00, 0x27, 0x00, 0x03, 0x22, 0x27, 0x10, 0x83, 0x7E];
    assert_eq!(pty.read_exact_within(10, WAIT), start);
    // The reader stays silent: the driver issues the command again.
    assert_eq!(pty.read_exact_within(10, WAIT), start);
    handle.stop();
}

#[tokio::test]
async fn reopens_after_unplug_and_restarts_inventory() {
    let mut pty = Pty::open();
    let link = DeviceLink::new(&pty.slave_path);
    let (tx, mut rx) = mpsc::channel(16);
    let handle = rfid::spawn(
        config(&link, Duration::from_millis(50)),
        M100::default(),
        tx,
    )
    .unwrap();
    expect_connected(&mut rx).await;
    assert_eq!(pty.read_exact_within(START.len(), WAIT), START);
    pty.write(&notice(A, -60));
    assert_eq!(expect_tag(&mut rx).await.epc.to_hex(), A);

    // Unplug with half a frame in flight.
    let half = notice(B, -60);
    pty.write(&half[..9]);
    drop(pty);
    match next(&mut rx, WAIT, "disconnect").await {
        RfidEvent::Status(DeviceStatus::Disconnected { path, .. }) => assert_eq!(path, link.path),
        other => panic!("{other:?}"),
    }
    let mut pty2 = Pty::open();
    link.repoint(&pty2.slave_path);
    expect_connected(&mut rx).await;
    // The new reader gets start-inventory too.
    assert_eq!(pty2.read_exact_within(START.len(), WAIT), START);
    pty2.write(&half[9..]); // the tail alone is garbage now
    pty2.write(&notice(C, -40));
    let r = expect_tag(&mut rx).await;
    assert_eq!((r.epc.to_hex().as_str(), r.count), (C, 1));
    common::assert_quiet(&mut rx, Duration::from_millis(200)).await;
    handle.stop();
}

/// A simulated reader at 2,000 reads/s for 2 s: every read must arrive.
#[tokio::test]
async fn keeps_up_with_2000_reads_per_second_without_loss() {
    const RATE: u64 = 2_000;
    const READS: u64 = 4_000;
    let mut pty = Pty::open();
    let link = DeviceLink::new(&pty.slave_path);
    let (tx, mut rx) = mpsc::channel(1024);
    let handle = rfid::spawn(
        config(&link, Duration::from_millis(100)),
        M100::default(),
        tx,
    )
    .unwrap();
    expect_connected(&mut rx).await;
    assert_eq!(pty.read_exact_within(START.len(), WAIT), START);

    // Each read is a distinct tag so every one must come out as a report.
    let writer = std::thread::spawn(move || {
        let begin = Instant::now();
        let mut sent = 0u64;
        while sent < READS {
            // Pace by the clock: write what is due, in bursts of 1 ms.
            let due = (begin.elapsed().as_micros() as u64 * RATE / 1_000_000).min(READS);
            let mut burst = Vec::new();
            while sent < due {
                burst.extend(notice(&format!("30{sent:022X}"), -50 - (sent % 20) as i8));
                sent += 1;
            }
            if !burst.is_empty() {
                pty.write(&burst);
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        (begin.elapsed(), pty)
    });

    let mut seen = HashSet::new();
    let mut total = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (seen.len() as u64) < READS && Instant::now() < deadline {
        let r = expect_tag(&mut rx).await;
        total += u64::from(r.count);
        seen.insert(r.epc.to_hex());
    }
    let (elapsed, _pty) = writer.join().unwrap();
    let rate = READS as f64 / elapsed.as_secs_f64();
    eprintln!("simulated reader: {READS} reads in {elapsed:?} ({rate:.0} reads/s); received {} distinct, {total} reads", seen.len());
    assert_eq!(seen.len() as u64, READS, "lost reads");
    assert_eq!(total, READS);
    assert!(
        rate >= 1_900.0,
        "simulator too slow to prove the rate: {rate:.0}/s"
    );
    handle.stop();
}

/// Headroom: a simulated reader writing as fast as the pty accepts. Every
/// read must still arrive; the rate is printed for docs/hardware.md.
#[tokio::test]
async fn unpaced_reader_loses_nothing() {
    const READS: u64 = 20_000;
    let mut pty = Pty::open();
    let link = DeviceLink::new(&pty.slave_path);
    let (tx, mut rx) = mpsc::channel(4096);
    let handle = rfid::spawn(
        config(&link, Duration::from_millis(50)),
        M100::default(),
        tx,
    )
    .unwrap();
    expect_connected(&mut rx).await;
    assert_eq!(pty.read_exact_within(START.len(), WAIT), START);
    let begin = Instant::now();
    let writer = std::thread::spawn(move || {
        for batch in 0..READS / 100 {
            let mut burst = Vec::new();
            for i in 0..100 {
                burst.extend(notice(&format!("31{:022X}", batch * 100 + i), -60));
            }
            pty.write(&burst);
        }
        pty
    });
    let mut seen = HashSet::new();
    while (seen.len() as u64) < READS {
        seen.insert(expect_tag(&mut rx).await.epc.to_hex());
    }
    let elapsed = begin.elapsed();
    let _pty = writer.join().unwrap();
    eprintln!(
        "unpaced reader: {READS} reads delivered in {elapsed:?} ({:.0} reads/s incl. a 50 ms window)",
        READS as f64 / elapsed.as_secs_f64()
    );
    handle.stop();
}
