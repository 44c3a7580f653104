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

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tally_agent::client::ApiClient;
use tally_sync::Gtin;

/// The agent binary's allocator, so that the committer alone (which runs
/// in this process) is measured as the agent runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The agent binary: this build's, or `TALLY_BENCH_AGENT` (another
/// build of it, to compare two versions on the same disk in one run).
fn agent_bin() -> String {
    std::env::var("TALLY_BENCH_AGENT").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tally-agent").into())
}
const ITEMS: u64 = 1_000;

/// An environment variable parsed as a `T`, if it is set and parses.
fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

fn secs() -> f64 {
    env_parse("TALLY_BENCH_SECS").unwrap_or(5.0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// What one raw-disk writer does before each `fdatasync`.
#[derive(Debug, Clone, Copy)]
enum Raw {
    /// Overwrite the same 4 KiB block (data only): the classic baseline.
    Overwrite,
    /// Append 4 KiB (the file's size must be synced too).
    Append,
    /// Overwrite this many 4 KiB blocks at scattered offsets of a 16 MiB
    /// file, as a B-tree commit does (the disk sees one request per run of
    /// neighbouring blocks).
    Scattered(u64),
}

/// The raw-disk rows of the report; the first is the baseline of the
/// ratios. 12 blocks: what one redb commit of a batch of sales writes
/// (strace: 10–13 `pwrite`s before its `fdatasync`).
const RAW_PATTERNS: [(Raw, &str); 3] = [
    (Raw::Overwrite, "overwrite one block"),
    (Raw::Append, "append (file grows)"),
    (
        Raw::Scattered(12),
        "12 scattered blocks (a redb commit's page count)",
    ),
];

/// Raw single-writer fsync rate and p50/p99 latency for one pattern,
/// in a loop for `for_secs`, on a file in `dir`.
fn raw_fsync(dir: &Path, raw: Raw, for_secs: f64) -> (f64, Duration, Duration) {
    use std::os::unix::fs::FileExt;
    const BLOCK: u64 = 4096;
    const SPAN: u64 = 4096; // blocks in the scattered file (16 MiB)
    let path = dir.join(format!("raw-{raw:?}"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let block = [0x5au8; BLOCK as usize];
    let prealloc = match raw {
        Raw::Overwrite => 1,
        Raw::Append => 0,
        Raw::Scattered(_) => SPAN,
    };
    for b in 0..prealloc {
        f.write_all_at(&block, b * BLOCK).unwrap();
    }
    f.sync_all().unwrap();
    let (mut lat, mut end, mut rng) = (Vec::new(), 0u64, 0x9e37_79b9_7f4a_7c15u64);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < for_secs {
        let t = Instant::now();
        match raw {
            Raw::Overwrite => f.write_all_at(&block, 0).unwrap(),
            Raw::Append => {
                f.write_all_at(&block, end).unwrap();
                end += BLOCK;
            }
            Raw::Scattered(n) => {
                for _ in 0..n {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    f.write_all_at(&block, ((rng >> 33) % SPAN) * BLOCK)
                        .unwrap();
                }
            }
        }
        f.sync_data().unwrap();
        lat.push(t.elapsed());
    }
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort();
    drop(f);
    let _ = std::fs::remove_file(&path);
    (rate, pct(&lat, 0.5), pct(&lat, 0.99))
}

struct Agent {
    child: Child,
    url: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start_agent(data: &Path) -> Agent {
    let mut child = Command::new(agent_bin())
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--store-id",
            "bench",
            "--data-dir",
        ])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("tally-agent listening on ")
        .expect("agent did not start")
        .to_string();
    Agent { child, url }
}

async fn ready(client: &ApiClient) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get("/v1/status").await.is_err() {
        assert!(Instant::now() < deadline, "agent not ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The nice value of a process's `tally-committer` thread (the 19th field
/// of its `stat`), if it has one.
fn committer_nice(pid: u32) -> Option<i64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "tally-committer")
        })
        .and_then(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            stat_field(&stat, 19)?.parse().ok()
        })
}

/// CPU time (user + system) of a process so far, from /proc.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    Duration::from_millis(stat_ticks(&stat) * 10)
}

