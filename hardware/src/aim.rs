//! AIM symbology identifiers (ISO/IEC 15424): the `]` + code character +
//! modifier a scanner may put before the data to say which symbology it read.
//!
//! Pure: [`split`] separates the identifier from the data. Identifiers this
//! crate understands map to a [`Symbology`]; any other well-formed
//! identifier is stripped and kept as [`Symbology::Other`] so its data is
//! not misread; data without an identifier is [`Symbology::None`].

use std::fmt;

/// The symbology a code was read from, as far as the identifier tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Symbology {
    /// `]E0`: EAN-13, UPC-A or UPC-E (the data length tells which).
    EanUpc,
    /// `]E4`: EAN-8.
    Ean8,
    /// `]C1`: GS1-128 (Code 128 with FNC1 in first position).
    Gs1_128,
    /// `]d2`: GS1 DataMatrix.
    Gs1DataMatrix,
    /// `]Q3`: GS1 QR Code.
    Gs1Qr,
    /// `]e0`: GS1 DataBar.
    Gs1DataBar,
    /// Another identifier, stripped: the code character and modifier.
    Other(u8, u8),
    /// No identifier.
    None,
}

impl Symbology {
    /// Whether the data is a GS1 element string (FNC1 in first position is
    /// implied by the identifier).
    pub fn is_gs1(self) -> bool {
        matches!(
            self,
            Symbology::Gs1_128
                | Symbology::Gs1DataMatrix
                | Symbology::Gs1Qr
                | Symbology::Gs1DataBar
        )
    }

    /// The identifier as sent, e.g. `"]E0"`, or `None`.
    pub fn identifier(self) -> Option<String> {
        let (c, m) = match self {
            Symbology::EanUpc => (b'E', b'0'),
            Symbology::Ean8 => (b'E', b'4'),
            Symbology::Gs1_128 => (b'C', b'1'),
            Symbology::Gs1DataMatrix => (b'd', b'2'),
            Symbology::Gs1Qr => (b'Q', b'3'),
            Symbology::Gs1DataBar => (b'e', b'0'),
            Symbology::Other(c, m) => (c, m),
            Symbology::None => return None,
        };
        Some(format!("]{}{}", c as char, m as char))
    }
}

impl fmt::Display for Symbology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Symbology::EanUpc => f.write_str("ean-upc"),
            Symbology::Ean8 => f.write_str("ean-8"),
            Symbology::Gs1_128 => f.write_str("gs1-128"),
            Symbology::Gs1DataMatrix => f.write_str("gs1-datamatrix"),
            Symbology::Gs1Qr => f.write_str("gs1-qr"),
            Symbology::Gs1DataBar => f.write_str("gs1-databar"),
            Symbology::Other(c, m) => write!(f, "aim-{}{}", *c as char, *m as char),
            Symbology::None => f.write_str("none"),
        }
    }
}

/// Splits a scanned code into its symbology identifier and its data.
///
/// An identifier is `]`, an ASCII letter and an ASCII alphanumeric modifier
/// (ISO/IEC 15424 §4). Anything else is data without an identifier.
pub fn split(code: &str) -> (Symbology, &str) {
    let b = code.as_bytes();
    if b.len() < 3 || b[0] != b']' || !b[1].is_ascii_alphabetic() || !b[2].is_ascii_alphanumeric() {
        return (Symbology::None, code);
    }
    let sym = match (b[1], b[2]) {
        (b'E', b'0') => Symbology::EanUpc,
        (b'E', b'4') => Symbology::Ean8,
        (b'C', b'1') => Symbology::Gs1_128,
        (b'd', b'2') => Symbology::Gs1DataMatrix,
        (b'Q', b'3') => Symbology::Gs1Qr,
        (b'e', b'0') => Symbology::Gs1DataBar,
        (c, m) => Symbology::Other(c, m),
    };
    // The three identifier bytes are ASCII, so index 3 is a char boundary.
    (sym, &code[3..])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors: symbology identifiers from ISO/IEC 15424 as listed in the
    // GS1 General Specifications §5.1.2 (Figure 5.1.2-1: ]E0 EAN/UPC,
    // ]E4 EAN-8, ]C1 GS1-128, ]e0 GS1 DataBar, ]d2 GS1 DataMatrix, ]Q3 GS1 QR).
    #[test]
    fn splits_known_identifiers() {
        let table = [
            ("]E04006381333931", Symbology::EanUpc, "4006381333931"),
            ("]E496385074", Symbology::Ean8, "96385074"),
            (
                "]C10104006381333931",
                Symbology::Gs1_128,
                "0104006381333931",
            ),
            (
                "]d20104006381333931",
                Symbology::Gs1DataMatrix,
                "0104006381333931",
            ),
            ("]Q30104006381333931", Symbology::Gs1Qr, "0104006381333931"),
            (
                "]e00104006381333931",
                Symbology::Gs1DataBar,
                "0104006381333931",
            ),
            // ]A0 is Code 39 (ISO/IEC 15424): stripped, not understood.
            ("]A0HELLO", Symbology::Other(b'A', b'0'), "HELLO"),
            // No identifier.
            ("4006381333931", Symbology::None, "4006381333931"),
            ("]E", Symbology::None, "]E"),
            ("]1X", Symbology::None, "]1X"),
            ("", Symbology::None, ""),
        ];
        for (input, sym, data) in table {
            assert_eq!(split(input), (sym, data), "{input:?}");
        }
    }

    #[test]
    fn identifier_round_trips() {
        for s in ["]E0", "]E4", "]C1", "]d2", "]Q3", "]e0", "]A0"] {
            let (sym, rest) = split(s);
            assert_eq!(rest, "");
            assert_eq!(sym.identifier().as_deref(), Some(s));
        }
        assert_eq!(Symbology::None.identifier(), None);
    }
}
