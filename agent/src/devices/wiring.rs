//! What the scanner's and the RFID reader's tasks share: a driver's
//! events until it has stopped ([`drive`]), its connection status as a
//! metric and a log line, commands submitted to the committer with a few
//! retries (their fixed ids make a retry idempotent). Their storage reads
//! go through `AgentDb::read_blocking`.

use std::future::Future;
use std::time::Duration;

use tally_hardware::driver::{DeviceStatus, DriverHandle};
use tally_sync::command::{Command, Outcome};
use tokio::sync::{mpsc, watch};

use crate::commit::{CommitError, Committer};
use crate::metrics::Metrics;

/// Hands each event the driver sends to `on_event`, in order, until its
/// channel closes: after `stop` turns true the driver is asked to stop and
/// what it still sends (the RFID driver flushes its open windows) is
/// handled too.
pub(super) async fn drive<E, F, Fut>(
    handle: DriverHandle,
    rx: mpsc::Receiver<E>,
    stop: watch::Receiver<bool>,
    mut on_event: F,
) where
    F: FnMut(E) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut events = Events::new(handle, rx, stop);
    while let Some(ev) = events.next().await {
        on_event(ev).await;
    }
}

/// A driver's events, until its channel closes. Asks the driver to stop
/// when `stop` turns true (or its sender is gone), and goes on yielding
/// what the driver still sends.
pub(super) struct Events<E> {
    handle: DriverHandle,
    rx: mpsc::Receiver<E>,
    stop: watch::Receiver<bool>,
    stopping: bool,
}

impl<E> Events<E> {
    pub(super) fn new(
        handle: DriverHandle,
        rx: mpsc::Receiver<E>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let stopping = *stop.borrow();
        if stopping {
            handle.request_stop();
        }
        Self {
            handle,
            rx,
            stop,
            stopping,
        }
    }

    /// An event the driver has queued already, without waiting.
    pub(super) fn try_next(&mut self) -> Option<E> {
        self.rx.try_recv().ok()
    }

    pub(super) async fn next(&mut self) -> Option<E> {
        loop {
            tokio::select! {
                ev = self.rx.recv() => return ev,
                changed = self.stop.changed(), if !self.stopping => {
                    if changed.is_err() || *self.stop.borrow() {
                        self.stopping = true;
                        self.handle.request_stop();
                    }
                }
            }
        }
    }
}

/// Records a driver's connection status (metric and log).
pub(super) fn status(metrics: &Metrics, device: &'static str, s: &DeviceStatus) {
    match s {
        DeviceStatus::Connected { path } => {
            metrics.set_connected(device, true);
            tracing::info!(device, path = %path.display(), "Device connected.");
        }
        DeviceStatus::Disconnected { path, reason } => {
            metrics.set_connected(device, false);
            tracing::warn!(device, path = %path.display(), %reason, "Device lost; reopening with backoff.");
        }
    }
}

/// Submits a command whose id is fixed, retrying a storage failure a few
/// times (safe: the id makes a retry idempotent).
pub(super) async fn submit(committer: &Committer, cmd: Command) -> Result<Outcome, CommitError> {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match committer.command(cmd.clone()).await {
            Ok(outcome) => return Ok(outcome),
            Err(CommitError::Storage(detail)) if attempt < 4 => {
                tracing::warn!(attempt, %detail, "Storage failed; retrying the device command with the same id.");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
