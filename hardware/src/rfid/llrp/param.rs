//! LLRP parameters (LLRP 1.0.1 §16.2.1, "binary encoding of parameters"):
//! walking a list of them and writing them.
//!
//! Two encodings share one byte stream, told apart by the first bit:
//! - **TV** (type-value): bit 7 set, a 7-bit type, then a value whose
//!   length is fixed per type ([`tv_len`]); there is no length field, so
//!   an undefined TV type ends the walk of its list.
//! - **TLV** (type-length-value): 6 reserved bits, a 10-bit type, a 16-bit
//!   length counting the 4-byte header, then the value (fields, then
//!   nested parameters). Any TLV, known or not, is skipped by its length.

use super::types::param::tv_len;

/// Bytes in a TLV header.
pub const TLV_HEADER_LEN: usize = 4;

/// A parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A TV parameter (types 1–127).
    Tv(u8),
    /// A TLV parameter (types 0–1023; 128 and up in practice).
    Tlv(u16),
}

/// One parameter of a list: its type and its value (header excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The type.
    pub kind: ParamType,
    /// The value: a TV's fixed-length value, or a TLV's fields and nested
    /// parameters.
    pub value: &'a [u8],
}

impl Param<'_> {
    /// Whether this is the TV parameter `kind`.
    pub fn is_tv(&self, kind: u8) -> bool {
        self.kind == ParamType::Tv(kind)
    }

    /// Whether this is the TLV parameter `kind`.
    pub fn is_tlv(&self, kind: u16) -> bool {
        self.kind == ParamType::Tlv(kind)
    }
}

/// Why a parameter list cannot be walked further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A header or TV value runs past the end of the list.
    #[error("parameter truncated: {needed} bytes needed, {left} left")]
    Truncated {
        /// Bytes the header or value needs.
        needed: usize,
        /// Bytes left in the list.
        left: usize,
    },
    /// A TLV length shorter than its own header.
    #[error("TLV parameter {kind} with length {length}")]
    BadLength {
        /// The TLV type.
        kind: u16,
        /// Its length field.
        length: u16,
    },
    /// A TV type the specification does not define: its length is unknown.
    #[error("TV parameter of undefined type {0}")]
    UnknownTv(u8),
}

/// Walks a parameter list. After an error it yields nothing more: a
/// malformed parameter leaves no way to find the next one.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    rest: &'a [u8],
}

impl<'a> Params<'a> {
    /// The parameters in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Params { rest: bytes }
    }

    /// Bytes not walked yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    fn fail(&mut self, e: ParamError) -> Option<Result<Param<'a>, ParamError>> {
        self.rest = &[];
        Some(Err(e))
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<Param<'a>, ParamError>;

    fn next(&mut self) -> Option<Self::Item> {
        let first = *self.rest.first()?;
        let left = self.rest.len();
        if first & 0x80 != 0 {
            let kind = first & 0x7F;
            let Some(len) = tv_len(kind) else {
                return self.fail(ParamError::UnknownTv(kind));
            };
            let Some(value) = self.rest.get(1..1 + len) else {
                return self.fail(ParamError::Truncated {
                    needed: 1 + len,
                    left,
                });
            };
            self.rest = &self.rest[1 + len..];
            return Some(Ok(Param {
                kind: ParamType::Tv(kind),
                value,
            }));
        }
        let Some(header) = self.rest.get(..TLV_HEADER_LEN) else {
            return self.fail(ParamError::Truncated {
                needed: TLV_HEADER_LEN,
                left,
            });
        };
        let kind = u16::from_be_bytes([header[0], header[1]]) & 0x03FF;
        let length = u16::from_be_bytes([header[2], header[3]]);
        let total = usize::from(length);
        if total < TLV_HEADER_LEN {
            return self.fail(ParamError::BadLength { kind, length });
        }
        let Some(value) = self.rest.get(TLV_HEADER_LEN..total) else {
            return self.fail(ParamError::Truncated {
                needed: total,
                left,
            });
        };
        self.rest = &self.rest[total..];
        Some(Ok(Param {
            kind: ParamType::Tlv(kind),
            value,
        }))
    }
}

/// Appends a TV parameter: the type with bit 7 set, then `value` (which
/// must have the type's length; callers pass fixed-size values).
pub fn put_tv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(0x80 | (kind & 0x7F));
    out.extend_from_slice(value);
}

