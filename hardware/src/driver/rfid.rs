//! The RFID reader driver: a serial port or TCP stream
//! ([`transport`](super::transport)) ↔ a [`ReaderProtocol`] → a
//! [`Deduplicator`] → [`RfidEvent`]s on a bounded channel. One loop serves
//! every reader family; what differs is asked of the protocol.
//!
//! On every (re)connect it writes the protocol's start-inventory bytes
//! (none for LLRP, whose reader speaks first); after each batch of input it
//! writes what the protocol wants sent in reply
//! ([`ReaderProtocol::take_outgoing`]: LLRP's configuration steps and
//! keepalive acknowledgements). If the reader sends nothing for
//! `idle_restart` and the protocol restarts idle readers (an M100 module
//! that finished its rounds or was reset) it writes start-inventory again.
//! A partial frame left when the reader goes quiet for `stale_after` is
//! dropped so a corrupted length cannot hold back the frames behind it.
//!
//! The connection is dropped and reopened with backoff when the device is
//! lost, when the protocol asks ([`ReaderEvent::Reconnect`]: a stream that
//! cannot resynchronise, a refused session) or when the reader stays
//! silent past the protocol's [`ReaderProtocol::silence_limit`] (an LLRP
//! reader missing its keepalives). Consecutive connections that end
//! without a tag back off exponentially. On shutdown it writes
//! stop-inventory, closes a network connection cleanly (reading what the
//! reader still sends, up to [`CLOSE_LINGER`]) and flushes the open
//! windows.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::transport::{Connection, Endpoint};
use super::{retry_with_backoff, DeviceStatus, DriverHandle, PortSettings, ReadOutcome, StopFlag};
use crate::dedup::{Deduplicator, TagReport, DEFAULT_MAX_TAGS, DEFAULT_WINDOW};
use crate::rfid::address::ReaderAddress;
use crate::rfid::{ProtocolStats, ReaderEvent, ReaderProtocol};

/// How long a network connection is given to close after stop-inventory.
pub const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// The default RFID module baud rate (M100/QM100 factory setting).
pub const DEFAULT_BAUD: u32 = 115_200;

