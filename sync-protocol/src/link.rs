//! The live link: the small notices the hub pushes to a connected store
//! (`GET /v1/link`, one long-lived response over the store's mutual-TLS
//! HTTP/2 connection), and how they are framed: one JSON object per line
//! (NDJSON), each at most [`MAX_NOTICE_BYTES`].
//!
//! # Design constraints
//! - Notices are hints, never state: a lost notice costs a wait (the
//!   periodic sync stays the source of truth), a repeated one changes
//!   nothing the store would not do anyway.
//! - Reading a stream can never fail the reader: [`NoticeReader`] takes
//!   bytes in any chunking, skips an over-long or malformed line with an
//!   error for the log, and keeps reading; memory is bounded by one line.
//! - Forward compatible: a notice of a kind this version does not know
//!   decodes as [`Notice::Unknown`] and is ignored.
//! - Pure: no I/O; the agent's and the hub's link tasks do the reading
//!   and writing.

use serde::{Deserialize, Serialize};

use crate::counter::BoundedCounter;
use crate::gtin::Gtin;
use crate::ids::{EventId, ReplicaId};

/// The longest notice line accepted, newline excluded.
pub const MAX_NOTICE_BYTES: usize = 64 * 1024;

/// The media type of the link's response body.
pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// What the hub tells a live store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// The first notice of every link: the hub accepted the store, and
    /// sends a heartbeat at least every `heartbeat_ms` (a store that hears
    /// nothing for a few heartbeats reconnects).
    Hello {
        /// The store, as the hub identified it from its certificate.
        store: ReplicaId,
        /// The hub's heartbeat interval.
        heartbeat_ms: u64,
    },
    /// Nothing to say: the link is alive.
    Heartbeat,
    /// Sync now (the hub has something for the store).
    SyncNow,
    /// The catalog changed: sync now to fetch it.
    CatalogChanged,
    /// An online order needs `units` of `gtin` at the store's location
    /// beyond the hub's reserve: give up to that many unsold rights to the
    /// hub and report them (`POST /v1/rights/released`) under `request_id`.
    RightsWanted {
        /// Names the request; the report carries it back.
        request_id: EventId,
        /// The item.
        gtin: Gtin,
        /// Units wanted (at most [`crate::rights::MAX_UNITS_PER_REQUEST`]).
        units: u64,
        /// The hub's entries of the counter (the store's own left out),
        /// merged by the store before it releases: rights the hub gave it
        /// in a sync answer it never received count. Boxed: every link's
        /// queue holds notices, most of them small.
        #[serde(default)]
        counter: Box<BoundedCounter>,
        /// How long the asking order waits for the report, in ms (absent
        /// from hubs before it was sent): the store fits its work in it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    },
    /// A notice of a kind this version does not know: ignored.
    #[serde(other)]
    Unknown,
}

impl Notice {
    /// The notice as one NDJSON line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        // A notice is a few plain fields: serializing cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        line
    }

    /// The notice's kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::Hello { .. } => "hello",
            Notice::Heartbeat => "heartbeat",
            Notice::SyncNow => "sync_now",
            Notice::CatalogChanged => "catalog_changed",
            Notice::RightsWanted { .. } => "rights_wanted",
            Notice::Unknown => "unknown",
        }
    }
}

/// Why a line of the stream was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    /// A line longer than [`MAX_NOTICE_BYTES`].
    #[error("a notice line longer than {MAX_NOTICE_BYTES} bytes was skipped")]
    TooLong,
    /// A line that is not a notice.
    #[error("a line that is not a notice was skipped: {0}")]
    Malformed(String),
}

/// Splits a byte stream into notices (see the module docs).
#[derive(Debug, Default)]
pub struct NoticeReader {
    line: Vec<u8>,
    /// The current line grew too long: drop bytes up to its end.
    skipping: bool,
}

