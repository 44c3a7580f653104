//! Tests of the syntax dictionary, its linters and associations: the
//! shipped file parses whole; AIs beyond the old hand-kept table (7003,
//! 8200, 91–99, the 4300 ship-to series, …) parse and validate by the
//! dictionary's rules; GS1's reference linter vectors; every AI the
//! dictionary defines round-trips (property).

use super::tests::pairs;
use super::*;
use proptest::prelude::*;

const SHIPPED: &str = include_str!(env!("TALLY_GS1_DICTIONARY_PATH"));

fn dict() -> &'static Dictionary {
    Dictionary::embedded().expect("the shipped dictionary parses")
}

#[test]
fn shipped_dictionary_parses_whole() {
    let entry_lines = SHIPPED
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    let d = dict();
    assert_eq!(d.entries().len(), entry_lines);
    assert!(d.ai_count() > 500, "{} AIs", d.ai_count());
    let mut unchecked = Vec::new();
    for e in d.entries() {
        for c in &e.components {
            for l in &c.linters {
                assert!(!matches!(l, Linter::Unknown(_)), "{}: {l:?}", e.first);
                if !l.is_checked() {
                    unchecked.push(l.name().to_owned());
                }
            }
        }
        if e.predefined {
            assert!(e.fixed_len().is_some(), "{}", e.first);
        }
        // Associations and Digital Link qualifiers name AIs that exist.
        let exists = |p: &AiPattern| {
            (0..10_000).any(|n| {
                let ai = format!("{n:0width$}", width = p.0.len());
                p.matches(&ai) && d.lookup(&ai).is_some()
            })
        };
        for req in &e.requires {
            assert!(req.iter().flatten().all(exists), "{} req", e.first);
        }
        assert!(e.excludes.iter().all(exists), "{} ex", e.first);
        for seq in e.dl_key_qualifiers.iter().flatten() {
            assert!(
                seq.iter().all(|q| d.lookup(q).is_some()),
                "{} dlpkey",
                e.first
            );
        }
    }
    unchecked.sort();
    unchecked.dedup();
    assert_eq!(unchecked, ["couponcode", "couponposoffer", "packagetype"]);
    // Spot checks against the file's own lines.
    let gtin = d.lookup("01").unwrap();
    assert!(gtin.predefined && gtin.dl_attribute && gtin.is_dl_primary_key());
    assert_eq!(gtin.title, "GTIN");
    assert_eq!(gtin.fixed_len(), Some(14));
    let internal = d.lookup("95").unwrap();
    assert_eq!((internal.min_len(), internal.max_len()), (1, 90));
}

#[test]
fn bad_dictionary_lines_are_named() {
    let cases = [
        ("01 *? N14,csum\n01 N2 # again", 2, "defined twice"),
        ("01 N..5 N3", 1, "only the last"),
        ("01 [N3] N3", 1, "mandatory component after"),
        ("01 Q5", 1, "character set"),
        ("3100-3099 N6", 1, "range"),
        ("01 * X..5", 1, "pre-defined length but variable"),
        ("01 N0", 1, "length"),
        ("# only comments", 0, "no entries"),
    ];
    for (text, line, reason) in cases {
        let err = Dictionary::parse(text).unwrap_err();
        assert_eq!(err.line, line, "{text:?}: {err}");
        assert!(err.reason.contains(reason), "{text:?}: {err}");
    }
    // A later release may add attributes and linters: kept, not fatal.
    let d = Dictionary::parse("01 *? N14,csum,newlint newkey=1 # GTIN").unwrap();
    let linters = &d.lookup("01").unwrap().components[0].linters;
    assert_eq!(linters[1], Linter::Unknown("newlint".into()));
}

