//! Fuzzes the LLRP codec and session: never panics; the stream reader
//! returns only whole messages whose length matches their header, stops
//! after a bad length, and yields the same messages however the bytes are
//! chunked; parameter walks and tag reports decode or fail, never loop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_hardware::rfid::llrp::header::HEADER_LEN;
use tally_hardware::rfid::llrp::message;
use tally_hardware::rfid::llrp::param::Params;
use tally_hardware::rfid::llrp::report;
use tally_hardware::rfid::llrp::stream::{MessageReader, RawMessage};
use tally_hardware::rfid::llrp::{Llrp, LlrpSettings};
use tally_hardware::rfid::ReaderProtocol;

/// Every message in `data` pushed in `chunk`-byte pieces, and whether the
/// stream broke.
fn messages(data: &[u8], chunk: usize) -> (Vec<RawMessage>, bool) {
    let mut r = MessageReader::with_max_len(4096);
    let mut out = Vec::new();
    let mut broke = false;
    for part in data.chunks(chunk) {
        r.push(part);
        while let Some(m) = r.next_message() {
            match m {
                Ok(m) => {
                    assert_eq!(m.header.length as usize, m.body.len() + HEADER_LEN);
                    out.push(m);
                }
                Err(_) => {
                    assert!(!broke, "a broken stream yields one error");
                    broke = true;
                }
            }
        }
    }
    (out, broke)
}

fuzz_target!(|data: &[u8]| {
    let (whole, broke) = messages(data, data.len().max(1));
    let (chunked, broke_chunked) = messages(data, 3);
    assert_eq!(whole, chunked);
    assert_eq!(broke, broke_chunked);
    for m in &whole {
        let _ = message::decode(m);
    }
    let _ = report::decode(data);
    assert!(Params::new(data).count() <= data.len());

    let mut p = Llrp::new(LlrpSettings {
        max_message_len: 4096,
        ..Default::default()
    });
    for part in data.chunks(7) {
        p.push(part);
        while p.next_event().is_some() {}
        let _ = p.take_outgoing();
    }
    let _ = (p.stats(), p.stop_inventory());
});
