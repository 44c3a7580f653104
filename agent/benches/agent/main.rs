//! The agent benchmark (`cargo bench -p tally-agent --bench agent`):
//! committed durable sales/s and p50/p99 latency through the HTTP API with
//! 1, 8 and 64 concurrent clients, next to the raw single-writer
//! fsyncs/s and fsync latency of the same disk measured in the same run
//! (write + fdatasync loops on a file in the same directory: one block
//! overwritten, the baseline of every ratio; appended; and 12 scattered
//! blocks, what one redb commit writes), the committer alone with 64
//! submitters in this process (group commit without HTTP), and the agent's
//! RSS with 100,000 catalog items. Prints a Markdown report.
//!
//! The agent is the real release binary, as a separate process; the load
//! generator (one thread) shares the machine's cores with it (numbers are
//! conservative for that reason). `TALLY_BENCH_SECS` sets the seconds per concurrency
//! level (default 5); `TALLY_BENCH_DIR` the directory (default under
//! cargo's target dir, i.e. on the project's disk). For profiling one part:
//! `TALLY_BENCH_CLIENTS` (default `1,8,64`; empty for none) lists the HTTP
//! levels, `TALLY_BENCH_ALONE=0` skips the committer alone and
//! `TALLY_BENCH_RSS=0` the catalog RSS run; `TALLY_BENCH_AGENT` runs another
//! build of the agent binary; `TALLY_BENCH_HOLD_US` and `TALLY_BENCH_NICE`
//! set the committer alone's hold and nice (default: the agent's).
//!
//! Code map: `raw.rs` (the raw-disk baseline), `process.rs` (the agent as
//! a child process, and what `/proc` says about it), `http.rs` (load
//! through the HTTP API, and the catalog RSS run), `alone.rs` (the
//! committer alone, in this process), `stats.rs` (what a run measured, the
//! agent's metrics scraped around it, and the report's cells); this file
//! holds the settings and runs the rounds and prints the report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alone;
mod http;
mod process;
mod raw;
mod stats;

use std::time::Duration;

use serde_json::json;
use tally_agent_api::client::AgentClient as ApiClient;
use tally_sync::Gtin;

use crate::alone::committer_alone;
use crate::http::{catalog_rss, load};
use crate::process::{committer_nice, load_average, ready, rss_kib, start_agent};
use crate::raw::{raw_fsync, Raw, RAW_PATTERNS};
use crate::stats::{median, ms, verdict, Run};

/// The agent binary's allocator, so that the committer alone (which runs
/// in this process) is measured as the agent runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Items stocked for the sales runs.
pub const ITEMS: u64 = 1_000;

/// An environment variable parsed as a `T`, if it is set and parses.
pub fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

fn secs() -> f64 {
    env_parse("TALLY_BENCH_SECS").unwrap_or(5.0)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).map_or(true, |v| v != "0")
}

/// The HTTP levels to run (`TALLY_BENCH_CLIENTS`, default 1, 8 and 64).
fn levels() -> Vec<usize> {
    std::env::var("TALLY_BENCH_CLIENTS").map_or(vec![1, 8, 64], |v| {
        v.split(',').filter_map(|c| c.trim().parse().ok()).collect()
    })
}

