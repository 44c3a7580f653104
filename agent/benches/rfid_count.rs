//! The RFID count benchmark (`cargo bench -p tally-agent --bench
//! rfid_count`, issue 23): a count of 50,000 distinct tags, each read 10
//! times, end to end through the real agent binary in `--rfid-mode count`,
//! its M100 driver on a pseudo-terminal, the read window, the committer's
//! count jobs, into the variance report. Measures the time to take the
//! reads, to finish (the report) and to accept, and the agent's peak
//! memory (VmHWM). The baseline, in the same run on the same agent: the
//! same bytes with no session counting (driver, window and committer, the
//! reads dropped), so the ratio is what counting costs over reading.
//!
//! The driver reports a tag once per read window, when the window closes
//! (with its read count and best RSSI), so every time here includes one
//! window (`TALLY_BENCH_WINDOW_MS`, default 500). `TALLY_BENCH_TAGS`
//! (default 50,000) and `TALLY_BENCH_READS` (default 10) set the size;
//! `TALLY_BENCH_DIR` the directory. Prints a Markdown report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The agent bench's child process and `/proc` readings.
#[allow(dead_code)]
#[path = "agent/process.rs"]
mod process;
#[path = "../../hardware/tests/common/pty.rs"]
mod pty;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use tally_agent_api::client::AgentClient as ApiClient;
use tally_agent_api::counts::CountSessionRequest;
use tally_hardware::epc::Sgtin96;
use tally_hardware::rfid::frame::{encode_into, FrameType};
use tally_hardware::rfid::m100::{notice_payload, pc_for_len, CMD_SINGLE_INVENTORY};
use tally_hardware::rfid::TagRead;
use tally_sync::{Epc, Gtin};

/// Items the tags are spread over.
const ITEMS: u64 = 100;
/// Tags received but left out of the read (the report finds them missing).
const MISSING: u64 = 50;

fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

fn gtin(item: u64) -> Gtin {
    Gtin::from_body(400_638_100_000 + item).unwrap()
}

/// Tag `n`: item `n % ITEMS`, serial `n`.
fn tag(n: u64) -> Epc {
    let s = Sgtin96::from_gtin(1, gtin(n % ITEMS), 7, n + 1).unwrap();
    Epc::from_bytes(&s.encode()).unwrap()
}

fn notice(epc: &Epc, rssi: i8, out: &mut Vec<u8>) {
    let read = TagRead {
        pc: pc_for_len(epc.as_bytes().len()),
        epc: epc.clone(),
        rssi,
        antenna: None,
    };
    encode_into(
        FrameType::Notice,
        CMD_SINGLE_INVENTORY,
        &notice_payload(&read),
        out,
    )
    .unwrap();
}

/// Every tag of `0..read`, `times` rounds over all of them (a handheld
/// sweeping the aisle again and again).
fn reads(read: u64, times: u64) -> Vec<u8> {
    let tags: Vec<Epc> = (0..read).map(tag).collect();
    let mut out = Vec::with_capacity((read * times * 26) as usize);
    for round in 0..times {
        for t in &tags {
            notice(t, -40 - (round % 30) as i8, &mut out);
        }
    }
    out
}

/// Writes `bytes` to the reader's side of the pty; answers when the driver
/// has taken them all but the pty's buffer.
fn write_all(master: &mut std::fs::File, bytes: &[u8]) -> Duration {
    let t = Instant::now();
    for chunk in bytes.chunks(4096) {
        master.write_all(chunk).unwrap();
    }
    master.flush().unwrap();
    t.elapsed()
}

