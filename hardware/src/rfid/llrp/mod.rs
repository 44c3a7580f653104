//! EPCglobal Low Level Reader Protocol (LLRP 1.0.1; an LLRP 1.1 reader
//! speaks it too): fixed network readers (Impinj, Zebra, …) over TCP,
//! port 5084.
//!
//! Pure: bytes in, messages and [`ReaderEvent`](crate::rfid::ReaderEvent)s
//! out, no I/O, no clock. The driver ([`crate::driver::rfid`]) owns the
//! socket.
//!
//! Design constraints:
//! - **Framed by length only.** A message is a 10-byte header and a body
//!   whose length the header gives; there is no sync byte, so a length
//!   that cannot be true ends the stream (the driver reconnects; TCP loses
//!   no bytes, so a bad length means a broken peer, not noise). Message
//!   length is bounded ([`stream::DEFAULT_MAX_LEN`]).
//! - **Forward compatible.** Unknown message types and unknown TLV
//!   parameters (vendor Custom parameters, LLRP 1.1 additions) are skipped
//!   by their length. TV parameters have no length: every TV type the
//!   specification defines has its length in [`types::param::tv_len`];
//!   an undefined one ends the walk of its list.
//! - **Specification-cited.** Every numeric type and field layout cites
//!   its section of the LLRP 1.0.1 specification; tests use byte vectors
//!   worked by hand from it.
//!
//! Code map:
//! - [`types`]: message and parameter type numbers, TV lengths, enums.
//! - [`header`]: the message header.
//! - [`param`]: TV/TLV parameters: walking a list, writing one.
//! - [`stream`]: byte stream → whole messages (fragments, bounds).
//! - [`report`]: TagReportData ↔ EPC, antenna, RSSI, first-seen time.
//! - [`message`]: a whole message → what Tally acts on.
//! - [`build`]: the messages Tally sends (and a reader's, for tests).
//! - [`session`]: the client session as a `ReaderProtocol`.

pub mod build;
pub mod header;
pub mod message;
pub mod param;
pub mod report;
pub mod session;
pub mod stream;
pub mod types;

pub use session::{Llrp, LlrpSettings};
pub use types::DEFAULT_PORT;

#[cfg(test)]
mod proptests;
