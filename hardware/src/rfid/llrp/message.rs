//! Decodes the messages a reader sends (LLRP 1.0.1 §16.1) into the facts
//! Tally acts on: READER_EVENT_NOTIFICATION's connection events, each
//! *_RESPONSE's LLRPStatus, RO_ACCESS_REPORT's tags, KEEPALIVE and
//! ERROR_MESSAGE. Any other message type is [`Message::Other`], skipped by
//! its length; unknown parameters inside known messages are skipped too.

use super::param::{be_u16, ParamError, Params};
use super::report::{self, ReportError, TagReportData};
use super::stream::RawMessage;
use super::types::{msg, param, status, ConnectionAttempt};

/// An LLRPStatus parameter (§14.2.2, §16.2.8.1): a status code and a
/// UTF-8 error description (lossily decoded; empty on success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlrpStatus {
    /// The status code (§14.2.1); 0 is success.
    pub code: u16,
    /// The reader's description of the error.
    pub description: String,
}

impl LlrpStatus {
    /// Whether the code is M_Success.
    pub fn is_success(&self) -> bool {
        self.code == status::SUCCESS
    }

    fn decode(value: &[u8]) -> Result<Self, MessageError> {
        let code = be_u16(value, 0).ok_or(MessageError::Field("LLRPStatus code"))?;
        let len = be_u16(value, 2).ok_or(MessageError::Field("LLRPStatus description length"))?;
        let text = value
            .get(4..4 + usize::from(len))
            .ok_or(MessageError::Field("LLRPStatus description"))?;
        Ok(LlrpStatus {
            code,
            description: String::from_utf8_lossy(text).into_owned(),
        })
    }
}

/// A READER_EVENT_NOTIFICATION's events that matter to a client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notification {
    /// ConnectionAttemptEvent: whether the reader accepts this connection.
    pub connection_attempt: Option<ConnectionAttempt>,
    /// ConnectionCloseEvent: the reader is about to close the connection.
    pub connection_close: bool,
}

/// An RO_ACCESS_REPORT's tags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Tags decoded, in order.
    pub tags: Vec<TagReportData>,
    /// TagReportData parameters that are not tags.
    pub rejected: Vec<ReportError>,
    /// Parameters skipped (unknown or unused), in the report and its tags.
    pub skipped: u32,
    /// Whether a malformed parameter ended the walk early.
    pub cut_short: bool,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// READER_EVENT_NOTIFICATION.
    Notification(Notification),
    /// A response to a client request, with its status.
    Response {
        /// The response's message type.
        kind: u16,
        /// The request's message ID.
        id: u32,
        /// The outcome.
        status: LlrpStatus,
    },
    /// RO_ACCESS_REPORT.
    Report(Report),
    /// KEEPALIVE: the reader expects a KEEPALIVE_ACK.
    Keepalive {
        /// Its message ID (echoed in the acknowledgement).
        id: u32,
    },
    /// ERROR_MESSAGE: the reader could not process a message.
    Error(LlrpStatus),
    /// Any other message, skipped.
    Other {
        /// Its type.
        kind: u16,
    },
}

