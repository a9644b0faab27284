//! How typed keys become sled keys, and back.

/// A key type of a [`super::Tree`]: an encoding to bytes whose byte order is the order
/// iteration, [`super::Tree::range`] and [`super::Tree::first`]/[`super::Tree::last`] follow.
///
/// `from_key(&k.to_key())` must give back `k`. Implemented for `String` (UTF-8 bytes, so
/// byte-wise order), `u64` (big endian, so numeric order), `Vec<u8>` and `[u8; 32]` (as is).
pub trait Key: Sized {
    /// The key's bytes as stored.
    fn to_key(&self) -> Vec<u8>;
    /// Reads a key back from stored bytes.
    ///
    /// # Errors
    /// A [`KeyError`] when the bytes are not a valid encoding (wrong length, not UTF-8);
    /// the tree wraps it with its name and the key's bytes.
    fn from_key(bytes: &[u8]) -> Result<Self, KeyError>;
}

/// Stored key bytes that are not a valid encoding of the tree's key type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A fixed-size key has the wrong length.
    #[error("key is {found} bytes, expected {expected}")]
    Length {
        /// The length the key type needs.
        expected: usize,
        /// The stored length.
        found: usize,
    },
    /// A string key is not UTF-8.
    #[error("key is not UTF-8")]
    NotUtf8,
    /// Any other reason, for key types defined elsewhere.
    #[error("invalid key: {reason}")]
    Invalid {
        /// What is wrong, for the error message.
        reason: &'static str,
    },
}

impl Key for String {
    fn to_key(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_key(bytes: &[u8]) -> Result<Self, KeyError> {
        String::from_utf8(bytes.to_vec()).map_err(|_| KeyError::NotUtf8)
    }
}

impl Key for u64 {
    /// Big endian, so that byte order is numeric order (a sequence number's `range` and
    /// `last` work as expected).
    fn to_key(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }

    fn from_key(bytes: &[u8]) -> Result<Self, KeyError> {
        let bytes: [u8; 8] = bytes.try_into().map_err(|_| KeyError::Length {
            expected: 8,
            found: bytes.len(),
        })?;
        Ok(u64::from_be_bytes(bytes))
    }
}

impl Key for Vec<u8> {
    fn to_key(&self) -> Vec<u8> {
        self.clone()
    }

    fn from_key(bytes: &[u8]) -> Result<Self, KeyError> {
        Ok(bytes.to_vec())
    }
}

impl Key for [u8; 32] {
    fn to_key(&self) -> Vec<u8> {
        self.to_vec()
    }

    fn from_key(bytes: &[u8]) -> Result<Self, KeyError> {
        bytes.try_into().map_err(|_| KeyError::Length {
            expected: 32,
            found: bytes.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn u64_byte_order_is_numeric_order(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(a.cmp(&b), a.to_key().cmp(&b.to_key()));
            prop_assert_eq!(u64::from_key(&a.to_key()).unwrap(), a);
        }

        #[test]
        fn string_and_bytes_round_trip(s in ".*", v in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(String::from_key(&s.to_key()).unwrap(), s);
            prop_assert_eq!(Vec::<u8>::from_key(&v.to_key()).unwrap(), v);
        }
    }

    #[test]
    fn wrong_lengths_and_bad_utf8_are_errors() {
        assert_eq!(
            u64::from_key(&[1, 2, 3]),
            Err(KeyError::Length {
                expected: 8,
                found: 3
            })
        );
        assert_eq!(
            <[u8; 32]>::from_key(&[0; 31]),
            Err(KeyError::Length {
                expected: 32,
                found: 31
            })
        );
        assert_eq!(<[u8; 32]>::from_key(&[7; 32]), Ok([7; 32]));
        assert_eq!(String::from_key(&[0xff, 0xfe]), Err(KeyError::NotUtf8));
    }
}
