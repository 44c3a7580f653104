//! The 10-byte LLRP message header (LLRP 1.0.1 §16.1, "binary encoding of
//! messages"): 3 reserved bits, a 3-bit version (1 for LLRP 1.0.1), a
//! 10-bit message type, a 32-bit message length counting the header
//! itself, and a 32-bit message ID. All fields are big-endian.
//!
//! ```text
//! byte 0          byte 1     bytes 2–5        bytes 6–9
//! rrr vvv tt      tttttttt   length (u32)     message ID (u32)
//! ```

/// Bytes in a message header.
pub const HEADER_LEN: usize = 10;
/// The version Tally speaks: LLRP 1.0.1. An LLRP 1.1 reader also speaks it
/// until a client negotiates 1.1 (which Tally never does).
pub const VERSION: u8 = 1;

/// A decoded message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Protocol version (3 bits).
    pub version: u8,
    /// Message type (10 bits).
    pub kind: u16,
    /// Length of the whole message, header included.
    pub length: u32,
    /// Message ID: a response carries its request's ID.
    pub id: u32,
}

impl Header {
    /// Decodes the first [`HEADER_LEN`] bytes of `bytes`, or `None` when
    /// fewer are present. The reserved bits are ignored.
    pub fn decode(bytes: &[u8]) -> Option<Header> {
        let b: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            version: (b[0] >> 2) & 0x07,
            kind: u16::from_be_bytes([b[0] & 0x03, b[1]]),
            length: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
            id: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
        })
    }

    /// Appends the header's bytes to `out` (version and type masked to
    /// their widths).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let [hi, lo] = (self.kind & 0x03FF).to_be_bytes();
        out.push(((self.version & 0x07) << 2) | hi);
        out.push(lo);
        out.extend_from_slice(&self.length.to_be_bytes());
        out.extend_from_slice(&self.id.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfid::llrp::types::msg;

    // §16.1: version 1 in bits 2–4 of byte 0, the type's top two bits in
    // bits 0–1. KEEPALIVE_ACK (72 = 0x048) with ID 0x12345678 and no body
    // is 04 48, length 10, then the ID; CUSTOM_MESSAGE (1023 = 0x3FF) puts
    // 0b11 in byte 0's low bits.
    #[test]
    fn header_bytes_from_the_specification_layout() {
        let h = Header {
            version: VERSION,
            kind: msg::KEEPALIVE_ACK,
            length: 10,
            id: 0x1234_5678,
        };
        let mut out = Vec::new();
        h.encode_into(&mut out);
        assert_eq!(out, [0x04, 0x48, 0, 0, 0, 0x0A, 0x12, 0x34, 0x56, 0x78]);
        assert_eq!(Header::decode(&out), Some(h));

        let custom = Header::decode(&[0x07, 0xFF, 0, 0, 0, 0x0A, 0, 0, 0, 1]).unwrap();
        assert_eq!((custom.version, custom.kind), (1, msg::CUSTOM_MESSAGE));
        // Reserved bits set and LLRP 1.1's version 2: still decoded.
        let v2 = Header::decode(&[0xE8, 0x3D, 0, 0, 0, 0x0A, 0, 0, 0, 0]).unwrap();
        assert_eq!((v2.version, v2.kind), (2, msg::RO_ACCESS_REPORT));
        assert_eq!(Header::decode(&out[..9]), None);
    }
}
