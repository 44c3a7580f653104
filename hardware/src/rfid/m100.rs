//! The Magic RF M100 / QM100 module protocol (and the many readers that
//! speak it): commands and notices on top of [`super::frame`].
//!
//! Pure. Commands used: single inventory 0x22, multiple inventory 0x27
//! (payload: reserved 0x22, round count MSB first), stop multiple
//! inventory 0x28. Inventory results arrive as notices (type 0x02, command
//! 0x22) with payload RSSI (1 byte, signed dBm), PC (2 bytes), EPC (length
//! from PC bits 15–11, in 16-bit words), CRC (2 bytes). Errors arrive as
//! responses with command 0xFF and a one-byte code; 0x15 means "no tag
//! answered this round", which is routine during inventory.
//!
//! The CRC is the one the tag backscattered over PC and EPC (EPC Gen2
//! CRC-16: polynomial 0x1021, preset 0xFFFF, complemented; it matches the
//! manual's example). A read whose CRC does not match is refused: one
//! flipped bit in an EPC would otherwise receive or sell a unit of
//! another item.

use tally_sync::Epc;

use super::frame::{encode_into, FrameReader, FrameType};
use super::{ProtocolStats, ReaderEvent, ReaderProtocol, TagRead};

/// Single inventory command.
pub const CMD_SINGLE_INVENTORY: u8 = 0x22;
/// Multiple inventory command.
pub const CMD_MULTIPLE_INVENTORY: u8 = 0x27;
/// Stop multiple inventory command.
pub const CMD_STOP: u8 = 0x28;
/// Error response command code.
pub const CMD_ERROR: u8 = 0xFF;
/// Error code: no tag answered in the round.
pub const ERR_NO_TAG: u8 = 0x15;

/// Why a notice payload is not a tag read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    /// The payload length does not match the EPC length in the PC word.
    #[error("inventory notice of {found} bytes, PC says {expected}")]
    Length {
        /// Bytes the PC word implies.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The EPC is shorter than Tally accepts.
    #[error("EPC of {0} bytes is not accepted")]
    Epc(usize),
    /// The tag's CRC does not cover the PC and EPC received: a corrupted
    /// read.
    #[error("tag CRC {found:#06x} does not match PC and EPC (want {expected:#06x})")]
    TagCrc {
        /// The CRC of the PC and EPC received.
        expected: u16,
        /// The CRC in the notice.
        found: u16,
    },
}

/// The EPC Gen2 CRC-16 of a tag's PC word and EPC (what the tag sends
/// after them): CRC-16/GENIBUS, polynomial 0x1021, preset 0xFFFF, result
/// complemented.
pub fn tag_crc(pc: u16, epc: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in pc.to_be_bytes().iter().chain(epc) {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    !crc
}

/// Parses an inventory notice payload.
pub fn parse_notice(payload: &[u8]) -> Result<TagRead, NoticeError> {
    let (Some(&rssi), Some(&pc_hi), Some(&pc_lo)) =
        (payload.first(), payload.get(1), payload.get(2))
    else {
        return Err(NoticeError::Length {
            expected: 5,
            found: payload.len(),
        });
    };
    let pc = u16::from_be_bytes([pc_hi, pc_lo]);
    let epc_len = usize::from(pc >> 11) * 2;
    let expected = 1 + 2 + epc_len + 2;
    if payload.len() != expected {
        return Err(NoticeError::Length {
            expected,
            found: payload.len(),
        });
    }
    let epc_bytes = &payload[3..3 + epc_len];
    let found = u16::from_be_bytes([payload[3 + epc_len], payload[4 + epc_len]]);
    let expected = tag_crc(pc, epc_bytes);
    if found != expected {
        return Err(NoticeError::TagCrc { expected, found });
    }
    let epc = Epc::from_bytes(epc_bytes).map_err(|_| NoticeError::Epc(epc_len))?;
    Ok(TagRead {
        epc,
        rssi: i8::from_ne_bytes([rssi]),
        pc,
        antenna: None,
    })
}

/// Builds the payload of an inventory notice, with the tag's CRC (used by
/// simulators and tests).
pub fn notice_payload(read: &TagRead) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + read.epc.as_bytes().len());
    p.push(read.rssi.to_ne_bytes()[0]);
    p.extend_from_slice(&read.pc.to_be_bytes());
    p.extend_from_slice(read.epc.as_bytes());
    p.extend_from_slice(&tag_crc(read.pc, read.epc.as_bytes()).to_be_bytes());
    p
}

