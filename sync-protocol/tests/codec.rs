//! The sync codec: round trips in both encodings, version checks, size
//! limits, and no panic on arbitrary bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tally_sync::codec::{decode, encode, read_limited, CodecError, Encoding};
use tally_sync::message::{Demand, ProtocolVersion, ReserveTarget};
use tally_sync::{
    BoundedCounter, Delta, DeltaEntry, Epc, Event, EventId, EventKind, Gtin, ItemKey, Line,
    LocationId, ReplicaId, SyncRequest, SyncResponse, Tender, PROTOCOL_VERSION,
};

fn request(lines: &[(u64, u64, bool)], seed: u8) -> SyncRequest {
    let s1 = ReplicaId::new("s1").unwrap();
    let loc = LocationId::new("s1").unwrap();
    let mut c = BoundedCounter::new();
    c.add(&s1, 10).unwrap();
    c.transfer(&s1, &ReplicaId::hub(), 2).unwrap();
    let events = lines
        .iter()
        .enumerate()
        .map(|(i, &(item, qty, tagged))| Event {
            id: EventId::v7(1_700_000_000_000 + i as u64, [seed; 10]),
            location: loc.clone(),
            replica: s1.clone(),
            at_ms: 1_700_000_000_000,
            kind: EventKind::Sale {
                tenders: vec![Tender {
                    method: "card".into(),
                    amount_minor: 1234,
                    reference: Some("auth-1".into()),
                }],
                override_: None,
            },
            lines: vec![Line {
                gtin: Gtin::from_body(item).unwrap(),
                qty: qty.max(1),
                unit_price_minor: 1234,
                epc: tagged.then(|| Epc::from_hex("3074257BF7194E4000001A85").unwrap()),
            }],
            staff: Default::default(),
            price_overrides: Vec::new(),
        })
        .collect();
    SyncRequest {
        version: PROTOCOL_VERSION,
        replica: s1.clone(),
        location: loc.clone(),
        delta: Delta {
            entries: vec![DeltaEntry {
                key: ItemKey::new(loc, Gtin::from_body(42).unwrap()),
                counter: c,
            }],
        },
        delta_version: 7,
        events,
        events_upto: 3,
        hub_cursor: 9,
        catalog_cursor: 0,
        demand: vec![Demand {
            gtin: Gtin::from_body(42).unwrap(),
            units: 2,
        }],
        lost: vec![tally_sync::LostSales {
            reason: tally_sync::Shortage::Offline,
            sales: u64::from(seed),
            units: u64::MAX,
        }],
    }
}