/// Appends a TLV parameter whose value `body` writes, then fills in its
/// length. A value longer than a TLV can hold (65,531 bytes) is cut off
/// so the length stays true; nothing Tally builds comes near it.
pub fn put_tlv(out: &mut Vec<u8>, kind: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&(kind & 0x03FF).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    body(out);
    let max = start + usize::from(u16::MAX);
    out.truncate(max);
    let len = u16::try_from(out.len() - start).unwrap_or(u16::MAX);
    out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Reads a big-endian `u16` at `at`.
pub(crate) fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads a big-endian `u64` at `at`.
pub(crate) fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfid::llrp::types::param;

    // §16.2.1: AntennaID (TV 1) = 0x81 then u16; PeakRSSI (TV 6) = 0x86
    // then s8; a Custom TLV (1023 = 0x03FF) with 8 bytes of vendor ID and
    // subtype plus 2 data bytes has length 4 + 10 = 14 (0x000E).
    #[test]
    fn walks_tv_and_tlv_parameters() {
        let bytes = [
            0x81, 0x00, 0x02, // AntennaID 2
            0x03, 0xFF, 0x00, 0x0E, 0, 0, 0x00, 0x19, 0, 0, 0, 1, 0xAB, 0xCD, // Custom
            0x86, 0xC4, // PeakRSSI -60
        ];
        let got: Vec<Param> = Params::new(&bytes).map(Result::unwrap).collect();
        assert_eq!(got.len(), 3);
        assert!(got[0].is_tv(param::ANTENNA_ID));
        assert_eq!(got[0].value, [0x00, 0x02]);
        assert!(got[1].is_tlv(param::CUSTOM));
        assert_eq!(got[1].value.len(), 10);
        assert!(got[2].is_tv(param::PEAK_RSSI));
        assert_eq!(got[2].value, [0xC4]);
    }

    #[test]
    fn errors_end_the_walk() {
        // Undefined TV type 0x7F.
        let mut p = Params::new(&[0xFF, 1, 2, 3]);
        assert_eq!(p.next(), Some(Err(ParamError::UnknownTv(0x7F))));
        assert_eq!(p.next(), None);
        // TLV length 2 < header.
        let mut p = Params::new(&[0x00, 0xF0, 0x00, 0x02, 0x81, 0, 1]);
        assert_eq!(
            p.next(),
            Some(Err(ParamError::BadLength {
                kind: 240,
                length: 2
            }))
        );
        assert_eq!(p.next(), None);
        // TLV longer than the list; a TV cut short; a header cut short.
        for bytes in [
            &[0x00, 0xF0, 0x00, 0x09, 1, 2][..],
            &[0x8D, 1, 2],
            &[0x00, 0xF0],
        ] {
            let mut p = Params::new(bytes);
            assert!(matches!(p.next(), Some(Err(ParamError::Truncated { .. }))));
            assert_eq!(p.next(), None);
        }
    }

    #[test]
    fn writes_what_it_reads() {
        let mut out = Vec::new();
        put_tlv(&mut out, param::TAG_REPORT_DATA, |o| {
            put_tv(o, param::ANTENNA_ID, &7u16.to_be_bytes());
            put_tlv(o, param::CUSTOM, |o| o.extend_from_slice(&[1, 2, 3]));
        });
        assert_eq!(
            out,
            [0x00, 0xF0, 0x00, 0x0E, 0x81, 0x00, 0x07, 0x03, 0xFF, 0x00, 0x07, 1, 2, 3]
        );
        let outer: Vec<Param> = Params::new(&out).map(Result::unwrap).collect();
        assert_eq!(outer.len(), 1);
        let inner: Vec<Param> = Params::new(outer[0].value).map(Result::unwrap).collect();
        assert_eq!(inner.len(), 2);
        assert_eq!(inner[1].value, [1, 2, 3]);
    }

    #[test]
    fn integer_readers_refuse_short_input() {
        assert_eq!(be_u16(&[1, 2], 0), Some(0x0102));
        assert_eq!(be_u16(&[1, 2], 1), None);
        assert_eq!(be_u64(&[0, 0, 0, 0, 0, 0, 1, 0], 0), Some(256));
        assert_eq!(be_u64(&[0; 7], 0), None);
        assert_eq!(be_u16(&[], usize::MAX), None);
    }
}
