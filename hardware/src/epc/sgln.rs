//! SGLN-96 (header 0x32, TDS §14.5.3.1 Table 14-8) and SGLN-195 (header
//! 0x39, Table 14-9): a GLN and an extension, partition table 14-7.
//! SGLN-96 holds a numeric extension below 2^41, SGLN-195 any extension of
//! 1 to 20 CSET 82 characters. The extension "0" means the GLN itself,
//! without extension (TDS §6.3.3, §7.5). The GLN is the company prefix,
//! the location reference and a check digit.

use tally_sync::gtin::gs1_check_digit;

use super::bits::{BitReader, BitWriter};
use super::partition::{self, check_filter, check_fit, check_prefix, pad, read_prefix};
use super::text::Cset82;
use super::{digits_of, EpcError, HEADER_SGLN195, HEADER_SGLN96};

/// The largest SGLN-96 extension plus one (41 bits).
pub const SGLN96_EXTENSION_LIMIT: u64 = 1 << 41;
/// The most characters an SGLN-195 extension holds (140 bits / 7).
pub const SGLN195_EXTENSION_CHARS: usize = 20;

/// An SGLN-96.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sgln96 {
    /// Filter value 0..=7 (TDS Table 10-3).
    pub filter: u8,
    /// Partition 0..=6.
    pub partition: u8,
    /// GS1 company prefix (12 − partition digits).
    pub company_prefix: u64,
    /// Location reference (partition digits; none for partition 0).
    pub location_reference: u64,
    /// GLN extension (41 bits; 0 = no extension).
    pub extension: u64,
}

/// An SGLN-195.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sgln195 {
    /// Filter value 0..=7 (TDS Table 10-3).
    pub filter: u8,
    /// Partition 0..=6.
    pub partition: u8,
    /// GS1 company prefix (12 − partition digits).
    pub company_prefix: u64,
    /// Location reference (partition digits; none for partition 0).
    pub location_reference: u64,
    /// GLN extension, 1 to 20 CSET 82 characters ("0" = no extension).
    pub extension: Cset82,
}

fn check(
    scheme: &'static str,
    filter: u8,
    partition: u8,
    company_prefix: u64,
    location_reference: u64,
) -> Result<(), EpcError> {
    check_filter(filter)?;
    let row = check_prefix(&partition::SGLN, scheme, partition, company_prefix)?;
    check_fit(
        scheme,
        "location reference",
        location_reference,
        row.other_digits,
    )
}

/// The 13-digit GLN of a partition, company prefix and location reference.
pub(crate) fn gln_of(partition: u8, company_prefix: u64, location_reference: u64) -> String {
    let p = u32::from(partition.min(6));
    let body = format!(
        "{}{}",
        pad(company_prefix, 12 - p),
        pad(location_reference, p)
    );
    let check = gs1_check_digit(&digits_of(&body));
    format!("{body}{check}")
}

fn write_prefix(w: &mut BitWriter, header: u8, filter: u8, partition: u8, cp: u64, lr: u64) {
    let row = partition::SGLN[usize::from(partition.min(6))];
    w.push(u64::from(header), 8);
    w.push(u64::from(filter), 3);
    w.push(u64::from(partition), 3);
    w.push(cp, row.cp_bits);
    w.push(lr, row.other_bits);
}

fn read_prefix_fields(
    r: &mut BitReader<'_>,
    scheme: &'static str,
) -> Result<(u8, u8, u64, u64), EpcError> {
    let filter = r.read(3) as u8;
    let p = read_prefix(r, &partition::SGLN, scheme)?;
    let lr = r.read(p.row.other_bits);
    check_fit(scheme, "location reference", lr, p.row.other_digits)?;
    Ok((filter, p.partition, p.company_prefix, lr))
}

impl Sgln96 {
    /// Validates the fields.
    pub fn new(
        filter: u8,
        partition: u8,
        company_prefix: u64,
        location_reference: u64,
        extension: u64,
    ) -> Result<Self, EpcError> {
        check(
            "sgln-96",
            filter,
            partition,
            company_prefix,
            location_reference,
        )?;
        if extension >= SGLN96_EXTENSION_LIMIT {
            return Err(EpcError::Encode("sgln-96 extension must be below 2^41"));
        }
        Ok(Sgln96 {
            filter,
            partition,
            company_prefix,
            location_reference,
            extension,
        })
    }

