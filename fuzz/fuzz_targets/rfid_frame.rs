//! Fuzzes the RFID frame codec and the M100 protocol: never panics, every
//! decoded frame re-encodes to exactly the bytes it was decoded from, and
//! the buffered reader always drains.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_hardware::rfid::frame::{decode, Decoded, Frame};
use tally_hardware::rfid::m100::M100;
use tally_hardware::rfid::ReaderProtocol;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match decode(rest) {
            Decoded::Frame(f, used) => {
                let bytes = Frame::new(f.frame_type, f.command, f.payload)
                    .encode()
                    .expect("encodes");
                assert_eq!(bytes.as_slice(), &rest[..used]);
                rest = &rest[used..];
            }
            Decoded::Invalid { skip, .. } => {
                assert!(skip >= 1 && skip <= rest.len());
                rest = &rest[skip..];
            }
            Decoded::Incomplete => break,
        }
    }
    let mut p = M100::default();
    for chunk in data.chunks(7) {
        p.push(chunk);
        while p.next_event().is_some() {}
    }
    let mut guard = 0;
    while p.drop_stale() {
        while p.next_event().is_some() {}
        guard += 1;
        assert!(guard <= data.len());
    }
});
