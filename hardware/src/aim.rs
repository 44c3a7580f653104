//! AIM symbology identifiers (ISO/IEC 15424): the `]` + code character +
//! modifier a scanner may put before the data to say which symbology it read.
//!
//! Pure: [`split`] separates the identifier from the data. Identifiers this
//! crate understands map to a [`Symbology`]; any other well-formed
//! identifier is stripped and kept as [`Symbology::Other`] so its data is
//! not misread; data without an identifier is [`Symbology::None`].

use std::fmt;

/// A symbology named by an AIM identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Symbology {
    /// `]E0`: EAN-13, UPC-A or UPC-E (the data length tells which).
    EanUpc,
    /// `]E4`: EAN-8.
    Ean8,
    /// `]C1`: GS1-128 (Code 128 with FNC1 in first position).
    Gs1_128,
    /// `]d2`: GS1 DataMatrix (FNC1 in first position).
    Gs1DataMatrix,
    /// `]Q3`: GS1 QR Code (FNC1 in first position).
    Gs1Qr,
    /// `]e0`: GS1 DataBar.
    Gs1DataBar,
    /// `]J1`: GS1 DotCode (FNC1 in first position).
    Gs1DotCode,
    /// `]Q1`: QR Code without FNC1, e.g. a GS1 Digital Link URI.
    QrCode,
    /// `]d1`: Data Matrix ECC 200 without FNC1, e.g. a Digital Link URI.
    DataMatrix,
    /// `]J0`: DotCode without FNC1, e.g. a Digital Link URI.
    DotCode,
    /// Another identifier, stripped: the code character and modifier.
    Other(u8, u8),
    /// No identifier.
    None,
}

/// The identifiers understood (ISO/IEC 15424 as listed in GS1 GenSpecs
/// §5.1.2 Figure 5.1.2-1 and §5.7 for 2D symbols), with their JSON names.
const KNOWN: &[(Symbology, [u8; 2], &str)] = &[
    (Symbology::EanUpc, *b"E0", "ean-upc"),
    (Symbology::Ean8, *b"E4", "ean-8"),
    (Symbology::Gs1_128, *b"C1", "gs1-128"),
    (Symbology::Gs1DataMatrix, *b"d2", "gs1-datamatrix"),
    (Symbology::Gs1Qr, *b"Q3", "gs1-qr"),
    (Symbology::Gs1DataBar, *b"e0", "gs1-databar"),
    (Symbology::Gs1DotCode, *b"J1", "gs1-dotcode"),
    (Symbology::QrCode, *b"Q1", "qr"),
    (Symbology::DataMatrix, *b"d1", "datamatrix"),
    (Symbology::DotCode, *b"J0", "dotcode"),
];

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
                | Symbology::Gs1DotCode
        )
    }

    /// Whether this is a 2D symbol without FNC1, which carries plain text,
    /// such as a GS1 Digital Link URI.
    pub fn is_plain_2d(self) -> bool {
        matches!(
            self,
            Symbology::QrCode | Symbology::DataMatrix | Symbology::DotCode
        )
    }

    /// The identifier as sent, e.g. `"]E0"`, or `None`.
    pub fn identifier(self) -> Option<String> {
        let [c, m] = match self {
            Symbology::Other(c, m) => [c, m],
            Symbology::None => return None,
            known => KNOWN.iter().find(|k| k.0 == known)?.1,
        };
        Some(format!("]{}{}", c as char, m as char))
    }
}

impl fmt::Display for Symbology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Symbology::Other(c, m) => write!(f, "aim-{}{}", *c as char, *m as char),
            Symbology::None => f.write_str("none"),
            known => {
                let name = KNOWN.iter().find(|k| k.0 == *known).map_or("?", |k| k.2);
                f.write_str(name)
            }
        }
    }
}

/// Splits an AIM identifier off the front of `code`: `]` + a letter + a
/// modifier character. Returns [`Symbology::None`] and the whole code when
/// there is none.
pub fn split(code: &str) -> (Symbology, &str) {
    let b = code.as_bytes();
    if b.len() < 3 || b[0] != b']' || !b[1].is_ascii_alphabetic() || !b[2].is_ascii_alphanumeric() {
        return (Symbology::None, code);
    }
    let sym = KNOWN
        .iter()
        .find(|k| k.1 == [b[1], b[2]])
        .map_or(Symbology::Other(b[1], b[2]), |k| k.0);
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
            // 2D symbols: ]J1 GS1 DotCode; ]Q1, ]d1, ]J0 without FNC1
            // (GenSpecs §5.7: a GS1 Digital Link URI is carried so).
            (
                "]J10104006381333931",
                Symbology::Gs1DotCode,
                "0104006381333931",
            ),
            (
                "]Q1https://id.gs1.org/01/09506000134352",
                Symbology::QrCode,
                "https://id.gs1.org/01/09506000134352",
            ),
            (
                "]d1https://x.example/01/09506000134352",
                Symbology::DataMatrix,
                "https://x.example/01/09506000134352",
            ),
            ("]J0HELLO", Symbology::DotCode, "HELLO"),
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
        for s in [
            "]E0", "]E4", "]C1", "]d2", "]Q3", "]e0", "]J1", "]Q1", "]d1", "]J0", "]A0",
        ] {
            let (sym, rest) = split(s);
            assert_eq!(rest, "");
            assert_eq!(sym.identifier().as_deref(), Some(s));
        }
        assert_eq!(Symbology::None.identifier(), None);
    }
}
