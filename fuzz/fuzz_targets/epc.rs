//! Fuzzes EPC decoding: never panics, and a decoded SGTIN-96 re-encodes to
//! the same 96 bits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_hardware::epc::{self, DecodedEpc};
use tally_sync::Epc;

fuzz_target!(|data: &[u8]| {
    let Ok(e) = Epc::from_bytes(data) else {
        return;
    };
    if let Ok(decoded) = epc::decode(&e) {
        let _ = (decoded.tag_uri(), decoded.epc_uri());
        match decoded {
            DecodedEpc::Sgtin96(s) => {
                assert_eq!(&s.encode()[..], &data[..12]);
                let _ = s.gtin();
            }
            DecodedEpc::Sscc96(s) => assert_eq!(s.sscc().len(), 18),
            DecodedEpc::Grai96(g) => {
                let _ = g.grai();
            }
            DecodedEpc::Raw(_) => {}
        }
    }
});
