//! The chain for end-to-end tests: a hub data directory with its CA and
//! enrolled stores, the real `tally-hub` and `tally-agent` processes on
//! loopback, and a small JSON client of either (the hub's with its CA and
//! admin token).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::procs::{bin, run_ok, Proc};

/// How long a process may take to start.
pub const LONG: Duration = Duration::from_secs(60);

pub fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The hub's data dir with CA, token and enrolled stores.
pub struct HubFiles {
    pub dir: PathBuf,
    pub token: String,
    pub ca: Vec<u8>,
}

pub fn init_hub(tmp: &Path, stores: &[&str]) -> HubFiles {
    let dir = tmp.join("hub");
    run_ok(
        Command::new(bin("tally-hub"))
            .args(["init", "--data-dir"])
            .arg(&dir),
    );
    for s in stores {
        run_ok(
            Command::new(bin("tally-hub"))
                .args(["enroll", "--data-dir"])
                .arg(&dir)
                .args(["--store", s, "--out"])
                .arg(tmp.join(format!("{s}.pem"))),
        );
    }
    HubFiles {
        token: std::fs::read_to_string(dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_string(),
        ca: std::fs::read(dir.join("ca.pem")).unwrap(),
        dir,
    }
}

pub fn start_hub(files: &HubFiles, listen: &str, log: PathBuf) -> (Proc, String) {
    start_hub_with(files, listen, log, &[])
}

/// [`start_hub`] with more flags.
pub fn start_hub_with(
    files: &HubFiles,
    listen: &str,
    log: PathBuf,
    extra: &[&str],
) -> (Proc, String) {
    let mut cmd = Command::new(bin("tally-hub"));
    cmd.args(["run", "--data-dir"])
        .arg(&files.dir)
        .args(extra)
        .args([
            "--listen",
            listen,
            "--reserve-horizon-hours",
            "24",
            "--demand-half-life-hours",
            "168",
        ]);
    Proc::start("tally-hub", cmd, log, "tally-hub listening on", LONG)
}

pub fn start_agent(tmp: &Path, store: &str, hub_url: &str) -> (Proc, String) {
    start_agent_with(tmp, store, hub_url, &["--sync-interval", "1"])
}

/// [`start_agent`] with its own sync flags (`--sync-interval`, `--config`,
/// `--sync-backoff-cap`…)
/// in place of a sync every second.
pub fn start_agent_with(tmp: &Path, store: &str, hub_url: &str, sync: &[&str]) -> (Proc, String) {
    start_agent_env(tmp, store, hub_url, sync, &[])
}

/// [`start_agent_with`], the process's environment with `env` added (a
/// clock shifted by libfaketime).
pub fn start_agent_env(
    tmp: &Path,
    store: &str,
    hub_url: &str,
    sync: &[&str],
    env: &[(&str, &str)],
) -> (Proc, String) {
    let mut cmd = Command::new(bin("tally-agent"));
    cmd.envs(env.iter().copied());
    cmd.args(["run", "--data-dir"])
        .arg(tmp.join(store))
        .args([
            "--store-id",
            store,
            "--listen",
            "127.0.0.1:0",
            "--hub",
            hub_url,
            "--identity",
        ])
        .arg(tmp.join(format!("{store}.pem")))
        .args(sync)
        .args(["--sync-timeout", "3"]);
    // A backoff of its own replaces the tests' short one.
    if !sync.contains(&"--sync-backoff-cap") {
        cmd.args(["--sync-backoff-cap", "2"]);
    }
    Proc::start(
        &format!("tally-agent {store}"),
        cmd,
        tmp.join(format!("{store}.log")),
        "tally-agent listening on",
        LONG,
    )
}

/// A JSON client for one base URL.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    pub fn agent(base: &str) -> Api {
        crypto();
        Api {
            http: reqwest::Client::builder().build().unwrap(),
            base: base.to_string(),
            token: None,
        }
    }

    pub fn hub(base: &str, files: &HubFiles) -> Api {
        crypto();
        let ca = reqwest::Certificate::from_pem(&files.ca).unwrap();
        Api {
            http: reqwest::Client::builder()
                .tls_certs_only([ca])
                .build()
                .unwrap(),
            base: base.to_string(),
            token: Some(files.token.clone()),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// `GET path` as text (metrics).
    pub async fn get_text(&self, path: &str) -> Result<(u16, String), String> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.map_err(|e| e.to_string())?))
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value), String> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("POST {}{path}: {e}", self.base))
    }
}

/// Waits until `hub` sees `store` holding `on_hand` units of `gtin`;
/// answers the hub's stock of it.
pub async fn hub_sees(hub: &Api, store: &str, gtin: &str, on_hand: u64) -> Value {
    super::procs::eventually("the hub's view of the shelf", LONG, || async {
        let (_, stock) = hub.get(&format!("/v1/stock/{gtin}")).await?;
        if stock["stores"][store]["on_hand"].as_u64() == Some(on_hand) {
            Ok(stock)
        } else {
            Err(stock.to_string())
        }
    })
    .await
}

/// Waits until the store's own view of `gtin` is `on_hand`.
pub async fn store_sees(agent: &Api, gtin: &str, on_hand: u64) {
    super::procs::eventually("the store's view of the shelf", LONG, || async {
        let (_, here) = agent.get(&format!("/v1/stock/{gtin}")).await?;
        if here["on_hand"].as_u64() == Some(on_hand) {
            Ok(())
        } else {
            Err(here.to_string())
        }
    })
    .await;
}
