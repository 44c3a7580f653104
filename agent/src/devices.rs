//! Devices wired to the agent itself (`tally-agent run --scanner … --rfid …`,
//! or `[devices]` in the config file): a barcode scanner that **sells**
//! (every code scanned is a one-line sale of one unit, as at a
//! self-checkout or an express lane) and a UHF RFID reader that
//! **receives** (every newly seen SGTIN-96 tag is a receipt of one unit of
//! its GTIN, as at a receiving-dock portal). The cashier terminal
//! (`tally-agent pos --scanner`) is the other way to use a scanner; a port
//! can only be opened by one of them.
//!
//! # Design constraints
//! - **The normal command path.** Scans and tags become core
//!   [`Command`]s submitted to the [`Committer`], exactly like
//!   `POST /v1/sales` and `POST /v1/receipts`: counted as done only once
//!   durable, refused for the same reasons (a refused scan writes nothing
//!   but the demand signal), queued in the outbox for the hub. Nothing
//!   here writes to the database.
//! - **Real drivers.** `tally_hardware::driver` runs each device on its
//!   own thread (reopened with backoff when unplugged, garbage skipped and
//!   counted) and hands events over a bounded channel: a slow commit slows
//!   the reader, it does not grow memory.
//! - **A tag is received once while it is on hand.** A receipt's id is a
//!   name-based UUID (version 8, SHA-256) of (store, EPC, generation), the
//!   generation being how many sales of that EPC are recorded. A re-read
//!   (the reader's next de-duplication window, the same pallet through
//!   the portal twice, a restart) computes the same id, which the
//!   committer answers from the journal: nothing is received twice. A tag
//!   sold with its EPC and later back at the dock has a new generation and
//!   is received again; a tag sold and returned at the till is on hand
//!   already and is not. (Scanner sales name no EPC, so an RFID-received
//!   unit sold by barcode keeps generation 0: re-reading its tag receives
//!   nothing.)
//! - **Every input is counted** (`tally_agent_device_scans_total{outcome}`,
//!   `tally_agent_device_tags_total{outcome}`,
//!   `tally_agent_device_connected{device}`) and logged; nothing from a
//!   device can stop the agent.
//! - **Pure decisions** ([`scan_item`], [`unit_price`], [`tag_plan`],
//!   [`receipt_id`]) are separate from the I/O and tested with tables.
//! - **Shutdown.** When the agent stops, each driver is asked to stop; its
//!   task keeps handling what the driver still sends (the RFID driver
//!   flushes its open windows) until the channel closes, then drops its
//!   committer handle so the committer can finish.
//!
//! RFID cycle counts (a `count` mode) are not offered: an RFID count only
//! sees tags in the read field, so every unit outside it (another aisle,
//! an untagged unit of the same GTIN) would be recorded as shrink unless
//! staff delimit the count's scope and session, which needs a front-end.
//! Counts go through `POST /v1/counts`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tally_hardware::barcode::Barcode;
use tally_hardware::driver::rfid::{self as rfid_driver, RfidConfig, RfidEvent};
use tally_hardware::driver::scanner::{self as scanner_driver, ScannerConfig, ScannerEvent};
use tally_hardware::driver::{DeviceStatus, DriverHandle};
use tally_hardware::epc::{self as epc_codec, DecodedEpc};
use tally_hardware::rcn::RcnLayout;
use tally_hardware::rfid::m100::M100;
use tally_sync::epcs::EpcHistory;
use tally_sync::{Epc, EventId, Gtin, ReplicaId};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::commit::{CommitError, Committer, Done, Job};
use crate::metrics::Metrics;
use crate::store::AgentDb;
pub use tally_hardware::measure::Measure;
use tally_hardware::measure::{self, measure_of, MeasureError};
use tally_sync::command::{Command, LineIn, Outcome, ReceiptLine};

/// What a scanner wired to the agent does with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScannerMode {
    /// Each code is a sale of one unit (self-checkout, express lane).
    Sell,
}

/// What an RFID reader wired to the agent does with a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RfidMode {
    /// Each newly seen SGTIN-96 tag is a receipt of one unit (dock portal).
    Receive,
}

/// A scanner the agent reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerSettings {
    /// The serial device (prefer a stable `/dev/serial/by-id/…` path).
    pub path: PathBuf,
    /// What a scan does.
    pub mode: ScannerMode,
    /// Baud rate.
    pub baud: u32,
    /// In-store weighed-goods layouts.
    pub rcn_layouts: Vec<RcnLayout>,
}

