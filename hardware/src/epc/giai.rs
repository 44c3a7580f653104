//! GIAI-96 (header 0x34, TDS §14.5.5.1, partition table 14-13, coding
//! table 14-14) and GIAI-202 (header 0x38, §14.5.5.2, tables 14-15 and
//! 14-16): a company prefix and an individual asset reference. GIAI-96's
//! asset reference is an integer of the partition's bits (42 to 62),
//! written without leading zeros ("Unpadded Partition Table", §14.3.4 /
//! §14.4.4); GIAI-202's is a 7-bit string of at most 18 to 24 characters
//! ("String Partition Table", §14.3.5 / §14.4.5). The GIAI (AI 8004) is
//! the company prefix followed by the asset reference (TDS §7.7).

use super::bits::{BitReader, BitWriter};
use super::partition::{self, check_filter, check_prefix, pad, read_prefix};
use super::text::Cset82;
use super::{EpcError, HEADER_GIAI202, HEADER_GIAI96};

/// A GIAI-96.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Giai96 {
    /// Filter value 0..=7 (TDS Table 10-5).
    pub filter: u8,
    /// Partition 0..=6.
    pub partition: u8,
    /// GS1 company prefix (12 − partition digits).
    pub company_prefix: u64,
    /// Individual asset reference, below 2^(42 to 62 bits by partition).
    pub asset_reference: u64,
}

/// A GIAI-202.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Giai202 {
    /// Filter value 0..=7 (TDS Table 10-5).
    pub filter: u8,
    /// Partition 0..=6.
    pub partition: u8,
    /// GS1 company prefix (12 − partition digits).
    pub company_prefix: u64,
    /// Individual asset reference, 1 to 18..24 CSET 82 characters (by
    /// partition).
    pub asset_reference: Cset82,
}

/// The GIAI-96 asset reference bits of `partition` (Table 14-13).
pub(crate) fn giai96_bits(partition: u8) -> u32 {
    partition::GIAI_96[usize::from(partition.min(6))].other_bits
}

/// The most GIAI-202 asset reference characters of `partition`
/// (Table 14-15).
pub(crate) fn giai202_chars(partition: u8) -> usize {
    partition::GIAI_202[usize::from(partition.min(6))].other_digits as usize
}

fn cp_str(partition: u8, company_prefix: u64) -> String {
    pad(company_prefix, 12 - u32::from(partition.min(6)))
}

impl Giai96 {
    /// Validates the fields.
    pub fn new(
        filter: u8,
        partition: u8,
        company_prefix: u64,
        asset_reference: u64,
    ) -> Result<Self, EpcError> {
        check_filter(filter)?;
        let row = check_prefix(&partition::GIAI_96, "giai-96", partition, company_prefix)?;
        if asset_reference >> row.other_bits != 0 {
            return Err(EpcError::Encode(
                "giai-96 asset reference does not fit the partition's bits",
            ));
        }
        Ok(Giai96 {
            filter,
            partition,
            company_prefix,
            asset_reference,
        })
    }

    /// The company prefix, zero-padded to its digit count.
    pub fn cp(&self) -> String {
        cp_str(self.partition, self.company_prefix)
    }

    /// The GIAI (AI 8004): company prefix and asset reference.
    pub fn giai(&self) -> String {
        format!("{}{}", self.cp(), self.asset_reference)
    }

    /// `urn:epc:tag:giai-96:Filter.CompanyPrefix.AssetReference`.
    pub fn tag_uri(&self) -> String {
        format!(
            "urn:epc:tag:giai-96:{}.{}.{}",
            self.filter,
            self.cp(),
            self.asset_reference
        )
    }

    /// The 96-bit binary encoding (TDS §14.5.5.1).
    pub fn encode(&self) -> [u8; 12] {
        let row = partition::GIAI_96[usize::from(self.partition.min(6))];
        let mut w = BitWriter::default();
        w.push(u64::from(HEADER_GIAI96), 8);
        w.push(u64::from(self.filter), 3);
        w.push(u64::from(self.partition), 3);
        w.push(self.company_prefix, row.cp_bits);
        w.push(self.asset_reference, row.other_bits);
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EpcError> {
        let mut r = BitReader::new(bytes, 8);
        let filter = r.read(3) as u8;
        let p = read_prefix(&mut r, &partition::GIAI_96, "giai-96")?;
        Ok(Giai96 {
            filter,
            partition: p.partition,
            company_prefix: p.company_prefix,
            asset_reference: r.read(p.row.other_bits),
        })
    }
}

impl Giai202 {
    /// Validates the fields (the asset reference: at most 24 − partition
    /// characters).
    pub fn new(
        filter: u8,
        partition: u8,
        company_prefix: u64,
        asset_reference: Cset82,
    ) -> Result<Self, EpcError> {
        check_filter(filter)?;
        let row = check_prefix(&partition::GIAI_202, "giai-202", partition, company_prefix)?;
        if asset_reference.len() > row.other_digits as usize {
            return Err(EpcError::Encode(
                "giai-202 asset reference has more characters than the partition allows",
            ));
        }
        Ok(Giai202 {
            filter,
            partition,
            company_prefix,
            asset_reference,
        })
    }

    /// The company prefix, zero-padded to its digit count.
    pub fn cp(&self) -> String {
        cp_str(self.partition, self.company_prefix)
    }

    /// The GIAI (AI 8004): company prefix and asset reference.
    pub fn giai(&self) -> String {
        format!("{}{}", self.cp(), self.asset_reference)
    }

    /// `urn:epc:tag:giai-202:Filter.CompanyPrefix.AssetReference` with the
    /// asset reference in URI form.
    pub fn tag_uri(&self) -> String {
        format!(
            "urn:epc:tag:giai-202:{}.{}.{}",
            self.filter,
            self.cp(),
            self.asset_reference.to_uri()
        )
    }

    /// The binary encoding: 202 bits, zero-padded to 208 (13 words)
    /// (TDS §14.5.5.2).
    pub fn encode(&self) -> [u8; 26] {
        let row = partition::GIAI_202[usize::from(self.partition.min(6))];
        let mut w = BitWriter::default();
        w.push(u64::from(HEADER_GIAI202), 8);
        w.push(u64::from(self.filter), 3);
        w.push(u64::from(self.partition), 3);
        w.push(self.company_prefix, row.cp_bits);
        self.asset_reference.write(&mut w, row.other_bits);
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EpcError> {
        let mut r = BitReader::new(bytes, 8);
        let filter = r.read(3) as u8;
        let p = read_prefix(&mut r, &partition::GIAI_202, "giai-202")?;
        let asset_reference = Cset82::read(&mut r, p.row.other_bits, p.row.other_digits as usize)?;
        Ok(Giai202 {
            filter,
            partition: p.partition,
            company_prefix: p.company_prefix,
            asset_reference,
        })
    }
}
