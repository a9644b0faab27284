//! Frames: what travels as [`crate::protocol::BATCH_MEDIA_TYPE`].
//!
//! A frame is a fixed 16-byte [`FrameHeader`] followed by the payload: one bincode value
//! ([`super::value`]), zstd-compressed when that made it smaller. The header is enough to
//! refuse a frame (wrong magic, version, flags, or lengths over [`Limits`]) before any work
//! that depends on the payload.

use serde::Serialize;
use serde::de::DeserializeOwned;

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
/// Checks, in this order and all before decompressing: the header is complete, the magic,
/// `accept(version)` (usually [`crate::protocol::is_compatible`]), the flags, the declared
/// frame length against `limits.max_frame_bytes` and against the bytes present, the declared
/// decoded length against `limits.max_decoded_bytes`. Then it decompresses into a buffer of
/// exactly the declared decoded length (more output is an error, not a reallocation) and
/// decodes bincode, which must consume every byte. See the example on [`encode_frame`].
///
/// # Errors
/// One [`CodecError`] variant per check above: `Truncated`, `BadMagic`,
/// `UnsupportedVersion`, `UnknownFlags`, `FrameTooLarge`, `LengthMismatch`,
/// `DecodedTooLarge`, then `Decompress`, `DecodedLengthMismatch`, `Decode`, `TrailingBytes`.
pub fn decode_frame<T: DeserializeOwned>(
    frame: &[u8],
    limits: &Limits,
    accept: impl Fn(u16) -> bool,
) -> Result<(u16, T), CodecError> {
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

    let value = if header.is_compressed() {
        // The capacity is the declared length, already bounded above: zstd fails with
        // "destination buffer too small" instead of growing past it.
        let plain =
            zstd::bulk::decompress(payload, decoded_len).map_err(CodecError::Decompress)?;
        if plain.len() != decoded_len {
            return Err(CodecError::DecodedLengthMismatch {
                declared: decoded_len,
                actual: plain.len(),
            });
        }
        decode_bounded(&plain)?
    } else {
        if decoded_len != payload_len {
            return Err(CodecError::DecodedLengthMismatch {
                declared: decoded_len,
                actual: payload_len,
            });
        }
        decode_bounded(payload)?
    };
    Ok((header.version, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::is_compatible;
    use crate::protocol::samples::{Gap, Label, Round, SampleBatch, SeriesDef, SeriesValue};
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn decode_batch(frame: &[u8]) -> Result<(u16, SampleBatch), CodecError> {
        decode_frame(frame, &Limits::DEFAULT, is_compatible)
    }

    fn arb_label() -> impl Strategy<Value = Label> {
        ("[a-z_]{1,12}", ".{0,20}").prop_map(|(name, value)| Label { name, value })
    }

    fn arb_series() -> impl Strategy<Value = SeriesDef> {
        (any::<u32>(), "[a-z_]{1,40}", vec(arb_label(), 0..5)).prop_map(
            |(id, metric, mut labels)| {
                labels.sort();
                SeriesDef { id, metric, labels }
            },
        )
    }

    fn arb_round() -> impl Strategy<Value = Round> {
        (
            any::<u64>(),
            any::<u64>(),
            // Any bit pattern: NaNs with payloads, infinities, subnormals, -0.0.
            vec((any::<u32>(), any::<u64>().prop_map(f64::from_bits)), 0..20),
        )
            .prop_map(|(seq, timestamp_unix_ms, values)| Round {
                seq,
                timestamp_unix_ms,
                values: values
                    .into_iter()
                    .map(|(series, value)| SeriesValue { series, value })
                    .collect(),
            })
    }

    fn arb_batch() -> impl Strategy<Value = SampleBatch> {
        (
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()),
            proptest::option::of((any::<u64>(), any::<u64>())),
            vec(arb_series(), 0..6),
            vec(arb_round(), 0..6),
        )
            .prop_map(
                |((first_seq, last_seq, next_after, more), gap, series, rounds)| SampleBatch {
                    first_seq,
                    last_seq,
                    next_after,
                    more,
                    gap: gap.map(|(first_missing, last_missing)| Gap {
                        first_missing,
                        last_missing,
                    }),
                    series,
                    rounds,
                },
            )
    }

    /// Equality with every f64 compared by its bits, so NaN payloads count.
    fn assert_bitwise_eq(a: &SampleBatch, b: &SampleBatch) {
        let bits = |batch: &SampleBatch| -> Vec<Vec<(u32, u64)>> {
            batch
                .rounds
                .iter()
                .map(|r| r.values.iter().map(|v| (v.series, v.value.to_bits())).collect())
                .collect()
        };
        assert_eq!(bits(a), bits(b));
        let zeroed = |batch: &SampleBatch| {
            let mut batch = batch.clone();
            for value in batch.rounds.iter_mut().flat_map(|r| r.values.iter_mut()) {
                value.value = 0.0;
            }
            batch
        };
        assert_eq!(zeroed(a), zeroed(b));
    }

    /// A batch that compresses well and one that does not, so both payload kinds are covered.
    fn frames() -> Vec<Vec<u8>> {
        let series = (0..50)
            .map(|id| SeriesDef {
                id,
                metric: "node_cpu_seconds_total".to_owned(),
                labels: vec![Label {
                    name: "mode".to_owned(),
                    value: "iowait".to_owned(),
                }],
            })
            .collect();
        let compressible = SampleBatch {
            series,
            ..SampleBatch::empty(0)
        };
        let small = SampleBatch::empty(7);
        let a = encode_frame(&compressible, PROTOCOL_VERSION, 3).unwrap();
        let b = encode_frame(&small, PROTOCOL_VERSION, 3).unwrap();
        assert!(FrameHeader::parse(&a).unwrap().is_compressed());
        assert!(!FrameHeader::parse(&b).unwrap().is_compressed());
        vec![a, b]
    }

    fn with_header(frame: &[u8], edit: impl FnOnce(&mut FrameHeader)) -> Vec<u8> {
        let mut header = FrameHeader::parse(frame).unwrap();
        edit(&mut header);
        let mut out = header.to_bytes().to_vec();
        out.extend_from_slice(&frame[HEADER_LEN..]);
        out
    }

    proptest! {
        #[test]
        fn round_trips_any_batch_bit_for_bit(batch in arb_batch(), level in 1..6_i32) {
            let frame = encode_frame(&batch, PROTOCOL_VERSION, level).unwrap();
            let (version, back) = decode_batch(&frame).unwrap();
            prop_assert_eq!(version, PROTOCOL_VERSION);
            assert_bitwise_eq(&batch, &back);
        }

        #[test]
        fn truncated_frame_is_an_error(batch in arb_batch(), cut in any::<prop::sample::Index>()) {
            let frame = encode_frame(&batch, PROTOCOL_VERSION, 3).unwrap();
            let cut = cut.index(frame.len());
            prop_assert!(decode_batch(&frame[..cut]).is_err());
        }

        #[test]
        fn flipped_bytes_never_panic(
            which in 0..2_usize,
            flips in vec((any::<prop::sample::Index>(), 1..=255_u8), 1..8),
        ) {
            let mut frame = frames().swap_remove(which);
            for (at, mask) in flips {
                let at = at.index(frame.len());
                frame[at] ^= mask;
            }
            let _ = decode_batch(&frame);
        }

        #[test]
        fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
            prop_assert!(decode_batch(&bytes).is_err());
        }

        #[test]
        fn random_payload_behind_valid_header_never_panics(
            payload in vec(any::<u8>(), 0..512),
            compressed in any::<bool>(),
            decoded_len in 0..4096_u32,
        ) {
            let header = FrameHeader {
                version: PROTOCOL_VERSION,
                flags: if compressed { FLAG_ZSTD } else { 0 },
                payload_len: payload.len() as u32,
                decoded_len,
            };
            let mut frame = header.to_bytes().to_vec();
            frame.extend_from_slice(&payload);
            let _ = decode_batch(&frame);
        }
    }

    #[test]
    fn header_layout_is_little_endian_at_documented_offsets() {
        let header = FrameHeader {
            version: 0x0102,
            flags: FLAG_ZSTD,
            payload_len: 0x0304_0506,
            decoded_len: 0x0708_090a,
        };
        assert_eq!(
            header.to_bytes(),
            [
                b'M', b'S', b'T', b'B', 0x02, 0x01, 0x01, 0x00, 0x06, 0x05, 0x04, 0x03, 0x0a,
                0x09, 0x08, 0x07
            ]
        );
        assert_eq!(FrameHeader::parse(&header.to_bytes()).unwrap(), header);
    }

    #[test]
    fn header_claiming_4_gib_is_refused_before_decompressing() {
        // The payload is garbage: reaching zstd would give Decompress, not these errors.
        let garbage = vec![0xAB; 64];
        let mut frame = FrameHeader {
            version: PROTOCOL_VERSION,
            flags: FLAG_ZSTD,
            payload_len: u32::MAX,
            decoded_len: 64,
        }
        .to_bytes()
        .to_vec();
        frame.extend_from_slice(&garbage);
        let err = decode_batch(&frame).unwrap_err();
        assert!(
            matches!(err, CodecError::FrameTooLarge { len, limit }
                if len == u64::from(u32::MAX) + 16 && limit == 16 << 20),
            "{err:?}"
        );

        let mut frame = FrameHeader {
            version: PROTOCOL_VERSION,
            flags: FLAG_ZSTD,
            payload_len: garbage.len() as u32,
            decoded_len: u32::MAX,
        }
        .to_bytes()
        .to_vec();
        frame.extend_from_slice(&garbage);
        let err = decode_batch(&frame).unwrap_err();
        assert!(
            matches!(err, CodecError::DecodedTooLarge { len, limit }
                if len == u64::from(u32::MAX) && limit == 64 << 20),
            "{err:?}"
        );
    }

    #[test]
    fn zstd_bomb_is_refused() {
        // 32 MiB of zeros compress to a few KiB; the header declares 1 KiB decoded.
        let bomb = zstd::bulk::compress(&vec![0_u8; 32 << 20], 19).unwrap();
        assert!(bomb.len() < 64 << 10, "bomb is {} bytes", bomb.len());
        let mut frame = FrameHeader {
            version: PROTOCOL_VERSION,
            flags: FLAG_ZSTD,
            payload_len: bomb.len() as u32,
            decoded_len: 1024,
        }
        .to_bytes()
        .to_vec();
        frame.extend_from_slice(&bomb);
        let err = decode_batch(&frame).unwrap_err();
        assert!(matches!(err, CodecError::Decompress(_)), "{err:?}");
    }

    #[test]
    fn payload_shorter_than_declared_decoded_length_is_refused() {
        let frame = frames().swap_remove(0);
        let frame = with_header(&frame, |h| h.decoded_len += 1);
        let err = decode_batch(&frame).unwrap_err();
        assert!(
            matches!(err, CodecError::DecodedLengthMismatch { .. }),
            "{err:?}"
        );
        let frame = frames().swap_remove(1);
        let frame = with_header(&frame, |h| h.decoded_len -= 1);
        let err = decode_batch(&frame).unwrap_err();
        assert!(
            matches!(err, CodecError::DecodedLengthMismatch { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn wrong_version_is_refused() {
        for frame in frames() {
            let frame = with_header(&frame, |h| h.version = PROTOCOL_VERSION + 2);
            let err = decode_batch(&frame).unwrap_err();
            assert!(
                matches!(err, CodecError::UnsupportedVersion { got, ours }
                    if got == PROTOCOL_VERSION + 2 && ours == PROTOCOL_VERSION),
                "{err:?}"
            );
        }
        // A neighbour version is the caller's choice.
        let frame = with_header(&frames()[1], |h| h.version = PROTOCOL_VERSION + 1);
        assert_eq!(decode_batch(&frame).unwrap().0, PROTOCOL_VERSION + 1);
    }

    #[test]
    fn wrong_magic_is_refused() {
        let mut frame = frames().swap_remove(1);
        frame[0] = b'X';
        assert!(matches!(decode_batch(&frame), Err(CodecError::BadMagic)));
    }

    #[test]
    fn unknown_flags_are_refused() {
        let frame = with_header(&frames()[1], |h| h.flags |= 0x8000);
        assert!(matches!(
            decode_batch(&frame),
            Err(CodecError::UnknownFlags { flags: 0x8000 })
        ));
    }

    #[test]
    fn short_and_long_inputs_are_refused_with_their_lengths() {
        let frame = frames().swap_remove(1);
        let err = decode_batch(&frame[..10]).unwrap_err();
        assert!(
            matches!(err, CodecError::Truncated { needed: 16, got: 10 }),
            "{err:?}"
        );
        let err = decode_batch(&frame[..frame.len() - 1]).unwrap_err();
        assert!(matches!(err, CodecError::Truncated { .. }), "{err:?}");
        let mut long = frame.clone();
        long.push(0);
        let err = decode_batch(&long).unwrap_err();
        assert!(matches!(err, CodecError::LengthMismatch { .. }), "{err:?}");
    }

    #[test]
    fn smaller_limits_are_honoured() {
        let frame = frames().swap_remove(0);
        let tight = Limits {
            max_frame_bytes: frame.len() - 1,
            ..Limits::DEFAULT
        };
        let err = decode_frame::<SampleBatch>(&frame, &tight, is_compatible).unwrap_err();
        assert!(matches!(err, CodecError::FrameTooLarge { .. }), "{err:?}");
        let tight = Limits {
            max_decoded_bytes: 10,
            ..Limits::DEFAULT
        };
        let err = decode_frame::<SampleBatch>(&frame, &tight, is_compatible).unwrap_err();
        assert!(matches!(err, CodecError::DecodedTooLarge { .. }), "{err:?}");
    }
}