/// An RFID reader (M100/QM100 protocol) the agent reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfidSettings {
    /// The serial device.
    pub path: PathBuf,
    /// What a tag does.
    pub mode: RfidMode,
    /// Baud rate.
    pub baud: u32,
    /// De-duplication window: a tag is reported once per window.
    pub window: Duration,
}

/// The devices the agent reads, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicesConfig {
    /// The scanner, if any.
    pub scanner: Option<ScannerSettings>,
    /// The RFID reader, if any.
    pub rfid: Option<RfidSettings>,
}

impl DevicesConfig {
    /// Whether any device is configured.
    pub fn is_empty(&self) -> bool {
        self.scanner.is_none() && self.rfid.is_none()
    }
}

/// `[devices]` in the config file; the same fields are the `run` flags
/// (`--scanner`, `--scanner-mode`, …), which take precedence.
///
/// ```toml
/// [devices]
/// scanner = "/dev/serial/by-id/usb-Honeywell_1900-if00"
/// scanner_mode = "sell"
/// scanner_baud = 9600
/// rcn_layouts = ["02,20-29:FFIIIIIPPPPPC:2"]
/// rfid = "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"
/// rfid_mode = "receive"
/// rfid_baud = 115200
/// rfid_window_ms = 2000
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesFileConfig {
    /// Scanner device path.
    pub scanner: Option<PathBuf>,
    /// Scanner mode (required with a scanner).
    pub scanner_mode: Option<ScannerMode>,
    /// Scanner baud rate (default 9600).
    pub scanner_baud: Option<u32>,
    /// Weighed-goods layouts (default `02,20-29:FFIIIIIPPPPPC:2`).
    pub rcn_layouts: Option<Vec<String>>,
    /// RFID reader device path.
    pub rfid: Option<PathBuf>,
    /// RFID mode (required with a reader).
    pub rfid_mode: Option<RfidMode>,
    /// RFID baud rate (default 115200).
    pub rfid_baud: Option<u32>,
    /// De-duplication window in ms (default 2000).
    pub rfid_window_ms: Option<u64>,
}

/// Why the device settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceConfigError {
    /// A device without a mode: a scanner must never start selling by
    /// accident.
    #[error("{device} {path} needs a mode: {hint}")]
    NoMode {
        /// `scanner` or `rfid`.
        device: &'static str,
        /// The path given.
        path: String,
        /// What to add.
        hint: &'static str,
    },
    /// A mode or setting without its device.
    #[error("{0} is set but no device path is (--scanner / --rfid)")]
    NoDevice(&'static str),
    /// A value that must be positive is zero.
    #[error("{0} must be greater than 0")]
    Zero(&'static str),
    /// A weighed-goods layout does not parse.
    #[error(transparent)]
    Layout(#[from] tally_hardware::rcn::LayoutError),
}

impl DevicesFileConfig {
    /// Resolves `flags` over `file` (each flag given wins).
    pub fn resolve(flags: Self, file: Self) -> Result<DevicesConfig, DeviceConfigError> {
        let scanner = match (
            flags.scanner.or(file.scanner),
            flags.scanner_mode.or(file.scanner_mode),
        ) {
            (None, None) => None,
            (None, Some(_)) => return Err(DeviceConfigError::NoDevice("scanner_mode")),
            (Some(path), None) => {
                return Err(DeviceConfigError::NoMode {
                    device: "scanner",
                    path: path.display().to_string(),
                    hint: "--scanner-mode sell (scanner_mode = \"sell\")",
                })
            }
            (Some(path), Some(mode)) => {
                let baud = flags
                    .scanner_baud
                    .or(file.scanner_baud)
                    .unwrap_or(scanner_driver::DEFAULT_BAUD);
                if baud == 0 {
                    return Err(DeviceConfigError::Zero("scanner_baud"));
                }
                let rcn_layouts = match flags.rcn_layouts.or(file.rcn_layouts) {
                    None => RcnLayout::default_layouts(),
                    Some(l) if l.is_empty() => RcnLayout::default_layouts(),
                    Some(l) => l
                        .iter()
                        .map(|s| s.parse())
                        .collect::<Result<Vec<RcnLayout>, _>>()?,
                };
                Some(ScannerSettings {
                    path,
                    mode,
                    baud,
                    rcn_layouts,
                })
            }
        };
        let rfid = match (flags.rfid.or(file.rfid), flags.rfid_mode.or(file.rfid_mode)) {
            (None, None) => None,
            (None, Some(_)) => return Err(DeviceConfigError::NoDevice("rfid_mode")),
            (Some(path), None) => {
                return Err(DeviceConfigError::NoMode {
                    device: "rfid",
                    path: path.display().to_string(),
                    hint: "--rfid-mode receive (rfid_mode = \"receive\")",
                })
            }
            (Some(path), Some(mode)) => {
                let baud = flags
                    .rfid_baud
                    .or(file.rfid_baud)
                    .unwrap_or(rfid_driver::DEFAULT_BAUD);
                if baud == 0 {
                    return Err(DeviceConfigError::Zero("rfid_baud"));
                }
                let window_ms = flags.rfid_window_ms.or(file.rfid_window_ms).unwrap_or(2000);
                if window_ms == 0 {
                    return Err(DeviceConfigError::Zero("rfid_window_ms"));
                }
                Some(RfidSettings {
                    path,
                    mode,
                    baud,
                    window: Duration::from_millis(window_ms),
                })
            }
        };
        Ok(DevicesConfig { scanner, rfid })
    }
}

// ------------------------------------------------------------ pure decisions

/// What a scan sells: one unit of `gtin`, maybe with an embedded measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanItem {
    /// The item (the catalogue GTIN for in-store weighed goods).
    pub gtin: Gtin,
    /// Embedded price or weight.
    pub measure: Option<Measure>,
}

/// Why a decoded scan sells nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanSkip {
    /// The code names no item (a coupon, a loyalty card, an SSCC).
    #[error("the code ({0}) carries no GTIN")]
    NoGtin(String),
    /// An embedded price or weight that cannot be used.
    #[error("embedded {what} {value:?} is not usable")]
    Measure {
        /// `price` or `weight`.
        what: &'static str,
        /// The decoded text.
        value: String,
    },
    /// A weighed item whose price per kilogram the catalog does not know.
    #[error("item {0} is sold by weight but has no catalog price per kg")]
    NoPricePerKg(Gtin),
}

