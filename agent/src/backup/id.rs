//! Blob and pack ids: 32-byte keyed BLAKE3 digests, shown as lowercase hex.
//!
//! Chunk ids are keyed with the repository's secret id key, so two repositories never share
//! ids for the same content and nobody without the key can confirm that a repository holds a
//! known file by computing its chunk ids. Pack ids are plain BLAKE3 of the whole pack file,
//! so `verify` can check a pack's integrity from its name alone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The length of every id in bytes.
pub const ID_LEN: usize = 32;

/// The id of a blob (a file chunk or a tree): keyed BLAKE3 of its plain bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobId(pub [u8; ID_LEN]);

/// The id of a pack file: BLAKE3 of the file's bytes, which is also its name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PackId(pub [u8; ID_LEN]);

/// An id that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an id (64 hex digits)")]
pub struct IdParseError {
    /// The text that was given, cut at 80 characters.
    pub text: String,
}

fn parse_hex(text: &str) -> Result<[u8; ID_LEN], IdParseError> {
    let mut out = [0u8; ID_LEN];
    hex::decode_to_slice(text, &mut out).map_err(|_| IdParseError {
        text: text.chars().take(80).collect(),
    })?;
    Ok(out)
}

macro_rules! id_impls {
    ($t:ident) => {
        impl $t {
            /// The id as 64 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex digits, as restic shows short ids.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), self.short())
            }
        }

        impl FromStr for $t {
            type Err = IdParseError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                parse_hex(text).map($t)
            }
        }
    };
}

id_impls!(BlobId);
id_impls!(PackId);

/// Computes blob ids with the repository's key.
#[derive(Clone)]
pub struct IdKey {
    key: [u8; ID_LEN],
}

impl fmt::Debug for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a secret: never printed.
        f.write_str("IdKey(..)")
    }
}

impl IdKey {
    /// A key from its 32 bytes.
    pub fn new(key: [u8; ID_LEN]) -> Self {
        IdKey { key }
    }

    /// The id of `data`.
    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.key, data).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex_and_reject_bad_text() {
        let key = IdKey::new([7; ID_LEN]);
        let id = key.blob_id(b"hello");
        assert_eq!(id.to_hex().parse::<BlobId>().unwrap(), id);
        assert_eq!(id.short().len(), 8);
        assert!("zz".parse::<BlobId>().is_err());
        assert!("ab".repeat(31).parse::<PackId>().is_err());
    }

    #[test]
    fn keyed_ids_differ_between_keys() {
        let a = IdKey::new([1; ID_LEN]).blob_id(b"same bytes");
        let b = IdKey::new([2; ID_LEN]).blob_id(b"same bytes");
        assert_ne!(a, b);
        assert_eq!(a, IdKey::new([1; ID_LEN]).blob_id(b"same bytes"));
    }
}
