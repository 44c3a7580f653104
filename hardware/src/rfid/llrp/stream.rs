//! Cuts the byte stream from a reader into whole LLRP messages.
//!
//! Design constraints:
//! - TCP delivers bytes, not messages: one read may hold part of a message,
//!   several messages, or the end of one and the start of the next. Bytes
//!   are buffered until a header's length is complete.
//! - LLRP has no sync byte: a message's only frame is its length. A length
//!   shorter than the header or longer than [`MessageReader::max_len`]
//!   leaves no way to find the next message, so the reader stops with a
//!   [`StreamError`] and yields nothing until [`MessageReader::reset`]
//!   (the driver then reconnects). Memory is bounded by `max_len`.
//! - Pure: bytes in, messages out.

use super::header::{Header, HEADER_LEN};

/// The default longest message accepted: 1 MiB, room for a report of
/// thousands of tags.
pub const DEFAULT_MAX_LEN: u32 = 1 << 20;

/// Why the stream cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A length shorter than the header itself.
    #[error("LLRP message type {kind} with length {length}, shorter than its header")]
    TooShort {
        /// The message type.
        kind: u16,
        /// The length field.
        length: u32,
    },
    /// A length over the limit.
    #[error("LLRP message type {kind} with length {length}, over the {max}-byte limit")]
    TooLong {
        /// The message type.
        kind: u16,
        /// The length field.
        length: u32,
        /// The limit.
        max: u32,
    },
}

/// One whole message: its header and body (the bytes after the header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The header.
    pub header: Header,
    /// The body.
    pub body: Vec<u8>,
}

/// A buffered message reader; see the module docs.
#[derive(Debug)]
pub struct MessageReader {
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start (consumed bytes are dropped
    /// in bulk, not per message).
    start: usize,
    max_len: u32,
    broken: bool,
    messages: u64,
}

impl MessageReader {
    /// A reader accepting messages up to [`DEFAULT_MAX_LEN`].
    pub fn new() -> Self {
        MessageReader::with_max_len(DEFAULT_MAX_LEN)
    }

    /// A reader accepting messages up to `max_len` bytes (at least a
    /// header).
    pub fn with_max_len(max_len: u32) -> Self {
        MessageReader {
            buf: Vec::new(),
            start: 0,
            max_len: max_len.max(HEADER_LEN as u32),
            broken: false,
            messages: 0,
        }
    }

    /// The longest message accepted.
    pub fn max_len(&self) -> u32 {
        self.max_len
    }

    /// Whole messages returned so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Bytes buffered (a partial message).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether a bad length stopped the reader.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Buffers bytes read from the reader (dropped once broken).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start >= 4096 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `None` when more bytes are needed, or the
    /// error that broke the stream (returned once; `None` after it).
    pub fn next_message(&mut self) -> Option<Result<RawMessage, StreamError>> {
        if self.broken {
            return None;
        }
        let rest = self.buf.get(self.start..)?;
        let header = Header::decode(rest)?;
        let error = if header.length < HEADER_LEN as u32 {
            Some(StreamError::TooShort {
                kind: header.kind,
                length: header.length,
            })
        } else if header.length > self.max_len {
            Some(StreamError::TooLong {
                kind: header.kind,
                length: header.length,
                max: self.max_len,
            })
        } else {
            None
        };
        if let Some(e) = error {
            self.reset();
            self.broken = true;
            return Some(Err(e));
        }
        // Within max_len, which fits in memory by construction.
        let total = usize::try_from(header.length).ok()?;
        let body = rest.get(HEADER_LEN..total)?.to_vec();
        self.start += total;
        self.messages += 1;
        Some(Ok(RawMessage { header, body }))
    }

    /// Forgets buffered bytes and a broken state (a new connection).
    pub fn reset(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
        self.broken = false;
    }
}

impl Default for MessageReader {
    fn default() -> Self {
        MessageReader::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// KEEPALIVE (62 = 0x3E, §16.1.31), ID `id`, no body.
    fn keepalive(id: u8) -> Vec<u8> {
        vec![0x04, 0x3E, 0, 0, 0, 10, 0, 0, 0, id]
    }

    #[test]
    fn messages_split_and_joined_arbitrarily() {
        // Three messages; the second has a 3-byte body.
        let mut stream = keepalive(1);
        stream.extend([0x07, 0xFF, 0, 0, 0, 13, 0, 0, 0, 2, 0xAA, 0xBB, 0xCC]);
        stream.extend(keepalive(3));
        for split in 0..=stream.len() {
            let mut r = MessageReader::new();
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                r.push(part);
                while let Some(m) = r.next_message() {
                    got.push(m.unwrap());
                }
            }
            let ids: Vec<u32> = got.iter().map(|m| m.header.id).collect();
            assert_eq!(ids, [1, 2, 3], "split at {split}");
            assert_eq!(got[1].body, [0xAA, 0xBB, 0xCC]);
            assert_eq!(r.buffered(), 0);
        }
        // Byte by byte.
        let mut r = MessageReader::new();
        let mut n = 0;
        for b in &stream {
            r.push(std::slice::from_ref(b));
            while r.next_message().is_some() {
                n += 1;
            }
        }
        assert_eq!((n, r.messages()), (3, 3));
    }

    #[test]
    fn hostile_lengths_break_the_stream_until_reset() {
        let mut r = MessageReader::with_max_len(64);
        r.push(&[0x04, 0x3D, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1]);
        assert_eq!(
            r.next_message(),
            Some(Err(StreamError::TooLong {
                kind: 61,
                length: u32::MAX,
                max: 64
            }))
        );
        assert!(r.is_broken());
        r.push(&keepalive(2));
        assert_eq!(r.next_message(), None);
        r.reset();
        r.push(&keepalive(2));
        assert!(matches!(r.next_message(), Some(Ok(m)) if m.header.id == 2));

        let mut r = MessageReader::new();
        r.push(&[0x04, 0x3E, 0, 0, 0, 9, 0, 0, 0, 1]);
        assert_eq!(
            r.next_message(),
            Some(Err(StreamError::TooShort {
                kind: 62,
                length: 9
            }))
        );
        assert_eq!(MessageReader::with_max_len(0).max_len(), 10);
    }
}
