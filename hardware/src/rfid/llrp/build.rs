//! Builds LLRP messages: the client's requests (what Tally sends) and, for
//! simulators, tests and fuzz seeds, the reader's messages Tally reads.
//!
//! Field layouts and orders are those of LLRP 1.0.1 §16.1 (messages) and
//! §16.2 (parameters); each builder cites its section.

use super::header::{Header, VERSION};
use super::param::put_tlv;
use super::report::{self, TagReportData};
use super::types::{
    msg, param, ConnectionAttempt, KEEPALIVE_PERIODIC, PROTOCOL_EPC_C1G2,
    REPORT_UPON_N_TAGS_OR_END_OF_AI_SPEC, RO_SPEC_DISABLED, TRIGGER_NULL,
};

/// TagReportContentSelector bits (§16.2.7.1.1), most significant first:
/// EnableROSpecID (15), EnableSpecIndex (14),
/// EnableInventoryParameterSpecID (13), EnableAntennaID (12),
/// EnableChannelIndex (11), EnablePeakRSSI (10), EnableFirstSeenTimestamp
/// (9), EnableLastSeenTimestamp (8), EnableTagSeenCount (7),
/// EnableAccessSpecID (6), then 6 reserved bits.
pub mod content {
    /// EnableAntennaID.
    pub const ANTENNA_ID: u16 = 1 << 12;
    /// EnablePeakRSSI.
    pub const PEAK_RSSI: u16 = 1 << 10;
    /// EnableFirstSeenTimestamp.
    pub const FIRST_SEEN_TIMESTAMP: u16 = 1 << 9;
    /// What Tally asks for: antenna, peak RSSI, first-seen timestamp.
    pub const TALLY: u16 = ANTENNA_ID | PEAK_RSSI | FIRST_SEEN_TIMESTAMP;
}

/// A whole message of type `kind` with ID `id` whose body `body` writes.
pub fn message(kind: u16, id: u32, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    Header {
        version: VERSION,
        kind,
        length: 0,
        id,
    }
    .encode_into(&mut out);
    body(&mut out);
    let len = u32::try_from(out.len()).unwrap_or(u32::MAX);
    out[2..6].copy_from_slice(&len.to_be_bytes());
    out
}

fn rospec_id_message(kind: u16, id: u32, rospec_id: u32) -> Vec<u8> {
    message(kind, id, |o| o.extend_from_slice(&rospec_id.to_be_bytes()))
}

/// GET_READER_CAPABILITIES asking for all capabilities (RequestedData 0;
/// §16.1.1).
pub fn get_reader_capabilities(id: u32) -> Vec<u8> {
    message(msg::GET_READER_CAPABILITIES, id, |o| o.push(0))
}

/// ROReportSpec (§16.2.7.1): report upon `n` tags or the end of the
/// AISpec, with a TagReportContentSelector of `content` bits.
fn ro_report_spec(out: &mut Vec<u8>, n: u16, content: u16) {
    put_tlv(out, param::RO_REPORT_SPEC, |o| {
        o.push(REPORT_UPON_N_TAGS_OR_END_OF_AI_SPEC);
        o.extend_from_slice(&n.to_be_bytes());
        put_tlv(o, param::TAG_REPORT_CONTENT_SELECTOR, |o| {
            o.extend_from_slice(&content.to_be_bytes());
        });
    });
}

/// SET_READER_CONFIG (§16.1.38) without a factory reset (an installer's
/// antenna and power settings stay), carrying, in the specification's
/// order, an ROReportSpec (report every `report_n` tags with antenna, peak
/// RSSI and first-seen timestamp) and a periodic KeepaliveSpec every
/// `keepalive_ms` (§16.2.6.4).
pub fn set_reader_config(id: u32, report_n: u16, keepalive_ms: u32) -> Vec<u8> {
    message(msg::SET_READER_CONFIG, id, |o| {
        // ResetToFactoryDefault (1 bit) = 0, 7 reserved bits.
        o.push(0);
        ro_report_spec(o, report_n, content::TALLY);
        put_tlv(o, param::KEEPALIVE_SPEC, |o| {
            o.push(KEEPALIVE_PERIODIC);
            o.extend_from_slice(&keepalive_ms.to_be_bytes());
        });
    })
}

/// DELETE_ROSPEC (§16.1.5); ROSpecID 0 deletes every ROSpec.
pub fn delete_rospec(id: u32, rospec_id: u32) -> Vec<u8> {
    rospec_id_message(msg::DELETE_ROSPEC, id, rospec_id)
}

