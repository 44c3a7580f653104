//! Shared helpers of the agent's integration tests: an agent started
//! in-process on 127.0.0.1:0 (the library's `run`, real TCP and HTTP), the
//! real `tally-agent` binary as a child process, and HQ's allocations
//! merged into a stopped store (`allocate`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pty;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tally_agent::config::{parse_store_id, Config};
use tally_agent::AgentError;
use tally_agent_api::client::AgentClient as ApiClient;
use tally_store::SystemClock;
use tally_sync::clock::Clock;
use tokio::sync::oneshot;

/// An agent running in this process.
pub struct TestAgent {
    pub client: ApiClient,
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), AgentError>>,
}

impl TestAgent {
    /// Starts an agent for `store` on `dir`.
    pub async fn start(dir: &Path, store: &str) -> Self {
        Self::try_start(Config::new(dir, Some(parse_store_id(store).unwrap())))
            .await
            .unwrap()
    }

    /// Starts an agent for `store` on `dir` whose managers are `managers`
    /// (id, PIN), their PINs hashed with cheap parameters.
    pub async fn start_with_managers(dir: &Path, store: &str, managers: &[(&str, &str)]) -> Self {
        let mut config = Config::new(dir, Some(parse_store_id(store).unwrap()));
        config.managers = managers
            .iter()
            .map(|(id, pin)| tally_agent::config::ManagerConfig {
                id: id.to_string(),
                pin_argon2: tally_agent::managers::hash_pin_cheap(pin).unwrap(),
            })
            .collect();
        Self::try_start(config).await.unwrap()
    }

