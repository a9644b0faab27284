//! bincode 2 (serde mode) + zstd framing with a versioned header and hard size limits.
//!
//! This is the only module that uses bincode, so the byte format can change in one place,
//! behind the version in the frame header. It owns:
//!
//! - frames for the wire ([`encode_frame`] / [`decode_frame`]): a 16-byte
//!   [`FrameHeader`] (magic, protocol version, flags, lengths) then a payload that is bincode,
//!   zstd-compressed when that makes it smaller; [`open_frame`] (or
//!   [`open_frame_reusing`], with a per-thread zstd context) checks and decompresses one,
//!   and [`FramePayload::decode`] reads a value that may borrow its strings from it;
//! - plain values for the store ([`encode_value`] / [`decode_value`]): bincode with
//!   no header.
//!
//! It leaves out what the bytes mean (that is [`crate::protocol`]) and which protocol
//! versions a caller accepts (it passes an `accept` predicate, usually
//! [`crate::protocol::is_compatible`]).
//!
//! # Untrusted input
//!
//! Decoding is bounded before any work that scales with a declared length:
//! every length in a frame header is checked against [`Limits`] before decompressing;
//! decompression writes into a buffer of exactly the declared decoded length, so a zstd bomb
//! fails instead of growing; and bincode runs with a byte limit tied to the input's size, so a
//! length prefix claiming a huge string fails before allocating more than 64× the input
//! (sequences are pre-allocated by serde at most 1 MiB at a time, then grow only with
//! elements actually present). Every decode consumes its input exactly; trailing bytes are an error. Malformed
//! input gives a [`CodecError`], never a panic (proptests below throw random, truncated and
//! corrupted frames at it).
//!
//! Encoding and decoding are CPU work proportional to the value: async callers run large
//! batches under `spawn_blocking`.

mod context;
mod frame;
mod value;

pub use frame::{
    FLAG_ZSTD, FrameHeader, FramePayload, HEADER_LEN, MAGIC, decode_frame, encode_frame,
    open_frame, open_frame_reusing,
};
pub use value::{MAX_VALUE_BYTES, decode_value, encode_value};

use std::io;

/// Size bounds applied while decoding a frame, before the work they bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole frame accepted (header + payload), in bytes.
    pub max_frame_bytes: usize,
    /// Largest bincode payload accepted after decompression, in bytes; at most
    /// [`MAX_VALUE_BYTES`].
    pub max_decoded_bytes: usize,
}

impl Limits {
    /// 16 MiB frames that decode to at most 16 MiB: above a full sample batch of a large host
    /// (cut at 12 MiB), and small enough that a lying length prefix reserves at most 128 MiB.
    pub const DEFAULT: Limits = Limits {
        max_frame_bytes: 16 << 20,
        max_decoded_bytes: 16 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Why encoding or decoding failed. Each decode variant names the check that refused the
/// input; none of them can be fixed by retrying with the same bytes.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The input ends before a complete header or payload.
    #[error("frame truncated: needed {needed} bytes, got {got}")]
    Truncated {
        /// Bytes the header says the frame has (or the header length).
        needed: usize,
        /// Bytes actually present.
        got: usize,
    },
    /// The frame does not start with [`MAGIC`]: not a Muster frame.
    #[error("not a Muster frame (bad magic)")]
    BadMagic,
    /// The frame's protocol version is not accepted by the caller.
    #[error("unsupported protocol version {got} (this build speaks {ours})")]
    UnsupportedVersion {
        /// The version in the frame.
        got: u16,
        /// [`crate::protocol::PROTOCOL_VERSION`] of this build.
        ours: u16,
    },
    /// The header sets flag bits this build does not know.
    #[error("unknown frame flags {flags:#06x}")]
    UnknownFlags {
        /// The header's flags field.
        flags: u16,
    },
    /// The input holds more bytes than the header's payload length.
    #[error("frame payload length {declared} does not match the {actual} bytes present")]
    LengthMismatch {
        /// Payload length in the header.
        declared: usize,
        /// Payload bytes present after the header.
        actual: usize,
    },
    /// The frame (or the value to frame) is larger than allowed.
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The frame's length (declared or actual), in bytes.
        len: u64,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The declared decoded length, or a plain value, is larger than allowed.
    #[error("decoded length {len} exceeds the limit of {limit}")]
    DecodedTooLarge {
        /// The length, in bytes.
        len: u64,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The payload decompressed (or, uncompressed, is) to a length other than declared.
    #[error("payload decodes to {actual} bytes, header declared {declared}")]
    DecodedLengthMismatch {
        /// Decoded length in the header.
        declared: usize,
        /// Bytes actually produced.
        actual: usize,
    },
    /// zstd refused the payload; this includes a payload that would decompress beyond its
    /// declared length.
    #[error("zstd decompression failed")]
    Decompress(#[source] io::Error),
    /// zstd compression failed (an invalid level or out of memory).
    #[error("zstd compression failed")]
    Compress(#[source] io::Error),
    /// The value cannot be represented in bincode (for example a sequence of unknown length).
    #[error("encoding the value failed")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The bytes are not a valid encoding of the requested type. The source is opaque on
    /// purpose: callers must not depend on bincode's error type.
    #[error("decoding the value failed")]
    Decode(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The value decoded from fewer bytes than given.
    #[error("{extra} trailing bytes after the value")]
    TrailingBytes {
        /// Bytes left over.
        extra: usize,
    },
}

#[cfg(test)]
mod tests;
