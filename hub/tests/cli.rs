//! The real `tally-hub` binary: `init`, `enroll`, `run` on 127.0.0.1:0,
//! `revoke` while it runs (next sync → 403), a second `run` on the same
//! data directory refused, a graceful stop on SIGTERM, and start-up
//! errors as one line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use support::child::{spawn_run, wait_exit, BIN};
use support::{gtin, HubClient, SimStore};

fn hub(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_enroll_run_revoke_and_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let dir_s = dir.to_str().unwrap();

    let out = hub(&["init", "--data-dir", dir_s]);
    assert!(out.status.success(), "{out:?}");
    let again = hub(&["init", "--data-dir", dir_s]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a hub CA"));
    for f in [
        "ca.pem",
        "ca.key",
        "server.pem",
        "server.key",
        "admin.token",
        "metrics.token",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    // A directory made before metrics tokens gets one on demand, once.
    std::fs::remove_file(dir.join("metrics.token")).unwrap();
    let out = hub(&["metrics-token", "--data-dir", dir_s]);
    assert!(out.status.success(), "{out:?}");
    let made = std::fs::read_to_string(dir.join("metrics.token")).unwrap();
    let out = hub(&["metrics-token", "--data-dir", dir_s]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already"));
    assert_eq!(
        std::fs::read_to_string(dir.join("metrics.token")).unwrap(),
        made
    );

    let bundle = tmp.path().join("s1.pem");
    let out = hub(&[
        "enroll",
        "--data-dir",
        dir_s,
        "--store",
        "s1",
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let bad = hub(&[
        "enroll",
        "--data-dir",
        dir_s,
        "--store",
        "hub",
        "--out",
        "/dev/null/x",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid store id"));

    let (mut child, base) = spawn_run(
        &["--data-dir", dir_s, "--listen", "127.0.0.1:0"],
        Stdio::inherit(),
    );
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");

    // A second hub on the same data directory is refused clearly, on one
    // line, without first saying it listens.
    let second = hub(&["run", "--data-dir", dir_s, "--listen", "127.0.0.1:0"]);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already open"), "{second:?}");
    assert!(err.starts_with("error: running the hub: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(second.stdout.is_empty(), "{second:?}");

    let client = HubClient::new(&base, &std::fs::read(&bundle).unwrap(), true);
    let mut s1 = SimStore::new("s1", 11);
    s1.receive(gtin(1), 3);
    s1.sync_all(&client, 10).await;

    let out = hub(&["revoke", "--data-dir", dir_s, "--store", "s1"]);
    assert!(out.status.success(), "{out:?}");
    s1.sell(gtin(1), 1).unwrap();
    let (status, body) = client.sync(&s1.request(10)).await.unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "certificate_revoked");

    // Re-enrolled, the store syncs again.
    let bundle2 = tmp.path().join("s1-new.pem");
    let out = hub(&[
        "enroll",
        "--data-dir",
        dir_s,
        "--store",
        "s1",
        "--out",
        bundle2.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let client2 = HubClient::new(&base, &std::fs::read(&bundle2).unwrap(), true);
    s1.sync_all(&client2, 10).await;

    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "graceful stop exits 0: {status:?}");
}

/// Start-up errors are one line on stderr, each cause said once, with
/// nothing on stdout and exit status 1 (even with `RUST_BACKTRACE=1`).
#[test]
fn start_up_errors_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never-initialized");
    let dir_s = dir.to_str().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap()
    };
    for (args, says) in [
        (
            vec!["run", "--data-dir", dir_s, "--listen", "127.0.0.1:0"],
            "error: running the hub: ",
        ),
        (
            vec![
                "enroll",
                "--data-dir",
                dir_s,
                "--store",
                "s1",
                "--out",
                "x.pem",
            ],
            "error: enrolling store \"s1\": ",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(says), "{args:?}: {err}");
        assert!(err.contains("run `tally-hub init"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    let out = run(&["run", "--data-dir", dir_s, "--listen", "127.0.0.1:99999"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        "error: binding 127.0.0.1:99999: invalid port value"
    );
    // Limits beyond what a channel or a semaphore can hold are refused by
    // name (exit 2, clap's usage error), not a panic at start.
    for flag in [
        "--max-connections",
        "--max-connections-per-peer",
        "--max-batch",
    ] {
        let out = run(&["run", "--data-dir", dir_s, flag, "18446744073709551615"]);
        assert_eq!(out.status.code(), Some(2), "{flag}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(flag) && !err.contains("panicked"),
            "{flag}: {err}"
        );
    }
}

/// `--stop-on-stdin-eof`: the supervisor's lifeline. Closing the pipe (as
/// the kernel does when the supervisor dies, even of SIGKILL) stops the hub
/// gracefully, and its database is free again.
#[test]
fn a_closed_stdin_stops_the_hub_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let dir_s = dir.to_str().unwrap();
    assert!(hub(&["init", "--data-dir", dir_s]).status.success());
    let run = [
        "--data-dir",
        dir_s,
        "--listen",
        "127.0.0.1:0",
        "--stop-on-stdin-eof",
    ];
    let (mut child, _) = spawn_run(&run, Stdio::piped());
    drop(child.stdin.take());
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    // Stopped, not just detached: a new hub opens the same database (and,
    // its stdin at its end from the start, stops at once). Its logs, going
    // to a pipe rather than a terminal, are plain text (no colour codes in
    // a log file or the journal).
    let again = Command::new(BIN).arg("run").args(run).output().unwrap();
    assert!(again.status.success(), "{again:?}");
    let logs = String::from_utf8_lossy(&again.stderr);
    assert!(logs.contains(" INFO "), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "escape codes in the log: {logs:?}"
    );
}

/// `run --config FILE` takes its settings from the file, as the same
/// flags would; a flag on the command line wins over the file's; an
/// unknown setting stops the hub with its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_sets_what_flags_would_and_flags_win() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let out = hub(&["init", "--data-dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let url = support::pg::database("config_file");
    let file = tmp.path().join("hub.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {:?}\ndatabase = {url:?}\n# overridden below\nlisten = \"not an address\"\nheartbeat_ms = 500\n",
            dir.to_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (mut child, base) = spawn_run(
        &[
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        Stdio::null(),
    );
    // It runs on the file's database (it follows the revocation list
    // kept there).
    let data = tally_hub::pki::DataDir::new(&dir);
    let admin = support::Admin {
        client: support::anonymous_client(&base, &data),
        token: data.read_admin_token().unwrap(),
    };
    let (status, metrics) = admin.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("tally_hub_revocations_followed 1\n"),
        "{metrics}"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());

    // Without the override, the file's bad address is refused.
    let bad = hub(&["run", "--config", file.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("binding not an address"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    std::fs::write(&file, "listen_on = \"127.0.0.1:0\"\n").unwrap();
    let unknown = hub(&["run", "--config", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success());
    assert!(stderr.contains("unknown setting `listen_on`"), "{stderr}");
}
