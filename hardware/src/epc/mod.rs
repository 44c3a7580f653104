//! EPC binary encodings, URIs and GS1 element strings per the GS1 EPC Tag
//! Data Standard (TDS 2.x; section and table numbers as in TDS 1.13, whose
//! layouts for these schemes TDS 2.x keeps): SGTIN-96 and SGTIN-198,
//! SSCC-96, SGLN-96 and SGLN-195, GRAI-96, GIAI-96 and GIAI-202 decode into
//! their fields and encode back; every other header is kept as a raw EPC
//! (`urn:epc:raw:…`), never dropped.
//!
//! # Design constraints
//!
//! - Pure: bytes or text in, values or a typed [`EpcError`] out; no I/O,
//!   no clock. Nothing from outside can panic it: bit fields past the end
//!   of the bytes read as zero and lengths are checked before reading.
//! - Decoding is strict, as TDS §14.4 says: partition 7, a company prefix
//!   or padded field with more digits than its row, a bad 7-bit string,
//!   non-zero SSCC reserved bits and an EPC shorter than its scheme are
//!   errors. A scheme on a longer EPC bank is accepted when the extra bits
//!   are zero (a 96-bit EPC on a 128-bit tag; a 198-bit EPC padded to 208
//!   bits, the 13 words a Gen2 tag stores).
//! - Encoding is the exact inverse, and the long schemes encode to 208
//!   bits. Every filter value 0 to 7 is accepted (TDS §10.1).
//! - Three views of one tag: [`DecodedEpc`] (binary coding and filter, the
//!   tag URI), [`PureIdentity`] (the EPC itself, the pure-identity URI, the
//!   GS1 key and element string) and [`ParsedUri`] (either, from text).
//!
//! Code map: `bits.rs` bit fields; `partition.rs` partition tables and
//! their decoding; `text.rs` CSET 82 strings (7-bit binary and URI
//! escapes); `sgtin.rs`, `sscc.rs`, `sgln.rs`, `grai.rs`, `giai.rs` one
//! file per scheme family (binary layout, constructors, tag URI);
//! `identity.rs` pure identities, keys, element strings and the choice of
//! coding; `uri.rs` URI parsing.

use std::fmt;

use tally_sync::Epc;

mod bits;
mod giai;
mod grai;
mod identity;
mod partition;
mod sgln;
mod sgtin;
mod sscc;
mod text;
mod uri;

#[cfg(test)]
mod tests;

pub use giai::{Giai202, Giai96};
pub use grai::{Grai96, GRAI96_SERIAL_LIMIT};
pub use identity::{Coding, PureIdentity};
pub use sgln::{Sgln195, Sgln96, SGLN195_EXTENSION_CHARS, SGLN96_EXTENSION_LIMIT};
pub use sgtin::{Sgtin198, Sgtin96, SGTIN198_SERIAL_CHARS, SGTIN96_SERIAL_LIMIT};
pub use sscc::Sscc96;
pub use text::Cset82;
pub use uri::{parse_pure_uri, parse_tag_uri, parse_uri, ParsedUri};

/// SGTIN-96 header (TDS Table 14-1).
pub const HEADER_SGTIN96: u8 = 0x30;
/// SSCC-96 header.
pub const HEADER_SSCC96: u8 = 0x31;
/// SGLN-96 header.
pub const HEADER_SGLN96: u8 = 0x32;
/// GRAI-96 header.
pub const HEADER_GRAI96: u8 = 0x33;
/// GIAI-96 header.
pub const HEADER_GIAI96: u8 = 0x34;
/// SGTIN-198 header.
pub const HEADER_SGTIN198: u8 = 0x36;
/// GIAI-202 header.
pub const HEADER_GIAI202: u8 = 0x38;
/// SGLN-195 header.
pub const HEADER_SGLN195: u8 = 0x39;