/// ADD_ROSPEC (§16.1.3) with one ROSpec (§16.2.4.1), added disabled at
/// priority 0: an ROBoundarySpec with a null start trigger (it runs on
/// START_ROSPEC) and a null stop trigger (until STOP_ROSPEC); one AISpec
/// (§16.2.4.2) over every antenna (antenna ID 0) with a null stop trigger
/// and one InventoryParameterSpec (ID 1, EPCGlobalClass1Gen2); and an
/// ROReportSpec reporting every `report_n` tags or at the end of the
/// AISpec.
pub fn add_rospec(id: u32, rospec_id: u32, report_n: u16) -> Vec<u8> {
    message(msg::ADD_ROSPEC, id, |o| {
        put_tlv(o, param::RO_SPEC, |o| {
            o.extend_from_slice(&rospec_id.to_be_bytes());
            o.push(0); // Priority
            o.push(RO_SPEC_DISABLED);
            put_tlv(o, param::RO_BOUNDARY_SPEC, |o| {
                put_tlv(o, param::RO_SPEC_START_TRIGGER, |o| o.push(TRIGGER_NULL));
                put_tlv(o, param::RO_SPEC_STOP_TRIGGER, |o| {
                    o.push(TRIGGER_NULL);
                    o.extend_from_slice(&0u32.to_be_bytes()); // DurationTriggerValue
                });
            });
            put_tlv(o, param::AI_SPEC, |o| {
                o.extend_from_slice(&1u16.to_be_bytes()); // AntennaCount
                o.extend_from_slice(&0u16.to_be_bytes()); // antenna 0: all
                put_tlv(o, param::AI_SPEC_STOP_TRIGGER, |o| {
                    o.push(TRIGGER_NULL);
                    o.extend_from_slice(&0u32.to_be_bytes()); // DurationTrigger
                });
                put_tlv(o, param::INVENTORY_PARAMETER_SPEC, |o| {
                    o.extend_from_slice(&1u16.to_be_bytes());
                    o.push(PROTOCOL_EPC_C1G2);
                });
            });
            ro_report_spec(o, report_n, content::TALLY);
        });
    })
}

/// ENABLE_ROSPEC (§16.1.11).
pub fn enable_rospec(id: u32, rospec_id: u32) -> Vec<u8> {
    rospec_id_message(msg::ENABLE_ROSPEC, id, rospec_id)
}

/// START_ROSPEC (§16.1.7).
pub fn start_rospec(id: u32, rospec_id: u32) -> Vec<u8> {
    rospec_id_message(msg::START_ROSPEC, id, rospec_id)
}

/// STOP_ROSPEC (§16.1.9).
pub fn stop_rospec(id: u32, rospec_id: u32) -> Vec<u8> {
    rospec_id_message(msg::STOP_ROSPEC, id, rospec_id)
}

/// KEEPALIVE_ACK (§16.1.32), with the ID of the KEEPALIVE it answers.
pub fn keepalive_ack(id: u32) -> Vec<u8> {
    message(msg::KEEPALIVE_ACK, id, |_| {})
}

/// CLOSE_CONNECTION (§16.1.40).
pub fn close_connection(id: u32) -> Vec<u8> {
    message(msg::CLOSE_CONNECTION, id, |_| {})
}

// --- What a reader sends (simulators, tests, fuzz seeds). ---

/// LLRPStatus (§16.2.8.1).
fn llrp_status(out: &mut Vec<u8>, code: u16, description: &str) {
    put_tlv(out, param::LLRP_STATUS, |o| {
        o.extend_from_slice(&code.to_be_bytes());
        let text = &description.as_bytes()[..description.len().min(1024)];
        o.extend_from_slice(&(text.len() as u16).to_be_bytes());
        o.extend_from_slice(text);
    });
}

/// A response of type `kind` to request `id` with an LLRPStatus.
pub fn response(kind: u16, id: u32, code: u16, description: &str) -> Vec<u8> {
    message(kind, id, |o| llrp_status(o, code, description))
}

/// ERROR_MESSAGE (§16.1.35).
pub fn error_message(id: u32, code: u16, description: &str) -> Vec<u8> {
    response(msg::ERROR_MESSAGE, id, code, description)
}

/// READER_EVENT_NOTIFICATION (§16.1.33) with a UTCTimestamp and a
/// ConnectionAttemptEvent.
pub fn connection_attempt(id: u32, utc_us: u64, attempt: ConnectionAttempt) -> Vec<u8> {
    message(msg::READER_EVENT_NOTIFICATION, id, |o| {
        put_tlv(o, param::READER_EVENT_NOTIFICATION_DATA, |o| {
            put_tlv(o, param::UTC_TIMESTAMP, |o| {
                o.extend_from_slice(&utc_us.to_be_bytes());
            });
            put_tlv(o, param::CONNECTION_ATTEMPT_EVENT, |o| {
                o.extend_from_slice(&attempt.code().to_be_bytes());
            });
        });
    })
}

