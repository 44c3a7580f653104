//! Tests of the syntax dictionary, its linters and associations: the
//! shipped file parses whole; AIs beyond the old hand-kept table (7003,
//! 8200, 91–99, the 4300 ship-to series, …) parse and validate by the
//! dictionary's rules; GS1's reference linter vectors, the North American
//! coupons' (8110, 8112) among them; every AI the dictionary defines
//! round-trips (property).

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
    assert_eq!(unchecked, ["packagetype"]);
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

// AI (8110) data GS1's reference accepts: the unit tests of
// `src/c-lib/syntax/lint_couponcode.c` in github.com/gs1/gs1-syntax-engine
// (Apache 2.0), the last eight there from GS1 US's "North American Coupon
// Application Guideline Using GS1 DataBar Expanded Symbols" R2.0.
const COUPON_CODES: &[&str] = &[
    "012345612345611110123",
    "012345612345611110123101101230123456",
    "012345612345611110123101101236123456789012",
    "012345612345611110123101101239",
    "01234561234561111012321101230123456",
    "01234561234561111012321101236123456789012",
    "01234561234561111012321101239",
    "0123456123456111101233200229",
    "0123456123456111101233000229",
    "0123456123456111101233990606",
    "0123456123456111101234200131",
    "0123456123456111101234960229",
    "01234561234561111012335006064500606",
    "01234561234561111012350123456",
    "01234561234561111012359123456789012345",
    "012345612345611110123611234567",
    "012345612345611110123671234567890123",
    "01234561234561111012390000",
    "01234561234561111012390001",
    "10614141011111275110111",
    "106141410222223100110222111101231023456721104561045678991201",
    "1061414165432131501101201211014092110256100126663101231",
    "106141410012342501106501013085093101231",
    "106141410012471011076011110850921108609310123191000",
    "106141411234562891101201212085010048000214025610048000310123191000",
    "1061414154321031501101201211014092110256100126663101231",
    "106141416543213500110000310123196000",
];

