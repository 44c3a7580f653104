//! The real `tally-hub` binary in its own process, for the CLI test and
//! the benchmarks that must measure the hub alone (its memory, apart from
//! the clients'): `run` on a data directory, the base URL from its first
//! stdout line, its memory from `/proc`, and a graceful stop (SIGTERM).
//! A [`ChildHub`] dropped without [`ChildHub::stop`] is killed.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tally_hub::pki::{self, DataDir};

use super::{anonymous_client, enroll_in, Admin};

/// This package's hub binary (cargo builds it for tests and benches).
pub const BIN: &str = env!("CARGO_BIN_EXE_tally-hub");

/// Starts `tally-hub run` with `args` and `stdin` (stderr discarded);
/// returns it and the base URL from its first stdout line.
pub fn spawn_run(args: &[&str], stdin: Stdio) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("run")
        .args(args)
        .env_remove("TALLY_HUB_DATABASE")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("tally-hub listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, base)
}

/// Waits up to `deadline` for `child` to exit; panics if it does not.
pub fn wait_exit(child: &mut Child, deadline: Duration) -> ExitStatus {
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < end,
            "tally-hub did not exit in {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: all resident pages.
    pub rss_kib: u64,
    /// `RssAnon`: resident anonymous pages (the heap and stacks, not
    /// mapped files).
    pub anon_kib: u64,
}

impl Memory {
    /// Of process `pid` now.
    pub fn of(pid: u32) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let mut m = Memory {
            rss_kib: 0,
            anon_kib: 0,
        };
        for line in status.lines() {
            let mut words = line.split_whitespace();
            let slot = match words.next() {
                Some("VmRSS:") => &mut m.rss_kib,
                Some("RssAnon:") => &mut m.anon_kib,
                _ => continue,
            };
            *slot = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
        m
    }
}

/// CPU time (user + system) process `pid` has used so far (`"self"` for
/// this one), from `/proc/<pid>/stat`, in seconds (100 ticks a second,
/// Linux's `USER_HZ`).
pub fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|t| t.parse::<u64>().unwrap())
        .sum();
    ticks as f64 / 100.0
}

/// CPU time (user + system) every live process named `name` has used so
/// far (e.g. the test PostgreSQL's server processes), in seconds.
pub fn cpu_secs_of(name: &str) -> f64 {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == name {
            // It may have exited since: skip it then.
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
                let ticks: u64 = rest
                    .split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|t| t.parse::<u64>().ok())
                    .sum();
                total += ticks as f64 / 100.0;
            }
        }
    }
    total
}

/// A hub over its own data directory, in its own process.
pub struct ChildHub {
    pub tmp: tempfile::TempDir,
    pub data: DataDir,
    pub base: String,
    pub token: String,
    child: Child,
}

impl ChildHub {
    /// `init`s a fresh data directory and runs the hub on it, on
    /// 127.0.0.1:0, with `args` added to `run`'s.
    pub fn start(args: &[&str]) -> ChildHub {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::new(tmp.path().join("hub"));
        pki::init(&data, &[], &tally_store::SystemClock).unwrap();
        Self::serve(tmp, data, args)
    }

    /// Runs the hub on an existing data directory `data` (under `tmp`,
    /// which the hub keeps), on 127.0.0.1:0, with `args` added to `run`'s.
    pub fn serve(tmp: tempfile::TempDir, data: DataDir, args: &[&str]) -> ChildHub {
        let dir: PathBuf = data.root().into();
        let mut all = vec![
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let (child, base) = spawn_run(&all, Stdio::null());
        let token = data.read_admin_token().unwrap();
        ChildHub {
            tmp,
            data,
            base,
            token,
            child,
        }
    }

    /// Another hub process over the same data directory as `self` (its
    /// PKI files), with `args` added to `run`'s: with `--database`, both
    /// serve one database.
    pub fn beside(&self, args: &[&str]) -> ChildHub {
        Self::serve(tempfile::tempdir().unwrap(), self.data.clone(), args)
    }

    /// Another hub process over a copy of `self`'s data directory (as on
    /// another host: the same CA, server certificate and admin token),
    /// with `args` added to `run`'s.
    pub fn on_a_copy(&self, args: &[&str]) -> ChildHub {
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join("hub");
        let status = Command::new("cp")
            .arg("-a")
            .arg(self.data.root())
            .arg(&copy)
            .status()
            .unwrap();
        assert!(status.success());
        Self::serve(tmp, DataDir::new(copy), args)
    }

    /// The hub's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the hub has used so far, in seconds.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(&self.pid().to_string())
    }

    /// The hub's resident memory now.
    pub fn memory(&self) -> Memory {
        Memory::of(self.pid())
    }

    /// Enrolls `store` (a running hub trusts it at once); returns its
    /// bundle.
    pub fn enroll(&self, store: &str) -> PathBuf {
        enroll_in(self.tmp.path(), &self.data, store)
    }

    /// An admin client (bearer token).
    pub fn admin(&self) -> Admin {
        Admin {
            client: anonymous_client(&self.base, &self.data),
            token: self.token.clone(),
        }
    }

    /// Stops the hub with SIGTERM and waits for it; its exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate()
    }

    /// Stops the hub like [`ChildHub::stop`] and hands back its data
    /// directory, to read the database it left.
    pub fn stop_keeping_data(mut self) -> (ExitStatus, tempfile::TempDir, DataDir) {
        let status = self.terminate();
        let tmp = std::mem::replace(&mut self.tmp, tempfile::tempdir().unwrap());
        (status, tmp, self.data.clone())
    }

    fn terminate(&mut self) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        wait_exit(&mut self.child, Duration::from_secs(30))
    }
}

impl Drop for ChildHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tally-hub revoke --store STORE --data-dir DATA --database URL`
/// (never the environment's database) and answers what it printed;
/// panics if it fails.
pub fn revoke_in_database(data: &std::path::Path, store: &str, url: &str) -> String {
    let data = data.to_str().unwrap();
    hub_command(&[
        "revoke",
        "--store",
        store,
        "--data-dir",
        data,
        "--database",
        url,
    ])
}

/// Runs `tally-hub ARGS` (never with the environment's database): its
/// exit code, stdout and stderr.
pub fn hub_output(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("TALLY_HUB_DATABASE")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `tally-hub ARGS` as [`hub_output`] and answers what it printed
/// on stdout; panics if it fails.
pub fn hub_command(args: &[&str]) -> String {
    let (code, stdout, stderr) = hub_output(args);
    assert_eq!(code, Some(0), "tally-hub {args:?}: {stderr}");
    stdout
}

/// Polls with `req` through `client` until the hub refuses it as from a
/// revoked store (10 s deadline); `name` names the hub in the panic.
pub async fn until_revoked(client: &super::HubClient, req: &tally_sync::SyncRequest, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.sync(req).await {
            Err((reqwest::StatusCode::FORBIDDEN, body)) => {
                assert_eq!(body["error"], "certificate_revoked", "{name}: {body}");
                return;
            }
            other => assert!(
                Instant::now() < deadline,
                "hub {name} still serves a revoked store: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