/// RFID driver settings.
#[derive(Debug, Clone)]
pub struct RfidConfig {
    /// Port settings. For a network reader `path` is its address as shown
    /// in logs and status events (`llrp://host:port`) and `baud` is unused;
    /// the read timeout and backoff apply to both.
    pub port: PortSettings,
    /// How the reader is reached.
    pub endpoint: Endpoint,
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
    /// Defaults for a serial reader at `path`: 115200 baud, 2 s window.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RfidConfig {
            port: PortSettings::new(path, DEFAULT_BAUD),
            endpoint: Endpoint::Serial,
            window: DEFAULT_WINDOW,
            max_tags: DEFAULT_MAX_TAGS,
            idle_restart: Duration::from_secs(5),
            stale_after: Duration::from_millis(200),
        }
    }

    /// Defaults for a network reader at `host:port` (named
    /// `llrp://host:port` in logs and status events).
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        let host = host.into();
        let name = ReaderAddress::Llrp {
            host: host.clone(),
            port,
        }
        .to_string();
        RfidConfig {
            endpoint: Endpoint::Tcp { host, port },
            ..RfidConfig::new(name)
        }
    }

    /// Defaults for `address`: a serial path or an `llrp://` reader. Pair
    /// with [`ReaderAddress::protocol`].
    pub fn for_address(address: &ReaderAddress) -> Self {
        match address {
            ReaderAddress::Serial(path) => RfidConfig::new(path),
            ReaderAddress::Llrp { host, port } => RfidConfig::tcp(host.clone(), *port),
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
        /// The reader's code (an M100 error byte, an LLRP status code).
        code: u16,
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

/// How a connection ended.
enum SessionEnd {
    /// The driver was asked to stop.
    Stopped,
    /// Lost: reopen.
    Lost {
        /// Why.
        reason: String,
        /// Whether it was healthy (read a tag or lasted a full backoff
        /// period): the next reconnect then starts from the shortest delay.
        healthy: bool,
        /// Whether the connection still works (the protocol asked to
        /// reconnect): it is then closed politely.
        open: bool,
    },
}

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
        let backoff = self.config.port.backoff;
        let mut buf = [0u8; 4096];
        let mut losses = 0u32;
        loop {
            let (port, endpoint) = (&self.config.port, &self.config.endpoint);
            let Some(mut conn) =
                retry_with_backoff(&path, &backoff, stop, || Connection::open(port, endpoint))
            else {
                return Ok(());
            };
            tracing::info!(path = %path.display(), reader = self.protocol.name(), "RFID reader connected.");
            self.send(RfidEvent::Status(DeviceStatus::Connected {
                path: path.clone(),
            }))?;
            let end = match self.session(&mut conn, stop, &mut buf) {
                Ok(end) => end,
                Err(Closed) => {
                    // Nobody listens any more: stop the reader as on shutdown.
                    let _ = conn.write_all(&self.protocol.stop_inventory());
                    conn.close(Duration::ZERO, |_| {});
                    return Err(Closed);
                }
            };
            match end {
                SessionEnd::Stopped => {
                    if conn.is_tcp() {
                        self.linger(conn)?;
                    }
                    return Ok(());
                }
                SessionEnd::Lost {
                    reason,
                    healthy,
                    open,
                } => {
                    tracing::warn!(path = %path.display(), %reason, "RFID reader lost; reconnecting.");
                    if open {
                        // Best effort: tell the reader we are going.
                        let _ = conn.write_all(&self.protocol.stop_inventory());
                        conn.close(Duration::ZERO, |_| {});
                    } else {
                        drop(conn);
                    }
                    self.protocol.reset();
                    self.send(RfidEvent::Status(DeviceStatus::Disconnected {
                        path: path.clone(),
                        reason,
                    }))?;
                    losses = if healthy { 1 } else { losses.saturating_add(1) };
                    if stop.sleep(backoff.delay(losses)) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Runs one connection until it is lost or the driver stops.
    fn session(
        &mut self,
        conn: &mut Connection,
        stop: &StopFlag,
        buf: &mut [u8],
    ) -> Result<SessionEnd, Closed> {
        let path = self.config.port.path.clone();
        let began = Instant::now();
        let mut last_rx = began;
        let mut last_start = began;
        let mut tags = false;
        let settled = self.config.port.backoff.max;
        let lost = |reason: String, tags: bool, open: bool| SessionEnd::Lost {
            reason,
            healthy: tags || began.elapsed() >= settled,
            open,
        };
        if let Err(reason) = conn.write_all(&self.protocol.start_inventory()) {
            return Ok(lost(reason, tags, false));
        }
        loop {
            if stop.is_set() {
                if let Err(error) = conn.write_all(&self.protocol.stop_inventory()) {
                    tracing::debug!(%error, "Could not send stop-inventory.");
                }
                return Ok(SessionEnd::Stopped);
            }
            match conn.read(buf) {
                ReadOutcome::Data(n) => {
                    last_rx = Instant::now();
                    self.protocol.push(&buf[..n]);
                    if let Some(reason) = self.drain(last_rx, &mut tags)? {
                        return Ok(lost(reason, tags, true));
                    }
                    if let Err(reason) = conn.write_all(&self.protocol.take_outgoing()) {
                        return Ok(lost(reason, tags, false));
                    }
                }
                ReadOutcome::Quiet => {
                    let now = Instant::now();
                    let quiet = now.duration_since(last_rx);
                    if quiet >= self.config.stale_after {
                        while self.protocol.drop_stale() {
                            if let Some(reason) = self.drain(now, &mut tags)? {
                                return Ok(lost(reason, tags, true));
                            }
                        }
                    }
                    if let Some(limit) = self.protocol.silence_limit() {
                        if quiet >= limit {
                            let reason = format!("no data from the reader for {quiet:?}");
                            return Ok(lost(reason, tags, true));
                        }
                    }
                    if self.protocol.restarts_when_idle()
                        && quiet >= self.config.idle_restart
                        && now.duration_since(last_start) >= self.config.idle_restart
                    {
                        tracing::debug!(path = %path.display(), "Reader idle; restarting inventory.");
                        last_start = now;
                        if let Err(reason) = conn.write_all(&self.protocol.start_inventory()) {
                            return Ok(lost(reason, tags, false));
                        }
                    }
                }
                ReadOutcome::Lost(reason) => return Ok(lost(reason, tags, false)),
            }
            for report in self.dedup.due(Instant::now()) {
                self.send(RfidEvent::Tag(report))?;
            }
            self.log_stats(&path);
        }
    }

    /// After stop-inventory on a network connection: reads what the reader
    /// still sends (tags in flight, its responses) until it closes or
    /// [`CLOSE_LINGER`] passes.
    fn linger(&mut self, conn: Connection) -> Result<(), Closed> {
        let mut pending = Vec::new();
        conn.close(CLOSE_LINGER, |bytes| pending.extend_from_slice(bytes));
        self.protocol.push(&pending);
        let mut tags = false;
        let _ = self.drain(Instant::now(), &mut tags)?;
        Ok(())
    }

    /// Handles the protocol's events; returns the reason when it asks for
    /// a reconnect (events after that one are left undrained).
    fn drain(&mut self, now: Instant, tags: &mut bool) -> Result<Option<String>, Closed> {
        while let Some(event) = self.protocol.next_event() {
            match event {
                ReaderEvent::Tag(read) => {
                    *tags = true;
                    if let Some(evicted) = self.dedup.observe(&read, now) {
                        self.send(RfidEvent::Tag(evicted))?;
                    }
                }
                ReaderEvent::Error { no_tag: true, .. } => tracing::trace!("No tag this round."),
                ReaderEvent::Error {
                    code,
                    command,
                    detail,
                    ..
                } => {
                    tracing::warn!(
                        code,
                        ?command,
                        detail = detail.as_deref().unwrap_or(""),
                        "Reader reported an error."
                    );
                    self.send(RfidEvent::ReaderError { code })?;
                }
                ReaderEvent::Response { command } => tracing::trace!(command, "Reader response."),
                ReaderEvent::Malformed(what) => tracing::debug!(%what, "Skipped reader input."),
                ReaderEvent::Reconnect(reason) => return Ok(Some(reason)),
            }
        }
        Ok(None)
    }

    fn log_stats(&mut self, path: &Path) {
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
