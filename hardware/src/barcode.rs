//! Decoding one scanned code: AIM identifier, then EAN/UPC GTINs, GS1
//! element strings or plain text, then restricted-circulation numbers.
//!
//! Pure: a string in, a [`Barcode`] or a [`BarcodeError`] out. The rules:
//! - `]E0` carries EAN-13 (13 digits), UPC-A (12) or UPC-E (8, expanded to
//!   UPC-A per GS1 General Specifications §2.1.3.2); `]E4` carries EAN-8.
//!   Check digits are verified (§7.9.1).
//! - `]C1`, `]d2`, `]Q3`, `]e0` carry GS1 element strings ([`crate::gs1`]).
//! - Without an identifier: `(`… is the human-readable GS1 form; 8, 12, 13
//!   or 14 digits are a GTIN (a wrong check digit is an error); 16 or more
//!   digits, or text containing GS, is a GS1 element string; anything else
//!   is plain text with no GTIN (a loyalty card, a coupon, a URL…).
//! - An EAN-13/UPC-A with prefix 02 or 20–29 is decoded with the first
//!   matching [`RcnLayout`]; its `gtin` is then the item's catalogue GTIN
//!   (value digits zeroed) and the embedded price or weight is reported.

use tally_sync::{Gtin, GtinError};

use crate::aim::{self, Symbology};
use crate::gs1::{self, DigitalLink, DigitalLinkError, ElementString, Gs1Error};
use crate::rcn::{self, RcnError, RcnLayout, VariableMeasure};

/// What kind of code the data turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// EAN-13.
    Ean13,
    /// UPC-A.
    UpcA,
    /// UPC-E (expanded to UPC-A).
    UpcE,
    /// EAN-8.
    Ean8,
    /// A bare GTIN-14 (e.g. ITF-14 without identifier).
    Gtin14,
    /// A GS1 element string.
    Gs1,
    /// A GS1 Digital Link URI (in a QR Code, Data Matrix or DotCode).
    DigitalLink,
    /// Anything else.
    Text,
}

/// A decoded scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Barcode {
    /// The AIM identifier's symbology (or [`Symbology::None`]).
    pub symbology: Symbology,
    /// What the data is.
    pub kind: CodeKind,
    /// The data after the identifier.
    pub data: String,
    /// The item's GTIN: the scanned one, or for a restricted-circulation
    /// number with a layout, the catalogue GTIN of the item.
    pub gtin: Option<Gtin>,
    /// GS1 elements. EAN/UPC codes report their GTIN as AI (01).
    pub elements: ElementString,
    /// Embedded price or weight of a variable-measure item.
    pub variable_measure: Option<VariableMeasure>,
    /// The URI's parts when the code is a GS1 Digital Link (its AIs are in
    /// `elements`).
    pub digital_link: Option<Box<DigitalLink>>,
}

impl Barcode {
    /// The symbology name used in JSON: `ean-13`, `upc-a`, `upc-e`, `ean-8`,
    /// `gs1-128`, `gs1-datamatrix`, `gs1-qr`, `gs1-databar`, `gs1-dotcode`,
    /// `qr`, `datamatrix`, `dotcode` (2D without FNC1: Digital Link URIs or
    /// text), `gtin-14`, `gs1` (element string without identifier),
    /// `digital-link` (a URI without identifier), `aim-Xm` (another AIM
    /// identifier) or `unknown`.
    pub fn symbology_name(&self) -> String {
        match (self.symbology, self.kind) {
            (_, CodeKind::Ean13) => "ean-13".into(),
            (_, CodeKind::UpcA) => "upc-a".into(),
            (_, CodeKind::UpcE) => "upc-e".into(),
            (_, CodeKind::Ean8) => "ean-8".into(),
            (Symbology::None, CodeKind::Gtin14) => "gtin-14".into(),
            (Symbology::None, CodeKind::Gs1) => "gs1".into(),
            (Symbology::None, CodeKind::DigitalLink) => "digital-link".into(),
            (Symbology::None, _) => "unknown".into(),
            (s, _) => s.to_string(),
        }
    }
}

