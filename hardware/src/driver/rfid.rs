//! The RFID reader driver: serial port ↔ a [`ReaderProtocol`] → a
//! [`Deduplicator`] → [`RfidEvent`]s on a bounded channel.
//!
//! On every (re)connect it writes the protocol's start-inventory command;
//! on shutdown it writes stop-inventory and flushes the open windows. If
//! the reader sends nothing for `idle_restart` (a module that finished its
//! rounds or was reset) it writes start-inventory again. A partial frame
//! left when the reader goes quiet for `stale_after` is dropped so a
//! corrupted length cannot hold back the frames behind it.

use std::io;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{
    open_with_backoff, read_port, DeviceStatus, DriverHandle, PortSettings, ReadOutcome, StopFlag,
};
use crate::dedup::{Deduplicator, TagReport, DEFAULT_MAX_TAGS, DEFAULT_WINDOW};
use crate::rfid::{ProtocolStats, ReaderEvent, ReaderProtocol};

/// The default RFID module baud rate (M100/QM100 factory setting).
pub const DEFAULT_BAUD: u32 = 115_200;

/// RFID driver settings.
#[derive(Debug, Clone)]
pub struct RfidConfig {
    /// Port settings.
    pub port: PortSettings,
    /// De-duplication window.
    pub window: Duration,
    /// Most windows open at once.
    pub max_tags: usize,
    /// Re-issue start-inventory after this long without any byte.
    pub idle_restart: Duration,
    /// Drop a partial frame after this long without any byte.
    pub stale_after: Duration,
}

impl RfidConfig {
    /// Defaults for `path`: 115200 baud, 2 s window.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        RfidConfig {
            port: PortSettings::new(path, DEFAULT_BAUD),
            window: DEFAULT_WINDOW,
            max_tags: DEFAULT_MAX_TAGS,
            idle_restart: Duration::from_secs(5),
            stale_after: Duration::from_millis(200),
        }
    }
}

/// What the RFID driver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RfidEvent {
    /// A tag, once per window.
    Tag(TagReport),
    /// The reader reported an error (other than "no tag this round").
    ReaderError {
        /// The reader's code.
        code: u8,
    },
    /// Connected or lost.
    Status(DeviceStatus),
}

/// Starts the driver on its own thread.
pub fn spawn<P: ReaderProtocol + 'static>(
    config: RfidConfig,
    protocol: P,
    tx: mpsc::Sender<RfidEvent>,
) -> io::Result<DriverHandle> {
    let name = format!("rfid {}", config.port.path.display());
    DriverHandle::spawn(name, move |stop| {
        Driver::new(config, protocol, tx).run(&stop)
    })
}

struct Driver<P> {
    config: RfidConfig,
    protocol: P,
    tx: mpsc::Sender<RfidEvent>,
    dedup: Deduplicator,
    logged: ProtocolStats,
}

/// The receiver is gone: stop.
struct Closed;

impl<P: ReaderProtocol> Driver<P> {
    fn new(config: RfidConfig, protocol: P, tx: mpsc::Sender<RfidEvent>) -> Self {
        let dedup = Deduplicator::new(config.window, config.max_tags);
        Driver {
            config,
            protocol,
            tx,
            dedup,
            logged: ProtocolStats::default(),
        }
    }

    fn send(&self, event: RfidEvent) -> Result<(), Closed> {
        self.tx.blocking_send(event).map_err(|_| Closed)
    }

    fn run(mut self, stop: &StopFlag) {
        let path = self.config.port.path.clone();
        let _ = self.connect_loop(stop);
        // Whatever was still in a window is reported before stopping.
        for report in self.dedup.flush() {
            if self.send(RfidEvent::Tag(report)).is_err() {
                break;
            }
        }
        tracing::info!(path = %path.display(), reader = self.protocol.name(), "RFID driver stopped.");
    }

