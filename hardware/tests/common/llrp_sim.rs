//! A simulated LLRP reader on 127.0.0.1 (port 0) for the driver tests.
//!
//! Independent of the codec under test: every byte it sends is built here
//! by hand from the LLRP 1.0.1 specification (message header §16.1, TV and
//! TLV parameters §16.2.1, the parameters of §16.2.7 and §16.2.8), and it
//! reads the driver's messages with its own header parsing.
//!
//! Behaviour: on each connection it greets with a READER_EVENT_NOTIFICATION
//! carrying a ConnectionAttemptEvent (success, or a refusal when asked),
//! records every message the driver sends, answers SET_READER_CONFIG,
//! DELETE/ADD/ENABLE/START/STOP_ROSPEC and CLOSE_CONNECTION with an
//! LLRPStatus (M_Success unless told to fail one), and closes after
//! answering CLOSE_CONNECTION. The test writes reports, keepalives and
//! garbage with [`LlrpSim::write`] / [`LlrpSim::write_split`], and can
//! drop the connection. It never sends a KEEPALIVE unless the test does,
//! so a test can let it go silent.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// Message types (§16.1).
pub const SET_READER_CONFIG: u16 = 3;
pub const CLOSE_CONNECTION_RESPONSE: u16 = 4;
pub const SET_READER_CONFIG_RESPONSE: u16 = 13;
pub const CLOSE_CONNECTION: u16 = 14;
pub const ADD_ROSPEC: u16 = 20;
pub const DELETE_ROSPEC: u16 = 21;
pub const START_ROSPEC: u16 = 22;
pub const STOP_ROSPEC: u16 = 23;
pub const ENABLE_ROSPEC: u16 = 24;
pub const RO_ACCESS_REPORT: u16 = 61;
pub const KEEPALIVE: u16 = 62;
pub const READER_EVENT_NOTIFICATION: u16 = 63;
pub const KEEPALIVE_ACK: u16 = 72;
pub const CUSTOM_MESSAGE: u16 = 1023;

/// The configuration requests, in the order a client sends them.
pub const CONFIG_SEQUENCE: [u16; 5] = [
    SET_READER_CONFIG,
    DELETE_ROSPEC,
    ADD_ROSPEC,
    ENABLE_ROSPEC,
    START_ROSPEC,
];

/// The response type to a request the simulator answers.
fn response_to(kind: u16) -> Option<u16> {
    Some(match kind {
        SET_READER_CONFIG => SET_READER_CONFIG_RESPONSE,
        CLOSE_CONNECTION => CLOSE_CONNECTION_RESPONSE,
        // ADD 20 → 30, DELETE 21 → 31, START 22 → 32, STOP 23 → 33,
        // ENABLE 24 → 34.
        20..=24 => kind + 10,
        _ => return None,
    })
}

// ---------- hand-written encoders (§16.1, §16.2) ----------

/// Header: 3 reserved bits 0, version 1, 10-bit type, u32 length, u32 ID.
pub fn message(kind: u16, id: u32, body: &[u8]) -> Vec<u8> {
    let mut m = vec![(1 << 2) | (kind >> 8) as u8, (kind & 0xFF) as u8];
    m.extend_from_slice(&(10 + body.len() as u32).to_be_bytes());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// TLV: 6 reserved bits 0, 10-bit type, u16 length including the header.
pub fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut p = kind.to_be_bytes().to_vec();
    p.extend_from_slice(&(4 + value.len() as u16).to_be_bytes());
    p.extend_from_slice(value);
    p
}

/// TV: bit 7 set, 7-bit type, fixed-length value.
pub fn tv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80 | kind];
    p.extend_from_slice(value);
    p
}

/// LLRPStatus (287): code, byte count, UTF-8 description.
pub fn llrp_status(code: u16, text: &str) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(text.len() as u16).to_be_bytes());
    v.extend_from_slice(text.as_bytes());
    tlv(287, &v)
}

/// READER_EVENT_NOTIFICATION with ReaderEventNotificationData (246):
/// UTCTimestamp (128) and ConnectionAttemptEvent (256, u16 status).
pub fn greeting(status: u16) -> Vec<u8> {
    let mut data = tlv(128, &1_700_000_000_000_000u64.to_be_bytes());
    data.extend(tlv(256, &status.to_be_bytes()));
    message(READER_EVENT_NOTIFICATION, 0, &tlv(246, &data))
}

/// A Custom parameter (1023): vendor ID, subtype, data.
pub fn custom(vendor: u32, subtype: u32, data: &[u8]) -> Vec<u8> {
    let mut v = vendor.to_be_bytes().to_vec();
    v.extend_from_slice(&subtype.to_be_bytes());
    v.extend_from_slice(data);
    tlv(1023, &v)
}

