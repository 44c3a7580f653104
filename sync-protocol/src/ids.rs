//! Identifiers: replicas, locations (stores), events and serialized items.
//!
//! Every identifier that arrives from outside is validated when it is built
//! or deserialized, so code holding one never re-checks it.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why a string is not a valid replica or location id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty, or longer than [`MAX_ID_LEN`].
    #[error("id must be 1 to {MAX_ID_LEN} characters, found {0}")]
    BadLength(usize),
    /// A character outside `[A-Za-z0-9._-]`.
    #[error("id may only contain letters, digits, '.', '_' and '-': {0:?}")]
    BadChar(String),
    /// An EPC that is not an even number of hex digits of a supported length.
    #[error("EPC must be 4 to {max} hex digits in whole bytes: {0:?}", max = MAX_EPC_BYTES * 2)]
    BadEpc(String),
}

/// The longest replica or location id.
pub const MAX_ID_LEN: usize = 64;

fn check_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > MAX_ID_LEN {
        return Err(IdError::BadLength(s.len()));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(IdError::BadChar(s.chars().take(MAX_ID_LEN).collect()));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// 1 to 64 characters of `[A-Za-z0-9._-]`. Cheap to clone.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: &str) -> Result<Self, IdError> {
                check_id(s)?;
                Ok(Self(Arc::from(s)))
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A replica: one writer of counter entries (a store's agent, or the hub).
    ReplicaId
);

string_id!(
    /// A stock location: a store (or a warehouse). Counters are per (item, location).
    LocationId
);

impl ReplicaId {
    /// The hub's replica id. Stores may not use it.
    pub const HUB: &'static str = "hub";

    /// The hub's replica id as a value.
    pub fn hub() -> Self {
        Self(Arc::from(Self::HUB))
    }

    /// Whether this is the hub.
    pub fn is_hub(&self) -> bool {
        &*self.0 == Self::HUB
    }
}

/// An event id. Tally creates UUIDv7 ids (time-ordered); ids supplied by
/// front-ends are accepted in any UUID version so retries stay idempotent.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl EventId {
    /// A UUIDv7 from a Unix time in milliseconds and 10 random bytes.
    /// The model reads no clock and no entropy: callers pass both in.
    pub fn v7(unix_ms: u64, random: [u8; 10]) -> Self {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
        b[6..].copy_from_slice(&random);
        b[6] = 0x70 | (b[6] & 0x0F); // version 7
        b[8] = 0x80 | (b[8] & 0x3F); // RFC 9562 variant
        EventId(Uuid::from_bytes(b))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

impl FromStr for EventId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(EventId)
    }
}

/// The longest EPC Tally accepts: 496 bits, the Gen2 maximum (EPC TDS §15).
pub const MAX_EPC_BYTES: usize = 62;

/// A tag's Electronic Product Code: the raw EPC bank contents, 2 to 62
/// bytes. Written as upper-case hex; parsed from either case.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epc(Box<[u8]>);

impl Epc {
    /// Parses hex (either case, no separators).
    pub fn from_hex(s: &str) -> Result<Self, IdError> {
        let bad = || IdError::BadEpc(s.chars().take(MAX_EPC_BYTES * 2).collect());
        if s.len() % 2 != 0 || s.len() < 4 || s.len() > MAX_EPC_BYTES * 2 {
            return Err(bad());
        }
        let bytes = s
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                let hi = (pair[0] as char).to_digit(16)?;
                let lo = (pair[1] as char).to_digit(16)?;
                Some((hi * 16 + lo) as u8)
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        Ok(Epc(bytes.into_boxed_slice()))
    }

    /// Wraps raw bytes (2 to 62 of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        if bytes.len() < 2 || bytes.len() > MAX_EPC_BYTES {
            return Err(IdError::BadEpc(format!("{} bytes", bytes.len())));
        }
        Ok(Epc(bytes.into()))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Upper-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02X}")).collect()
    }
}

impl fmt::Display for Epc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Epc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epc({})", self.to_hex())
    }
}

impl FromStr for Epc {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl Serialize for Epc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Epc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            Epc::from_hex(&s).map_err(serde::de::Error::custom)
        } else {
            let b = <Vec<u8>>::deserialize(deserializer)?;
            Epc::from_bytes(&b).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate() {
        assert!(ReplicaId::new("store-001").is_ok());
        assert!(ReplicaId::new("").is_err());
        assert!(ReplicaId::new("a b").is_err());
        assert!(LocationId::new(&"x".repeat(65)).is_err());
        assert!(serde_json::from_str::<ReplicaId>("\"ok.id_1\"").is_ok());
        assert!(serde_json::from_str::<ReplicaId>("\"bad/id\"").is_err());
        assert!(ReplicaId::hub().is_hub());
    }

    #[test]
    fn event_id_v7_is_version_7_and_time_ordered() {
        let a = EventId::v7(1_700_000_000_000, [0xFF; 10]);
        let b = EventId::v7(1_700_000_000_001, [0x00; 10]);
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a < b);
        assert_eq!(a.to_string().parse::<EventId>().unwrap(), a);
    }

    #[test]
    fn epc_hex_round_trip() {
        let e = Epc::from_hex("3074257bf7194e4000001a85").unwrap();
        assert_eq!(e.to_hex(), "3074257BF7194E4000001A85");
        assert_eq!(e.as_bytes().len(), 12);
        assert!(Epc::from_hex("abc").is_err());
        assert!(Epc::from_hex("zz00").is_err());
        assert!(Epc::from_hex("").is_err());
        let bin = postcard::to_stdvec(&e).unwrap();
        assert_eq!(postcard::from_bytes::<Epc>(&bin).unwrap(), e);
    }
}