/// Why an EPC, a URI or a value does not decode, parse or encode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpcError {
    /// Partition 7 is reserved (TDS §14.4.3).
    #[error("{scheme}: invalid partition {partition}")]
    InvalidPartition {
        /// The scheme.
        scheme: &'static str,
        /// The partition value.
        partition: u8,
    },
    /// A field's value has more digits than its partition allows.
    #[error("{scheme}: {field} value {value} does not fit in {digits} digits")]
    FieldOverflow {
        /// The scheme.
        scheme: &'static str,
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Allowed digits.
        digits: u32,
    },
    /// An EPC shorter than its scheme, or longer with non-zero extra bits.
    #[error("{scheme}: expected {expected} bits, found {bits}")]
    BadLength {
        /// The scheme.
        scheme: &'static str,
        /// The scheme's bits.
        expected: usize,
        /// The EPC's length in bits.
        bits: usize,
    },
    /// SSCC-96's 24 reserved bits must be zero (TDS Table 14-6).
    #[error("sscc-96: reserved bits are not zero")]
    ReservedNotZero,
    /// A serial, extension or asset reference that is no CSET 82 string
    /// (binary 7-bit form or URI form; TDS §14.4.2, §5).
    #[error("invalid alphanumeric field: {0}")]
    BadText(&'static str),
    /// A malformed EPC URI.
    #[error("invalid EPC URI: {0}")]
    Uri(&'static str),
    /// A URI scheme this module does not decode (e.g. `gid-96`).
    #[error("unsupported EPC scheme {0:?}")]
    UnsupportedScheme(String),
    /// A value out of range when encoding.
    #[error("cannot encode: {0}")]
    Encode(&'static str),
}

/// A decoded EPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodedEpc {
    /// SGTIN-96.
    Sgtin96(Sgtin96),
    /// SGTIN-198.
    Sgtin198(Sgtin198),
    /// SSCC-96.
    Sscc96(Sscc96),
    /// SGLN-96.
    Sgln96(Sgln96),
    /// SGLN-195.
    Sgln195(Sgln195),
    /// GRAI-96.
    Grai96(Grai96),
    /// GIAI-96.
    Giai96(Giai96),
    /// GIAI-202.
    Giai202(Giai202),
    /// Any other scheme, kept as is.
    Raw(Epc),
}

/// The digits of an ASCII decimal string (non-digits count as 0).
pub(crate) fn digits_of(s: &str) -> Vec<u8> {
    s.bytes().map(|b| b.wrapping_sub(b'0').min(9)).collect()
}

/// The scheme name and bit length of a header this module decodes.
fn scheme_of(header: u8) -> Option<(&'static str, usize)> {
    Some(match header {
        HEADER_SGTIN96 => ("sgtin-96", 96),
        HEADER_SSCC96 => ("sscc-96", 96),
        HEADER_SGLN96 => ("sgln-96", 96),
        HEADER_GRAI96 => ("grai-96", 96),
        HEADER_GIAI96 => ("giai-96", 96),
        HEADER_SGTIN198 => ("sgtin-198", 198),
        HEADER_GIAI202 => ("giai-202", 202),
        HEADER_SGLN195 => ("sgln-195", 195),
        _ => return None,
    })
}

/// Decodes an EPC. The headers of the schemes above must decode cleanly;
/// every other header gives [`DecodedEpc::Raw`]. The EPC must hold the
/// scheme's bits; bits after them must be zero.
pub fn decode(epc: &Epc) -> Result<DecodedEpc, EpcError> {
    let bytes = epc.as_bytes();
    let Some((scheme, bits)) = bytes.first().and_then(|&h| scheme_of(h)) else {
        return Ok(DecodedEpc::Raw(epc.clone()));
    };
    let bad_length = EpcError::BadLength {
        scheme,
        expected: bits,
        bits: bytes.len() * 8,
    };
    if bytes.len() * 8 < bits || !bits::BitReader::new(bytes, bits).rest_is_zero() {
        return Err(bad_length);
    }
    Ok(match bytes[0] {
        HEADER_SGTIN96 => DecodedEpc::Sgtin96(Sgtin96::decode(bytes)?),
        HEADER_SSCC96 => DecodedEpc::Sscc96(Sscc96::decode(bytes)?),
        HEADER_SGLN96 => DecodedEpc::Sgln96(Sgln96::decode(bytes)?),
        HEADER_GRAI96 => DecodedEpc::Grai96(Grai96::decode(bytes)?),
        HEADER_GIAI96 => DecodedEpc::Giai96(Giai96::decode(bytes)?),
        HEADER_SGTIN198 => DecodedEpc::Sgtin198(Sgtin198::decode(bytes)?),
        HEADER_GIAI202 => DecodedEpc::Giai202(Giai202::decode(bytes)?),
        _ => DecodedEpc::Sgln195(Sgln195::decode(bytes)?),
    })
}

impl DecodedEpc {
    /// The binary coding scheme: `sgtin-96`, `sgtin-198`, `sscc-96`,
    /// `sgln-96`, `sgln-195`, `grai-96`, `giai-96`, `giai-202` or `raw`.
    pub fn scheme(&self) -> &'static str {
        match self {
            DecodedEpc::Sgtin96(_) => "sgtin-96",
            DecodedEpc::Sgtin198(_) => "sgtin-198",
            DecodedEpc::Sscc96(_) => "sscc-96",
            DecodedEpc::Sgln96(_) => "sgln-96",
            DecodedEpc::Sgln195(_) => "sgln-195",
            DecodedEpc::Grai96(_) => "grai-96",
            DecodedEpc::Giai96(_) => "giai-96",
            DecodedEpc::Giai202(_) => "giai-202",
            DecodedEpc::Raw(_) => "raw",
        }
    }

    /// The filter value (none for raw EPCs).
    pub fn filter(&self) -> Option<u8> {
        Some(match self {
            DecodedEpc::Sgtin96(s) => s.filter,
            DecodedEpc::Sgtin198(s) => s.filter,
            DecodedEpc::Sscc96(s) => s.filter,
            DecodedEpc::Sgln96(s) => s.filter,
            DecodedEpc::Sgln195(s) => s.filter,
            DecodedEpc::Grai96(g) => g.filter,
            DecodedEpc::Giai96(g) => g.filter,
            DecodedEpc::Giai202(g) => g.filter,
            DecodedEpc::Raw(_) => return None,
        })
    }

    /// What the filter value means for the scheme (TDS §10, Tables 10-1 to
    /// 10-5); `None` for raw EPCs.
    pub fn filter_name(&self) -> Option<&'static str> {
        let f = self.filter()?;
        let reserved = "reserved";
        Some(match (self, f) {
            (_, 0) => "all others",
            (DecodedEpc::Sgtin96(_) | DecodedEpc::Sgtin198(_), f) => match f {
                1 => "point of sale trade item",
                2 => "full case for transport",
                4 => "inner pack trade item grouping for handling",
                6 => "unit load",
                7 => "unit inside trade item or component inside a product not intended for individual sale",
                _ => reserved,
            },
            (DecodedEpc::Sscc96(_), 2) => "full case for transport",
            (DecodedEpc::Sscc96(_), 6) => "unit load",
            (DecodedEpc::Giai96(_) | DecodedEpc::Giai202(_), 1) => "rail vehicle",
            _ => reserved,
        })
    }

    /// The GTIN of an SGTIN (either coding): the item a tag is a unit of.
    pub fn gtin(&self) -> Option<tally_sync::Gtin> {
        match self {
            DecodedEpc::Sgtin96(s) => s.gtin(),
            DecodedEpc::Sgtin198(s) => s.gtin(),
            _ => None,
        }
    }

    /// The serial of an SGTIN in GS1 form (digits for SGTIN-96).
    pub fn sgtin_serial(&self) -> Option<String> {
        match self {
            DecodedEpc::Sgtin96(s) => Some(s.serial.to_string()),
            DecodedEpc::Sgtin198(s) => Some(s.serial.to_string()),
            _ => None,
        }
    }

    /// The pure-identity URI, for GS1 schemes (TDS §6.3).
    pub fn epc_uri(&self) -> Option<String> {
        self.identity().map(|id| id.uri())
    }

    /// The GS1 element string, for GS1 schemes (TDS §7), e.g.
    /// `(01)80614141123458(21)6789`.
    pub fn element_string(&self) -> Option<String> {
        self.identity()?.element_string()
    }

    /// The tag URI (TDS §12.3.2); for raw EPCs the raw URI
    /// `urn:epc:raw:Bits.xHex` (TDS §12.4).
    pub fn tag_uri(&self) -> String {
        match self {
            DecodedEpc::Sgtin96(s) => s.tag_uri(),
            DecodedEpc::Sgtin198(s) => s.tag_uri(),
            DecodedEpc::Sscc96(s) => s.tag_uri(),
            DecodedEpc::Sgln96(s) => s.tag_uri(),
            DecodedEpc::Sgln195(s) => s.tag_uri(),
            DecodedEpc::Grai96(g) => g.tag_uri(),
            DecodedEpc::Giai96(g) => g.tag_uri(),
            DecodedEpc::Giai202(g) => g.tag_uri(),
            DecodedEpc::Raw(e) => format!("urn:epc:raw:{}.x{}", e.as_bytes().len() * 8, e.to_hex()),
        }
    }

    /// The binary encoding: 12 bytes for the 96-bit schemes, 26 (208 bits)
    /// for the long ones, the bytes themselves for raw EPCs.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            DecodedEpc::Sgtin96(s) => s.encode().to_vec(),
            DecodedEpc::Sgtin198(s) => s.encode().to_vec(),
            DecodedEpc::Sscc96(s) => s.encode().to_vec(),
            DecodedEpc::Sgln96(s) => s.encode().to_vec(),
            DecodedEpc::Sgln195(s) => s.encode().to_vec(),
            DecodedEpc::Grai96(g) => g.encode().to_vec(),
            DecodedEpc::Giai96(g) => g.encode().to_vec(),
            DecodedEpc::Giai202(g) => g.encode().to_vec(),
            DecodedEpc::Raw(e) => e.as_bytes().to_vec(),
        }
    }

    /// The binary encoding as an [`Epc`].
    pub fn to_epc(&self) -> Result<Epc, EpcError> {
        match self {
            DecodedEpc::Raw(e) => Ok(e.clone()),
            other => Epc::from_bytes(&other.to_bytes())
                .map_err(|_| EpcError::Encode("the encoding is not 2 to 62 bytes")),
        }
    }
}

impl fmt::Display for DecodedEpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag_uri())
    }
}
