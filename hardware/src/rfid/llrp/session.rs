//! The LLRP client session as a [`ReaderProtocol`]: the configuration
//! sequence, keepalive acknowledgements, and tag reports turned into
//! [`TagRead`]s.
//!
//! Design constraints:
//! - **The reader speaks first.** On a new connection it sends a
//!   READER_EVENT_NOTIFICATION with a ConnectionAttemptEvent (LLRP 1.0.1
//!   §13.2.6.11). Success starts the sequence; a refusal (another client is
//!   connected) is [`ReaderEvent::Reconnect`], so the driver retries with
//!   backoff.
//! - **One step at a time.** SET_READER_CONFIG (keepalive and report
//!   content), DELETE_ROSPEC 0 (every ROSpec, whoever added it), ADD_ROSPEC,
//!   ENABLE_ROSPEC, START_ROSPEC: each is sent when the previous one's
//!   response arrives with M_Success. A refused step is reported
//!   ([`ReaderEvent::Error`] with the LLRPStatus) and ends the connection
//!   ([`ReaderEvent::Reconnect`]) so it is retried from the start. DELETE's
//!   status is not checked: with no ROSpec to delete some readers answer
//!   with an error.
//! - **Liveness.** The reader is asked for a KEEPALIVE every
//!   [`LlrpSettings::keepalive`]; each is answered with a KEEPALIVE_ACK
//!   carrying its message ID (§13.1.4). [`ReaderProtocol::silence_limit`]
//!   tells the driver how long silence means a dead connection.
//! - **Tags.** Each TagReportData with an EPC the crate accepts (2–62
//!   bytes) is a [`TagRead`]: antenna from AntennaID, RSSI from PeakRSSI
//!   (−128 dBm, the weakest, when the reader omits it), PC from the C1G2
//!   PC parameter or else the EPC's length. Anything else is counted and
//!   skipped.
//! - Pure: no I/O, no clock. Message IDs are a counter.

use std::collections::VecDeque;
use std::time::Duration;

use tally_sync::Epc;

use super::build;
use super::message::{self, LlrpStatus, Message, Report};
use super::stream::{MessageReader, DEFAULT_MAX_LEN};
use super::types::{msg, ConnectionAttempt};
use crate::rfid::m100::pc_for_len;
use crate::rfid::{ProtocolStats, ReaderEvent, ReaderProtocol, TagRead};

/// What Tally asks of an LLRP reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlrpSettings {
    /// The ID of the ROSpec Tally adds (not 0, which means "all").
    pub rospec_id: u32,
    /// How often the reader sends a KEEPALIVE (KeepaliveSpec, periodic).
    pub keepalive: Duration,
    /// Silence after which the connection is presumed dead.
    pub silence_limit: Duration,
    /// Report after this many tags (ROReportSpec N; 1 reports each tag as
    /// it is read).
    pub report_every: u16,
    /// The longest message accepted (see [`MessageReader`]).
    pub max_message_len: u32,
}

impl Default for LlrpSettings {
    /// ROSpec 1, a keepalive every 5 s, dead after 3 missed keepalives
    /// (15 s), a report per tag, messages up to 1 MiB.
    fn default() -> Self {
        LlrpSettings::with_keepalive(Duration::from_secs(5))
    }
}

impl LlrpSettings {
    /// The defaults with a keepalive every `keepalive` (at least 1 ms) and
    /// a silence limit of three periods.
    pub fn with_keepalive(keepalive: Duration) -> Self {
        let keepalive = keepalive.max(Duration::from_millis(1));
        LlrpSettings {
            rospec_id: 1,
            keepalive,
            silence_limit: keepalive.saturating_mul(3),
            report_every: 1,
            max_message_len: DEFAULT_MAX_LEN,
        }
    }