proptest! {
    #[test]
    fn round_trips_in_both_encodings(
        lines in prop::collection::vec((0u64..10_000_000_000_000, 1u64..1000, any::<bool>()), 0..20),
        seed in any::<u8>(),
    ) {
        let req = request(&lines, seed);
        for enc in [Encoding::Json, Encoding::Binary] {
            let bytes = encode(&req, enc).unwrap();
            let back: SyncRequest = decode(&bytes, enc, 1 << 20).unwrap();
            prop_assert_eq!(&back, &req);
        }
    }

    #[test]
    fn responses_round_trip_with_their_reserve_targets(
        targets in prop::collection::vec((0u64..10_000_000_000_000, 1u64..1_000_000), 0..20),
    ) {
        let resp = SyncResponse {
            version: PROTOCOL_VERSION,
            acked_delta_version: 7,
            acked_events_upto: 3,
            rejected_events: Vec::new(),
            delta: request(&[], 1).delta,
            hub_cursor: 12,
            reserve: targets
                .iter()
                .map(|&(g, units)| ReserveTarget { gtin: Gtin::from_body(g).unwrap(), units })
                .collect(),
            catalog: Vec::new(),
            catalog_cursor: 4,
            more: false,
        };
        for enc in [Encoding::Json, Encoding::Binary] {
            let bytes = encode(&resp, enc).unwrap();
            let back: SyncResponse = decode(&bytes, enc, 1 << 20).unwrap();
            prop_assert_eq!(&back, &resp);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<SyncRequest>(&bytes, Encoding::Binary, 1 << 20);
        let _ = decode::<SyncResponse>(&bytes, Encoding::Json, 1 << 20);
        let mut framed = b"TY".to_vec();
        framed.extend_from_slice(&PROTOCOL_VERSION.major.to_be_bytes());
        framed.extend_from_slice(&PROTOCOL_VERSION.minor.to_be_bytes());
        framed.extend_from_slice(&bytes);
        let _ = decode::<SyncRequest>(&framed, Encoding::Binary, 1 << 20);
    }
}

#[test]
fn binary_is_much_smaller_than_json() {
    let req = request(&[(1, 1, false), (2, 3, true), (3, 1, false)], 1);
    let json = encode(&req, Encoding::Json).unwrap();
    let bin = encode(&req, Encoding::Binary).unwrap();
    assert!(
        bin.len() * 2 < json.len(),
        "binary {} vs json {}",
        bin.len(),
        json.len()
    );
}

#[test]
fn unknown_major_version_is_a_clear_error() {
    let mut req = request(&[(1, 1, false)], 1);
    let next = PROTOCOL_VERSION.major + 1;
    req.version = ProtocolVersion {
        major: next,
        minor: 0,
    };
    for enc in [Encoding::Json, Encoding::Binary] {
        let bytes = encode(&req, enc).unwrap();
        let err = decode::<SyncRequest>(&bytes, enc, 1 << 20).unwrap_err();
        assert!(
            matches!(err, CodecError::UnsupportedVersion { found, .. } if found.major == next),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains(&format!("unsupported protocol version {next}.0")));
    }
    // A newer minor version is accepted.
    req.version = ProtocolVersion {
        major: PROTOCOL_VERSION.major,
        minor: 9,
    };
    let bytes = encode(&req, Encoding::Binary).unwrap();
    assert!(decode::<SyncRequest>(&bytes, Encoding::Binary, 1 << 20).is_ok());
}

#[test]
fn size_limit_is_enforced_before_parsing_and_while_reading() {
    let req = request(&[(1, 1, false); 50], 1);
    let bytes = encode(&req, Encoding::Binary).unwrap();
    let err = decode::<SyncRequest>(&bytes, Encoding::Binary, 100).unwrap_err();
    assert!(matches!(err, CodecError::TooLarge { max: 100, .. }));
    // A stream is read only one byte past the limit.
    let endless = std::io::repeat(0u8);
    let err = read_limited(endless, 4096).unwrap_err();
    assert!(matches!(
        err,
        CodecError::TooLarge {
            size: 4097,
            max: 4096
        }
    ));
    assert_eq!(read_limited(&bytes[..], bytes.len()).unwrap(), bytes);
}

#[test]
fn garbage_and_forged_values_are_malformed() {
    assert!(matches!(
        decode::<SyncRequest>(b"XX\x00\x01\x00\x00", Encoding::Binary, 1 << 20),
        Err(CodecError::BadMagic)
    ));
    assert!(matches!(
        decode::<SyncRequest>(b"{\"version\":", Encoding::Json, 1 << 20),
        Err(CodecError::Malformed(_))
    ));
    // A JSON request with a GTIN whose check digit is wrong is refused.
    let req = request(&[(1, 1, false)], 1);
    let json = String::from_utf8(encode(&req, Encoding::Json).unwrap()).unwrap();
    let good = Gtin::from_body(1).unwrap().to_string();
    let mut bad = good.clone();
    bad.replace_range(13..14, if good.ends_with('0') { "1" } else { "0" });
    let forged = json.replace(&good, &bad);
    assert!(matches!(
        decode::<SyncRequest>(forged.as_bytes(), Encoding::Json, 1 << 20),
        Err(CodecError::Malformed(m)) if m.contains("check digit")
    ));
    // Trailing bytes after a binary message are refused.
    let mut bytes = encode(&req, Encoding::Binary).unwrap();
    bytes.push(0);
    assert!(matches!(
        decode::<SyncRequest>(&bytes, Encoding::Binary, 1 << 20),
        Err(CodecError::Malformed(_))
    ));
}
