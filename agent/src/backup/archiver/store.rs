//! Where the archiver's threads put blobs: dedup against the index and each other, compress,
//! and append to the calling thread's own pack.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backup::compress::{BlobCompressor, Packed};
use crate::backup::id::BlobId;
use crate::backup::repo::index::IndexedPack;
use crate::backup::repo::pack::{BlobKind, PackWriter};
use crate::backup::repo::{RepoError, Repository};
use crate::backup::tree::{self, Node};

/// Blobs added during one run.
#[derive(Debug, Default)]
pub struct AddedStats {
    /// New blobs.
    pub blobs: AtomicU64,
    /// Their plain bytes.
    pub raw_bytes: AtomicU64,
    /// Their stored bytes.
    pub stored_bytes: AtomicU64,
}

/// One thread's open pack and compressor.
#[derive(Debug)]
pub struct PackSlot {
    writer: Option<PackWriter>,
    compressor: BlobCompressor,
}

impl PackSlot {
    /// A slot compressing at `level`.
    pub fn new(level: i32) -> std::io::Result<Self> {
        Ok(PackSlot {
            writer: None,
            compressor: BlobCompressor::new(level)?,
        })
    }
}

/// Shared by the archiver's threads for one run.
#[derive(Debug)]
pub struct BlobStore<'r> {
    repo: &'r Repository,
    pending: Mutex<HashSet<BlobId>>,
    finished: Mutex<Vec<IndexedPack>>,
    /// What was added.
    pub added: AddedStats,
}

impl<'r> BlobStore<'r> {
    /// A store for a run against `repo`.
    pub fn new(repo: &'r Repository) -> Self {
        BlobStore {
            repo,
            pending: Mutex::new(HashSet::new()),
            finished: Mutex::new(Vec::new()),
            added: AddedStats::default(),
        }
    }

    /// The repository.
    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    /// Stores `raw` as blob `id` unless the repository or this run already has it.
    pub fn save(
        &self,
        slot: &mut PackSlot,
        kind: BlobKind,
        id: BlobId,
        raw: &[u8],
    ) -> Result<(), RepoError> {
        if self.repo.index().contains(&id) {
            return Ok(());
        }
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if !pending.insert(id) {
                return Ok(());
            }
        }
        let raw_len = u32::try_from(raw.len()).unwrap_or(u32::MAX);
        let writer = match &mut slot.writer {
            Some(w) => w,
            None => slot.writer.insert(self.repo.new_pack()?),
        };
        let packed = slot.compressor.pack(raw).map_err(|e| RepoError::Io {
            path: self.repo.root().join("tmp"),
            source: e,
        })?;
        let (stored, compressed) = match packed {
            Packed::Compressed(frame) => (frame, true),
            Packed::Raw => (raw, false),
        };
        let entry = match self.repo.cipher() {
            Some(cipher) => {
                // Sealed with the id as associated data: a blob cannot stand in for another.
                let sealed = cipher
                    .seal(stored, &id.0)
                    .map_err(|reason| RepoError::Config {
                        path: self.repo.root().to_path_buf(),
                        reason,
                    })?;
                writer.add(id, kind, raw_len, &sealed, compressed)?
            }
            None => writer.add(id, kind, raw_len, stored, compressed)?,
        };
        self.added.blobs.fetch_add(1, Ordering::Relaxed);
        self.added
            .raw_bytes
            .fetch_add(u64::from(raw_len), Ordering::Relaxed);
        self.added
            .stored_bytes
            .fetch_add(u64::from(entry.stored_len), Ordering::Relaxed);
        if writer.len() >= self.repo.config().pack_size {
            self.finish(slot)?;
        }
        Ok(())
    }

    /// A file's chunk list as a node holds it: inline when short, else stored as list blobs
    /// (returned second).
    pub fn content_form(
        &self,
        slot: &mut PackSlot,
        ids: Vec<BlobId>,
    ) -> Result<(Vec<BlobId>, Vec<BlobId>), RepoError> {
        if ids.len() <= tree::INLINE_IDS {
            return Ok((ids, Vec::new()));
        }
        let mut lists = Vec::with_capacity(ids.len().div_ceil(tree::LIST_IDS));
        for part in ids.chunks(tree::LIST_IDS) {
            let bytes = tree::encode_list(part);
            let id = self.repo.key().blob_id(&bytes);
            self.save(slot, BlobKind::Tree, id, &bytes)?;
            lists.push(id);
        }
        Ok((Vec::new(), lists))
    }

    /// Stores a folder's nodes (sorted by name) as tree blobs; returns their ids.
    pub fn save_tree(
        &self,
        slot: &mut PackSlot,
        nodes: Vec<Node>,
    ) -> Result<Vec<BlobId>, RepoError> {
        let mut ids = Vec::new();
        for bytes in tree::split_nodes(nodes) {
            let id = self.repo.key().blob_id(&bytes);
            self.save(slot, BlobKind::Tree, id, &bytes)?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Cuts `source` into chunks and stores the new ones (a stream read on the calling thread:
    /// a command's output, a tar entry). Returns the chunk ids and the bytes read.
    pub fn save_stream(
        &self,
        slot: &mut PackSlot,
        chunker: &mut crate::backup::chunker::Chunker,
        source: impl std::io::Read,
        progress: &dyn super::Progress,
    ) -> std::io::Result<(Vec<BlobId>, u64)> {
        let mut ids = Vec::new();
        let mut size = 0u64;
        chunker.chunk(source, |chunk| {
            let id = self.repo.key().blob_id(chunk);
            ids.push(id);
            size += chunk.len() as u64;
            progress.bytes(chunk.len() as u64);
            self.save(slot, BlobKind::Data, id, chunk)
                .map_err(|e| std::io::Error::other(e.to_string()))
        })?;
        Ok((ids, size))
    }

    /// Finishes the slot's open pack, if any.
    pub fn finish(&self, slot: &mut PackSlot) -> Result<(), RepoError> {
        if let Some(writer) = slot.writer.take() {
            if writer.is_empty() {
                writer.abandon();
                return Ok(());
            }
            let (id, size, entries) = writer.finish(|id| self.repo.pack_path(id))?;
            self.finished
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(IndexedPack { id, size, entries });
        }
        Ok(())
    }

    /// The packs finished in this run, for [`Repository::add_packs`].
    pub fn into_finished(self) -> Vec<IndexedPack> {
        self.finished
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
    }
}