/// The PC word for an EPC of `bytes` bytes (length field only).
pub fn pc_for_len(bytes: usize) -> u16 {
    ((bytes / 2) as u16) << 11
}

/// The M100 protocol state: a frame reader plus settings.
#[derive(Debug)]
pub struct M100 {
    reader: FrameReader,
    /// Rounds per multiple-inventory command (0xFFFF: as many as the module
    /// allows; the driver re-issues the command when the reader goes idle).
    pub rounds: u16,
    bad_payload: u64,
}

impl M100 {
    /// A protocol instance running `rounds` rounds per inventory command.
    pub fn new(rounds: u16) -> Self {
        M100 {
            reader: FrameReader::new(),
            rounds,
            bad_payload: 0,
        }
    }

    fn command(command: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + payload.len());
        // Payloads built here are a few bytes: encoding cannot fail.
        if encode_into(FrameType::Command, command, payload, &mut out).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for M100 {
    fn default() -> Self {
        M100::new(0xFFFF)
    }
}

impl ReaderProtocol for M100 {
    fn name(&self) -> &'static str {
        "m100"
    }

    fn start_inventory(&self) -> Vec<u8> {
        let [hi, lo] = self.rounds.to_be_bytes();
        Self::command(CMD_MULTIPLE_INVENTORY, &[0x22, hi, lo])
    }

    fn stop_inventory(&self) -> Vec<u8> {
        Self::command(CMD_STOP, &[])
    }

    fn push(&mut self, bytes: &[u8]) {
        self.reader.push(bytes);
    }

    fn next_event(&mut self) -> Option<ReaderEvent> {
        let item = self.reader.next_frame()?;
        let frame = match item {
            Ok(frame) => frame,
            Err(e) => return Some(ReaderEvent::Malformed(e.to_string())),
        };
        let event = match (frame.frame_type, frame.command) {
            (FrameType::Notice, CMD_SINGLE_INVENTORY)
            | (FrameType::Response, CMD_SINGLE_INVENTORY) => match parse_notice(frame.payload) {
                Ok(read) => ReaderEvent::Tag(read),
                Err(e) => {
                    self.bad_payload += 1;
                    ReaderEvent::Malformed(e.to_string())
                }
            },
            (FrameType::Response, CMD_ERROR) => match frame.payload.first() {
                Some(&code) => ReaderEvent::Error {
                    command: None,
                    code: u16::from(code),
                    no_tag: code == ERR_NO_TAG,
                    detail: None,
                },
                None => {
                    self.bad_payload += 1;
                    ReaderEvent::Malformed("error response without a code".into())
                }
            },
            (_, command) => ReaderEvent::Response {
                command: u16::from(command),
            },
        };
        Some(event)
    }

    fn drop_stale(&mut self) -> bool {
        self.reader.drop_stale()
    }

    fn reset(&mut self) {
        while self.reader.drop_stale() {}
    }

