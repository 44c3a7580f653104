//! Partition tables (TDS §14.5, tables as numbered in TDS 1.13; the same
//! values are in the GS1 TDT 2.0 definition files) and the "Partition
//! Table" decoding of §14.4.3 / §14.4.4 / §14.4.5 shared by every GS1
//! scheme here: a 3-bit partition, the GS1 Company Prefix (12 − partition
//! digits) and the scheme's second field.
//!
//! Partition 7 matches no row and is an error; a company prefix, or a
//! zero-padded second field, whose value has more digits than its row
//! allows is an error.

use super::bits::BitReader;
use super::EpcError;

/// One row of a partition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    /// GS1 Company Prefix bits (M).
    pub cp_bits: u32,
    /// GS1 Company Prefix digits (L).
    pub cp_digits: u32,
    /// The other field's bits (N).
    pub other_bits: u32,
    /// The other field's digits (K): exact for padded fields, a maximum
    /// for GIAI-96 digits and GIAI-202 characters.
    pub other_digits: u32,
}

/// A partition table: rows for partition values 0 to 6.
pub(crate) type Table = [Row; 7];

const fn table(cp_bits: [u32; 7], other_bits: [u32; 7], other_digits: [u32; 7]) -> Table {
    let mut rows = [Row {
        cp_bits: 0,
        cp_digits: 0,
        other_bits: 0,
        other_digits: 0,
    }; 7];
    let mut p = 0;
    while p < 7 {
        rows[p] = Row {
            cp_bits: cp_bits[p],
            cp_digits: 12 - p as u32,
            other_bits: other_bits[p],
            other_digits: other_digits[p],
        };
        p += 1;
    }
    rows
}

/// Company prefix bits for partitions 0 to 6, the same in every table.
const CP_BITS: [u32; 7] = [40, 37, 34, 30, 27, 24, 20];

/// SGTIN (Table 14-2): indicator/pad digit and item reference.
pub(crate) const SGTIN: Table = table(CP_BITS, [4, 7, 10, 14, 17, 20, 24], [1, 2, 3, 4, 5, 6, 7]);
/// SSCC (Table 14-5): extension digit and serial reference.
pub(crate) const SSCC: Table = table(
    CP_BITS,
    [18, 21, 24, 28, 31, 34, 38],
    [5, 6, 7, 8, 9, 10, 11],
);
/// SGLN (Table 14-7): location reference.
pub(crate) const SGLN: Table = table(CP_BITS, [1, 4, 7, 11, 14, 17, 21], [0, 1, 2, 3, 4, 5, 6]);
/// GRAI (Table 14-10): asset type.
pub(crate) const GRAI: Table = table(CP_BITS, [4, 7, 10, 14, 17, 20, 24], [0, 1, 2, 3, 4, 5, 6]);
/// GIAI-96 (Table 14-13): individual asset reference, an unpadded integer
/// of at most K digits.
pub(crate) const GIAI_96: Table = table(
    CP_BITS,
    [42, 45, 48, 52, 55, 58, 62],
    [13, 14, 15, 16, 17, 18, 19],
);
/// GIAI-202 (Table 14-15): individual asset reference, a 7-bit string of
/// at most K characters.
pub(crate) const GIAI_202: Table = table(
    CP_BITS,
    [148, 151, 154, 158, 161, 164, 168],
    [18, 19, 20, 21, 22, 23, 24],
);

/// The row of `partition`, or the §14.4.3 error for 7.
pub(crate) fn row(table: &Table, scheme: &'static str, partition: u8) -> Result<Row, EpcError> {
    table
        .get(usize::from(partition))
        .copied()
        .ok_or(EpcError::InvalidPartition { scheme, partition })
}

/// The partition whose company prefix has `digits` digits (6 to 12).
pub(crate) fn for_cp_digits(digits: usize) -> Option<u8> {
    (6..=12).contains(&digits).then(|| (12 - digits) as u8)
}

/// Whether `value` has at most `digits` decimal digits.
pub(crate) fn fits(value: u64, digits: u32) -> bool {
    10u64.checked_pow(digits).is_none_or(|limit| value < limit)
}

/// `Ok` when `value` has at most `digits` digits, else
/// [`EpcError::FieldOverflow`].
pub(crate) fn check_fit(
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

/// `value` zero-padded to `digits` digits (empty for 0 digits).
pub(crate) fn pad(value: u64, digits: u32) -> String {
    if digits == 0 {
        String::new()
    } else {
        format!("{value:0width$}", width = digits as usize)
    }
}

/// Partition and company prefix read after filter: the row, checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prefix {
    pub partition: u8,
    pub row: Row,
    pub company_prefix: u64,
}

/// Reads the partition and company prefix (§14.4.3 validity tests).
pub(crate) fn read_prefix(
    r: &mut BitReader<'_>,
    table: &Table,
    scheme: &'static str,
) -> Result<Prefix, EpcError> {
    let partition = r.read(3) as u8;
    let row = row(table, scheme, partition)?;
    let company_prefix = r.read(row.cp_bits);
    check_fit(scheme, "company prefix", company_prefix, row.cp_digits)?;
    Ok(Prefix {
        partition,
        row,
        company_prefix,
    })
}

/// Validates a partition and company prefix given to a constructor.
pub(crate) fn check_prefix(
    table: &Table,
    scheme: &'static str,
    partition: u8,
    company_prefix: u64,
) -> Result<Row, EpcError> {
    let row = row(table, scheme, partition)?;
    check_fit(scheme, "company prefix", company_prefix, row.cp_digits)?;
    Ok(row)
}

/// Validates a filter value given to a constructor (TDS §10.1: every value
/// 0 to 7 is accepted, reserved or not).
pub(crate) fn check_filter(filter: u8) -> Result<(), EpcError> {
    if filter > 7 {
        Err(EpcError::Encode("filter must be 0 to 7"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_fills_its_coding_segment() {
        // Company prefix + other field bits are constant per table (the
        // coding segment minus the 3 partition bits, TDS §14.5).
        for (table, total) in [
            (&SGTIN, 44),
            (&SSCC, 58),
            (&SGLN, 41),
            (&GRAI, 44),
            (&GIAI_96, 82),
            (&GIAI_202, 188),
        ] {
            for r in table {
                assert_eq!(r.cp_bits + r.other_bits, total);
                // The bits hold every value of the digits.
                assert!(10u128.pow(r.cp_digits) <= 1u128 << r.cp_bits);
            }
        }
        // Padded fields: company prefix + other digits are constant (the
        // key's length without check digit and indicator rules, §6.3).
        for (table, digits) in [(&SGTIN, 13), (&SSCC, 17), (&SGLN, 12), (&GRAI, 12)] {
            for r in table {
                assert_eq!(r.cp_digits + r.other_digits, digits);
            }
        }
    }

    #[test]
    fn partition_seven_is_invalid() {
        assert!(matches!(
            row(&SGTIN, "sgtin-96", 7),
            Err(EpcError::InvalidPartition { partition: 7, .. })
        ));
        assert_eq!(for_cp_digits(7), Some(5));
        assert_eq!(for_cp_digits(5), None);
        assert_eq!(for_cp_digits(13), None);
    }
}
