//! Tests of the GS1 element-string parsers, the AI table and the
//! interpretation of values: table-driven valid and invalid vectors from
//! the GS1 General Specifications, and properties (no panic on any text,
//! GTIN round trip).

use super::*;
use proptest::prelude::*;
use tally_sync::Gtin;

pub(super) fn pairs(es: &ElementString) -> Vec<(&str, &str)> {
    es.elements
        .iter()
        .map(|e| (e.ai.as_str(), e.value.as_str()))
        .collect()
}

// Valid vectors. Element strings are built per GS1 General Specifications
// §7.8.5 (concatenation rules); keys are GTIN 04006381333931 (the ISO/IEC
// 15420 EAN-13 example 4006381333931 normalised to 14 digits, GenSpecs
// §3.3.2), SSCC 106141412345678908 (EPC TDS §6.3.2 / §14.5.2 example) and
// GTIN/GLN bodies whose check digits were computed per GenSpecs §7.9.1.
#[test]
fn parses_valid_element_strings() {
    let g = "\u{1d}";
    let table: Vec<(String, Vec<(&str, &str)>)> = vec![
        // GS1 GenSpecs §2.1.2: GTIN (01) alone.
        ("0104006381333931".into(), vec![("01", "04006381333931")]),
        // (01)+(17)+(10): pre-defined-length AIs need no separator (§7.8.5);
        // 10 is last so needs none.
        (
            "01040063813339311725123110ABC123".into(),
            vec![("01", "04006381333931"), ("17", "251231"), ("10", "ABC123")],
        ),
        // Variable (10) then (21) separated by GS.
        (
            format!("010400638133393110LOT7{g}21SER-9"),
            vec![("01", "04006381333931"), ("10", "LOT7"), ("21", "SER-9")],
        ),
        // Leading FNC1 transmitted as GS.
        (
            format!("{g}0104006381333931"),
            vec![("01", "04006381333931")],
        ),
        // SSCC (00): EPC TDS §7.2 / GS1 GenSpecs §2.2 example 106141412345678908.
        (
            "00106141412345678908".into(),
            vec![("00", "106141412345678908")],
        ),
        // (02)+(37): logistics unit content, GS1 GenSpecs §2.2.2.
        (
            "0204006381333931378".into(),
            vec![("02", "04006381333931"), ("37", "8")],
        ),
        // Variable measure: (01) 9… + (3103) net weight kg, GenSpecs §3.6.2.
        (
            "01940063813339343103001234".into(),
            vec![("01", "94006381333934"), ("3103", "001234")],
        ),
        // (392n) price with (30) count, GS separators after variable fields.
        (
            format!("0194006381333934301{g}39221250"),
            vec![("01", "94006381333934"), ("30", "1"), ("3922", "1250")],
        ),
        // (393n) ISO 4217 978 (EUR) price.
        ("39329781250".into(), vec![("3932", "9781250")]),
        // (410) ship-to GLN, check digit computed per §7.9.1; (8005), (8020), (400).
        (
            format!("41040063810000008005000150{g}8020REF1{g}400PO-1"),
            vec![
                ("410", "4006381000000"),
                ("8005", "000150"),
                ("8020", "REF1"),
                ("400", "PO-1"),
            ],
        ),
        // Dates with DD = 00 (yymmd0 in the GS1 Barcode Syntax Dictionary).
        ("11250100".into(), vec![("11", "250100")]),
    ];
    for (input, want) in table {
        let es = parse(&input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(pairs(&es), want, "{input:?}");
    }
}

// Invalid vectors: each rule of §7.8.5 / §7.9.1 / §7.11 / §7.12 broken once.
#[test]
fn rejects_invalid_element_strings() {
    let g = "\u{1d}";
    type Check = fn(&Gs1Error) -> bool;
    let table: Vec<(String, Check)> = vec![
        ("".into(), |e| matches!(e, Gs1Error::Empty)),
        // Bad GTIN check digit (…931 is right, …932 wrong).
        ("0104006381333932".into(), |e| {
            matches!(
                e,
                Gs1Error::BadCheckDigit {
                    found: 2,
                    expected: 1,
                    ..
                }
            )
        }),
        // Truncated fixed-length (01).
        ("01040063813339".into(), |e| {
            matches!(
                e,
                Gs1Error::Truncated {
                    expected: 14,
                    found: 12,
                    ..
                }
            )
        }),
        // Truncated by a GS inside a fixed-length field.
        (format!("17251{g}10A"), |e| {
            matches!(
                e,
                Gs1Error::Truncated {
                    expected: 6,
                    found: 3,
                    ..
                }
            )
        }),
        // Unknown AIs, named in the error: no AI starts with 83 (GenSpecs
        // Figure 3.2-1 leaves it unassigned); 3106 has n > 5.
        ("83ABC".into(), |e| *e == Gs1Error::UnknownAi("83".into())),
        ("3106001234".into(), |e| {
            *e == Gs1Error::UnknownAi("3106".into())
        }),
        // Non-digit in numeric AI.
        ("17251X31".into(), |e| {
            matches!(e, Gs1Error::NotNumeric { .. })
        }),
        // Variable field over its maximum (10 is X..20).
        ("10ABCDEFGHIJKLMNOPQRSTU".into(), |e| {
            matches!(
                e,
                Gs1Error::TooLong {
                    max: 20,
                    found: 21,
                    ..
                }
            )
        }),
        // Empty variable field.
        (format!("10{g}21A"), |e| {
            matches!(e, Gs1Error::TooShort { .. })
        }),
        // Not in CSET 82 (space, '#').
        ("10AB CD".into(), |e| {
            matches!(e, Gs1Error::BadCharacter { ch: ' ', .. })
        }),
        ("21A#".into(), |e| {
            matches!(e, Gs1Error::BadCharacter { ch: '#', .. })
        }),
        // Bad dates: month 13, day 32, day 00 ok but Feb 30 not.
        ("17251301".into(), |e| matches!(e, Gs1Error::BadDate { .. })),
        ("17250230".into(), |e| matches!(e, Gs1Error::BadDate { .. })),
        // Same AI twice, different data.
        ("1725123117251230".into(), |e| {
            matches!(e, Gs1Error::DuplicateAi(_))
        }),
        // Bad GLN check digit.
        ("4104006381000001".into(), |e| {
            matches!(e, Gs1Error::BadCheckDigit { .. })
        }),
    ];
    for (input, check) in table {
        match parse(&input) {
            Ok(es) => panic!("{input:?} parsed as {es}"),
            Err(e) => assert!(check(&e), "{input:?}: unexpected {e:?}"),
        }
    }
}

#[test]
fn human_form_matches_transmitted_form() {
    // GS1 GenSpecs §4.15 human readable interpretation with parentheses.
    let human = parse_human("(01)04006381333931(17)251231(10)ABC(21)S1").unwrap();
    let wire = parse("010400638133393117251231\u{1d}10ABC\u{1d}21S1").unwrap();
    assert_eq!(human, wire);
    assert_eq!(
        human.to_string(),
        "(01)04006381333931(17)251231(10)ABC(21)S1"
    );
    assert!(matches!(
        parse_human("(01)0400638133393"),
        Err(Gs1Error::Truncated { .. })
    ));
    assert!(matches!(
        parse_human("(01)040063813339311"),
        Err(Gs1Error::TooLong { .. })
    ));
    assert!(matches!(parse_human("(83)X"), Err(Gs1Error::UnknownAi(_))));
    assert!(matches!(
        parse_human("01)X"),
        Err(Gs1Error::BadHumanReadable(_))
    ));
    assert!(matches!(
        parse_human("(01"),
        Err(Gs1Error::BadHumanReadable(_))
    ));
}

#[test]
fn interprets_dates_measures_amounts() {
    let es = parse("0194006381333934310300123417251200\u{1d}").unwrap();
    let weight = es.elements.iter().find(|e| e.ai == "3103").unwrap();
    assert_eq!(
        weight.interpret(2025),
        Some(Interpretation::Measure {
            quantity: "net_weight".into(),
            unit: "kg".into(),
            value: "1.234".into()
        })
    );
    let date = es.elements.iter().find(|e| e.ai == "17").unwrap();
    assert_eq!(
        date.interpret(2025),
        Some(Interpretation::Date("2025-12".into()))
    );
    let price = parse("39329781250").unwrap();
    assert_eq!(
        price.elements[0].interpret(2025),
        Some(Interpretation::Amount {
            value: "12.50".into(),
            currency: Some("978".into())
        })
    );
}

// GS1 GenSpecs §7.12: century determination, with its own worked cases.
#[test]
fn century_rule() {
    let d = |yy| YyMmDd { yy, mm: 1, dd: 1 };
    assert_eq!(d(25).year(2025), 2025);
    assert_eq!(d(75).year(2025), 2075); // diff 50: same century
    assert_eq!(d(76).year(2025), 1976); // diff 51: previous century
    assert_eq!(d(10).year(2060), 2110); // diff -50: next century
    assert_eq!(d(11).year(2060), 2011);
}

#[test]
fn decimal_places_point() {
    assert_eq!(decimal("001234", 3), "1.234");
    assert_eq!(decimal("001234", 0), "1234");
    assert_eq!(decimal("5", 2), "0.05");
    assert_eq!(decimal("000000", 5), "0.00000");
}

#[test]
fn dictionary_is_prefix_free() {
    // §3.1: no AI is a prefix of another; the splitter relies on it.
    let dict = Dictionary::embedded().unwrap();
    let all: Vec<String> = dict
        .entries()
        .iter()
        .flat_map(|e| {
            let (a, b): (u32, u32) = (e.first.parse().unwrap(), e.last.parse().unwrap());
            let width = e.first.len();
            (a..=b).map(move |n| format!("{n:0width$}"))
        })
        .collect();
    assert_eq!(all.len(), dict.ai_count());
    for a in &all {
        for b in &all {
            assert!(a == b || !b.starts_with(a.as_str()), "{a} prefixes {b}");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,60}") {
        let _ = parse(&s);
        let _ = parse_human(&s);
    }

    #[test]
    fn gtin_element_round_trips(body in 0u64..10_000_000_000_000, lot in "[A-Za-z0-9]{1,20}") {
        let g = Gtin::from_body(body).unwrap();
        let es = parse(&format!("01{g}10{lot}")).unwrap();
        prop_assert_eq!(es.gtin(), Some(g));
        prop_assert_eq!(es.get("10"), Some(lot.as_str()));
    }
}
