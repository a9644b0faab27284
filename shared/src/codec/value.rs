//! Plain bincode values: no header, no compression. The store keeps its values this way, and
//! frames carry one as their payload.
//!
//! The format is bincode 2 `config::standard()` in serde mode: little endian, variable-length
//! integers, strings and sequences prefixed with their length, enums by variant index.

use bincode::config;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::CodecError;

/// The largest input [`decode_value`] (and a frame's decoded payload) may have whatever the
/// caller's limit says: 16 MiB, [`super::Limits::DEFAULT`]'s decoded maximum. Kept small
/// because a lying length prefix can make bincode reserve up to 8× this (see
/// [`decode_bounded`]); a full sample batch is cut at 12 MiB by the agent.
pub const MAX_VALUE_BYTES: usize = 16 << 20;

/// Encodes `value` as bincode.
///
/// # Errors
/// [`CodecError::Encode`] when serde cannot express the value in bincode (a sequence or map
/// whose length is unknown up front, a `#[serde(flatten)]` or untagged type).
pub fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config::standard())
        .map_err(|e| CodecError::Encode(Box::new(e)))
}

/// Decodes a `T` from exactly `bytes`, refusing inputs longer than `max_bytes` (and than
/// [`MAX_VALUE_BYTES`]) before looking at them.
///
/// # Errors
/// [`CodecError::DecodedTooLarge`] for an input over the limit, [`CodecError::Decode`] for
/// bytes that are not a `T`, [`CodecError::TrailingBytes`] when the value ends early.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8], max_bytes: usize) -> Result<T, CodecError> {
    let limit = max_bytes.min(MAX_VALUE_BYTES);
    if bytes.len() > limit {
        return Err(CodecError::DecodedTooLarge {
            len: bytes.len() as u64,
            limit: limit as u64,
        });
    }
    decode_bounded(bytes)
}

/// Decodes with a bincode byte limit tied to `bytes.len()`.
///
/// bincode allocates a string's or byte buffer's declared length before reading it, so a
/// 9-byte prefix claiming 4 GiB would allocate 4 GiB. Its limit check runs before that
/// allocation, but the limit is a const generic: so pick, from a ladder of limits 4× apart,
/// the smallest one that valid input cannot exceed. bincode counts its claims in memory
/// bytes, not input bytes (a 1-byte varint `u64` claims 8; serde-mode sequences claim
/// nothing for their length), so a valid value claims at most 8× its input, and the limit
/// is at least that. A lie is refused once it claims more than the limit, so it reserves at
/// most 32× the input (64 KiB for small inputs) and [`MAX_VALUE_BYTES`] × 8 = 128 MiB at
/// the top rung, without touching that memory (the read fails first). Wire and store types
/// therefore use no `u128` (a 1-byte varint `u128` claims 16).
pub(super) fn decode_bounded<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, CodecError> {
    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    // Claims per input byte in the worst case (a 1-byte varint u64).
    const CLAIM_RATIO: usize = 8;
    match bytes.len().saturating_mul(CLAIM_RATIO) {
        c if c <= 64 * KIB => decode_with_limit::<T, { 64 * KIB }>(bytes),
        c if c <= 256 * KIB => decode_with_limit::<T, { 256 * KIB }>(bytes),
        c if c <= MIB => decode_with_limit::<T, MIB>(bytes),
        c if c <= 4 * MIB => decode_with_limit::<T, { 4 * MIB }>(bytes),
        c if c <= 16 * MIB => decode_with_limit::<T, { 16 * MIB }>(bytes),
        c if c <= 32 * MIB => decode_with_limit::<T, { 32 * MIB }>(bytes),
        c if c <= 128 * MIB => decode_with_limit::<T, { 128 * MIB }>(bytes),
        _ => Err(CodecError::DecodedTooLarge {
            len: bytes.len() as u64,
            limit: MAX_VALUE_BYTES as u64,
        }),
    }
}

