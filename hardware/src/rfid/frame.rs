//! The frame codec of the widespread UHF RFID serial module protocol
//! (Magic RF M100 / QM100 and the many readers built on them, e.g. Yanzeo):
//!
//! ```text
//! 0xBB | type | command | length MSB | length LSB | payload… | checksum | 0x7E
//! ```
//!
//! `type` is 0x00 (command, host → reader), 0x01 (response) or 0x02
//! (notice, e.g. one tag of an inventory round). The checksum is the low
//! byte of the sum of the bytes from `type` through the payload.
//!
//! Design constraints (mini-redis `frame.rs` style):
//! - [`decode`] is pure and zero-copy: it returns a frame and how many bytes
//!   it used, [`Decoded::Incomplete`] (wait for more bytes), or an error with
//!   how many bytes to skip. It never reads a port.
//! - Resynchronisation: garbage before 0xBB is skipped up to the next 0xBB;
//!   a frame with a bad type, an over-long length, a missing 0x7E or a bad
//!   checksum skips only its 0xBB, so a real frame that started inside it is
//!   found.
//! - [`FrameReader`] buffers a byte stream on top of [`decode`] and counts
//!   every byte it skipped.

/// First byte of every frame.
pub const HEADER: u8 = 0xBB;
/// Last byte of every frame.
pub const END: u8 = 0x7E;
/// Bytes around the payload: header, type, command, 2 length, checksum, end.
pub const OVERHEAD: usize = 7;
/// Longest payload accepted. The module's longest frames (memory reads)
/// stay far below; a larger length is corruption.
pub const MAX_PAYLOAD: usize = 1024;

/// Frame type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// 0x00: host → reader.
    Command,
    /// 0x01: reader's answer to a command.
    Response,
    /// 0x02: unsolicited notice (inventory results).
    Notice,
}

impl FrameType {
    /// The type byte.
    pub fn byte(self) -> u8 {
        match self {
            FrameType::Command => 0x00,
            FrameType::Response => 0x01,
            FrameType::Notice => 0x02,
        }
    }

    /// Parses a type byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x00 => Some(FrameType::Command),
            0x01 => Some(FrameType::Response),
            0x02 => Some(FrameType::Notice),
            _ => None,
        }
    }
}

/// A frame borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// Type.
    pub frame_type: FrameType,
    /// Command code.
    pub command: u8,
    /// Payload.
    pub payload: &'a [u8],
}

/// An owned frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Type.
    pub frame_type: FrameType,
    /// Command code.
    pub command: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

impl FrameRef<'_> {
    /// Copies the payload.
    pub fn to_owned(&self) -> Frame {
        Frame {
            frame_type: self.frame_type,
            command: self.command,
            payload: self.payload.to_vec(),
        }
    }
}

impl Frame {
    /// A frame.
    pub fn new(frame_type: FrameType, command: u8, payload: impl Into<Vec<u8>>) -> Self {
        Frame {
            frame_type,
            command,
            payload: payload.into(),
        }
    }

    /// Encodes the frame (see [`encode_into`]).
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(OVERHEAD + self.payload.len());
        encode_into(self.frame_type, self.command, &self.payload, &mut out)?;
        Ok(out)
    }
}

/// What went wrong at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Bytes before the next 0xBB.
    #[error("{0} byte(s) of garbage before a frame header")]
    Garbage(usize),
    /// A type byte other than 0x00, 0x01, 0x02.
    #[error("unknown frame type 0x{0:02X}")]
    BadType(u8),
    /// A length above [`MAX_PAYLOAD`].
    #[error("frame length {0} exceeds {MAX_PAYLOAD}")]
    TooLong(usize),
    /// The byte where 0x7E belongs is something else.
    #[error("frame does not end in 0x7E (found 0x{0:02X})")]
    BadEnd(u8),
    /// Checksum mismatch.
    #[error("frame checksum is 0x{found:02X}, expected 0x{expected:02X}")]
    BadChecksum {
        /// The checksum byte carried.
        found: u8,
        /// The checksum computed.
        expected: u8,
    },
    /// A partial frame that never completed (the device went quiet).
    #[error("partial frame dropped after the device went quiet")]
    Stale,
}

/// The result of [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A frame, and the number of bytes it took.
    Frame(FrameRef<'a>, usize),
    /// Need more bytes.
    Incomplete,
    /// Skip `skip` bytes (at least 1) and try again.
    Invalid {
        /// What was wrong.
        error: FrameError,
        /// Bytes to skip.
        skip: usize,
    },
}

/// The checksum: low byte of the sum of `bytes`.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
}