// AIs the hand-kept table refused (issue 23): each now parses and is held
// to its dictionary line. GTIN 09506000134352 is GS1's example GTIN (GS1
// Digital Link standard §4); SSCC 106141412345678908 is EPC TDS §7.2's.
#[test]
fn parses_every_kind_of_ai() {
    let g = "\u{1d}";
    let table: Vec<(String, Vec<(&str, &str)>)> = vec![
        // (7003) expiry date and time: N6,yymmdd N4,hhmi.
        (
            "(01)09506000134352(7003)2612311530".into(),
            vec![("01", "09506000134352"), ("7003", "2612311530")],
        ),
        // (8200) product URL; company-internal (91)–(99).
        (
            "(01)09506000134352(8200)http://example.com/p?x=1(91)ABC(99)x-y_z".into(),
            vec![
                ("01", "09506000134352"),
                ("8200", "http://example.com/p?x=1"),
                ("91", "ABC"),
                ("99", "x-y_z"),
            ],
        ),
        // Ship-to (4300-series), transmitted with separators: percent-encoded
        // name, ISO 3166 alpha-2 country, latitude/longitude.
        (
            format!("00106141412345678908{g}4300ACME%20LTD{g}4307DE{g}430902790858483015297971"),
            vec![
                ("00", "106141412345678908"),
                ("4300", "ACME%20LTD"),
                ("4307", "DE"),
                ("4309", "02790858483015297971"),
            ],
        ),
        // (8008) production time with optional minutes and seconds left out.
        (
            "(01)09506000134352(8008)26123115".into(),
            vec![("01", "09506000134352"), ("8008", "26123115")],
        ),
        // (422) ISO 3166 country of origin; (7030) 999 allowed.
        (
            "(01)09506000134352(422)276(7030)999ABC".into(),
            vec![("01", "09506000134352"), ("422", "276"), ("7030", "999ABC")],
        ),
        // (3911) amount in ISO 4217 978 (EUR); (8111) loyalty points.
        (
            "(255)9506000134376(3911)9781250".into(),
            vec![("255", "9506000134376"), ("3911", "9781250")],
        ),
        // (8013) GMN with a check-character pair (GS1 reference linter
        // vector); (8006) piece 01 of 02.
        (
            "(8013)1987654Ad4X4bL5ttr2310c2K".into(),
            vec![("8013", "1987654Ad4X4bL5ttr2310c2K")],
        ),
        (
            "(8006)095060001343520102(37)1".into(),
            vec![("8006", "095060001343520102"), ("37", "1")],
        ),
        // (8010) CPID in CSET 39; (7040) importer index.
        (
            "(8010)0614141ABC#-/(8011)12".into(),
            vec![("8010", "0614141ABC#-/"), ("8011", "12")],
        ),
        ("(7040)1AB-".into(), vec![("7040", "1AB-")]),
        // (7258) birth sequence, (4330) temperature with hyphen (negative).
        (
            "(00)106141412345678908(4330)001234-".into(),
            vec![("00", "106141412345678908"), ("4330", "001234-")],
        ),
    ];
    for (input, want) in table {
        let es = if input.starts_with('(') {
            parse_human(&input)
        } else {
            parse(&input)
        };
        let es = es.unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(pairs(&es), want, "{input:?}");
    }
}