// AI (8110) data GS1's reference refuses, with the field our message names.
// From the same unit tests unless marked "derived" (built from a valid
// vector above to show a rule the reference states: optional fields come
// in order, each at most once).
const BAD_COUPON_CODES: &[(&str, &str)] = &[
    ("a12345612345611110123", "'a' at character 1 is not a digit"),
    ("01234561234561111012a", "at character 21 is not a digit"),
    ("", "primary GCP VLI missing"),
    ("71234567890123", "primary GCP VLI must be 0 to 6"),
    ("9123456789012345", "primary GCP VLI must be 0 to 6"),
    ("012345", "primary GCP truncated"),
    ("612345678901", "primary GCP truncated"),
    ("0123456", "offer code truncated"),
    ("012345612345", "offer code truncated"),
    ("0123456123456", "save value VLI missing"),
    ("01234561234560", "save value VLI must be 1 to 5"),
    ("01234561234566123456", "save value VLI must be 1 to 5"),
    ("01234561234561", "save value truncated"),
    ("012345612345651234", "save value truncated"),
    ("012345612345611", "1st purchase requirement VLI missing"),
    (
        "0123456123456110",
        "1st purchase requirement VLI must be 1 to 5",
    ),
    ("0123456123456111", "1st purchase requirement truncated"),
    ("01234561234561111", "1st purchase requirement code missing"),
    (
        "012345612345611115",
        "1st purchase requirement code must be 0 to 4 or 9",
    ),
    ("012345612345611119", "1st purchase family code truncated"),
    ("01234561234561111012", "1st purchase family code truncated"),
    (
        "0123456123456111101230",
        "unexpected \"0\" after the last field",
    ),
    ("0123456123456111101237", "unexpected \"7\""),
    ("0123456123456111101238", "unexpected \"8\""),
    (
        "0123456123456111101231",
        "additional purchase rules code missing",
    ),
    (
        "01234561234561111012314",
        "additional purchase rules code must be 0 to 3",
    ),
    (
        "01234561234561111012310",
        "2nd purchase requirement VLI missing",
    ),
    (
        "012345612345611110123100",
        "2nd purchase requirement VLI must be 1 to 5",
    ),
    (
        "012345612345611110123101",
        "2nd purchase requirement truncated",
    ),
    (
        "0123456123456111101231011",
        "2nd purchase requirement code missing",
    ),
    (
        "01234561234561111012310115",
        "2nd purchase requirement code must be",
    ),
    (
        "01234561234561111012310119",
        "2nd purchase family code truncated",
    ),
    (
        "01234561234561111012310110123",
        "2nd purchase GCP VLI missing",
    ),
    (
        "0123456123456111101231011012371234567890123",
        "2nd purchase GCP VLI must be 0 to 6, or 9",
    ),
    (
        "012345612345611110123101101231123456",
        "2nd purchase GCP truncated",
    ),
    ("0123456123456111101231011012391", "unexpected \"1\""),
    (
        "0123456123456111101232",
        "3rd purchase requirement VLI missing",
    ),
    (
        "01234561234561111012320",
        "3rd purchase requirement VLI must be 1 to 5",
    ),
    (
        "0123456123456111101232512345",
        "3rd purchase requirement code missing",
    ),
    (
        "0123456123456111101232115",
        "3rd purchase requirement code must be",
    ),
    (
        "0123456123456111101232119",
        "3rd purchase family code truncated",
    ),
    (
        "0123456123456111101232110123",
        "3rd purchase GCP VLI missing",
    ),
    (
        "0123456123456111101232110123812345678901234",
        "3rd purchase GCP VLI must be",
    ),
    (
        "01234561234561111012321101230",
        "3rd purchase GCP truncated",
    ),
    ("0123456123456111101233", "expiration date truncated"),
    ("012345612345611110123312345", "expiration date truncated"),
    (
        "0123456123456111101233201310",
        "expiration date 201310 is not a valid YYMMDD",
    ),
    (
        "0123456123456111101233210229",
        "expiration date 210229 is not",
    ),
    (
        "0123456123456111101233200431",
        "expiration date 200431 is not",
    ),
    (
        "0123456123456111101233200600",
        "expiration date 200600 is not",
    ),
    ("01234561234561111012332002290", "unexpected \"0\""),
    ("0123456123456111101234", "start date truncated"),
    (
        "0123456123456111101234200230",
        "start date 200230 is not a valid YYMMDD",
    ),
    ("0123456123456111101234200010", "start date 200010 is not"),
    (
        "01234561234561111012335006064500607",
        "expiration date 500606 is before start date 500607",
    ),
    ("0123456123456111101235", "serial number VLI missing"),
    ("01234561234561111012350", "serial number truncated"),
    (
        "0123456123456111101235912345678901234",
        "serial number truncated",
    ),
    ("012345612345611110123501234560", "unexpected \"0\""),
    ("0123456123456111101236", "retailer GCP/GLN VLI missing"),
    (
        "01234561234561111012360",
        "retailer GCP/GLN VLI must be 1 to 7",
    ),
    (
        "0123456123456111101236812345678901234",
        "retailer GCP/GLN VLI must be 1 to 7",
    ),
    (
        "01234561234561111012361123456",
        "retailer GCP/GLN truncated",
    ),
    ("0123456123456111101236112345670", "unexpected \"0\""),
    ("0123456123456111101239", "save value code missing"),
    (
        "01234561234561111012393",
        "save value code must be 0, 1, 2, 5 or 6",
    ),
    (
        "01234561234561111012390",
        "save value applies to item missing",
    ),
    (
        "012345612345611110123903",
        "save value applies to item must be 0, 1 or 2",
    ),
    ("012345612345611110123900", "store coupon flag missing"),
    ("0123456123456111101239000", "don't multiply flag missing"),
    (
        "01234561234561111012390002",
        "don't multiply flag must be 0 or 1",
    ),
    ("012345612345611110123900000", "unexpected \"0\""),
    // Derived: expiration date (3) after the serial number (5); two serial
    // numbers.
    (
        "012345612345611110123501234563200229",
        "unexpected \"3200229\"",
    ),
    (
        "01234561234561111012350123456501234565",
        "unexpected \"501234565\"",
    ),
];

// AI (8112) data: the unit tests of `src/c-lib/syntax/lint_couponposoffer.c`
// in github.com/gs1/gs1-syntax-engine (Apache 2.0).
const POSITIVE_OFFERS: &[&str] = &[
    "001234561234560123456",
    "101234561234560123456",
    "0012345612345611234567",
    "0012345612345641234567890",
    "001234561234569123456789012345",
    "061234567890121234569123456789012345",
];

const BAD_POSITIVE_OFFERS: &[(&str, &str)] = &[
    ("a01234561234560123456", "'a' at character 1 is not a digit"),
    (
        "00123456123456012345a",
        "'a' at character 21 is not a digit",
    ),
    ("", "format code missing"),
    ("201234561234560123456", "format code must be 0 or 1"),
    ("901234561234560123456", "format code must be 0 or 1"),
    ("0", "funder ID VLI missing"),
    ("07", "funder ID VLI must be 0 to 6"),
    ("09", "funder ID VLI must be 0 to 6"),
    ("00", "funder ID truncated"),
    ("0012345", "funder ID truncated"),
    ("0612345678901", "funder ID truncated"),
    ("00123456", "offer code truncated"),
    ("0012345612345", "offer code truncated"),
    ("06123456789012", "offer code truncated"),
    ("00123456123456", "serial number VLI missing"),
    ("001234561234560", "serial number truncated"),
    ("001234561234561123456", "serial number truncated"),
    ("00123456123456912345678901234", "serial number truncated"),
    (
        "0012345612345601234567",
        "unexpected \"7\" after the last field",
    ),
    ("0612345678901212345691234567890123456", "unexpected \"6\""),
];

