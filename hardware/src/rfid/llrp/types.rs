//! LLRP's numbers: message types, parameter types, the fixed value length
//! of every TV parameter, and the enumerations Tally sends or reads.
//!
//! Values are from the EPCglobal LLRP 1.0.1 specification (2007-08-13):
//! messages §16.1, parameters §16.2 and §16.3, status codes §14.2.1. The
//! section of each constant is given beside it. LLRP 1.1 keeps all of them
//! and adds TV types 19 and 20 (C1G2 XPC words), which are in the length
//! table too so a 1.1 reader's reports can be walked.

/// LLRP message types (10 bits).
pub mod msg {
    /// GET_READER_CAPABILITIES (§16.1.1).
    pub const GET_READER_CAPABILITIES: u16 = 1;
    /// SET_READER_CONFIG (§16.1.38).
    pub const SET_READER_CONFIG: u16 = 3;
    /// CLOSE_CONNECTION_RESPONSE (§16.1.41).
    pub const CLOSE_CONNECTION_RESPONSE: u16 = 4;
    /// GET_READER_CAPABILITIES_RESPONSE (§16.1.2).
    pub const GET_READER_CAPABILITIES_RESPONSE: u16 = 11;
    /// SET_READER_CONFIG_RESPONSE (§16.1.39).
    pub const SET_READER_CONFIG_RESPONSE: u16 = 13;
    /// CLOSE_CONNECTION (§16.1.40).
    pub const CLOSE_CONNECTION: u16 = 14;
    /// ADD_ROSPEC (§16.1.3).
    pub const ADD_ROSPEC: u16 = 20;
    /// DELETE_ROSPEC (§16.1.5).
    pub const DELETE_ROSPEC: u16 = 21;
    /// START_ROSPEC (§16.1.7).
    pub const START_ROSPEC: u16 = 22;
    /// STOP_ROSPEC (§16.1.9).
    pub const STOP_ROSPEC: u16 = 23;
    /// ENABLE_ROSPEC (§16.1.11).
    pub const ENABLE_ROSPEC: u16 = 24;
    /// ADD_ROSPEC_RESPONSE (§16.1.4).
    pub const ADD_ROSPEC_RESPONSE: u16 = 30;
    /// DELETE_ROSPEC_RESPONSE (§16.1.6).
    pub const DELETE_ROSPEC_RESPONSE: u16 = 31;
    /// START_ROSPEC_RESPONSE (§16.1.8).
    pub const START_ROSPEC_RESPONSE: u16 = 32;
    /// STOP_ROSPEC_RESPONSE (§16.1.10).
    pub const STOP_ROSPEC_RESPONSE: u16 = 33;
    /// ENABLE_ROSPEC_RESPONSE (§16.1.12).
    pub const ENABLE_ROSPEC_RESPONSE: u16 = 34;
    /// RO_ACCESS_REPORT (§16.1.30).
    pub const RO_ACCESS_REPORT: u16 = 61;
    /// KEEPALIVE (§16.1.31).
    pub const KEEPALIVE: u16 = 62;
    /// READER_EVENT_NOTIFICATION (§16.1.33).
    pub const READER_EVENT_NOTIFICATION: u16 = 63;
    /// KEEPALIVE_ACK (§16.1.32).
    pub const KEEPALIVE_ACK: u16 = 72;
    /// ERROR_MESSAGE (§16.1.35).
    pub const ERROR_MESSAGE: u16 = 100;
    /// CUSTOM_MESSAGE (§16.1.36): vendor extensions, skipped.
    pub const CUSTOM_MESSAGE: u16 = 1023;

    /// Every response type that carries an LLRPStatus first, with the
    /// request it answers.
    pub const RESPONSES: [(u16, u16); 8] = [
        (GET_READER_CAPABILITIES_RESPONSE, GET_READER_CAPABILITIES),
        (SET_READER_CONFIG_RESPONSE, SET_READER_CONFIG),
        (CLOSE_CONNECTION_RESPONSE, CLOSE_CONNECTION),
        (ADD_ROSPEC_RESPONSE, ADD_ROSPEC),
        (DELETE_ROSPEC_RESPONSE, DELETE_ROSPEC),
        (START_ROSPEC_RESPONSE, START_ROSPEC),
        (STOP_ROSPEC_RESPONSE, STOP_ROSPEC),
        (ENABLE_ROSPEC_RESPONSE, ENABLE_ROSPEC),
    ];

