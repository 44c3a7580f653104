//! Restricted-circulation EAN-13 numbers (RCNs) for variable-measure items:
//! GS1 prefixes 02 and 20–29 (GS1 General Specifications §2.1.14.2 and
//! Figure 2.1.14.2-1), whose digits a store or country lays out as an item
//! code plus an embedded price or weight.
//!
//! Pure. The layout differs by country and store, so it is configuration:
//! a [`RcnLayout`] is written `PREFIXES:PATTERN[:DECIMALS]`, for example
//! `20-29:FFIIIIIPPPPPC:2` (the default) or `28:FFIIIIIVWWWWC:3`, where the
//! 13 pattern letters are
//! - `F`: the two prefix digits, first,
//! - `I`: item code digits,
//! - `P`: price digits or `W`: weight digits (one kind per layout),
//! - `V`: optional price/weight verifier digit over 4 or 5 value digits
//!   (§7.9.2–§7.9.4),
//! - `C`: the EAN-13 check digit, last.
//!
//! The item is identified by the EAN-13 with its value (and verifier) digits
//! zeroed and the check digit recomputed: the GTIN under which a store's
//! catalogue lists the item.

use std::fmt;
use std::str::FromStr;

use tally_sync::Gtin;

/// What the value digits carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A price, in currency units with `decimals` implied decimals.
    Price,
    /// A weight in kilograms with `decimals` implied decimals.
    Weight,
}

/// One layout. See the module docs for the text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcnLayout {
    /// Two-digit prefixes (2 for "02", 20..=29) the layout applies to.
    pub prefixes: Vec<u8>,
    /// The 13-letter pattern.
    pattern: [u8; 13],
    /// Price or weight.
    pub kind: ValueKind,
    /// Implied decimals of the value.
    pub decimals: u8,
}

/// Why a layout string is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad RCN layout {text:?}: {reason}")]
pub struct LayoutError {
    text: String,
    reason: &'static str,
}

/// Why a scanned RCN does not decode under its layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RcnError {
    /// The price/weight verifier digit does not match the value digits.
    #[error("price/weight verifier digit is {found}, expected {expected}")]
    BadVerifier {
        /// The digit carried.
        found: u8,
        /// The digit computed.
        expected: u8,
    },
}

impl RcnLayout {
    /// The default: prefixes 02 and 20–29, five item digits, five price
    /// digits with two decimals, no verifier digit.
    pub fn default_layouts() -> Vec<RcnLayout> {
        // The literal is valid; parsing it cannot fail (checked by a test).
        "02,20-29:FFIIIIIPPPPPC:2"
            .parse()
            .map(|l| vec![l])
            .unwrap_or_default()
    }

    fn positions(&self, letter: u8) -> impl Iterator<Item = usize> + '_ {
        self.pattern
            .iter()
            .enumerate()
            .filter(move |(_, &c)| c == letter)
            .map(|(i, _)| i)
    }

    fn value_letter(&self) -> u8 {
        match self.kind {
            ValueKind::Price => b'P',
            ValueKind::Weight => b'W',
        }
    }

    /// Decodes a 13-digit EAN-13 (check digit already verified) if its prefix
    /// is one of this layout's. `Ok(None)` when the layout does not apply.
    pub fn decode(&self, digits: &[u8; 13]) -> Result<Option<VariableMeasure>, RcnError> {
        let prefix = digits[0] * 10 + digits[1];
        if !self.prefixes.contains(&prefix) {
            return Ok(None);
        }
        let value_digits: Vec<u8> = self
            .positions(self.value_letter())
            .map(|i| digits[i])
            .collect();
        if let Some(v) = self.positions(b'V').next() {
            let expected = verifier_digit(&value_digits).unwrap_or(0);
            if digits[v] != expected {
                return Err(RcnError::BadVerifier {
                    found: digits[v],
                    expected,
                });
            }
        }
        let item_code: String = self
            .positions(b'I')
            .map(|i| char::from(b'0' + digits[i]))
            .collect();
        let mut zeroed = *digits;
        for i in self
            .positions(self.value_letter())
            .chain(self.positions(b'V'))
        {
            zeroed[i] = 0;
        }
        let body = zeroed[..12]
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d));
        let value_text: String = value_digits.iter().map(|&d| char::from(b'0' + d)).collect();
        Ok(Some(VariableMeasure {
            prefix: format!("{prefix:02}"),
            item_code,
            item_gtin: Gtin::from_body(body),
            kind: self.kind,
            value: crate::gs1::decimal(&value_text, usize::from(self.decimals)),
        }))
    }
}

