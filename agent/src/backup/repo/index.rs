//! The blob index: which pack holds each blob, where, and how.
//!
//! Persisted as index files (`REPO/index/<blake3>`), each listing whole packs, written after
//! those packs are durable. The in-memory [`Index`] is the union of all index files, less the
//! packs that no longer exist. Every index file can be rebuilt from the packs' trailers, so
//! losing one loses nothing.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pack::{BlobKind, PackEntry};
use crate::backup::id::{BlobId, PackId};

const MAGIC: &[u8; 8] = b"MUSTIX01";
/// An index file is at most this large once decompressed (about 1.3 M blobs).
const MAX_INDEX_BYTES: usize = 64 << 20;

/// A pack as an index file lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexedPack {
    /// The pack's id (its name).
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// Its blobs.
    pub entries: Vec<PackEntry>,
}

/// Where a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLoc {
    /// The pack (position in [`Index::packs`]).
    pub pack: u32,
    /// Offset of the stored bytes in the pack.
    pub offset: u64,
    /// Stored length.
    pub stored_len: u32,
    /// Plain length.
    pub raw_len: u32,
    /// Data or tree.
    pub kind: BlobKind,
    /// Whether the stored bytes are a zstd frame.
    pub compressed: bool,
}

/// A pack known to the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackMeta {
    /// Its id.
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
}

/// The in-memory index of every blob in the repository.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<PackMeta>,
    pack_pos: HashMap<PackId, u32>,
    blobs: HashMap<BlobId, BlobLoc>,
}

impl Index {
    /// Adds a pack and its blobs. A blob already indexed keeps its first location.
    pub fn add_pack(&mut self, pack: &IndexedPack) {
        if self.pack_pos.contains_key(&pack.id) {
            return;
        }
        let pos = u32::try_from(self.packs.len()).unwrap_or(u32::MAX);
        self.packs.push(PackMeta {
            id: pack.id,
            size: pack.size,
        });
        self.pack_pos.insert(pack.id, pos);
        self.blobs.reserve(pack.entries.len());
        for e in &pack.entries {
            self.blobs.entry(e.id).or_insert(BlobLoc {
                pack: pos,
                offset: e.offset,
                stored_len: e.stored_len,
                raw_len: e.raw_len,
                kind: e.kind,
                compressed: e.compressed,
            });
        }
    }

    /// Where `id` is stored.
    pub fn get(&self, id: &BlobId) -> Option<BlobLoc> {
        self.blobs.get(id).copied()
    }

    /// Whether `id` is stored.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// The pack at position `pos`.
    pub fn pack(&self, pos: u32) -> Option<PackMeta> {
        self.packs.get(pos as usize).copied()
    }

    /// Whether the index lists pack `id`.
    pub fn has_pack(&self, id: &PackId) -> bool {
        self.pack_pos.contains_key(id)
    }

    /// Every pack.
    pub fn packs(&self) -> &[PackMeta] {
        &self.packs
    }

    /// Every blob and its location.
    pub fn blobs(&self) -> impl Iterator<Item = (&BlobId, &BlobLoc)> {
        self.blobs.iter()
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// The index as index-file packs: every pack with the blobs located in it.
    pub fn to_indexed_packs(&self) -> Vec<IndexedPack> {
        let mut out: Vec<IndexedPack> = self
            .packs
            .iter()
            .map(|p| IndexedPack {
                id: p.id,
                size: p.size,
                entries: Vec::new(),
            })
            .collect();
        for (id, loc) in &self.blobs {
            out[loc.pack as usize].entries.push(PackEntry {
                id: *id,
                kind: loc.kind,
                compressed: loc.compressed,
                offset: loc.offset,
                stored_len: loc.stored_len,
                raw_len: loc.raw_len,
            });
        }
        for p in &mut out {
            p.entries.sort_by_key(|e| e.offset);
        }
        out
    }
}

/// An index file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// File I/O.
    #[error("index file {path}: {source}")]
    Io {
        /// The index file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Not a well-formed index file.
    #[error("index file {path} is damaged: {reason}")]
    Damaged {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Encodes an index file's bytes.
pub fn encode_index(packs: &[IndexedPack]) -> Result<Vec<u8>, String> {
    let body = muster_shared::codec::encode_value(packs).map_err(|e| e.to_string())?;
    let mut out = MAGIC.to_vec();
    out.extend(zstd::bulk::compress(&body, 3).map_err(|e| e.to_string())?);
    Ok(out)
}

/// Decodes an index file's bytes.
pub fn decode_index(bytes: &[u8]) -> Result<Vec<IndexedPack>, String> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| "bad magic".to_string())?;
    let plain = zstd::bulk::decompress(body, MAX_INDEX_BYTES).map_err(|e| e.to_string())?;
    muster_shared::codec::decode_value(&plain, MAX_INDEX_BYTES).map_err(|e| e.to_string())
}

/// Reads one index file.
pub fn read_index_file(path: &Path) -> Result<Vec<IndexedPack>, IndexError> {
    let bytes = fs::read(path).map_err(|source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_index(&bytes).map_err(|reason| IndexError::Damaged {
        path: path.to_path_buf(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::id::ID_LEN;

    fn pack(n: u8, blobs: &[u8]) -> IndexedPack {
        IndexedPack {
            id: PackId([n; ID_LEN]),
            size: 100,
            entries: blobs
                .iter()
                .enumerate()
                .map(|(i, b)| PackEntry {
                    id: BlobId([*b; ID_LEN]),
                    kind: BlobKind::Data,
                    compressed: false,
                    offset: 10 + i as u64 * 20,
                    stored_len: 5,
                    raw_len: 5,
                })
                .collect(),
        }
    }

    #[test]
    fn union_keeps_first_location_and_round_trips() {
        let mut idx = Index::default();
        idx.add_pack(&pack(1, &[1, 2]));
        idx.add_pack(&pack(2, &[2, 3]));
        idx.add_pack(&pack(1, &[9])); // same pack again: ignored
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.get(&BlobId([2; ID_LEN])).unwrap().pack, 0);
        assert!(!idx.contains(&BlobId([9; ID_LEN])));
        let bytes = encode_index(&idx.to_indexed_packs()).unwrap();
        let back = decode_index(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].entries.len(), 1);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_index(b"MUSTIX01garbage").is_err());
        assert!(decode_index(b"nope").is_err());
    }
}