fn assert_coupon_failure(linter: &Linter, input: &str, want: &str) {
    match linter.check(input) {
        Err(LintFailure::Invalid(reason)) => {
            assert!(reason.starts_with("coupon: "), "{input:?}: {reason}");
            assert!(
                reason.contains(want),
                "{input:?}: {reason:?}, want {want:?}"
            );
        }
        other => panic!("{input:?}: {other:?}, want {want:?}"),
    }
}

#[test]
fn coupon_code_reference_vectors() {
    for good in COUPON_CODES {
        assert_eq!(Linter::CouponCode.check(good), Ok(()), "{good}");
    }
    for (bad, want) in BAD_COUPON_CODES {
        assert_coupon_failure(&Linter::CouponCode, bad, want);
    }
}

#[test]
fn positive_offer_reference_vectors() {
    for good in POSITIVE_OFFERS {
        assert_eq!(Linter::CouponPosOffer.check(good), Ok(()), "{good}");
    }
    for (bad, want) in BAD_POSITIVE_OFFERS {
        assert_coupon_failure(&Linter::CouponPosOffer, bad, want);
    }
}

#[test]
fn coupons_in_element_strings() {
    assert_eq!(Linter::from_name("couponcode"), Linter::CouponCode);
    assert_eq!(Linter::CouponPosOffer.name(), "couponposoffer");
    for (ai, good) in COUPON_CODES
        .iter()
        .map(|v| ("8110", v))
        .chain(POSITIVE_OFFERS.iter().map(|v| ("8112", v)))
    {
        let es = parse_human(&format!("({ai}){good}")).unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(pairs(&es), vec![(ai, *good)]);
        // Transmitted, after a GTIN: (8110) and (8112) are variable-length.
        let es = parse(&format!("0109506000134352{ai}{good}")).unwrap();
        assert_eq!(es.get(ai), Some(*good));
    }
    // Every refused vector the element's length allows (X..70, not empty)
    // is refused by name in an element string too.
    for (ai, check, bad, want) in BAD_COUPON_CODES
        .iter()
        .map(|(v, w)| ("8110", "couponcode", v, w))
        .chain(
            BAD_POSITIVE_OFFERS
                .iter()
                .map(|(v, w)| ("8112", "couponposoffer", v, w)),
        )
        .filter(|(_, _, v, _)| !v.is_empty())
    {
        match parse_human(&format!("({ai}){bad}")) {
            Err(Gs1Error::Invalid {
                ai: a,
                check: c,
                reason,
            }) => {
                assert_eq!((a.as_str(), c), (ai, check), "{bad}");
                assert!(reason.contains(want), "{bad}: {reason}");
            }
            other => panic!("({ai}){bad}: {other:?}"),
        }
    }
    // The error shows the value's first 12 characters, as for every AI.
    let err = parse_human("(8110)01234561234566123456").unwrap_err();
    assert_eq!(
        err.to_string(),
        "AI (8110) \"012345612345\": coupon: save value VLI must be 1 to 5, not 6 \
         (GS1 check couponcode)"
    );
}

/// A positive offer coupon (8112) built field by field: format code,
/// funder ID, offer code, serial number, each VLI-led field of its length.
fn positive_offer_of(format: u8, funder_vli: u8, serial_vli: u8, digits: &str) -> String {
    let mut digits = digits.chars().cycle();
    let mut take = |n: usize| digits.by_ref().take(n).collect::<String>();
    format!(
        "{format}{funder_vli}{}{}{serial_vli}{}",
        take(6 + usize::from(funder_vli)),
        take(6),
        take(6 + usize::from(serial_vli))
    )
}

proptest! {
    /// Digits of any length, and any text, never panic either coupon
    /// linter; every refusal names the coupon.
    #[test]
    fn coupon_linters_never_panic(digits in "[0-9]{0,90}", text in "\\PC{0,40}") {
        for linter in [Linter::CouponCode, Linter::CouponPosOffer] {
            for input in [digits.as_str(), text.as_str()] {
                if let Err(failure) = linter.check(input) {
                    prop_assert!(
                        matches!(&failure, LintFailure::Invalid(r) if r.starts_with("coupon: ")),
                        "{:?}", failure
                    );
                }
            }
        }
    }

    /// Well-formed positive offers pass; one digit more or less fails.
    #[test]
    fn positive_offers_built_field_by_field(
        format in 0u8..2,
        funder_vli in 0u8..7,
        serial_vli in 0u8..10,
        digits in "[0-9]{1,20}",
    ) {
        let good = positive_offer_of(format, funder_vli, serial_vli, &digits);
        prop_assert_eq!(Linter::CouponPosOffer.check(&good), Ok(()));
        prop_assert!(Linter::CouponPosOffer.check(&good[..good.len() - 1]).is_err());
        let longer = format!("{good}0");
        prop_assert!(Linter::CouponPosOffer.check(&longer).is_err());
    }
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
