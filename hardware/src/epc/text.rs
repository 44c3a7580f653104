//! Alphanumeric EPC fields: serials (SGTIN-198), GLN extensions (SGLN-195)
//! and individual asset references (GIAI-202), strings of GS1 AI
//! encodable character set 82 (TDS Appendix A, Table A-1).
//!
//! Three forms of the same characters:
//! - the GS1 form, as in an element string (`32a/b`);
//! - the URI form (TDS §5 `GS3A3Component`): `"`, `%`, `&`, `/`, `<`, `>`
//!   and `?` are written `%22`, `%25`, `%26`, `%2F`, `%3C`, `%3E`, `%3F`
//!   (`32a%2Fb`); parsing also accepts any `%HH` (either case) that names a
//!   character of the set;
//! - the binary form: 7-bit ASCII per character, then zero bits (TDS
//!   §14.3.2 / §14.4.2 "String", §14.3.5 / §14.4.5 "String Partition
//!   Table"): no character is NUL, nothing but zeros follows the first
//!   all-zero 7 bits, and at least one character is present.

use std::fmt;

use super::bits::{BitReader, BitWriter};
use super::EpcError;
use crate::gs1::is_cset82;

/// A non-empty string of GS1 CSET 82 characters, held in its GS1 form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cset82(String);

/// Characters that the URI form writes as a `%HH` escape (TDS §5).
fn needs_escape(c: char) -> bool {
    matches!(c, '"' | '%' | '&' | '/' | '<' | '>' | '?')
}

impl Cset82 {
    /// Validates the GS1 form: 1 or more characters, all in CSET 82.
    pub fn new(s: &str) -> Result<Self, EpcError> {
        if s.is_empty() {
            return Err(EpcError::BadText("empty"));
        }
        if !s.chars().all(is_cset82) {
            return Err(EpcError::BadText("a character outside GS1 CSET 82"));
        }
        Ok(Cset82(s.to_owned()))
    }

    /// The decimal numeral of `n` (always valid).
    pub fn from_number(n: u64) -> Self {
        Cset82(n.to_string())
    }

