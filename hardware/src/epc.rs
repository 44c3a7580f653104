//! EPC binary decoding per the GS1 EPC Tag Data Standard (TDS): SGTIN-96,
//! SSCC-96 and GRAI-96 into their fields, GS1 keys, pure-identity URIs
//! (`urn:epc:id:…`) and tag URIs (`urn:epc:tag:…`); every other header is
//! kept as a raw EPC (`urn:epc:raw:…`), never dropped.
//!
//! Pure. Layouts from TDS §14.5 coding tables (SGTIN-96 Table 14-3, SSCC-96
//! Table 14-5, GRAI-96 Table 14-9) and the partition tables (Table 14-2
//! SGTIN, 14-4 SSCC, 14-8 GRAI); header values from Table 14-1. Decoding
//! follows §14.3.3 ("Partition" decoding): partition 7 is an error, and a
//! company prefix or reference whose value does not fit its digit count is
//! an error. Encoding SGTIN-96 is the exact inverse (used to round-trip in
//! tests and by tools that write tags).

use std::fmt;

use tally_sync::gtin::gs1_check_digit;
use tally_sync::{Epc, Gtin};

/// SGTIN-96 header (TDS Table 14-1).
pub const HEADER_SGTIN96: u8 = 0x30;
/// SSCC-96 header.
pub const HEADER_SSCC96: u8 = 0x31;
/// GRAI-96 header.
pub const HEADER_GRAI96: u8 = 0x33;

/// Company prefix bits for partitions 0..=6 (all three schemes share them).
const CP_BITS: [u32; 7] = [40, 37, 34, 30, 27, 24, 20];
/// Item reference (with indicator) bits, SGTIN partition table 14-2.
const SGTIN_IR_BITS: [u32; 7] = [4, 7, 10, 14, 17, 20, 24];
/// Serial reference (with extension digit) bits, SSCC table 14-4.
const SSCC_SR_BITS: [u32; 7] = [18, 21, 24, 28, 31, 34, 38];
/// Asset type bits, GRAI table 14-8.
const GRAI_AT_BITS: [u32; 7] = [4, 7, 10, 14, 17, 20, 24];

/// Company prefix digits for a partition.
fn cp_digits(partition: u8) -> u32 {
    12 - u32::from(partition)
}

/// Why an EPC does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpcError {
    /// Partition 7 is reserved (TDS §14.3.3).
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
    /// A 96-bit header on an EPC of another length (with non-zero extra bits).
    #[error("{scheme}: expected 96 bits, found {bits}")]
    BadLength {
        /// The scheme.
        scheme: &'static str,
        /// The EPC's length in bits.
        bits: usize,
    },
    /// SSCC-96's 24 reserved bits must be zero (TDS Table 14-5).
    #[error("sscc-96: reserved bits are not zero")]
    ReservedNotZero,
    /// A value out of range when encoding.
    #[error("cannot encode: {0}")]
    Encode(&'static str),
}

/// An SGTIN-96.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sgtin96 {
    /// Filter value 0..=7.
    pub filter: u8,
    /// Partition 0..=6.
    pub partition: u8,
    /// GS1 company prefix (12 − partition digits).
    pub company_prefix: u64,
    /// Indicator digit followed by item reference (partition + 1 digits).
    pub item_reference: u64,
    /// Serial number (38 bits).
    pub serial: u64,
}

/// An SSCC-96.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sscc96 {
    /// Filter value 0..=7.
    pub filter: u8,
    /// Partition 0..=6.
    pub partition: u8,
    /// GS1 company prefix.
    pub company_prefix: u64,
    /// Extension digit followed by serial reference (partition + 5 digits).
    pub serial_reference: u64,
}

/// A GRAI-96.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grai96 {
    /// Filter value 0..=7.
    pub filter: u8,
    /// Partition 0..=6.
    pub partition: u8,
    /// GS1 company prefix.
    pub company_prefix: u64,
    /// Asset type (partition digits; none for partition 0).
    pub asset_type: u64,
    /// Serial number (38 bits).
    pub serial: u64,
}