/// READER_EVENT_NOTIFICATION (§16.1.33) with a UTCTimestamp and a
/// ConnectionCloseEvent (§16.2.7.6.11, no fields).
pub fn connection_close(id: u32, utc_us: u64) -> Vec<u8> {
    message(msg::READER_EVENT_NOTIFICATION, id, |o| {
        put_tlv(o, param::READER_EVENT_NOTIFICATION_DATA, |o| {
            put_tlv(o, param::UTC_TIMESTAMP, |o| {
                o.extend_from_slice(&utc_us.to_be_bytes());
            });
            put_tlv(o, param::CONNECTION_CLOSE_EVENT, |_| {});
        });
    })
}

/// KEEPALIVE (§16.1.31).
pub fn keepalive(id: u32) -> Vec<u8> {
    message(msg::KEEPALIVE, id, |_| {})
}

/// RO_ACCESS_REPORT (§16.1.30) with `tags`.
pub fn ro_access_report(id: u32, tags: &[TagReportData]) -> Vec<u8> {
    message(msg::RO_ACCESS_REPORT, id, |o| {
        for t in tags {
            report::encode_into(t, o);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    // Each vector worked by hand from §16.1 / §16.2: header 04 TT (version
    // 1, type), length, ID; then the body.
    #[test]
    fn client_messages_byte_for_byte() {
        // DELETE_ROSPEC (21 = 0x15), ID 2, ROSpecID 0 (all).
        assert_eq!(
            delete_rospec(2, 0),
            hex("04 15 00 00 00 0E 00 00 00 02 00 00 00 00")
        );
        // ENABLE (24 = 0x18), START (22 = 0x16), STOP (23 = 0x17), ROSpecID 1.
        assert_eq!(
            enable_rospec(4, 1),
            hex("04 18 00 00 00 0E 00 00 00 04 00 00 00 01")
        );
        assert_eq!(
            start_rospec(5, 1),
            hex("04 16 00 00 00 0E 00 00 00 05 00 00 00 01")
        );
        assert_eq!(
            stop_rospec(6, 1),
            hex("04 17 00 00 00 0E 00 00 00 06 00 00 00 01")
        );
        // KEEPALIVE_ACK (72 = 0x48) echoing ID 0x0102; CLOSE_CONNECTION
        // (14 = 0x0E); GET_READER_CAPABILITIES (1) RequestedData 0 (all).
        assert_eq!(keepalive_ack(0x0102), hex("04 48 00 00 00 0A 00 00 01 02"));
        assert_eq!(close_connection(7), hex("04 0E 00 00 00 0A 00 00 00 07"));
        assert_eq!(
            get_reader_capabilities(8),
            hex("04 01 00 00 00 0B 00 00 00 08 00")
        );
    }

    // SET_READER_CONFIG (3): ResetToFactoryDefault 0; ROReportSpec (237 =
    // 0x00ED, length 4 + 1 + 2 + 6 = 13) with trigger 1, N = 1 and a
    // TagReportContentSelector (238 = 0x00EE, length 6) of 0x1600 (antenna
    // bit 12, peak RSSI bit 10, first seen bit 9); KeepaliveSpec (220 =
    // 0x00DC, length 9) periodic (1) every 5000 ms (0x1388). Length
    // 10 + 1 + 13 + 9 = 33 (0x21).
    #[test]
    fn set_reader_config_bytes() {
        assert_eq!(
            set_reader_config(1, 1, 5000),
            hex("04 03 00 00 00 21 00 00 00 01  00  \
                 00 ED 00 0D 01 00 01 00 EE 00 06 16 00  \
                 00 DC 00 09 01 00 00 13 88")
        );
    }

    // ADD_ROSPEC (20 = 0x14) with ROSpec (177 = 0x00B1): ID 1, priority 0,
    // state 0 (disabled); ROBoundarySpec (178 = 0x00B2, 4 + 5 + 9 = 18)
    // holding ROSpecStartTrigger (179 = 0x00B3, length 5, null) and
    // ROSpecStopTrigger (182 = 0x00B6, length 9, null, duration 0);
    // AISpec (183 = 0x00B7, 4 + 2 + 2 + 9 + 7 = 24): one antenna, ID 0,
    // AISpecStopTrigger (184 = 0x00B8, length 9, null),
    // InventoryParameterSpec (186 = 0x00BA, length 7: ID 1, protocol 1);
    // ROReportSpec as above (13). ROSpec length 4 + 6 + 18 + 24 + 13 = 65
    // (0x41); message 10 + 65 = 75 (0x4B).
    #[test]
    fn add_rospec_bytes() {
        assert_eq!(
            add_rospec(3, 1, 1),
            hex("04 14 00 00 00 4B 00 00 00 03  \
                 00 B1 00 41 00 00 00 01 00 00  \
                 00 B2 00 12 00 B3 00 05 00 00 B6 00 09 00 00 00 00 00  \
                 00 B7 00 18 00 01 00 00 00 B8 00 09 00 00 00 00 00 00 BA 00 07 00 01 01  \
                 00 ED 00 0D 01 00 01 00 EE 00 06 16 00")
        );
    }
}