/// Why a scan could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarcodeError {
    /// Nothing after the identifier.
    #[error("empty code")]
    Empty,
    /// An EAN/UPC symbology with data that is not digits of a valid length.
    #[error("{symbology} data must be {expected}, found {found:?}")]
    BadEanUpc {
        /// The identifier.
        symbology: &'static str,
        /// What was expected.
        expected: &'static str,
        /// The data (truncated).
        found: String,
    },
    /// A GTIN with a bad check digit or length.
    #[error("GTIN: {0}")]
    Gtin(#[from] GtinError),
    /// A bad GS1 element string.
    #[error("GS1: {0}")]
    Gs1(#[from] Gs1Error),
    /// A GS1 Digital Link URI with bad content.
    #[error("GS1 Digital Link: {0}")]
    DigitalLink(#[from] DigitalLinkError),
    /// A restricted-circulation number that does not decode.
    #[error("variable-measure EAN-13: {0}")]
    Rcn(#[from] RcnError),
}

/// Decodes one scanned code (as the framer returned it) with the given
/// restricted-circulation layouts.
pub fn decode(raw: &str, layouts: &[RcnLayout]) -> Result<Barcode, BarcodeError> {
    let (symbology, data) = aim::split(raw);
    if data.is_empty() {
        return Err(BarcodeError::Empty);
    }
    let digits_only = data.bytes().all(|b| b.is_ascii_digit());
    let bad = |symbology, expected| BarcodeError::BadEanUpc {
        symbology,
        expected,
        found: data.chars().take(32).collect(),
    };
    let (kind, gtin) = match symbology {
        Symbology::EanUpc => {
            if !digits_only {
                return Err(bad("]E0", "12 or 13 digits (or 8 for UPC-E)"));
            }
            match data.len() {
                13 => (CodeKind::Ean13, Gtin::parse(data)?),
                12 => (CodeKind::UpcA, Gtin::parse(data)?),
                8 => (CodeKind::UpcE, upc_e_to_gtin(data)?),
                _ => return Err(bad("]E0", "12 or 13 digits (or 8 for UPC-E)")),
            }
        }
        Symbology::Ean8 => {
            if !digits_only || data.len() != 8 {
                return Err(bad("]E4", "8 digits"));
            }
            (CodeKind::Ean8, Gtin::parse(data)?)
        }
        s if s.is_gs1() => return gs1_barcode(symbology, data),
        s if (s.is_plain_2d() || s == Symbology::None) && gs1::is_uri(data) => {
            return digital_link_barcode(symbology, data)
        }
        Symbology::None if data.starts_with('(') => {
            let elements = gs1::parse_human(data)?;
            return Ok(with_elements(symbology, data, elements));
        }
        Symbology::None if digits_only && matches!(data.len(), 8 | 12 | 13 | 14) => {
            let kind = match data.len() {
                8 => CodeKind::Ean8,
                12 => CodeKind::UpcA,
                13 => CodeKind::Ean13,
                _ => CodeKind::Gtin14,
            };
            (kind, Gtin::parse(data)?)
        }
        Symbology::None if (digits_only && data.len() >= 16) || data.contains(gs1::GS) => {
            return gs1_barcode(symbology, data)
        }
        _ => return Ok(text(symbology, data)),
    };
    let elements = gs1::parse(&format!("01{gtin}"))?;
    let mut barcode = Barcode {
        symbology,
        kind,
        data: data.to_owned(),
        gtin: Some(gtin),
        elements,
        variable_measure: None,
        digital_link: None,
    };
    if matches!(kind, CodeKind::Ean13 | CodeKind::UpcA) && gtin.indicator() == 0 {
        let digits13 = last_13_digits(gtin);
        if rcn::is_rcn(&digits13) {
            if let Some(vm) = rcn::decode(layouts, &digits13)? {
                barcode.gtin = vm.item_gtin;
                barcode.variable_measure = Some(vm);
            }
        }
    }
    Ok(barcode)
}

fn gs1_barcode(symbology: Symbology, data: &str) -> Result<Barcode, BarcodeError> {
    let elements = if data.starts_with('(') {
        gs1::parse_human(data)?
    } else {
        gs1::parse(data)?
    };
    Ok(with_elements(symbology, data, elements))
}

/// A URI in a 2D symbol: a Digital Link when its path holds a GS1 key
/// (then its content must be valid), else just text (a web address that is
/// not an item).
fn digital_link_barcode(symbology: Symbology, data: &str) -> Result<Barcode, BarcodeError> {
    match gs1::parse_digital_link(data) {
        Ok(link) => {
            let mut barcode = with_elements(symbology, data, link.elements.clone());
            barcode.kind = CodeKind::DigitalLink;
            barcode.digital_link = Some(Box::new(link));
            Ok(barcode)
        }
        Err(DigitalLinkError::NoPrimaryKey | DigitalLinkError::NotHttp) => {
            Ok(text(symbology, data))
        }
        Err(e) => Err(e.into()),
    }
}

/// A code that is no item: no GTIN, no AIs (a loyalty card, a web page).
fn text(symbology: Symbology, data: &str) -> Barcode {
    Barcode {
        symbology,
        kind: CodeKind::Text,
        data: data.to_owned(),
        gtin: None,
        elements: ElementString::default(),
        variable_measure: None,
        digital_link: None,
    }
}

fn with_elements(symbology: Symbology, data: &str, elements: ElementString) -> Barcode {
    Barcode {
        symbology,
        kind: CodeKind::Gs1,
        data: data.to_owned(),
        gtin: elements.gtin(),
        elements,
        variable_measure: None,
        digital_link: None,
    }
}

fn last_13_digits(gtin: Gtin) -> [u8; 13] {
    let mut out = [0u8; 13];
    let mut v = gtin.as_u64();
    for slot in out.iter_mut().rev() {
        *slot = (v % 10) as u8;
        v /= 10;
    }
    out
}

/// Expands an 8-digit UPC-E (number system 0 or 1, six data digits, check
/// digit) to its UPC-A GTIN (GS1 General Specifications §2.1.3.2, Figure
/// 2.1.3.2-1 "UPC-E zero-suppression"), verifying the check digit.
pub fn upc_e_to_gtin(data: &str) -> Result<Gtin, BarcodeError> {
    let b = data.as_bytes();
    let bad = || BarcodeError::BadEanUpc {
        symbology: "]E0",
        expected: "UPC-E: number system 0 or 1, 6 digits, check digit",
        found: data.chars().take(32).collect(),
    };
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) || !matches!(b[0], b'0' | b'1') {
        return Err(bad());
    }
    let d = |i: usize| char::from(b[i]);
    let (ns, x) = (d(0), [d(1), d(2), d(3), d(4), d(5), d(6)]);
    let body: String = match x[5] {
        '0'..='2' => format!("{ns}{}{}{}0000{}{}{}", x[0], x[1], x[5], x[2], x[3], x[4]),
        '3' => format!("{ns}{}{}{}00000{}{}", x[0], x[1], x[2], x[3], x[4]),
        '4' => format!("{ns}{}{}{}{}00000{}", x[0], x[1], x[2], x[3], x[4]),
        _ => format!("{ns}{}{}{}{}{}0000{}", x[0], x[1], x[2], x[3], x[4], x[5]),
    };
    Ok(Gtin::parse(&format!("{body}{}", d(7)))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_decode(raw: &str) -> Result<Barcode, BarcodeError> {
        decode(raw, &RcnLayout::default_layouts())
    }

    // Table: raw scan → (symbology name, GTIN, AIs). Sources: EAN-13
    // 4006381333931 and EAN-8 96385074 (GS1 GenSpecs Figure 3.3.2-1 GTIN-8
    // example), UPC-A 036000291452 (GS1 US / ISO/IEC 15420 example), UPC-E
    // 04252614 → UPC-A 042100005264 (GenSpecs §2.1.3.2 zero-suppression
    // rule 4: last digit 5–9), GS1-128 / DataMatrix / QR / DataBar element
    // strings per GenSpecs §5.4 with AIs from §3.
    #[test]
    fn decodes_scans() {
        type Row<'a> = (&'a str, &'a str, Option<&'a str>, &'a [(&'a str, &'a str)]);
        let table: &[Row] = &[
            (
                "]E04006381333931",
                "ean-13",
                Some("04006381333931"),
                &[("01", "04006381333931")],
            ),
            (
                "]E0036000291452",
                "upc-a",
                Some("00036000291452"),
                &[("01", "00036000291452")],
            ),
            (
                "]E004252614",
                "upc-e",
                Some("00042100005264"),
                &[("01", "00042100005264")],
            ),
            (
                "]E496385074",
                "ean-8",
                Some("00000096385074"),
                &[("01", "00000096385074")],
            ),
            (
                "]C1010400638133393117251231\u{1d}10LOT1",
                "gs1-128",
                Some("04006381333931"),
                &[("01", "04006381333931"), ("17", "251231"), ("10", "LOT1")],
            ),
            (
                "]d20104006381333931",
                "gs1-datamatrix",
                Some("04006381333931"),
                &[("01", "04006381333931")],
            ),
            (
                "]Q30104006381333931",
                "gs1-qr",
                Some("04006381333931"),
                &[("01", "04006381333931")],
            ),
            (
                "]e00104006381333931",
                "gs1-databar",
                Some("04006381333931"),
                &[("01", "04006381333931")],
            ),
            // SSCC only: a GS1 code without GTIN.
            (
                "]C100106141412345678908",
                "gs1-128",
                None,
                &[("00", "106141412345678908")],
            ),
            // No identifier.
            (
                "4006381333931",
                "ean-13",
                Some("04006381333931"),
                &[("01", "04006381333931")],
            ),
            (
                "10614141000415",
                "gtin-14",
                Some("10614141000415"),
                &[("01", "10614141000415")],
            ),
            (
                "0104006381333931",
                "gs1",
                Some("04006381333931"),
                &[("01", "04006381333931")],
            ),
            (
                "(01)04006381333931(21)ABC",
                "gs1",
                Some("04006381333931"),
                &[("01", "04006381333931"), ("21", "ABC")],
            ),
            ("LOYALTY-42", "unknown", None, &[]),
            ("]A0CODE39", "aim-A0", None, &[]),
        ];
        for (raw, sym, gtin, ais) in table {
            let b = default_decode(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(b.symbology_name(), *sym, "{raw:?}");
            assert_eq!(b.gtin.map(|g| g.to_string()).as_deref(), *gtin, "{raw:?}");
            let got: Vec<(&str, &str)> = b
                .elements
                .elements
                .iter()
                .map(|e| (e.ai.as_str(), e.value.as_str()))
                .collect();
            assert_eq!(got, *ais, "{raw:?}");
        }
    }

    #[test]
    fn rejects_bad_scans() {
        let table = [
            "]E04006381333932", // bad EAN-13 check digit
            "]E0400638133393",  // 11 digits
            "]E0ABCDEFGHIJKLM", // not digits
            "]E4963850",        // EAN-8 too short
            "]E024252614",      // UPC-E number system 2
            "]C10104006381333932",
            "]C1",
            "4006381333932",    // bare EAN-13, bad check digit
            "0104006381333932", // bare GS1, bad check digit
            "(01)123",
            "",
        ];
        for raw in table {
            assert!(default_decode(raw).is_err(), "{raw:?} decoded");
        }
    }

    #[test]
    fn restricted_circulation_uses_layout() {
        // 21 12345 01234 6: default layout, price 12.34 (vectors in rcn.rs).
        let b = default_decode("]E02112345012346").unwrap();
        assert_eq!(b.gtin.unwrap().to_string(), "02112345000008");
        let vm = b.variable_measure.unwrap();
        assert_eq!(
            (vm.item_code.as_str(), vm.value.as_str()),
            ("12345", "12.34")
        );
        assert_eq!(b.elements.get("01"), Some("02112345012346"));
        // UPC-A number system 2 is prefix 02 as EAN-13.
        let b = default_decode("212345012345").unwrap();
        assert_eq!(b.variable_measure.unwrap().prefix, "02");
        // No layout: plain GTIN.
        let b = decode("2112345012346", &[]).unwrap();
        assert_eq!(b.gtin.unwrap().to_string(), "02112345012346");
        assert!(b.variable_measure.is_none());
    }

    // GS1 "Sunrise 2027": 2D codes at the till carry Digital Link URIs
    // (plain QR / Data Matrix / DotCode) or element strings (FNC1 first).
    #[test]
    fn decodes_2d_codes() {
        let uri = "https://id.gs1.org/01/09506000134352/10/ABC?17=261231";
        for raw in [
            format!("]Q1{uri}"),
            format!("]d1{uri}"),
            format!("]J0{uri}"),
            uri.to_owned(),
        ] {
            let b = default_decode(&raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(b.kind, CodeKind::DigitalLink, "{raw}");
            assert_eq!(b.gtin.unwrap().to_string(), "09506000134352");
            assert_eq!(b.elements.get("17"), Some("261231"));
            assert_eq!(b.digital_link.as_ref().unwrap().domain, "id.gs1.org");
        }
        assert_eq!(
            default_decode(&format!("]Q1{uri}"))
                .unwrap()
                .symbology_name(),
            "qr"
        );
        assert_eq!(
            default_decode(uri).unwrap().symbology_name(),
            "digital-link"
        );
        // Element strings in GS1 DotCode and GS1 DataMatrix, any AI.
        let b = default_decode("]J1010950600013435291INTERNAL").unwrap();
        assert_eq!(b.symbology_name(), "gs1-dotcode");
        assert_eq!(b.elements.get("91"), Some("INTERNAL"));
        let b = default_decode("]d201095060001343527003261231153");
        assert!(b.is_err(), "7003 needs 10 digits");
        // A web address that is no Digital Link is text, not an error.
        let b = default_decode("]Q1https://example.com/menu").unwrap();
        assert_eq!(b.kind, CodeKind::Text);
        assert_eq!(b.gtin, None);
        // A Digital Link with bad content is refused.
        assert!(matches!(
            default_decode("]Q1https://id.gs1.org/01/09506000134353"),
            Err(BarcodeError::DigitalLink(_))
        ));
    }
}