    /// Parses the URI form (TDS §5 `GS3A3Component`).
    pub fn from_uri(s: &str) -> Result<Self, EpcError> {
        let bytes = s.as_bytes();
        let mut out = String::with_capacity(bytes.len());
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            let c = if b == b'%' {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(EpcError::BadText("% not followed by two hex digits"))?;
                i += 3;
                let c = char::from(hex);
                if !is_cset82(c) {
                    return Err(EpcError::BadText("an escape outside GS1 CSET 82"));
                }
                c
            } else {
                i += 1;
                let c = char::from(b);
                if !b.is_ascii() || !is_cset82(c) || needs_escape(c) {
                    return Err(EpcError::BadText(
                        "a character not allowed in an EPC URI (escape it as %HH)",
                    ));
                }
                c
            };
            out.push(c);
        }
        Self::new(&out)
    }

    /// The GS1 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number of characters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a `Cset82` has at least one character.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The URI form, escapes in upper-case hex (TDS Table A-1 "URI Form").
    pub fn to_uri(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for c in self.0.chars() {
            if needs_escape(c) {
                out.push_str(&format!("%{:02X}", u32::from(c)));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The value when the string is a decimal numeral without leading zeros
    /// ("0" itself allowed) that fits a u64: what the 96-bit schemes can
    /// hold (TDS §12.3.1 Table 12-2).
    pub fn as_number(&self) -> Option<u64> {
        let s = self.0.as_str();
        let numeric = s.bytes().all(|b| b.is_ascii_digit());
        let no_leading_zero = s == "0" || !s.starts_with('0');
        if numeric && no_leading_zero {
            s.parse().ok()
        } else {
            None
        }
    }

    /// Reads a 7-bit string of `bits` bits holding at most `max_chars`
    /// characters (TDS §14.4.2 / §14.4.5).
    pub(crate) fn read(
        r: &mut BitReader<'_>,
        bits: u32,
        max_chars: usize,
    ) -> Result<Self, EpcError> {
        let mut s = String::new();
        let mut ended = false;
        let mut left = bits;
        while left >= 7 {
            let v = r.read(7) as u8;
            left -= 7;
            if v == 0 {
                ended = true;
            } else if ended {
                return Err(EpcError::BadText("a character after the terminating zeros"));
            } else if !is_cset82(char::from(v)) {
                return Err(EpcError::BadText("a character outside GS1 CSET 82"));
            } else {
                s.push(char::from(v));
            }
        }
        if left > 0 && r.read(left) != 0 {
            return Err(EpcError::BadText("non-zero padding bits"));
        }
        if s.len() > max_chars {
            return Err(EpcError::BadText("too many characters"));
        }
        Self::new(&s)
    }

    /// Writes the 7-bit string, zero-padded to `bits` bits (the caller has
    /// checked the length against the scheme's maximum).
    pub(crate) fn write(&self, w: &mut BitWriter, bits: u32) {
        let mut used = 0;
        for b in self.0.bytes() {
            w.push(u64::from(b), 7);
            used += 7;
        }
        let mut pad = bits.saturating_sub(used);
        while pad > 0 {
            let n = pad.min(64);
            w.push(0, n);
            pad -= n;
        }
    }
}

impl fmt::Display for Cset82 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_follow_table_a1() {
        // TDS Table A-1 "URI Form": the seven characters that are escaped.
        let s = Cset82::new("\"%&/<>?aZ09!'()*+,-.:;=_").unwrap();
        assert_eq!(s.to_uri(), "%22%25%26%2F%3C%3E%3FaZ09!'()*+,-.:;=_");
        assert_eq!(Cset82::from_uri(&s.to_uri()).unwrap(), s);
        // TDS §E.3: serial 32a/b ↔ 32a%2Fb; escapes in either case, and an
        // escape of a character that needs none, are accepted.
        assert_eq!(Cset82::from_uri("32a%2fb").unwrap().as_str(), "32a/b");
        assert_eq!(Cset82::from_uri("%41").unwrap().as_str(), "A");
        for bad in ["", "a/b", "a b", "a#", "%4", "%GG", "%7F", "%00", "é", "a%"] {
            assert!(Cset82::from_uri(bad).is_err(), "{bad:?}");
        }
        assert!(Cset82::new("a b").is_err());
        assert!(Cset82::new("").is_err());
    }

    #[test]
    fn numbers_without_leading_zeros() {
        let n = |s: &str| Cset82::new(s).unwrap().as_number();
        assert_eq!(n("0"), Some(0));
        assert_eq!(n("6789"), Some(6789));
        assert_eq!(n("06789"), None);
        assert_eq!(n("00"), None);
        assert_eq!(n("12a"), None);
        assert_eq!(n("99999999999999999999"), None);
    }

    #[test]
    fn seven_bit_strings() {
        let s = Cset82::new("32a/b").unwrap();
        let mut w = BitWriter::default();
        s.write(&mut w, 140);
        let bytes: [u8; 18] = w.finish();
        assert_eq!(Cset82::read(&mut BitReader::new(&bytes, 0), 140, 20), Ok(s));
        // All zero: no character. A character after the zeros: refused.
        let zero = [0u8; 18];
        assert!(Cset82::read(&mut BitReader::new(&zero, 0), 140, 20).is_err());
        let mut late = [0u8; 18];
        late[2] = 0x41;
        assert!(Cset82::read(&mut BitReader::new(&late, 0), 140, 20).is_err());
        // 0x7F (DEL) and 0x20 (space) are outside the set.
        let mut w = BitWriter::default();
        w.push(0x20, 7);
        let bytes: [u8; 18] = w.finish();
        assert!(Cset82::read(&mut BitReader::new(&bytes, 0), 140, 20).is_err());
    }
}
