//! SSCC-96 (header 0x31, TDS §14.5.2.1 Table 14-6): an SSCC, partition
//! table 14-5, then 24 reserved bits that must be zero. The SSCC is the
//! extension digit, the company prefix, the rest of the serial reference
//! and a check digit (TDS §7.4).

use tally_sync::gtin::gs1_check_digit;

use super::bits::{BitReader, BitWriter};
use super::partition::{self, check_filter, check_fit, check_prefix, pad, read_prefix};
use super::{digits_of, EpcError, HEADER_SSCC96};

/// An SSCC-96.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sscc96 {
    /// Filter value 0..=7 (TDS Table 10-2).
    pub filter: u8,
    /// Partition 0..=6.
    pub partition: u8,
    /// GS1 company prefix.
    pub company_prefix: u64,
    /// Extension digit followed by serial reference (partition + 5 digits).
    pub serial_reference: u64,
}

/// The 18-digit SSCC of a partition, company prefix and serial reference.
pub(crate) fn sscc_of(partition: u8, company_prefix: u64, serial_reference: u64) -> String {
    let p = u32::from(partition.min(6));
    let sr = pad(serial_reference, p + 5);
    let (ext, rest) = sr.split_at(1.min(sr.len()));
    let body = format!("{ext}{}{rest}", pad(company_prefix, 12 - p));
    let check = gs1_check_digit(&digits_of(&body));
    format!("{body}{check}")
}

impl Sscc96 {
    /// Validates the fields.
    pub fn new(
        filter: u8,
        partition: u8,
        company_prefix: u64,
        serial_reference: u64,
    ) -> Result<Self, EpcError> {
        check_filter(filter)?;
        let row = check_prefix(&partition::SSCC, "sscc-96", partition, company_prefix)?;
        check_fit(
            "sscc-96",
            "serial reference",
            serial_reference,
            row.other_digits,
        )?;
        Ok(Sscc96 {
            filter,
            partition,
            company_prefix,
            serial_reference,
        })
    }

    /// The company prefix, zero-padded to its digit count.
    pub fn cp(&self) -> String {
        pad(self.company_prefix, 12 - u32::from(self.partition.min(6)))
    }

    /// Extension digit and serial reference, zero-padded.
    pub fn sr(&self) -> String {
        pad(self.serial_reference, u32::from(self.partition.min(6)) + 5)
    }

    /// The 18-digit SSCC: extension digit, company prefix, rest of serial
    /// reference, check digit (TDS §7.4).
    pub fn sscc(&self) -> String {
        sscc_of(self.partition, self.company_prefix, self.serial_reference)
    }

    /// `urn:epc:id:sscc:CompanyPrefix.SerialReference` (TDS §6.3.2).
    pub fn epc_uri(&self) -> String {
        self.identity().uri()
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

    /// The 96-bit binary encoding (TDS §14.5.2.1).
    pub fn encode(&self) -> [u8; 12] {
        let row = partition::SSCC[usize::from(self.partition.min(6))];
        let mut w = BitWriter::default();
        w.push(u64::from(HEADER_SSCC96), 8);
        w.push(u64::from(self.filter), 3);
        w.push(u64::from(self.partition), 3);
        w.push(self.company_prefix, row.cp_bits);
        w.push(self.serial_reference, row.other_bits);
        w.push(0, 24);
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EpcError> {
        let mut r = BitReader::new(bytes, 8);
        let filter = r.read(3) as u8;
        let p = read_prefix(&mut r, &partition::SSCC, "sscc-96")?;
        let serial_reference = r.read(p.row.other_bits);
        check_fit(
            "sscc-96",
            "serial reference",
            serial_reference,
            p.row.other_digits,
        )?;
        if r.read(24) != 0 {
            return Err(EpcError::ReservedNotZero);
        }
        Ok(Sscc96 {
            filter,
            partition: p.partition,
            company_prefix: p.company_prefix,
            serial_reference,
        })
    }
}
