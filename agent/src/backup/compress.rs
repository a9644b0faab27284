//! zstd for blobs, with a cheap test that stores incompressible data raw.
//!
//! Each blob is its own zstd frame (random access by blob; no zstd checksum, the blob id
//! already authenticates the plain bytes). Before compressing, an order-0 entropy estimate of
//! a few KiB of the blob decides whether zstd can win at all: random, already compressed or
//! encrypted data is stored as it is without spending a compression pass on it.

use std::io;

/// Bytes sampled for the entropy test (two slices: start and middle).
const SAMPLE: usize = 4096;

/// Above this many bits per byte (of 8), a blob is stored raw. Text is ~4.5, zstd output ~7.99.
const RAW_ENTROPY_BITS: f64 = 7.8;

/// A blob smaller than this is compressed without the test (the test would cost as much).
const TEST_MIN_LEN: usize = 2 * SAMPLE;

/// Compresses blobs at a fixed level, reusing one zstd context.
pub struct BlobCompressor {
    ctx: zstd::bulk::Compressor<'static>,
    out: Vec<u8>,
}

impl std::fmt::Debug for BlobCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobCompressor")
    }
}

/// What became of a blob.
#[derive(Debug, PartialEq, Eq)]
pub enum Packed<'a> {
    /// zstd won: the compressed frame.
    Compressed(&'a [u8]),
    /// Stored as given.
    Raw,
}

impl BlobCompressor {
    /// A compressor at zstd `level` (1..=22; 3 is restic's `auto` and borg's `zstd`).
    pub fn new(level: i32) -> io::Result<Self> {
        let mut ctx = zstd::bulk::Compressor::new(level)?;
        ctx.include_checksum(false)?;
        ctx.include_contentsize(true)?;
        Ok(BlobCompressor {
            ctx,
            out: Vec::new(),
        })
    }

    /// Compresses `raw`, or says to store it raw when zstd would not save at least 1/32 of it.
    pub fn pack<'s>(&'s mut self, raw: &[u8]) -> io::Result<Packed<'s>> {
        if raw.len() >= TEST_MIN_LEN && looks_incompressible(raw) {
            return Ok(Packed::Raw);
        }
        let bound = zstd::zstd_safe::compress_bound(raw.len());
        self.out.clear();
        self.out.reserve(bound);
        let n = self.ctx.compress_to_buffer(raw, &mut self.out)?;
        if n + raw.len() / 32 >= raw.len() {
            return Ok(Packed::Raw);
        }
        Ok(Packed::Compressed(&self.out[..n]))
    }
}

/// Decompresses a blob whose plain length is known from the index (a frame that claims to be
/// larger is an error, not an allocation).
#[derive(Default)]
pub struct BlobDecompressor {
    ctx: Option<zstd::bulk::Decompressor<'static>>,
}

impl std::fmt::Debug for BlobDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobDecompressor")
    }
}

impl BlobDecompressor {
    /// Decompresses `frame` into `out` (cleared first); its length must be `raw_len`.
    pub fn unpack(&mut self, frame: &[u8], raw_len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let ctx = match &mut self.ctx {
            Some(ctx) => ctx,
            None => self.ctx.insert(zstd::bulk::Decompressor::new()?),
        };
        out.clear();
        out.reserve(raw_len);
        let n = ctx.decompress_to_buffer(frame, out)?;
        if n != raw_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob decompressed to {n} bytes, the index says {raw_len}"),
            ));
        }
        Ok(())
    }
}

/// Order-0 entropy of a sample from the start and the middle, in bits per byte.
fn looks_incompressible(raw: &[u8]) -> bool {
    let mut counts = [0u32; 256];
    let mid = raw.len() / 2;
    for &b in raw[..SAMPLE].iter().chain(&raw[mid..mid + SAMPLE]) {
        counts[b as usize] += 1;
    }
    let total = (2 * SAMPLE) as f64;
    let bits: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / total;
            -p * p.log2()
        })
        .sum();
    bits > RAW_ENTROPY_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize) -> Vec<u8> {
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn text_is_compressed_and_round_trips() {
        let text = b"the quick brown fox jumps over the lazy dog. ".repeat(2000);
        let mut c = BlobCompressor::new(3).unwrap();
        let Packed::Compressed(frame) = c.pack(&text).unwrap() else {
            panic!("text stored raw");
        };
        assert!(frame.len() < text.len() / 10);
        let frame = frame.to_vec();
        let mut out = Vec::new();
        BlobDecompressor::default()
            .unpack(&frame, text.len(), &mut out)
            .unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn noise_is_stored_raw_small_or_large() {
        let mut c = BlobCompressor::new(3).unwrap();
        assert_eq!(c.pack(&noise(100_000)).unwrap(), Packed::Raw);
        assert_eq!(c.pack(&noise(500)).unwrap(), Packed::Raw);
    }

    #[test]
    fn a_frame_of_the_wrong_length_is_an_error() {
        let text = b"abcabcabc".repeat(1000);
        let mut c = BlobCompressor::new(3).unwrap();
        let Packed::Compressed(frame) = c.pack(&text).unwrap() else {
            panic!("stored raw");
        };
        let frame = frame.to_vec();
        let mut out = Vec::new();
        let mut d = BlobDecompressor::default();
        assert!(d.unpack(&frame, text.len() - 1, &mut out).is_err());
        assert!(d.unpack(b"not zstd at all", 10, &mut out).is_err());
    }
}