/// The `i`th stocked item's GTIN.
pub fn gtin(i: u64) -> String {
    Gtin::from_body(2_000_000_000_000 + i).unwrap().to_string()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let base = std::env::var("TALLY_BENCH_DIR")
        .unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").to_string());
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let for_secs = secs();
    let rounds: usize = env_parse("TALLY_BENCH_ROUNDS").unwrap_or(3);
    // One thread, like `wrk -t1`: the load generator stays on at most one
    // core and wakes no second worker per response.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let load_before = load_average();

    let data = dir.path().join("sales");
    let agent = start_agent(&data);
    let client = ApiClient::new(&agent.url, std::time::Duration::from_secs(30)).unwrap();
    rt.block_on(async {
        ready(&client).await;
        for chunk in (0..ITEMS).collect::<Vec<_>>().chunks(500) {
            let lines: Vec<_> = chunk
                .iter()
                .map(|&i| json!({"gtin": gtin(i), "qty": 1_000_000}))
                .collect();
            let (s, v) = client
                .post("/v1/receipts", &json!({ "lines": lines }))
                .await
                .unwrap();
            assert_eq!(s.as_u16(), 201, "{v}");
        }
        load(&client, agent.child.id(), 8, 0.5).await; // warm-up
    });
    let nice =
        committer_nice(agent.child.id()).map_or_else(|| "not found".to_string(), |n| n.to_string());
    // Rounds: raw fsync, then each concurrency level, back to back, so
    // each round compares the agent with the disk as it was just then.
    let mut raws: Vec<Vec<(f64, Duration, Duration)>> = Vec::new();
    let levels = levels();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); levels.len()];
    for _ in 0..rounds {
        raws.push(
            RAW_PATTERNS
                .iter()
                .map(|&(raw, _)| raw_fsync(dir.path(), raw, 1.5))
                .collect(),
        );
        for (i, &clients) in levels.iter().enumerate() {
            runs[i].push(rt.block_on(load(&client, agent.child.id(), clients, for_secs)));
        }
    }
    // The committer alone, after the HTTP rounds (the agent is stopped by
    // then, so the two never share the cores): one run per round.
    let (sales_rss, _) = rss_kib(agent.child.id());
    drop(agent);
    let alone_rounds = if env_flag("TALLY_BENCH_ALONE") {
        rounds
    } else {
        0
    };
    let alone: Vec<((f64, Duration, Duration), Run)> = (0..alone_rounds)
        .map(|round| {
            let raw = raw_fsync(dir.path(), Raw::Overwrite, 1.5);
            let d = dir.path().join(format!("committer-{round}"));
            (raw, committer_alone(&rt, &d, 64, for_secs))
        })
        .collect();
    let load_after = load_average();
    let catalog = env_flag("TALLY_BENCH_RSS").then(|| catalog_rss(&rt, dir.path()));

    println!(
        "\n### Agent benchmark (cargo bench -p tally-agent --bench agent: {rounds} rounds, {for_secs} s per level; \
         load average {load_before} before, {load_after} after; the agent's committer thread at nice {nice})\n"
    );
    println!("Raw disk, same directory, same run (medians of the rounds): write 4 KiB + fdatasync, one writer:\n");
    println!("| raw fsync | rate | p50 | p99 |");
    println!("| --- | --- | --- | --- |");
    for (i, (_, what)) in RAW_PATTERNS.iter().enumerate() {
        let m = |f: &dyn Fn(&(f64, Duration, Duration)) -> f64| {
            median(raws.iter().map(|r| f(&r[i])).collect())
        };
        println!(
            "| {what} | {:.0} fsyncs/s | {} | {} |",
            m(&|r| r.0),
            ms(Duration::from_secs_f64(m(&|r| r.1.as_secs_f64()))),
            ms(Duration::from_secs_f64(m(&|r| r.2.as_secs_f64()))),
        );
    }
    println!("\nSales through the HTTP API, one line each, 201 = durable (per round: raw fsyncs/s of that round, then each level):\n");
    println!("| round | raw fsyncs/s (overwrite) | clients | committed sales/s | ÷ raw fsyncs/s | client p50 | client p99 | p99 ÷ raw p99 | server p50 / p99 (committer queue → durable) | server p99 ÷ raw p99 | server commit p50 / p99 | commit p99 ÷ raw p99 | server batch p99 | sales per commit | CPU per sale: agent / load generator |");
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for round in 0..rounds {
        for level in &runs {
            let r = &level[round];
            println!(
                "| {} | {} | {:.0} µs / {:.0} µs |",
                round + 1,
                r.cells(raws[round][0]),
                r.agent_cpu.as_secs_f64() * 1e6,
                r.client_cpu.as_secs_f64() * 1e6
            );
        }
    }
    println!("\nThe committer alone, in the bench's process: 64 tasks submit one-line sales straight to it (no HTTP, no JSON); \
              latency is enqueue → durable answer. Raw fsyncs measured just before each run:\n");
    println!("| run | raw fsyncs/s (overwrite) | submitters | committed sales/s | ÷ raw fsyncs/s | p50 | p99 | p99 ÷ raw p99 | committer p50 / p99 (queue → durable) | committer p99 ÷ raw p99 | commit p50 / p99 | commit p99 ÷ raw p99 | batch p99 | sales per commit | CPU per sale (whole process) |");
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (i, (raw, r)) in alone.iter().enumerate() {
        println!(
            "| {} | {} | {:.0} µs |",
            i + 1,
            r.cells(*raw),
            r.agent_cpu.as_secs_f64() * 1e6
        );
    }
    println!("\nAgainst the issue's targets (64 concurrent clients, each round against its own raw disk):\n");
    if let Some(i) = levels.iter().position(|&c| c == 64) {
        let rows = runs[i].iter().zip(raws.iter().map(|r| r[0]));
        println!("- through HTTP: {}", verdict(rows));
    }
    if !alone.is_empty() {
        println!(
            "- the committer alone: {}",
            verdict(alone.iter().map(|(raw, r)| (r, *raw)))
        );
    }
    if let Some((import_secs, rss, hwm, db_bytes)) = catalog {
        println!(
            "\nRSS: {:.1} MiB after the sales runs; with 100,000 catalog items \
             (imported in {import_secs:.1} s through the API, 1,031 of them received, sold and looked up): \
             {:.1} MiB (peak {:.1} MiB), database {:.1} MiB.",
            sales_rss as f64 / 1024.0,
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
            db_bytes as f64 / (1024.0 * 1024.0)
        );
    }
}
