//! Fuzzes the scanner line framer: never panics, bounded codes, and the
//! same codes whatever way the stream is split into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_hardware::framer::{FramerConfig, LineFramer, Suffix};

fuzz_target!(|data: &[u8]| {
    let [mode, max, split, stream @ ..] = data else {
        return;
    };
    let suffix = [Suffix::Any, Suffix::Cr, Suffix::Lf, Suffix::CrLf][usize::from(mode % 4)];
    let prefix = (mode & 0x04 != 0).then(|| b"]".to_vec());
    let config = FramerConfig {
        suffix,
        prefix,
        max_len: usize::from(*max).max(1),
    };
    let run = |chunk: usize| {
        let mut f = LineFramer::new(config.clone());
        let mut codes = Vec::new();
        for c in stream.chunks(chunk.max(1)) {
            f.push(c);
            while let Some(code) = f.next_code() {
                codes.push(code);
            }
        }
        (codes, f.stats())
    };
    let (whole, stats) = run(stream.len());
    let (split_codes, split_stats) = run(usize::from(*split));
    assert_eq!(whole, split_codes, "codes depend on read boundaries");
    assert_eq!(stats, split_stats);
    for code in &whole {
        assert!(!code.is_empty() && code.len() <= config.max_len);
        assert!(!code.contains(&b'\r') && !code.contains(&b'\n') && !code.contains(&0));
    }
});
