//! Encryption at rest: XChaCha20-Poly1305 with a key file.
//!
//! A repository created with a key file is encrypted: every blob's stored bytes (after
//! compression) become a random 24-byte nonce, the ciphertext and a 16-byte tag, with the
//! blob's id as associated data (a blob cannot be swapped for another); snapshot files are
//! sealed the same way. Two keys are derived from the file's 32 bytes with BLAKE3's key
//! derivation: one encrypts, one computes blob ids (so ids reveal nothing to whoever lacks the
//! key file). The config keeps only a check value, so a wrong key file is refused with a clear
//! error instead of failing blob by blob. Index files and pack trailers stay plain: they hold
//! keyed ids and lengths, nothing of the content.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::id::{ID_LEN, IdKey};

/// The cipher named in a repository config.
pub const CIPHER: &str = "xchacha20-poly1305";
/// Bytes an encrypted blob takes beyond its plain stored bytes.
pub const OVERHEAD: usize = NONCE_LEN + 16;
const NONCE_LEN: usize = 24;
const SEALED_MAGIC: &[u8; 8] = b"MUSTENC1";

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error("key file {0} must hold 64 hex digits (32 bytes)")]
    Malformed(std::path::PathBuf),
}

/// The repository's secret, read from its key file.
#[derive(Clone)]
pub struct MasterKey([u8; ID_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Reads `path`, or creates it (mode 0600, 32 random bytes as hex) when `create` and it
    /// does not exist.
    pub fn load(path: &Path, create: bool) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut key = [0u8; ID_LEN];
                hex::decode_to_slice(text.trim(), &mut key)
                    .map_err(|_| KeyError::Malformed(path.to_path_buf()))?;
                Ok(MasterKey(key))
            }
            Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut key = [0u8; ID_LEN];
                getrandom::fill(&mut key).map_err(|e| io(std::io::Error::other(e.to_string())))?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                f.write_all(format!("{}\n", hex::encode(key)).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io)?;
                Ok(MasterKey(key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key of blob ids.
    pub fn id_key(&self) -> IdKey {
        IdKey::new(blake3::derive_key("muster backup 2026 blob ids", &self.0))
    }

    /// The cipher of blobs and snapshot files.
    pub fn cipher(&self) -> BlobCipher {
        let key = blake3::derive_key("muster backup 2026 encryption", &self.0);
        BlobCipher {
            aead: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// The chunker's seed (kept out of the config, so chunk boundaries, and with them file
    /// sizes, cannot be computed without the key).
    pub fn chunker_seed(&self) -> u64 {
        let k = blake3::derive_key("muster backup 2026 chunker seed", &self.0);
        let mut b = [0u8; 8];
        b.copy_from_slice(&k[..8]);
        u64::from_le_bytes(b)
    }

    /// The value the config keeps to recognise this key (not usable to derive it).
    pub fn check_value(&self, repo_id: &str) -> String {
        let key = blake3::derive_key("muster backup 2026 key check", &self.0);
        blake3::keyed_hash(&key, repo_id.as_bytes())
            .to_hex()
            .to_string()
    }
}

/// Seals and opens blobs.
#[derive(Clone)]
pub struct BlobCipher {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for BlobCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobCipher")
    }
}

impl BlobCipher {
    /// `nonce || ciphertext || tag` of `plain`, bound to `aad`.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        let sealed = self
            .aead
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| "encryption failed".to_string())?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend(sealed);
        Ok(out)
    }

    /// The plain bytes of `sealed`, if it was sealed with this key and `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < OVERHEAD {
            return Err("too short for a sealed blob".into());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
            .map_err(|_| "authentication failed (damaged, or another key)".to_string())
    }

    /// A sealed file: magic, then [`BlobCipher::seal`] bound to `what`.
    pub fn seal_file(&self, plain: &[u8], what: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = SEALED_MAGIC.to_vec();
        out.extend(self.seal(plain, what)?);
        Ok(out)
    }

    /// Opens a sealed file.
    pub fn open_file(&self, bytes: &[u8], what: &[u8]) -> Result<Vec<u8>, String> {
        let body = bytes
            .strip_prefix(SEALED_MAGIC)
            .ok_or_else(|| "not a sealed file".to_string())?;
        self.open(body, what)
    }
}

/// Whether `bytes` is a sealed file.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(SEALED_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_what_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let key = MasterKey::load(&path, true).unwrap();
        let again = MasterKey::load(&path, false).unwrap();
        assert_eq!(key.check_value("r"), again.check_value("r"));
        let c = key.cipher();
        let sealed = c.seal(b"secret", b"id").unwrap();
        assert_eq!(c.open(&sealed, b"id").unwrap(), b"secret");
        assert!(c.open(&sealed, b"other id").is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(c.open(&flipped, b"id").is_err());
        let other = MasterKey::load(&dir.path().join("key2"), true).unwrap();
        assert!(other.cipher().open(&sealed, b"id").is_err());
        assert_ne!(other.check_value("r"), key.check_value("r"));
        std::fs::write(dir.path().join("bad"), "xyz").unwrap();
        assert!(MasterKey::load(&dir.path().join("bad"), false).is_err());
        assert!(MasterKey::load(&dir.path().join("missing"), false).is_err());
        let file = c.seal_file(b"{}", b"snapshot").unwrap();
        assert!(is_sealed(&file));
        assert_eq!(c.open_file(&file, b"snapshot").unwrap(), b"{}");
    }
}