/// A decoded EPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodedEpc {
    /// SGTIN-96.
    Sgtin96(Sgtin96),
    /// SSCC-96.
    Sscc96(Sscc96),
    /// GRAI-96.
    Grai96(Grai96),
    /// Any other scheme, kept as is.
    Raw(Epc),
}

fn pad(value: u64, digits: u32) -> String {
    if digits == 0 {
        String::new()
    } else {
        format!("{value:0width$}", width = digits as usize)
    }
}

fn fits(value: u64, digits: u32) -> bool {
    10u64.checked_pow(digits).is_none_or(|limit| value < limit)
}

fn check_fit(
    scheme: &'static str,
    field: &'static str,
    value: u64,
    digits: u32,
) -> Result<(), EpcError> {
    if fits(value, digits) {
        Ok(())
    } else {
        Err(EpcError::FieldOverflow {
            scheme,
            field,
            value,
            digits,
        })
    }
}

/// Reads `bits` bits starting `offset` bits after the most significant bit
/// of a 96-bit value.
fn field(v: u128, offset: u32, bits: u32) -> u64 {
    let shift = 96 - offset - bits;
    ((v >> shift) & ((1u128 << bits) - 1)) as u64
}

/// The fields every partitioned 96-bit scheme starts with (TDS §14.3.3):
/// filter, partition, company prefix and the partition's second field
/// (item reference, serial reference or asset type), both checked to fit
/// their digit counts.
struct Partitioned {
    filter: u8,
    partition: u8,
    company_prefix: u64,
    second: u64,
}

fn partitioned(
    v: u128,
    scheme: &'static str,
    second_name: &'static str,
    second_bits: &[u32; 7],
    second_digits: fn(u8) -> u32,
) -> Result<Partitioned, EpcError> {
    let filter = field(v, 8, 3) as u8;
    let partition = field(v, 11, 3) as u8;
    let p = usize::from(partition);
    if p > 6 {
        return Err(EpcError::InvalidPartition { scheme, partition });
    }
    let company_prefix = field(v, 14, CP_BITS[p]);
    let second = field(v, 14 + CP_BITS[p], second_bits[p]);
    check_fit(
        scheme,
        "company prefix",
        company_prefix,
        cp_digits(partition),
    )?;
    check_fit(scheme, second_name, second, second_digits(partition))?;
    Ok(Partitioned {
        filter,
        partition,
        company_prefix,
        second,
    })
}

fn digits_of(s: &str) -> Vec<u8> {
    s.bytes().map(|b| b - b'0').collect()
}

impl Sgtin96 {
    /// Validates the fields.
    pub fn new(
        filter: u8,
        partition: u8,
        company_prefix: u64,
        item_reference: u64,
        serial: u64,
    ) -> Result<Self, EpcError> {
        if filter > 7 {
            return Err(EpcError::Encode("filter must be 0 to 7"));
        }
        if partition > 6 {
            return Err(EpcError::InvalidPartition {
                scheme: "sgtin-96",
                partition,
            });
        }
        if serial >= 1 << 38 {
            return Err(EpcError::Encode("serial must be below 2^38"));
        }
        check_fit(
            "sgtin-96",
            "company prefix",
            company_prefix,
            cp_digits(partition),
        )?;
        check_fit(
            "sgtin-96",
            "item reference",
            item_reference,
            u32::from(partition) + 1,
        )?;
        Ok(Sgtin96 {
            filter,
            partition,
            company_prefix,
            item_reference,
            serial,
        })
    }

