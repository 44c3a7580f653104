//! The agent under test as a child process (the real binary), and what
//! `/proc` says about it: RSS, CPU time, its committer thread's nice
//! value, the load average.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tally_agent_api::client::AgentClient as ApiClient;

/// The agent binary: this build's, or `TALLY_BENCH_AGENT` (another
/// build of it, to compare two versions on the same disk in one run).
fn agent_bin() -> String {
    std::env::var("TALLY_BENCH_AGENT").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tally-agent").into())
}

/// A running agent; stopped (SIGTERM) when dropped.
pub struct Agent {
    pub child: Child,
    pub url: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

pub fn start_agent(data: &Path) -> Agent {
    start_agent_with(data, &[])
}

/// The agent on `data` with `extra` arguments to `run` (devices, …).
pub fn start_agent_with(data: &Path, extra: &[&std::ffi::OsStr]) -> Agent {
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
        .args(extra)
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

pub async fn ready(client: &ApiClient) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get("/v1/status").await.is_err() {
        assert!(Instant::now() < deadline, "agent not ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn rss_kib(pid: u32) -> (u64, u64) {
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
pub fn committer_nice(pid: u32) -> Option<i64> {
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
pub fn cpu_time(pid: &str) -> Duration {
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

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