    fn keepalive_ms(&self) -> u32 {
        u32::try_from(self.keepalive.as_millis()).unwrap_or(u32::MAX)
    }
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connected; waiting for the reader's ConnectionAttemptEvent.
    Greeting,
    /// A configuration request is out; waiting for this response type.
    Configuring(u16),
    /// The ROSpec runs; reports flow.
    Running,
}

/// The configuration sequence: each request and the response that
/// completes it.
const SEQUENCE: [(u16, u16); 5] = [
    (msg::SET_READER_CONFIG, msg::SET_READER_CONFIG_RESPONSE),
    (msg::DELETE_ROSPEC, msg::DELETE_ROSPEC_RESPONSE),
    (msg::ADD_ROSPEC, msg::ADD_ROSPEC_RESPONSE),
    (msg::ENABLE_ROSPEC, msg::ENABLE_ROSPEC_RESPONSE),
    (msg::START_ROSPEC, msg::START_ROSPEC_RESPONSE),
];

/// An LLRP reader session; see the module docs.
#[derive(Debug)]
pub struct Llrp {
    settings: LlrpSettings,
    reader: MessageReader,
    phase: Phase,
    next_id: u32,
    outgoing: Vec<u8>,
    events: VecDeque<ReaderEvent>,
    skipped_bytes: u64,
    bad_payload: u64,
}

