//! Property and adversarial tests of frames: round trips bit for bit, and truncated,
//! corrupted, random, oversized and bomb inputs, which must give an error and never panic.
//! (The same decoders deserve a `cargo fuzz` target; these run on every `cargo test`.)

use super::*;
use crate::protocol::PROTOCOL_VERSION;
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
    (any::<u32>(), "[a-z_]{1,40}", vec(arb_label(), 0..5)).prop_map(|(id, metric, mut labels)| {
        labels.sort();
        SeriesDef { id, metric, labels }
    })
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
            .map(|r| {
                r.values
                    .iter()
                    .map(|v| (v.series, v.value.to_bits()))
                    .collect()
            })
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
            b'M', b'S', b'T', b'B', 0x02, 0x01, 0x01, 0x00, 0x06, 0x05, 0x04, 0x03, 0x0a, 0x09,
            0x08, 0x07
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
            if len == u64::from(u32::MAX) && limit == 16 << 20),
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
        matches!(
            err,
            CodecError::Truncated {
                needed: 16,
                got: 10
            }
        ),
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

/// Regression (found while writing the `codec_frame` fuzz target, fuzz/regressions/): a
/// 554-byte zstd frame declaring 16 MiB + 1 of decoded bincode whose first string claims
/// ~1 GiB made bincode reserve 1 GiB. Such a frame is now refused before decompression, and
/// the bincode limit for any accepted size is at most 8× the decoded length.
#[test]
fn zstd_frame_claiming_a_gigabyte_string_is_refused_cheaply() {
    use crate::protocol::info::AgentInfo;
    use crate::protocol::samples::SampleBatch;
    let info = include_bytes!("testdata/codec_frame-zstd-claim-info.bin");
    let batch = include_bytes!("testdata/codec_frame-zstd-claim-batch.bin");
    let err = decode_frame::<AgentInfo>(info, &Limits::DEFAULT, |_| true).unwrap_err();
    assert!(matches!(err, CodecError::DecodedTooLarge { .. }), "{err:?}");
    let err = decode_frame::<SampleBatch>(batch, &Limits::DEFAULT, |_| true).unwrap_err();
    assert!(matches!(err, CodecError::DecodedTooLarge { .. }), "{err:?}");
}
