//! TagReportData (LLRP 1.0.1 §13.2.3, encoding §16.2.7.3): one tag in an
//! RO_ACCESS_REPORT, decoded to the fields Tally uses, and encoded (for
//! simulators, tests and fuzz seeds).
//!
//! The EPC comes first, as EPC-96 (TV 13, exactly 96 bits) or EPCData
//! (TLV 241: a bit count, then the bits padded to whole bytes). Then, each
//! optional and in this order: ROSpecID, SpecIndex,
//! InventoryParameterSpecID, AntennaID, PeakRSSI, ChannelIndex, the four
//! timestamps, TagSeenCount, air-protocol data (C1G2 PC, CRC, …),
//! AccessSpecID, op-spec results and Custom parameters. Tally reads the
//! EPC, AntennaID, PeakRSSI, FirstSeenTimestampUTC and the C1G2 PC; every
//! other parameter, known or not, is skipped by its length. An undefined
//! TV type ends the walk (its length is unknown), keeping what was read
//! before it.

use super::param::{be_u16, be_u64, put_tlv, put_tv, ParamError, ParamType, Params};
use super::types::param;

/// One tag from a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagReportData {
    /// The EPC bytes (EPC-96: 12 bytes; EPCData: the bit count rounded up
    /// to bytes).
    pub epc: Vec<u8>,
    /// The EPC's length in bits (96 for EPC-96).
    pub epc_bits: u16,
    /// The antenna that read it.
    pub antenna: Option<u16>,
    /// Peak RSSI in dBm.
    pub peak_rssi: Option<i8>,
    /// When the reader first saw it, microseconds since 1970-01-01 UTC
    /// (the reader's clock).
    pub first_seen_utc_us: Option<u64>,
    /// The Gen2 PC word, when the reader reports it.
    pub pc: Option<u16>,
}

/// Why a TagReportData is not a tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// No EPC-96 or EPCData first.
    #[error("TagReportData without an EPC")]
    NoEpc,
    /// EPCData whose bit count needs more bytes than it carries.
    #[error("EPCData of {bits} bits carries {bytes} bytes")]
    EpcLength {
        /// The bit count.
        bits: u16,
        /// The bytes present.
        bytes: usize,
    },
    /// The parameters do not parse before the EPC was found.
    #[error(transparent)]
    Param(#[from] ParamError),
}

/// What decoding one TagReportData found besides the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Skipped {
    /// Parameters skipped (unknown or unused).
    pub params: u32,
    /// Whether an undefined TV type or a malformed parameter ended the
    /// walk early.
    pub cut_short: bool,
}

/// Decodes the value of a TagReportData parameter.
pub fn decode(value: &[u8]) -> Result<(TagReportData, Skipped), ReportError> {
    let mut params = Params::new(value);
    let first = params.next().ok_or(ReportError::NoEpc)??;
    let (epc, epc_bits) = match first.kind {
        ParamType::Tv(param::EPC_96) => (first.value.to_vec(), 96),
        ParamType::Tlv(param::EPC_DATA) => {
            let bits = be_u16(first.value, 0).ok_or(ReportError::NoEpc)?;
            let bytes = usize::from(bits).div_ceil(8);
            let data = &first.value[2..];
            let epc = data.get(..bytes).ok_or(ReportError::EpcLength {
                bits,
                bytes: data.len(),
            })?;
            (epc.to_vec(), bits)
        }
        _ => return Err(ReportError::NoEpc),
    };
    let mut tag = TagReportData {
        epc,
        epc_bits,
        antenna: None,
        peak_rssi: None,
        first_seen_utc_us: None,
        pc: None,
    };
    let mut skipped = Skipped::default();
    for p in params {
        let Ok(p) = p else {
            skipped.cut_short = true;
            break;
        };
        match p.kind {
            ParamType::Tv(param::ANTENNA_ID) => tag.antenna = be_u16(p.value, 0),
            ParamType::Tv(param::PEAK_RSSI) => {
                tag.peak_rssi = p.value.first().map(|&b| i8::from_be_bytes([b]));
            }
            ParamType::Tv(param::FIRST_SEEN_UTC) => tag.first_seen_utc_us = be_u64(p.value, 0),
            ParamType::Tv(param::C1G2_PC) => tag.pc = be_u16(p.value, 0),
            _ => skipped.params += 1,
        }
    }
    Ok((tag, skipped))
}

