//! Fuzzes EPC decoding and EPC URI parsing: neither panics; whatever
//! decodes re-encodes to the same bits, and its URIs parse back to it.
//! Each input is tried both as EPC bytes and (when UTF-8) as a URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_hardware::epc::{self, Coding, ParsedUri};
use tally_sync::Epc;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Epc::from_bytes(data) {
        if let Ok(decoded) = epc::decode(&e) {
            let bytes = decoded.to_bytes();
            let n = bytes.len().min(data.len());
            assert_eq!(&bytes[..n], &data[..n]);
            let _ = (decoded.element_string(), decoded.filter_name(), decoded.gtin());
            assert_eq!(epc::parse_tag_uri(&decoded.tag_uri()).as_ref(), Ok(&decoded));
            if let (Some(id), Some(uri)) = (decoded.identity(), decoded.epc_uri()) {
                assert_eq!(epc::parse_pure_uri(&uri).as_ref(), Ok(&id));
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        match epc::parse_uri(text) {
            Ok(ParsedUri::Tag(d)) => {
                // A parsed tag encodes, and the encoding decodes to it.
                let e = d.to_epc().expect("every scheme encodes to 12 or 26 bytes");
                assert_eq!(epc::decode(&e).as_ref(), Ok(&d));
            }
            Ok(ParsedUri::Pure(id)) => {
                assert_eq!(epc::parse_pure_uri(&id.uri()).as_ref(), Ok(&id));
                for coding in [Coding::Shortest, Coding::Bits96, Coding::Long] {
                    if let Ok(d) = id.to_tag(1, coding) {
                        assert_eq!(d.identity().as_ref(), Some(&id));
                    }
                }
            }
            Err(_) => {}
        }
    }
});
