//! Tests of the EPC module across schemes: the TDS examples as a table
//! (binary ↔ tag URI ↔ pure-identity URI ↔ element string), invalid
//! vectors, and properties (value → binary → value, value → URI → value,
//! arbitrary bytes and strings never panic).

use super::*;
use proptest::prelude::*;
use tally_sync::Gtin;

fn dec(hex: &str) -> Result<DecodedEpc, EpcError> {
    decode(&Epc::from_hex(hex).unwrap())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// One example: binary (hex), tag URI, pure-identity URI, element string.
struct Vector {
    source: &'static str,
    hex: &'static str,
    scheme: &'static str,
    tag_uri: &'static str,
    epc_uri: &'static str,
    element_string: &'static str,
}

/// TDS 1.13 Appendix E.3 "Summary Examples of All EPC schemes" (company
/// prefix 0614141, filter 3), for every scheme decoded here. The long
/// schemes' hex is as printed there, padded with zero digits to whole
/// 16-bit words where the printed value is not (SGLN-195 is printed with
/// 49 hex digits).
const TDS_E3: &[Vector] = &[
    Vector {
        source: "TDS E.3 SGTIN-96 (also §E.1, §E.2)",
        hex: "3074257BF7194E4000001A85",
        scheme: "sgtin-96",
        tag_uri: "urn:epc:tag:sgtin-96:3.0614141.812345.6789",
        epc_uri: "urn:epc:id:sgtin:0614141.812345.6789",
        element_string: "(01)80614141123458(21)6789",
    },
    Vector {
        source: "TDS E.3 SGTIN-198",
        hex: "3674257BF6B7A659B2C2BF100000000000000000000000000000",
        scheme: "sgtin-198",
        tag_uri: "urn:epc:tag:sgtin-198:3.0614141.712345.32a%2Fb",
        epc_uri: "urn:epc:id:sgtin:0614141.712345.32a%2Fb",
        element_string: "(01)70614141123451(21)32a/b",
    },
    Vector {
        source: "TDS E.3 SSCC-96 (also §7.4)",
        hex: "3174257BF4499602D2000000",
        scheme: "sscc-96",
        tag_uri: "urn:epc:tag:sscc-96:3.0614141.1234567890",
        epc_uri: "urn:epc:id:sscc:0614141.1234567890",
        element_string: "(00)106141412345678908",
    },
    Vector {
        source: "TDS E.3 SGLN-96",
        hex: "3274257BF46072000000162E",
        scheme: "sgln-96",
        tag_uri: "urn:epc:tag:sgln-96:3.0614141.12345.5678",
        epc_uri: "urn:epc:id:sgln:0614141.12345.5678",
        element_string: "(414)0614141123452(254)5678",
    },
    Vector {
        source: "TDS E.3 SGLN-195 (49 hex digits printed, padded to 52)",
        hex: "3974257BF46072CD9615F8800000000000000000000000000000",
        scheme: "sgln-195",
        tag_uri: "urn:epc:tag:sgln-195:3.0614141.12345.32a%2Fb",
        epc_uri: "urn:epc:id:sgln:0614141.12345.32a%2Fb",
        element_string: "(414)0614141123452(254)32a/b",
    },
    Vector {
        source: "TDS E.3 GRAI-96",
        hex: "3374257BF40C0E400000162E",
        scheme: "grai-96",
        tag_uri: "urn:epc:tag:grai-96:3.0614141.12345.5678",
        epc_uri: "urn:epc:id:grai:0614141.12345.5678",
        element_string: "(8003)006141411234525678",
    },
    Vector {
        source: "TDS E.3 GIAI-96",
        hex: "3474257BF40000000000162E",
        scheme: "giai-96",
        tag_uri: "urn:epc:tag:giai-96:3.0614141.5678",
        epc_uri: "urn:epc:id:giai:0614141.5678",
        element_string: "(8004)06141415678",
    },
    Vector {
        source: "TDS E.3 GIAI-202",
        hex: "3874257BF59B2C2BF10000000000000000000000000000000000",
        scheme: "giai-202",
        tag_uri: "urn:epc:tag:giai-202:3.0614141.32a%2Fb",
        epc_uri: "urn:epc:id:giai:0614141.32a%2Fb",
        element_string: "(8004)061414132a/b",
    },
];

#[test]
fn tds_examples_decode_encode_and_parse() {
    for v in TDS_E3 {
        let d = dec(v.hex).unwrap_or_else(|e| panic!("{}: {e}", v.source));
        assert_eq!(d.scheme(), v.scheme, "{}", v.source);
        assert_eq!(d.filter(), Some(3), "{}", v.source);
        assert_eq!(d.tag_uri(), v.tag_uri, "{}", v.source);
        assert_eq!(d.epc_uri().as_deref(), Some(v.epc_uri), "{}", v.source);
        assert_eq!(
            d.element_string().as_deref(),
            Some(v.element_string),
            "{}",
            v.source
        );
        // Encodes back to the same bits.
        assert_eq!(hex(&d.to_bytes()), v.hex, "{}", v.source);
        // The tag URI parses to the same value.
        assert_eq!(parse_tag_uri(v.tag_uri), Ok(d.clone()), "{}", v.source);
        assert_eq!(
            parse_uri(v.tag_uri),
            Ok(ParsedUri::Tag(d.clone())),
            "{}",
            v.source
        );
        // The pure identity with filter 3 and the shortest coding gives
        // this tag: every example uses the shortest coding its serial
        // allows.
        let id = parse_pure_uri(v.epc_uri).unwrap();
        assert_eq!(Some(&id), d.identity().as_ref(), "{}", v.source);
        assert_eq!(
            id.to_tag(3, Coding::Shortest),
            Ok(d.clone()),
            "{}",
            v.source
        );
        assert_eq!(id.uri(), v.epc_uri, "{}", v.source);
        // The raw URI of the bytes decodes to the same value too.
        let raw = format!("urn:epc:raw:{}.x{}", v.hex.len() * 4, v.hex);
        assert_eq!(parse_tag_uri(&raw), Ok(d), "{}", v.source);
    }
}

#[test]
fn keys_and_fields_of_the_examples() {
    let key = |h: &str| dec(h).unwrap().identity().unwrap().key().unwrap();
    assert_eq!(
        key("3074257BF7194E4000001A85"),
        ("gtin", "80614141123458".into())
    );
    assert_eq!(
        key("3174257BF4499602D2000000"),
        ("sscc", "106141412345678908".into())
    );
    assert_eq!(
        key("3274257BF46072000000162E"),
        ("gln", "0614141123452".into())
    );
    assert_eq!(
        key("3374257BF40C0E400000162E"),
        ("grai", "006141411234525678".into())
    );
    assert_eq!(
        key("3474257BF40000000000162E"),
        ("giai", "06141415678".into())
    );
    let d = dec("3674257BF6B7A659B2C2BF100000000000000000000000000000").unwrap();
    assert_eq!(d.gtin().unwrap().to_string(), "70614141123451");
    assert_eq!(d.sgtin_serial().as_deref(), Some("32a/b"));
    assert_eq!(
        d.identity().unwrap().fields(),
        vec![
            ("company_prefix", "0614141".to_string()),
            ("item_reference", "712345".to_string()),
            ("serial", "32a/b".to_string()),
        ]
    );
    assert_eq!(d.filter_name(), Some("reserved"));
}

#[test]
fn other_implementations_agree() {
    // pyepc tests/test_sgtin.py: SGTIN-198 with a numeric and an
    // alphanumeric serial, 200 bits (padded to whole bytes only).
    for (h, tag) in [
        (
            "3634257BF7194E5B3770E40000000000000000000000000000",
            "urn:epc:tag:sgtin-198:1.0614141.812345.6789",
        ),
        (
            "3634257BF7194E5B3770E60C20000000000000000000000000",
            "urn:epc:tag:sgtin-198:1.0614141.812345.6789AB",
        ),
    ] {
        let d = dec(h).unwrap();
        assert_eq!(d.tag_uri(), tag);
        assert_eq!(d.gtin().unwrap().to_string(), "80614141123458");
        assert_eq!(d.filter_name(), Some("point of sale trade item"));
        // Ours pads to 208 bits: the same bits, one more zero byte.
        assert_eq!(hex(&d.to_bytes()), format!("{h}00"));
    }
    // pyepc: SGTIN-96 3036142C8C008F8000053244 is GTIN 08719139005740.
    assert_eq!(
        dec("3036142C8C008F8000053244")
            .unwrap()
            .gtin()
            .unwrap()
            .to_string(),
        "08719139005740"
    );
}

#[test]
fn sgln_without_extension() {
    // TDS §7.5 example: urn:epc:id:sgln:0614141.12345.0 is (414)0614141123452.
    let id = parse_pure_uri("urn:epc:id:sgln:0614141.12345.0").unwrap();
    assert_eq!(id.element_string().as_deref(), Some("(414)0614141123452"));
    let tag = id.to_tag(0, Coding::Shortest).unwrap();
    assert_eq!(tag.tag_uri(), "urn:epc:tag:sgln-96:0.0614141.12345.0");
    // Partition 0 (12-digit prefix): the location reference is empty.
    let id = parse_pure_uri("urn:epc:id:sgln:061414112345..7").unwrap();
    assert_eq!(id.partition(), 0);
    let tag = id.to_tag(0, Coding::Shortest).unwrap();
    assert_eq!(tag.tag_uri(), "urn:epc:tag:sgln-96:0.061414112345..7");
    assert_eq!(dec(&hex(&tag.to_bytes())), Ok(tag));
}

#[test]
fn coding_choice_follows_table_12_2() {
    let sgtin = |serial: &str| {
        parse_pure_uri(&format!("urn:epc:id:sgtin:0614141.812345.{serial}")).unwrap()
    };
    let scheme = |id: &PureIdentity, c| id.to_tag(1, c).map(|t| t.scheme());
    // Numeric, no leading zeros, below 2^38: SGTIN-96.
    assert_eq!(
        scheme(&sgtin("274877906943"), Coding::Shortest),
        Ok("sgtin-96")
    );
    assert_eq!(scheme(&sgtin("0"), Coding::Shortest), Ok("sgtin-96"));
    // 2^38, a leading zero, a letter: only SGTIN-198 (TDS §E.1 note 3).
    for s in ["274877906944", "001", "6789AB", "32a%2Fb"] {
        assert_eq!(scheme(&sgtin(s), Coding::Shortest), Ok("sgtin-198"), "{s}");
        assert!(scheme(&sgtin(s), Coding::Bits96).is_err(), "{s}");
    }
    assert_eq!(scheme(&sgtin("6789"), Coding::Long), Ok("sgtin-198"));
    // The same EPC either way (TDS §12.3.1).
    let short = sgtin("6789").to_tag(1, Coding::Bits96).unwrap();
    let long = sgtin("6789").to_tag(1, Coding::Long).unwrap();
    assert_eq!(short.epc_uri(), long.epc_uri());
    // SGLN: 2^41 − 1 fits SGLN-96.
    let sgln = |e: &str| parse_pure_uri(&format!("urn:epc:id:sgln:0614141.12345.{e}")).unwrap();
    assert_eq!(
        scheme(&sgln("2199023255551"), Coding::Shortest),
        Ok("sgln-96")
    );
    assert_eq!(
        scheme(&sgln("2199023255552"), Coding::Shortest),
        Ok("sgln-195")
    );
    // GIAI-96 partition 5 has 58 bits.
    let giai = |a: &str| parse_pure_uri(&format!("urn:epc:id:giai:0614141.{a}")).unwrap();
    assert_eq!(
        scheme(&giai("288230376151711743"), Coding::Shortest),
        Ok("giai-96")
    );
    assert_eq!(
        scheme(&giai("288230376151711744"), Coding::Shortest),
        Ok("giai-202")
    );
    assert_eq!(scheme(&giai("0123"), Coding::Shortest), Ok("giai-202"));
    // SSCC and GRAI have no long coding here.
    let sscc = parse_pure_uri("urn:epc:id:sscc:0614141.1234567890").unwrap();
    assert!(sscc.to_tag(0, Coding::Long).is_err());
    let grai = parse_pure_uri("urn:epc:id:grai:0614141.12345.A1").unwrap();
    assert!(grai.to_tag(0, Coding::Shortest).is_err());
    // Filter 8 is out of range.
    assert!(sgtin("1").to_tag(8, Coding::Shortest).is_err());
}

#[test]
fn other_headers_stay_raw() {
    // GID-96 (header 0x35, TDS §E.3 example 350007AB70425D4000000586),
    // a typical factory EPC of an Impinj tag (E280…) and GRAI-170 (0x37,
    // not decoded here): all raw.
    for hexs in [
        "350007AB70425D4000000586",
        "E2801160600002054C0DB71D",
        "3774257BF40C0E59B2C2BF10000000000000",
        "1234",
    ] {
        let d = dec(hexs).unwrap();
        assert_eq!(d.scheme(), "raw");
        assert_eq!(
            d.tag_uri(),
            format!("urn:epc:raw:{}.x{hexs}", hexs.len() * 4)
        );
        assert_eq!(
            (d.epc_uri(), d.element_string(), d.filter()),
            (None, None, None)
        );
        assert_eq!(parse_tag_uri(&d.tag_uri()), Ok(d));
    }
}

#[test]
fn rejects_invalid_binaries() {
    // Partition 7: header, filter 3, partition 7 → second byte 0x7C.
    for h in [
        "307C257BF7194E4000001A85",
        "317C257BF4499602D2000000",
        "327C257BF46072000000162E",
        "337C257BF40C0E400000162E",
        "347C257BF40000000000162E",
        "367C257BF6B7A659B2C2BF100000000000000000000000000000",
    ] {
        assert!(
            matches!(dec(h), Err(EpcError::InvalidPartition { partition: 7, .. })),
            "{h}"
        );
    }
    // Company prefix 0xFFFFFFFFFF (> 10^12) in partition 0.
    assert!(matches!(
        dec("3063FFFFFFFFFC0000000001"),
        Err(EpcError::FieldOverflow { .. })
    ));
    // SGTIN item reference 15 in partition 0 (one digit).
    assert!(matches!(
        dec("3060000000000F0000000001"),
        Err(EpcError::FieldOverflow {
            field: "item reference",
            ..
        })
    ));
    // SSCC reserved bits set.
    assert_eq!(
        dec("3174257BF4499602D2000001"),
        Err(EpcError::ReservedNotZero)
    );
    // A 96-bit header on 64 bits; a 128-bit bank with a non-zero tail.
    assert!(matches!(
        dec("3074257BF7194E40"),
        Err(EpcError::BadLength {
            bits: 64,
            expected: 96,
            ..
        })
    ));
    assert!(matches!(
        dec("3074257BF7194E4000001A850001"),
        Err(EpcError::BadLength { .. })
    ));
    // 128-bit bank, zero tail: fine.
    assert_eq!(
        dec("3074257BF7194E4000001A8500000000").unwrap().scheme(),
        "sgtin-96"
    );
    // SGTIN-198 cut to 96 bits; a stray bit after bit 198.
    assert!(matches!(
        dec("3674257BF6B7A659B2C2BF10"),
        Err(EpcError::BadLength { expected: 198, .. })
    ));
    assert!(matches!(
        dec("3674257BF6B7A659B2C2BF100000000000000000000000000001"),
        Err(EpcError::BadLength { .. })
    ));
    // SGTIN-198 with an empty serial; with a space (0x20) in it.
    assert!(matches!(
        dec("3674257BF6B7A6400000000000000000000000000000000000"),
        Err(EpcError::BadText(_))
    ));
    assert!(matches!(
        dec("3674257BF6B7A6410000000000000000000000000000000000"),
        Err(EpcError::BadText(_))
    ));
}

#[test]
fn rejects_invalid_uris() {
    for bad in [
        "",
        "urn:epc:id:sgtin",
        "urn:epc:id:sgtin:0614141.812345",
        "urn:epc:id:sgtin:0614141.81234.6789", // 12 digits, not 13
        "urn:epc:id:sgtin:06141.8123456.6789", // 5-digit prefix
        "urn:epc:id:sgtin:0614141.812345.",    // empty serial
        "urn:epc:id:sgtin:0614141.812345.a/b", // '/' unescaped
        "urn:epc:id:sgtin:0614141.812345.a%2", // cut escape
        "urn:epc:id:sgtin:0614141.812345.a%20b", // space
        "urn:epc:id:sgtin:0614141.812345.123456789012345678901", // 21 chars
        "urn:epc:id:sgtin:0614141.8123x5.1",
        "urn:epc:id:grai:0614141.12345.12345678901234567", // 17 chars
        "urn:epc:id:giai:0614141.1234567890123456789012345", // 25 > 23
        "urn:epc:id:gid:95100000.12345.400",
        "urn:epc:tag:sgtin-96:3.0614141.812345.06789", // leading zero
        "urn:epc:tag:sgtin-96:3.0614141.812345.274877906944", // 2^38
        "urn:epc:tag:sgtin-96:8.0614141.812345.6789",  // filter 8
        "urn:epc:tag:sgtin-96:33.0614141.812345.6789",
        "urn:epc:tag:sgtin-96:[att=x01]:3.0614141.812345.6789",
        "urn:epc:tag:sgtin-198:3.0614141.812345.123456789012345678901",
        "urn:epc:tag:sgln-96:3.0614141.12345.2199023255552",
        "urn:epc:tag:giai-96:3.0614141.288230376151711744",
        "urn:epc:tag:giai-202:3.0614141.12345678901234567890123x", // 24 > 23
        "urn:epc:tag:sscc-96:3.0614141.123456789",
        "urn:epc:tag:gid-96:95100000.12345.400",
        "urn:epc:raw:96.x3074",
        "urn:epc:raw:x.x3074",
        "urn:epc:raw:16.xZZZZ",
        "urn:epc:raw:96.x307C257BF7194E4000001A85", // partition 7
        "urn:epc:id:sgtin:0614141.812345.6789\u{e9}",
    ] {
        assert!(parse_uri(bad).is_err(), "{bad:?}");
    }
    assert!(matches!(
        parse_uri("urn:epc:tag:gid-96:1.2.3"),
        Err(EpcError::UnsupportedScheme(s)) if s == "gid-96"
    ));
}

#[test]
fn serials_with_dots_and_escapes() {
    // '.' is in CSET 82 and is written as is: fields split from the left.
    let id = parse_pure_uri("urn:epc:id:sgtin:0614141.812345.A.1").unwrap();
    let tag = id.to_tag(1, Coding::Shortest).unwrap();
    assert_eq!(tag.tag_uri(), "urn:epc:tag:sgtin-198:1.0614141.812345.A.1");
    assert_eq!(parse_tag_uri(&tag.tag_uri()), Ok(tag.clone()));
    // Every escape of TDS §5 / Table A-1, lower-case hex accepted on input.
    let id = parse_pure_uri("urn:epc:id:sgtin:0614141.812345.%22%25%26%2f%3C%3E%3F").unwrap();
    assert_eq!(
        id.element_string().as_deref(),
        Some("(01)80614141123458(21)\"%&/<>?")
    );
    assert_eq!(
        id.uri(),
        "urn:epc:id:sgtin:0614141.812345.%22%25%26%2F%3C%3E%3F"
    );
}

#[test]
fn from_gtin_matches_tds_example() {
    let g = Gtin::parse("80614141123458").unwrap();
    let s = Sgtin96::from_gtin(3, g, 7, 6789).unwrap();
    assert_eq!(hex(&s.encode()), "3074257BF7194E4000001A85");
    let g = Gtin::parse("70614141123451").unwrap();
    let s = Sgtin198::from_gtin(3, g, 7, Cset82::new("32a/b").unwrap()).unwrap();
    assert_eq!(
        hex(&s.encode()),
        "3674257BF6B7A659B2C2BF100000000000000000000000000000"
    );
}

// Strategies: a partition and values that fit it.
fn cp_for(p: u8, seed: u64) -> u64 {
    seed % 10u64.pow(12 - u32::from(p))
}

fn cset82_string(max: usize) -> impl Strategy<Value = Cset82> {
    proptest::string::string_regex(&format!("[!-/0-9:-?A-Z_a-z\"]{{1,{max}}}"))
        .unwrap()
        .prop_filter_map("cset82", |s| Cset82::new(&s).ok())
}

fn decoded_strategy() -> impl Strategy<Value = DecodedEpc> {
    let f = 0u8..8;
    let p = 0u8..7;
    prop_oneof![
        (
            f.clone(),
            p.clone(),
            any::<u64>(),
            any::<u64>(),
            0u64..(1 << 38)
        )
            .prop_map(|(f, p, c, i, s)| {
                let i = i % 10u64.pow(u32::from(p) + 1);
                DecodedEpc::Sgtin96(Sgtin96::new(f, p, cp_for(p, c), i, s).unwrap())
            }),
        (
            f.clone(),
            p.clone(),
            any::<u64>(),
            any::<u64>(),
            cset82_string(20)
        )
            .prop_map(|(f, p, c, i, s)| {
                let i = i % 10u64.pow(u32::from(p) + 1);
                DecodedEpc::Sgtin198(Sgtin198::new(f, p, cp_for(p, c), i, s).unwrap())
            }),
        (f.clone(), p.clone(), any::<u64>(), any::<u64>()).prop_map(|(f, p, c, s)| {
            let s = s % 10u64.pow(u32::from(p) + 5);
            DecodedEpc::Sscc96(Sscc96::new(f, p, cp_for(p, c), s).unwrap())
        }),
        (
            f.clone(),
            p.clone(),
            any::<u64>(),
            any::<u64>(),
            0u64..(1 << 41)
        )
            .prop_map(|(f, p, c, l, e)| {
                let l = l % 10u64.pow(u32::from(p));
                DecodedEpc::Sgln96(Sgln96::new(f, p, cp_for(p, c), l, e).unwrap())
            }),
        (
            f.clone(),
            p.clone(),
            any::<u64>(),
            any::<u64>(),
            cset82_string(20)
        )
            .prop_map(|(f, p, c, l, e)| {
                let l = l % 10u64.pow(u32::from(p));
                DecodedEpc::Sgln195(Sgln195::new(f, p, cp_for(p, c), l, e).unwrap())
            }),
        (
            f.clone(),
            p.clone(),
            any::<u64>(),
            any::<u64>(),
            0u64..(1 << 38)
        )
            .prop_map(|(f, p, c, a, s)| {
                let a = a % 10u64.pow(u32::from(p));
                DecodedEpc::Grai96(Grai96::new(f, p, cp_for(p, c), a, s).unwrap())
            }),
        (f.clone(), p.clone(), any::<u64>(), any::<u64>()).prop_map(|(f, p, c, a)| {
            let a = a >> (64 - giai::giai96_bits(p));
            DecodedEpc::Giai96(Giai96::new(f, p, cp_for(p, c), a).unwrap())
        }),
        (f, p, any::<u64>(), cset82_string(24)).prop_filter_map(
            "fits the partition",
            |(f, p, c, a)| Giai202::new(f, p, cp_for(p, c), a)
                .ok()
                .map(DecodedEpc::Giai202)
        ),
    ]
}

proptest! {
    #[test]
    fn value_binary_value(d in decoded_strategy()) {
        let epc = d.to_epc().unwrap();
        prop_assert_eq!(decode(&epc).unwrap(), d.clone());
        // Long schemes are 208 bits, the others 96.
        prop_assert!(matches!(epc.as_bytes().len(), 12 | 26));
    }

    #[test]
    fn value_uri_value(d in decoded_strategy()) {
        // Tag URI: the same value.
        prop_assert_eq!(parse_tag_uri(&d.tag_uri()).unwrap(), d.clone());
        // Pure-identity URI: the same identity; with the tag's filter and
        // the tag's coding, the same tag.
        let id = d.identity().unwrap();
        let uri = d.epc_uri().unwrap();
        let parsed = parse_pure_uri(&uri).unwrap();
        prop_assert_eq!(&parsed, &id);
        let coding = if d.to_bytes().len() == 12 { Coding::Bits96 } else { Coding::Long };
        prop_assert_eq!(parsed.to_tag(d.filter().unwrap(), coding).unwrap(), d.clone());
        // The element string starts with the key's AI.
        let es = d.element_string().unwrap();
        prop_assert!(es.starts_with('('));
    }

    #[test]
    fn sgtin_gtin_round_trip(d in decoded_strategy()) {
        if let Some(gtin) = d.gtin() {
            let DecodedEpc::Sgtin96(s) = d else { return Ok(()) };
            let again = Sgtin96::from_gtin(s.filter, gtin, 12 - u32::from(s.partition), s.serial).unwrap();
            prop_assert_eq!(again, s);
        }
    }

    #[test]
    fn arbitrary_epcs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 2..62)) {
        let epc = Epc::from_bytes(&bytes).unwrap();
        if let Ok(d) = decode(&epc) {
            let _ = (d.tag_uri(), d.epc_uri(), d.element_string(), d.filter_name());
            // Whatever decodes re-encodes to the same bits.
            let n = d.to_bytes().len().min(bytes.len());
            prop_assert_eq!(&d.to_bytes()[..n], &bytes[..n]);
        }
    }

    #[test]
    fn arbitrary_headers_of_known_schemes_never_panic(
        header in prop::sample::select(vec![0x30u8, 0x31, 0x32, 0x33, 0x34, 0x36, 0x38, 0x39]),
        rest in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut bytes = vec![header];
        bytes.extend(rest);
        bytes.resize(bytes.len().max(2), 0);
        let _ = decode(&Epc::from_bytes(&bytes).unwrap());
    }

    #[test]
    fn arbitrary_uris_never_panic(s in "urn:epc:(id|tag|raw):[a-z0-9-]{0,10}:?[0-9.%A-Fa-z/\\[\\]=]{0,40}") {
        if let Ok(p) = parse_uri(&s) {
            match p {
                ParsedUri::Tag(d) => { let _ = (d.to_bytes(), d.epc_uri()); }
                ParsedUri::Pure(id) => { let _ = (id.uri(), id.to_tag(0, Coding::Shortest)); }
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
        let _ = parse_uri(&s);
        let _ = Cset82::from_uri(&s);
    }
}