/// Why a message of a known type does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A required parameter is missing.
    #[error("{0} missing")]
    Missing(&'static str),
    /// A field is cut short.
    #[error("{0} truncated")]
    Field(&'static str),
    /// The parameters do not parse.
    #[error(transparent)]
    Param(#[from] ParamError),
}

/// Decodes a whole message.
pub fn decode(m: &RawMessage) -> Result<Message, MessageError> {
    let kind = m.header.kind;
    if msg::RESPONSES.iter().any(|&(r, _)| r == kind) {
        return Ok(Message::Response {
            kind,
            id: m.header.id,
            status: first_status(&m.body)?,
        });
    }
    Ok(match kind {
        msg::READER_EVENT_NOTIFICATION => Message::Notification(notification(&m.body)?),
        msg::RO_ACCESS_REPORT => Message::Report(ro_access_report(&m.body)),
        msg::KEEPALIVE => Message::Keepalive { id: m.header.id },
        msg::ERROR_MESSAGE => Message::Error(first_status(&m.body)?),
        other => Message::Other { kind: other },
    })
}

/// The LLRPStatus of a response or ERROR_MESSAGE (the first parameter by
/// the specification; found wherever it is among the top-level ones).
fn first_status(body: &[u8]) -> Result<LlrpStatus, MessageError> {
    for p in Params::new(body) {
        let p = p?;
        if p.is_tlv(param::LLRP_STATUS) {
            return LlrpStatus::decode(p.value);
        }
    }
    Err(MessageError::Missing("LLRPStatus"))
}

fn notification(body: &[u8]) -> Result<Notification, MessageError> {
    let mut data = None;
    for p in Params::new(body) {
        let p = p?;
        if p.is_tlv(param::READER_EVENT_NOTIFICATION_DATA) {
            data = Some(p.value);
            break;
        }
    }
    let data = data.ok_or(MessageError::Missing("ReaderEventNotificationData"))?;
    let mut n = Notification::default();
    for p in Params::new(data) {
        // Events after a malformed one cannot be found; keep those before.
        let Ok(p) = p else { break };
        if p.is_tlv(param::CONNECTION_ATTEMPT_EVENT) {
            let code = be_u16(p.value, 0).ok_or(MessageError::Field("ConnectionAttemptEvent"))?;
            n.connection_attempt = Some(ConnectionAttempt::from_code(code));
        } else if p.is_tlv(param::CONNECTION_CLOSE_EVENT) {
            n.connection_close = true;
        }
    }
    Ok(n)
}

fn ro_access_report(body: &[u8]) -> Report {
    let mut r = Report::default();
    for p in Params::new(body) {
        let Ok(p) = p else {
            r.cut_short = true;
            break;
        };
        if !p.is_tlv(param::TAG_REPORT_DATA) {
            r.skipped += 1;
            continue;
        }
        match report::decode(p.value) {
            Ok((tag, skipped)) => {
                r.tags.push(tag);
                r.skipped += skipped.params;
                r.cut_short |= skipped.cut_short;
            }
            Err(e) => r.rejected.push(e),
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfid::llrp::header::Header;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    fn raw(kind: u16, id: u32, body: &str) -> RawMessage {
        let body = hex(body);
        RawMessage {
            header: Header {
                version: 1,
                kind,
                length: 10 + body.len() as u32,
                id,
            },
            body,
        }
    }

    // §16.1.33 + §16.2.7.6: ReaderEventNotificationData (246 = 0x00F6) of
    // length 4 + 12 (UTCTimestamp 0x0080, length 12) + 6
    // (ConnectionAttemptEvent 0x0100, length 6, status u16) = 22 = 0x16.
    #[test]
    fn connection_attempt_events() {
        for (status, want) in [
            ("00 00", ConnectionAttempt::Success),
            ("00 02", ConnectionAttempt::ClientInitiatedExists),
            ("00 04", ConnectionAttempt::AnotherAttempted),
        ] {
            let m = raw(
                msg::READER_EVENT_NOTIFICATION,
                0,
                &format!("00 F6 00 16 00 80 00 0C 00 05 F5 E1 00 00 00 00 01 00 00 06 {status}"),
            );
            assert_eq!(
                decode(&m).unwrap(),
                Message::Notification(Notification {
                    connection_attempt: Some(want),
                    connection_close: false
                })
            );
        }
        // ConnectionCloseEvent (257 = 0x0101, no fields).
        let m = raw(
            msg::READER_EVENT_NOTIFICATION,
            0,
            "00 F6 00 14 00 80 00 0C 00 00 00 00 00 00 00 00 01 01 00 04",
        );
        assert!(matches!(decode(&m), Ok(Message::Notification(n)) if n.connection_close));
        assert_eq!(
            decode(&raw(msg::READER_EVENT_NOTIFICATION, 0, "")),
            Err(MessageError::Missing("ReaderEventNotificationData"))
        );
    }

    // §16.2.8.1: LLRPStatus (287 = 0x011F): code, description byte count,
    // UTF-8 text. ADD_ROSPEC_RESPONSE (30) with code 0; ERROR_MESSAGE
    // (100) with M_UnsupportedVersion (110 = 0x6E) and "v2" (length
    // 4 + 2 + 2 + 2 = 10).
    #[test]
    fn statuses() {
        let m = raw(msg::ADD_ROSPEC_RESPONSE, 7, "01 1F 00 08 00 00 00 00");
        assert_eq!(
            decode(&m).unwrap(),
            Message::Response {
                kind: msg::ADD_ROSPEC_RESPONSE,
                id: 7,
                status: LlrpStatus {
                    code: 0,
                    description: String::new()
                }
            }
        );
        let m = raw(msg::ERROR_MESSAGE, 9, "01 1F 00 0A 00 6E 00 02 76 32");
        let Ok(Message::Error(s)) = decode(&m) else {
            panic!("not an error message")
        };
        assert_eq!((s.code, s.description.as_str()), (110, "v2"));
        assert!(!s.is_success());
        // Description longer than the parameter; status missing.
        assert!(decode(&raw(msg::ERROR_MESSAGE, 0, "01 1F 00 08 00 6E 00 09")).is_err());
        assert_eq!(
            decode(&raw(msg::START_ROSPEC_RESPONSE, 0, "")),
            Err(MessageError::Missing("LLRPStatus"))
        );
    }

    #[test]
    fn reports_keepalives_and_other_messages() {
        // Two tags, a vendor Custom at report level, one TagReportData
        // without an EPC.
        let m = raw(
            msg::RO_ACCESS_REPORT,
            1,
            "00 F0 00 11 8D 30 74 25 7B F7 19 4E 40 00 00 1A 85 \
             03 FF 00 0C 00 00 00 19 00 00 00 02 \
             00 F0 00 07 81 00 01 \
             00 F0 00 16 8D 30 74 25 7B F7 19 4E 40 00 00 1A 86 81 00 02 86 D0",
        );
        let Ok(Message::Report(r)) = decode(&m) else {
            panic!("not a report")
        };
        assert_eq!(r.tags.len(), 2);
        assert_eq!(r.rejected, [ReportError::NoEpc]);
        assert_eq!(r.skipped, 1);
        assert_eq!(
            (r.tags[1].antenna, r.tags[1].peak_rssi),
            (Some(2), Some(-48))
        );
        assert_eq!(
            decode(&raw(msg::KEEPALIVE, 42, "")),
            Ok(Message::Keepalive { id: 42 })
        );
        assert_eq!(
            decode(&raw(msg::CUSTOM_MESSAGE, 3, "00 00 00 19 01")),
            Ok(Message::Other {
                kind: msg::CUSTOM_MESSAGE
            })
        );
    }
}