/// utime + stime, in clock ticks (100/s), of a `/proc/PID/stat` line.
/// They are its 14th and 15th fields. Fields are counted, not parsed: the
/// 3rd is a letter and the 8th (`tpgid`) is -1 without a terminal.
fn stat_ticks(stat: &str) -> u64 {
    let field = |n| {
        stat_field(stat, n)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// Field `n` (counted from 1, n ≥ 3) of a `/proc/…/stat` line. The
/// command name (2nd field) may hold spaces; count from its `)`.
fn stat_field(stat: &str, n: usize) -> Option<&str> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(n.checked_sub(3)?)
}

fn gtin(i: u64) -> String {
    Gtin::from_body(2_000_000_000_000 + i).unwrap().to_string()
}

#[derive(Debug, Clone)]
struct Run {
    clients: usize,
    sales_per_s: f64,
    p50: Duration,
    p99: Duration,
    batch_mean: f64,
    /// Server side: durable commit alone, p50 / p99 (bucket upper bounds).
    commit_p50: Duration,
    commit_p99: Duration,
    /// Server side: whole batch (apply + commit), p99.
    batch_p99: Duration,
    /// Server side: a sale's arrival at the committer → durable answer.
    durable_p50: Duration,
    durable_p99: Duration,
    /// CPU time per sale: the agent's, and the load generator's.
    agent_cpu: Duration,
    client_cpu: Duration,
}

impl Run {
    /// The report's cells from "raw fsyncs/s" to "sales per commit",
    /// against `raw` (rate, p50, p99) measured just before.
    fn cells(&self, (rate, _, raw_p99): (f64, Duration, Duration)) -> String {
        format!(
            "{rate:.0} | {} | {:.0} | {:.1}× | {} | {} | {:.1} | {} / {} | {:.1} | {} / {} | {:.1} | {} | {:.1}",
            self.clients,
            self.sales_per_s,
            self.sales_per_s / rate,
            ms(self.p50),
            ms(self.p99),
            self.p99.as_secs_f64() / raw_p99.as_secs_f64(),
            ms(self.durable_p50),
            ms(self.durable_p99),
            self.durable_p99.as_secs_f64() / raw_p99.as_secs_f64(),
            ms(self.commit_p50),
            ms(self.commit_p99),
            self.commit_p99.as_secs_f64() / raw_p99.as_secs_f64(),
            ms(self.batch_p99),
            self.batch_mean
        )
    }
}

/// One keep-alive HTTP/1.1 connection that posts sales, like `wrk`: the
/// request is written as bytes and only the status line and
/// `Content-Length` of the answer are read, so the load generator spends
/// ~2 µs per sale instead of a full client's ~7 µs on the cores it shares
/// with the agent.
struct RawClient {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    async fn connect(url: &str) -> Self {
        let addr = url.trim_start_matches("http://").trim_end_matches('/');
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Posts one sale and returns the answer's status.
    async fn post_sale(&mut self, body: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req = format!(
            "POST /v1/sales HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(req.as_bytes()).await.unwrap();
        self.buf.clear();
        let mut chunk = [0u8; 1024];
        loop {
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "agent closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = std::str::from_utf8(&self.buf[..end])
                .unwrap()
                .to_ascii_lowercase();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap();
            if self.buf.len() >= end + 4 + len {
                assert_eq!(self.buf.len(), end + 4 + len, "one answer per request");
                let body = String::from_utf8_lossy(&self.buf[end + 4..]).into_owned();
                return (status, body);
            }
        }
    }
}

/// `clients` connections posting sales back to back for `for_secs`.
async fn load(client: &ApiClient, agent_pid: u32, clients: usize, for_secs: f64) -> Run {
    let before = scrape(client).await;
    let pid = agent_pid.to_string();
    let (agent_cpu0, client_cpu0) = (cpu_time(&pid), cpu_time("self"));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let gtins: Arc<Vec<String>> = Arc::new((0..ITEMS).map(gtin).collect());
    for c in 0..clients {
        let (url, stop, gtins) = (client.base().to_string(), stop.clone(), gtins.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = RawClient::connect(&url).await;
            let mut lat = Vec::new();
            let mut i = c as u64;
            while !stop.load(Ordering::Relaxed) {
                let g = &gtins[next_item(&mut i)];
                let body =
                    format!(r#"{{"lines":[{{"gtin":"{g}","qty":1,"unit_price_minor":100}}]}}"#);
                let t = Instant::now();
                let (s, v) = conn.post_sale(&body).await;
                assert_eq!(s, 201, "{v}");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let (lat, elapsed) = run_for(tasks, &stop, for_secs).await;
    let (agent_cpu, client_cpu) = (cpu_time(&pid) - agent_cpu0, cpu_time("self") - client_cpu0);
    let after = scrape(client).await;
    summarise(
        clients, lat, elapsed, &before, &after, agent_cpu, client_cpu,
    )
}

/// The next item a client sells (a per-client LCG over the stocked items).
fn next_item(state: &mut u64) -> usize {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    usize::try_from((*state >> 33) % ITEMS).unwrap()
}

/// Lets the client tasks run for `for_secs`, stops them and gathers their
/// latencies; also returns the seconds they really ran.
async fn run_for(
    tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>,
    stop: &AtomicBool,
    for_secs: f64,
) -> (Vec<Duration>, f64) {
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(for_secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    (lat, start.elapsed().as_secs_f64())
}

/// One level's row, from its latencies and the metrics around it.
fn summarise(
    clients: usize,
    mut lat: Vec<Duration>,
    elapsed: f64,
    before: &Scrape,
    after: &Scrape,
    agent_cpu: Duration,
    client_cpu: Duration,
) -> Run {
    let n = u32::try_from(lat.len()).unwrap_or(u32::MAX).max(1);
    lat.sort();
    Run {
        clients,
        sales_per_s: lat.len() as f64 / elapsed,
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        batch_mean: (after.batches.1 - before.batches.1)
            / (after.batches.0 - before.batches.0).max(1.0),
        commit_p50: hist_quantile(&before.commit, &after.commit, 0.5),
        commit_p99: hist_quantile(&before.commit, &after.commit, 0.99),
        batch_p99: hist_quantile(&before.batch, &after.batch, 0.99),
        durable_p50: hist_quantile(&before.durable, &after.durable, 0.5),
        durable_p99: hist_quantile(&before.durable, &after.durable, 0.99),
        agent_cpu: agent_cpu / n,
        client_cpu: client_cpu / n,
    }
}

/// Group commit without HTTP: `clients` tasks submit one-line sales
/// straight to a committer over its own database in `dir`, in this
/// process (one runtime thread, like the agent's one HTTP worker, plus the
/// committer thread). Client latency here is enqueue → durable answer.
fn committer_alone(rt: &tokio::runtime::Runtime, dir: &Path, clients: usize, for_secs: f64) -> Run {
    use tally_agent::commit::{Committer, Limits};
    use tally_agent::metrics::Metrics;
    use tally_agent::store::AgentDb;
    use tally_sync::command::{Command as Cmd, LineIn, Outcome, ReceiptLine};

    let store = tally_sync::ReplicaId::new("store-bench").unwrap();
    let db = Arc::new(AgentDb::open(dir, Some(&store)).unwrap());
    let metrics = Arc::new(Metrics::new());
    // The agent's defaults, so the committer runs as the agent runs it
    // (`TALLY_BENCH_HOLD_US` and `TALLY_BENCH_NICE` override them, to
    // compare).
    let defaults = Limits::default();
    let limits = Limits {
        hold: env_parse("TALLY_BENCH_HOLD_US").map_or(defaults.hold, Duration::from_micros),
        nice: env_parse("TALLY_BENCH_NICE").unwrap_or(defaults.nice),
        ..defaults
    };
    let (committer, thread) = Committer::start(
        db,
        metrics.clone(),
        limits,
        Arc::new(tally_store::SystemClock),
    )
    .unwrap();
    let gtins: Arc<Vec<Gtin>> = Arc::new((0..ITEMS).map(|i| gtin(i).parse().unwrap()).collect());
    let run = rt.block_on(async {
        let lines = gtins
            .iter()
            .map(|&gtin| ReceiptLine {
                gtin,
                qty: 1_000_000,
                epc: None,
            })
            .collect();
        let receipt = Cmd::Receipt { id: None, lines };
        committer.command(receipt).await.unwrap();
        let before = parse_metrics(&metrics.encode().unwrap());
        let cpu0 = cpu_time("self");
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (committer, stop, gtins) = (committer.clone(), stop.clone(), gtins.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut i = c as u64;
                    while !stop.load(Ordering::Relaxed) {
                        let gtin = gtins[next_item(&mut i)];
                        let sale = Cmd::Sale {
                            id: None,
                            lines: vec![LineIn {
                                gtin,
                                qty: 1,
                                unit_price_minor: Some(100),
                                epc: None,
                            }],
                            tenders: Vec::new(),
                            approval: None,
                        };
                        let t = Instant::now();
                        let done = committer.command(sale).await.unwrap();
                        assert!(
                            matches!(done, Outcome::Recorded { new: true, .. }),
                            "{done:?}"
                        );
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let (lat, elapsed) = run_for(tasks, &stop, for_secs).await;
        let cpu = cpu_time("self") - cpu0;
        let after = parse_metrics(&metrics.encode().unwrap());
        summarise(clients, lat, elapsed, &before, &after, cpu, Duration::ZERO)
    });
    drop(committer);
    thread.join().unwrap();
    run
}

/// The agent's metrics that the report uses, at one moment.
#[derive(Debug, Clone, Default)]
struct Scrape {
    /// Committed batches and the commands in them.
    batches: (f64, f64),
    /// Cumulative `le` buckets of the durable-commit histogram.
    commit: Vec<(f64, f64)>,
    /// Same for the whole batch (apply + commit).
    batch: Vec<(f64, f64)>,
    /// Same for a command's arrival at the committer → durable answer.
    durable: Vec<(f64, f64)>,
}

async fn scrape(client: &ApiClient) -> Scrape {
    let (_, text) = client.get_text("/metrics").await.unwrap();
    parse_metrics(&text)
}

/// The report's metrics out of a Prometheus text exposition.
fn parse_metrics(text: &str) -> Scrape {
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let buckets = |name: &str| {
        let prefix = format!("{name}_bucket{{le=\"");
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(&prefix)?;
                let (le, n) = rest.split_once("\"} ")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, n.trim().parse().ok()?))
            })
            .collect::<Vec<(f64, f64)>>()
    };
    Scrape {
        batches: (
            get("tally_agent_batch_size_count "),
            get("tally_agent_batch_size_sum "),
        ),
        commit: buckets("tally_agent_commit_seconds"),
        batch: buckets("tally_agent_batch_seconds"),
        durable: buckets("tally_agent_durable_seconds"),
    }
}

/// Upper bound of the bucket holding quantile `q` of what was observed
/// between two scrapes of a cumulative histogram.
fn hist_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Duration {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let b = before
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |(_, n)| *n);
            (le, n - b)
        })
        .collect();
    let total = diff.last().map_or(0.0, |(_, n)| *n);
    let want = total * q;
    let le = diff
        .iter()
        .find(|(_, n)| *n >= want)
        .map_or(f64::INFINITY, |(le, _)| *le);
    Duration::from_secs_f64(if le.is_finite() { le } else { 1.0 })
}

/// RSS with 100,000 catalog items, imported through the API as
/// `tally-agent catalog import` does, then looked up and sold: import
/// seconds, RSS and peak (KiB), database bytes.
fn catalog_rss(rt: &tokio::runtime::Runtime, dir: &Path) -> (f64, u64, u64, u64) {
    let data = dir.join("catalog");
    let agent = start_agent(&data);
    let client = ApiClient::new(&agent.url);
    let import_secs = rt.block_on(async {
        ready(&client).await;
        let t = Instant::now();
        let all: Vec<u64> = (0..100_000).collect();
        for chunk in all.chunks(5_000) {
            let items: Vec<_> = chunk
                .iter()
                .map(|&i| json!({"gtin": gtin(i), "name": format!("Item number {i}"), "price_minor": 100 + i % 5000}))
                .collect();
            let (s, v) = client.post("/v1/catalog", &json!({ "items": items })).await.unwrap();
            assert_eq!(s.as_u16(), 200, "{v}");
        }
        let secs = t.elapsed().as_secs_f64();
        for i in (0..100_000).step_by(97) {
            let g = gtin(i);
            client.post("/v1/receipts", &json!({"lines": [{"gtin": g, "qty": 5}]})).await.unwrap();
            let (s, v) = client.post("/v1/sales", &json!({"lines": [{"gtin": g, "qty": 1}]})).await.unwrap();
            assert_eq!(s.as_u16(), 201, "{v}");
            client.get(&format!("/v1/stock/{g}")).await.unwrap();
        }
        secs
    });
    let (rss, hwm) = rss_kib(agent.child.id());
    let db_bytes = std::fs::metadata(data.join("agent.redb")).map_or(0, |m| m.len());
    drop(agent);
    (import_secs, rss, hwm, db_bytes)
}

/// How many rounds met the two rate and latency targets, with the ranges
/// of their ratios: committed sales/s ≥ 5 × raw fsyncs/s, and the commit
/// p99 ≤ 3 × the raw fsync p99.
fn verdict<'a>(rows: impl Iterator<Item = (&'a Run, (f64, Duration, Duration))>) -> String {
    let (mut n, mut fast, mut short) = (0, 0, 0);
    let (mut rates, mut p99s) = (Vec::new(), Vec::new());
    for (run, (rate, _, raw_p99)) in rows {
        let ratio = run.sales_per_s / rate;
        let p99 = run.commit_p99.as_secs_f64() / raw_p99.as_secs_f64();
        n += 1;
        fast += usize::from(ratio >= 5.0);
        short += usize::from(p99 <= 3.0);
        rates.push(ratio);
        p99s.push(p99);
    }
    let range = |v: &[f64], unit: &str| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.1}–{hi:.1}{unit}")
    };
    format!(
        "sales/s ≥ 5× raw fsyncs/s in {fast} of {n} rounds ({}); commit p99 ≤ 3 raw fsync p99 in {short} of {n} rounds ({} the raw p99)",
        range(&rates, "×"),
        range(&p99s, "×")
    )
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
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
    let client = ApiClient::new(&agent.url);
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
