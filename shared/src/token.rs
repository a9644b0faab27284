//! Bearer tokens: API tokens and one-time enrollment tokens.
//!
//! Owns the text formats both sides must agree on, their generation from the
//! OS's random source, and the hash a collector stores instead of the token.
//!
//! - API token: `mst_` + 64 hex digits (256 random bits).
//! - Enrollment token: `mse_<ca sha256, 64 hex>_<secret, 64 hex>`. The agent
//!   reads the CA fingerprint out of it to pin the collector before sending
//!   anything; the collector looks it up by the hash of the secret.
//!
//! Tokens are 256 random bits, so a single SHA-256 is a sufficient stored
//! form: there is nothing to brute-force, unlike a password.
//!
//! Leaves out: roles, expiry and use counts (the collector's token store).

use std::fmt;

use crate::tls::Fingerprint;

const API_PREFIX: &str = "mst_";
const ENROLL_PREFIX: &str = "mse_";
const SECRET_BYTES: usize = 32;

/// Why a token could not be made or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The OS random source failed.
    #[error("cannot read the system's random source: {0}")]
    Random(String),
    /// The text is not a token of the expected kind; the reason says which
    /// part is wrong (the token itself is never echoed).
    #[error("malformed {kind} token: {reason}")]
    Malformed {
        /// `API` or `enrollment`.
        kind: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The SHA-256 of a token's secret, as stored by the collector (hex).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a secret.
    pub fn of(secret: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// A short, non-secret id for logs and listings (first 12 hex digits).
    pub fn short_id(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", self.short_id())
    }
}

fn random_secret() -> Result<String, TokenError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

fn check_hex(text: &str, kind: &'static str, what: &'static str) -> Result<(), TokenError> {
    if text.len() != SECRET_BYTES * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TokenError::Malformed { kind, reason: what });
    }
    Ok(())
}

/// An API bearer token. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// A fresh random token.
    ///
    /// # Errors
    /// [`TokenError::Random`] when the OS has no randomness to give.
    pub fn generate() -> Result<Self, TokenError> {
        Ok(Self(format!("{API_PREFIX}{}", random_secret()?)))
    }

    /// Reads a token as sent in `Authorization: Bearer ...`.
    ///
    /// # Errors
    /// [`TokenError::Malformed`] naming the part that is wrong.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let secret = text
            .trim()
            .strip_prefix(API_PREFIX)
            .ok_or(TokenError::Malformed {
                kind: "API",
                reason: "it does not start with mst_",
            })?;
        check_hex(secret, "API", "expected 64 hex digits after mst_")?;
        Ok(Self(text.trim().to_ascii_lowercase()))
    }

    /// The token text, to print once or send.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the collector stores.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// A one-time enrollment token carrying the fleet CA's fingerprint.
/// `Debug` redacts the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollToken {
    ca: Fingerprint,
    secret: String,
}

impl EnrollToken {
    /// A fresh token for the CA with fingerprint `ca`.
    ///
    /// # Errors
    /// [`TokenError::Random`] when the OS has no randomness to give.
    pub fn generate(ca: Fingerprint) -> Result<Self, TokenError> {
        Ok(Self {
            ca,
            secret: random_secret()?,
        })
    }

    /// Reads a token given to `muster-agent enroll --token`.
    ///
    /// ```
    /// use muster_shared::token::EnrollToken;
    /// let text = format!("mse_{}_{}", "ab".repeat(32), "cd".repeat(32));
    /// let token = EnrollToken::parse(&text).unwrap();
    /// assert_eq!(token.ca_fingerprint().to_string(), "ab".repeat(32));
    /// assert!(EnrollToken::parse("mse_nope").is_err());
    /// ```
    ///
    /// # Errors
    /// [`TokenError::Malformed`] naming the part that is wrong.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        const KIND: &str = "enrollment";
        let text = text.trim();
        let rest = text
            .strip_prefix(ENROLL_PREFIX)
            .ok_or(TokenError::Malformed {
                kind: KIND,
                reason: "it does not start with mse_",
            })?;
        let (ca, secret) = rest.split_once('_').ok_or(TokenError::Malformed {
            kind: KIND,
            reason: "expected mse_<ca fingerprint>_<secret>",
        })?;
        check_hex(ca, KIND, "the CA fingerprint is not 64 hex digits")?;
        check_hex(secret, KIND, "the secret is not 64 hex digits")?;
        let ca = ca
            .parse::<Fingerprint>()
            .map_err(|_| TokenError::Malformed {
                kind: KIND,
                reason: "the CA fingerprint is not 64 hex digits",
            })?;
        Ok(Self {
            ca,
            secret: secret.to_ascii_lowercase(),
        })
    }

    /// The fingerprint of the CA the collector's certificate must chain to.
    pub fn ca_fingerprint(&self) -> Fingerprint {
        self.ca
    }

    /// What the collector stores: the hash of the secret part.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.secret)
    }

    /// The token text, to print once or send.
    pub fn expose(&self) -> String {
        format!("{ENROLL_PREFIX}{}_{}", self.ca, self.secret)
    }
}

impl fmt::Debug for EnrollToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnrollToken(ca={}, secret=<redacted>)", self.ca)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_tokens_round_trip_and_hash_stably() {
        let token = ApiToken::generate().unwrap();
        assert!(token.expose().starts_with("mst_"));
        assert_eq!(token.expose().len(), 4 + 64);
        let parsed = ApiToken::parse(token.expose()).unwrap();
        assert_eq!(parsed.hash(), token.hash());
        assert_ne!(ApiToken::generate().unwrap().hash(), token.hash());
        assert!(!format!("{token:?}").contains(&token.expose()[4..]));
    }

    #[test]
    fn malformed_api_tokens_are_refused() {
        for bad in [
            "",
            "mst_",
            "mst_xyz",
            "abc",
            &format!("mst_{}", "g".repeat(64)),
        ] {
            assert!(
                matches!(ApiToken::parse(bad), Err(TokenError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn enroll_tokens_carry_the_ca_fingerprint() {
        let ca: Fingerprint = "12".repeat(32).parse().unwrap();
        let token = EnrollToken::generate(ca).unwrap();
        let parsed = EnrollToken::parse(&token.expose()).unwrap();
        assert_eq!(parsed.ca_fingerprint(), ca);
        assert_eq!(parsed.hash(), token.hash());
        assert!(!format!("{token:?}").contains(&token.secret));
    }

    #[test]
    fn malformed_enroll_tokens_name_the_bad_part() {
        let err = EnrollToken::parse(&format!("mse_{}_{}", "zz".repeat(32), "00".repeat(32)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed enrollment token: the CA fingerprint is not 64 hex digits"
        );
        let err = EnrollToken::parse(&format!("mse_{}_short", "00".repeat(32))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed enrollment token: the secret is not 64 hex digits"
        );
        assert!(EnrollToken::parse("mst_00").is_err());
    }
}
