//! Property tests of the LLRP codec as a whole: what [`build`] encodes,
//! [`stream`] and [`message`] decode back, however TCP splits it; client
//! messages are well-formed parameter trees; and arbitrary bytes, in any
//! chunks, never panic the session.

use proptest::prelude::*;

use super::build;
use super::header::{Header, HEADER_LEN};
use super::message::{self, Message};
use super::param::{ParamType, Params};
use super::report::{self, TagReportData};
use super::session::Llrp;
use super::stream::{MessageReader, RawMessage};
use super::types::msg;
use crate::rfid::{ReaderEvent, ReaderProtocol};

fn tag() -> impl Strategy<Value = TagReportData> {
    (
        proptest::collection::vec(any::<u8>(), 2..=62),
        0u16..8,
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<i8>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(|(epc, short, antenna, peak_rssi, first_seen_utc_us, pc)| {
            // Whole bytes, or up to 7 bits fewer than the bytes hold
            // (EPCData pads the last byte).
            let full = (epc.len() * 8) as u16;
            let epc_bits = if short == 0 { full } else { full - short };
            TagReportData {
                epc,
                epc_bits,
                antenna,
                peak_rssi,
                first_seen_utc_us,
                pc,
            }
        })
}

/// Splits `bytes` at the given cut points.
fn split<'a>(bytes: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// Every parameter of `bytes`, recursively for TLVs whose value holds
/// nested parameters after `fields` bytes of fields (by type).
fn walk_tree(bytes: &[u8]) -> Result<usize, String> {
    let mut n = 0;
    for p in Params::new(bytes) {
        let p = p.map_err(|e| e.to_string())?;
        n += 1;
        // Fixed fields before nested parameters, per §16.2.
        let fields = match p.kind {
            ParamType::Tlv(177) => 6, // ROSpec
            ParamType::Tlv(183) => 4, // AISpec (one antenna)
            ParamType::Tlv(237) => 3, // ROReportSpec
            ParamType::Tlv(186) => 3, // InventoryParameterSpec
            ParamType::Tlv(178) => 0, // ROBoundarySpec
            _ => continue,            // leaves
        };
        n += walk_tree(&p.value[fields..])?;
    }
    Ok(n)
}

proptest! {
    #[test]
    fn reports_round_trip_across_any_split(
        tags in proptest::collection::vec(tag(), 0..8),
        id in any::<u32>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = build::keepalive(id);
        stream.extend(build::ro_access_report(id, &tags));
        stream.extend(build::keepalive(id.wrapping_add(1)));
        let mut r = MessageReader::new();
        let mut got = Vec::new();
        for part in split(&stream, &cuts) {
            r.push(part);
            while let Some(m) = r.next_message() {
                got.push(message::decode(&m.unwrap()).unwrap());
            }
        }
        prop_assert_eq!(got.len(), 3);
        prop_assert_eq!(&got[0], &Message::Keepalive { id });
        let Message::Report(report) = &got[1] else {
            return Err(TestCaseError::fail("not a report"));
        };
        // EPC-96 comes back as 96 bits; everything else exactly.
        prop_assert_eq!(&report.tags, &tags);
        prop_assert!(report.rejected.is_empty() && !report.cut_short);
        prop_assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn tags_reach_the_session_as_reads(
        tags in proptest::collection::vec(tag(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let bytes = build::ro_access_report(1, &tags);
        let mut p = Llrp::default();
        let mut reads = Vec::new();
        for part in split(&bytes, &cuts) {
            p.push(part);
            while let Some(e) = p.next_event() {
                if let ReaderEvent::Tag(t) = e {
                    reads.push(t);
                }
            }
        }
        prop_assert_eq!(reads.len(), tags.len());
        for (read, tag) in reads.iter().zip(&tags) {
            prop_assert_eq!(read.epc.as_bytes(), &tag.epc[..]);
            prop_assert_eq!(read.antenna, tag.antenna);
            prop_assert_eq!(read.rssi, tag.peak_rssi.unwrap_or(i8::MIN));
        }
    }

    #[test]
    fn client_messages_are_well_formed(
        id in any::<u32>(),
        rospec in 1u32..,
        n in any::<u16>(),
        keepalive_ms in any::<u32>(),
    ) {
        for (kind, bytes) in [
            (msg::SET_READER_CONFIG, build::set_reader_config(id, n, keepalive_ms)),
            (msg::ADD_ROSPEC, build::add_rospec(id, rospec, n)),
            (msg::DELETE_ROSPEC, build::delete_rospec(id, rospec)),
            (msg::ENABLE_ROSPEC, build::enable_rospec(id, rospec)),
            (msg::START_ROSPEC, build::start_rospec(id, rospec)),
            (msg::STOP_ROSPEC, build::stop_rospec(id, rospec)),
            (msg::KEEPALIVE_ACK, build::keepalive_ack(id)),
            (msg::CLOSE_CONNECTION, build::close_connection(id)),
        ] {
            let h = Header::decode(&bytes).unwrap();
            prop_assert_eq!((h.version, h.kind, h.id), (1, kind, id));
            prop_assert_eq!(h.length as usize, bytes.len());
            let body = &bytes[HEADER_LEN..];
            match kind {
                // ROReportSpec + selector, KeepaliveSpec.
                msg::SET_READER_CONFIG => prop_assert_eq!(walk_tree(&body[1..]), Ok(3)),
                // ROSpec, ROBoundarySpec + 2 triggers, AISpec + stop
                // trigger + InventoryParameterSpec, ROReportSpec + selector.
                msg::ADD_ROSPEC => prop_assert_eq!(walk_tree(body), Ok(9)),
                _ => {}
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        chunk in 1usize..50,
        max in 10u32..400,
    ) {
        let mut p = Llrp::new(super::LlrpSettings {
            max_message_len: max,
            ..Default::default()
        });
        for part in bytes.chunks(chunk) {
            p.push(part);
            while p.next_event().is_some() {}
            let _ = p.take_outgoing();
        }
        let _ = p.stats();
        for kind in [
            msg::READER_EVENT_NOTIFICATION,
            msg::RO_ACCESS_REPORT,
            msg::ERROR_MESSAGE,
            msg::ADD_ROSPEC_RESPONSE,
            msg::KEEPALIVE,
        ] {
            let raw = RawMessage {
                header: Header { version: 1, kind, length: 0, id: 0 },
                body: bytes.clone(),
            };
            let _ = message::decode(&raw);
        }
        let _ = report::decode(&bytes);
        prop_assert!(Params::new(&bytes).count() <= bytes.len());
    }
}
