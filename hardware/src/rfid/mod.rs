//! UHF RFID readers: the [`ReaderProtocol`] trait every reader family
//! implements, the tag reads it yields, where a reader is
//! ([`address::ReaderAddress`]), and two families: M100/QM100 serial
//! modules ([`m100`]) and LLRP network readers ([`llrp`]).
//!
//! A protocol is pure: it builds the bytes of its commands and turns bytes
//! from the reader into [`ReaderEvent`]s. The driver
//! ([`crate::driver::rfid`]) owns the port or socket, writes what the
//! protocol builds and feeds it what it reads, so adding a reader family
//! means implementing this trait (see docs/hardware.md), not touching the
//! driver.

pub mod address;
pub mod frame;
pub mod llrp;
pub mod m100;

use std::fmt;
use std::time::Duration;

use tally_sync::Epc;

/// One tag seen once by the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRead {
    /// The EPC.
    pub epc: Epc,
    /// Received signal strength in dBm (higher is stronger).
    pub rssi: i8,
    /// The Gen2 protocol-control word.
    pub pc: u16,
    /// The antenna that read it, when the reader says (LLRP does; an M100
    /// module has one antenna and does not).
    pub antenna: Option<u16>,
}

/// What a reader said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    /// A tag was read.
    Tag(TagRead),
    /// The reader answered a command with an error code.
    Error {
        /// The command it refers to, when the protocol tells (an M100
        /// command byte, an LLRP message type).
        command: Option<u16>,
        /// The reader's error code (an M100 error byte, an LLRP status
        /// code).
        code: u16,
        /// Whether this is the routine "no tag in this round" answer.
        no_tag: bool,
        /// The reader's description of the error, when it gives one.
        detail: Option<String>,
    },
    /// A response that needs no action (acknowledgements and the like).
    Response {
        /// The command answered (or message received).
        command: u16,
    },
    /// Bytes were skipped or a frame made no sense; the protocol resynced.
    Malformed(String),
    /// The connection cannot go on: a stream that cannot be
    /// resynchronised, a reader refusing or closing the connection, a
    /// configuration step refused. The driver closes the connection and
    /// reconnects with backoff.
    Reconnect(String),
}

/// Counters a protocol keeps about its byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProtocolStats {
    /// Good frames decoded.
    pub frames: u64,
    /// Bytes skipped while resynchronising.
    pub skipped_bytes: u64,
    /// Frames rejected for a bad checksum.
    pub bad_checksum: u64,
    /// Frames that decoded but whose content was invalid.
    pub bad_payload: u64,
}

/// A family of RFID readers: how to start and stop continuous inventory and
/// how to read what the reader sends. Implementations are pure (no I/O, no
/// clock).
///
/// The driver, on each connection: writes [`start_inventory`]; feeds
/// every read to [`push`], drains [`next_event`] and writes what
/// [`take_outgoing`] returns; while the reader is quiet, calls
/// [`drop_stale`], re-writes [`start_inventory`] after its idle time if
/// [`restarts_when_idle`], and reconnects after [`silence_limit`] or on
/// [`ReaderEvent::Reconnect`]. On shutdown it writes [`stop_inventory`];
/// after a lost connection it calls [`reset`].
///
/// [`start_inventory`]: ReaderProtocol::start_inventory
/// [`push`]: ReaderProtocol::push
/// [`next_event`]: ReaderProtocol::next_event
/// [`take_outgoing`]: ReaderProtocol::take_outgoing
/// [`drop_stale`]: ReaderProtocol::drop_stale
/// [`restarts_when_idle`]: ReaderProtocol::restarts_when_idle
/// [`silence_limit`]: ReaderProtocol::silence_limit
/// [`stop_inventory`]: ReaderProtocol::stop_inventory
/// [`reset`]: ReaderProtocol::reset
pub trait ReaderProtocol: Send + fmt::Debug {
    /// A short name for logs, e.g. `"m100"`.
    fn name(&self) -> &'static str;
    /// Bytes that start continuous (multiple) inventory on a new
    /// connection. Empty for a protocol whose reader speaks first (LLRP
    /// configures the reader from [`take_outgoing`](ReaderProtocol::take_outgoing)
    /// once it has greeted).
    fn start_inventory(&self) -> Vec<u8>;
    /// Bytes that stop inventory (and, for a session protocol, close the
    /// session).
    fn stop_inventory(&self) -> Vec<u8>;
    /// Feeds bytes read from the reader.
    fn push(&mut self, bytes: &[u8]);
    /// The next event decoded from the bytes pushed so far, if any.
    fn next_event(&mut self) -> Option<ReaderEvent>;
    /// The device went quiet with a partial frame buffered: drop what cannot
    /// complete. Returns whether anything was dropped.
    fn drop_stale(&mut self) -> bool;
    /// Forgets buffered bytes (after a reconnect), keeping counters.
    fn reset(&mut self);
    /// Counters.
    fn stats(&self) -> ProtocolStats;
    /// Bytes the protocol wants sent now, in reply to what it decoded: an
    /// acknowledgement (LLRP's KEEPALIVE_ACK) or the next step of a
    /// configuration sequence. The driver writes them after each drain.
    /// Default: nothing.
    fn take_outgoing(&mut self) -> Vec<u8> {
        Vec::new()
    }
    /// Whether the driver re-writes [`start_inventory`](ReaderProtocol::start_inventory)
    /// when the reader has been quiet for its idle time (an M100 module
    /// that finished its rounds). Default: yes.
    fn restarts_when_idle(&self) -> bool {
        true
    }
    /// How long the reader may send nothing before the connection is
    /// presumed dead and reopened (LLRP: a few keepalive periods). Default:
    /// never (a serial module is quiet when no tag is in the field).
    fn silence_limit(&self) -> Option<Duration> {
        None
    }
}

/// A protocol chosen at run time (e.g. from a [`address::ReaderAddress`]).
impl<P: ReaderProtocol + ?Sized> ReaderProtocol for Box<P> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn start_inventory(&self) -> Vec<u8> {
        (**self).start_inventory()
    }
    fn stop_inventory(&self) -> Vec<u8> {
        (**self).stop_inventory()
    }
    fn push(&mut self, bytes: &[u8]) {
        (**self).push(bytes);
    }
    fn next_event(&mut self) -> Option<ReaderEvent> {
        (**self).next_event()
    }
    fn drop_stale(&mut self) -> bool {
        (**self).drop_stale()
    }
    fn reset(&mut self) {
        (**self).reset();
    }
    fn stats(&self) -> ProtocolStats {
        (**self).stats()
    }
    fn take_outgoing(&mut self) -> Vec<u8> {
        (**self).take_outgoing()
    }
    fn restarts_when_idle(&self) -> bool {
        (**self).restarts_when_idle()
    }
    fn silence_limit(&self) -> Option<Duration> {
        (**self).silence_limit()
    }
}