/// One tag read for a report.
#[derive(Debug, Clone)]
pub struct SimTag {
    pub epc: Vec<u8>,
    /// Sent as EPCData (241) rather than EPC-96 (TV 13).
    pub as_epc_data: bool,
    pub antenna: u16,
    pub rssi: i8,
    /// Extra parameters placed after the standard ones (vendor data).
    pub extra: Vec<u8>,
}

impl SimTag {
    pub fn new(epc_hex: &str, antenna: u16, rssi: i8) -> SimTag {
        let epc = (0..epc_hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&epc_hex[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>();
        SimTag {
            as_epc_data: epc.len() != 12,
            epc,
            antenna,
            rssi,
            extra: Vec::new(),
        }
    }

    /// TagReportData (240): EPC, ROSpecID (TV 9), AntennaID (TV 1),
    /// PeakRSSI (TV 6), ChannelIndex (TV 7), FirstSeenTimestampUTC (TV 2),
    /// then `extra`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = if self.as_epc_data {
            let mut d = ((self.epc.len() * 8) as u16).to_be_bytes().to_vec();
            d.extend_from_slice(&self.epc);
            tlv(241, &d)
        } else {
            tv(13, &self.epc)
        };
        v.extend(tv(9, &1u32.to_be_bytes()));
        v.extend(tv(1, &self.antenna.to_be_bytes()));
        v.extend(tv(6, &self.rssi.to_be_bytes()));
        v.extend(tv(7, &3u16.to_be_bytes()));
        v.extend(tv(2, &1_700_000_000_123_456u64.to_be_bytes()));
        v.extend_from_slice(&self.extra);
        tlv(240, &v)
    }
}

/// RO_ACCESS_REPORT whose body is `params` (TagReportData and others).
pub fn report(id: u32, params: &[Vec<u8>]) -> Vec<u8> {
    message(RO_ACCESS_REPORT, id, &params.concat())
}

