//! The agent's API over HTTPS (`[api] tls`, on by default beyond
//! loopback): real TLS on 127.0.0.1 with the agent's own CA. A client that
//! trusts that CA records a receipt and a sale; one trusting another CA
//! gets nothing through; plain HTTP is still served to this machine (the
//! same box's terminal; a peer elsewhere is refused, `api_tls::speak`);
//! a restart with a new host name makes a certificate for it from the CA
//! the tills were given. Then the binaries as a user runs them: `run`
//! announcing `https://`, `tally-agent api-ca`, `status --agent-ca`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{agent_command, AgentProcess, PEN};
use serde_json::json;
use tally_agent::api_tls::{ensure_ca, ApiTlsDir};
use tally_agent::config::{parse_store_id, Config};
use tally_agent::AgentError;
use tally_agent_api::client::AgentClient;
use tally_store::SystemClock;
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_tally-agent");

/// An agent on `config` in this process, with a client that trusts its
/// API's CA once it answers over HTTPS.
struct TlsAgent {
    client: AgentClient,
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), AgentError>>,
}

impl TlsAgent {
    async fn start(config: Config) -> Self {
        let ca_path = ApiTlsDir::new(&config.data_dir).ca_cert();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(tally_agent::run(
            config,
            Arc::new(SystemClock),
            listener,
            |_| {},
            async move {
                let _ = stopped.await;
            },
        ));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(!task.is_finished(), "the agent stopped: {:?}", task.await);
            if let Ok(ca) = std::fs::read(&ca_path) {
                let client = AgentClient::trusting(
                    &format!("https://127.0.0.1:{}", addr.port()),
                    Duration::from_secs(10),
                    Some(&ca),
                )
                .unwrap();
                if client.get("/v1/status").await.is_ok() {
                    return Self {
                        client,
                        addr,
                        stop,
                        task,
                    };
                }
            }
            assert!(Instant::now() < deadline, "the agent never answered HTTPS");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

fn tls_config(dir: &Path, allowed_hosts: &[&str]) -> Config {
    let mut config = Config::new(dir, Some(parse_store_id("s1").unwrap()));
    config.api.tls = Some(true);
    config.api.allowed_hosts = allowed_hosts.iter().map(|h| h.to_string()).collect();
    config
}

async fn on_hand(client: &AgentClient) -> u64 {
    let (s, v) = client.get(&format!("/v1/stock/{PEN}")).await.unwrap();
    assert!(s.is_success(), "{v}");
    v["on_hand"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_https_with_its_own_ca_and_plain_http_to_this_machine_only() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let agent = TlsAgent::start(tls_config(&data, &[])).await;
    let https = agent.client.clone();

    // Over HTTPS: a receipt and a sale are recorded.
    let (s, v) = https
        .post("/v1/receipts", &json!({"lines": [{"gtin": PEN, "qty": 3}]}))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 201, "{v}");
    let (s, v) = https
        .post(
            "/v1/sales",
            &json!({"lines": [{"gtin": PEN, "qty": 1, "unit_price_minor": 129}]}),
        )
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 201, "{v}");
    assert_eq!(on_hand(&https).await, 2);

    // Plain HTTP on the same port, from this machine: served.
    let plain =
        AgentClient::new(&format!("http://{}", agent.addr), Duration::from_secs(5)).unwrap();
    assert_eq!(on_hand(&plain).await, 2);
    // A client that trusts another agent's CA refuses this agent.
    let other_ca = ensure_ca(&ApiTlsDir::new(&tmp.path().join("other")), &SystemClock).unwrap();
    let stranger = AgentClient::trusting(
        &format!("https://127.0.0.1:{}", agent.addr.port()),
        Duration::from_secs(5),
        Some(other_ca.as_bytes()),
    )
    .unwrap();
    assert!(stranger.get("/v1/status").await.is_err());

    // A till that reaches the agent by its store-network name (resolved
    // to 127.0.0.1 here): the certificate does not name it yet.
    let ca_before = std::fs::read(ApiTlsDir::new(&data).ca_cert()).unwrap();
    let till = |port: u16| {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca_before).unwrap()])
            .resolve(
                "pos-07.store.lan",
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            )
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        async move {
            client
                .get(format!("https://pos-07.store.lan:{port}/v1/stock/{PEN}"))
                .send()
                .await
        }
    };
    assert!(till(agent.addr.port()).await.is_err(), "not its name yet");
    // Restarted with that name allowed: a new server certificate from the
    // same CA, so the till's CA file works for the new name.
    agent.stop().await;
    let agent = TlsAgent::start(tls_config(&data, &["pos-07.store.lan"])).await;
    assert_eq!(
        std::fs::read(ApiTlsDir::new(&data).ca_cert()).unwrap(),
        ca_before
    );
    let answer = till(agent.addr.port()).await.unwrap();
    assert!(answer.status().is_success(), "{answer:?}");
    let stock: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(stock["on_hand"], 2, "{stock}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_ca_and_reaches_an_https_agent_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let api_ca = || {
        Command::new(BIN)
            .args(["api-ca", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };
    // Before the agent served HTTPS there is no CA, and none is made (a
    // mistyped directory must not yield a CA for the tills).
    let none = api_ca();
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no API CA"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
    assert!(!ApiTlsDir::new(&data).root().exists());

    let config = tmp.path().join("agent.toml");
    std::fs::write(&config, "[api]\ntls = true\n").unwrap();
    let mut cmd = agent_command(BIN, &data, "s1");
    cmd.arg("--config").arg(&config);
    let agent = AgentProcess::spawn_trusting(cmd, Some(&ApiTlsDir::new(&data).ca_cert())).await;
    assert!(agent.url.starts_with("https://"), "{}", agent.url);

    // The CA, printed for the tills.
    let out = api_ca();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed.starts_with("-----BEGIN CERTIFICATE-----"),
        "{printed}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHA-256 fingerprint: "));
    let ca_file = tmp.path().join("till-ca.pem");
    std::fs::write(&ca_file, &printed).unwrap();

    let status = |url: &str, ca: Option<&Path>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["status", "--agent", url])
            .env_remove("TALLY_AGENT_CA");
        if let Some(ca) = ca {
            cmd.arg("--agent-ca").arg(ca);
        }
        cmd.output().unwrap()
    };
    let ok = status(&agent.url, Some(&ca_file));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["store_id"], "s1", "{v}");
    // The same box's CLI on plain HTTP to loopback still works.
    let plain_url = agent.url.replacen("https://", "http://", 1);
    let ok = status(&plain_url, None);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // Without the CA the CLI says what it needs.
    let refused = status(&agent.url, None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--agent-ca"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
