//! Devices wired to the agent itself (`tally-agent run --scanner … --rfid …`,
//! or `[devices]` in the config file): a barcode scanner that **sells**
//! (every code scanned is a one-line sale of one unit, as at a
//! self-checkout or an express lane) and a UHF RFID reader that
//! **receives** (every newly seen SGTIN tag is a receipt of one unit of
//! its GTIN, as at a receiving-dock portal). The cashier terminal
//! (`tally-agent pos --scanner`) is the other way to use a scanner; a port
//! can only be opened by one of them.
//!
//! # Design constraints
//! - **The normal command path.** Scans and tags become core
//!   [`Command`](tally_sync::command::Command)s submitted to the
//!   [`Committer`], exactly like `POST /v1/sales` and
//!   `POST /v1/receipts`: counted as done only once
//!   durable, refused for the same reasons (a refused scan writes nothing
//!   but the demand signal), queued in the outbox for the hub. Nothing
//!   here writes to the database.
//! - **Real drivers.** `tally_hardware::driver` runs each device on its
//!   own thread (reopened with backoff when unplugged, garbage skipped and
//!   counted) and hands events over a bounded channel: a slow commit slows
//!   the reader, it does not grow memory.
//! - **A tag is received once while it is on hand.** A unit the store
//!   holds (`agent_tags_here`: received, returned or transferred in, and
//!   not sold or sent out since) is never received again. A receipt's id
//!   is a name-based UUID (version 8, SHA-256) of (store, EPC,
//!   generation), keyed by the store's secret ([`crate::event_ids`]), the
//!   generation being how many sales of that EPC are recorded: a re-read
//!   racing the first receipt computes the same id, which the committer
//!   answers from the journal. A tag sold with its EPC and later back at
//!   the dock has a new generation and is received again; a tag sold and
//!   returned at the till is on hand already and is not. (Scanner sales
//!   name no EPC, so an RFID-received unit sold by barcode stays held
//!   here: re-reading its tag receives nothing.)
//! - **Every input is counted** (`tally_agent_device_scans_total{outcome}`,
//!   `tally_agent_device_tags_total{outcome}`,
//!   `tally_agent_device_connected{device}`) and logged; nothing from a
//!   device can stop the agent.
//! - **Pure decisions** ([`scan_item`], [`unit_price`], [`tag_plan`],
//!   [`transfer_plan`], ids from [`crate::event_ids`]) are separate from
//!   the I/O and tested with tables.
//! - **Shutdown.** When the agent stops, each driver is asked to stop; its
//!   task keeps handling what the driver still sends (the RFID driver
//!   flushes its open windows) until the channel closes, then drops its
//!   committer handle so the committer can finish.
//!
//! A reader in **count** mode feeds the RFID count session counting now
//! (issue 23). An RFID count only sees tags in the read field, so staff
//! delimit it: a session (`POST /v1/counts/sessions`, the terminal's
//! count screen or `tally-agent count`) for the store, a list of items or
//! a zone, finished and accepted by a person. Reads outside a session are
//! dropped and counted.
//!
//! # Code map
//! - `config.rs`: the settings (`[devices]` and the `run` flags) and how
//!   they resolve ([`DevicesFileConfig::resolve`]).
//! - `scanner.rs`: the self-checkout: what a scan sells ([`scan_item`],
//!   [`unit_price`]) and the scanner's task.
//! - `counting.rs`: count mode: tags in batches to the session counting
//!   ([`tag_item`]).
//! - `rfid.rs`: the receiving portal: what a tag receives ([`tag_plan`],
//!   [`transfer_plan`]) and the reader's task.
//! - `wiring.rs`: what both tasks share: a driver's events until it has
//!   stopped, connection status, commands submitted with retries, reads
//!   off the async workers.
//! - this file: [`DeviceContext`] and [`start`], which spawns a driver and
//!   a task per configured device.

mod config;
mod counting;
mod rfid;
mod scanner;
mod wiring;

use std::sync::Arc;

use tally_hardware::driver::rfid::{self as rfid_driver, RfidConfig};
use tally_hardware::driver::scanner::{self as scanner_driver, ScannerConfig};
use tally_sync::clock::Clock;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::commit::Committer;
use crate::metrics::Metrics;
use crate::store::AgentDb;

pub use self::config::{
    DeviceConfigError, DevicesConfig, DevicesFileConfig, RfidMode, RfidSettings, ScannerMode,
    ScannerSettings,
};
pub use self::counting::tag_item;
pub use self::rfid::{tag_plan, transfer_plan, TagPlan};
pub use self::scanner::{scan_item, unit_price, ScanItem, ScanSkip};
pub use tally_hardware::measure::Measure;

/// What the device tasks share.
#[derive(Debug, Clone)]
pub struct DeviceContext {
    /// Snapshots (catalog prices, EPC histories).
    pub db: Arc<AgentDb>,
    /// The single writer every command goes through.
    pub committer: Committer,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The wall clock (the time in a scanner sale's id).
    pub clock: Arc<dyn Clock>,
    /// Sales with rights on demand (the self-checkout's).
    pub rights: crate::rights::Rights,
}

/// Events a driver may queue before it waits for the agent.
const CHANNEL: usize = 256;

/// Starts a driver thread and a task per configured device. The tasks end
/// after `stop` turns true and their driver has flushed.
pub fn start(
    ctx: &DeviceContext,
    config: &DevicesConfig,
    stop: &watch::Receiver<bool>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    if let Some(s) = &config.scanner {
        let mut cfg = ScannerConfig::new(&s.path);
        cfg.port.baud = s.baud;
        cfg.rcn_layouts = s.rcn_layouts.clone();
        let (tx, rx) = mpsc::channel(CHANNEL);
        let handle = scanner_driver::spawn(cfg, tx)?;
        ctx.metrics.set_connected("scanner", false);
        tracing::info!(path = %s.path.display(), mode = ?s.mode, "Scanner wired: each scan is a sale of one unit.");
        tasks.push(tokio::spawn(scanner::task(
            ctx.clone(),
            handle,
            rx,
            stop.clone(),
        )));
    }
    if let Some(s) = &config.rfid {
        let mut cfg = RfidConfig::for_address(&s.address);
        cfg.port.baud = s.baud;
        cfg.window = s.window;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let handle = rfid_driver::spawn(cfg, s.address.protocol(), tx)?;
        ctx.metrics.set_connected("rfid", false);
        let window_ms = s.window.as_millis() as u64;
        match s.mode {
            RfidMode::Receive => {
                tracing::info!(reader = %s.address, window_ms, "RFID reader wired: each new SGTIN tag is a receipt of one unit.");
                tasks.push(tokio::spawn(rfid::task(
                    ctx.clone(),
                    handle,
                    rx,
                    stop.clone(),
                )));
            }
            RfidMode::Count => {
                tracing::info!(reader = %s.address, window_ms, "RFID reader wired in count mode: tags feed the count session counting.");
                tasks.push(tokio::spawn(counting::task(
                    ctx.clone(),
                    handle,
                    rx,
                    stop.clone(),
                )));
            }
        }
    }
    Ok(tasks)
}