/// KEEPALIVE.
pub fn keepalive(id: u32) -> Vec<u8> {
    message(KEEPALIVE, id, &[])
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------- the simulator ----------

/// A message the driver sent.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which connection (1-based).
    pub conn: usize,
    pub version: u8,
    pub kind: u16,
    pub id: u32,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct State {
    connections: usize,
    /// The current connection's writing side: the test's writes and the
    /// responses share it, so a split write is never interleaved.
    current: Option<Arc<Mutex<TcpStream>>>,
    received: Vec<Received>,
    /// Per connection: how the driver's side ended ("eof", "reset: …").
    ended: Vec<(usize, String)>,
    refuse: Vec<u16>,
    fail: Vec<(u16, u16)>,
    stopping: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// See the module docs.
pub struct LlrpSim {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl LlrpSim {
    pub fn start() -> LlrpSim {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let s = shared.clone();
        let acceptor = std::thread::spawn(move || accept_loop(&listener, &s));
        LlrpSim {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The next connection is greeted with ConnectionAttemptEvent `status`
    /// (e.g. 2: a client-initiated connection already exists).
    pub fn refuse_next(&self, status: u16) {
        self.shared.state.lock().unwrap().refuse.push(status);
    }

    /// The next request of type `kind` is answered with status `code`.
    pub fn fail_next(&self, kind: u16, code: u16) {
        self.shared.state.lock().unwrap().fail.push((kind, code));
    }

    pub fn connections(&self) -> usize {
        self.shared.state.lock().unwrap().connections
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.state.lock().unwrap().received.clone()
    }

    /// Waits until `pred` holds for the state's received messages and
    /// connection count, or panics naming `what` after `within`.
    fn wait<T>(
        &self,
        within: Duration,
        what: &str,
        mut pred: impl FnMut(&State) -> Option<T>,
    ) -> T {
        let end = Instant::now() + within;
        let mut st = self.shared.state.lock().unwrap();
        loop {
            if let Some(v) = pred(&st) {
                return v;
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "simulated reader: no {what} within {within:?}; got {:?}",
                st.received
                    .iter()
                    .map(|r| (r.conn, r.kind, r.id))
                    .collect::<Vec<_>>()
            );
            st = self.shared.changed.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Waits for connection number `n` (1-based).
    pub fn wait_connection(&self, n: usize, within: Duration) {
        self.wait(within, &format!("connection #{n}"), |st| {
            (st.connections >= n).then_some(())
        });
    }

    /// Waits for a message of type `kind` on connection `conn`.
    pub fn wait_message(&self, conn: usize, kind: u16, within: Duration) -> Received {
        self.wait(
            within,
            &format!("message type {kind} on connection #{conn}"),
            |st| {
                st.received
                    .iter()
                    .find(|r| r.conn == conn && r.kind == kind)
                    .cloned()
            },
        )
    }

    /// Waits for the whole configuration sequence on `conn`; returns its
    /// messages in the order received.
    pub fn wait_configured(&self, conn: usize, within: Duration) -> Vec<Received> {
        self.wait_message(conn, START_ROSPEC, within);
        self.received()
            .into_iter()
            .filter(|r| r.conn == conn && CONFIG_SEQUENCE.contains(&r.kind))
            .collect()
    }

    /// Waits until the driver's side of `conn` ended; returns how.
    pub fn wait_ended(&self, conn: usize, within: Duration) -> String {
        self.wait(within, &format!("end of connection #{conn}"), |st| {
            st.ended
                .iter()
                .find(|(c, _)| *c == conn)
                .map(|(_, how)| how.clone())
        })
    }

    /// Writes bytes to the current connection in one write; panics if the
    /// driver has closed it.
    pub fn write(&self, bytes: &[u8]) {
        self.write_split(bytes, &[bytes.len()])
            .unwrap_or_else(|e| panic!("simulated reader: write failed: {e}"));
    }

    /// Writes bytes in pieces ending at the given offsets (each its own
    /// TCP segment; Nagle is off). Fails when the driver closed the
    /// connection meanwhile (as it may after garbage).
    pub fn write_split(&self, bytes: &[u8], cuts: &[usize]) -> std::io::Result<()> {
        let writer = {
            let st = self.shared.state.lock().unwrap();
            st.current.clone().expect("no connection")
        };
        let mut stream = writer.lock().unwrap();
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            let cut = cut.clamp(at, bytes.len());
            if cut > at {
                stream.write_all(&bytes[at..cut])?;
                stream.flush()?;
                // Gives the driver a chance to read each piece on its own;
                // correctness does not depend on it.
                std::thread::sleep(Duration::from_millis(2));
            }
            at = cut;
        }
        Ok(())
    }

    /// Drops the current connection (a reader rebooting, a cable pulled).
    pub fn drop_connection(&self) {
        if let Some(s) = self.shared.state.lock().unwrap().current.take() {
            let _ = s.lock().unwrap().shutdown(Shutdown::Both);
        }
    }
}

impl Drop for LlrpSim {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().stopping = true;
        self.drop_connection();
        // Wake the acceptor.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        stream.set_nodelay(true).unwrap();
        let writer = Arc::new(Mutex::new(stream.try_clone().unwrap()));
        let (conn, status) = {
            let mut st = shared.state.lock().unwrap();
            if st.stopping {
                return;
            }
            st.connections += 1;
            st.current = Some(writer.clone());
            let status = if st.refuse.is_empty() {
                0
            } else {
                st.refuse.remove(0)
            };
            (st.connections, status)
        };
        let _ = writer.lock().unwrap().write_all(&greeting(status));
        shared.changed.notify_all();
        let s = shared.clone();
        std::thread::spawn(move || serve(stream, &writer, conn, &s));
    }
}

/// Reads exactly `n` bytes; `Err(how)` when the connection ends first.
fn read_n(stream: &mut TcpStream, n: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match stream.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Err("eof".into()),
            Ok(0) => return Err("eof mid-message".into()),
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Err(format!("reset: {e}")),
            Err(e) => return Err(format!("error: {e}")),
        }
    }
    Ok(buf)
}

fn serve(mut stream: TcpStream, writer: &Mutex<TcpStream>, conn: usize, shared: &Arc<Shared>) {
    let how = loop {
        let h = match read_n(&mut stream, 10) {
            Ok(h) => h,
            Err(how) => break how,
        };
        let version = (h[0] >> 2) & 7;
        let kind = u16::from_be_bytes([h[0] & 3, h[1]]);
        let len = u32::from_be_bytes([h[2], h[3], h[4], h[5]]) as usize;
        let id = u32::from_be_bytes([h[6], h[7], h[8], h[9]]);
        assert!(
            (10..=65_536).contains(&len),
            "driver sent a message of length {len}"
        );
        let body = match read_n(&mut stream, len - 10) {
            Ok(b) => b,
            Err(how) => break how,
        };
        let code = {
            let mut st = shared.state.lock().unwrap();
            st.received.push(Received {
                conn,
                version,
                kind,
                id,
                body,
            });
            match st.fail.iter().position(|&(k, _)| k == kind) {
                Some(i) => st.fail.remove(i).1,
                None => 0,
            }
        };
        shared.changed.notify_all();
        if let Some(resp) = response_to(kind) {
            let text = if code == 0 { "" } else { "simulated failure" };
            let mut w = writer.lock().unwrap();
            let _ = w.write_all(&message(resp, id, &llrp_status(code, text)));
            if kind == CLOSE_CONNECTION {
                // §12.1.5: the reader answers, then closes; read on to see
                // how the client's side ends.
                let _ = w.shutdown(Shutdown::Write);
            }
        }
    };
    let mut st = shared.state.lock().unwrap();
    st.ended.push((conn, how));
    drop(st);
    shared.changed.notify_all();
}
