//! The `tally-agent` CLI as a user runs it: `run` (flags, TOML config,
//! SIGTERM), `stock`, `status` and `catalog import` (through the API, and
//! directly into a stopped agent's data directory).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{agent_command, AgentProcess, MUG, PEN};
use serde_json::{json, Value};
use tally_agent_api::client::AgentClient as ApiClient;

const BIN: &str = env!("CARGO_BIN_EXE_tally-agent");

fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TALLY_AGENT_URL")
        .output()
        .unwrap()
}

fn json_out(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn stderr(o: &Output) -> String {
    assert!(!o.status.success(), "unexpected success");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_stock_status_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let csv = dir.path().join("catalog.csv");
    std::fs::write(
        &csv,
        format!("gtin,name,price_minor\n{PEN},\"Pen, blue\",129\n{MUG},Mug,800\n"),
    )
    .unwrap();
    let csv_s = csv.to_str().unwrap();

    // Direct import before the first run creates the store.
    let out = json_out(&cli(&[
        "catalog",
        "import",
        csv_s,
        "--data-dir",
        data_s,
        "--store-id",
        "s1",
    ]));
    assert_eq!(out, json!({"items": 2, "changed": 2}));

    let agent = AgentProcess::spawn(agent_command(BIN, &data, "s1")).await;
    let url = agent.url.as_str();
    let client = ApiClient::new(url, std::time::Duration::from_secs(30)).unwrap();
    client
        .post("/v1/receipts", &json!({"lines": [{"gtin": PEN, "qty": 5}]}))
        .await
        .unwrap();
    let (s, v) = client
        .post("/v1/sales", &json!({"lines": [{"gtin": PEN, "qty": 2}]}))
        .await
        .unwrap();
    assert_eq!((s.as_u16(), v["total_minor"].as_i64()), (201, Some(258)));

    let stock = json_out(&cli(&["stock", PEN, "--agent", url]));
    assert_eq!(stock["on_hand"], 3);
    assert_eq!(stock["gtin"], "04006381333931");
    let status = json_out(&cli(&["status", "--agent", url]));
    assert_eq!(status["store_id"], "s1");
    assert_eq!(status["outbox_events"], 2);

    // A delivery and a shelf count by hand; a receipt run again with its
    // id is recorded once.
    let got = json_out(&cli(&[
        "receive",
        MUG,
        "4",
        "--cashier",
        "ana",
        "--agent",
        url,
    ]));
    assert_eq!(got["units"], 4);
    let id = got["receipt_id"].as_str().unwrap().to_string();
    let again = json_out(&cli(&["receive", MUG, "4", "--id", &id, "--agent", url]));
    assert_eq!(again["receipt_id"], got["receipt_id"]);
    assert_eq!(
        json_out(&cli(&["stock", MUG, "--agent", url]))["on_hand"],
        4
    );
    json_out(&cli(&["count", "set", MUG, "3", "--agent", url]));
    assert_eq!(
        json_out(&cli(&["stock", MUG, "--agent", url]))["on_hand"],
        3
    );
    let err = stderr(&cli(&["receive", MUG, "1", "--id", "nope", "--agent", url]));
    assert!(err.contains("--id \"nope\""), "{err}");
    let err = stderr(&cli(&["receive", MUG, "0", "--agent", url]));
    assert!(err.contains("qty"), "{err}");
    let err = stderr(&cli(&["stock", "123", "--agent", url]));
    assert!(
        err.starts_with("error: the agent refused it (422 invalid): gtin \"123\": "),
        "{err}"
    );

    // Import through the API while running; direct import is refused.
    std::fs::write(&csv, format!("{PEN},Pen,150\n{MUG},Mug,800\n")).unwrap();
    let out = json_out(&cli(&["catalog", "import", csv_s, "--agent", url]));
    assert_eq!(out, json!({"items": 2, "changed": 1}));
    let (_, v) = client
        .post("/v1/sales", &json!({"lines": [{"gtin": PEN, "qty": 1}]}))
        .await
        .unwrap();
    assert_eq!(v["total_minor"], 150);
    let err = stderr(&cli(&["catalog", "import", csv_s, "--data-dir", data_s]));
    assert!(err.contains("already open in another process"), "{err}");
    // A second agent on the same store fails before it says it listens.
    let second = cli(&["run", "--data-dir", data_s, "--listen", "127.0.0.1:0"]);
    assert!(stderr(&second).contains("already open in another process"));
    assert_eq!(String::from_utf8_lossy(&second.stdout), "");

    // A bad CSV names the line and imports nothing.
    std::fs::write(&csv, format!("{PEN},Pen,1\n{MUG},Mug,x\n")).unwrap();
    let err = stderr(&cli(&["catalog", "import", csv_s, "--agent", url]));
    assert!(err.contains("line 2"), "{err}");
}

/// Logs going to a pipe or file (not a terminal) are plain text: no
/// colour codes in a log file or the journal.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    // stdin is at its end from the start: the agent starts, then stops.
    let out = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--store-id", "s1"])
        .args(["--stop-on-stdin-eof", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains(" INFO "), "{logs}");
    assert!(logs.contains("Agent stopped."), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "escape codes in the log: {logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reads_the_config_file_flags_win_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:1\"\nstore_id = \"from-file\"\n[commit]\nmax_batch = 16\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config);
    let mut agent = AgentProcess::spawn(cmd).await;
    let status = json_out(&cli(&["status", "--agent", &agent.url]));
    assert_eq!(status["store_id"], "from-file");

    agent.terminate(Duration::from_secs(30)).await;

    // The store id is fixed now: another one is a clear error.
    let err = stderr(&cli(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--store-id",
        "other",
    ]));
    assert!(err.contains("belongs to store \"from-file\""), "{err}");
}

#[test]
fn clear_errors_without_an_agent_or_a_data_dir() {
    let err = stderr(&cli(&["status", "--agent", "http://127.0.0.1:9"]));
    assert!(err.contains("cannot reach the agent"), "{err}");
    // The cause, not only "client error (Connect)".
    assert!(err.contains("Connection refused"), "{err}");
    let err = stderr(&cli(&["run", "--listen", "127.0.0.1:0"]));
    assert!(err.contains("no data directory"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let err = stderr(&cli(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]));
    assert!(err.contains("give the store id"), "{err}");
    let err = stderr(&cli(&[
        "run",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--store-id",
        "hub",
    ]));
    assert!(err.contains("reserved for the hub"), "{err}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = 5\n").unwrap();
    let err = stderr(&cli(&["run", "--config", bad.to_str().unwrap()]));
    assert!(err.contains("bad.toml"), "{err}");
    // Each cause is said once, on one line.
    let missing = dir.path().join("missing.toml");
    let err = stderr(&cli(&["run", "--config", missing.to_str().unwrap()]));
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `--stop-on-stdin-eof`: the supervisor's lifeline. Closing the pipe (as
/// the kernel does when the supervisor dies, even of SIGKILL) stops the
/// agent gracefully: what it acknowledged is there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdin_stops_the_agent_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = agent_command(BIN, dir.path(), "s1");
    cmd.arg("--stop-on-stdin-eof")
        .stdin(std::process::Stdio::piped());
    let mut agent = AgentProcess::spawn(cmd).await;
    let client = ApiClient::new(&agent.url, std::time::Duration::from_secs(30)).unwrap();
    let (s, v) = client
        .post("/v1/receipts", &json!({"lines": [{"gtin": PEN, "qty": 2}]}))
        .await
        .unwrap();
    assert_eq!(s, 201, "{v}");
    drop(agent.child.stdin.take());
    agent
        .exits_cleanly(Duration::from_secs(30), "stdin closed")
        .await;
    // Stopped, not just detached: the database opens again, with the receipt.
    let again = AgentProcess::spawn(agent_command(BIN, dir.path(), "s1")).await;
    let stock = json_out(&cli(&["stock", PEN, "--agent", &again.url]));
    assert_eq!(stock["on_hand"], 2, "{stock}");
}

/// `tally-agent count`: a session over one item with stock and no tags
/// read (the reader saw none of it): the report finds the units missing,
/// accepting removes them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_session_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::spawn(agent_command(BIN, &dir.path().join("data"), "s1")).await;
    let url = agent.url.as_str();
    let client = ApiClient::new(url, Duration::from_secs(30)).unwrap();
    client
        .post("/v1/receipts", &json!({"lines": [{"gtin": MUG, "qty": 2}]}))
        .await
        .unwrap();

    let started = json_out(&cli(&[
        "count",
        "start",
        "--id",
        "shelf-9",
        "--gtin",
        MUG,
        "--zone",
        "back room",
        "--agent",
        url,
    ]));
    assert_eq!(
        (&started["session_id"], &started["status"], &started["zone"]),
        (&json!("shelf-9"), &json!("counting"), &json!("back room"))
    );
    let err = stderr(&cli(&["count", "start", "--agent", url]));
    assert!(err.contains("shelf-9 is counting"), "{err}");
    let shown = json_out(&cli(&["count", "show", "shelf-9", "--agent", url]));
    assert_eq!(shown["tags"], 0);
    let report = json_out(&cli(&["count", "finish", "shelf-9", "--agent", url]));
    assert_eq!(
        report["items"],
        json!([{"gtin": "05901234123457", "name": null, "expected": 2, "counted": 0, "difference": -2}])
    );
    let accepted = json_out(&cli(&["count", "accept", "shelf-9", "--agent", url]));
    assert_eq!(accepted["adjustments"][0]["direction"], "down");
    assert_eq!(accepted["adjustments"][0]["units"], 2);
    let stock = json_out(&cli(&["stock", MUG, "--agent", url]));
    assert_eq!(stock["on_hand"], 0);
    let err = stderr(&cli(&["count", "accept", "shelf-9", "--agent", url]));
    assert!(err.contains("shelf-9 is accepted"), "{err}");
    let err = stderr(&cli(&["count", "show", "nope", "--agent", url]));
    assert!(err.contains("not found"), "{err}");
}
