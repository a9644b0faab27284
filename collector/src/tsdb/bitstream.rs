//! Bit-level I/O for the chunk codecs: an append-only bit writer and a bounds-checked
//! reader. Bits are written most significant first, so a stream reads left to right in a
//! hex dump. Reading past the end is a [`ChunkError`], never a panic.

/// Why a chunk's bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The bytes end before the samples the header announces.
    #[error("chunk truncated")]
    Truncated,
    /// The checksum over the chunk does not match: the bytes were damaged.
    #[error("chunk checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// The CRC-32 stored in the chunk.
        stored: u32,
        /// The CRC-32 of the bytes read.
        computed: u32,
    },
    /// The bytes decode to something no writer produces.
    #[error("chunk corrupt: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: &'static str,
    },
}

/// An append-only bit buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitWriter {
    buf: Vec<u8>,
    /// Unused low bits of the last byte (0 when the buffer is empty or the byte is full).
    free: u8,
}

impl BitWriter {
    /// An empty buffer reserving `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            buf: Vec::with_capacity(bytes),
            free: 0,
        }
    }

    /// Appends one bit.
    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.buf.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit && let Some(last) = self.buf.last_mut() {
            *last |= 1 << self.free;
        }
    }

    /// Appends the low `n` bits of `value` (`n <= 64`), most significant first.
    #[inline]
    pub fn write_bits(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        let mut left = n;
        while left > 0 {
            if self.free == 0 {
                self.buf.push(0);
                self.free = 8;
            }
            let take = left.min(u32::from(self.free));
            left -= take;
            let chunk = ((value >> left) & ((1u64 << take) - 1)) as u8;
            self.free -= take as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= chunk << self.free;
            }
        }
    }

    /// The bytes written; the last one is zero-padded.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Bits written.
    pub fn bit_len(&self) -> usize {
        self.buf.len() * 8 - usize::from(self.free)
    }

    /// Heap bytes held (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Empties the buffer, keeping its capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.free = 0;
    }
}

/// Reads bits back from a byte slice.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    buf: &'a [u8],
    /// Next bit to read, counted from the start of `buf`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        BitReader { buf, pos: 0 }
    }

    /// Bits read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Reads one bit.
    ///
    /// # Errors
    /// [`ChunkError::Truncated`] past the end.
    #[inline]
    pub fn read_bit(&mut self) -> Result<bool, ChunkError> {
        let byte = *self.buf.get(self.pos / 8).ok_or(ChunkError::Truncated)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n <= 64` bits as the low bits of a `u64`.
    ///
    /// # Errors
    /// [`ChunkError::Truncated`] when fewer than `n` bits are left.
    #[inline]
    pub fn read_bits(&mut self, n: u32) -> Result<u64, ChunkError> {
        debug_assert!(n <= 64);
        if self.pos + n as usize > self.buf.len() * 8 {
            return Err(ChunkError::Truncated);
        }
        let mut value = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = self.buf[self.pos / 8];
            let offset = (self.pos % 8) as u32;
            let take = left.min(8 - offset);
            let chunk = (u64::from(byte) >> (8 - offset - take)) & ((1u64 << take) - 1);
            value = (value << take) | chunk;
            left -= take;
            self.pos += take as usize;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_across_byte_boundaries() {
        let mut w = BitWriter::default();
        w.write_bit(true);
        w.write_bits(0b101, 3);
        w.write_bits(u64::MAX, 64);
        w.write_bits(0x1234, 13);
        w.write_bit(false);
        let mut r = BitReader::new(w.bytes());
        assert!(r.read_bit().unwrap());
        assert_eq!(r.read_bits(3).unwrap(), 0b101);
        assert_eq!(r.read_bits(64).unwrap(), u64::MAX);
        assert_eq!(r.read_bits(13).unwrap(), 0x1234 & 0x1fff);
        assert!(!r.read_bit().unwrap());
        // 82 bits written: 6 padding bits remain, then the end.
        assert_eq!(r.read_bits(6).unwrap(), 0);
        assert_eq!(r.read_bit(), Err(ChunkError::Truncated));
    }
}
