//! The byte pipe under the RFID driver: a serial port or a TCP stream,
//! behind one small type so the driver has one loop for both.
//!
//! Both read with the configured timeout (a quiet device wakes the driver
//! to check for shutdown and due work), write whole buffers, and report a
//! lost connection as such. A TCP stream is connected with
//! a bounded connect timeout, Nagle off (commands are small and
//! latency-bound), and a write timeout so a reader that stops reading
//! cannot block the driver; it is closed cleanly: our side shut down for
//! writing, then whatever the reader still sends read until it closes or
//! a short deadline passes (so no unread data turns the close into a
//! reset).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serialport::SerialPort;

use super::{classify_read, PortSettings, ReadOutcome};

/// How long a TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a write may block.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a device is reached.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Endpoint {
    /// The serial port at [`PortSettings::path`], at its baud rate.
    #[default]
    Serial,
    /// A TCP connection (a network RFID reader).
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
}

/// An open connection.
pub(super) enum Connection {
    Serial(Box<dyn SerialPort>),
    Tcp(TcpStream),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connection::Serial(_) => f.write_str("Connection::Serial"),
            Connection::Tcp(s) => write!(f, "Connection::Tcp({:?})", s.peer_addr().ok()),
        }
    }
}

impl Connection {
    /// Opens `endpoint` with `settings`' read timeout (and baud, for a
    /// serial port).
    pub(super) fn open(settings: &PortSettings, endpoint: &Endpoint) -> Result<Self, String> {
        match endpoint {
            Endpoint::Serial => settings
                .open()
                .map(Connection::Serial)
                .map_err(|e| e.to_string()),
            Endpoint::Tcp { host, port } => {
                connect_tcp(host, *port, settings.read_timeout).map(Connection::Tcp)
            }
        }
    }

    /// Whether this is a network connection.
    pub(super) fn is_tcp(&self) -> bool {
        matches!(self, Connection::Tcp(_))
    }

    /// Reads what is there, waiting up to the read timeout.
    pub(super) fn read(&mut self, buf: &mut [u8]) -> ReadOutcome {
        match self {
            Connection::Serial(port) => classify_read(port.read(buf)),
            Connection::Tcp(stream) => match classify_read(stream.read(buf)) {
                ReadOutcome::Lost(reason) if reason == super::EOF => {
                    ReadOutcome::Lost("the reader closed the connection".into())
                }
                other => other,
            },
        }
    }

    /// Writes all of `bytes` (nothing to do when empty).
    pub(super) fn write_all(&mut self, bytes: &[u8]) -> Result<(), String> {
        if bytes.is_empty() {
            return Ok(());
        }
        let result = match self {
            Connection::Serial(port) => port.write_all(bytes).and_then(|()| port.flush()),
            Connection::Tcp(stream) => stream.write_all(bytes).and_then(|()| stream.flush()),
        };
        result.map_err(|e| e.to_string())
    }

    /// Closes cleanly: a TCP stream is shut down for writing and read
    /// until the peer closes or `linger` passes, each byte read handed to
    /// `on_data`. A serial port is just closed.
    pub(super) fn close(self, linger: Duration, mut on_data: impl FnMut(&[u8])) {
        let Connection::Tcp(mut stream) = self else {
            return;
        };
        if let Err(error) = stream.shutdown(Shutdown::Write) {
            tracing::debug!(%error, "Could not shut the connection down for writing.");
            return;
        }
        let end = Instant::now() + linger;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            match classify_read(stream.read(&mut buf)) {
                ReadOutcome::Data(n) => on_data(&buf[..n]),
                ReadOutcome::Quiet => {}
                ReadOutcome::Lost(_) => break,
            }
        }
    }
}

fn connect_tcp(host: &str, port: u16, read_timeout: Duration) -> Result<TcpStream, String> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                // A zero timeout would mean "block forever": keep it positive.
                let timeout = read_timeout.max(Duration::from_millis(1));
                stream
                    .set_read_timeout(Some(timeout))
                    .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)))
                    .and_then(|()| stream.set_nodelay(true))
                    .map_err(|e| e.to_string())?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last.to_string())
}