fn decode_with_limit<'de, T: Deserialize<'de>, const LIMIT: usize>(
    bytes: &'de [u8],
) -> Result<T, CodecError> {
    // The borrowing decoder serves owned types as well, and lets `&str` fields point
    // into `bytes` instead of allocating.
    let (value, read) =
        bincode::serde::borrow_decode_from_slice(bytes, config::standard().with_limit::<LIMIT>())
            .map_err(|e| CodecError::Decode(Box::new(e)))?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes {
            extra: bytes.len() - read,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bincode::error::DecodeError;

    fn decode_error(err: CodecError) -> DecodeError {
        match err {
            CodecError::Decode(source) => *source
                .downcast::<DecodeError>()
                .expect("the source of Decode is bincode's error"),
            other => panic!("expected CodecError::Decode, got {other:?}"),
        }
    }

    #[test]
    fn round_trips_plain_values() {
        let value = (42_u64, "héllo".to_owned(), vec![1.5_f64, -0.0], Some(true));
        let bytes = encode_value(&value).unwrap();
        let back: (u64, String, Vec<f64>, Option<bool>) = decode_value(&bytes, 1024).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn refuses_input_over_max_bytes_before_decoding() {
        let bytes = encode_value(&vec![7_u8; 100]).unwrap();
        let err = decode_value::<Vec<u8>>(&bytes, 50).unwrap_err();
        assert!(
            matches!(err, CodecError::DecodedTooLarge { len, limit: 50 } if len == bytes.len() as u64),
            "{err:?}"
        );
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = encode_value(&"abc").unwrap();
        bytes.push(0);
        assert!(matches!(
            decode_value::<String>(&bytes, 1024),
            Err(CodecError::TrailingBytes { extra: 1 })
        ));
    }

    /// A length prefix claiming a 4 GiB string must fail at bincode's limit check, which runs
    /// before the allocation, not at the end of input, which runs after it.
    #[test]
    fn huge_string_length_claim_fails_before_allocating() {
        // bincode varint: 0xfd then a little-endian u64.
        let mut bytes = vec![0xfd];
        bytes.extend_from_slice(&(4_u64 << 30).to_le_bytes());
        bytes.extend_from_slice(b"abc");
        let err = decode_error(decode_value::<String>(&bytes, 1 << 20).unwrap_err());
        assert!(matches!(err, DecodeError::LimitExceeded), "{err:?}");

        // The same for a byte buffer inside a struct, and for a claim just above the rung.
        // 0xfc then a little-endian u32: a 70,000-byte string in a 6-byte input.
        let mut bytes = vec![0x01, 0xfc];
        bytes.extend_from_slice(&(70_000_u32).to_le_bytes());
        let err = decode_error(decode_value::<(u8, String)>(&bytes, 1 << 20).unwrap_err());
        assert!(matches!(err, DecodeError::LimitExceeded), "{err:?}");
    }

    /// Regression: the limit once equalled the input length, but bincode counts claims in
    /// memory bytes (8 for a 1-byte varint u64), so values near a rung's edge failed.
    #[test]
    fn values_with_high_claim_ratio_decode_at_every_size() {
        for len in [0, 1, 4000, 4083, 4096, 4097, 70_000, 300_000] {
            let value = (7_u64, 2_u64, vec![0xA5_u8; len]);
            let bytes = encode_value(&value).unwrap();
            assert_eq!(
                decode_value::<(u64, u64, Vec<u8>)>(&bytes, 1 << 20).unwrap(),
                value
            );

            let ints = vec![0_u64; len];
            let bytes = encode_value(&ints).unwrap();
            assert_eq!(decode_value::<Vec<u64>>(&bytes, 1 << 20).unwrap(), ints);
        }
    }

    /// A sequence claiming 2^60 elements must not reserve them: serde caps the
    /// pre-allocation and the decode fails at the end of input.
    #[test]
    fn huge_sequence_length_claim_fails_without_reserving() {
        let mut bytes = vec![0xfd];
        bytes.extend_from_slice(&(1_u64 << 60).to_le_bytes());
        let err = decode_error(decode_value::<Vec<u64>>(&bytes, 1 << 20).unwrap_err());
        assert!(matches!(err, DecodeError::UnexpectedEnd { .. }), "{err:?}");
        let mut bytes = vec![0xfd];
        bytes.extend_from_slice(&(1_u64 << 60).to_le_bytes());
        let err = decode_error(decode_value::<Vec<(u64, String)>>(&bytes, 1 << 20).unwrap_err());
        assert!(matches!(err, DecodeError::UnexpectedEnd { .. }), "{err:?}");
    }
}