/// What one decoded scan sells (pure). GS1 AIs 392n/393n give the price,
/// 310n the net weight; an in-store (RCN) code gives either.
pub fn scan_item(b: &Barcode) -> Result<ScanItem, ScanSkip> {
    let Some(gtin) = b.gtin else {
        return Err(ScanSkip::NoGtin(b.symbology_name()));
    };
    let measure =
        measure_of(b).map_err(|MeasureError { what, value }| ScanSkip::Measure { what, value })?;
    Ok(ScanItem { gtin, measure })
}

/// The unit price a scanned item sells at: the embedded price, the
/// weight × the catalog price per kg (rounded half up), or `None` for
/// "the catalog price" (the core refuses an item the catalog lacks).
pub fn unit_price(item: &ScanItem, catalog_price: Option<i64>) -> Result<Option<i64>, ScanSkip> {
    match item.measure {
        None => Ok(None),
        Some(Measure::Price(p)) => Ok(Some(p)),
        Some(Measure::Grams(g)) => {
            if catalog_price.is_none() {
                return Err(ScanSkip::NoPricePerKg(item.gtin));
            }
            measure::unit_price(item.measure, catalog_price)
                .map(Some)
                .ok_or_else(|| ScanSkip::Measure {
                    what: "weight",
                    value: g.to_string(),
                })
        }
    }
}

/// What to do with a tag the reader reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagPlan {
    /// Receive one unit of `gtin` under `id` (a re-read gets the same id).
    Receive {
        /// The item.
        gtin: Gtin,
        /// The receipt's id.
        id: EventId,
        /// How many sales of this EPC are recorded.
        generation: u64,
    },
    /// Sold and returned: the unit is on hand, nothing to receive.
    OnHand,
    /// Not an SGTIN-96 (an SSCC pallet tag, an asset tag, another
    /// scheme): no item to receive; the EPC is logged as read, raw.
    NotAnItem {
        /// The scheme, e.g. `sscc-96`, or the decoding error.
        scheme: String,
    },
}