/// Decodes the frame at the start of `buf`. See the module docs.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    let Some(&first) = buf.first() else {
        return Decoded::Incomplete;
    };
    if first != HEADER {
        let skip = buf.iter().position(|&b| b == HEADER).unwrap_or(buf.len());
        return Decoded::Invalid {
            error: FrameError::Garbage(skip),
            skip,
        };
    }
    let invalid = |error| Decoded::Invalid { error, skip: 1 };
    let Some(&type_byte) = buf.get(1) else {
        return Decoded::Incomplete;
    };
    let Some(frame_type) = FrameType::from_byte(type_byte) else {
        return invalid(FrameError::BadType(type_byte));
    };
    let (Some(&command), Some(&hi), Some(&lo)) = (buf.get(2), buf.get(3), buf.get(4)) else {
        return Decoded::Incomplete;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_PAYLOAD {
        return invalid(FrameError::TooLong(len));
    }
    let total = OVERHEAD + len;
    if buf.len() < total {
        return Decoded::Incomplete;
    }
    let end = buf[total - 1];
    if end != END {
        return invalid(FrameError::BadEnd(end));
    }
    let expected = checksum(&buf[1..5 + len]);
    let found = buf[5 + len];
    if found != expected {
        return invalid(FrameError::BadChecksum { found, expected });
    }
    Decoded::Frame(
        FrameRef {
            frame_type,
            command,
            payload: &buf[5..5 + len],
        },
        total,
    )
}

/// Appends the encoding of a frame to `out`. Fails only for a payload longer
/// than [`MAX_PAYLOAD`].
pub fn encode_into(
    frame_type: FrameType,
    command: u8,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::TooLong(payload.len()));
    }
    let len = (payload.len() as u16).to_be_bytes();
    let start = out.len();
    out.push(HEADER);
    out.push(frame_type.byte());
    out.push(command);
    out.extend_from_slice(&len);
    out.extend_from_slice(payload);
    let sum = checksum(&out[start + 1..]);
    out.push(sum);
    out.push(END);
    Ok(())
}

/// Counters of a [`FrameReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameStats {
    /// Good frames.
    pub frames: u64,
    /// Bytes skipped for any reason.
    pub skipped_bytes: u64,
    /// Frames rejected for a bad checksum.
    pub bad_checksum: u64,
    /// Frames rejected for a missing end byte.
    pub bad_end: u64,
    /// Frames rejected for a bad type or length.
    pub bad_header: u64,
    /// Partial frames dropped by [`FrameReader::drop_stale`].
    pub stale: u64,
}

/// Buffers a byte stream and yields frames, resynchronising after errors.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    stats: FrameStats,
}

/// The longest a reader's buffer can usefully get: one maximal frame.
const MAX_BUFFER: usize = OVERHEAD + MAX_PAYLOAD;

