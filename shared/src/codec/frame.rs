//! Frames: what travels as [`crate::protocol::BATCH_MEDIA_TYPE`].
//!
//! A frame is a fixed 16-byte [`FrameHeader`] followed by the payload: one bincode value
//! ([`super::value`]), zstd-compressed when that made it smaller. The header is enough to
//! refuse a frame (wrong magic, version, flags, or lengths over [`Limits`]) before any work
//! that depends on the payload.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::context;
use super::value::{MAX_VALUE_BYTES, decode_bounded, encode_value};
use super::{CodecError, Limits};
use crate::protocol::PROTOCOL_VERSION;

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"MSTB";
/// Length of [`FrameHeader`] on the wire, in bytes.
pub const HEADER_LEN: usize = 16;
/// [`FrameHeader::flags`] bit 0: the payload is one zstd frame (or several concatenated).
pub const FLAG_ZSTD: u16 = 1 << 0;
/// Every flag this build understands; a frame with any other bit set is refused, so a flag
/// added later (say, a dictionary) can never be misread as plain bincode.
const KNOWN_FLAGS: u16 = FLAG_ZSTD;

/// The frame header, all fields little endian:
///
/// | offset | size | field          | meaning                                              |
/// |-------:|-----:|----------------|------------------------------------------------------|
/// | 0      | 4    | magic          | [`MAGIC`], `b"MSTB"`                                 |
/// | 4      | 2    | `version`      | protocol version of the payload's type               |
/// | 6      | 2    | `flags`        | bit 0 = [`FLAG_ZSTD`]; other bits must be 0          |
/// | 8      | 4    | `payload_len`  | bytes following the header                           |
/// | 12     | 4    | `decoded_len`  | length of the bincode bytes after decompression      |
///
/// Without [`FLAG_ZSTD`], `decoded_len == payload_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes 4..6: the protocol version the payload was encoded for.
    pub version: u16,
    /// Bytes 6..8: flag bits.
    pub flags: u16,
    /// Bytes 8..12: payload length in bytes.
    pub payload_len: u32,
    /// Bytes 12..16: bincode length in bytes after decompression.
    pub decoded_len: u32,
}

impl FrameHeader {
    /// Reads the header at the start of `frame`, checking only its length and magic: enough
    /// for a caller that picks the payload type from [`FrameHeader::version`].
    ///
    /// # Errors
    /// [`CodecError::Truncated`] when `frame` is shorter than [`HEADER_LEN`],
    /// [`CodecError::BadMagic`] when it does not start with [`MAGIC`].
    pub fn parse(frame: &[u8]) -> Result<FrameHeader, CodecError> {
        let Some(header) = frame.first_chunk::<HEADER_LEN>() else {
            return Err(CodecError::Truncated {
                needed: HEADER_LEN,
                got: frame.len(),
            });
        };
        if header[0..4] != MAGIC {
            return Err(CodecError::BadMagic);
        }
        Ok(FrameHeader {
            version: u16::from_le_bytes([header[4], header[5]]),
            flags: u16::from_le_bytes([header[6], header[7]]),
            payload_len: u32::from_le_bytes([header[8], header[9], header[10], header[11]]),
            decoded_len: u32::from_le_bytes([header[12], header[13], header[14], header[15]]),
        })
    }

    /// The header's 16 wire bytes, magic included.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&self.version.to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.decoded_len.to_le_bytes());
        out
    }

    /// Whether the payload is zstd-compressed.
    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_ZSTD != 0
    }
}

/// Encodes `value` as a frame for protocol `version`, compressing the payload with zstd at
/// `level` (1..=22, negative for faster; 0 means zstd's default, 3) unless compression does
/// not make it smaller.
///
/// Runs on the caller's thread; a large batch belongs in `spawn_blocking`.
///
/// # Errors
/// [`CodecError::Encode`] when the value cannot be bincode ([`super::encode_value`]),
/// [`CodecError::Compress`] for an invalid level, [`CodecError::FrameTooLarge`] when the
/// bincode form exceeds 4 GiB (the header's u32 lengths).
///
/// # Example
/// ```
/// use muster_shared::codec::{Limits, decode_frame, encode_frame};
/// use muster_shared::protocol::{PROTOCOL_VERSION, is_compatible};
///
/// let value = vec!["web1".to_owned(); 100];
/// let frame = encode_frame(&value, PROTOCOL_VERSION, 3)?;
/// let (version, back): (u16, Vec<String>) =
///     decode_frame(&frame, &Limits::DEFAULT, is_compatible)?;
/// assert_eq!((version, back), (PROTOCOL_VERSION, value));
/// # Ok::<(), muster_shared::codec::CodecError>(())
/// ```
pub fn encode_frame<T: Serialize + ?Sized>(
    value: &T,
    version: u16,
    level: i32,
) -> Result<Vec<u8>, CodecError> {
    let plain = encode_value(value)?;
    let too_large = |len: usize| CodecError::FrameTooLarge {
        len: len as u64,
        limit: u64::from(u32::MAX),
    };
    let decoded_len = u32::try_from(plain.len()).map_err(|_| too_large(plain.len()))?;
    let compressed = zstd::bulk::compress(&plain, level).map_err(CodecError::Compress)?;
    let (flags, payload) = if compressed.len() < plain.len() {
        (FLAG_ZSTD, compressed)
    } else {
        (0, plain)
    };
    let header = FrameHeader {
        version,
        flags,
        payload_len: u32::try_from(payload.len()).map_err(|_| too_large(payload.len()))?,
        decoded_len,
    };
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&header.to_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Decodes a frame holding a `T`, returning the frame's protocol version with the value.
///
/// [`open_frame`] then [`FramePayload::decode`]: every check of the first, then bincode,
/// which must consume every byte. See the example on [`encode_frame`]. A `T` that borrows
/// (`&str` fields) cannot outlive this call; decode those from an [`open_frame`] payload.
///
/// # Errors
/// Those of [`open_frame`], then `Decode` and `TrailingBytes`.
pub fn decode_frame<T: DeserializeOwned>(
    frame: &[u8],
    limits: &Limits,
    accept: impl Fn(u16) -> bool,
) -> Result<(u16, T), CodecError> {
    let payload = open_frame(frame, limits, accept)?;
    let value = payload.decode()?;
    Ok((payload.version, value))
}

/// A frame whose header passed every check, with its bincode bytes: borrowed from the
/// frame when it was not compressed, decompressed otherwise. Values that borrow strings
/// from it ([`FramePayload::decode`] into a type with `&str` fields) cost no allocation
/// per string: the collector decodes every sample batch this way.
#[derive(Debug)]
pub struct FramePayload<'a> {
    /// The frame's protocol version.
    pub version: u16,
    bytes: Cow<'a, [u8]>,
}

