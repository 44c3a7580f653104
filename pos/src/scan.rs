//! What a scan or a typed code puts in the basket: a GTIN, perhaps an EPC
//! (RFID tag typed or read as hex), perhaps an embedded price or weight
//! (in-store weighed goods, GS1 AIs 392n/310n); and on the order screens,
//! the order id a code carries ([`order_id`]). Pure: the decoding is
//! `tally_hardware`'s, the same the scanner driver runs.

use tally_hardware::barcode::{self, Barcode, BarcodeError};
use tally_hardware::epc::{self, DecodedEpc};
use tally_hardware::rcn::RcnLayout;
use tally_sync::fulfilment::valid_order_id;
use tally_sync::{Epc, Gtin};

pub use tally_hardware::measure::Measure;
use tally_hardware::measure::{measure_of, MeasureError};

/// One item ready for the basket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// What was scanned or typed.
    pub raw: String,
    /// The item (catalogue GTIN for weighed goods), 14 digits.
    pub gtin: String,
    /// The EPC, upper-case hex, for a serialized item.
    pub epc: Option<String>,
    /// Embedded price or weight.
    pub measure: Option<Measure>,
}

/// Why a code cannot go in the basket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The code does not decode (bad check digit, bad GS1 string, …).
    #[error("{raw:?} does not decode: {error}")]
    Barcode {
        /// What was scanned.
        raw: String,
        /// Why.
        error: BarcodeError,
    },
    /// The code decodes but names no item (a coupon, a loyalty card, an
    /// SSCC…).
    #[error("{raw:?} ({symbology}) carries no GTIN")]
    NoGtin {
        /// What was scanned.
        raw: String,
        /// Its symbology.
        symbology: String,
    },
    /// An embedded price or weight that cannot be read.
    #[error("{raw:?}: embedded {what} {value:?} is not usable")]
    Measure {
        /// What was scanned.
        raw: String,
        /// `price` or `weight`.
        what: &'static str,
        /// The decoded text.
        value: String,
    },
}

impl ScanError {
    /// What was scanned or typed.
    pub fn raw(&self) -> &str {
        match self {
            ScanError::Barcode { raw, .. }
            | ScanError::NoGtin { raw, .. }
            | ScanError::Measure { raw, .. } => raw,
        }
    }
}

/// The order id a scanned or typed code carries: the code without its
/// AIM symbology identifier (an order's Code 128 label reads `]C0web-1`),
/// trimmed, when that is an order id Tally accepts (1 to 128 printable
/// ASCII characters, no spaces).
pub fn order_id(raw: &str) -> Option<String> {
    let (_, data) = tally_hardware::aim::split(raw.trim());
    let id = data.trim();
    valid_order_id(id).then(|| id.to_string())
}

/// Decodes what the cashier typed: an EPC (hex of an SGTIN-96 or -198, or
/// its tag URI `urn:epc:tag:sgtin-…`)
/// or any barcode `tally_hardware` decodes (with or without AIM prefix,
/// GS1 human form with parentheses, weighed goods with `layouts`).
pub fn from_typed(raw: &str, layouts: &[RcnLayout]) -> Result<Scanned, ScanError> {
    let raw = raw.trim();
    if let Some(s) = sgtin_epc(raw) {
        return Ok(s);
    }
    match barcode::decode(raw, layouts) {
        Ok(b) => from_barcode(raw, &b),
        Err(error) => Err(ScanError::Barcode {
            raw: raw.to_string(),
            error,
        }),
    }
}

/// An SGTIN EPC typed as hex (24 digits for SGTIN-96, 52 for SGTIN-198)
/// or as its tag URI. Anything else (other schemes, other lengths) is left
/// to the barcode decoder.
fn sgtin_epc(raw: &str) -> Option<Scanned> {
    let decoded = if raw.starts_with("urn:epc:tag:") {
        match epc::parse_uri(raw).ok()? {
            epc::ParsedUri::Tag(d) => d,
            epc::ParsedUri::Pure(_) => return None,
        }
    } else if matches!(raw.len(), 24 | 52) && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        epc::decode(&Epc::from_hex(raw).ok()?).ok()?
    } else {
        return None;
    };
    if !matches!(decoded, DecodedEpc::Sgtin96(_) | DecodedEpc::Sgtin198(_)) {
        return None;
    }
    Some(Scanned {
        raw: raw.to_string(),
        gtin: decoded.gtin()?.to_string(),
        epc: Some(decoded.to_epc().ok()?.to_hex()),
        measure: None,
    })
}

