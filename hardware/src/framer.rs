//! The scanner line framer: turns the byte stream of a serial barcode
//! scanner into complete codes.
//!
//! Design constraints:
//! - Pure: bytes in, codes out. It never reads a port, so it is tested with
//!   tables and fuzzed.
//! - A code is complete only when its suffix (CR, LF, CRLF, or any of them)
//!   has arrived; partial input is kept across [`LineFramer::push`] calls, so
//!   a code split over any number of reads comes out whole, exactly once.
//! - NUL and other control bytes a scanner never sends inside a code are
//!   skipped and counted; GS (0x1D, FNC1), RS (0x1E), FS (0x1C) and EOT
//!   (0x04) are kept because GS1 and ISO/IEC 15434 data carry them.
//! - A line longer than `max_len` is dropped whole (up to its suffix) and
//!   counted; memory stays bounded whatever the device sends.
//! - With a configured prefix, lines without it are dropped and counted.

/// Which bytes end a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Suffix {
    /// Carriage return (0x0D).
    Cr,
    /// Line feed (0x0A).
    Lf,
    /// CR then LF. A lone CR or LF is skipped as garbage.
    CrLf,
    /// Any of CR, LF or CRLF (the default). Empty lines are ignored, so
    /// CRLF yields one code, not a code and an empty one.
    #[default]
    Any,
}

impl std::str::FromStr for Suffix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cr" => Ok(Suffix::Cr),
            "lf" => Ok(Suffix::Lf),
            "crlf" => Ok(Suffix::CrLf),
            "any" => Ok(Suffix::Any),
            other => Err(format!(
                "unknown suffix {other:?} (expected cr, lf, crlf or any)"
            )),
        }
    }
}

/// The default longest code, in bytes (after the prefix). GS1 DataMatrix and
/// QR payloads in retail stay well below this.
pub const DEFAULT_MAX_LEN: usize = 512;

/// Framer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramerConfig {
    /// What ends a code.
    pub suffix: Suffix,
    /// Bytes every code starts with (stripped), if the scanner is set to
    /// send a prefix.
    pub prefix: Option<Vec<u8>>,
    /// Longest accepted code in bytes, prefix excluded.
    pub max_len: usize,
}

impl Default for FramerConfig {
    fn default() -> Self {
        FramerConfig {
            suffix: Suffix::Any,
            prefix: None,
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

/// What the framer skipped so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FramerStats {
    /// Complete codes returned.
    pub codes: u64,
    /// NUL bytes skipped.
    pub nul_bytes: u64,
    /// Other control bytes skipped (including lone CR/LF under `CrLf`).
    pub garbage_bytes: u64,
    /// Lines dropped for being longer than `max_len`.
    pub overlong_lines: u64,
    /// Lines dropped for lacking the configured prefix.
    pub missing_prefix: u64,
}

/// Splits a scanner's byte stream into codes. See the module docs.
#[derive(Debug, Clone)]
pub struct LineFramer {
    config: FramerConfig,
    /// The current, not yet terminated line.
    line: Vec<u8>,
    /// The current line grew past the limit: drop until the next suffix.
    discarding: bool,
    /// Under `CrLf`, the previous byte was a CR.
    pending_cr: bool,
    /// Complete codes not yet taken by [`LineFramer::next_code`].
    ready: std::collections::VecDeque<Vec<u8>>,
    stats: FramerStats,
}

impl LineFramer {
    /// A framer with `config`.
    pub fn new(config: FramerConfig) -> Self {
        LineFramer {
            config,
            line: Vec::new(),
            discarding: false,
            pending_cr: false,
            ready: std::collections::VecDeque::new(),
            stats: FramerStats::default(),
        }
    }

    /// Counters of what was skipped.
    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// Bytes of the current unterminated line.
    pub fn pending_len(&self) -> usize {
        self.line.len()
    }

    /// Forgets the unterminated line (the device was lost mid-code); keeps
    /// the counters and codes not yet taken.
    pub fn discard_partial(&mut self) {
        self.line.clear();
        self.discarding = false;
        self.pending_cr = false;
    }

    /// Feeds bytes read from the device.
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push_byte(b);
        }
    }

    /// The next complete code, prefix stripped, or `None` until more bytes
    /// arrive.
    pub fn next_code(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    fn push_byte(&mut self, b: u8) {
        match (self.config.suffix, b) {
            (Suffix::Cr, b'\r') | (Suffix::Lf, b'\n') | (Suffix::Any, b'\r' | b'\n') => {
                self.end_line();
                return;
            }
            (Suffix::CrLf, b'\r') => {
                if self.pending_cr {
                    self.stats.garbage_bytes += 1;
                }
                self.pending_cr = true;
                return;
            }
            (Suffix::CrLf, b'\n') => {
                if self.pending_cr {
                    self.pending_cr = false;
                    self.end_line();
                } else {
                    self.stats.garbage_bytes += 1;
                }
                return;
            }
            _ => {}
        }
        if self.pending_cr {
            // A CR not followed by LF under CrLf: the CR was noise.
            self.pending_cr = false;
            self.stats.garbage_bytes += 1;
        }
        if b == 0 {
            self.stats.nul_bytes += 1;
            return;
        }
        if is_garbage(b) {
            self.stats.garbage_bytes += 1;
            return;
        }
        if self.discarding {
            return;
        }
        let limit = self.config.max_len + self.config.prefix.as_ref().map_or(0, Vec::len);
        if self.line.len() >= limit {
            self.discarding = true;
            self.line.clear();
            return;
        }
        self.line.push(b);
    }

    fn end_line(&mut self) {
        if self.discarding {
            self.discarding = false;
            self.stats.overlong_lines += 1;
            return;
        }
        if self.line.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.line);
        let code = match &self.config.prefix {
            Some(prefix) => match line.strip_prefix(prefix.as_slice()) {
                Some(rest) if !rest.is_empty() => rest.to_vec(),
                _ => {
                    self.stats.missing_prefix += 1;
                    return;
                }
            },
            None => line,
        };
        self.stats.codes += 1;
        self.ready.push_back(code);
    }
}

