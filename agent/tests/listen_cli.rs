//! Black-box test of `tally-agent listen --json`: the real binary reading a
//! scanner and an RFID reader that are real pseudo-terminals, or an LLRP
//! reader simulated on 127.0.0.1 (`tally-hardware`'s own simulator),
//! printing one JSON event per line, and exiting cleanly on SIGINT.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
/// The simulated LLRP reader of `tally-hardware`'s TCP tests.
#[path = "../../hardware/tests/common/llrp_sim.rs"]
mod llrp_sim;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::pty::Pty;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

#[test]
fn listen_prints_scan_error_and_tag_events_as_json() {
    let mut scanner = Pty::open();
    let mut reader = Pty::open();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally-agent"))
        .args(["listen", "--json", "--window-ms", "100", "--scanner"])
        .arg(&scanner.slave_path)
        .arg("--rfid")
        .arg(&reader.slave_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| -> Value {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no {what} line"));
        serde_json::from_str(&line).unwrap()
    };

    // Bytes written before the drivers opened the ports wait in the pty.
    scanner
        .master
        .write_all(b"]C10104006381333931\x1d10LOT7\r]E04006381333932\r")
        .unwrap();
    // M100 notice of the TDS SGTIN-96 example (RSSI -55 dBm).
    let mut notice = vec![0xBB, 0x02, 0x22, 0x00, 0x11, 0xC9, 0x30, 0x00];
    let epc = [
        0x30, 0x74, 0x25, 0x7B, 0xF7, 0x19, 0x4E, 0x40, 0x00, 0x00, 0x1A, 0x85,
    ];
    notice.extend(epc);
    // The tag's CRC over PC and EPC (a read without it is refused).
    notice.extend(tally_hardware::rfid::m100::tag_crc(0x3000, &epc).to_be_bytes());
    let sum = notice[1..].iter().fold(0u8, |a, &b| a.wrapping_add(b));
    notice.extend([sum, 0x7E]);
    reader.master.write_all(&notice).unwrap();

    let mut events = [next_line("first"), next_line("second"), next_line("third")];
    events.sort_by_key(|v| v["event"].as_str().unwrap_or_default().to_owned());
    let (scan, error, tag) = (&events[0], &events[1], &events[2]);
    assert_eq!(scan["event"], "scan");
    assert_eq!(scan["raw"], "]C10104006381333931\u{1d}10LOT7");
    assert_eq!(scan["symbology"], "gs1-128");
    assert_eq!(scan["gtin"], "04006381333931");
    assert_eq!(scan["ais"], json!({"01": "04006381333931", "10": "LOT7"}));
    assert_eq!(error["event"], "scan_error");
    assert_eq!(error["raw"], "]E04006381333932");
    assert!(error["error"].as_str().unwrap().contains("check digit"));
    assert_eq!(
        *tag,
        json!({"event": "tag", "epc": "3074257BF7194E4000001A85", "rssi": -55, "count": 1,
               "scheme": "sgtin-96", "gtin": "80614141123458", "serial": "6789"})
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "listen did not exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn listen_reads_an_llrp_reader_and_refuses_a_bad_address() {
    let sim = llrp_sim::LlrpSim::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally-agent"))
        .args(["listen", "--json", "--window-ms", "100", "--rfid"])
        .arg(format!("llrp://127.0.0.1:{}", sim.port()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    sim.wait_configured(1, Duration::from_secs(10));
    sim.write(&llrp_sim::report(
        1,
        &[llrp_sim::SimTag::new("3074257BF7194E4000001A85", 1, -55).encode()],
    ));
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no tag line");
    let tag: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        tag,
        json!({"event": "tag", "epc": "3074257BF7194E4000001A85", "rssi": -55, "count": 1,
               "scheme": "sgtin-96", "gtin": "80614141123458", "serial": "6789"})
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "listen did not exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    // It stopped the ROSpec and closed the session before exiting.
    sim.wait_message(1, llrp_sim::STOP_ROSPEC, Duration::from_secs(10));
    sim.wait_message(1, llrp_sim::CLOSE_CONNECTION, Duration::from_secs(10));

    let bad = Command::new(env!("CARGO_BIN_EXE_tally-agent"))
        .args(["listen", "--rfid", "llrp://10.0.0.5:0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("invalid port"), "{stderr}");
}