impl FromStr for RcnLayout {
    type Err = LayoutError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| LayoutError {
            text: text.chars().take(64).collect(),
            reason,
        };
        let mut parts = text.split(':');
        let prefixes_text = parts.next().unwrap_or_default();
        let pattern_text = parts
            .next()
            .ok_or_else(|| err("expected PREFIXES:PATTERN[:DECIMALS]"))?;
        let decimals = match parts.next() {
            None => 2,
            Some(d) => d
                .parse::<u8>()
                .ok()
                .filter(|&d| d <= 5)
                .ok_or_else(|| err("decimals must be 0 to 5"))?,
        };
        if parts.next().is_some() {
            return Err(err("too many ':'"));
        }
        let mut prefixes = Vec::new();
        for item in prefixes_text.split(',') {
            let (lo, hi) = item.split_once('-').unwrap_or((item, item));
            let parse = |s: &str| {
                s.trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p == 2 || (20..=29).contains(p))
            };
            let (Some(lo), Some(hi)) = (parse(lo), parse(hi)) else {
                return Err(err("prefixes must be 02 or 20 to 29"));
            };
            if lo > hi {
                return Err(err("prefix range is reversed"));
            }
            prefixes.extend(lo..=hi);
        }
        let pattern: [u8; 13] = pattern_text
            .as_bytes()
            .try_into()
            .map_err(|_| err("pattern must have 13 letters"))?;
        if &pattern[..2] != b"FF" || pattern[2..].contains(&b'F') {
            return Err(err("pattern must start with FF and have no other F"));
        }
        if pattern[12] != b'C' || pattern[..12].contains(&b'C') {
            return Err(err("pattern must end with its only C"));
        }
        if !pattern.iter().all(|c| b"FIPWVC".contains(c)) {
            return Err(err("pattern letters are F, I, P, W, V and C"));
        }
        let count = |l: u8| pattern.iter().filter(|&&c| c == l).count();
        let kind = match (count(b'P'), count(b'W')) {
            (n, 0) if n > 0 => ValueKind::Price,
            (0, n) if n > 0 => ValueKind::Weight,
            _ => {
                return Err(err(
                    "pattern needs P (price) or W (weight) digits, not both",
                ))
            }
        };
        let value_len = count(b'P') + count(b'W');
        match count(b'V') {
            0 => {}
            1 if matches!(value_len, 4 | 5) => {}
            _ => return Err(err("a verifier digit V needs exactly 4 or 5 value digits")),
        }
        if count(b'I') == 0 {
            return Err(err("pattern needs item digits I"));
        }
        Ok(RcnLayout {
            prefixes,
            pattern,
            kind,
            decimals,
        })
    }
}

impl fmt::Display for RcnLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Consecutive prefixes are written as ranges: 02,20-29.
        let mut prefixes: Vec<String> = Vec::new();
        let mut i = 0;
        while i < self.prefixes.len() {
            let lo = self.prefixes[i];
            let mut hi = lo;
            while self.prefixes.get(i + 1) == Some(&(hi + 1)) {
                hi += 1;
                i += 1;
            }
            prefixes.push(if hi > lo {
                format!("{lo:02}-{hi:02}")
            } else {
                format!("{lo:02}")
            });
            i += 1;
        }
        let pattern: String = self.pattern.iter().map(|&c| char::from(c)).collect();
        write!(f, "{}:{}:{}", prefixes.join(","), pattern, self.decimals)
    }
}

/// A decoded variable-measure item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableMeasure {
    /// The two-digit prefix, e.g. `"21"`.
    pub prefix: String,
    /// The item code digits.
    pub item_code: String,
    /// The EAN-13 with value digits zeroed, as GTIN-14: the catalogue key.
    pub item_gtin: Option<Gtin>,
    /// Price or weight.
    pub kind: ValueKind,
    /// The value as decimal text, e.g. `"12.34"`.
    pub value: String,
}

/// Decodes `digits` with the first layout whose prefixes match.
pub fn decode(
    layouts: &[RcnLayout],
    digits: &[u8; 13],
) -> Result<Option<VariableMeasure>, RcnError> {
    for layout in layouts {
        if let Some(vm) = layout.decode(digits)? {
            return Ok(Some(vm));
        }
    }
    Ok(None)
}

/// Whether a 13-digit number has an RCN prefix (02 or 20–29).
pub fn is_rcn(digits: &[u8; 13]) -> bool {
    digits[0] == 2 || (digits[0] == 0 && digits[1] == 2)
}

// Weighting factors of GS1 General Specifications §7.9.2: the product of a
// digit and the factor, reduced to one digit as the figure prescribes.
fn w2_minus(d: u8) -> u8 {
    let p = d * 2;
    (p - p / 10) % 10
}
fn w3(d: u8) -> u8 {
    d * 3 % 10
}
fn w5_plus(d: u8) -> u8 {
    let p = d * 5;
    (p + p / 10) % 10
}
fn w5_minus(d: u8) -> u8 {
    let p = d * 5;
    (p - p / 10) % 10
}