    /// A short name for logs.
    pub fn name(kind: u16) -> &'static str {
        match kind {
            GET_READER_CAPABILITIES => "GET_READER_CAPABILITIES",
            SET_READER_CONFIG => "SET_READER_CONFIG",
            CLOSE_CONNECTION_RESPONSE => "CLOSE_CONNECTION_RESPONSE",
            GET_READER_CAPABILITIES_RESPONSE => "GET_READER_CAPABILITIES_RESPONSE",
            SET_READER_CONFIG_RESPONSE => "SET_READER_CONFIG_RESPONSE",
            CLOSE_CONNECTION => "CLOSE_CONNECTION",
            ADD_ROSPEC => "ADD_ROSPEC",
            DELETE_ROSPEC => "DELETE_ROSPEC",
            START_ROSPEC => "START_ROSPEC",
            STOP_ROSPEC => "STOP_ROSPEC",
            ENABLE_ROSPEC => "ENABLE_ROSPEC",
            ADD_ROSPEC_RESPONSE => "ADD_ROSPEC_RESPONSE",
            DELETE_ROSPEC_RESPONSE => "DELETE_ROSPEC_RESPONSE",
            START_ROSPEC_RESPONSE => "START_ROSPEC_RESPONSE",
            STOP_ROSPEC_RESPONSE => "STOP_ROSPEC_RESPONSE",
            ENABLE_ROSPEC_RESPONSE => "ENABLE_ROSPEC_RESPONSE",
            RO_ACCESS_REPORT => "RO_ACCESS_REPORT",
            KEEPALIVE => "KEEPALIVE",
            READER_EVENT_NOTIFICATION => "READER_EVENT_NOTIFICATION",
            KEEPALIVE_ACK => "KEEPALIVE_ACK",
            ERROR_MESSAGE => "ERROR_MESSAGE",
            CUSTOM_MESSAGE => "CUSTOM_MESSAGE",
            _ => "unknown",
        }
    }
}

/// LLRP parameter types: TV types are 7 bits (1–127), TLV types 10 bits
/// (128–1023).
pub mod param {
    /// AntennaID, TV, u16 (§16.2.7.3.6).
    pub const ANTENNA_ID: u8 = 1;
    /// FirstSeenTimestampUTC, TV, u64 microseconds since 1970 (§16.2.7.3.9).
    pub const FIRST_SEEN_UTC: u8 = 2;
    /// PeakRSSI, TV, s8 dBm (§16.2.7.3.7).
    pub const PEAK_RSSI: u8 = 6;
    /// C1G2 PC bits, TV, u16 (§16.3.1.5.2).
    pub const C1G2_PC: u8 = 12;
    /// EPC-96, TV, 96 bits (§16.2.7.3.2).
    pub const EPC_96: u8 = 13;

    /// UTCTimestamp, TLV (§16.2.2.1).
    pub const UTC_TIMESTAMP: u16 = 128;
    /// ROSpec (§16.2.4.1).
    pub const RO_SPEC: u16 = 177;
    /// ROBoundarySpec (§16.2.4.1.1).
    pub const RO_BOUNDARY_SPEC: u16 = 178;
    /// ROSpecStartTrigger (§16.2.4.1.1.1).
    pub const RO_SPEC_START_TRIGGER: u16 = 179;
    /// ROSpecStopTrigger (§16.2.4.1.1.2).
    pub const RO_SPEC_STOP_TRIGGER: u16 = 182;
    /// AISpec (§16.2.4.2).
    pub const AI_SPEC: u16 = 183;
    /// AISpecStopTrigger (§16.2.4.2.1).
    pub const AI_SPEC_STOP_TRIGGER: u16 = 184;
    /// InventoryParameterSpec (§16.2.4.2.2).
    pub const INVENTORY_PARAMETER_SPEC: u16 = 186;
    /// KeepaliveSpec (§16.2.6.4).
    pub const KEEPALIVE_SPEC: u16 = 220;
    /// ROReportSpec (§16.2.7.1).
    pub const RO_REPORT_SPEC: u16 = 237;
    /// TagReportContentSelector (§16.2.7.1.1).
    pub const TAG_REPORT_CONTENT_SELECTOR: u16 = 238;
    /// TagReportData (§16.2.7.3).
    pub const TAG_REPORT_DATA: u16 = 240;
    /// EPCData (§16.2.7.3.1): EPC bit count (u16), then the bits padded to
    /// whole bytes.
    pub const EPC_DATA: u16 = 241;
    /// ReaderEventNotificationData (§16.2.7.6).
    pub const READER_EVENT_NOTIFICATION_DATA: u16 = 246;
    /// ConnectionAttemptEvent (§16.2.7.6.10).
    pub const CONNECTION_ATTEMPT_EVENT: u16 = 256;
    /// ConnectionCloseEvent (§16.2.7.6.11).
    pub const CONNECTION_CLOSE_EVENT: u16 = 257;
    /// LLRPStatus (§16.2.8.1).
    pub const LLRP_STATUS: u16 = 287;
    /// Custom (§16.2.9): vendor extensions, skipped.
    pub const CUSTOM: u16 = 1023;

