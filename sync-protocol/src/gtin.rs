//! GTIN: the Global Trade Item Number that keys every item in Tally.
//!
//! A [`Gtin`] only ever holds a valid GTIN-14 (14 digits, correct GS1 check
//! digit). GTIN-8, GTIN-12 (UPC-A) and GTIN-13 (EAN-13) are accepted and
//! normalised to 14 digits by left-padding with zeros, as the GS1 General
//! Specifications (§3.3.2, "GTIN-14 data structure") prescribe, so the same
//! product scanned as UPC-A or as EAN-13 is the same item.
//!
//! On the wire, human-readable formats (JSON) carry the 14-digit string and
//! binary formats carry a `u64`; both are validated on the way in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a GTIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GtinError {
    /// The string has a character that is not an ASCII digit.
    #[error("GTIN must contain only digits, found {0:?}")]
    NotDigits(String),
    /// The string is not 8, 12, 13 or 14 digits long.
    #[error("GTIN must have 8, 12, 13 or 14 digits, found {0}")]
    BadLength(usize),
    /// The last digit is not the GS1 check digit of the others.
    #[error("GTIN check digit is {found}, expected {expected}")]
    BadCheckDigit {
        /// The check digit the input carried.
        found: u8,
        /// The check digit computed from the other digits.
        expected: u8,
    },
}

/// A valid GTIN, normalised to GTIN-14.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gtin(u64);

/// The GS1 modulo-10 check digit of `digits` (each 0..=9), which are all the
/// digits of a key except the check digit itself.
///
/// Weights 3 and 1 alternate from the rightmost digit leftwards (GS1 General
/// Specifications §7.9.1). Works for every GS1 key length (GTIN, SSCC, GRAI…).
pub fn gs1_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| u32::from(d) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl Gtin {
    /// The smallest GTIN, `00000000000000`.
    pub const MIN: Gtin = Gtin(0);
    /// The largest GTIN, `99999999999997`.
    pub const MAX: Gtin = Gtin(99_999_999_999_997);

    /// Parses a GTIN-8, -12, -13 or -14 and normalises it to GTIN-14.
    pub fn parse(s: &str) -> Result<Self, GtinError> {
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(GtinError::NotDigits(s.chars().take(32).collect()));
        }
        if !matches!(s.len(), 8 | 12 | 13 | 14) {
            return Err(GtinError::BadLength(s.len()));
        }
        let digits: Vec<u8> = s.bytes().map(|b| b - b'0').collect();
        let (body, check) = digits.split_at(digits.len() - 1);
        let expected = gs1_check_digit(body);
        if check[0] != expected {
            return Err(GtinError::BadCheckDigit {
                found: check[0],
                expected,
            });
        }
        Ok(Gtin(
            digits.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d)),
        ))
    }

    /// Builds a GTIN-14 from its first 13 digits, computing the check digit.
    /// Returns `None` if `body` is not below 10^13.
    pub fn from_body(body: u64) -> Option<Self> {
        if body >= 10_000_000_000_000 {
            return None;
        }
        let digits = digits_of(body, 13);
        Some(Gtin(body * 10 + u64::from(gs1_check_digit(&digits))))
    }

    /// Wraps a 14-digit number, verifying its check digit.
    pub fn from_u64(value: u64) -> Result<Self, GtinError> {
        if value >= 100_000_000_000_000 {
            return Err(GtinError::BadLength(value.to_string().len()));
        }
        Self::parse(&format!("{value:014}"))
    }

    /// The GTIN as a number (at most 14 digits).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The check digit (last digit).
    pub fn check_digit(self) -> u8 {
        (self.0 % 10) as u8
    }

    /// The indicator digit (first digit of the GTIN-14).
    pub fn indicator(self) -> u8 {
        (self.0 / 10_000_000_000_000) as u8
    }

    /// Whether the GTIN names a variable-measure item, whose price may
    /// come from its label: a variable-measure trade item (GTIN-14 with
    /// indicator digit 9) or a restricted-circulation number for
    /// variable-measure items (GS1 prefixes 02 and 20–29, GS1 General
    /// Specifications §2.1.14.2; UPC-A number system 2).
    pub fn is_variable_measure(self) -> bool {
        let indicator = self.indicator();
        // The GTIN-13 prefix: digits 2 and 3 of the GTIN-14.
        let prefix = (self.0 / 100_000_000_000) % 100;
        indicator == 9 || (indicator == 0 && (prefix == 2 || (20..=29).contains(&prefix)))
    }
}

