//! Black-box tests of `tally-agent decode barcode|epc`: the real binary,
//! its exit codes, its JSON on stdout and its one-line reason on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::{json, Value};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally-agent"))
        .args(args)
        .output()
        .unwrap()
}

fn ok_json(args: &[&str]) -> Value {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object on one line: {stdout:?}"
    );
    serde_json::from_str(&stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one-line reason: {stderr:?}"
    );
    stderr
}

#[test]
fn decodes_barcodes() {
    // GS1-128 with GS written three ways: <GS>, \x1d and a real 0x1D byte.
    for raw in [
        "]C1010400638133393117251231<GS>10LOT7",
        "]C1010400638133393117251231\\x1d10LOT7",
        "]C1010400638133393117251231\u{1d}10LOT7",
    ] {
        let v = ok_json(&["decode", "barcode", raw]);
        assert_eq!(v["symbology"], "gs1-128");
        assert_eq!(v["gtin"], "04006381333931");
        assert_eq!(
            v["ais"],
            json!({"01": "04006381333931", "17": "251231", "10": "LOT7"})
        );
    }
    // Human-readable form.
    let v = ok_json(&["decode", "barcode", "(01)94006381333934(3103)001234"]);
    assert_eq!(v["ais"], json!({"01": "94006381333934", "3103": "001234"}));
    assert_eq!(v["ai_details"]["3103"]["value"], "1.234");
    // EAN-13 with and without AIM identifier; EAN-8.
    let v = ok_json(&["decode", "barcode", "]E04006381333931"]);
    assert_eq!(
        (v["symbology"].as_str(), v["gtin"].as_str()),
        (Some("ean-13"), Some("04006381333931"))
    );
    let v = ok_json(&["decode", "barcode", "4006381333931"]);
    assert_eq!(v["gtin"], "04006381333931");
    let v = ok_json(&["decode", "barcode", "]E496385074"]);
    assert_eq!(
        (v["symbology"].as_str(), v["gtin"].as_str()),
        (Some("ean-8"), Some("00000096385074"))
    );
    // Weighed goods: default layout and a configured one.
    let v = ok_json(&["decode", "barcode", "2112345012346"]);
    assert_eq!(v["gtin"], "02112345000008");
    assert_eq!(v["variable_measure"]["price"], "12.34");
    let v = ok_json(&[
        "decode",
        "barcode",
        "--rcn-layout",
        "28:FFIIIIIVWWWWC:3",
        "2812345928752",
    ]);
    assert_eq!(v["variable_measure"]["weight_kg"], "2.875");
    // GS1 Digital Link in a QR Code: the GTIN, its AIs, the URI's parts.
    let v = ok_json(&[
        "decode",
        "barcode",
        "]Q1https://id.gs1.org/01/09506000134352/10/ABC?17=261231&linkType=all",
    ]);
    assert_eq!(v["symbology"], "qr");
    assert_eq!(v["gtin"], "09506000134352");
    assert_eq!(
        v["ais"],
        json!({"01": "09506000134352", "10": "ABC", "17": "261231"})
    );
    assert_eq!(v["ai_details"]["17"]["date"], "2026-12-31");
    assert_eq!(v["digital_link"]["domain"], "id.gs1.org");
    assert_eq!(v["digital_link"]["other_params"]["linkType"], "all");
    assert_eq!(v["warnings"], json!([]));
    // Any AI of the dictionary; association rules are warnings.
    let v = ok_json(&["decode", "barcode", "(21)S1(91)INTERNAL(7003)2612311530"]);
    assert_eq!(v["ai_details"]["91"]["title"], "INTERNAL");
    assert_eq!(
        v["warnings"],
        json!([
            "AI (21) should appear with (01 or 03 or 8006)",
            "AI (7003) should appear with (01 or 02 or 03)"
        ])
    );
    // Text that is no GS1 code: no GTIN, no AIs.
    let v = ok_json(&["decode", "barcode", "LOYALTY-42"]);
    assert_eq!(
        (v["gtin"].clone(), v["ais"].clone()),
        (Value::Null, json!({}))
    );
}

#[test]
fn rejects_bad_barcodes() {
    assert!(fails(&["decode", "barcode", "]E04006381333932"]).contains("check digit"));
    assert!(fails(&["decode", "barcode", "]C1010400638133"]).contains("needs 14"));
    assert!(
        fails(&["decode", "barcode", "]C183XYZ"]).contains("unknown application identifier (83)")
    );
    assert!(fails(&["decode", "barcode", "(4307)XX"]).contains("iso3166alpha2"));
    assert!(fails(&[
        "decode",
        "barcode",
        "]Q1https://id.gs1.org/01/09506000134352/10/A?21=S"
    ])
    .contains("query parameter"));
    fails(&["decode", "barcode", ""]);
    fails(&[
        "decode",
        "barcode",
        "--rcn-layout",
        "28:FFIIIIIVWWWWC:3",
        "2812345828755",
    ]);
}