#[test]
fn rejects_what_the_dictionary_forbids() {
    let invalid = |check: &'static str| move |e: &Gs1Error| matches!(e, Gs1Error::Invalid { check: c, .. } if *c == check);
    type Check = Box<dyn Fn(&Gs1Error) -> bool>;
    let table: Vec<(&str, Check)> = vec![
        (
            "(7003)2613311530",
            Box::new(|e| matches!(e, Gs1Error::BadDate { .. })),
        ),
        ("(7003)2612312460", Box::new(invalid("hhmi"))),
        ("(4307)XX", Box::new(invalid("iso3166alpha2"))),
        ("(422)999", Box::new(invalid("iso3166"))),
        ("(3911)000123", Box::new(invalid("iso4217"))),
        ("(8007)DE44500105175407324932", Box::new(invalid("iban"))),
        (
            "(8013)1987654Ad4X4bL5ttr2310cXK",
            Box::new(invalid("csumalpha")),
        ),
        (
            "(8006)095060001343520302",
            Box::new(invalid("pieceoftotal")),
        ),
        ("(4321)2", Box::new(invalid("yesno"))),
        ("(7040)1AB.", Box::new(invalid("importeridx"))),
        ("(8011)0123", Box::new(invalid("nozeroprefix"))),
        ("(7241)11", Box::new(invalid("mediatype"))),
        ("(7258)3/2", Box::new(invalid("posinseqslash"))),
        ("(4330)001234+", Box::new(invalid("hyphen"))),
        ("(4309)18000000013600000000", Box::new(invalid("latitude"))),
        ("(4300)ACME%2", Box::new(invalid("pcenc"))),
        ("(8010)ABCD0614141", Box::new(invalid("gcppos1"))),
        ("(8001)00000123450010", Box::new(invalid("nonzero"))),
        (
            "(8010)0614141abc",
            Box::new(|e| {
                matches!(
                    e,
                    Gs1Error::BadCharacter {
                        cset: 39,
                        ch: 'a',
                        ..
                    }
                )
            }),
        ),
        (
            "(8030)ab+c",
            Box::new(|e| {
                matches!(
                    e,
                    Gs1Error::BadCharacter {
                        cset: 64,
                        ch: '+',
                        ..
                    }
                )
            }),
        ),
        // Two components, the second left out though mandatory.
        (
            "(421)276",
            Box::new(|e| matches!(e, Gs1Error::TooShort { .. })),
        ),
    ];
    for (input, check) in table {
        match parse_human(input) {
            Ok(es) => panic!("{input:?} parsed as {es}"),
            Err(e) => assert!(check(&e), "{input:?}: unexpected {e:?}"),
        }
    }
    // FNC1 rule: (8005) is fixed-length but not pre-defined, so its data
    // runs to a separator; without one the next AI is read as its data.
    assert!(matches!(
        parse("0109506000134352800500015040PO"),
        Err(Gs1Error::TooLong { .. })
    ));
    assert!(parse("01095060001343528005000150\u{1d}400PO").is_ok());
}

#[test]
fn association_rules_are_warnings() {
    let warnings = |s: &str| parse_human(s).unwrap().warnings;
    assert_eq!(warnings("(01)09506000134352(21)S1(250)X"), vec![]);
    assert_eq!(
        warnings("(21)S1"),
        vec![Gs1Warning::Requires {
            ai: "21".into(),
            any_of: "01 or 03 or 8006".into()
        }]
    );
    assert_eq!(
        warnings("(01)09506000134352(250)X"),
        vec![Gs1Warning::Requires {
            ai: "250".into(),
            any_of: "01+21 or 03+21 or 8006+21".into()
        }]
    );
    // ex=310n: two net weights in kg with different decimals; reported once.
    assert_eq!(
        warnings("(01)09506000134352(3103)000189(3102)001890"),
        vec![Gs1Warning::Excludes {
            ai: "3103".into(),
            with: "3102".into()
        }]
    );
    // (02) ex=01,03, (01) ex=255,37 and (37) req=00+02,00+8026: all broken.
    assert_eq!(
        warnings("(01)09506000134352(02)09506000134352(37)1"),
        vec![
            Gs1Warning::Excludes {
                ai: "01".into(),
                with: "37".into()
            },
            Gs1Warning::Excludes {
                ai: "02".into(),
                with: "01".into()
            },
            Gs1Warning::Requires {
                ai: "37".into(),
                any_of: "00+02 or 00+8026".into()
            }
        ]
    );
    assert_eq!(
        Gs1Warning::Requires {
            ai: "21".into(),
            any_of: "01".into()
        }
        .to_string(),
        "AI (21) should appear with (01)"
    );
}

// GS1 Syntax Engine reference vectors for the check-character pair
// (lint_csumalpha unit tests) and GenSpecs §7.9.5's worked example.
#[test]
fn check_character_pairs() {
    for good in [
        "1987654Ad4X4bL5ttr2310c2K",
        "12345678901234567890123NT",
        "12345_ABCDEFGHIJKLMCP",
        "12345_abcdefghijklmN3",
        "12345_!\"%&'()*+,-./LC",
        "12345_0123456789:;<=>?62",
        "7907665Bm8v2AB",
        "00000!HV",
        "22",
    ] {
        assert_eq!(Linter::CsumAlpha.check(good), Ok(()), "{good}");
        let (body, pair) = good.split_at(good.len() - 2);
        assert_eq!(
            check_pair_of(body).map(String::from_iter).as_deref(),
            Some(pair)
        );
    }
    for bad in ["1987654Ad4X4bL5ttr2310cXK", "33", "2", ""] {
        assert!(Linter::CsumAlpha.check(bad).is_err(), "{bad}");
    }
}