impl NoticeReader {
    /// A reader at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes of the stream; returns every line they
    /// complete, decoded, in order. Empty lines are ignored.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Result<Notice, NoticeError>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (part, rest, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            if !self.skipping {
                if self.line.len() + part.len() > MAX_NOTICE_BYTES {
                    self.line.clear();
                    self.skipping = true;
                    out.push(Err(NoticeError::TooLong));
                } else {
                    self.line.extend_from_slice(part);
                }
            }
            if complete {
                if !self.skipping && !self.line.iter().all(u8::is_ascii_whitespace) {
                    out.push(
                        serde_json::from_slice(&self.line)
                            .map_err(|e| NoticeError::Malformed(e.to_string())),
                    );
                }
                self.line.clear();
                self.skipping = false;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn notices() -> Vec<Notice> {
        vec![
            Notice::Hello {
                store: ReplicaId::new("s1").unwrap(),
                heartbeat_ms: 15_000,
            },
            Notice::Heartbeat,
            Notice::SyncNow,
            Notice::CatalogChanged,
            Notice::RightsWanted {
                request_id: EventId::v7(1_750_000_000_000, [7; 10]),
                gtin: Gtin::from_body(96_385_074).unwrap(),
                units: 3,
                counter: Box::default(),
                wait_ms: Some(2_000),
            },
        ]
    }

    #[test]
    fn notices_are_one_json_line_each_and_read_back() {
        let mut stream = Vec::new();
        for n in notices() {
            let line = n.to_line();
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            stream.extend(line);
        }
        let read: Vec<_> = NoticeReader::new()
            .push(&stream)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(read, notices());
        assert_eq!(
            String::from_utf8(Notice::SyncNow.to_line()).unwrap(),
            "{\"kind\":\"sync_now\"}\n"
        );
    }

    #[test]
    fn unknown_kinds_are_ignored_and_garbage_is_skipped() {
        let mut r = NoticeReader::new();
        let got = r.push(
            b"{\"kind\":\"order_for_you\",\"id\":1}\n\n  \nnot json\n{\"kind\":\"heartbeat\"}\n",
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], Ok(Notice::Unknown));
        assert!(matches!(got[1], Err(NoticeError::Malformed(_))));
        assert_eq!(got[2], Ok(Notice::Heartbeat));
    }

    #[test]
    fn an_overlong_line_is_skipped_whole_and_reading_goes_on() {
        let mut r = NoticeReader::new();
        let long = vec![b'x'; MAX_NOTICE_BYTES + 1];
        assert_eq!(r.push(&long[..10]), vec![]);
        assert_eq!(r.push(&long[10..]), vec![Err(NoticeError::TooLong)]);
        assert_eq!(r.push(b"more of it"), vec![], "still skipping");
        assert_eq!(
            r.push(b"\n{\"kind\":\"sync_now\"}\n"),
            vec![Ok(Notice::SyncNow)]
        );
        assert!(r.line.capacity() <= 2 * MAX_NOTICE_BYTES);
    }

    proptest! {
        /// However the stream is cut into chunks, the same notices come out.
        #[test]
        fn chunking_does_not_matter(cuts in proptest::collection::vec(0usize..400, 0..12)) {
            let stream: Vec<u8> = notices().iter().flat_map(Notice::to_line).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut r = NoticeReader::new();
            let mut got = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([stream.len()]) {
                got.extend(r.push(&stream[at..c]));
                at = c;
            }
            let got: Vec<Notice> = got.into_iter().map(Result::unwrap).collect();
            prop_assert_eq!(got, notices());
        }

        /// Hostile bytes never panic the reader and never grow its buffer
        /// past one line.
        #[test]
        fn any_bytes_are_survived(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..8)) {
            let mut r = NoticeReader::new();
            for c in &chunks {
                let _ = r.push(c);
                prop_assert!(r.line.len() <= MAX_NOTICE_BYTES);
            }
        }
    }
}
