//! Fuzzes GS1 element-string parsing (transmitted and human forms), GS1
//! Digital Link URIs and the whole barcode decoder: never panics, and a
//! parsed element string prints to a human form that parses back to the
//! same elements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_hardware::{barcode, gs1, rcn::RcnLayout};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for parsed in [gs1::parse(text), gs1::parse_human(text)]
        .into_iter()
        .flatten()
    {
        if parsed.elements.iter().all(|e| !e.value.contains('(')) {
            let again = gs1::parse_human(&parsed.to_string()).expect("human form re-parses");
            assert_eq!(again, parsed);
        }
        for e in &parsed.elements {
            let _ = e.interpret(2025);
        }
    }
    if let Ok(link) = gs1::parse_digital_link(text) {
        let again = gs1::parse_human(&link.elements.to_string());
        if link.elements.elements.iter().all(|e| !e.value.contains('(')) {
            assert_eq!(again.expect("a link's AIs re-parse").elements, link.elements.elements);
        }
    }
    let _ = barcode::decode(text, &RcnLayout::default_layouts());
});