    fn stats(&self) -> ProtocolStats {
        let s = self.reader.stats();
        ProtocolStats {
            frames: s.frames,
            skipped_bytes: s.skipped_bytes,
            bad_checksum: s.bad_checksum,
            bad_payload: self.bad_payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    // M100 user protocol command examples: multiple inventory with CNT =
    // 10000 (0x2710) is BB 00 27 00 03 22 27 10 83 7E; stop is
    // BB 00 28 00 00 28 7E.
    #[test]
    fn builds_commands() {
        assert_eq!(
            M100::new(10_000).start_inventory(),
            hex("BB 00 27 00 03 22 27 10 83 7E")
        );
        assert_eq!(
            M100::default().start_inventory(),
            hex("BB 00 27 00 03 22 FF FF 4A 7E")
        );
        assert_eq!(
            M100::default().stop_inventory(),
            hex("BB 00 28 00 00 28 7E")
        );
    }

    // The M100 manual's notice example: RSSI 0xC9 (−55 dBm), PC 0x3400
    // (6 words), EPC 30751FEB705C5904E3D50D70, CRC 0x3A76.
    #[test]
    fn decodes_events() {
        let mut p = M100::default();
        p.push(&hex(
            "BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E",
        ));
        p.push(&hex("BB 01 FF 00 01 15 16 7E"));
        p.push(&hex("BB 01 FF 00 01 09 0A 7E"));
        p.push(&hex("BB 01 28 00 01 00 2A 7E"));
        // Notice whose PC claims 8 words but carries 6.
        p.push(&hex(
            "BB 02 22 00 11 C9 44 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 FF 7E",
        ));
        let events: Vec<ReaderEvent> = std::iter::from_fn(|| p.next_event()).collect();
        assert_eq!(events.len(), 5);
        assert_eq!(
            events[0],
            ReaderEvent::Tag(TagRead {
                epc: Epc::from_hex("30751FEB705C5904E3D50D70").unwrap(),
                rssi: -55,
                pc: 0x3400,
                antenna: None,
            })
        );
        assert_eq!(
            events[1],
            ReaderEvent::Error {
                command: None,
                code: 0x15,
                no_tag: true,
                detail: None,
            }
        );
        assert_eq!(
            events[2],
            ReaderEvent::Error {
                command: None,
                code: 0x09,
                no_tag: false,
                detail: None,
            }
        );
        assert_eq!(
            events[3],
            ReaderEvent::Response {
                command: u16::from(CMD_STOP)
            }
        );
        assert!(matches!(events[4], ReaderEvent::Malformed(_)));
        assert_eq!(p.stats().bad_payload, 1);
    }

    #[test]
    fn notice_round_trips() {
        let read = TagRead {
            epc: Epc::from_hex("3074257BF7194E4000001A85").unwrap(),
            rssi: -70,
            pc: pc_for_len(12),
            antenna: None,
        };
        assert_eq!(parse_notice(&notice_payload(&read)).unwrap(), read);
        assert!(parse_notice(&[]).is_err());
        let [hi, lo] = tag_crc(0, &[]).to_be_bytes();
        assert_eq!(
            parse_notice(&[0xC9, 0x00, 0x00, hi, lo]),
            Err(NoticeError::Epc(0)),
            "zero-length EPC"
        );
    }

    // The manual's example has the right CRC; the same notice with one
    // EPC bit flipped in the air (0x70 → 0x71 at the end), re-framed with a
    // valid frame checksum, is refused and counted, not read as another tag.
    #[test]
    fn a_read_whose_tag_crc_does_not_match_is_refused() {
        let epc = hex("30 75 1F EB 70 5C 59 04 E3 D5 0D 70");
        assert_eq!(tag_crc(0x3400, &epc), 0x3A76);
        let mut payload = hex("C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 71 3A 76");
        assert_eq!(
            parse_notice(&payload),
            Err(NoticeError::TagCrc {
                expected: tag_crc(0x3400, &payload[3..15]),
                found: 0x3A76
            })
        );
        let mut p = M100::default();
        let mut bytes = Vec::new();
        encode_into(
            FrameType::Notice,
            CMD_SINGLE_INVENTORY,
            &payload,
            &mut bytes,
        )
        .unwrap();
        p.push(&bytes);
        assert!(matches!(p.next_event(), Some(ReaderEvent::Malformed(m)) if m.contains("CRC")));
        assert_eq!(p.stats().bad_payload, 1);
        assert_eq!(p.stats().bad_checksum, 0, "the frame itself was fine");
        // With the CRC mended, it is a tag.
        let mended = tag_crc(0x3400, &payload[3..15]).to_be_bytes();
        payload[15..].copy_from_slice(&mended);
        assert!(parse_notice(&payload).is_ok());
    }
}
