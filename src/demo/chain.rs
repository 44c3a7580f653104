//! The chain the demo runs: `tally-hub init` and `enroll`, then a real hub
//! and one real agent per store as child processes on loopback with real
//! TLS, each agent syncing through its own [`FaultProxy`] and reading a
//! simulated scanner and RFID reader on pseudo-terminals.
//!
//! Layout of the data directory:
//!
//! ```text
//! hub/                   the hub's data (CA, server cert, admin.token, redb)
//! hub.log                the hub's logs
//! store-1/store-1.pem    the store's identity bundle (tally-hub enroll)
//! store-1/data/          the agent's database
//! store-1/agent.log      the agent's logs
//! store-1/scanner        symlink → /dev/pts/N (the scanner's port)
//! store-1/rfid           symlink → /dev/pts/M (the reader's port)
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use tokio::process::Command;
use tokio::sync::Mutex;

use super::bins::Binaries;
use super::clients::Api;
use super::devices::{SimReader, SimScanner};
use super::procs::{run_ok, Proc};
use super::proxy::FaultProxy;

/// How long a process may take to be ready.
const READY: Duration = Duration::from_secs(60);

/// Settings the demo starts its processes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Agents sync at least this often (and soon after each change).
    pub sync_interval_s: u64,
    /// One sync request is given up after this long (a black-holed link).
    pub sync_timeout_s: u64,
    /// Longest retry wait while the hub is unreachable.
    pub sync_backoff_cap_s: u64,
    /// The hub shows a store online this long after its last sync.
    pub online_window_s: u64,
    /// RFID de-duplication window.
    pub rfid_window_ms: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            sync_interval_s: 1,
            sync_timeout_s: 4,
            sync_backoff_cap_s: 1,
            online_window_s: 3,
            rfid_window_ms: 500,
        }
    }
}

/// One store: its agent's API, its link to the hub, its devices.
#[derive(Debug)]
pub struct Store {
    /// Store id, e.g. `store-2`.
    pub id: String,
    /// The agent's local API.
    pub api: Api,
    /// Between the agent and the hub.
    pub proxy: FaultProxy,
    /// The self-checkout scanner.
    pub scanner: SimScanner,
    /// The RFID reader: a receiving-dock portal, or, at the counting
    /// store, a reader in count mode.
    pub reader: SimReader,
    /// Whether its reader counts (`--rfid-mode count`): its deliveries
    /// then come as tagged receipts (`POST /v1/receipts`).
    pub counts: bool,
    /// The store's directory.
    pub dir: PathBuf,
}

/// The running chain.
#[derive(Debug)]
pub struct Chain {
    /// The data directory.
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub hub_url: String,
    /// The hub's admin API.
    pub hub: Api,
    /// The admin token.
    pub token: String,
    /// The hub's CA certificate.
    pub ca_pem: PathBuf,
    /// The stores.
    pub stores: Vec<Store>,
    procs: Mutex<Vec<Proc>>,
}

