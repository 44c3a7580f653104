//! The scanner driver against real pseudo-terminals: codes split across
//! writes, mixed with NUL/garbage and over-long lines, bad check digits,
//! and an unplug/replug through a re-pointed device symlink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{next, DeviceLink, Noise, Pty};
use tally_hardware::driver::scanner::{self, ScannerConfig, ScannerEvent};
use tally_hardware::driver::{Backoff, DeviceStatus};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn config(link: &DeviceLink) -> ScannerConfig {
    let mut c = ScannerConfig::new(&link.path);
    c.port.read_timeout = Duration::from_millis(20);
    c.port.backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(200),
    };
    c
}

async fn expect_scan(rx: &mut mpsc::Receiver<ScannerEvent>, want_raw: &str) -> ScannerEvent {
    let ev = next(rx, WAIT, want_raw).await;
    match &ev {
        ScannerEvent::Scan { raw, .. } | ScannerEvent::ScanError { raw, .. } => {
            assert_eq!(raw, want_raw)
        }
        other => panic!("expected {want_raw:?}, got {other:?}"),
    }
    ev
}

#[tokio::test]
async fn decodes_codes_split_across_writes_amid_garbage() {
    let mut noise = Noise::new(common::seed("scanner garbage"));
    let mut pty = Pty::open();
    let link = DeviceLink::new(&pty.slave_path);
    let (tx, mut rx) = mpsc::channel(16);
    let handle = scanner::spawn(config(&link), tx).unwrap();
    assert!(matches!(
        next(&mut rx, WAIT, "connect").await,
        ScannerEvent::Status(DeviceStatus::Connected { .. })
    ));

    // Control bytes a flaky cable or a confused scanner emits; none of them
    // ends a line or is kept as data.
    let junk: Vec<u8> = (0u8..0x20)
        .filter(|b| !matches!(b, b'\r' | b'\n' | b'\t' | 0x04 | 0x1C..=0x1E))
        .collect();
    let mut stream = Vec::new();
    stream.extend(noise.bytes_from(&junk, 7));
    stream.extend_from_slice(b"]E04006381333931\r\n");
    stream.extend(noise.bytes_from(&junk, 5));
    stream.extend_from_slice(b"]C1010400638133393117251231\x1d10LOT7\r");
    stream.extend_from_slice(&[b'9'; 700]); // over-long line: dropped whole
    stream.extend_from_slice(b"\r]E04006381333932\n"); // bad check digit
    stream.extend(noise.bytes_from(&junk, 3));
    stream.extend_from_slice(b"]E496385074\r");
    for chunk in noise.split(&stream, 9) {
        pty.write(chunk);
    }

    match expect_scan(&mut rx, "]E04006381333931").await {
        ScannerEvent::Scan { barcode, .. } => {
            assert_eq!(barcode.symbology_name(), "ean-13");
            assert_eq!(barcode.gtin.unwrap().to_string(), "04006381333931");
        }
        other => panic!("{other:?}"),
    }
    match expect_scan(&mut rx, "]C1010400638133393117251231\u{1d}10LOT7").await {
        ScannerEvent::Scan { barcode, .. } => {
            assert_eq!(barcode.elements.get("17"), Some("251231"));
            assert_eq!(barcode.elements.get("10"), Some("LOT7"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        expect_scan(&mut rx, "]E04006381333932").await,
        ScannerEvent::ScanError { .. }
    ));
    match expect_scan(&mut rx, "]E496385074").await {
        ScannerEvent::Scan { barcode, .. } => {
            assert_eq!(barcode.gtin.unwrap().to_string(), "00000096385074")
        }
        other => panic!("{other:?}"),
    }
    common::assert_quiet(&mut rx, Duration::from_millis(100)).await;
    handle.stop();
}

#[tokio::test]
async fn reopens_after_unplug_and_keeps_reading() {
    let mut pty = Pty::open();
    let link = DeviceLink::new(&pty.slave_path);
    let (tx, mut rx) = mpsc::channel(16);
    let handle = scanner::spawn(config(&link), tx).unwrap();
    assert!(matches!(
        next(&mut rx, WAIT, "connect").await,
        ScannerEvent::Status(DeviceStatus::Connected { .. })
    ));
    pty.write(b"]E04006381333931\r");
    expect_scan(&mut rx, "]E04006381333931").await;

    // Unplug mid-code: the device vanishes with a partial line buffered.
    pty.write(b"]E0400");
    drop(pty);
    match next(&mut rx, WAIT, "disconnect").await {
        ScannerEvent::Status(DeviceStatus::Disconnected { path, .. }) => {
            assert_eq!(path, link.path)
        }
        other => panic!("{other:?}"),
    }

    // Replug: a new pty appears at the same configured path.
    let mut pty2 = Pty::open();
    link.repoint(&pty2.slave_path);
    assert!(matches!(
        next(&mut rx, WAIT, "reconnect").await,
        ScannerEvent::Status(DeviceStatus::Connected { .. })
    ));
    pty2.write(b"6381333931\r]E496385074\r");
    // The partial code from before the unplug is gone; the tail of it is
    // a 10-digit string, plain text, reported as such; the next code is whole.
    match expect_scan(&mut rx, "6381333931").await {
        ScannerEvent::Scan { barcode, .. } => assert!(barcode.gtin.is_none()),
        other => panic!("{other:?}"),
    }
    expect_scan(&mut rx, "]E496385074").await;
    handle.stop();
}