/// Control bytes that never belong to a code. GS, RS, FS and EOT are data
/// (GS1 FNC1 and ISO/IEC 15434 envelopes); TAB is kept too.
fn is_garbage(b: u8) -> bool {
    (b < 0x20 && !matches!(b, 0x04 | b'\t' | 0x1C..=0x1E)) || b == 0x7F
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame_all(config: FramerConfig, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, FramerStats) {
        let mut f = LineFramer::new(config);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            while let Some(code) = f.next_code() {
                out.push(code);
            }
        }
        (out, f.stats())
    }

    fn cfg(suffix: Suffix) -> FramerConfig {
        FramerConfig {
            suffix,
            ..FramerConfig::default()
        }
    }

    // Vectors: scanner output as configured by the usual "suffix" settings of
    // USB-COM / RS-232 scanners (CR default, LF, CRLF); codes are GS1 General
    // Specifications examples (EAN-13 4006381333931 from ISO/IEC 15420 annex).
    #[test]
    fn splits_codes_by_suffix() {
        type Row<'a> = (Suffix, &'a [&'a [u8]], &'a [&'a [u8]]);
        let table: &[Row] = &[
            (Suffix::Any, &[b"4006381333931\r"], &[b"4006381333931"]),
            (Suffix::Any, &[b"4006381333931\r\n"], &[b"4006381333931"]),
            (
                Suffix::Any,
                &[b"400638\r\n", b"1333931\n"],
                &[b"400638", b"1333931"],
            ),
            (
                Suffix::Any,
                &[b"4006", b"381333931", b"\r"],
                &[b"4006381333931"],
            ),
            (Suffix::Cr, &[b"A\rB\nC\r"], &[b"A", b"BC"]),
            (Suffix::Lf, &[b"A\nB\rC\n"], &[b"A", b"BC"]),
            (Suffix::CrLf, &[b"A\r", b"\nB\r\n"], &[b"A", b"B"]),
            (Suffix::CrLf, &[b"A\rB\r\n"], &[b"AB"]),
            // GS (FNC1) is data, not garbage: GS1-128 ]C1 0112345678901231 GS 10ABC.
            (
                Suffix::Any,
                &[b"]C1010400638133393110AB\x1d21X\r"],
                &[b"]C1010400638133393110AB\x1d21X"],
            ),
            // Partial code without suffix stays pending.
            (Suffix::Any, &[b"123"], &[]),
        ];
        for (suffix, chunks, want) in table {
            let (got, _) = frame_all(cfg(*suffix), chunks);
            let want: Vec<Vec<u8>> = want.iter().map(|w| w.to_vec()).collect();
            assert_eq!(got, want, "{suffix:?} {chunks:?}");
        }
    }

    #[test]
    fn skips_nul_garbage_and_counts() {
        let (got, stats) = frame_all(cfg(Suffix::Any), &[b"\0\0AB\x01C\x7f\r\x02\r"]);
        assert_eq!(got, vec![b"ABC".to_vec()]);
        assert_eq!(stats.nul_bytes, 2);
        assert_eq!(stats.garbage_bytes, 3);
        assert_eq!(stats.codes, 1);
    }

    #[test]
    fn drops_overlong_lines_and_recovers() {
        let config = FramerConfig {
            max_len: 4,
            ..FramerConfig::default()
        };
        let (got, stats) = frame_all(config, &[b"12345", b"678\r1234\r"]);
        assert_eq!(got, vec![b"1234".to_vec()]);
        assert_eq!(stats.overlong_lines, 1);
    }

    #[test]
    fn prefix_is_stripped_and_required() {
        let config = FramerConfig {
            prefix: Some(b"S:".to_vec()),
            ..FramerConfig::default()
        };
        let (got, stats) = frame_all(config, &[b"S:123\rX:456\rS:\r"]);
        assert_eq!(got, vec![b"123".to_vec()]);
        assert_eq!(stats.missing_prefix, 2);
    }

    proptest! {
        // Any split of a stream of complete codes yields exactly those codes,
        // and arbitrary bytes never panic the framer.
        #[test]
        fn never_loses_a_code_across_splits(
            codes in proptest::collection::vec("[0-9A-Za-z\\x1d]{1,40}", 1..20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
            suffix in prop_oneof![Just(Suffix::Any), Just(Suffix::Cr), Just(Suffix::Lf), Just(Suffix::CrLf)],
        ) {
            let term: &[u8] = match suffix { Suffix::Cr => b"\r", Suffix::Lf => b"\n", Suffix::CrLf | Suffix::Any => b"\r\n" };
            let mut stream = Vec::new();
            for c in &codes { stream.extend_from_slice(c.as_bytes()); stream.extend_from_slice(term); }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&stream[last..p]); last = p; }
            chunks.push(&stream[last..]);
            let (got, stats) = frame_all(cfg(suffix), &chunks);
            let want: Vec<Vec<u8>> = codes.iter().map(|c| c.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(stats.garbage_bytes, 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000), max_len in 1usize..64) {
            let config = FramerConfig { max_len, ..FramerConfig::default() };
            let mut f = LineFramer::new(config);
            f.push(&bytes);
            while let Some(code) = f.next_code() {
                prop_assert!(!code.is_empty() && code.len() <= max_len);
            }
            prop_assert!(f.pending_len() <= max_len);
        }
    }
}