impl Chain {
    /// Initializes the hub, enrolls `n` stores and starts everything (the
    /// reader of store index `counting` in count mode, the others as
    /// receiving portals); `say` gets one line per step.
    pub async fn start(
        bins: &Binaries,
        dir: &Path,
        n: usize,
        counting: Option<usize>,
        tuning: Tuning,
        say: impl Fn(String),
    ) -> anyhow::Result<Chain> {
        let hub_dir = dir.join("hub");
        run_ok(
            "tally-hub init",
            Command::new(&bins.hub)
                .args(["init", "--data-dir"])
                .arg(&hub_dir),
        )
        .await?;
        let ids: Vec<String> = (1..=n).map(|i| format!("store-{i}")).collect();
        for id in &ids {
            let sdir = dir.join(id);
            std::fs::create_dir_all(&sdir)
                .with_context(|| format!("creating {}", sdir.display()))?;
            run_ok(
                "tally-hub enroll",
                Command::new(&bins.hub)
                    .args(["enroll", "--data-dir"])
                    .arg(&hub_dir)
                    .args(["--store", id, "--out"])
                    .arg(sdir.join(format!("{id}.pem"))),
            )
            .await?;
        }
        say(format!(
            "hub initialized (its own CA, server certificate, admin token); enrolled {}",
            ids.join(", ")
        ));

        let mut procs = Vec::new();
        let mut cmd = Command::new(&bins.hub);
        cmd.args(["run", "--data-dir"]).arg(&hub_dir).args([
            "--listen",
            "127.0.0.1:0",
            "--online-window-secs",
            &tuning.online_window_s.to_string(),
            "--stop-on-stdin-eof",
        ]);
        let (hub_proc, hub_url) = Proc::start(
            "tally-hub",
            cmd,
            dir.join("hub.log"),
            "tally-hub listening on ",
            READY,
        )
        .await?;
        procs.push(hub_proc);
        let hub_addr: std::net::SocketAddr = hub_url
            .trim_start_matches("https://")
            .parse()
            .with_context(|| format!("the hub's address in {hub_url:?}"))?;
        let token = std::fs::read_to_string(hub_dir.join("admin.token"))
            .context("reading the admin token")?
            .trim()
            .to_string();
        let ca_pem = hub_dir.join("ca.pem");
        let hub = Api::hub(&hub_url, &ca_pem, &token)?;
        say(format!("hub listening on {hub_url} (TLS)"));

        let mut stores = Vec::new();
        for (index, id) in ids.iter().enumerate() {
            let counts = counting == Some(index);
            let sdir = dir.join(id);
            let proxy = FaultProxy::start(hub_addr)
                .await
                .context("starting a proxy")?;
            let scanner = SimScanner::open(&sdir.join("scanner"))?;
            let reader = SimReader::open(&sdir.join("rfid"))?;
            let mut cmd = Command::new(&bins.agent);
            cmd.env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .args(["run", "--stop-on-stdin-eof", "--data-dir"])
            .arg(sdir.join("data"))
            .args(["--store-id", id, "--listen", "127.0.0.1:0"])
            .args(["--hub", &format!("https://{}", proxy.addr())])
            .arg("--identity")
            .arg(sdir.join(format!("{id}.pem")))
            .args([
                "--sync-interval",
                &tuning.sync_interval_s.to_string(),
                "--sync-timeout",
                &tuning.sync_timeout_s.to_string(),
                "--sync-backoff-cap",
                &tuning.sync_backoff_cap_s.to_string(),
            ])
            .arg("--scanner")
            .arg(scanner.path())
            .args(["--scanner-mode", "sell", "--rfid"])
            .arg(reader.path())
            .args([
                "--rfid-mode",
                if counts { "count" } else { "receive" },
                "--rfid-window-ms",
                &tuning.rfid_window_ms.to_string(),
            ]);
            let (p, url) = Proc::start(
                &format!("tally-agent {id}"),
                cmd,
                sdir.join("agent.log"),
                "tally-agent listening on ",
                READY,
            )
            .await?;
            procs.push(p);
            stores.push(Store {
                id: id.clone(),
                api: Api::agent(&url)?,
                proxy,
                scanner,
                reader,
                counts,
                dir: sdir,
            });
        }
        let chain = Chain {
            dir: dir.to_path_buf(),
            hub_url,
            hub,
            token,
            ca_pem,
            stores,
            procs: Mutex::new(procs),
        };
        chain.wait_devices().await?;
        for s in &chain.stores {
            say(format!(
                "{} agent up at {} — scanner {} → {}, RFID reader {} → {} ({}), syncing through a proxy at {}",
                s.id,
                s.api.base,
                s.scanner.path().display(),
                std::fs::read_link(s.scanner.path())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                s.reader.path().display(),
                std::fs::read_link(s.reader.path())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                if s.counts {
                    "count mode: cycle counts"
                } else {
                    "a receiving portal"
                },
                s.proxy.addr()
            ));
        }
        Ok(chain)
    }

    /// Waits until every agent has opened both devices and started RFID
    /// inventory.
    async fn wait_devices(&self) -> anyhow::Result<()> {
        let end = Instant::now() + READY;
        for s in &self.stores {
            loop {
                self.check_alive().await?;
                let m = s.api.metrics().await?;
                if m.get("tally_agent_device_connected{device=\"scanner\"}") == 1
                    && m.get("tally_agent_device_connected{device=\"rfid\"}") == 1
                    && s.reader.inventory_running()
                {
                    break;
                }
                if Instant::now() > end {
                    return Err(anyhow!(
                        "{}: the agent did not open its devices within {READY:?}",
                        s.id
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// An error naming the first child that exited, with its last log lines.
    pub async fn check_alive(&self) -> anyhow::Result<()> {
        let mut procs = self.procs.lock().await;
        for p in procs.iter_mut() {
            if let Some(status) = p.exited() {
                return Err(anyhow!(
                    "{} exited unexpectedly ({status}); the end of {}:\n{}",
                    p.name,
                    p.log.display(),
                    super::procs::tail(&p.log, 20)
                ));
            }
        }
        Ok(())
    }

    /// Stops every child gracefully (agents first, then the hub): SIGTERM,
    /// SIGKILL after 10 s. Returns how many were stopped.
    pub async fn shutdown(&self) -> usize {
        let mut procs = self.procs.lock().await;
        let mut n = 0;
        while let Some(mut p) = procs.pop() {
            p.stop(Duration::from_secs(10)).await;
            n += 1;
        }
        n
    }

    /// Process ids of the children still registered (for messages).
    pub async fn count(&self) -> usize {
        self.procs.lock().await.len()
    }
}
