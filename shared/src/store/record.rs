//! How typed values become sled values, and back: one schema byte, then bincode (the
//! layout is on [`Record`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use crate::codec;

/// Largest stored value (schema byte included), in bytes. A larger write is refused, so
/// every stored value can be read back under this bound.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// A value type of a [`super::Tree`]. Stored as:
///
/// | offset | size | field                                                   |
/// |-------:|-----:|---------------------------------------------------------|
/// | 0      | 1    | schema: the writer's [`Record::SCHEMA`]                 |
/// | 1      | n    | the value, [`crate::codec::encode_value`] (bincode 2)   |
///
/// The schema byte versions the value's shape: change the struct (a field added, removed or
/// retyped) and bump `SCHEMA`. Reading a value written under another schema gives
/// [`StoreError::SchemaMismatch`]; the owner of the tree migrates before using it: read
/// through a `Tree<K, Old>`, write through a `Tree<K, New>` of the same name with a
/// [`super::TreeBatch`] (which, unlike `insert`, does not decode the value it replaces).
///
/// Values should encode deterministically (a `BTreeMap`, not a `HashMap`):
/// [`super::Tree::compare_and_swap`] compares encoded bytes.
pub trait Record: Serialize + DeserializeOwned {
    /// The schema version stored as the value's first byte.
    const SCHEMA: u8;
}

pub(super) fn encode_record<V: Record>(
    tree: &'static str,
    key: &[u8],
    value: &V,
) -> Result<Vec<u8>, StoreError> {
    let body = codec::encode_value(value).map_err(|source| StoreError::Encode {
        tree,
        key_hex: key_hex(key),
        source,
    })?;
    let len = body.len() + 1;
    if len > MAX_RECORD_BYTES {
        return Err(StoreError::ValueTooLarge {
            tree,
            key_hex: key_hex(key),
            len,
            limit: MAX_RECORD_BYTES,
        });
    }
    let mut out = Vec::with_capacity(len);
    out.push(V::SCHEMA);
    out.extend_from_slice(&body);
    Ok(out)
}

pub(super) fn decode_record<V: Record>(
    tree: &'static str,
    key: &[u8],
    stored: &[u8],
) -> Result<V, StoreError> {
    let Some((&found, body)) = stored.split_first() else {
        return Err(StoreError::EmptyValue {
            tree,
            key_hex: key_hex(key),
        });
    };
    if found != V::SCHEMA {
        return Err(StoreError::SchemaMismatch {
            tree,
            key_hex: key_hex(key),
            found,
            expected: V::SCHEMA,
        });
    }
    codec::decode_value(body, MAX_RECORD_BYTES).map_err(|source| StoreError::Decode {
        tree,
        key_hex: key_hex(key),
        source,
    })
}

/// A key for error messages: hex, cut at 64 bytes so a huge key cannot flood a log line.
pub(super) fn key_hex(key: &[u8]) -> String {
    const SHOWN: usize = 64;
    if key.len() <= SHOWN {
        hex::encode(key)
    } else {
        format!("{}…({} bytes)", hex::encode(&key[..SHOWN]), key.len())
    }
}