fn digits_of(mut value: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for slot in out.iter_mut().rev() {
        *slot = (value % 10) as u8;
        value /= 10;
    }
    out
}

impl fmt::Display for Gtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:014}", self.0)
    }
}

impl fmt::Debug for Gtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gtin({self})")
    }
}

impl FromStr for Gtin {
    type Err = GtinError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Gtin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Gtin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            Gtin::parse(&s).map_err(serde::de::Error::custom)
        } else {
            let v = u64::deserialize(deserializer)?;
            Gtin::from_u64(v).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors: GS1 General Specifications §7.9.1 worked example
    // (GTIN-13 629104150021 -> check digit 3) and well-known retail codes.
    #[test]
    fn variable_measure_items_are_told_by_their_number() {
        for (gtin, variable) in [
            ("2112345012346", true),   // RCN, prefix 21 (a price label)
            ("0212345678909", true),   // RCN, prefix 02
            ("212345678909", true),    // UPC-A number system 2
            ("94006381333934", true),  // GTIN-14, indicator 9
            ("4006381333931", false),  // EAN-13
            ("036000291452", false),   // UPC-A
            ("10614141000415", false), // GTIN-14, indicator 1
            ("96385074", false),       // GTIN-8
        ] {
            let g = Gtin::parse(gtin).unwrap();
            assert_eq!(g.is_variable_measure(), variable, "{gtin}");
        }
    }

    #[test]
    fn accepts_valid_lengths_and_normalises() {
        let table = [
            ("6291041500213", "06291041500213"), // GS1 GenSpecs 7.9.1 example
            ("96385074", "00000096385074"),      // GTIN-8 example, GS1 GenSpecs fig. 3.3.2-1
            ("036000291452", "00036000291452"),  // UPC-A, Wikipedia "Universal Product Code"
            ("4006381333931", "04006381333931"), // EAN-13, Wikipedia "International Article Number"
            ("10614141000415", "10614141000415"), // GTIN-14, GS1 US case example
        ];
        for (input, want) in table {
            let g = Gtin::parse(input).unwrap();
            assert_eq!(g.to_string(), want, "{input}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            Gtin::parse("6291041500214"),
            Err(GtinError::BadCheckDigit {
                found: 4,
                expected: 3
            })
        ));
        assert!(matches!(Gtin::parse("12345"), Err(GtinError::BadLength(5))));
        assert!(matches!(
            Gtin::parse("62910415002a3"),
            Err(GtinError::NotDigits(_))
        ));
        assert!(matches!(Gtin::parse(""), Err(GtinError::BadLength(0))));
    }

    #[test]
    fn serde_round_trips_both_forms() {
        let g = Gtin::parse("4006381333931").unwrap();
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(json, "\"04006381333931\"");
        assert_eq!(serde_json::from_str::<Gtin>(&json).unwrap(), g);
        let bin = postcard::to_stdvec(&g).unwrap();
        assert_eq!(postcard::from_bytes::<Gtin>(&bin).unwrap(), g);
        // A forged binary GTIN with a bad check digit is refused.
        let bad = postcard::to_stdvec(&4_006_381_333_932u64).unwrap();
        assert!(postcard::from_bytes::<Gtin>(&bad).is_err());
        assert!(serde_json::from_str::<Gtin>("\"4006381333932\"").is_err());
    }

    #[test]
    fn from_body_computes_check_digit() {
        let g = Gtin::from_body(629_104_150_021).unwrap();
        assert_eq!(g.to_string(), "06291041500213");
        assert!(Gtin::from_body(10_000_000_000_000).is_none());
        assert_eq!(Gtin::from_body(0), Some(Gtin::MIN));
        assert_eq!(Gtin::from_body(9_999_999_999_999), Some(Gtin::MAX));
    }
}