/// Appends `tag` as a TagReportData parameter: EPC-96 when the EPC is
/// exactly 96 bits, EPCData otherwise, then the optional fields present,
/// in the specification's order.
pub fn encode_into(tag: &TagReportData, out: &mut Vec<u8>) {
    put_tlv(out, param::TAG_REPORT_DATA, |o| {
        if tag.epc_bits == 96 && tag.epc.len() == 12 {
            put_tv(o, param::EPC_96, &tag.epc);
        } else {
            put_tlv(o, param::EPC_DATA, |o| {
                o.extend_from_slice(&tag.epc_bits.to_be_bytes());
                o.extend_from_slice(&tag.epc);
            });
        }
        if let Some(a) = tag.antenna {
            put_tv(o, param::ANTENNA_ID, &a.to_be_bytes());
        }
        if let Some(r) = tag.peak_rssi {
            put_tv(o, param::PEAK_RSSI, &r.to_be_bytes());
        }
        if let Some(t) = tag.first_seen_utc_us {
            put_tv(o, param::FIRST_SEEN_UTC, &t.to_be_bytes());
        }
        if let Some(pc) = tag.pc {
            put_tv(o, param::C1G2_PC, &pc.to_be_bytes());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfid::llrp::param::Params;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    /// The value of the single TLV in `bytes`.
    fn value_of(bytes: &[u8]) -> &[u8] {
        Params::new(bytes).next().unwrap().unwrap().value
    }

    // §16.2.7.3 worked by hand: TagReportData (240 = 0x00F0), length
    // 4 + 13 (EPC-96: 0x8D + 12 bytes, the TDS SGTIN-96 example) + 3
    // (AntennaID 0x81 0001) + 2 (PeakRSSI 0x86, -55 = 0xC9) + 9
    // (FirstSeenTimestampUTC 0x82, 8 bytes) = 31 = 0x1F.
    #[test]
    fn decodes_epc96_with_antenna_rssi_and_timestamp() {
        let bytes = hex(
            "00 F0 00 1F  8D 30 74 25 7B F7 19 4E 40 00 00 1A 85  81 00 01  86 C9  \
             82 00 05 F5 E1 00 00 00 2A",
        );
        let (tag, skipped) = decode(value_of(&bytes)).unwrap();
        assert_eq!(tag.epc, hex("30 74 25 7B F7 19 4E 40 00 00 1A 85"));
        assert_eq!(tag.epc_bits, 96);
        assert_eq!(tag.antenna, Some(1));
        assert_eq!(tag.peak_rssi, Some(-55));
        assert_eq!(tag.first_seen_utc_us, Some(0x0005_F5E1_0000_002A));
        assert_eq!(skipped, Skipped::default());
        let mut again = Vec::new();
        encode_into(&tag, &mut again);
        assert_eq!(again, bytes);
    }

    // EPCData (241 = 0x00F1): bit count 128 (0x0080) then 16 bytes; length
    // 4 + 2 + 16 = 22 (0x0016). A ROSpecID (TV 9, 4 bytes), a ChannelIndex
    // (TV 7) and a vendor Custom TLV (1023) between the fields are skipped.
    #[test]
    fn decodes_epcdata_and_skips_other_parameters() {
        let bytes = hex(
            "00 F0 00 33  00 F1 00 16 00 80 E2 80 11 60 60 00 02 05 4C 0D B7 1D 00 00 00 01  \
             89 00 00 00 07  81 00 04  86 B0  87 00 03  03 FF 00 0C 00 00 00 19 00 00 00 01",
        );
        let (tag, skipped) = decode(value_of(&bytes)).unwrap();
        assert_eq!(tag.epc_bits, 128);
        assert_eq!(tag.epc.len(), 16);
        assert_eq!((tag.antenna, tag.peak_rssi), (Some(4), Some(-80)));
        assert_eq!(skipped.params, 3);
        assert!(!skipped.cut_short);
    }

    #[test]
    fn refuses_what_is_not_a_tag_and_keeps_what_precedes_an_unknown_tv() {
        assert_eq!(decode(&[]), Err(ReportError::NoEpc));
        // AntennaID first: no EPC.
        assert_eq!(decode(&hex("81 00 01")), Err(ReportError::NoEpc));
        // EPCData claiming 96 bits with 4 bytes.
        assert_eq!(
            decode(&hex("00 F1 00 0A 00 60 01 02 03 04")),
            Err(ReportError::EpcLength { bits: 96, bytes: 4 })
        );
        // EPCData without its bit count.
        assert_eq!(decode(&hex("00 F1 00 05 00")), Err(ReportError::NoEpc));
        // Undefined TV 0x7E after the antenna: the tag and antenna stay.
        let (tag, skipped) = decode(&hex(
            "8D 30 74 25 7B F7 19 4E 40 00 00 1A 85 81 00 02 FE 01 86 C9",
        ))
        .unwrap();
        assert_eq!((tag.antenna, tag.peak_rssi), (Some(2), None));
        assert!(skipped.cut_short);
    }
}