    /// Builds from a GTIN, the length of its company prefix (6..=12) and a
    /// serial (TDS §7.1.2).
    pub fn from_gtin(
        filter: u8,
        gtin: Gtin,
        company_prefix_digits: u32,
        serial: u64,
    ) -> Result<Self, EpcError> {
        if !(6..=12).contains(&company_prefix_digits) {
            return Err(EpcError::Encode("company prefix must have 6 to 12 digits"));
        }
        let partition = (12 - company_prefix_digits) as u8;
        let s = gtin.to_string();
        let cp_end = 1 + company_prefix_digits as usize;
        let company_prefix = s[1..cp_end].parse().map_err(|_| EpcError::Encode("gtin"))?;
        let item_reference = format!("{}{}", &s[..1], &s[cp_end..13])
            .parse()
            .map_err(|_| EpcError::Encode("gtin"))?;
        Self::new(filter, partition, company_prefix, item_reference, serial)
    }

    /// The company prefix, zero-padded to its digit count.
    pub fn cp(&self) -> String {
        pad(self.company_prefix, cp_digits(self.partition))
    }

    /// Indicator digit and item reference, zero-padded.
    pub fn ir(&self) -> String {
        pad(self.item_reference, u32::from(self.partition) + 1)
    }

    /// The GTIN-14: indicator, company prefix, rest of item reference, check
    /// digit (TDS §7.1.1).
    pub fn gtin(&self) -> Option<Gtin> {
        let ir = self.ir();
        let body13 = format!("{}{}{}", &ir[..1], self.cp(), &ir[1..]);
        Gtin::from_body(body13.parse().ok()?)
    }

    /// `urn:epc:id:sgtin:CompanyPrefix.ItemRefAndIndicator.Serial` (TDS §6.3.1).
    pub fn epc_uri(&self) -> String {
        format!(
            "urn:epc:id:sgtin:{}.{}.{}",
            self.cp(),
            self.ir(),
            self.serial
        )
    }

    /// `urn:epc:tag:sgtin-96:Filter.CompanyPrefix.ItemRefAndIndicator.Serial`
    /// (TDS §12.3.1).
    pub fn tag_uri(&self) -> String {
        format!(
            "urn:epc:tag:sgtin-96:{}.{}.{}.{}",
            self.filter,
            self.cp(),
            self.ir(),
            self.serial
        )
    }

    /// The 96-bit binary encoding (TDS §14.5.1.1).
    pub fn encode(&self) -> [u8; 12] {
        let p = usize::from(self.partition);
        let mut v: u128 = u128::from(HEADER_SGTIN96);
        v = (v << 3) | u128::from(self.filter);
        v = (v << 3) | u128::from(self.partition);
        v = (v << CP_BITS[p]) | u128::from(self.company_prefix);
        v = (v << SGTIN_IR_BITS[p]) | u128::from(self.item_reference);
        v = (v << 38) | u128::from(self.serial);
        to_bytes(v)
    }

    fn decode(v: u128) -> Result<Self, EpcError> {
        let f = partitioned(v, "sgtin-96", "item reference", &SGTIN_IR_BITS, |p| {
            u32::from(p) + 1
        })?;
        Ok(Sgtin96 {
            filter: f.filter,
            partition: f.partition,
            company_prefix: f.company_prefix,
            item_reference: f.second,
            serial: field(v, 58, 38),
        })
    }
}

impl Sscc96 {
    /// The company prefix, zero-padded to its digit count.
    pub fn cp(&self) -> String {
        pad(self.company_prefix, cp_digits(self.partition))
    }

    /// Extension digit and serial reference, zero-padded.
    pub fn sr(&self) -> String {
        pad(self.serial_reference, u32::from(self.partition) + 5)
    }

    /// The 18-digit SSCC: extension digit, company prefix, rest of serial
    /// reference, check digit (TDS §7.2.1).
    pub fn sscc(&self) -> String {
        let sr = self.sr();
        let body = format!("{}{}{}", &sr[..1], self.cp(), &sr[1..]);
        let check = gs1_check_digit(&digits_of(&body));
        format!("{body}{check}")
    }

    /// `urn:epc:id:sscc:CompanyPrefix.SerialReference` (TDS §6.3.2).
    pub fn epc_uri(&self) -> String {
        format!("urn:epc:id:sscc:{}.{}", self.cp(), self.sr())
    }

