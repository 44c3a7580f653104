//! `tally-hardware`: barcode scanners and UHF RFID readers on serial ports
//! or (LLRP readers) TCP, and the pure decoders under them.
//!
//! **Architecture Invariant:** every module except [`driver`] and [`ports`]
//! is pure: bytes or text in, values or typed errors out, no I/O, no clock.
//! Drivers own the ports, run on dedicated threads and hand decoded events
//! to async code through bounded tokio channels.
//!
//! Code map:
//! - [`framer`]: scanner byte stream → lines.
//! - [`aim`]: AIM symbology identifiers.
//! - [`gs1`]: GS1 element strings and Digital Link URIs, validated by
//!   GS1's Barcode Syntax Dictionary.
//! - [`rcn`]: restricted-circulation EAN-13 (weighed goods).
//! - [`barcode`]: one scan → symbology, GTIN, AIs.
//! - [`measure`]: the price or weight a decoded barcode embeds, and what
//!   a unit then costs.
//! - [`rfid`]: reader protocol trait, reader addresses, frame codec, M100
//!   protocol, LLRP codec and session (`rfid::llrp`).
//! - [`epc`]: EPC Tag Data Standard: SGTIN-96/198, SSCC-96, SGLN-96/195,
//!   GRAI-96, GIAI-96/202 binary decoding and encoding, pure-identity and
//!   tag URIs both ways, GS1 element strings (`epc/`: one file per scheme
//!   family, plus bit fields, partition tables, CSET 82 text, identities
//!   and URI parsing).
//! - [`dedup`]: per-window RFID read de-duplication.
//! - [`driver`]: drivers on serial ports or TCP, with reconnect and backoff.
//! - [`ports`]: serial port listing.

pub mod aim;
pub mod barcode;
pub mod dedup;
pub mod driver;
pub mod epc;
pub mod framer;
pub mod gs1;
pub mod measure;
pub mod ports;
pub mod rcn;
pub mod rfid;
