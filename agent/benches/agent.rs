//! The agent benchmark (`cargo bench -p tally-agent --bench agent`):
//! committed durable sales/s and p50/p99 latency through the HTTP API with
//! 1, 8 and 64 concurrent clients, next to the raw single-writer
//! fsyncs/s and fsync latency of the same disk measured in the same run
//! (write + fdatasync loop on a file in the same directory), and the
//! agent's RSS with 100,000 catalog items. Prints a Markdown report.
//!
//! The agent is the real release binary, as a separate process; the load
//! generator (one thread) shares the machine's cores with it (numbers are
//! conservative for that reason). `TALLY_BENCH_SECS` sets the seconds per concurrency
//! level (default 5); `TALLY_BENCH_DIR` the directory (default under
//! cargo's target dir, i.e. on the project's disk).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tally_agent::client::ApiClient;
use tally_sync::Gtin;

const BIN: &str = env!("CARGO_BIN_EXE_tally-agent");
const ITEMS: u64 = 1_000;

fn secs() -> f64 {
    std::env::var("TALLY_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0)
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

/// Raw single-writer fsync rate: write 4 KiB then fdatasync, in a loop.
/// `append` grows the file (the size must be synced too); otherwise the
/// same preallocated block is overwritten (data only).
fn raw_fsync(dir: &Path, append: bool, for_secs: f64) -> (f64, Duration, Duration) {
    let path = dir.join(if append {
        "raw-append"
    } else {
        "raw-overwrite"
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let block = [0x5au8; 4096];
    if !append {
        f.write_all(&block).unwrap();
        f.sync_all().unwrap();
    }
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < for_secs {
        let t = Instant::now();
        if !append {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(0)).unwrap();
        }
        f.write_all(&block).unwrap();
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
    let mut child = Command::new(BIN)
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

/// CPU time (user + system) of a process so far, from /proc.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields of the whole line, in clock ticks (100/s).
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
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
    /// CPU time per sale: the agent's, and the load generator's.
    agent_cpu: Duration,
    client_cpu: Duration,
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
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let g = &gtins[usize::try_from((i >> 33) % ITEMS).unwrap()];
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
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(for_secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (agent_cpu, client_cpu) = (cpu_time(&pid) - agent_cpu0, cpu_time("self") - client_cpu0);
    let after = scrape(client).await;
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
        agent_cpu: agent_cpu / n,
        client_cpu: client_cpu / n,
    }
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
}

async fn scrape(client: &ApiClient) -> Scrape {
    let (_, text) = client.get_text("/metrics").await.unwrap();
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
    let rounds: usize = std::env::var("TALLY_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
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
    // Rounds: raw fsync, then each concurrency level, back to back, so
    // each round compares the agent with the disk as it was just then.
    let mut raws = Vec::new();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); 3];
    for _ in 0..rounds {
        raws.push((
            raw_fsync(dir.path(), false, 1.5),
            raw_fsync(dir.path(), true, 1.5),
        ));
        for (i, clients) in [1, 8, 64].into_iter().enumerate() {
            runs[i].push(rt.block_on(load(&client, agent.child.id(), clients, for_secs)));
        }
    }
    let (sales_rss, _) = rss_kib(agent.child.id());
    drop(agent);
    let load_after = load_average();
    // RSS with 100,000 catalog items, imported through the API as
    // `tally-agent catalog import` does, then looked up and sold.
    let data = dir.path().join("catalog");
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

    let raw_rate = median(raws.iter().map(|r| r.0 .0).collect());
    let raw_p50 =
        Duration::from_secs_f64(median(raws.iter().map(|r| r.0 .1.as_secs_f64()).collect()));
    let raw_p99 =
        Duration::from_secs_f64(median(raws.iter().map(|r| r.0 .2.as_secs_f64()).collect()));
    let app_rate = median(raws.iter().map(|r| r.1 .0).collect());
    let app_p50 =
        Duration::from_secs_f64(median(raws.iter().map(|r| r.1 .1.as_secs_f64()).collect()));
    let app_p99 =
        Duration::from_secs_f64(median(raws.iter().map(|r| r.1 .2.as_secs_f64()).collect()));
    println!(
        "\n### Agent benchmark (cargo bench -p tally-agent --bench agent: {rounds} rounds, {for_secs} s per level; \
         load average {load_before} before, {load_after} after)\n"
    );
    println!("Raw disk, same directory, same run (medians of the rounds): write 4 KiB + fdatasync, one writer:\n");
    println!("| raw fsync | rate | p50 | p99 |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| overwrite one block | {raw_rate:.0} fsyncs/s | {} | {} |",
        ms(raw_p50),
        ms(raw_p99)
    );
    println!(
        "| append (file grows) | {app_rate:.0} fsyncs/s | {} | {} |",
        ms(app_p50),
        ms(app_p99)
    );
    println!("\nSales through the HTTP API, one line each, 201 = durable (per round: raw fsyncs/s of that round, then each level):\n");
    println!("| round | raw fsyncs/s (overwrite) | clients | committed sales/s | ÷ raw fsyncs/s | client p50 | client p99 | p99 ÷ raw p99 | server commit p50 / p99 | server batch p99 | sales per commit | CPU per sale: agent / load generator |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for round in 0..rounds {
        let ((rate, _, rp99), _) = raws[round];
        for level in &runs {
            let r = &level[round];
            println!(
                "| {} | {rate:.0} | {} | {:.0} | {:.1}× | {} | {} | {:.1} | {} / {} | {} | {:.1} | {:.0} µs / {:.0} µs |",
                round + 1,
                r.clients,
                r.sales_per_s,
                r.sales_per_s / rate,
                ms(r.p50),
                ms(r.p99),
                r.p99.as_secs_f64() / rp99.as_secs_f64(),
                ms(r.commit_p50),
                ms(r.commit_p99),
                ms(r.batch_p99),
                r.batch_mean,
                r.agent_cpu.as_secs_f64() * 1e6,
                r.client_cpu.as_secs_f64() * 1e6
            );
        }
    }
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
