//! GRAI-96 (header 0x33, TDS §14.5.4.1 Table 14-11): a GRAI with a numeric
//! serial below 2^38, partition table 14-10. The GRAI as AI (8003) data is
//! a padding `0`, the company prefix, the asset type, a check digit and
//! the serial (TDS §7.6). GRAI-170 (alphanumeric serials) is not decoded:
//! its header stays raw.

use tally_sync::gtin::gs1_check_digit;

use super::bits::{BitReader, BitWriter};
use super::partition::{self, check_filter, check_fit, check_prefix, pad, read_prefix};
use super::{digits_of, EpcError, HEADER_GRAI96};

/// The largest GRAI-96 serial plus one (38 bits).
pub const GRAI96_SERIAL_LIMIT: u64 = 1 << 38;

/// A GRAI-96.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grai96 {
    /// Filter value 0..=7 (TDS Table 10-4).
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

/// The GRAI without serial: `0`, company prefix, asset type, check digit.
pub(crate) fn grai_key(partition: u8, company_prefix: u64, asset_type: u64) -> String {
    let p = u32::from(partition.min(6));
    let body = format!("0{}{}", pad(company_prefix, 12 - p), pad(asset_type, p));
    let check = gs1_check_digit(&digits_of(&body));
    format!("{body}{check}")
}

impl Grai96 {
    /// Validates the fields.
    pub fn new(
        filter: u8,
        partition: u8,
        company_prefix: u64,
        asset_type: u64,
        serial: u64,
    ) -> Result<Self, EpcError> {
        check_filter(filter)?;
        let row = check_prefix(&partition::GRAI, "grai-96", partition, company_prefix)?;
        check_fit("grai-96", "asset type", asset_type, row.other_digits)?;
        if serial >= GRAI96_SERIAL_LIMIT {
            return Err(EpcError::Encode("grai-96 serial must be below 2^38"));
        }
        Ok(Grai96 {
            filter,
            partition,
            company_prefix,
            asset_type,
            serial,
        })
    }

    /// The company prefix, zero-padded to its digit count.
    pub fn cp(&self) -> String {
        pad(self.company_prefix, 12 - u32::from(self.partition.min(6)))
    }

    /// The asset type, zero-padded (empty for partition 0).
    pub fn at(&self) -> String {
        pad(self.asset_type, u32::from(self.partition.min(6)))
    }

    /// The GRAI as AI (8003) data: `0`, company prefix, asset type, check
    /// digit, serial (TDS §7.6).
    pub fn grai(&self) -> String {
        format!(
            "{}{}",
            grai_key(self.partition, self.company_prefix, self.asset_type),
            self.serial
        )
    }

    /// `urn:epc:id:grai:CompanyPrefix.AssetType.Serial` (TDS §6.3.4).
    pub fn epc_uri(&self) -> String {
        self.identity().uri()
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

    /// The 96-bit binary encoding (TDS §14.5.4.1).
    pub fn encode(&self) -> [u8; 12] {
        let row = partition::GRAI[usize::from(self.partition.min(6))];
        let mut w = BitWriter::default();
        w.push(u64::from(HEADER_GRAI96), 8);
        w.push(u64::from(self.filter), 3);
        w.push(u64::from(self.partition), 3);
        w.push(self.company_prefix, row.cp_bits);
        w.push(self.asset_type, row.other_bits);
        w.push(self.serial, 38);
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EpcError> {
        let mut r = BitReader::new(bytes, 8);
        let filter = r.read(3) as u8;
        let p = read_prefix(&mut r, &partition::GRAI, "grai-96")?;
        let asset_type = r.read(p.row.other_bits);
        check_fit("grai-96", "asset type", asset_type, p.row.other_digits)?;
        Ok(Grai96 {
            filter,
            partition: p.partition,
            company_prefix: p.company_prefix,
            asset_type,
            serial: r.read(38),
        })
    }
}