async fn metric(client: &ApiClient, series: &str) -> u64 {
    let (_, text) = client.get_text("/metrics").await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// Waits until `series` stops rising for `quiet`; answers its value and
/// when it last rose.
async fn settle(client: &ApiClient, series: &str, quiet: Duration) -> (u64, Instant) {
    let mut last = (metric(client, series).await, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let v = metric(client, series).await;
        if v != last.0 {
            last = (v, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return last;
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tags: u64 = env_parse("TALLY_BENCH_TAGS").unwrap_or(50_000);
    let times: u64 = env_parse("TALLY_BENCH_READS").unwrap_or(10);
    let base = std::env::var("TALLY_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut reader = pty::Pty::open();
    let window_ms: u64 = env_parse("TALLY_BENCH_WINDOW_MS").unwrap_or(500);
    // A report leaves the read window when it closes: wait longer than it.
    let quiet = Duration::from_millis(window_ms * 2 + 500);
    let window = window_ms.to_string();
    let agent = process::start_agent_with(
        &dir.path().join("data"),
        &[
            "--rfid".as_ref(),
            reader.slave_path.as_os_str(),
            "--rfid-mode".as_ref(),
            "count".as_ref(),
            "--rfid-window-ms".as_ref(),
            window.as_ref(),
        ],
    );
    let client = ApiClient::new(&agent.url, Duration::from_secs(120)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get("/v1/status").await.is_err() {
        assert!(Instant::now() < deadline, "agent not ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = agent.child.id();
    while metric(&client, "tally_agent_device_connected{device=\"rfid\"}").await != 1 {
        assert!(Instant::now() < deadline, "reader not connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Stock: every tag received by its EPC, 1,000 lines per receipt.
    let t = Instant::now();
    for first in (0..tags).step_by(1000) {
        let lines: Vec<_> = (first..(first + 1000).min(tags))
            .map(|n| json!({"gtin": gtin(n % ITEMS).to_string(), "qty": 1, "epc": tag(n).to_hex()}))
            .collect();
        let (s, v) = client
            .post("/v1/receipts", &json!({ "lines": lines }))
            .await
            .unwrap();
        assert_eq!(s.as_u16(), 201, "{v}");
    }
    let stocked = t.elapsed();
    let read = tags - MISSING;
    let bytes = reads(read, times);
    let (rss_before, _) = process::rss_kib(pid);

    // Baseline: the same reads with no session counting.
    const DROPPED: &str = "tally_agent_device_tags_total{outcome=\"count_no_session\"}";
    let t = Instant::now();
    let written = write_all(&mut reader.master, &bytes);
    let (dropped, last) = settle(&client, DROPPED, quiet).await;
    let baseline = last.duration_since(t).max(written);

    // The count: a session over the whole store, the same reads.
    client
        .start_count(&CountSessionRequest {
            session_id: Some("bench".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    const COUNTED: &str = "tally_agent_device_tags_total{outcome=\"counted\"}";
    const AGAIN: &str = "tally_agent_device_tags_total{outcome=\"count_again\"}";
    let t = Instant::now();
    let written_count = write_all(&mut reader.master, &bytes);
    let counted_at = loop {
        let s = client.count_session("bench").await.unwrap();
        if s.tags >= read {
            break t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (_, last) = settle(&client, AGAIN, quiet).await;
    let taken = last.duration_since(t).max(written_count).max(counted_at);
    let fed = metric(&client, COUNTED).await + metric(&client, AGAIN).await;
    let (_, peak_reading) = process::rss_kib(pid);

    let t = Instant::now();
    let report = client.finish_count("bench").await.unwrap();
    let finish = t.elapsed();
    assert_eq!(report.items.len() as u64, ITEMS);
    assert_eq!(report.epcs.missing_total, MISSING);
    let counted: u64 = report.items.iter().map(|l| l.counted).sum();
    assert_eq!(counted, read);
    let t = Instant::now();
    let accepted = client.accept_count("bench").await.unwrap();
    let accept = t.elapsed();
    let (rss_after, peak) = process::rss_kib(pid);
    let db = std::fs::metadata(dir.path().join("data").join(tally_agent::store::DB_FILE))
        .map(|m| m.len())
        .unwrap_or(0);

    println!("## RFID count ({tags} tags received, {read} read {times} times each, read window {window_ms} ms)\n");
    println!("| measure | value |\n| --- | --- |");
    println!(
        "| tags received (stock, {ITEMS} items, 1,000 per receipt) | {tags} in {} s |",
        secs(stocked)
    );
    println!(
        "| bytes through the pty (M100 notices) | {} MB per pass |",
        bytes.len() / 1_000_000
    );
    println!("| **baseline**: reads with no session (driver, window, committer) | {} s, {dropped} reports dropped |", secs(baseline));
    println!("| **count**: the same reads into the session | {} s ({} s until every tag counted), {fed} reports fed |", secs(taken), secs(counted_at));
    println!(
        "| count / baseline | {:.2}× |",
        taken.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "| tags per second counted | {:.0} |",
        read as f64 / counted_at.as_secs_f64()
    );
    println!("| finish (variance report: {ITEMS} items, {} tags checked, {MISSING} missing found) | {} ms |", read, finish.as_millis());
    println!(
        "| accept ({} adjustments) | {} ms |",
        accepted.adjustments.len(),
        accept.as_millis()
    );
    println!(
        "| agent RSS before the reads / after | {} / {} MiB |",
        rss_before / 1024,
        rss_after / 1024
    );
    println!(
        "| agent peak memory (VmHWM) while reading / at the end | {} / {} MiB |",
        peak_reading / 1024,
        peak / 1024
    );
    println!("| database file at the end | {} MiB |", db / (1024 * 1024));
}
