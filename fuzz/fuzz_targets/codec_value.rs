//! Plain bincode values, as the store reads them back and as frames carry them:
//! `codec::decode_value` on arbitrary bytes, for every wire type, the collector's stored
//! records, and a few shapes chosen to tempt a decoder into allocating what a length prefix
//! claims (long strings, `u128` sequences, nested sequences, maps).
//!
//! Run with `-rss_limit_mb=512` (libFuzzer's malloc limit follows it): a length prefix that
//! makes the decoder allocate far beyond the input shows up as an out-of-memory crash.
//!
//! Properties, beyond "never panics":
//! - the encoding is a fixed point: a decoded value re-encodes to bytes that decode to a
//!   value with the same bytes again, and those bytes are never longer than the input (the
//!   encoder writes the shortest form the decoder reads);
//! - a value consumes its input exactly: one byte more is `TrailingBytes { extra: 1 }`, one
//!   byte less is an error;
//! - `max_bytes` is an inclusive bound checked first: one byte under the input's length is
//!   `DecodedTooLarge`.

#![no_main]

use std::collections::BTreeMap;
use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use muster_collector::hosts::HostRecord;
use muster_collector::tokens::{ApiTokenRecord, EnrollTokenRecord};
use muster_shared::codec::{CodecError, decode_value, encode_value};
use muster_shared::protocol::enroll::{EnrollRequest, EnrollResponse};
use muster_shared::protocol::error::ErrorBody;
use muster_shared::protocol::info::AgentInfo;
use muster_shared::protocol::jobs::{JobRequest, JobStatus};
use muster_shared::protocol::samples::{SampleBatch, SamplesQuery};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The caller's limit: as in the codec's own tests, far above any libFuzzer input, so only
/// the codec's own bounds (tied to the input length) stand between a claim and an allocation.
const MAX_BYTES: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // Wire types.
    check::<SampleBatch>(data);
    check::<SamplesQuery>(data);
    check::<AgentInfo>(data);
    check::<JobRequest>(data);
    check::<JobStatus>(data);
    check::<EnrollRequest>(data);
    check::<EnrollResponse>(data);
    check::<ErrorBody>(data);
    // Stored records (the schema byte is the store's, not the codec's).
    check::<HostRecord>(data);
    check::<ApiTokenRecord>(data);
    check::<EnrollTokenRecord>(data);
    // Shapes whose length prefixes claim memory.
    check::<String>(data);
    check::<Vec<u128>>(data);
    check::<Vec<Vec<u8>>>(data);
    check::<Vec<String>>(data);
    check::<BTreeMap<String, Vec<u64>>>(data);
    check::<(u64, Option<String>, Vec<(u32, f64)>)>(data);
});

fn check<T: Serialize + DeserializeOwned + Debug>(data: &[u8]) {
    let Ok(value) = decode_value::<T>(data, MAX_BYTES) else {
        return;
    };
    let type_name = std::any::type_name::<T>();

    let bytes = encode_value(&value).expect("a decoded value encodes");
    assert!(
        bytes.len() <= data.len(),
        "{type_name}: {value:?} re-encodes to {} bytes from a {}-byte input",
        bytes.len(),
        data.len()
    );
    let back = decode_value::<T>(&bytes, MAX_BYTES)
        .unwrap_or_else(|err| panic!("{type_name}: re-encoded {value:?} does not decode: {err}"));
    assert_eq!(
        encode_value(&back).expect("a decoded value encodes"),
        bytes,
        "{type_name}: round trip changed {value:?} into {back:?}"
    );

    let mut longer = data.to_vec();
    longer.push(0);
    match decode_value::<T>(&longer, MAX_BYTES) {
        Err(CodecError::TrailingBytes { extra: 1 }) => {}
        other => panic!("{type_name}: one trailing byte gave {other:?}"),
    }
    if let Some((_, shorter)) = data.split_last() {
        assert!(
            decode_value::<T>(shorter, MAX_BYTES).is_err(),
            "{type_name}: both {data:02x?} and its prefix decode"
        );
        match decode_value::<T>(data, data.len() - 1) {
            Err(CodecError::DecodedTooLarge { len, limit }) => {
                assert_eq!((len, limit), (data.len() as u64, data.len() as u64 - 1));
            }
            other => panic!("{type_name}: a limit one under the input gave {other:?}"),
        }
    }
}