/// Decides what a tag does at `store` (pure): see the module docs.
pub fn tag_plan(store: &ReplicaId, epc: &Epc, history: Option<&EpcHistory>) -> TagPlan {
    let sgtin = match epc_codec::decode(epc) {
        Ok(DecodedEpc::Sgtin96(s)) => s,
        Ok(other) => {
            return TagPlan::NotAnItem {
                scheme: other.scheme().to_string(),
            }
        }
        Err(e) => {
            return TagPlan::NotAnItem {
                scheme: e.to_string(),
            }
        }
    };
    let Some(gtin) = sgtin.gtin() else {
        return TagPlan::NotAnItem {
            scheme: "sgtin-96 without a valid GTIN".into(),
        };
    };
    let generation = match history {
        None => 0,
        Some(h) if !h.is_sold() => return TagPlan::OnHand,
        Some(h) => h.sales.len() as u64,
    };
    TagPlan::Receive {
        gtin,
        id: receipt_id(store, epc, generation),
        generation,
    }
}

/// The id of the receipt of `epc` at `store` in `generation`: a UUIDv8
/// whose 122 free bits are the first bits of SHA-256 over a fixed label,
/// the store id, the EPC and the generation (stable across versions and
/// restarts; RFC 9562 §5.8).
pub fn receipt_id(store: &ReplicaId, epc: &Epc, generation: u64) -> EventId {
    let mut h = Sha256::new();
    h.update(b"tally/rfid-receipt/v1\0");
    h.update(store.as_str().as_bytes());
    h.update(b"\0");
    h.update(epc.as_bytes());
    h.update(generation.to_be_bytes());
    let digest = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = 0x80 | (b[6] & 0x0F); // version 8
    b[8] = 0x80 | (b[8] & 0x3F); // RFC 9562 variant
    EventId(uuid::Uuid::from_bytes(b))
}

// ------------------------------------------------------------ I/O

/// What the device tasks share.
#[derive(Debug, Clone)]
pub struct DeviceContext {
    /// Snapshots (catalog prices, EPC histories).
    pub db: Arc<AgentDb>,
    /// The single writer every command goes through.
    pub committer: Committer,
    /// Counters.
    pub metrics: Arc<Metrics>,
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
        tasks.push(tokio::spawn(scanner_task(
            ctx.clone(),
            handle,
            rx,
            stop.clone(),
        )));
    }
    if let Some(s) = &config.rfid {
        let mut cfg = RfidConfig::new(&s.path);
        cfg.port.baud = s.baud;
        cfg.window = s.window;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let handle = rfid_driver::spawn(cfg, M100::new(0xFFFF), tx)?;
        ctx.metrics.set_connected("rfid", false);
        tracing::info!(path = %s.path.display(), mode = ?s.mode, window_ms = s.window.as_millis() as u64, "RFID reader wired: each new SGTIN-96 tag is a receipt of one unit.");
        tasks.push(tokio::spawn(rfid_task(
            ctx.clone(),
            handle,
            rx,
            stop.clone(),
        )));
    }
    Ok(tasks)
}

/// A driver's events, until its channel closes. Asks the driver to stop
/// when `stop` turns true (or its sender is gone), and goes on yielding
/// what the driver still sends.
struct Events<E> {
    handle: DriverHandle,
    rx: mpsc::Receiver<E>,
    stop: watch::Receiver<bool>,
    stopping: bool,
}

