//! SGTIN-96 (header 0x30, TDS §14.5.1.1 Table 14-3) and SGTIN-198 (header
//! 0x36, Table 14-4): a GTIN and a serial. Both use the SGTIN partition
//! table (Table 14-2); SGTIN-96 holds a numeric serial below 2^38,
//! SGTIN-198 any serial of 1 to 20 CSET 82 characters (TDS §12.3.1).
//! The GTIN is the indicator digit, the company prefix, the rest of the
//! item reference and a check digit (TDS §7.3).

use tally_sync::Gtin;

use super::bits::{BitReader, BitWriter};
use super::partition::{self, check_filter, check_fit, check_prefix, pad, read_prefix};
use super::text::Cset82;
use super::{EpcError, HEADER_SGTIN198, HEADER_SGTIN96};

/// The largest SGTIN-96 serial plus one (38 bits).
pub const SGTIN96_SERIAL_LIMIT: u64 = 1 << 38;
/// The most characters an SGTIN-198 serial holds (140 bits / 7).
pub const SGTIN198_SERIAL_CHARS: usize = 20;

/// An SGTIN-96.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sgtin96 {
    /// Filter value 0..=7 (TDS Table 10-1).
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

/// An SGTIN-198.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sgtin198 {
    /// Filter value 0..=7 (TDS Table 10-1).
    pub filter: u8,
    /// Partition 0..=6.
    pub partition: u8,
    /// GS1 company prefix (12 − partition digits).
    pub company_prefix: u64,
    /// Indicator digit followed by item reference (partition + 1 digits).
    pub item_reference: u64,
    /// Serial number, 1 to 20 CSET 82 characters.
    pub serial: Cset82,
}

/// Validates the shared fields of both SGTIN codings.
fn check(
    scheme: &'static str,
    filter: u8,
    partition: u8,
    company_prefix: u64,
    item_reference: u64,
) -> Result<(), EpcError> {
    check_filter(filter)?;
    let row = check_prefix(&partition::SGTIN, scheme, partition, company_prefix)?;
    check_fit(scheme, "item reference", item_reference, row.other_digits)
}

/// Splits a GTIN into partition, company prefix and item reference (with
/// indicator) for a company prefix of `company_prefix_digits` (TDS §7.3).
fn split_gtin(gtin: Gtin, company_prefix_digits: u32) -> Result<(u8, u64, u64), EpcError> {
    let partition = partition::for_cp_digits(company_prefix_digits as usize)
        .ok_or(EpcError::Encode("company prefix must have 6 to 12 digits"))?;
    let s = gtin.to_string();
    let cp_end = 1 + company_prefix_digits as usize;
    let num = |t: Option<&str>| -> Result<u64, EpcError> {
        t.and_then(|t| t.parse().ok())
            .ok_or(EpcError::Encode("gtin"))
    };
    let company_prefix = num(s.get(1..cp_end))?;
    let indicator = num(s.get(..1))?;
    let rest = s.get(cp_end..13).ok_or(EpcError::Encode("gtin"))?;
    let item_reference = if rest.is_empty() {
        indicator
    } else {
        indicator * 10u64.pow(rest.len() as u32) + num(Some(rest))?
    };
    Ok((partition, company_prefix, item_reference))
}

/// The GTIN-14 of a partition, company prefix and item reference.
pub(crate) fn gtin_of(partition: u8, company_prefix: u64, item_reference: u64) -> Option<Gtin> {
    let row = partition::row(&partition::SGTIN, "sgtin", partition).ok()?;
    let ir = pad(item_reference, row.other_digits);
    let body13 = format!(
        "{}{}{}",
        ir.get(..1)?,
        pad(company_prefix, row.cp_digits),
        ir.get(1..)?
    );
    if body13.len() != 13 {
        return None;
    }
    Gtin::from_body(body13.parse().ok()?)
}

fn cp_str(partition: u8, company_prefix: u64) -> String {
    pad(company_prefix, 12 - u32::from(partition.min(6)))
}

fn ir_str(partition: u8, item_reference: u64) -> String {
    pad(item_reference, u32::from(partition.min(6)) + 1)
}