/// The price/weight verifier digit of 4 or 5 value digits (GS1 General
/// Specifications §7.9.3 four-digit, §7.9.4 five-digit); `None` for other
/// lengths.
pub fn verifier_digit(value: &[u8]) -> Option<u8> {
    match *value {
        [a, b, c, d] => {
            let sum = u32::from(w2_minus(a))
                + u32::from(w2_minus(b))
                + u32::from(w3(c))
                + u32::from(w5_minus(d));
            Some((sum * 3 % 10) as u8)
        }
        [a, b, c, d, e] => {
            let sum = u32::from(w5_plus(a))
                + u32::from(w2_minus(b))
                + u32::from(w5_minus(c))
                + u32::from(w5_plus(d))
                + u32::from(w2_minus(e));
            let target = ((10 - sum % 10) % 10) as u8;
            (0..10).find(|&v| w5_minus(v) == target)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> [u8; 13] {
        let v: Vec<u8> = s.bytes().map(|b| b - b'0').collect();
        v.try_into().unwrap()
    }

    // GS1 General Specifications §7.9.3 worked example: price 2875 → 9.
    // §7.9.4 worked example: price 14685 → 6.
    #[test]
    fn verifier_digits_match_genspecs_examples() {
        let table: &[(&[u8], u8)] = &[(&[2, 8, 7, 5], 9), (&[1, 4, 6, 8, 5], 6)];
        for (value, want) in table {
            assert_eq!(verifier_digit(value), Some(*want), "{value:?}");
        }
        assert_eq!(verifier_digit(&[1, 2, 3]), None);
    }

    #[test]
    fn weighting_factor_tables() {
        // GS1 GenSpecs §7.9.2 figure: results of 2-, 3, 5+, 5- for digits 0..9.
        let w2m: Vec<u8> = (0..10).map(w2_minus).collect();
        let w3v: Vec<u8> = (0..10).map(w3).collect();
        let w5p: Vec<u8> = (0..10).map(w5_plus).collect();
        let w5m: Vec<u8> = (0..10).map(w5_minus).collect();
        assert_eq!(w2m, [0, 2, 4, 6, 8, 9, 1, 3, 5, 7]);
        assert_eq!(w3v, [0, 3, 6, 9, 2, 5, 8, 1, 4, 7]);
        assert_eq!(w5p, [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]);
        assert_eq!(w5m, [0, 5, 9, 4, 8, 3, 7, 2, 6, 1]);
    }

    // RCN vectors built on the structures of GS1 GenSpecs Figure 2.1.14.2-2
    // (item reference + price; item reference + verifier + price/measure),
    // EAN-13 check digits computed per §7.9.1.
    #[test]
    fn decodes_layouts() {
        let default = RcnLayout::default_layouts();
        assert_eq!(default.len(), 1);
        // 21 12345 01234 C: item 12345, price 12.34.
        let vm = decode(&default, &digits("2112345012346")).unwrap().unwrap();
        assert_eq!(vm.prefix, "21");
        assert_eq!(vm.item_code, "12345");
        assert_eq!(vm.value, "12.34");
        assert_eq!(vm.kind, ValueKind::Price);
        assert_eq!(vm.item_gtin.unwrap().to_string(), "02112345000008");
        // Weight with a verifier: 28 12345 V 2875 C, V = 9 (§7.9.3 example).
        let weight: RcnLayout = "28:FFIIIIIVWWWWC:3".parse().unwrap();
        let vm = weight.decode(&digits("2812345928752")).unwrap().unwrap();
        assert_eq!(vm.value, "2.875");
        assert_eq!(vm.kind, ValueKind::Weight);
        assert_eq!(vm.item_gtin.unwrap().to_string(), "02812345000007");
        // Wrong verifier digit.
        assert_eq!(
            weight.decode(&digits("2812345828755")),
            Err(RcnError::BadVerifier {
                found: 8,
                expected: 9
            })
        );
        // Not this layout's prefix.
        assert_eq!(weight.decode(&digits("2112345012346")), Ok(None));
    }

    #[test]
    fn layout_text_round_trips_and_rejects() {
        for ok in [
            "02,20-29:FFIIIIIPPPPPC:2",
            "28:FFIIIIIVWWWWC:3",
            "23:FFIIIIPPPPPPC:0",
        ] {
            let l: RcnLayout = ok.parse().unwrap();
            assert_eq!(l.to_string().parse::<RcnLayout>().unwrap(), l);
        }
        for bad in [
            "",
            "20",
            "19:FFIIIIIPPPPPC",
            "29-20:FFIIIIIPPPPPC",
            "20:FIIIIIIPPPPPC",
            "20:FFIIIIIPPPPP",
            "20:FFIIIIIPPPPCC",
            "20:FFIIIIIPPWWPC",
            "20:FFIIIIIXPPPPC",
            "20:FFIIVPPPPPPPC",
            "20:FFPPPPPPPPPPC",
            "20:FFIIIIIPPPPPC:9",
            "20:FFIIIIIPPPPPC:2:1",
        ] {
            assert!(bad.parse::<RcnLayout>().is_err(), "{bad:?}");
        }
    }
}