#[test]
fn decodes_epcs() {
    // EPC TDS examples.
    let v = ok_json(&["decode", "epc", "3074257BF7194E4000001A85"]);
    for (k, want) in [
        ("scheme", json!("sgtin-96")),
        ("filter", json!(3)),
        ("company_prefix", json!("0614141")),
        ("item_reference", json!("812345")),
        ("serial", json!("6789")),
        ("gtin", json!("80614141123458")),
        ("epc_uri", json!("urn:epc:id:sgtin:0614141.812345.6789")),
        (
            "tag_uri",
            json!("urn:epc:tag:sgtin-96:3.0614141.812345.6789"),
        ),
    ] {
        assert_eq!(v[k], want, "{k}");
    }
    let v = ok_json(&["decode", "epc", "3174257bf4499602d2000000"]);
    assert_eq!(
        (v["scheme"].as_str(), v["sscc"].as_str()),
        (Some("sscc-96"), Some("106141412345678908"))
    );
    let v = ok_json(&["decode", "epc", "3374257BF40C0E400000162E"]);
    assert_eq!(v["epc_uri"], "urn:epc:id:grai:0614141.12345.5678");
    let v = ok_json(&["decode", "epc", "E2801160600002054C0DB71D"]);
    assert_eq!(v["scheme"], "raw");
}

#[test]
fn decodes_long_schemes_and_uris() {
    // TDS 1.13 §E.3 SGTIN-198 example, from hex, from its tag URI and from
    // its pure-identity URI with filter 3: one and the same JSON object.
    let hex = "3674257BF6B7A659B2C2BF100000000000000000000000000000";
    let v = ok_json(&["decode", "epc", hex]);
    assert_eq!(
        v,
        json!({
            "scheme": "sgtin-198",
            "epc": hex,
            "bits": 208,
            "tag_uri": "urn:epc:tag:sgtin-198:3.0614141.712345.32a%2Fb",
            "epc_uri": "urn:epc:id:sgtin:0614141.712345.32a%2Fb",
            "element_string": "(01)70614141123451(21)32a/b",
            "filter": 3,
            "filter_name": "reserved",
            "partition": 5,
            "company_prefix": "0614141",
            "item_reference": "712345",
            "serial": "32a/b",
            "gtin": "70614141123451",
        })
    );
    assert_eq!(
        ok_json(&[
            "decode",
            "epc",
            "urn:epc:tag:sgtin-198:3.0614141.712345.32a%2Fb"
        ]),
        v
    );
    assert_eq!(
        ok_json(&[
            "decode",
            "epc",
            "--filter",
            "3",
            "urn:epc:id:sgtin:0614141.712345.32a%2Fb"
        ]),
        v
    );
    // A numeric serial picks SGTIN-96 (TDS §E.1); --coding long forces
    // SGTIN-198; the filter defaults to 0.
    let v = ok_json(&[
        "decode",
        "epc",
        "--filter",
        "3",
        "urn:epc:id:sgtin:0614141.812345.6789",
    ]);
    assert_eq!(v["epc"], "3074257BF7194E4000001A85");
    let v = ok_json(&[
        "decode",
        "epc",
        "--coding",
        "long",
        "urn:epc:id:sgtin:0614141.812345.6789",
    ]);
    assert_eq!(
        (v["scheme"].as_str(), v["filter"].as_u64()),
        (Some("sgtin-198"), Some(0))
    );
    // SGLN-96 and GIAI-96 (TDS §E.3).
    let v = ok_json(&["decode", "epc", "3274257BF46072000000162E"]);
    assert_eq!(v["element_string"], "(414)0614141123452(254)5678");
    assert_eq!(
        (v["gln"].as_str(), v["extension"].as_str()),
        (Some("0614141123452"), Some("5678"))
    );
    let v = ok_json(&["decode", "epc", "urn:epc:tag:giai-96:3.0614141.5678"]);
    assert_eq!(
        (v["epc"].as_str(), v["giai"].as_str()),
        (Some("3474257BF40000000000162E"), Some("06141415678"))
    );
}

#[test]
fn rejects_bad_epcs() {
    assert!(fails(&["decode", "epc", "307C257BF7194E4000001A85"]).contains("partition"));
    fails(&["decode", "epc", "xyz"]);
    fails(&["decode", "epc", "3074257BF7194E40"]);
    // URIs: a leading zero in an SGTIN-96 serial, an unsupported scheme,
    // a serial SGTIN-96 cannot hold with --coding 96, options on a tag URI.
    fails(&[
        "decode",
        "epc",
        "urn:epc:tag:sgtin-96:3.0614141.812345.06789",
    ]);
    assert!(fails(&["decode", "epc", "urn:epc:id:gid:95100000.12345.400"]).contains("gid"));
    fails(&[
        "decode",
        "epc",
        "--coding",
        "96",
        "urn:epc:id:sgtin:0614141.812345.A1",
    ]);
    fails(&[
        "decode",
        "epc",
        "--filter",
        "1",
        "urn:epc:tag:sgtin-96:3.0614141.812345.6789",
    ]);
    fails(&["decode", "epc", "--filter", "1", "3074257BF7194E4000001A85"]);
}
