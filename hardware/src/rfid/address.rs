//! Where an RFID reader is, as an operator writes it: a serial device path
//! (an M100/QM100 module) or `llrp://HOST[:PORT]` (an LLRP network reader,
//! port 5084 by default). Parsing is pure and its errors are typed.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::llrp::{Llrp, DEFAULT_PORT};
use super::m100::M100;
use super::ReaderProtocol;

/// A reader's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderAddress {
    /// An M100/QM100 module on a serial port (prefer a stable
    /// `/dev/serial/by-id/…` path).
    Serial(PathBuf),
    /// An LLRP reader on the network.
    Llrp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
}

/// Why an address does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing given.
    #[error("empty reader address")]
    Empty,
    /// A URL scheme other than `llrp`.
    #[error("unknown scheme {0:?}: give a serial device path or llrp://HOST[:PORT]")]
    Scheme(String),
    /// `llrp://` without a host.
    #[error("llrp:// address without a host")]
    NoHost,
    /// A host that is not a host name or IP address.
    #[error("invalid host {0:?} in llrp:// address")]
    Host(String),
    /// A port that is not 1–65535.
    #[error("invalid port {0:?} in llrp:// address (1-65535)")]
    Port(String),
    /// Something after the host and port (a path, a query).
    #[error("unexpected {0:?} after the host and port of an llrp:// address")]
    Trailing(String),
}

impl ReaderAddress {
    /// Parses a configured path: `llrp://…` is a network reader, a string
    /// with another `scheme://` is an error, anything else (including a
    /// path that is not UTF-8) is a serial device.
    pub fn from_path(path: &Path) -> Result<Self, AddressError> {
        match path.to_str() {
            Some(s) => s.parse(),
            None => Ok(ReaderAddress::Serial(path.to_path_buf())),
        }
    }

    /// The protocol this kind of reader speaks, with default settings:
    /// M100 for a serial path, LLRP for `llrp://`.
    pub fn protocol(&self) -> Box<dyn ReaderProtocol> {
        match self {
            ReaderAddress::Serial(_) => Box::new(M100::default()),
            ReaderAddress::Llrp { .. } => Box::new(Llrp::default()),
        }
    }
}

impl FromStr for ReaderAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(AddressError::Empty);
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Ok(ReaderAddress::Serial(PathBuf::from(s)));
        };
        if !scheme.eq_ignore_ascii_case("llrp") {
            return Err(AddressError::Scheme(scheme.to_owned()));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if let Some(i) = authority.find(['/', '?', '#']) {
            return Err(AddressError::Trailing(authority[i..].to_owned()));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| AddressError::Host(authority.to_owned()))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(AddressError::Host(host.to_owned()));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| AddressError::Trailing(p.to_owned()))?,
                ),
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(AddressError::NoHost);
        }
        let valid_name = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !host.starts_with(['-', '.'])
            && host.len() <= 253;
        if !authority.starts_with('[') && !valid_name {
            return Err(AddressError::Host(host.to_owned()));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(AddressError::Port(p.to_owned())),
            },
        };
        Ok(ReaderAddress::Llrp {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for ReaderAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReaderAddress::Serial(p) => write!(f, "{}", p.display()),
            ReaderAddress::Llrp { host, port } if host.contains(':') => {
                write!(f, "llrp://[{host}]:{port}")
            }
            ReaderAddress::Llrp { host, port } => write!(f, "llrp://{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llrp(host: &str, port: u16) -> ReaderAddress {
        ReaderAddress::Llrp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn addresses_parse() {
        let table: [(&str, Result<ReaderAddress, AddressError>); 18] = [
            ("llrp://10.0.0.5", Ok(llrp("10.0.0.5", 5084))),
            ("llrp://10.0.0.5:14150", Ok(llrp("10.0.0.5", 14150))),
            (
                "LLRP://reader-1.dock.local/",
                Ok(llrp("reader-1.dock.local", 5084)),
            ),
            ("llrp://[fe80::1]:5085", Ok(llrp("fe80::1", 5085))),
            ("llrp://[::1]", Ok(llrp("::1", 5084))),
            (
                "/dev/serial/by-id/usb-1a86-port0",
                Ok(ReaderAddress::Serial(
                    "/dev/serial/by-id/usb-1a86-port0".into(),
                )),
            ),
            ("COM3", Ok(ReaderAddress::Serial("COM3".into()))),
            ("", Err(AddressError::Empty)),
            ("tcp://10.0.0.5", Err(AddressError::Scheme("tcp".into()))),
            ("llrp://", Err(AddressError::NoHost)),
            ("llrp://:5084", Err(AddressError::NoHost)),
            ("llrp://10.0.0.5:0", Err(AddressError::Port("0".into()))),
            (
                "llrp://10.0.0.5:65536",
                Err(AddressError::Port("65536".into())),
            ),
            ("llrp://10.0.0.5:+80", Err(AddressError::Port("+80".into()))),
            ("llrp://10.0.0.5:", Err(AddressError::Port(String::new()))),
            (
                "llrp://bad host",
                Err(AddressError::Host("bad host".into())),
            ),
            ("llrp://[nope]:1", Err(AddressError::Host("nope".into()))),
            ("llrp://h/path", Err(AddressError::Trailing("/path".into()))),
        ];
        for (input, want) in table {
            assert_eq!(input.parse::<ReaderAddress>(), want, "{input:?}");
        }
    }

    #[test]
    fn display_round_trips_and_picks_the_protocol() {
        for s in [
            "llrp://10.0.0.5:5084",
            "llrp://[fe80::1]:5085",
            "/dev/ttyUSB0",
        ] {
            let a: ReaderAddress = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert_eq!(
            ReaderAddress::from_path(Path::new("llrp://r"))
                .unwrap()
                .protocol()
                .name(),
            "llrp"
        );
        assert_eq!(
            ReaderAddress::from_path(Path::new("/dev/ttyUSB0"))
                .unwrap()
                .protocol()
                .name(),
            "m100"
        );
    }
}