#[test]
fn linters_at_their_edges() {
    use Linter::*;
    let ok = |l: Linter, s: &str| assert_eq!(l.check(s), Ok(()), "{l:?} {s:?}");
    let bad = |l: Linter, s: &str| assert!(l.check(s).is_err(), "{l:?} {s:?}");
    ok(YyMmDd, "240229"); // YY multiple of 4: leap year
    bad(YyMmDd, "250229");
    bad(YyMmDd, "250100");
    ok(YyMmD0, "250100");
    ok(YyyyMmDd, "20000229");
    bad(YyyyMmDd, "19000229"); // 1900 is not a leap year
    ok(Hh, "23");
    bad(Hh, "24");
    ok(Mi, "59");
    bad(Ss, "60");
    ok(Latitude, "1800000000");
    bad(Latitude, "1800000001");
    ok(Longitude, "3600000000");
    bad(Longitude, "3600000001");
    ok(PieceOfTotal, "0909");
    bad(PieceOfTotal, "1009");
    bad(PieceOfTotal, "0100");
    ok(PositionInSequence, "10/12");
    bad(PositionInSequence, "0/2");
    ok(MediaType, "10");
    ok(MediaType, "80");
    bad(MediaType, "00");
    ok(Iso5218, "9");
    bad(Iso5218, "3");
    ok(Winding, "9");
    bad(Winding, "2");
    ok(NoZeroPrefix, "0");
    ok(PercentEncoded, "a%2Fb%20");
    bad(PercentEncoded, "a%g1");
    ok(GcpPos2, "10614141");
    bad(GcpPos2, "1061");
    ok(Iso3166Or999, "999");
    ok(Iso4217, "978");
    ok(Iban, "GB82WEST12345698765432");
}

/// A value for `entry` made of random characters of each component's set
/// and length (only for entries whose components have no linters).
fn value_for(entry: &AiEntry, seed: &[u8]) -> Option<String> {
    const X: &[u8] =
        b"!\"%&')*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
    const Y: &[u8] = b"#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const Z: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = seed.iter().copied().cycle();
    let mut out = String::new();
    for c in &entry.components {
        if !c.linters.is_empty() {
            return None;
        }
        let len = c.min + usize::from(bytes.next()?) % (c.max - c.min + 1);
        let set: &[u8] = match c.cset {
            Cset::Numeric => b"0123456789",
            Cset::Cset82 => X,
            Cset::Cset39 => Y,
            Cset::Cset64 => Z,
        };
        for _ in 0..len {
            out.push(set[usize::from(bytes.next()?) % set.len()] as char);
        }
    }
    Some(out)
}

proptest! {
    /// Every linter-free AI of the dictionary: a value of its components'
    /// sets and lengths parses, alone and after a GTIN, in both forms.
    #[test]
    fn every_ai_round_trips(index in 0usize..10_000, seed in proptest::collection::vec(any::<u8>(), 1..64)) {
        let d = dict();
        let entry = &d.entries()[index % d.entries().len()];
        let (first, last): (u32, u32) = (entry.first.parse().unwrap(), entry.last.parse().unwrap());
        let ai = format!("{:0w$}", first + u32::from(seed[0]) % (last - first + 1), w = entry.first.len());
        if let Some(value) = value_for(entry, &seed) {
            let alone = parse(&format!("{ai}{value}")).unwrap();
            prop_assert_eq!(pairs(&alone), vec![(ai.as_str(), value.as_str())]);
            let human = parse_human(&format!("(01)09506000134352({ai}){value}")).unwrap();
            let wire = parse(&format!("{ai}{value}\u{1d}0109506000134352")).unwrap();
            prop_assert_eq!(human.get(&ai), wire.get(&ai));
            prop_assert_eq!(human.to_string(), format!("(01)09506000134352({ai}){value}"));
        }
    }

    #[test]
    fn dictionary_parser_never_panics(text in "\\PC{0,200}") {
        let _ = Dictionary::parse(&text);
    }
}