    /// `urn:epc:tag:sscc-96:Filter.CompanyPrefix.SerialReference`.
    pub fn tag_uri(&self) -> String {
        format!(
            "urn:epc:tag:sscc-96:{}.{}.{}",
            self.filter,
            self.cp(),
            self.sr()
        )
    }

    fn decode(v: u128) -> Result<Self, EpcError> {
        let f = partitioned(v, "sscc-96", "serial reference", &SSCC_SR_BITS, |p| {
            u32::from(p) + 5
        })?;
        if field(v, 72, 24) != 0 {
            return Err(EpcError::ReservedNotZero);
        }
        Ok(Sscc96 {
            filter: f.filter,
            partition: f.partition,
            company_prefix: f.company_prefix,
            serial_reference: f.second,
        })
    }
}

impl Grai96 {
    /// The company prefix, zero-padded to its digit count.
    pub fn cp(&self) -> String {
        pad(self.company_prefix, cp_digits(self.partition))
    }

    /// The asset type, zero-padded (empty for partition 0).
    pub fn at(&self) -> String {
        pad(self.asset_type, u32::from(self.partition))
    }

    /// The GRAI as AI (8003) data: `0`, company prefix, asset type, check
    /// digit, serial (TDS §7.4.1).
    pub fn grai(&self) -> String {
        let body = format!("0{}{}", self.cp(), self.at());
        let check = gs1_check_digit(&digits_of(&body));
        format!("{body}{check}{}", self.serial)
    }

    /// `urn:epc:id:grai:CompanyPrefix.AssetType.Serial` (TDS §6.3.4).
    pub fn epc_uri(&self) -> String {
        format!(
            "urn:epc:id:grai:{}.{}.{}",
            self.cp(),
            self.at(),
            self.serial
        )
    }

    /// `urn:epc:tag:grai-96:Filter.CompanyPrefix.AssetType.Serial`.
    pub fn tag_uri(&self) -> String {
        format!(
            "urn:epc:tag:grai-96:{}.{}.{}.{}",
            self.filter,
            self.cp(),
            self.at(),
            self.serial
        )
    }

    fn decode(v: u128) -> Result<Self, EpcError> {
        let f = partitioned(v, "grai-96", "asset type", &GRAI_AT_BITS, u32::from)?;
        Ok(Grai96 {
            filter: f.filter,
            partition: f.partition,
            company_prefix: f.company_prefix,
            asset_type: f.second,
            serial: field(v, 58, 38),
        })
    }
}

fn to_bytes(v: u128) -> [u8; 12] {
    let all = v.to_be_bytes();
    let mut out = [0u8; 12];
    out.copy_from_slice(&all[4..]);
    out
}

/// Decodes an EPC. SGTIN-96, SSCC-96 and GRAI-96 headers must decode
/// cleanly; every other header gives [`DecodedEpc::Raw`]. A 96-bit scheme on
/// a longer EPC bank is accepted when the extra bits are all zero (tags
/// with a 128-bit EPC bank carrying a 96-bit EPC).
pub fn decode(epc: &Epc) -> Result<DecodedEpc, EpcError> {
    let bytes = epc.as_bytes();
    let scheme = match bytes.first() {
        Some(&HEADER_SGTIN96) => "sgtin-96",
        Some(&HEADER_SSCC96) => "sscc-96",
        Some(&HEADER_GRAI96) => "grai-96",
        _ => return Ok(DecodedEpc::Raw(epc.clone())),
    };
    if bytes.len() < 12 || bytes[12..].iter().any(|&b| b != 0) {
        return Err(EpcError::BadLength {
            scheme,
            bits: bytes.len() * 8,
        });
    }
    let mut buf = [0u8; 16];
    buf[4..].copy_from_slice(&bytes[..12]);
    let v = u128::from_be_bytes(buf);
    Ok(match bytes[0] {
        HEADER_SGTIN96 => DecodedEpc::Sgtin96(Sgtin96::decode(v)?),
        HEADER_SSCC96 => DecodedEpc::Sscc96(Sscc96::decode(v)?),
        _ => DecodedEpc::Grai96(Grai96::decode(v)?),
    })
}