    fn connect_loop(&mut self, stop: &StopFlag) -> Result<(), Closed> {
        let path = self.config.port.path.clone();
        let mut buf = [0u8; 4096];
        'connect: loop {
            let Some(mut port) = open_with_backoff(&self.config.port, stop) else {
                return Ok(());
            };
            tracing::info!(path = %path.display(), reader = self.protocol.name(), "RFID reader connected.");
            self.send(RfidEvent::Status(DeviceStatus::Connected {
                path: path.clone(),
            }))?;
            let mut last_rx = Instant::now();
            let mut last_start = Instant::now();
            let mut lost = write_all(port.as_mut(), &self.protocol.start_inventory()).err();
            while lost.is_none() {
                if stop.is_set() {
                    if let Err(error) = write_all(port.as_mut(), &self.protocol.stop_inventory()) {
                        tracing::debug!(%error, "Could not send stop-inventory.");
                    }
                    return Ok(());
                }
                match read_port(port.as_mut(), &mut buf) {
                    ReadOutcome::Data(n) => {
                        last_rx = Instant::now();
                        self.protocol.push(&buf[..n]);
                        self.drain(last_rx)?;
                    }
                    ReadOutcome::Quiet => {
                        let now = Instant::now();
                        let quiet = now.duration_since(last_rx);
                        if quiet >= self.config.stale_after {
                            while self.protocol.drop_stale() {
                                self.drain(now)?;
                            }
                        }
                        if quiet >= self.config.idle_restart
                            && now.duration_since(last_start) >= self.config.idle_restart
                        {
                            tracing::debug!(path = %path.display(), "Reader idle; restarting inventory.");
                            last_start = now;
                            lost = write_all(port.as_mut(), &self.protocol.start_inventory()).err();
                        }
                    }
                    ReadOutcome::Lost(reason) => lost = Some(reason),
                }
                for report in self.dedup.due(Instant::now()) {
                    self.send(RfidEvent::Tag(report))?;
                }
                self.log_stats(&path);
            }
            let reason = lost.unwrap_or_default();
            tracing::warn!(path = %path.display(), %reason, "RFID reader lost; reopening.");
            drop(port);
            self.protocol.reset();
            self.send(RfidEvent::Status(DeviceStatus::Disconnected {
                path: path.clone(),
                reason,
            }))?;
            if stop.sleep(self.config.port.backoff.initial) {
                return Ok(());
            }
            continue 'connect;
        }
    }

    fn drain(&mut self, now: Instant) -> Result<(), Closed> {
        while let Some(event) = self.protocol.next_event() {
            match event {
                ReaderEvent::Tag(read) => {
                    if let Some(evicted) = self.dedup.observe(&read, now) {
                        self.send(RfidEvent::Tag(evicted))?;
                    }
                }
                ReaderEvent::Error { no_tag: true, .. } => tracing::trace!("No tag this round."),
                ReaderEvent::Error { code, command, .. } => {
                    tracing::warn!(code, ?command, "Reader reported an error.");
                    self.send(RfidEvent::ReaderError { code })?;
                }
                ReaderEvent::Response { command } => tracing::trace!(command, "Reader response."),
                ReaderEvent::Malformed(what) => tracing::debug!(%what, "Skipped reader input."),
            }
        }
        Ok(())
    }

    fn log_stats(&mut self, path: &std::path::Path) {
        let now = self.protocol.stats();
        if (now.skipped_bytes, now.bad_checksum, now.bad_payload)
            != (
                self.logged.skipped_bytes,
                self.logged.bad_checksum,
                self.logged.bad_payload,
            )
        {
            tracing::debug!(
                path = %path.display(),
                frames = now.frames,
                skipped_bytes = now.skipped_bytes,
                bad_checksum = now.bad_checksum,
                bad_payload = now.bad_payload,
                "RFID input skipped."
            );
            self.logged = now;
        }
    }
}

fn write_all(port: &mut dyn serialport::SerialPort, bytes: &[u8]) -> Result<(), String> {
    port.write_all(bytes)
        .and_then(|()| port.flush())
        .map_err(|e| e.to_string())
}