fn write_prefix(w: &mut BitWriter, header: u8, filter: u8, partition: u8, cp: u64, ir: u64) {
    let row = partition::SGTIN[usize::from(partition.min(6))];
    w.push(u64::from(header), 8);
    w.push(u64::from(filter), 3);
    w.push(u64::from(partition), 3);
    w.push(cp, row.cp_bits);
    w.push(ir, row.other_bits);
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
        check(
            "sgtin-96",
            filter,
            partition,
            company_prefix,
            item_reference,
        )?;
        if serial >= SGTIN96_SERIAL_LIMIT {
            return Err(EpcError::Encode("sgtin-96 serial must be below 2^38"));
        }
        Ok(Sgtin96 {
            filter,
            partition,
            company_prefix,
            item_reference,
            serial,
        })
    }

    /// Builds from a GTIN, the length of its company prefix (6..=12) and a
    /// serial (TDS §7.3).
    pub fn from_gtin(
        filter: u8,
        gtin: Gtin,
        company_prefix_digits: u32,
        serial: u64,
    ) -> Result<Self, EpcError> {
        let (partition, cp, ir) = split_gtin(gtin, company_prefix_digits)?;
        Self::new(filter, partition, cp, ir, serial)
    }

    /// The company prefix, zero-padded to its digit count.
    pub fn cp(&self) -> String {
        cp_str(self.partition, self.company_prefix)
    }

    /// Indicator digit and item reference, zero-padded.
    pub fn ir(&self) -> String {
        ir_str(self.partition, self.item_reference)
    }

    /// The GTIN-14: indicator, company prefix, rest of item reference, check
    /// digit (TDS §7.3).
    pub fn gtin(&self) -> Option<Gtin> {
        gtin_of(self.partition, self.company_prefix, self.item_reference)
    }

    /// `urn:epc:id:sgtin:CompanyPrefix.ItemRefAndIndicator.Serial` (TDS §6.3.1).
    pub fn epc_uri(&self) -> String {
        self.identity().uri()
    }

    /// `urn:epc:tag:sgtin-96:Filter.CompanyPrefix.ItemRefAndIndicator.Serial`
    /// (TDS §12.3.2).
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
        let mut w = BitWriter::default();
        write_prefix(
            &mut w,
            HEADER_SGTIN96,
            self.filter,
            self.partition,
            self.company_prefix,
            self.item_reference,
        );
        w.push(self.serial, 38);
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EpcError> {
        let mut r = BitReader::new(bytes, 8);
        let filter = r.read(3) as u8;
        let p = read_prefix(&mut r, &partition::SGTIN, "sgtin-96")?;
        let item_reference = r.read(p.row.other_bits);
        check_fit(
            "sgtin-96",
            "item reference",
            item_reference,
            p.row.other_digits,
        )?;
        Ok(Sgtin96 {
            filter,
            partition: p.partition,
            company_prefix: p.company_prefix,
            item_reference,
            serial: r.read(38),
        })
    }
}

impl Sgtin198 {
    /// Validates the fields (the serial: at most 20 characters).
    pub fn new(
        filter: u8,
        partition: u8,
        company_prefix: u64,
        item_reference: u64,
        serial: Cset82,
    ) -> Result<Self, EpcError> {
        check(
            "sgtin-198",
            filter,
            partition,
            company_prefix,
            item_reference,
        )?;
        if serial.len() > SGTIN198_SERIAL_CHARS {
            return Err(EpcError::Encode(
                "sgtin-198 serial must be at most 20 characters",
            ));
        }
        Ok(Sgtin198 {
            filter,
            partition,
            company_prefix,
            item_reference,
            serial,
        })
    }

    /// Builds from a GTIN, the length of its company prefix (6..=12) and a
    /// serial (TDS §7.3).
    pub fn from_gtin(
        filter: u8,
        gtin: Gtin,
        company_prefix_digits: u32,
        serial: Cset82,
    ) -> Result<Self, EpcError> {
        let (partition, cp, ir) = split_gtin(gtin, company_prefix_digits)?;
        Self::new(filter, partition, cp, ir, serial)
    }

    /// The company prefix, zero-padded to its digit count.
    pub fn cp(&self) -> String {
        cp_str(self.partition, self.company_prefix)
    }

    /// Indicator digit and item reference, zero-padded.
    pub fn ir(&self) -> String {
        ir_str(self.partition, self.item_reference)
    }

    /// The GTIN-14 (TDS §7.3).
    pub fn gtin(&self) -> Option<Gtin> {
        gtin_of(self.partition, self.company_prefix, self.item_reference)
    }

    /// `urn:epc:tag:sgtin-198:Filter.CompanyPrefix.ItemRefAndIndicator.Serial`
    /// with the serial in URI form (TDS §12.3.2).
    pub fn tag_uri(&self) -> String {
        format!(
            "urn:epc:tag:sgtin-198:{}.{}.{}.{}",
            self.filter,
            self.cp(),
            self.ir(),
            self.serial.to_uri()
        )
    }

    /// The binary encoding: 198 bits, zero-padded to 208 (13 words of
    /// Gen2 EPC memory) (TDS §14.5.1.2).
    pub fn encode(&self) -> [u8; 26] {
        let mut w = BitWriter::default();
        write_prefix(
            &mut w,
            HEADER_SGTIN198,
            self.filter,
            self.partition,
            self.company_prefix,
            self.item_reference,
        );
        self.serial.write(&mut w, 140);
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EpcError> {
        let mut r = BitReader::new(bytes, 8);
        let filter = r.read(3) as u8;
        let p = read_prefix(&mut r, &partition::SGTIN, "sgtin-198")?;
        let item_reference = r.read(p.row.other_bits);
        check_fit(
            "sgtin-198",
            "item reference",
            item_reference,
            p.row.other_digits,
        )?;
        let serial = Cset82::read(&mut r, 140, SGTIN198_SERIAL_CHARS)?;
        Ok(Sgtin198 {
            filter,
            partition: p.partition,
            company_prefix: p.company_prefix,
            item_reference,
            serial,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtin_split_and_join() {
        // TDS §7.3 example: GTIN 80614141123458, company prefix 0614141.
        let g = Gtin::parse("80614141123458").unwrap();
        assert_eq!(split_gtin(g, 7), Ok((5, 614_141, 812_345)));
        assert_eq!(gtin_of(5, 614_141, 812_345), Some(g));
        // A 12-digit company prefix: the item reference is the indicator.
        let (p, cp, ir) = split_gtin(g, 12).unwrap();
        assert_eq!((p, cp, ir), (0, 61_414_112_345, 8));
        assert_eq!(gtin_of(p, cp, ir), Some(g));
        assert!(split_gtin(g, 5).is_err());
        assert!(split_gtin(g, 13).is_err());
    }
}
