//! Encoding sync messages: JSON (readable, for debugging and tools) and a
//! compact binary form (postcard), both size-limited and version-checked.
//!
//! # Design constraints
//! - A decoder never reads or allocates more than the limit it is given:
//!   the size is checked before parsing, and [`read_limited`] stops reading
//!   a stream one byte past the limit.
//! - The protocol version is checked before the body is parsed, so a peer
//!   speaking an unknown major version gets [`CodecError::UnsupportedVersion`]
//!   rather than a confusing parse error.
//! - Binary frame: `b"TY"`, major (u16 BE), minor (u16 BE), postcard body.

use std::io::Read;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::message::{ProtocolVersion, Versioned, PROTOCOL_VERSION};

/// The default largest message accepted: 32 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

const MAGIC: &[u8; 2] = b"TY";
const HEADER_LEN: usize = 6;

/// Which encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json`.
    Json,
    /// `application/x-tally-sync` (postcard with a version header).
    Binary,
}

impl Encoding {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Binary => "application/x-tally-sync",
        }
    }

    /// The encoding for an HTTP content type (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().map(str::trim) {
            Some("application/json") => Some(Encoding::Json),
            Some("application/x-tally-sync") => Some(Encoding::Binary),
            _ => None,
        }
    }
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Larger than the limit.
    #[error("message too large: {size} bytes, limit {max}")]
    TooLarge {
        /// Bytes seen (at least).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A major version this build does not speak.
    #[error("unsupported protocol version {found}; this peer speaks {supported}")]
    UnsupportedVersion {
        /// What the message said.
        found: ProtocolVersion,
        /// What we speak.
        supported: ProtocolVersion,
    },
    /// Not a binary sync message.
    #[error("not a Tally sync message (bad magic bytes)")]
    BadMagic,
    /// Syntactically or semantically malformed.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Reading the stream failed.
    #[error("reading message: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `msg`.
pub fn encode<T: Serialize + Versioned>(msg: &T, enc: Encoding) -> Result<Vec<u8>, CodecError> {
    match enc {
        Encoding::Json => serde_json::to_vec(msg).map_err(|e| CodecError::Malformed(e.to_string())),
        Encoding::Binary => {
            let v = msg.version();
            let mut out = Vec::with_capacity(256);
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&v.major.to_be_bytes());
            out.extend_from_slice(&v.minor.to_be_bytes());
            postcard::to_io(msg, &mut out).map_err(|e| CodecError::Malformed(e.to_string()))?;
            Ok(out)
        }
    }
}

fn check_version(found: ProtocolVersion) -> Result<(), CodecError> {
    if found.major != PROTOCOL_VERSION.major {
        return Err(CodecError::UnsupportedVersion {
            found,
            supported: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

/// Decodes a message of at most `max` bytes, checking its version first.
pub fn decode<T: DeserializeOwned + Versioned>(
    bytes: &[u8],
    enc: Encoding,
    max: usize,
) -> Result<T, CodecError> {
    if bytes.len() > max {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    match enc {
        Encoding::Json => {
            #[derive(Deserialize)]
            struct Peek {
                version: ProtocolVersion,
            }
            let peek: Peek =
                serde_json::from_slice(bytes).map_err(|e| CodecError::Malformed(e.to_string()))?;
            check_version(peek.version)?;
            serde_json::from_slice(bytes).map_err(|e| CodecError::Malformed(e.to_string()))
        }
        Encoding::Binary => {
            if bytes.len() < HEADER_LEN {
                return Err(CodecError::Malformed("shorter than the header".into()));
            }
            if &bytes[..2] != MAGIC {
                return Err(CodecError::BadMagic);
            }
            let found = ProtocolVersion {
                major: u16::from_be_bytes([bytes[2], bytes[3]]),
                minor: u16::from_be_bytes([bytes[4], bytes[5]]),
            };
            check_version(found)?;
            let (msg, rest): (T, &[u8]) = postcard::take_from_bytes(&bytes[HEADER_LEN..])
                .map_err(|e| CodecError::Malformed(e.to_string()))?;
            if !rest.is_empty() {
                return Err(CodecError::Malformed(format!(
                    "{} trailing bytes after the message",
                    rest.len()
                )));
            }
            if msg.version() != found {
                return Err(CodecError::Malformed(
                    "header and body disagree on the protocol version".into(),
                ));
            }
            Ok(msg)
        }
    }
}

/// Reads a whole stream into memory, failing once it passes `max` bytes
/// (it reads at most `max + 1`).
pub fn read_limited(reader: impl Read, max: usize) -> Result<Vec<u8>, CodecError> {
    let mut buf = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut buf)?;
    if buf.len() > max {
        return Err(CodecError::TooLarge {
            size: buf.len(),
            max,
        });
    }
    Ok(buf)
}

/// Serializes any value with postcard (no header): for storage records
/// that share the wire types.
pub fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_stdvec(value).map_err(|e| CodecError::Malformed(e.to_string()))
}

/// The inverse of [`to_bytes`]; the whole input must be consumed.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (v, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Malformed("trailing bytes".into()));
    }
    Ok(v)
}