impl DecodedEpc {
    /// `sgtin-96`, `sscc-96`, `grai-96` or `raw`.
    pub fn scheme(&self) -> &'static str {
        match self {
            DecodedEpc::Sgtin96(_) => "sgtin-96",
            DecodedEpc::Sscc96(_) => "sscc-96",
            DecodedEpc::Grai96(_) => "grai-96",
            DecodedEpc::Raw(_) => "raw",
        }
    }

    /// The pure-identity URI, for GS1 schemes.
    pub fn epc_uri(&self) -> Option<String> {
        match self {
            DecodedEpc::Sgtin96(s) => Some(s.epc_uri()),
            DecodedEpc::Sscc96(s) => Some(s.epc_uri()),
            DecodedEpc::Grai96(g) => Some(g.epc_uri()),
            DecodedEpc::Raw(_) => None,
        }
    }

    /// The tag URI; for raw EPCs the raw URI `urn:epc:raw:Bits.xHex` (TDS
    /// §12.4).
    pub fn tag_uri(&self) -> String {
        match self {
            DecodedEpc::Sgtin96(s) => s.tag_uri(),
            DecodedEpc::Sscc96(s) => s.tag_uri(),
            DecodedEpc::Grai96(g) => g.tag_uri(),
            DecodedEpc::Raw(e) => format!("urn:epc:raw:{}.x{}", e.as_bytes().len() * 8, e.to_hex()),
        }
    }
}

