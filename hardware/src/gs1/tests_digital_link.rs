//! Tests of GS1 Digital Link URI decoding: the syntax dictionary's own
//! `dlpkey` examples (its header), the example, the URI Syntax
//! standard's rules (any domain, path prefix, GTIN padding, percent
//! encoding, data attributes only in the query), and never a panic.

use super::*;
use proptest::prelude::*;

fn ais(uri: &str) -> Vec<(String, String)> {
    parse_digital_link(uri)
        .unwrap_or_else(|e| panic!("{uri}: {e}"))
        .elements
        .elements
        .iter()
        .map(|e| (e.ai.clone(), e.value.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, v)| (a.to_string(), v.to_string()))
        .collect()
}

#[test]
fn decodes_digital_link_uris() {
    // The example (GS1's example GTIN, Digital Link standard §4).
    assert_eq!(
        ais("https://id.gs1.org/01/09506000134352/10/ABC?17=261231"),
        pairs(&[("01", "09506000134352"), ("10", "ABC"), ("17", "261231")])
    );
    // Any domain, a resolver path prefix, other parameters kept aside.
    let link = parse_digital_link(
        "HTTPS://brand.example.com:8443/products/en/01/09506000134352/21/S%2F1?linkType=gs1:pip&3103=000189#top",
    )
    .unwrap();
    assert_eq!(link.domain, "brand.example.com:8443");
    assert_eq!(link.path_prefix, "products/en");
    assert_eq!(
        link.other_params,
        vec![("linkType".to_owned(), "gs1:pip".to_owned())]
    );
    assert_eq!(
        link.elements.to_string(),
        "(01)09506000134352(21)S/1(3103)000189"
    );
    // GTIN-13, -12 and -8 in the path are padded to 14 digits.
    assert_eq!(
        ais("https://id.gs1.org/01/9506000134352"),
        pairs(&[("01", "09506000134352")])
    );
    assert_eq!(
        ais("http://example.org/01/96385074"),
        pairs(&[("01", "00000096385074")])
    );
    // Other primary keys: SSCC, GLN with its extension.
    assert_eq!(
        ais("https://id.gs1.org/00/106141412345678908"),
        pairs(&[("00", "106141412345678908")])
    );
    assert_eq!(
        ais("https://id.gs1.org/414/4006381000000/254/A1/"),
        pairs(&[("414", "4006381000000"), ("254", "A1")])
    );
}

// The dictionary's header: "dlpkey=22,10,21|235" on (01).
#[test]
fn qualifier_order_follows_the_dictionary() {
    let base = "https://id.gs1.org/01/09506000134352";
    for good in ["/22/A/10/B/21/C", "/22/A/21/C", "/10/B", "/235/T"] {
        assert!(
            parse_digital_link(&format!("{base}{good}")).is_ok(),
            "{good}"
        );
    }
    for (bad, qualifier) in [("/10/B/22/A", "22"), ("/22/A/10/B/235/T", "235")] {
        assert_eq!(
            parse_digital_link(&format!("{base}{bad}")),
            Err(DigitalLinkError::BadQualifier {
                key: "01".into(),
                qualifier: qualifier.into()
            }),
            "{bad}"
        );
    }
}

#[test]
fn rejects_what_is_not_a_valid_link() {
    use DigitalLinkError::*;
    type Check = fn(&DigitalLinkError) -> bool;
    let cases: Vec<(&str, Check)> = vec![
        ("ftp://id.gs1.org/01/09506000134352", |e| *e == NotHttp),
        ("https://example.com/about/us", |e| *e == NoPrimaryKey),
        ("https://example.com/", |e| *e == NoPrimaryKey),
        // (21) is a qualifier, not a data attribute (no `?` flag).
        ("https://id.gs1.org/01/09506000134352?21=S1", |e| {
            *e == NotAttribute("21".into())
        }),
        ("https://id.gs1.org/01/09506000134352?83=1", |e| {
            *e == UnknownAi("83".into())
        }),
        ("https://id.gs1.org/01/09506000134352/10/A%2", |e| {
            matches!(e, BadPercentEncoding(_))
        }),
        ("https://id.gs1.org/01/09506000134352/10/A%+1", |e| {
            matches!(e, BadPercentEncoding(_))
        }),
        ("https://id.gs1.org/01/09506000134352/10/%FF", |e| {
            matches!(e, BadPercentEncoding(_))
        }),
        // Content is checked as in any element string.
        ("https://id.gs1.org/01/09506000134353", |e| {
            matches!(e, Gs1(Gs1Error::BadCheckDigit { .. }))
        }),
        ("https://id.gs1.org/01/09506000134352?17=261331", |e| {
            matches!(e, Gs1(Gs1Error::BadDate { .. }))
        }),
        ("https://id.gs1.org/01/09506000134352/10/AB?10=CD", |e| {
            matches!(e, Gs1(Gs1Error::DuplicateAi(_)))
        }),
    ];
    for (uri, check) in cases {
        match parse_digital_link(uri) {
            Ok(link) => panic!("{uri} decoded as {}", link.elements),
            Err(e) => assert!(check(&e), "{uri}: unexpected {e:?}"),
        }
    }
    assert_eq!(
        parse_digital_link(&format!("https://x/{}", "a".repeat(MAX_URI_LEN))),
        Err(TooLong)
    );
}

proptest! {
    #[test]
    fn arbitrary_uris_never_panic(path in "[0-9a-zA-Z/%?=&#.:+-]{0,80}") {
        let _ = parse_digital_link(&format!("https://id.gs1.org/{path}"));
        let _ = parse_digital_link(&path);
    }

    /// A GTIN with a lot and serial and an expiry round-trips through the
    /// URI, the lot and serial percent-encoded.
    #[test]
    fn element_values_round_trip(body in 0u64..10_000_000_000_000, lot in "[!-~]{1,20}", day in 1u32..29) {
        let gtin = tally_sync::Gtin::from_body(body).unwrap().to_string();
        let lot: String = lot.chars().filter(|&c| is_cset82(c)).collect();
        prop_assume!(!lot.is_empty());
        let encoded: String = lot.bytes().map(|b| format!("%{b:02X}")).collect();
        let uri = format!("https://id.gs1.org/01/{gtin}/10/{encoded}?17=2612{day:02}");
        let link = parse_digital_link(&uri).unwrap();
        prop_assert_eq!(link.elements.get("01"), Some(gtin.as_str()));
        prop_assert_eq!(link.elements.get("10"), Some(lot.as_str()));
        let expiry = format!("2612{day:02}");
        prop_assert_eq!(link.elements.get("17"), Some(expiry.as_str()));
    }
}
