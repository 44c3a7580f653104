//! Real processes for end-to-end tests: locating the workspace's binaries,
//! starting them, reading the "listening on URL" line they print, stopping
//! them with SIGTERM (graceful) or SIGKILL, and killing them when a test
//! fails (kill on drop).
//!
//! Binaries: root-package tests do not get `CARGO_BIN_EXE_*` for other
//! packages' binaries, so they are found next to the test executable
//! (`target/<profile>/`). `cargo test --workspace` builds them (the agent
//! and hub packages have integration tests), and `scripts/test.sh` builds
//! `--bins` first; a missing binary fails with the command to run.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The path of a workspace binary built for this profile.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build --workspace --bins` (add --release for benches; scripts/test.sh builds the debug ones)",
        path.display()
    );
    path
}

/// Runs a command to completion and returns its stdout; panics with its
/// stderr if it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawning a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running child process, killed when dropped.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: std::process::Child,
    /// Where its stderr goes (printed when a wait fails).
    pub log: PathBuf,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Starts `cmd` with stdout piped and stderr to `log`, and waits (up
    /// to `deadline`) for a stdout line containing `marker`; returns the
    /// process and the rest of that line after the marker, trimmed.
    pub fn start(
        name: &str,
        mut cmd: Command,
        log: PathBuf,
        marker: &str,
        deadline: Duration,
    ) -> (Proc, String) {
        let err = std::fs::File::create(&log).expect("creating a log file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut p = Proc {
            name: name.to_string(),
            child,
            log,
            lines,
        };
        let rest = p.wait_line(marker, deadline);
        (p, rest)
    }

    /// Waits for a stdout line containing `marker`; returns what follows it.
    pub fn wait_line(&mut self, marker: &str, deadline: Duration) -> String {
        let until = Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(i) = line.find(marker) {
                        return line[i + marker.len()..].trim().to_string();
                    }
                }
                Err(_) => panic!(
                    "{} did not print {marker:?} within {deadline:?}; its log:\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (up to `deadline`) for a clean exit.
    pub fn terminate(mut self, deadline: Duration) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let until = Instant::now() + deadline;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "{} did not exit within {deadline:?} after SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after
/// `deadline` with `what` and the last value seen.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let until = Instant::now() + deadline;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    Instant::now() < until,
                    "{what}: not reached within {deadline:?}; last: {last}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
