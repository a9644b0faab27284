//! The repository's config file: format version, id, chunker parameters, id key, compression.
//!
//! Written once at `init` (JSON, so a human can read what a repository is) and never changed:
//! the chunker parameters and id key decide every chunk's id, so changing them would end
//! deduplication with existing data.

use serde::{Deserialize, Serialize};

use crate::backup::chunker::ChunkerParams;
use crate::backup::id::{ID_LEN, IdKey};

/// The repository format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Default pack size: large enough that a 1 TiB repository is ~65k files, small enough that a
/// pack is written in well under a second.
pub const DEFAULT_PACK_SIZE: u64 = 16 << 20;

/// Default zstd level (restic's `auto` and borg's `zstd` both use 3).
pub const DEFAULT_COMPRESSION: i32 = 3;

/// The contents of `REPO/config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Repository format version.
    pub version: u32,
    /// Random id, 16 hex digits: names the catalog in the cache folder.
    pub id: String,
    /// FastCDC sizes and seed.
    pub chunker: ChunkerParams,
    /// The BLAKE3 key of blob ids, 64 hex digits.
    pub id_key: String,
    /// zstd level for new blobs (1..=19).
    pub compression: i32,
    /// Target pack size in bytes.
    pub pack_size: u64,
    /// When the repository was created (RFC 3339).
    pub created: String,
    /// Encryption, when the repository was created with a key file (then `id_key` is empty:
    /// ids are keyed with a key derived from the key file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// How a repository is encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// The cipher ([`crate::backup::crypto::CIPHER`]).
    pub cipher: String,
    /// Recognises the right key file ([`crate::backup::crypto::MasterKey::check_value`]).
    pub key_check: String,
}

/// How to create a repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// zstd level.
    pub compression: i32,
    /// Target pack size in bytes.
    pub pack_size: u64,
    /// Chunk sizes (min, avg, max) in bytes; `None` for the defaults.
    pub chunk_sizes: Option<(u32, u32, u32)>,
    /// Encrypt with this key (from a key file).
    pub key: Option<crate::backup::crypto::MasterKey>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            compression: DEFAULT_COMPRESSION,
            pack_size: DEFAULT_PACK_SIZE,
            chunk_sizes: None,
            key: None,
        }
    }
}

impl RepoConfig {
    /// A new config with random id, key and chunker seed.
    pub fn generate(options: InitOptions, created: String) -> Result<Self, String> {
        let mut secret = [0u8; 8 + ID_LEN + 8];
        getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
        let (id, rest) = secret.split_at(8);
        let (key, seed) = rest.split_at(ID_LEN);
        let mut seed_bytes = [0u8; 8];
        seed_bytes.copy_from_slice(seed);
        let mut chunker = ChunkerParams::with_seed(u64::from_le_bytes(seed_bytes));
        if let Some((min, avg, max)) = options.chunk_sizes {
            chunker.min_size = min;
            chunker.avg_size = avg;
            chunker.max_size = max;
        }
        let id = hex::encode(id);
        if options.key.is_some() {
            // Derived from the key at open: not written down.
            chunker.seed = 0;
        }
        let (id_key, encryption) = match &options.key {
            Some(master) => (
                String::new(),
                Some(Encryption {
                    cipher: crate::backup::crypto::CIPHER.to_string(),
                    key_check: master.check_value(&id),
                }),
            ),
            None => (hex::encode(key), None),
        };
        let config = RepoConfig {
            version: FORMAT_VERSION,
            id,
            chunker,
            id_key,
            compression: options.compression,
            pack_size: options.pack_size,
            created,
            encryption,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != FORMAT_VERSION {
            return Err(format!(
                "repository format {} is not supported (this build reads {FORMAT_VERSION})",
                self.version
            ));
        }
        if self.id.len() != 16 || !self.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("id {:?} is not 16 hex digits", self.id));
        }
        match &self.encryption {
            Some(e) if e.cipher != crate::backup::crypto::CIPHER => {
                return Err(format!("cipher {:?} is not supported", e.cipher));
            }
            Some(_) if !self.id_key.is_empty() => {
                return Err("an encrypted repository keeps no id_key".into());
            }
            Some(_) => {}
            None => {
                self.id_key()?;
            }
        }
        self.chunker
            .validate()
            .map_err(|e| format!("chunker: {e}"))?;
        if !(1..=19).contains(&self.compression) {
            return Err(format!(
                "compression level {} is not in 1..=19",
                self.compression
            ));
        }
        if !(1 << 20..=1 << 30).contains(&self.pack_size) {
            return Err(format!(
                "pack_size {} is not in 1 MiB..=1 GiB",
                self.pack_size
            ));
        }
        Ok(())
    }

    /// The blob id key.
    pub fn id_key(&self) -> Result<IdKey, String> {
        let mut key = [0u8; ID_LEN];
        hex::decode_to_slice(&self.id_key, &mut key)
            .map_err(|_| "id_key is not 64 hex digits".to_string())?;
        Ok(IdKey::new(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_configs_validate_and_differ() {
        let a = RepoConfig::generate(InitOptions::default(), "now".into()).unwrap();
        let b = RepoConfig::generate(InitOptions::default(), "now".into()).unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.id_key, b.id_key);
        let json = serde_json::to_string(&a).unwrap();
        let back: RepoConfig = serde_json::from_str(&json).unwrap();
        back.validate().unwrap();
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = RepoConfig::generate(InitOptions::default(), "now".into()).unwrap();
        c.compression = 40;
        assert!(c.validate().unwrap_err().contains("compression"));
        let mut c = RepoConfig::generate(InitOptions::default(), "now".into()).unwrap();
        c.version = 9;
        assert!(c.validate().unwrap_err().contains("format 9"));
        let opts = InitOptions {
            chunk_sizes: Some((1, 2, 3)),
            ..InitOptions::default()
        };
        assert!(
            RepoConfig::generate(opts, "now".into())
                .unwrap_err()
                .contains("chunker")
        );
    }
}
