//! Big-endian bit fields of an EPC binary encoding (TDS §14.3 and §14.4:
//! bit b(n−1), the header's first bit, is the most significant bit of the
//! first byte).
//!
//! The reader never fails and never panics: bits past the end of the bytes
//! read as zero, so callers check the EPC's length once, before reading.

/// Reads fields of up to 64 bits, most significant bit first.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at bit `start` of `bytes`.
    pub(crate) fn new(bytes: &'a [u8], start: usize) -> Self {
        BitReader { bytes, pos: start }
    }

    fn bit(&self, pos: usize) -> u64 {
        let byte = self.bytes.get(pos / 8).copied().unwrap_or(0);
        u64::from((byte >> (7 - pos % 8)) & 1)
    }

    /// The next `bits` bits (at most 64) as an unsigned integer.
    pub(crate) fn read(&mut self, bits: u32) -> u64 {
        debug_assert!(bits <= 64);
        let mut v = 0u64;
        for _ in 0..bits.min(64) {
            v = (v << 1) | self.bit(self.pos);
            self.pos += 1;
        }
        v
    }

    /// Whether every bit from here to the end of the bytes is zero.
    pub(crate) fn rest_is_zero(&self) -> bool {
        let total = self.bytes.len() * 8;
        if self.pos >= total {
            return true;
        }
        // The partial first byte bit by bit, then whole bytes.
        let mut pos = self.pos;
        while pos % 8 != 0 {
            if self.bit(pos) != 0 {
                return false;
            }
            pos += 1;
        }
        self.bytes
            .get(pos / 8..)
            .is_none_or(|rest| rest.iter().all(|&b| b == 0))
    }
}

/// Appends fields, most significant bit first.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    len: usize,
}

impl BitWriter {
    /// Appends the low `bits` bits of `value` (at most 64).
    pub(crate) fn push(&mut self, value: u64, bits: u32) {
        for i in (0..bits.min(64)).rev() {
            let bit = ((value >> i) & 1) as u8;
            if self.len % 8 == 0 {
                self.bytes.push(0);
            }
            if let Some(last) = self.bytes.last_mut() {
                *last |= bit << (7 - self.len % 8);
            }
            self.len += 1;
        }
    }

    /// The bits written so far, zero-padded to `N` bytes.
    pub(crate) fn finish<const N: usize>(self) -> [u8; N] {
        debug_assert!(self.bytes.len() <= N);
        let mut out = [0u8; N];
        for (o, b) in out.iter_mut().zip(self.bytes) {
            *o = b;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_fields_across_byte_boundaries() {
        let mut w = BitWriter::default();
        w.push(0x30, 8);
        w.push(3, 3);
        w.push(5, 3);
        w.push(614_141, 24);
        w.push(812_345, 20);
        w.push(6789, 38);
        // TDS §E.3 SGTIN-96 example.
        let bytes: [u8; 12] = w.finish();
        assert_eq!(
            bytes,
            [0x30, 0x74, 0x25, 0x7B, 0xF7, 0x19, 0x4E, 0x40, 0x00, 0x00, 0x1A, 0x85]
        );
        let mut r = BitReader::new(&bytes, 0);
        assert_eq!(
            [r.read(8), r.read(3), r.read(3), r.read(24), r.read(20)],
            [0x30, 3, 5, 614_141, 812_345]
        );
        assert!(!r.rest_is_zero());
        assert_eq!(r.read(38), 6789);
        assert!(r.rest_is_zero());
        // Past the end reads zero.
        assert_eq!(r.read(64), 0);
    }

    #[test]
    fn rest_is_zero_checks_a_partial_byte() {
        let bytes = [0xFF, 0x01];
        assert!(!BitReader::new(&bytes, 9).rest_is_zero());
        assert!(BitReader::new(&[0xFF, 0x80], 9).rest_is_zero());
        assert!(BitReader::new(&bytes, 16).rest_is_zero());
    }
}
