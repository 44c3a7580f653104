//! Device drivers: each device runs on its own thread, reads its serial
//! port (or, for a network RFID reader, its TCP stream: [`transport`]) with
//! a short timeout, decodes with the pure modules and sends events through
//! a bounded tokio channel (`blocking_send`, so a slow consumer slows the
//! reader instead of growing memory).
//!
//! Design constraints:
//! - A device that disappears (read error, hang-up, EOF, a closed or
//!   silent socket) is closed and reopened at the same path or address
//!   with exponential backoff ([`Backoff`]); a [`DeviceStatus`] event says
//!   so. Partial input from before the loss is discarded.
//! - Garbage never stops a driver: decoders return errors, drivers log and
//!   count them and carry on.
//! - A driver stops when its [`DriverHandle`] is stopped or dropped, or when
//!   the receiving side of its channel is closed.

pub mod rfid;
pub mod scanner;
pub mod transport;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serialport::SerialPort;

pub use transport::Endpoint;

/// Reconnect delays: `initial`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay after a failure.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// A device's connection state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    /// The port is open (or the network reader connected).
    Connected {
        /// The configured path (for a network reader, its address, e.g.
        /// `llrp://10.0.0.5:5084`).
        path: PathBuf,
    },
    /// The port was lost; the driver retries.
    Disconnected {
        /// The configured path or address.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Serial settings shared by both drivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSettings {
    /// Device path (may be a symlink such as `/dev/serial/by-id/…`).
    pub path: PathBuf,
    /// Baud rate.
    pub baud: u32,
    /// Read timeout: how often the driver wakes to check for shutdown and
    /// due work when the device is quiet.
    pub read_timeout: Duration,
    /// Reconnect delays.
    pub backoff: Backoff,
}

impl PortSettings {
    /// Settings for `path` at `baud` with default timeout and backoff.
    pub fn new(path: impl Into<PathBuf>, baud: u32) -> Self {
        PortSettings {
            path: path.into(),
            baud,
            read_timeout: Duration::from_millis(50),
            backoff: Backoff::default(),
        }
    }

    fn open(&self) -> Result<Box<dyn SerialPort>, serialport::Error> {
        serialport::new(self.path.to_string_lossy(), self.baud)
            .timeout(self.read_timeout)
            .open()
    }
}

/// A running driver. Stopping or dropping it ends the thread.
#[derive(Debug)]
pub struct DriverHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DriverHandle {
    fn spawn(name: String, body: impl FnOnce(StopFlag) + Send + 'static) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = StopFlag(stop.clone());
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || body(flag))?;
        Ok(DriverHandle {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the driver to stop without waiting. It sends what it still has
    /// (an RFID driver flushes its open windows) and ends; its channel
    /// closes when it has.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Asks the driver to stop and waits for its thread (at most one read
    /// timeout, or one backoff step; a network reader is given up to a
    /// second more to close its connection cleanly).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("Driver thread panicked.");
            }
        }
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for DriverHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The driver side of the stop signal.
#[derive(Debug, Clone)]
struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleeps up to `d`, waking early (in small steps) when stopped.
    /// Returns whether the driver should stop.
    fn sleep(&self, d: Duration) -> bool {
        let step = Duration::from_millis(20);
        let mut left = d;
        while !left.is_zero() {
            if self.is_set() {
                return true;
            }
            let s = left.min(step);
            std::thread::sleep(s);
            left -= s;
        }
        self.is_set()
    }
}

/// Opens `settings.path`, retrying with backoff until it opens or the driver
/// stops.
fn open_with_backoff(settings: &PortSettings, stop: &StopFlag) -> Option<Box<dyn SerialPort>> {
    retry_with_backoff(&settings.path, &settings.backoff, stop, || settings.open())
}

/// Calls `open` until it succeeds or the driver stops, sleeping
/// `backoff` between failures; `name` (a path or address) names the
/// device in logs.
fn retry_with_backoff<T, E: std::fmt::Display>(
    name: &Path,
    backoff: &Backoff,
    stop: &StopFlag,
    mut open: impl FnMut() -> Result<T, E>,
) -> Option<T> {
    let mut failures = 0u32;
    loop {
        if stop.is_set() {
            return None;
        }
        match open() {
            Ok(port) => return Some(port),
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = backoff.delay(failures);
                if failures == 1 {
                    tracing::warn!(path = %name.display(), %error, "Cannot open device; retrying with backoff.");
                } else {
                    tracing::debug!(path = %name.display(), %error, failures, ?delay, "Device still unavailable.");
                }
                if stop.sleep(delay) {
                    return None;
                }
            }
        }
    }
}

/// How a read ended.
enum ReadOutcome {
    Data(usize),
    Quiet,
    Lost(String),
}

/// The reason [`classify_read`] gives for end of file.
const EOF: &str = "end of file";

fn read_port(port: &mut dyn SerialPort, buf: &mut [u8]) -> ReadOutcome {
    classify_read(port.read(buf))
}

/// What a read's result means: data, a timeout (quiet), or a lost device.
fn classify_read(result: io::Result<usize>) -> ReadOutcome {
    match result {
        Ok(0) => ReadOutcome::Lost(EOF.into()),
        Ok(n) => ReadOutcome::Data(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) =>
        {
            ReadOutcome::Quiet
        }
        Err(e) => ReadOutcome::Lost(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_max() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<u128> = (1..=6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }
}
