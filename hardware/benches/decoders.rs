//! Throughput of the pure decoders on one core: RFID frames (zero-copy
//! `decode`, and the buffered `FrameReader` + M100 protocol the driver
//! uses), EPC decoding and GS1 scans. `cargo bench -p tally-hardware`.
//! Plain timing loops (harness = false): each case runs for about a second
//! after a warm-up and prints items per second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use tally_hardware::rfid::frame::{decode, encode_into, Decoded, FrameType};
use tally_hardware::rfid::m100::{notice_payload, pc_for_len, M100};
use tally_hardware::rfid::{ReaderEvent, ReaderProtocol, TagRead};
use tally_hardware::{barcode, epc, rcn::RcnLayout};
use tally_sync::Epc;

/// Runs `batch` (which processes `items` items) until `budget` passes and
/// prints items per second.
fn measure(name: &str, items: u64, budget: Duration, mut batch: impl FnMut()) {
    for _ in 0..3 {
        batch();
    }
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < budget {
        batch();
        done += items;
    }
    if done > 0 {
        let rate = done as f64 / start.elapsed().as_secs_f64();
        println!("{name:<44} {rate:>14.0} /s");
    }
}

fn stream_of_notices(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let epc = Epc::from_hex(&format!("3074257BF7194E40{i:08X}")).unwrap();
        let read = TagRead {
            pc: pc_for_len(12),
            epc,
            rssi: -50,
            antenna: None,
        };
        encode_into(FrameType::Notice, 0x22, &notice_payload(&read), &mut out).unwrap();
    }
    out
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not and
    // gets a quick smoke run of every case instead of timings.
    let timed = std::env::args().any(|a| a == "--bench");
    let budget = if timed {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    if !timed {
        println!("smoke run (no timings); use `cargo bench -p tally-hardware`");
    }
    const N: usize = 10_000;
    let stream = stream_of_notices(N);
    println!(
        "RFID notice frame: {} bytes; batches of {N}",
        stream.len() / N
    );

    measure("rfid frame decode (zero-copy)", N as u64, budget, || {
        let mut buf = stream.as_slice();
        let mut frames = 0;
        while let Decoded::Frame(f, used) = decode(buf) {
            black_box(f);
            buf = &buf[used..];
            frames += 1;
        }
        assert_eq!(frames, N);
    });

    // What the driver does per read: buffer the bytes as they come (4 KiB
    // reads), decode the frame and parse the notice into a TagRead (EPC
    // allocated).
    measure(
        "rfid reader + M100 notice → TagRead",
        N as u64,
        budget,
        || {
            let mut p = M100::default();
            let mut tags = 0;
            for chunk in stream.chunks(4096) {
                p.push(chunk);
                while let Some(ev) = p.next_event() {
                    if let ReaderEvent::Tag(t) = ev {
                        black_box(&t);
                        tags += 1;
                    }
                }
            }
            assert_eq!(tags, N);
        },
    );

    let epcs: Vec<Epc> = (0..1000)
        .map(|i| Epc::from_hex(&format!("3074257BF7194E40{i:08X}")).unwrap())
        .collect();
    measure("epc decode sgtin-96 → GTIN + URI", 1000, budget, || {
        for e in &epcs {
            let d = epc::decode(e).unwrap();
            black_box(d.tag_uri());
        }
    });

    let layouts = RcnLayout::default_layouts();
    let scans = [
        "]E04006381333931",
        "]C1010400638133393117251231\u{1d}10LOT7",
        "]E02112345012346",
    ];
    measure("barcode decode (EAN-13, GS1-128, RCN)", 3, budget, || {
        for s in scans {
            black_box(barcode::decode(s, &layouts).unwrap());
        }
    });

    let two_d = [
        "]Q1https://id.gs1.org/01/09506000134352/10/ABC?17=261231",
        "]d2010950600013435217261231\u{1d}10LOT7\u{1d}21S1",
        "]Q3(01)09506000134352(7003)2612311530(91)INTERNAL",
    ];
    measure(
        "2D decode (Digital Link, GS1 DataMatrix)",
        3,
        budget,
        || {
            for s in two_d {
                black_box(barcode::decode(s, &layouts).unwrap());
            }
        },
    );
}