impl<E> Events<E> {
    fn new(handle: DriverHandle, rx: mpsc::Receiver<E>, stop: watch::Receiver<bool>) -> Self {
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

    async fn next(&mut self) -> Option<E> {
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

fn status(metrics: &Metrics, device: &'static str, s: &DeviceStatus) {
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Submits a command whose id is fixed, retrying a storage failure a few
/// times (safe: the id makes a retry idempotent).
async fn submit(committer: &Committer, cmd: Command) -> Result<Outcome, CommitError> {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match committer.submit(Job::Command(cmd.clone())).await {
            Ok(Done::Command(outcome)) => return Ok(outcome),
            Ok(_) => {
                return Err(CommitError::Storage(
                    "the committer answered a command with another job's result".into(),
                ))
            }
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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, tally_store::StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

async fn scanner_task(
    ctx: DeviceContext,
    handle: DriverHandle,
    rx: mpsc::Receiver<ScannerEvent>,
    stop: watch::Receiver<bool>,
) {
    let mut events = Events::new(handle, rx, stop);
    while let Some(ev) = events.next().await {
        on_scan(&ctx, ev).await;
    }
    tracing::info!("Scanner task stopped.");
}

async fn on_scan(ctx: &DeviceContext, ev: ScannerEvent) {
    let store = ctx.db.who().replica.clone();
    let (raw, barcode) = match ev {
        ScannerEvent::Status(s) => return status(&ctx.metrics, "scanner", &s),
        ScannerEvent::ScanError { raw, error } => {
            ctx.metrics.scan("undecodable");
            tracing::warn!(%store, %raw, %error, "Scan does not decode; nothing sold.");
            return;
        }
        ScannerEvent::Scan { raw, barcode } => (raw, barcode),
    };
    let item = match scan_item(&barcode) {
        Ok(i) => i,
        Err(skip) => {
            ctx.metrics.scan("not_an_item");
            tracing::warn!(%store, %raw, reason = %skip, "Scan names no item to sell.");
            return;
        }
    };
    let catalog = if matches!(item.measure, Some(Measure::Grams(_))) {
        let (db, gtin) = (ctx.db.clone(), item.gtin);
        match blocking(move || db.catalog_item(gtin)).await {
            Ok(c) => c.map(|c| c.price_minor),
            Err(error) => {
                ctx.metrics.scan("failed");
                tracing::error!(%store, %raw, %error, "Reading the catalog failed; nothing sold.");
                return;
            }
        }
    } else {
        None
    };
    let price = match unit_price(&item, catalog) {
        Ok(p) => p,
        Err(skip) => {
            ctx.metrics.scan("refused");
            tracing::warn!(%store, %raw, reason = %skip, "Scan refused; nothing sold.");
            return;
        }
    };
    let cmd = Command::Sale {
        id: Some(EventId::v7(now_ms(), rand::random())),
        lines: vec![LineIn {
            gtin: item.gtin,
            qty: 1,
            unit_price_minor: price,
            epc: None,
        }],
        tenders: Vec::new(),
        approval: None,
    };
    match submit(&ctx.committer, cmd).await {
        Ok(Outcome::Recorded { event, .. }) => {
            ctx.metrics.scan("sold");
            tracing::info!(%store, %raw, gtin = %item.gtin, sale = %event.id, total_minor = event.total_minor(), "Scan sold one unit.");
        }
        Ok(Outcome::Refused { refusal, .. }) => {
            ctx.metrics.scan("refused");
            tracing::warn!(%store, %raw, gtin = %item.gtin, reason = %refusal, "Scan refused; nothing sold.");
        }
        Err(error) => {
            ctx.metrics.scan("failed");
            tracing::error!(%store, %raw, %error, "Scan not recorded.");
        }
    }
}

async fn rfid_task(
    ctx: DeviceContext,
    handle: DriverHandle,
    rx: mpsc::Receiver<RfidEvent>,
    stop: watch::Receiver<bool>,
) {
    let mut events = Events::new(handle, rx, stop);
    while let Some(ev) = events.next().await {
        on_tag(&ctx, ev).await;
    }
    tracing::info!("RFID task stopped.");
}

async fn on_tag(ctx: &DeviceContext, ev: RfidEvent) {
    let store = ctx.db.who().replica.clone();
    let report = match ev {
        RfidEvent::Status(s) => return status(&ctx.metrics, "rfid", &s),
        RfidEvent::ReaderError { code } => {
            tracing::warn!(%store, code, "RFID reader reported an error.");
            return;
        }
        RfidEvent::Tag(report) => report,
    };
    let epc = report.epc;
    let history = {
        let (db, key) = (ctx.db.clone(), epc.clone());
        match blocking(move || db.epc_history(&key)).await {
            Ok(h) => h,
            Err(error) => {
                ctx.metrics.tag("failed");
                tracing::error!(%store, %epc, %error, "Reading the EPC history failed; tag not received.");
                return;
            }
        }
    };
    let (gtin, id) = match tag_plan(&store, &epc, history.as_ref()) {
        TagPlan::NotAnItem { scheme } => {
            ctx.metrics.tag("not_an_item");
            tracing::info!(%store, %epc, %scheme, reads = report.count, "Tag read (not an SGTIN-96 item); nothing received.");
            return;
        }
        TagPlan::OnHand => {
            ctx.metrics.tag("on_hand");
            tracing::debug!(%store, %epc, "Tag of a returned unit, already on hand.");
            return;
        }
        TagPlan::Receive { gtin, id, .. } => (gtin, id),
    };
    let cmd = Command::Receipt {
        id: Some(id),
        lines: vec![ReceiptLine::tagged(gtin, epc.clone())],
    };
    match submit(&ctx.committer, cmd).await {
        Ok(Outcome::Recorded { new: true, .. }) => {
            ctx.metrics.tag("received");
            tracing::info!(%store, %epc, %gtin, receipt = %id, reads = report.count, rssi = report.best_rssi, "Tag received one unit.");
        }
        Ok(Outcome::Recorded { new: false, .. }) => {
            ctx.metrics.tag("already_received");
            tracing::debug!(%store, %epc, receipt = %id, "Tag re-read; already received.");
        }
        Ok(Outcome::Refused { refusal, .. }) => {
            ctx.metrics.tag("refused");
            tracing::warn!(%store, %epc, reason = %refusal, "Tag receipt refused.");
        }
        Err(error) => {
            ctx.metrics.tag("failed");
            tracing::error!(%store, %epc, %error, "Tag receipt not recorded.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_hardware::barcode;
    use tally_hardware::epc::Sgtin96;
    use tally_sync::epcs::EpcRecord;

    fn decode(raw: &str) -> Barcode {
        barcode::decode(raw, &RcnLayout::default_layouts()).unwrap()
    }

    fn gtin(s: &str) -> Gtin {
        Gtin::parse(s).unwrap()
    }

    #[test]
    fn scans_give_the_item_and_any_embedded_measure() {
        for (raw, item, measure) in [
            ("]E04006381333931", "04006381333931", None),
            ("4006381333931", "04006381333931", None),
            ("]C1010400638133393110LOT7", "04006381333931", None),
            (
                "]C10104006381333931\u{1d}3922450",
                "04006381333931",
                Some(Measure::Price(450)),
            ),
            (
                "(01)90614141000015(3103)000750",
                "90614141000015",
                Some(Measure::Grams(750)),
            ),
            // In-store price-embedded EAN-13 (GS1 GenSpecs §2.1.12): the
            // catalogue GTIN with the price zeroed, price 12.34.
            (
                "2112345012346",
                "02112345000008",
                Some(Measure::Price(1234)),
            ),
        ] {
            let s = scan_item(&decode(raw)).unwrap();
            assert_eq!(s.gtin, gtin(item), "{raw}");
            assert_eq!(s.measure, measure, "{raw}");
        }
        assert!(matches!(
            scan_item(&decode("LOYALTY-123")),
            Err(ScanSkip::NoGtin(_))
        ));
    }

    #[test]
    fn unit_prices_follow_the_measure() {
        let g = gtin("90614141000015");
        let item = |measure| ScanItem { gtin: g, measure };
        assert_eq!(unit_price(&item(None), Some(999)), Ok(None));
        assert_eq!(
            unit_price(&item(Some(Measure::Price(450))), None),
            Ok(Some(450))
        );
        // 0.750 kg at 12.99/kg = 9.7425 → 9.74.
        assert_eq!(
            unit_price(&item(Some(Measure::Grams(750))), Some(1299)),
            Ok(Some(974))
        );
        // 0.010 kg at 0.50/kg = 0.005 → rounds half up to 0.01.
        assert_eq!(
            unit_price(&item(Some(Measure::Grams(10))), Some(50)),
            Ok(Some(1))
        );
        assert_eq!(
            unit_price(&item(Some(Measure::Grams(750))), None),
            Err(ScanSkip::NoPricePerKg(g))
        );
    }

    #[test]
    fn decimals_parse_and_round() {
        for (text, decimals, want) in [
            ("12.34", 2, Some(1234)),
            ("0.750", 3, Some(750)),
            ("1", 2, Some(100)),
            ("1.005", 2, Some(101)),
            ("1.004", 2, Some(100)),
            ("", 2, None),
            ("1.x", 2, None),
            ("-1", 2, None),
        ] {
            assert_eq!(measure::parse_decimal(text, decimals), want, "{text}");
        }
    }

    fn sgtin(serial: u64) -> Epc {
        let s = Sgtin96::from_gtin(1, gtin("00614141123452"), 7, serial).unwrap();
        Epc::from_bytes(&s.encode()).unwrap()
    }

    fn record(n: u8) -> EpcRecord {
        EpcRecord {
            event: EventId::v7(1, [n; 10]),
            replica: ReplicaId::new("s1").unwrap(),
        }
    }

    #[test]
    fn a_tag_is_received_once_per_generation_and_not_while_on_hand() {
        let s1 = ReplicaId::new("s1").unwrap();
        let s2 = ReplicaId::new("s2").unwrap();
        let epc = sgtin(42);
        let TagPlan::Receive {
            gtin: g,
            id: first,
            generation: 0,
        } = tag_plan(&s1, &epc, None)
        else {
            panic!("a new tag is received");
        };
        assert_eq!(g, gtin("00614141123452"));
        // A re-read computes the same id: the committer answers it from
        // the journal instead of receiving again.
        assert_eq!(
            tag_plan(&s1, &epc, None),
            TagPlan::Receive {
                gtin: g,
                id: first,
                generation: 0
            }
        );
        assert_ne!(first, receipt_id(&s2, &epc, 0), "ids are per store");
        assert_ne!(first, receipt_id(&s1, &sgtin(43), 0), "ids are per tag");
        // Sold: it left; back at the dock it is a new receipt.
        let mut sold = EpcHistory::default();
        sold.sales.insert(record(1));
        match tag_plan(&s1, &epc, Some(&sold)) {
            TagPlan::Receive { id, generation, .. } => {
                assert_eq!(generation, 1);
                assert_ne!(id, first);
            }
            other => panic!("{other:?}"),
        }
        // Sold and returned at the till: on hand, nothing to receive.
        let mut returned = sold.clone();
        returned.returns.insert(record(2));
        assert_eq!(tag_plan(&s1, &epc, Some(&returned)), TagPlan::OnHand);
        // A v8 UUID with the RFC 9562 variant.
        let u = first.0;
        assert_eq!(u.get_version_num(), 8);
        assert_eq!(u.as_bytes()[8] & 0xC0, 0x80);
    }

    #[test]
    fn other_schemes_are_not_items() {
        let s1 = ReplicaId::new("s1").unwrap();
        // SSCC-96 from the EPC TDS examples: a pallet, not an item.
        let sscc = Epc::from_hex("3174257BF4499602D2000000").unwrap();
        assert_eq!(
            tag_plan(&s1, &sscc, None),
            TagPlan::NotAnItem {
                scheme: "sscc-96".into()
            }
        );
        let raw = Epc::from_hex("E2801160600002054CC2093C").unwrap();
        assert!(matches!(
            tag_plan(&s1, &raw, None),
            TagPlan::NotAnItem { .. }
        ));
    }

    #[test]
    fn settings_resolve_with_flags_over_file_and_demand_a_mode() {
        let file = DevicesFileConfig {
            scanner: Some("/dev/a".into()),
            scanner_mode: Some(ScannerMode::Sell),
            rfid: Some("/dev/r".into()),
            rfid_mode: Some(RfidMode::Receive),
            rfid_window_ms: Some(500),
            ..Default::default()
        };
        let flags = DevicesFileConfig {
            scanner: Some("/dev/b".into()),
            scanner_baud: Some(115_200),
            ..Default::default()
        };
        let c = DevicesFileConfig::resolve(flags, file).unwrap();
        let s = c.scanner.unwrap();
        assert_eq!(s.path, PathBuf::from("/dev/b"));
        assert_eq!(s.baud, 115_200);
        assert_eq!(s.rcn_layouts, RcnLayout::default_layouts());
        let r = c.rfid.unwrap();
        assert_eq!(r.window, Duration::from_millis(500));
        assert_eq!(r.baud, rfid_driver::DEFAULT_BAUD);

        let none = DevicesFileConfig::resolve(Default::default(), Default::default()).unwrap();
        assert!(none.is_empty());
        for (bad, want) in [
            (
                DevicesFileConfig {
                    scanner: Some("/dev/a".into()),
                    ..Default::default()
                },
                "needs a mode",
            ),
            (
                DevicesFileConfig {
                    rfid_mode: Some(RfidMode::Receive),
                    ..Default::default()
                },
                "no device path",
            ),
            (
                DevicesFileConfig {
                    rfid: Some("/dev/r".into()),
                    rfid_mode: Some(RfidMode::Receive),
                    rfid_window_ms: Some(0),
                    ..Default::default()
                },
                "greater than 0",
            ),
            (
                DevicesFileConfig {
                    scanner: Some("/dev/a".into()),
                    scanner_mode: Some(ScannerMode::Sell),
                    rcn_layouts: Some(vec!["nope".into()]),
                    ..Default::default()
                },
                "RCN layout",
            ),
        ] {
            let e = DevicesFileConfig::resolve(bad, Default::default()).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
