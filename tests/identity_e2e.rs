//! End to end, with the real binaries on loopback and real TLS: a store
//! enrolls with a one-time code from HQ (`tally-hub enroll-code`), making
//! its key on its own box (`tally-agent enroll`); the code is refused a
//! second time; the agent, told to renew at once, renews over its mutual
//! TLS link and keeps syncing with the new certificate after the old one
//! is revoked; keys, bundle, data directory and database are private.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::chain::{init_hub, start_hub, Api, LONG};
use support::procs::{bin, eventually, run_ok, Proc};

const A: &str = "04006381333931";
const STORE: &str = "store-north";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The serials of the certificates the hub issued to the store (the
/// names in its `issued/<store>/`).
fn issued_serials(hub_dir: &Path) -> Vec<String> {
    let mut serials: Vec<String> = std::fs::read_dir(hub_dir.join("issued").join(STORE))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".pem")
                .to_string()
        })
        .collect();
    serials.sort();
    serials
}

fn enroll(hub: &str, ca: &Path, code: &str, out: &Path) -> std::process::Output {
    Command::new(bin("tally-agent"))
        .args([
            "enroll",
            "--hub",
            hub,
            "--store-id",
            STORE,
            "--code",
            code,
            "--ca",
        ])
        .arg(ca)
        .arg("--identity")
        .arg(out)
        .output()
        .unwrap()
}

async fn on_hand_at_hub(hub: &Api) -> Result<u64, String> {
    let (status, stock) = hub.get(&format!("/v1/stock/{A}")).await?;
    if status != 200 {
        return Err(format!("{status} {stock}"));
    }
    stock["on_hand"]
        .as_u64()
        .ok_or_else(|| format!("no on_hand: {stock}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_by_code_renew_over_mtls_and_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let files = init_hub(tmp.path(), &[]);
    assert_eq!(mode(&files.dir), 0o700);
    let (_hub, hub_url) = start_hub(&files, "127.0.0.1:0", tmp.path().join("hub.log"));
    let hub = Api::hub(&hub_url, &files);

    // HQ makes a code; the store enrolls with it, its key made locally.
    let code = run_ok(
        Command::new(bin("tally-hub"))
            .args(["enroll-code", "--data-dir"])
            .arg(&files.dir)
            .args(["--store", STORE, "--ttl-hours", "1"]),
    );
    let code = code.trim();
    let ca = files.dir.join("ca.pem");
    let bundle = tmp.path().join(format!("{STORE}.pem"));
    let out = enroll(&hub_url, &ca, code, &bundle);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&bundle), 0o600);
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2);
    assert_eq!(text.matches("BEGIN PRIVATE KEY").count(), 1);
    let first = issued_serials(&files.dir);
    assert_eq!(first.len(), 1);

    // The same code again is refused, and nothing is written.
    let again = tmp.path().join("again.pem");
    let out = enroll(&hub_url, &ca, code, &again);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("enrollment_refused"), "{err}");
    assert!(!again.exists());
    // An unsafe store id never reaches the hub.
    let out = Command::new(bin("tally-agent"))
        .args([
            "enroll",
            "--hub",
            &hub_url,
            "--store-id",
            "..",
            "--code",
            code,
            "--ca",
        ])
        .arg(&ca)
        .arg("--identity")
        .arg(&again)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("a store id is 1-63"));

    // The agent renews at its first sync (100 %: renew at every chance,
    // at most once per 10 minutes).
    let config = tmp.path().join("agent.toml");
    std::fs::write(&config, "[sync]\nrenew_percent_left = 100\n").unwrap();
    let data = tmp.path().join(STORE);
    let mut cmd = Command::new(bin("tally-agent"));
    cmd.args(["run", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--store-id",
            STORE,
            "--listen",
            "127.0.0.1:0",
            "--hub",
            &hub_url,
        ])
        .arg("--identity")
        .arg(&bundle)
        .args([
            "--sync-interval",
            "1",
            "--sync-timeout",
            "3",
            "--sync-backoff-cap",
            "2",
        ]);
    let (agent, agent_url) = Proc::start(
        "tally-agent",
        cmd,
        tmp.path().join("agent.log"),
        "tally-agent listening on",
        LONG,
    );
    let api = Api::agent(&agent_url);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("agent.redb")), 0o600);

    let renewed = eventually("the agent renews", LONG, || async {
        let serials = issued_serials(&files.dir);
        if serials.len() == 2 && std::fs::read_to_string(&bundle).unwrap() != text {
            Ok(serials)
        } else {
            Err(format!("issued: {serials:?}"))
        }
    })
    .await;
    assert_eq!(mode(&bundle), 0o600);

    // Revoke only the first certificate: syncing goes on with the new one.
    let old = &first[0];
    assert!(renewed.contains(old));
    std::fs::write(files.dir.join("revoked.txt"), format!("{old} {STORE}\n")).unwrap();
    let (status, body) = api
        .post("/v1/receipts", &json!({"lines": [{"gtin": A, "qty": 5}]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let seen = eventually("the receipt reaches the hub", LONG, || async {
        match on_hand_at_hub(&hub).await? {
            5 => Ok(5),
            n => Err(format!("on hand {n}")),
        }
    })
    .await;
    assert_eq!(seen, 5);
    let (status, body) = api
        .post(
            "/v1/sales",
            &json!({"lines": [{"gtin": A, "qty": 2, "unit_price_minor": 100}],
                    "tenders": [{"method": "cash", "amount_minor": 200}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    eventually("the sale reaches the hub", LONG, || async {
        match on_hand_at_hub(&hub).await? {
            3 => Ok(()),
            n => Err(format!("on hand {n}")),
        }
    })
    .await;
    let status = agent.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}
