//! Child processes of the demo (the hub and the agents): started with
//! stdout piped (to read the "listening on URL" line they print) and
//! stderr to a log file; stopped with SIGTERM (graceful: they finish their
//! commits) and, past a deadline, SIGKILL. **Killed on drop**, so an error
//! or a panic in the demo never leaves a process behind. The children stay
//! in the demo's process group, so Ctrl-C in a terminal reaches them too
//! (each stops gracefully on SIGINT) and a supervisor that kills the
//! group kills everything. **A lifeline:** each child's stdin is a pipe
//! the demo holds and never writes; the hub and agents run with
//! `--stop-on-stdin-eof`, so when the demo dies, even of SIGKILL (no drop
//! runs then), the kernel closes the pipe and they stop on their own.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// A running child, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    /// For messages, e.g. `tally-agent store-2`.
    pub name: String,
    child: Child,
    /// Its stderr (logs).
    pub log: PathBuf,
    /// The write end of its stdin, never written: closed when the demo
    /// exits, however it exits (see the module docs).
    _lifeline: Option<ChildStdin>,
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Proc {
    /// Starts `cmd` and waits up to `within` for a stdout line starting
    /// with `marker`; returns the process and the rest of that line.
    pub async fn start(
        name: &str,
        mut cmd: Command,
        log: PathBuf,
        marker: &str,
        within: Duration,
    ) -> anyhow::Result<(Proc, String)> {
        let err = std::fs::File::create(&log)
            .with_context(|| format!("creating the log file {}", log.display()))?;
        let mut child = cmd
            .kill_on_drop(true)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("{name}: no stdout pipe"))?;
        let mut lines = BufReader::new(stdout).lines();
        let lifeline = child.stdin.take();
        let proc = Proc {
            name: name.to_string(),
            child,
            log,
            _lifeline: lifeline,
        };
        let found = tokio::time::timeout(within, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix(marker) {
                    return Some(rest.trim().to_string());
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(rest)) => {
                // Keep draining stdout so the child never blocks on it.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok((proc, rest))
            }
            Ok(None) => Err(anyhow!(
                "{name} exited before it was ready; the end of {}:\n{}",
                proc.log.display(),
                tail(&proc.log, 20)
            )),
            Err(_) => Err(anyhow!(
                "{name} was not ready within {within:?}; the end of {}:\n{}",
                proc.log.display(),
                tail(&proc.log, 20)
            )),
        }
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits up to `within`; SIGKILL after that.
    pub async fn stop(&mut self, within: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited() {
            return Some(s);
        }
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(s)) => Some(s),
            _ => {
                let _ = self.child.kill().await;
                self.child.wait().await.ok()
            }
        }
    }
}

/// Runs a command to completion; its stdout, or an error with its stderr.
pub async fn run_ok(what: &str, cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        return Err(anyhow!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