/// Turns a decoded scan (from the scanner driver or [`from_typed`]) into a
/// basket item.
pub fn from_barcode(raw: &str, b: &Barcode) -> Result<Scanned, ScanError> {
    let Some(gtin) = b.gtin else {
        return Err(ScanError::NoGtin {
            raw: raw.to_string(),
            symbology: b.symbology_name(),
        });
    };
    let measure = measure_of(b).map_err(|MeasureError { what, value }| ScanError::Measure {
        raw: raw.to_string(),
        what,
        value,
    })?;
    Ok(Scanned {
        raw: raw.to_string(),
        gtin: normalise(gtin),
        epc: None,
        measure,
    })
}

fn normalise(g: Gtin) -> String {
    g.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(raw: &str) -> Result<Scanned, ScanError> {
        from_typed(raw, &RcnLayout::default_layouts())
    }

    #[test]
    fn plain_gtins_of_every_length_normalise_to_14_digits() {
        for (raw, gtin) in [
            ("4006381333931", "04006381333931"),
            ("]E04006381333931", "04006381333931"),
            ("96385074", "00000096385074"),
            ("036000291452", "00036000291452"),
            ("10614141000415", "10614141000415"),
        ] {
            let s = typed(raw).unwrap();
            assert_eq!(s.gtin, gtin, "{raw}");
            assert_eq!(s.measure, None);
            assert_eq!(s.epc, None);
        }
    }

    #[test]
    fn gs1_element_strings_give_gtin_and_embedded_price_or_weight() {
        let s = typed("(01)04006381333931(10)LOT7").unwrap();
        assert_eq!(s.gtin, "04006381333931");
        assert_eq!(s.measure, None);
        let s = typed("(01)04006381333931(3922)1299").unwrap();
        assert_eq!(s.measure, Some(Measure::Price(1299)));
        let s = typed("(01)04006381333931(3103)000750").unwrap();
        assert_eq!(s.measure, Some(Measure::Grams(750)));
        let s = typed("]C1010400638133393131020012503922450").unwrap();
        assert_eq!(s.measure, Some(Measure::Price(450)));
    }

    #[test]
    fn weighed_goods_give_the_catalogue_gtin_and_the_price() {
        // docs/hardware.md: 2112345012346 → item 02112345000008, price 12.34.
        let s = typed("2112345012346").unwrap();
        assert_eq!(s.gtin, "02112345000008");
        assert_eq!(s.measure, Some(Measure::Price(1234)));
        let layouts: Vec<RcnLayout> = vec!["28:FFIIIIIWWWWWC:3".parse().unwrap()];
        let s = from_typed("2812345007501", &layouts).unwrap();
        assert_eq!(s.measure, Some(Measure::Grams(750)));
    }

    #[test]
    fn sgtin_epcs_typed_as_hex_carry_their_gtin() {
        let s = typed("3074257bf7194e4000001a85").unwrap();
        assert_eq!(s.gtin, "80614141123458");
        assert_eq!(s.epc.as_deref(), Some("3074257BF7194E4000001A85"));
    }

    #[test]
    fn order_ids_are_codes_without_their_aim_identifier() {
        assert_eq!(order_id("web-1").as_deref(), Some("web-1"));
        assert_eq!(order_id(" ]C0web-1 ").as_deref(), Some("web-1"));
        assert_eq!(
            order_id("]E04006381333931").as_deref(),
            Some("4006381333931")
        );
        assert_eq!(order_id("bopis 7"), None, "no spaces in an order id");
        assert_eq!(order_id(""), None);
        assert_eq!(order_id("]C0"), None);
        assert_eq!(order_id(&"x".repeat(129)), None);
        assert_eq!(order_id("caf\u{e9}"), None, "ASCII only");
        let e = typed("LOYALTY-42").unwrap_err();
        assert_eq!(e.raw(), "LOYALTY-42");
    }

    #[test]
    fn bad_codes_are_refused_with_the_reason() {
        assert!(matches!(
            typed("4006381333932"),
            Err(ScanError::Barcode { .. })
        ));
        assert!(matches!(typed(""), Err(ScanError::Barcode { .. })));
        let e = typed("LOYALTY-42").unwrap_err();
        assert!(matches!(e, ScanError::NoGtin { .. }), "{e:?}");
        assert!(e.to_string().contains("carries no GTIN"), "{e}");
    }
}