impl fmt::Display for DecodedEpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag_uri())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(hex: &str) -> Result<DecodedEpc, EpcError> {
        decode(&Epc::from_hex(hex).unwrap())
    }

    // Vectors: the examples of the GS1 EPC Tag Data Standard (TDS 1.x/2.x
    // §14.5 and the TDT test set built from them).
    #[test]
    fn decodes_tds_examples() {
        // TDS §14.5.1.1 example: SGTIN-96 3074257BF7194E4000001A85,
        // urn:epc:id:sgtin:0614141.812345.6789, GTIN 80614141123458.
        let DecodedEpc::Sgtin96(s) = dec("3074257BF7194E4000001A85").unwrap() else {
            panic!()
        };
        assert_eq!((s.filter, s.partition), (3, 5));
        assert_eq!(s.epc_uri(), "urn:epc:id:sgtin:0614141.812345.6789");
        assert_eq!(s.tag_uri(), "urn:epc:tag:sgtin-96:3.0614141.812345.6789");
        assert_eq!(s.gtin().unwrap().to_string(), "80614141123458");
        assert_eq!(hex(&s.encode()), "3074257BF7194E4000001A85");

        // TDS §14.5.2 example: SSCC-96 3174257BF4499602D2000000,
        // urn:epc:id:sscc:0614141.1234567890, SSCC (00)106141412345678908.
        let DecodedEpc::Sscc96(s) = dec("3174257BF4499602D2000000").unwrap() else {
            panic!()
        };
        assert_eq!(s.epc_uri(), "urn:epc:id:sscc:0614141.1234567890");
        assert_eq!(s.tag_uri(), "urn:epc:tag:sscc-96:3.0614141.1234567890");
        assert_eq!(s.sscc(), "106141412345678908");

        // TDS §14.5.4 example: GRAI-96 3374257BF40C0E400000162E,
        // urn:epc:id:grai:0614141.12345.5678.
        let DecodedEpc::Grai96(g) = dec("3374257BF40C0E400000162E").unwrap() else {
            panic!()
        };
        assert_eq!(g.epc_uri(), "urn:epc:id:grai:0614141.12345.5678");
        assert_eq!(g.tag_uri(), "urn:epc:tag:grai-96:3.0614141.12345.5678");
        assert_eq!(g.grai(), "006141411234525678");
    }

    #[test]
    fn other_headers_stay_raw() {
        // GID-96 (header 0x35, TDS §14.5.5 example 350007AB70425D4000000586)
        // and a typical factory EPC of an Impinj tag (E280…): both raw.
        for hexs in [
            "350007AB70425D4000000586",
            "E2801160600002054C0DB71D",
            "1234",
        ] {
            let d = dec(hexs).unwrap();
            assert_eq!(d.scheme(), "raw");
            assert_eq!(
                d.tag_uri(),
                format!("urn:epc:raw:{}.x{hexs}", hexs.len() * 4)
            );
            assert_eq!(d.epc_uri(), None);
        }
    }

    #[test]
    fn rejects_invalid() {
        // Partition 7: header 30, filter 3, partition 7 → second byte 0x7C.
        assert!(matches!(
            dec("307C257BF7194E4000001A85"),
            Err(EpcError::InvalidPartition { partition: 7, .. })
        ));
        assert!(matches!(
            dec("317C257BF4499602D2000000"),
            Err(EpcError::InvalidPartition { .. })
        ));
        assert!(matches!(
            dec("337C257BF40C0E400000162E"),
            Err(EpcError::InvalidPartition { .. })
        ));
        // Company prefix 0xFFFFFFFFFF (> 10^12) in partition 0.
        assert!(matches!(
            dec("3063FFFFFFFFFC0000000001"),
            Err(EpcError::FieldOverflow { .. })
        ));
        // SSCC reserved bits set.
        assert!(matches!(
            dec("3174257BF4499602D2000001"),
            Err(EpcError::ReservedNotZero)
        ));
        // 96-bit header on 64 bits; 128-bit bank with non-zero tail.
        assert!(matches!(
            dec("3074257BF7194E40"),
            Err(EpcError::BadLength { bits: 64, .. })
        ));
        assert!(matches!(
            dec("3074257BF7194E4000001A850001"),
            Err(EpcError::BadLength { .. })
        ));
        // 128-bit bank, zero tail: fine.
        assert_eq!(
            dec("3074257BF7194E4000001A8500000000").unwrap().scheme(),
            "sgtin-96"
        );
    }

    #[test]
    fn from_gtin_matches_tds_example() {
        let g = Gtin::parse("80614141123458").unwrap();
        let s = Sgtin96::from_gtin(3, g, 7, 6789).unwrap();
        assert_eq!(hex(&s.encode()), "3074257BF7194E4000001A85");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02X}")).collect()
    }

    proptest! {
        // SGTIN-96 encode → decode over all partitions 0..=6.
        #[test]
        fn sgtin96_round_trips(
            filter in 0u8..8,
            partition in 0u8..7,
            cp_seed in any::<u64>(),
            ir_seed in any::<u64>(),
            serial in 0u64..(1 << 38),
        ) {
            let cp = cp_seed % 10u64.pow(12 - u32::from(partition));
            let ir = ir_seed % 10u64.pow(u32::from(partition) + 1);
            let s = Sgtin96::new(filter, partition, cp, ir, serial).unwrap();
            let epc = Epc::from_bytes(&s.encode()).unwrap();
            prop_assert_eq!(decode(&epc).unwrap(), DecodedEpc::Sgtin96(s));
            // The GTIN carries the same digits and a valid check digit.
            let gtin = s.gtin().unwrap();
            let again = Sgtin96::from_gtin(filter, gtin, 12 - u32::from(partition), serial).unwrap();
            prop_assert_eq!(again, s);
        }

        #[test]
        fn arbitrary_epcs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 2..62)) {
            let epc = Epc::from_bytes(&bytes).unwrap();
            if let Ok(d) = decode(&epc) {
                let _ = (d.tag_uri(), d.epc_uri());
            }
        }
    }
}
