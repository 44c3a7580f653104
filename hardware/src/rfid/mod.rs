//! UHF RFID readers: the [`ReaderProtocol`] trait every reader family
//! implements, the tag reads it yields, and the M100/QM100 module protocol.
//!
//! A protocol is pure: it builds the bytes of its commands and turns bytes
//! from the reader into [`ReaderEvent`]s. The driver
//! ([`crate::driver::rfid`]) owns the port, writes what the protocol builds
//! and feeds it what it reads, so adding a reader family means implementing
//! this trait (see docs/hardware.md), not touching the driver.

pub mod frame;
pub mod m100;

use std::fmt;

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
}

/// What a reader said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    /// A tag was read.
    Tag(TagRead),
    /// The reader answered a command with an error code.
    Error {
        /// The command it refers to, when the protocol tells.
        command: Option<u8>,
        /// The reader's error code.
        code: u8,
        /// Whether this is the routine "no tag in this round" answer.
        no_tag: bool,
    },
    /// A response that needs no action (acknowledgements and the like).
    Response {
        /// The command answered.
        command: u8,
    },
    /// Bytes were skipped or a frame made no sense; the protocol resynced.
    Malformed(String),
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
/// how to read what the reader sends. Implementations are pure (no I/O).
pub trait ReaderProtocol: Send + fmt::Debug {
    /// A short name for logs, e.g. `"m100"`.
    fn name(&self) -> &'static str;
    /// Bytes that start continuous (multiple) inventory.
    fn start_inventory(&self) -> Vec<u8>;
    /// Bytes that stop inventory.
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
}
