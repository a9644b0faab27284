//! Frames from an untrusted peer: `codec::decode_frame` for the two wire types the collector
//! decodes from agents, `SampleBatch` and `AgentInfo`.
//!
//! Each input is tried twice per type: as a whole frame (header and all), and as a bincode
//! payload the target wraps in a valid uncompressed header, so the fuzzer reaches the value
//! decoder without having to guess the header's lengths.
//!
//! Properties, beyond "never panics":
//! - a frame that decodes re-encodes (`encode_frame`) to a frame that decodes to the same
//!   value, under the same protocol version. Values are compared by their bincode bytes,
//!   because a `SeriesValue` may hold a NaN, which is not `==` to itself;
//! - the limits are inclusive: a frame that decodes under `Limits::DEFAULT` also decodes
//!   under limits equal to its own frame and decoded lengths, and fails one byte below them.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use muster_shared::codec::{
    self, CodecError, FrameHeader, HEADER_LEN, Limits, MAGIC, decode_frame, encode_frame,
};
use muster_shared::protocol::info::AgentInfo;
use muster_shared::protocol::samples::SampleBatch;
use muster_shared::protocol::{PROTOCOL_VERSION, is_compatible};
use serde::Serialize;
use serde::de::DeserializeOwned;

fuzz_target!(|data: &[u8]| {
    check_frame::<SampleBatch>(data);
    check_frame::<AgentInfo>(data);

    let wrapped = wrap_uncompressed(data);
    check_frame::<SampleBatch>(&wrapped);
    check_frame::<AgentInfo>(&wrapped);
});

/// `payload` behind a header that says "protocol version 1, not compressed, this long".
fn wrap_uncompressed(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("libFuzzer inputs are far below 4 GiB");
    let header = FrameHeader {
        version: PROTOCOL_VERSION,
        flags: 0,
        payload_len: len,
        decoded_len: len,
    };
    let mut frame = header.to_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

fn check_frame<T: Serialize + DeserializeOwned + Debug>(frame: &[u8]) {
    let Ok((version, value)) = decode_frame::<T>(frame, &Limits::DEFAULT, is_compatible) else {
        return;
    };
    assert_eq!(frame[..4], MAGIC, "a frame without the magic decoded");
    assert!(is_compatible(version), "version {version} was accepted");

    // Round trip: what we decoded, we can send on and decode again.
    let bytes = codec::encode_value(&value).expect("a decoded value encodes");
    let again = encode_frame(&value, version, 3).expect("a decoded value frames");
    let (version_again, back) = decode_frame::<T>(&again, &Limits::DEFAULT, is_compatible)
        .unwrap_or_else(|err| panic!("re-encoded frame of {value:?} does not decode: {err}"));
    assert_eq!(version_again, version);
    assert_eq!(
        codec::encode_value(&back).expect("a decoded value encodes"),
        bytes,
        "round trip changed {value:?} into {back:?}"
    );

    // The limits are inclusive bounds: exactly this frame's sizes are enough.
    let header = FrameHeader::parse(frame).expect("a decoded frame has a header");
    let exact = Limits {
        max_frame_bytes: frame.len(),
        max_decoded_bytes: header.decoded_len as usize,
    };
    if let Err(err) = decode_frame::<T>(frame, &exact, is_compatible) {
        panic!("frame fits {exact:?} exactly but was refused: {err}");
    }
    let frame_short = Limits {
        max_frame_bytes: frame.len() - 1,
        ..exact
    };
    assert!(
        matches!(
            decode_frame::<T>(frame, &frame_short, is_compatible),
            Err(CodecError::FrameTooLarge { .. })
        ),
        "a {}-byte frame passed {frame_short:?}",
        frame.len()
    );
    if let Some(decoded_short) = exact.max_decoded_bytes.checked_sub(1) {
        let decoded_short = Limits {
            max_decoded_bytes: decoded_short,
            ..exact
        };
        assert!(
            matches!(
                decode_frame::<T>(frame, &decoded_short, is_compatible),
                Err(CodecError::DecodedTooLarge { .. })
            ),
            "a frame decoding to {} bytes passed {decoded_short:?}",
            header.decoded_len
        );
    }
    assert_eq!(frame.len(), HEADER_LEN + header.payload_len as usize);
}