impl FrameReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the device.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0
            && (self.start >= self.buf.len() / 2 || self.buf.len() + bytes.len() > 4 * MAX_BUFFER)
        {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes waiting.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Counters.
    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    /// The next frame, an error that was skipped (for logging), or `None`
    /// when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<FrameRef<'_>, FrameError>> {
        // Borrow the buffer and the counters separately, so the returned
        // frame can borrow the buffer while the cursor moves.
        let buf = &self.buf[self.start..];
        match decode(buf) {
            Decoded::Incomplete => None,
            Decoded::Invalid { error, skip } => {
                self.start += skip;
                self.stats.skipped_bytes += skip as u64;
                match error {
                    FrameError::BadChecksum { .. } => self.stats.bad_checksum += 1,
                    FrameError::BadEnd(_) => self.stats.bad_end += 1,
                    FrameError::BadType(_) | FrameError::TooLong(_) => self.stats.bad_header += 1,
                    FrameError::Garbage(_) | FrameError::Stale => {}
                }
                Some(Err(error))
            }
            Decoded::Frame(frame, used) => {
                self.start += used;
                self.stats.frames += 1;
                Some(Ok(frame))
            }
        }
    }

    /// Drops the first byte of a partial frame that never completed, so a
    /// corrupted length cannot hold back the frames behind it once the
    /// device goes quiet. Returns whether anything was dropped.
    pub fn drop_stale(&mut self) -> bool {
        if self.buffered() == 0 {
            return false;
        }
        self.start += 1;
        self.stats.skipped_bytes += 1;
        self.stats.stale += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    // Vectors from the M100/QM100 module protocol as documented by the module
    // vendors (Magic RF "M100 user protocol", also the Yanzeo/JRD-4035
    // manuals): multiple inventory with CNT 10000, stop, a tag notice, the
    // "no tag" error response and the stop response.
    #[test]
    fn decodes_module_frames() {
        let table: &[(&str, FrameType, u8, &str)] = &[
            (
                "BB 00 27 00 03 22 27 10 83 7E",
                FrameType::Command,
                0x27,
                "22 27 10",
            ),
            ("BB 00 28 00 00 28 7E", FrameType::Command, 0x28, ""),
            ("BB 00 22 00 00 22 7E", FrameType::Command, 0x22, ""),
            (
                "BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E",
                FrameType::Notice,
                0x22,
                "C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76",
            ),
            ("BB 01 FF 00 01 15 16 7E", FrameType::Response, 0xFF, "15"),
            ("BB 01 28 00 01 00 2A 7E", FrameType::Response, 0x28, "00"),
        ];
        for (bytes, ty, cmd, payload) in table {
            let raw = hex(bytes);
            match decode(&raw) {
                Decoded::Frame(f, used) => {
                    assert_eq!(
                        (f.frame_type, f.command, f.payload),
                        (*ty, *cmd, hex(payload).as_slice()),
                        "{bytes}"
                    );
                    assert_eq!(used, raw.len());
                    // And the encoder produces exactly the vendor bytes.
                    assert_eq!(f.to_owned().encode().unwrap(), raw, "{bytes}");
                }
                other => panic!("{bytes}: {other:?}"),
            }
        }
    }

    #[test]
    fn reports_incomplete_and_errors() {
        let table: &[(&str, Decoded<'static>)] = &[
            ("", Decoded::Incomplete),
            ("BB", Decoded::Incomplete),
            ("BB 02 22 00", Decoded::Incomplete),
            ("BB 02 22 00 11 C9", Decoded::Incomplete),
            (
                "00 11 BB",
                Decoded::Invalid {
                    error: FrameError::Garbage(2),
                    skip: 2,
                },
            ),
            (
                "00 11",
                Decoded::Invalid {
                    error: FrameError::Garbage(2),
                    skip: 2,
                },
            ),
            (
                "BB 05",
                Decoded::Invalid {
                    error: FrameError::BadType(5),
                    skip: 1,
                },
            ),
            (
                "BB 01 FF 04 01",
                Decoded::Invalid {
                    error: FrameError::TooLong(1025),
                    skip: 1,
                },
            ),
            (
                "BB 01 FF 00 01 15 16 7F",
                Decoded::Invalid {
                    error: FrameError::BadEnd(0x7F),
                    skip: 1,
                },
            ),
            (
                "BB 01 FF 00 01 15 17 7E",
                Decoded::Invalid {
                    error: FrameError::BadChecksum {
                        found: 0x17,
                        expected: 0x16,
                    },
                    skip: 1,
                },
            ),
        ];
        for (bytes, want) in table {
            let raw = hex(bytes);
            assert_eq!(decode(&raw), *want, "{bytes}");
        }
    }

    #[test]
    fn reader_resyncs_and_counts() {
        let good = hex("BB 01 FF 00 01 15 16 7E");
        let mut stream = hex("00 FF 13");
        stream.extend_from_slice(&hex("BB 01 FF 00 01 15 17 7E")); // bad checksum
        stream.extend_from_slice(&good);
        // A corrupted length that swallows the next frame: found after the
        // bogus frame's end check fails.
        stream.extend_from_slice(&hex("BB 01 FF 00 08"));
        stream.extend_from_slice(&good);
        stream.extend_from_slice(&hex("00 00 00"));
        let mut r = FrameReader::new();
        let mut frames = 0;
        for chunk in stream.chunks(3) {
            r.push(chunk);
            while let Some(item) = r.next_frame() {
                if item.is_ok() {
                    frames += 1;
                }
            }
        }
        assert_eq!(frames, 2);
        let s = r.stats();
        assert_eq!(s.bad_checksum, 1);
        assert_eq!(s.bad_end, 1);
        assert_eq!(s.frames, 2);
    }

    #[test]
    fn stale_partial_frame_is_dropped() {
        let mut r = FrameReader::new();
        r.push(&hex("BB 01 FF 03 FF BB 01 FF 00 01 15 16 7E"));
        assert!(r.next_frame().is_none(), "held back by the bogus length");
        assert!(r.drop_stale());
        let mut got = 0;
        while let Some(item) = r.next_frame() {
            got += usize::from(item.is_ok());
        }
        assert_eq!(got, 1);
        assert_eq!(r.stats().stale, 1);
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(ty in 0u8..3, command in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let ty = FrameType::from_byte(ty).unwrap();
            let bytes = Frame::new(ty, command, payload.clone()).encode().unwrap();
            match decode(&bytes) {
                Decoded::Frame(f, used) => {
                    prop_assert_eq!(used, bytes.len());
                    prop_assert_eq!(f.to_owned(), Frame::new(ty, command, payload));
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        // Frames surrounded by garbage and split anywhere all come out.
        #[test]
        fn reader_finds_frames_in_noise(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..10),
            noise in proptest::collection::vec(proptest::collection::vec(0u8..0xBB, 0..10), 10),
            chunk in 1usize..50,
        ) {
            let mut stream = Vec::new();
            for (i, p) in payloads.iter().enumerate() {
                stream.extend_from_slice(&noise[i]);
                encode_into(FrameType::Notice, 0x22, p, &mut stream).unwrap();
            }
            let mut r = FrameReader::new();
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                r.push(c);
                while let Some(item) = r.next_frame() {
                    if let Ok(f) = item { got.push(f.payload.to_vec()); }
                }
            }
            prop_assert_eq!(got, payloads);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut r = FrameReader::new();
            r.push(&bytes);
            let mut guard = 0;
            loop {
                match r.next_frame() { Some(_) => {}, None => { if !r.drop_stale() { break; } } }
                guard += 1;
                prop_assert!(guard <= 2 * bytes.len() + 2);
            }
        }
    }
}