    /// The value length in bytes of TV parameter `kind` (the type byte
    /// excluded), or `None` for a TV type the specification does not
    /// define: such a parameter cannot be skipped, since TV parameters
    /// carry no length (§16.2.1, the TV encoding).
    pub fn tv_len(kind: u8) -> Option<usize> {
        Some(match kind {
            // AntennaID, ChannelIndex, TagSeenCount, InventoryParameterSpecID,
            // C1G2 CRC, C1G2 PC, SpecIndex, ClientRequestOpSpecResult,
            // OpSpecID, C1G2 XPC W1 and W2 (1.1).
            1 | 7 | 8 | 10 | 11 | 12 | 14 | 15 | 17 | 19 | 20 => 2,
            // First/LastSeenTimestamp UTC/Uptime.
            2..=5 => 8,
            // PeakRSSI.
            6 => 1,
            // ROSpecID, AccessSpecID, C1G2SingulationDetails.
            9 | 16 | 18 => 4,
            // EPC-96.
            13 => 12,
            _ => return None,
        })
    }
}

/// LLRPStatus codes (§14.2.1) Tally names; every other code is kept as a
/// number.
pub mod status {
    /// M_Success.
    pub const SUCCESS: u16 = 0;
    /// M_UnsupportedVersion.
    pub const UNSUPPORTED_VERSION: u16 = 110;
    /// R_DeviceError.
    pub const DEVICE_ERROR: u16 = 401;
}

/// ConnectionAttemptEvent status (§13.2.6.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionAttempt {
    /// 0: the connection is accepted.
    Success,
    /// 1: refused, a reader-initiated connection exists.
    ReaderInitiatedExists,
    /// 2: refused, a client-initiated connection exists (another client is
    /// connected).
    ClientInitiatedExists,
    /// 3: refused for another reason.
    Failed,
    /// 4: sent on an existing connection: another client tried to connect.
    AnotherAttempted,
    /// A value the specification does not define.
    Other(u16),
}

impl ConnectionAttempt {
    /// From the Status field.
    pub fn from_code(code: u16) -> Self {
        match code {
            0 => ConnectionAttempt::Success,
            1 => ConnectionAttempt::ReaderInitiatedExists,
            2 => ConnectionAttempt::ClientInitiatedExists,
            3 => ConnectionAttempt::Failed,
            4 => ConnectionAttempt::AnotherAttempted,
            n => ConnectionAttempt::Other(n),
        }
    }

    /// The Status field.
    pub fn code(self) -> u16 {
        match self {
            ConnectionAttempt::Success => 0,
            ConnectionAttempt::ReaderInitiatedExists => 1,
            ConnectionAttempt::ClientInitiatedExists => 2,
            ConnectionAttempt::Failed => 3,
            ConnectionAttempt::AnotherAttempted => 4,
            ConnectionAttempt::Other(n) => n,
        }
    }
}

/// Air protocol EPCGlobalClass1Gen2 (§7.1.4, InventoryParameterSpec's
/// ProtocolID).
pub const PROTOCOL_EPC_C1G2: u8 = 1;
/// ROReportTrigger 1: upon N tags or end of AISpec (§13.2.1).
pub const REPORT_UPON_N_TAGS_OR_END_OF_AI_SPEC: u8 = 1;
/// KeepaliveTriggerType 1: periodic (§12.2.4).
pub const KEEPALIVE_PERIODIC: u8 = 1;
/// ROSpecStartTriggerType 0 / ROSpecStopTriggerType 0 / AISpecStopTriggerType
/// 0: null (§10.2.1.1.1, §10.2.1.1.2, §10.2.2.1). A null start trigger means
/// the ROSpec runs when START_ROSPEC says so; null stop triggers mean it
/// runs until STOP_ROSPEC.
pub const TRIGGER_NULL: u8 = 0;
/// ROSpecState 0: disabled, the state an ROSpec must be added in (§10.2.1).
pub const RO_SPEC_DISABLED: u8 = 0;
/// The TCP port IANA registered for LLRP (`llrp`, 5084/tcp).
pub const DEFAULT_PORT: u16 = 5084;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tv_lengths_match_the_specification_table() {
        // §16.2.7.3: EPC-96 is 96 bits, PeakRSSI one signed byte, AntennaID
        // u16, FirstSeenTimestampUTC u64.
        assert_eq!(param::tv_len(param::EPC_96), Some(12));
        assert_eq!(param::tv_len(param::PEAK_RSSI), Some(1));
        assert_eq!(param::tv_len(param::ANTENNA_ID), Some(2));
        assert_eq!(param::tv_len(param::FIRST_SEEN_UTC), Some(8));
        assert_eq!(param::tv_len(0), None);
        assert_eq!(param::tv_len(21), None);
        assert_eq!(param::tv_len(127), None);
        for kind in 1..=20u8 {
            assert!(param::tv_len(kind).is_some(), "TV type {kind}");
        }
    }

    #[test]
    fn connection_attempt_codes_round_trip() {
        for code in 0..=6u16 {
            assert_eq!(ConnectionAttempt::from_code(code).code(), code);
        }
        assert_eq!(ConnectionAttempt::from_code(0), ConnectionAttempt::Success);
    }
}