    /// Starts an agent with `config`; `Err` if it stopped with an error
    /// before answering.
    pub async fn try_start(config: Config) -> Result<Self, AgentError> {
        Self::try_start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Starts an agent with `config` whose wall clock is `clock`; `Err`
    /// if it stopped with an error before answering.
    pub async fn try_start_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AgentError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut task = tokio::spawn(tally_agent::run(
            config,
            clock,
            listener,
            |_| {},
            async move {
                let _ = stopped.await;
            },
        ));
        let client = ApiClient::new(&format!("http://{addr}"), Duration::from_secs(30)).unwrap();
        // Ready when it answers; or it failed to start.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            tokio::select! {
                res = &mut task => {
                    return Err(res.unwrap().expect_err("agent stopped without error"));
                }
                ans = client.get("/v1/status") => {
                    if ans.is_ok() {
                        break;
                    }
                }
            }
            assert!(Instant::now() < deadline, "agent not ready in time");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Self {
            client,
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// Signals shutdown and waits for the agent to stop.
    pub async fn stop(mut self) -> Result<(), AgentError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v) = self.client.get(path).await.unwrap();
        (s.as_u16(), v)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v) = self.client.post(path, &body).await.unwrap();
        (s.as_u16(), v)
    }

    pub async fn on_hand(&self, gtin: &str) -> u64 {
        let (s, v) = self.get(&format!("/v1/stock/{gtin}")).await;
        assert_eq!(s, 200, "{v}");
        v["on_hand"].as_u64().unwrap()
    }

    pub async fn receive(&self, gtin: &str, qty: u64) {
        let (s, v) = self
            .post(
                "/v1/receipts",
                serde_json::json!({"lines": [{"gtin": gtin, "qty": qty}]}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
}

/// Merges `allocations` (a page of the hub's `GET /v1/allocations`, up to
/// `cursor`) into the store `store` whose database is at `dir`, through
/// the agent's own committer, as its sync client merges the hub's page:
/// how a test gives a store HQ's orders without a hub. The agent must be
/// stopped (the database is opened exclusively); start it afterwards.
pub async fn allocate(
    dir: &Path,
    store: &str,
    allocations: Vec<tally_sync::fulfilment::OrderAllocation>,
    cursor: u64,
) {
    merge_page(
        dir,
        store,
        tally_sync::message::AllocationsPage {
            allocations,
            transfers: Vec::new(),
            cursor,
            more: false,
        },
    )
    .await;
}

/// Merges a whole page of the hub's `GET /v1/allocations` (orders and
/// transfers) into the stopped store at `dir`, as [`allocate`] does.
#[allow(dead_code)]
pub async fn merge_page(dir: &Path, store: &str, page: tally_sync::message::AllocationsPage) {
    use tally_agent::commit::{Committer, Limits};
    use tally_agent::metrics::Metrics;
    use tally_agent::store::AgentDb;

    let store = parse_store_id(store).unwrap();
    let db = Arc::new(AgentDb::open(dir, Some(&store)).unwrap());
    let (committer, thread) = Committer::start(
        db,
        Arc::new(Metrics::new()),
        Limits::default(),
        Arc::new(SystemClock),
    )
    .unwrap();
    committer.allocations(page).await.unwrap();
    // The last handle gone, the committer stops and closes the database.
    drop(committer);
    let died = tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(died, None, "the committer stopped cleanly");
}

/// The real binary, as a child process.
pub struct AgentProcess {
    pub child: Child,
    pub url: String,
}

impl AgentProcess {
    /// Starts `program args…` (the agent binary, or a wrapper such as
    /// strace followed by it) and waits until its API answers.
    pub async fn spawn(cmd: Command) -> Self {
        Self::spawn_trusting(cmd, None).await
    }

    /// As [`AgentProcess::spawn`], for an agent whose API may be HTTPS
    /// under the CA in `ca` (`tally-agent api-ca`).
    pub async fn spawn_trusting(mut cmd: Command, ca: Option<&Path>) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the agent");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(url) = line.strip_prefix("tally-agent listening on ") {
                        let _ = tx.send(url.to_string());
                        sent = true;
                    }
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            // Drain (and keep visible with --nocapture) the agent's logs.
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("TALLY_TEST_LOGS").is_some() {
                    eprintln!("agent: {line}");
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            match rx.try_recv() {
                Ok(url) => break url,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    panic!("agent exited before listening: {:?}", child.wait())
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("agent exited before listening: {status}");
            }
            assert!(Instant::now() < deadline, "agent did not listen in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let ca = ca.map(|path| std::fs::read(path).unwrap());
        let client =
            ApiClient::trusting(&url, std::time::Duration::from_secs(30), ca.as_deref()).unwrap();
        loop {
            if let Ok((s, _)) = client.get("/v1/status").await {
                if s.is_success() {
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("agent exited before answering: {status}");
            }
            assert!(Instant::now() < deadline, "agent did not answer in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Self { child, url }
    }

    /// SIGTERM, then waits (up to `within`) for a clean exit.
    pub async fn terminate(&mut self, within: Duration) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        self.exits_cleanly(within, "SIGTERM").await;
    }

    /// Waits (polling, up to `within`) for the agent to exit, and checks
    /// it exited 0. `after` names what should have stopped it.
    pub async fn exits_cleanly(&mut self, within: Duration, after: &str) {
        let deadline = Instant::now() + within;
        let exit = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "no exit after {after}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(exit.success(), "{exit}");
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An item's on-hand units as the agent's API reports them.
pub async fn on_hand(client: &ApiClient, gtin: &str) -> u64 {
    let (s, v) = client.get(&format!("/v1/stock/{gtin}")).await.unwrap();
    assert!(s.is_success(), "{v}");
    v["on_hand"].as_u64().unwrap()
}

/// A `tally-agent run` command on `dir` listening on an ephemeral port.
pub fn agent_command(bin: &str, dir: &Path, store: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args([
        "run",
        "--listen",
        "127.0.0.1:0",
        "--store-id",
        store,
        "--data-dir",
    ])
    .arg(dir);
    cmd
}

/// GTINs used by the tests (valid check digits), GTIN-13 form.
pub const PEN: &str = "4006381333931";
pub const GUM: &str = "0036000291452";
pub const MUG: &str = "5901234123457";
