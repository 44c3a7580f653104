//! Load through the HTTP API, as a store's tills make it: `clients`
//! keep-alive connections posting one-line sales back to back; and the
//! catalog run (100,000 items imported, some sold and looked up) that
//! measures the agent's RSS.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tally_agent_api::client::AgentClient as ApiClient;

use crate::process::{cpu_time, ready, rss_kib, start_agent};
use crate::stats::{scrape, summarise, Run};
use crate::{gtin, ITEMS};

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
            "POST /v1/sales HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
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
pub async fn load(client: &ApiClient, agent_pid: u32, clients: usize, for_secs: f64) -> Run {
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
pub fn next_item(state: &mut u64) -> usize {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    usize::try_from((*state >> 33) % ITEMS).unwrap()
}

/// Lets the client tasks run for `for_secs`, stops them and gathers their
/// latencies; also returns the seconds they really ran.
pub async fn run_for(
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

/// RSS with 100,000 catalog items, imported through the API as
/// `tally-agent catalog import` does, then looked up and sold: import
/// seconds, RSS and peak (KiB), database bytes.
pub fn catalog_rss(rt: &tokio::runtime::Runtime, dir: &Path) -> (f64, u64, u64, u64) {
    let data = dir.join("catalog");
    let agent = start_agent(&data);
    let client = ApiClient::new(&agent.url, std::time::Duration::from_secs(30)).unwrap();
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
