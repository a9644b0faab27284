//! Certificate fingerprints: the SHA-256 of a certificate's DER.
//!
//! An enrollment token carries the fleet CA's fingerprint; the agent pins it before it has the
//! CA certificate (see [`super::pinned_client_config`]). Equality is constant-time because it is
//! a security check on data a peer controls.

use std::fmt;
use std::str::FromStr;

use super::TlsError;

/// The SHA-256 digest of a certificate's DER encoding.
///
/// Displays as 64 lowercase hex digits; parses from hex with or without `:` between byte pairs,
/// in any case. `==` runs in constant time.
#[derive(Clone, Copy)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate, given its DER bytes.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `der` is the certificate with this fingerprint (constant-time comparison).
    pub fn matches_der(&self, der: &[u8]) -> bool {
        *self == Fingerprint::of_der(der)
    }

    /// Parses 64 hex digits, or 32 colon-separated pairs, in any case. Surrounding whitespace is
    /// ignored (tokens get pasted).
    ///
    /// # Errors
    /// [`TlsError::FingerprintFormat`] naming the value and what is wrong with it.
    ///
    /// ```
    /// use muster_shared::tls::Fingerprint;
    /// let fp = Fingerprint::of_der(b"not really a certificate");
    /// let with_colons = fp.to_string().as_bytes().chunks(2)
    ///     .map(|pair| std::str::from_utf8(pair).unwrap())
    ///     .collect::<Vec<_>>().join(":").to_uppercase();
    /// assert_eq!(Fingerprint::parse(&with_colons).unwrap(), fp);
    /// ```
    pub fn parse(value: &str) -> Result<Fingerprint, TlsError> {
        let err = |reason| TlsError::FingerprintFormat {
            value: super::truncate_for_error(value),
            reason,
        };
        let trimmed = value.trim();
        let hex_digits: String = if trimmed.contains(':') {
            let pairs: Vec<&str> = trimmed.split(':').collect();
            if pairs.len() != 32 || pairs.iter().any(|pair| pair.len() != 2) {
                return Err(err("colon-separated form must be 32 pairs of 2 hex digits"));
            }
            pairs.concat()
        } else {
            trimmed.to_owned()
        };
        if hex_digits.len() != 64 {
            return Err(err("wrong length"));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&hex_digits, &mut bytes).map_err(|_| err("not hexadecimal"))?;
        Ok(Fingerprint(bytes))
    }
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        // OR together the XOR of every byte pair so the time taken doesn't depend on where the
        // first difference is. `black_box` keeps the optimiser from adding an early exit.
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl Eq for Fingerprint {}

impl std::hash::Hash for Fingerprint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fingerprint::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn with_colons(hex: &str) -> String {
        hex.as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap())
            .collect::<Vec<_>>()
            .join(":")
    }

    #[test]
    fn of_der_is_sha256_in_lowercase_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            Fingerprint::of_der(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Fingerprint::of_der(b"abc").matches_der(b"abc"));
        assert!(!Fingerprint::of_der(b"abc").matches_der(b"abd"));
    }

    #[test]
    fn rejects_malformed_fingerprints_with_the_reason() {
        let good = Fingerprint::of_der(b"x").to_string();
        let cases = [
            (String::new(), "wrong length"),
            (good[..62].to_owned(), "wrong length"),
            (format!("{good}00"), "wrong length"),
            (format!("{}zz", &good[..62]), "not hexadecimal"),
            (with_colons(&good)[1..].to_owned(), "32 pairs"),
            (format!("{}:", with_colons(&good)), "32 pairs"),
            (good.replacen("", ":", 1), "32 pairs"),
            ("sha256:abc".to_owned(), "32 pairs"),
        ];
        for (input, reason) in cases {
            let err = Fingerprint::parse(&input).unwrap_err();
            assert!(
                matches!(err, TlsError::FingerprintFormat { .. }),
                "{input:?}"
            );
            assert!(err.to_string().contains(reason), "{input:?}: {err}");
        }
    }

    #[test]
    fn differing_fingerprints_are_unequal() {
        let a = Fingerprint::of_der(b"a");
        let mut flipped = *a.as_bytes();
        flipped[31] ^= 1;
        assert_ne!(a, Fingerprint(flipped));
        assert_eq!(a, Fingerprint(*a.as_bytes()));
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(bytes in any::<[u8; 32]>(), upper in any::<bool>(), colons in any::<bool>(), pad in any::<bool>()) {
            let fp = Fingerprint(bytes);
            let text = fp.to_string();
            prop_assert_eq!(text.len(), 64);
            prop_assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            let mut variant = if colons { with_colons(&text) } else { text };
            if upper {
                variant = variant.to_uppercase();
            }
            if pad {
                variant = format!(" {variant}\n");
            }
            prop_assert_eq!(variant.parse::<Fingerprint>().unwrap(), fp);
        }
    }
}