impl FramePayload<'_> {
    /// Decodes the payload as a `T`, which may borrow from it; bincode must consume every
    /// byte.
    ///
    /// # Errors
    /// [`CodecError::Decode`] for bytes that are not a `T`, [`CodecError::TrailingBytes`]
    /// when the value ends early.
    pub fn decode<'de, T: Deserialize<'de>>(&'de self) -> Result<T, CodecError> {
        decode_bounded(&self.bytes)
    }

    /// The bincode bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Checks a frame and returns its bincode payload, decompressed.
///
/// Checks, in this order and all before decompressing: the header is complete, the magic,
/// `accept(version)` (usually [`crate::protocol::is_compatible`]), the flags, the declared
/// frame length against `limits.max_frame_bytes` and against the bytes present, the declared
/// decoded length against `limits.max_decoded_bytes`. Then it decompresses into a buffer of
/// exactly the declared decoded length (more output is an error, not a reallocation).
///
/// # Errors
/// One [`CodecError`] variant per check above: `Truncated`, `BadMagic`,
/// `UnsupportedVersion`, `UnknownFlags`, `FrameTooLarge`, `LengthMismatch`,
/// `DecodedTooLarge`, then `Decompress`, `DecodedLengthMismatch`.
pub fn open_frame<'a>(
    frame: &'a [u8],
    limits: &Limits,
    accept: impl Fn(u16) -> bool,
) -> Result<FramePayload<'a>, CodecError> {
    open_with(frame, limits, accept, zstd::bulk::decompress)
}

/// [`open_frame`] with a zstd context kept per thread, for a process that opens frames all
/// the time (the collector, every pull): creating one per frame cost it a large allocation
/// per pull (docs/benchmarks.md, where the collector's CPU goes). An agent opens a frame
/// now and then and would only keep the context's memory on each of its threads.
///
/// # Errors
/// Those of [`open_frame`].
pub fn open_frame_reusing<'a>(
    frame: &'a [u8],
    limits: &Limits,
    accept: impl Fn(u16) -> bool,
) -> Result<FramePayload<'a>, CodecError> {
    open_with(frame, limits, accept, context::decompress)
}

fn open_with<'a>(
    frame: &'a [u8],
    limits: &Limits,
    accept: impl Fn(u16) -> bool,
    decompress: fn(&[u8], usize) -> std::io::Result<Vec<u8>>,
) -> Result<FramePayload<'a>, CodecError> {
    let header = FrameHeader::parse(frame)?;
    if !accept(header.version) {
        return Err(CodecError::UnsupportedVersion {
            got: header.version,
            ours: PROTOCOL_VERSION,
        });
    }
    if header.flags & !KNOWN_FLAGS != 0 {
        return Err(CodecError::UnknownFlags {
            flags: header.flags,
        });
    }
    let payload_len = header.payload_len as usize;
    let declared_frame = HEADER_LEN as u64 + u64::from(header.payload_len);
    if declared_frame > limits.max_frame_bytes as u64 {
        return Err(CodecError::FrameTooLarge {
            len: declared_frame,
            limit: limits.max_frame_bytes as u64,
        });
    }
    let payload = &frame[HEADER_LEN..];
    if payload.len() < payload_len {
        return Err(CodecError::Truncated {
            needed: HEADER_LEN + payload_len,
            got: frame.len(),
        });
    }
    if payload.len() > payload_len {
        return Err(CodecError::LengthMismatch {
            declared: payload_len,
            actual: payload.len(),
        });
    }
    let decoded_len = header.decoded_len as usize;
    let decoded_limit = limits.max_decoded_bytes.min(MAX_VALUE_BYTES);
    if decoded_len > decoded_limit {
        return Err(CodecError::DecodedTooLarge {
            len: u64::from(header.decoded_len),
            limit: decoded_limit as u64,
        });
    }
    let bytes = if header.is_compressed() {
        let plain = decompress(payload, decoded_len).map_err(CodecError::Decompress)?;
        if plain.len() != decoded_len {
            return Err(CodecError::DecodedLengthMismatch {
                declared: decoded_len,
                actual: plain.len(),
            });
        }
        Cow::Owned(plain)
    } else {
        if decoded_len != payload_len {
            return Err(CodecError::DecodedLengthMismatch {
                declared: decoded_len,
                actual: payload_len,
            });
        }
        Cow::Borrowed(payload)
    };
    Ok(FramePayload {
        version: header.version,
        bytes,
    })
}