impl Llrp {
    /// A session with `settings`.
    pub fn new(settings: LlrpSettings) -> Self {
        Llrp {
            reader: MessageReader::with_max_len(settings.max_message_len),
            settings,
            phase: Phase::Greeting,
            next_id: 1,
            outgoing: Vec::new(),
            events: VecDeque::new(),
            skipped_bytes: 0,
            bad_payload: 0,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LlrpSettings {
        &self.settings
    }

    /// Where the session is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Queues request `kind` of the sequence and waits for its response.
    fn send_step(&mut self, kind: u16, response: u16) {
        let id = self.take_id();
        let s = &self.settings;
        let bytes = match kind {
            msg::SET_READER_CONFIG => {
                build::set_reader_config(id, s.report_every, s.keepalive_ms())
            }
            msg::DELETE_ROSPEC => build::delete_rospec(id, 0),
            msg::ADD_ROSPEC => build::add_rospec(id, s.rospec_id, s.report_every),
            msg::ENABLE_ROSPEC => build::enable_rospec(id, s.rospec_id),
            _ => build::start_rospec(id, s.rospec_id),
        };
        self.outgoing.extend(bytes);
        self.phase = Phase::Configuring(response);
    }

    /// The step after the one answered by `response`, or running.
    fn advance(&mut self, response: u16) {
        let next = SEQUENCE
            .iter()
            .position(|&(_, r)| r == response)
            .and_then(|i| SEQUENCE.get(i + 1));
        match next {
            Some(&(kind, response)) => self.send_step(kind, response),
            None => self.phase = Phase::Running,
        }
    }

    fn error_event(command: Option<u16>, status: &LlrpStatus) -> ReaderEvent {
        ReaderEvent::Error {
            command,
            code: status.code,
            no_tag: false,
            detail: (!status.description.is_empty()).then(|| status.description.clone()),
        }
    }

    fn handle(&mut self, m: Message, len: usize) {
        match m {
            Message::Notification(n) => {
                if n.connection_close {
                    self.events.push_back(ReaderEvent::Reconnect(
                        "the reader is closing the connection (ConnectionCloseEvent)".into(),
                    ));
                    return;
                }
                match n.connection_attempt {
                    Some(ConnectionAttempt::Success) if self.phase == Phase::Greeting => {
                        let (kind, response) = SEQUENCE[0];
                        self.send_step(kind, response);
                    }
                    Some(ConnectionAttempt::Success | ConnectionAttempt::AnotherAttempted)
                    | None => {}
                    Some(refused) => self.events.push_back(ReaderEvent::Reconnect(format!(
                        "the reader refused the connection (ConnectionAttemptEvent status {}: {refused:?})",
                        refused.code()
                    ))),
                }
                self.events.push_back(ReaderEvent::Response {
                    command: msg::READER_EVENT_NOTIFICATION,
                });
            }
            Message::Response { kind, status, .. } => {
                let request = msg::RESPONSES
                    .iter()
                    .find(|&&(r, _)| r == kind)
                    .map(|&(_, q)| q);
                let awaited = self.phase == Phase::Configuring(kind);
                if awaited && (status.is_success() || kind == msg::DELETE_ROSPEC_RESPONSE) {
                    self.events
                        .push_back(ReaderEvent::Response { command: kind });
                    self.advance(kind);
                } else if status.is_success() {
                    self.events
                        .push_back(ReaderEvent::Response { command: kind });
                } else {
                    self.events.push_back(Self::error_event(request, &status));
                    if awaited {
                        self.events.push_back(ReaderEvent::Reconnect(format!(
                            "the reader refused {} (status {})",
                            msg::name(request.unwrap_or(0)),
                            status.code
                        )));
                    }
                }
            }
            Message::Report(report) => self.report(report),
            Message::Keepalive { id } => {
                self.outgoing.extend(build::keepalive_ack(id));
                self.events.push_back(ReaderEvent::Response {
                    command: msg::KEEPALIVE,
                });
            }
            Message::Error(status) => {
                self.events.push_back(Self::error_event(None, &status));
                if matches!(self.phase, Phase::Configuring(_)) {
                    self.events.push_back(ReaderEvent::Reconnect(format!(
                        "ERROR_MESSAGE while configuring (status {})",
                        status.code
                    )));
                }
            }
            Message::Other { kind } => {
                self.skipped_bytes += len as u64;
                self.events.push_back(ReaderEvent::Malformed(format!(
                    "skipped {} message (type {kind}, {len} bytes)",
                    msg::name(kind)
                )));
            }
        }
    }

    fn report(&mut self, report: Report) {
        for tag in report.tags {
            let Ok(epc) = Epc::from_bytes(&tag.epc) else {
                self.bad_payload += 1;
                self.events.push_back(ReaderEvent::Malformed(format!(
                    "EPC of {} bits is not accepted",
                    tag.epc_bits
                )));
                continue;
            };
            let pc = tag.pc.unwrap_or_else(|| pc_for_len(tag.epc.len()));
            self.events.push_back(ReaderEvent::Tag(TagRead {
                epc,
                rssi: tag.peak_rssi.unwrap_or(i8::MIN),
                pc,
                antenna: tag.antenna,
            }));
        }
        for e in report.rejected {
            self.bad_payload += 1;
            self.events.push_back(ReaderEvent::Malformed(e.to_string()));
        }
        if report.cut_short {
            self.bad_payload += 1;
            self.events.push_back(ReaderEvent::Malformed(
                "report cut short by a malformed or undefined parameter".into(),
            ));
        }
    }
}

impl Default for Llrp {
    fn default() -> Self {
        Llrp::new(LlrpSettings::default())
    }
}

impl ReaderProtocol for Llrp {
    fn name(&self) -> &'static str {
        "llrp"
    }

    /// Nothing: the reader speaks first (its ConnectionAttemptEvent starts
    /// the configuration sequence).
    fn start_inventory(&self) -> Vec<u8> {
        Vec::new()
    }

    /// STOP_ROSPEC (once configuring began) and CLOSE_CONNECTION.
    fn stop_inventory(&self) -> Vec<u8> {
        let id = self.next_id;
        let mut out = Vec::new();
        if self.phase != Phase::Greeting {
            out.extend(build::stop_rospec(id, self.settings.rospec_id));
        }
        out.extend(build::close_connection(id.wrapping_add(1).max(1)));
        out
    }

    fn push(&mut self, bytes: &[u8]) {
        self.reader.push(bytes);
    }

    fn next_event(&mut self) -> Option<ReaderEvent> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            match self.reader.next_message()? {
                Ok(raw) => {
                    let len = raw.body.len() + super::header::HEADER_LEN;
                    match message::decode(&raw) {
                        Ok(m) => self.handle(m, len),
                        Err(e) => {
                            self.bad_payload += 1;
                            self.events.push_back(ReaderEvent::Malformed(format!(
                                "{}: {e}",
                                msg::name(raw.header.kind)
                            )));
                        }
                    }
                }
                Err(e) => return Some(ReaderEvent::Reconnect(e.to_string())),
            }
        }
    }

    /// Never: TCP loses no bytes, and a slow network may pause mid-message.
    fn drop_stale(&mut self) -> bool {
        false
    }

    fn reset(&mut self) {
        self.reader.reset();
        self.phase = Phase::Greeting;
        self.outgoing.clear();
        self.events.clear();
    }

    fn stats(&self) -> ProtocolStats {
        ProtocolStats {
            frames: self.reader.messages(),
            skipped_bytes: self.skipped_bytes,
            bad_checksum: 0,
            bad_payload: self.bad_payload,
        }
    }

    fn take_outgoing(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outgoing)
    }

    fn restarts_when_idle(&self) -> bool {
        false
    }

    fn silence_limit(&self) -> Option<Duration> {
        Some(self.settings.silence_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfid::llrp::header::Header;
    use crate::rfid::llrp::report::TagReportData;
    use crate::rfid::llrp::stream::MessageReader;
    use crate::rfid::llrp::types::status;

    /// The message types in `bytes`, in order.
    fn kinds(bytes: &[u8]) -> Vec<u16> {
        let mut r = MessageReader::new();
        r.push(bytes);
        std::iter::from_fn(|| r.next_message())
            .map(|m| m.unwrap().header.kind)
            .collect()
    }

    fn drain(p: &mut Llrp) -> Vec<ReaderEvent> {
        std::iter::from_fn(|| p.next_event()).collect()
    }

    fn greet(p: &mut Llrp, attempt: ConnectionAttempt) -> Vec<ReaderEvent> {
        p.push(&build::connection_attempt(0, 1, attempt));
        drain(p)
    }

    /// Answers the request in flight with `code`.
    fn answer(p: &mut Llrp, code: u16) -> Vec<ReaderEvent> {
        let Phase::Configuring(kind) = p.phase() else {
            panic!("not configuring")
        };
        p.push(&build::response(kind, 0, code, "nope"));
        drain(p)
    }

    #[test]
    fn configures_step_by_step_then_runs() {
        let mut p = Llrp::default();
        assert!(p.start_inventory().is_empty());
        assert_eq!(kinds(&p.stop_inventory()), [msg::CLOSE_CONNECTION]);
        greet(&mut p, ConnectionAttempt::Success);
        assert_eq!(kinds(&p.take_outgoing()), [msg::SET_READER_CONFIG]);
        let mut sent = Vec::new();
        for _ in 0..5 {
            let events = answer(&mut p, status::SUCCESS);
            assert!(matches!(events[..], [ReaderEvent::Response { .. }]));
            sent.extend(kinds(&p.take_outgoing()));
        }
        assert_eq!(
            sent,
            [
                msg::DELETE_ROSPEC,
                msg::ADD_ROSPEC,
                msg::ENABLE_ROSPEC,
                msg::START_ROSPEC
            ]
        );
        assert_eq!(p.phase(), Phase::Running);
        assert_eq!(
            kinds(&p.stop_inventory()),
            [msg::STOP_ROSPEC, msg::CLOSE_CONNECTION]
        );
        assert!(!p.restarts_when_idle());
        assert_eq!(p.silence_limit(), Some(Duration::from_secs(15)));
    }

    #[test]
    fn refusals_and_failed_steps_ask_for_a_reconnect() {
        let mut p = Llrp::default();
        let events = greet(&mut p, ConnectionAttempt::ClientInitiatedExists);
        assert!(matches!(&events[0], ReaderEvent::Reconnect(r) if r.contains("status 2")));
        assert!(p.take_outgoing().is_empty());

        p.reset();
        greet(&mut p, ConnectionAttempt::Success);
        answer(&mut p, status::SUCCESS); // SET_READER_CONFIG
        let events = answer(&mut p, 101); // DELETE refused: carries on
        assert!(matches!(events[..], [ReaderEvent::Response { .. }]));
        let events = answer(&mut p, 101); // ADD refused
        assert_eq!(
            events[0],
            ReaderEvent::Error {
                command: Some(msg::ADD_ROSPEC),
                code: 101,
                no_tag: false,
                detail: Some("nope".into())
            }
        );
        assert!(matches!(&events[1], ReaderEvent::Reconnect(r) if r.contains("ADD_ROSPEC")));

        // ConnectionCloseEvent; then a hostile length.
        p.reset();
        let close = build::connection_close(0, 1);
        p.push(&close);
        assert!(matches!(&drain(&mut p)[0], ReaderEvent::Reconnect(r) if r.contains("closing")));
        p.reset();
        p.push(&[0x04, 0x3D, 0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1]);
        assert!(matches!(&drain(&mut p)[..], [ReaderEvent::Reconnect(r)] if r.contains("limit")));
    }

    #[test]
    fn keepalives_are_acknowledged_with_their_id() {
        let mut p = Llrp::default();
        p.push(&build::keepalive(0xBEEF));
        drain(&mut p);
        let ack = p.take_outgoing();
        let h = Header::decode(&ack).unwrap();
        assert_eq!((h.kind, h.id, h.length), (msg::KEEPALIVE_ACK, 0xBEEF, 10));
        assert!(p.take_outgoing().is_empty());
    }

    #[test]
    fn reports_become_tag_reads() {
        let mut p = Llrp::default();
        let tags = [
            TagReportData {
                epc: vec![
                    0x30, 0x74, 0x25, 0x7B, 0xF7, 0x19, 0x4E, 0x40, 0, 0, 0x1A, 0x85,
                ],
                epc_bits: 96,
                antenna: Some(3),
                peak_rssi: Some(-61),
                first_seen_utc_us: Some(1),
                pc: None,
            },
            TagReportData {
                epc: vec![0xE2, 0x80],
                epc_bits: 16,
                antenna: None,
                peak_rssi: None,
                first_seen_utc_us: None,
                pc: Some(0x0800),
            },
            // A 0-bit EPC: counted, not a tag.
            TagReportData {
                epc: vec![],
                epc_bits: 0,
                antenna: None,
                peak_rssi: None,
                first_seen_utc_us: None,
                pc: None,
            },
        ];
        p.push(&build::ro_access_report(9, &tags));
        p.push(&build::message(msg::CUSTOM_MESSAGE, 10, |o| {
            o.extend([1, 2, 3])
        }));
        let events = drain(&mut p);
        assert_eq!(events.len(), 4, "{events:?}");
        let ReaderEvent::Tag(a) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(a.epc.to_hex(), "3074257BF7194E4000001A85");
        assert_eq!((a.antenna, a.rssi, a.pc), (Some(3), -61, 0x3000));
        let ReaderEvent::Tag(b) = &events[1] else {
            panic!("{events:?}")
        };
        assert_eq!((b.antenna, b.rssi, b.pc), (None, i8::MIN, 0x0800));
        assert!(matches!(&events[2], ReaderEvent::Malformed(_)));
        assert!(matches!(&events[3], ReaderEvent::Malformed(m) if m.contains("CUSTOM_MESSAGE")));
        let s = p.stats();
        assert_eq!((s.frames, s.bad_payload, s.skipped_bytes), (2, 1, 13));
    }
}