    /// The company prefix, zero-padded to its digit count.
    pub fn cp(&self) -> String {
        pad(self.company_prefix, 12 - u32::from(self.partition.min(6)))
    }

    /// The location reference, zero-padded (empty for partition 0).
    pub fn lr(&self) -> String {
        pad(self.location_reference, u32::from(self.partition.min(6)))
    }

    /// The 13-digit GLN (AI 414).
    pub fn gln(&self) -> String {
        gln_of(self.partition, self.company_prefix, self.location_reference)
    }

    /// `urn:epc:tag:sgln-96:Filter.CompanyPrefix.LocationReference.Extension`.
    pub fn tag_uri(&self) -> String {
        format!(
            "urn:epc:tag:sgln-96:{}.{}.{}.{}",
            self.filter,
            self.cp(),
            self.lr(),
            self.extension
        )
    }

    /// The 96-bit binary encoding (TDS §14.5.3.1).
    pub fn encode(&self) -> [u8; 12] {
        let mut w = BitWriter::default();
        write_prefix(
            &mut w,
            HEADER_SGLN96,
            self.filter,
            self.partition,
            self.company_prefix,
            self.location_reference,
        );
        w.push(self.extension, 41);
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EpcError> {
        let mut r = BitReader::new(bytes, 8);
        let (filter, partition, company_prefix, location_reference) =
            read_prefix_fields(&mut r, "sgln-96")?;
        Ok(Sgln96 {
            filter,
            partition,
            company_prefix,
            location_reference,
            extension: r.read(41),
        })
    }
}

impl Sgln195 {
    /// Validates the fields (the extension: at most 20 characters).
    pub fn new(
        filter: u8,
        partition: u8,
        company_prefix: u64,
        location_reference: u64,
        extension: Cset82,
    ) -> Result<Self, EpcError> {
        check(
            "sgln-195",
            filter,
            partition,
            company_prefix,
            location_reference,
        )?;
        if extension.len() > SGLN195_EXTENSION_CHARS {
            return Err(EpcError::Encode(
                "sgln-195 extension must be at most 20 characters",
            ));
        }
        Ok(Sgln195 {
            filter,
            partition,
            company_prefix,
            location_reference,
            extension,
        })
    }

    /// The company prefix, zero-padded to its digit count.
    pub fn cp(&self) -> String {
        pad(self.company_prefix, 12 - u32::from(self.partition.min(6)))
    }

    /// The location reference, zero-padded (empty for partition 0).
    pub fn lr(&self) -> String {
        pad(self.location_reference, u32::from(self.partition.min(6)))
    }

    /// The 13-digit GLN (AI 414).
    pub fn gln(&self) -> String {
        gln_of(self.partition, self.company_prefix, self.location_reference)
    }

    /// `urn:epc:tag:sgln-195:Filter.CompanyPrefix.LocationReference.Extension`
    /// with the extension in URI form.
    pub fn tag_uri(&self) -> String {
        format!(
            "urn:epc:tag:sgln-195:{}.{}.{}.{}",
            self.filter,
            self.cp(),
            self.lr(),
            self.extension.to_uri()
        )
    }

    /// The binary encoding: 195 bits, zero-padded to 208 (13 words)
    /// (TDS §14.5.3.2).
    pub fn encode(&self) -> [u8; 26] {
        let mut w = BitWriter::default();
        write_prefix(
            &mut w,
            HEADER_SGLN195,
            self.filter,
            self.partition,
            self.company_prefix,
            self.location_reference,
        );
        self.extension.write(&mut w, 140);
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EpcError> {
        let mut r = BitReader::new(bytes, 8);
        let (filter, partition, company_prefix, location_reference) =
            read_prefix_fields(&mut r, "sgln-195")?;
        let extension = Cset82::read(&mut r, 140, SGLN195_EXTENSION_CHARS)?;
        Ok(Sgln195 {
            filter,
            partition,
            company_prefix,
            location_reference,
            extension,
        })
    }
}
