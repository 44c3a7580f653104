//! The barcode scanner driver: serial port → [`LineFramer`] → [`barcode::decode`]
//! → [`ScannerEvent`]s on a bounded channel.

use std::io;

use tokio::sync::mpsc;

use super::{
    open_with_backoff, read_port, DeviceStatus, DriverHandle, PortSettings, ReadOutcome, StopFlag,
};
use crate::barcode::{self, Barcode, BarcodeError};
use crate::framer::{FramerConfig, FramerStats, LineFramer};
use crate::rcn::RcnLayout;

/// The default scanner baud rate.
pub const DEFAULT_BAUD: u32 = 9600;

/// Scanner settings.
#[derive(Debug, Clone)]
pub struct ScannerConfig {
    /// Port settings.
    pub port: PortSettings,
    /// Suffix, prefix, longest code.
    pub framer: FramerConfig,
    /// Restricted-circulation layouts for weighed goods.
    pub rcn_layouts: Vec<RcnLayout>,
}

impl ScannerConfig {
    /// Defaults for `path`: 9600 baud, any suffix, no prefix, the default
    /// RCN layout.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        ScannerConfig {
            port: PortSettings::new(path, DEFAULT_BAUD),
            framer: FramerConfig::default(),
            rcn_layouts: RcnLayout::default_layouts(),
        }
    }
}

/// What the scanner driver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerEvent {
    /// A code decoded.
    Scan {
        /// The code as received (prefix and suffix stripped).
        raw: String,
        /// The decoded code.
        barcode: Barcode,
    },
    /// A complete code that does not decode.
    ScanError {
        /// The code as received.
        raw: String,
        /// Why.
        error: BarcodeError,
    },
    /// Connected or lost.
    Status(DeviceStatus),
}

/// Decodes one framed line into an event.
pub fn event_for_code(code: &[u8], layouts: &[RcnLayout]) -> ScannerEvent {
    let raw = String::from_utf8_lossy(code).into_owned();
    match barcode::decode(&raw, layouts) {
        Ok(barcode) => ScannerEvent::Scan { raw, barcode },
        Err(error) => ScannerEvent::ScanError { raw, error },
    }
}

/// Starts the driver on its own thread.
pub fn spawn(config: ScannerConfig, tx: mpsc::Sender<ScannerEvent>) -> io::Result<DriverHandle> {
    let name = format!("scanner {}", config.port.path.display());
    DriverHandle::spawn(name, move |stop| run(&config, &tx, &stop))
}

fn run(config: &ScannerConfig, tx: &mpsc::Sender<ScannerEvent>, stop: &StopFlag) {
    let path = config.port.path.clone();
    let send = |event| tx.blocking_send(event).is_ok();
    let mut framer = LineFramer::new(config.framer.clone());
    let mut logged = FramerStats::default();
    let mut buf = [0u8; 1024];
    'connect: loop {
        let Some(mut port) = open_with_backoff(&config.port, stop) else {
            break;
        };
        tracing::info!(path = %path.display(), baud = config.port.baud, "Scanner connected.");
        if !send(ScannerEvent::Status(DeviceStatus::Connected {
            path: path.clone(),
        })) {
            break;
        }
        loop {
            if stop.is_set() {
                break 'connect;
            }
            match read_port(port.as_mut(), &mut buf) {
                ReadOutcome::Data(n) => {
                    framer.push(&buf[..n]);
                    while let Some(code) = framer.next_code() {
                        let event = event_for_code(&code, &config.rcn_layouts);
                        match &event {
                            ScannerEvent::Scan { raw, barcode } => {
                                tracing::debug!(raw = %raw.escape_debug(), gtin = ?barcode.gtin, "Scanned.")
                            }
                            ScannerEvent::ScanError { raw, error } => {
                                tracing::warn!(raw = %raw.escape_debug(), %error, "Scan does not decode.")
                            }
                            ScannerEvent::Status(_) => {}
                        }
                        if !send(event) {
                            break 'connect;
                        }
                    }
                    log_skips(&path, &mut logged, framer.stats());
                }
                ReadOutcome::Quiet => {}
                ReadOutcome::Lost(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "Scanner lost; reopening.");
                    framer.discard_partial();
                    drop(port);
                    if !send(ScannerEvent::Status(DeviceStatus::Disconnected {
                        path: path.clone(),
                        reason,
                    })) {
                        break 'connect;
                    }
                    if stop.sleep(config.port.backoff.initial) {
                        break 'connect;
                    }
                    continue 'connect;
                }
            }
        }
    }
    tracing::info!(path = %path.display(), "Scanner driver stopped.");
}

fn log_skips(path: &std::path::Path, logged: &mut FramerStats, now: FramerStats) {
    if (
        now.nul_bytes,
        now.garbage_bytes,
        now.overlong_lines,
        now.missing_prefix,
    ) != (
        logged.nul_bytes,
        logged.garbage_bytes,
        logged.overlong_lines,
        logged.missing_prefix,
    ) {
        tracing::debug!(
            path = %path.display(),
            nul_bytes = now.nul_bytes,
            garbage_bytes = now.garbage_bytes,
            overlong_lines = now.overlong_lines,
            missing_prefix = now.missing_prefix,
            "Scanner input skipped."
        );
        *logged = now;
    }
}
