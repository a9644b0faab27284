//! The catalog: a local sled store beside (not inside) a repository, holding the files cache
//! and a summary of every snapshot with its statistics.
//!
//! Everything here can be rebuilt: the snapshot summaries from the snapshot files, and the
//! files cache simply refills (the next backup reads every file once). It lives in a cache
//! folder keyed by the repository's id, like restic's and borg's caches, so a repository on a
//! removable disk or a NAS is not written to for bookkeeping.

use std::path::{Path, PathBuf};

use muster_shared::store::{Record, Store, StoreError, StoreOptions, Tree, TreeBatch};
use serde::{Deserialize, Serialize};

use super::id::BlobId;
use super::snapshot::{SnapshotEntry, SnapshotSummary};

/// What the files cache remembers of a file read in an earlier backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedFile {
    /// Size when read.
    pub size: u64,
    /// Modification time when read (ns).
    pub mtime_ns: i64,
    /// Status change time when read (ns).
    pub ctime_ns: i64,
    /// Its chunks (inline form) ...
    pub content: Vec<BlobId>,
    /// ... or its list blobs.
    pub content_lists: Vec<BlobId>,
}

impl Record for CachedFile {
    const SCHEMA: u8 = 1;
}

/// A snapshot as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// RFC 3339.
    pub time: String,
    /// Host.
    pub host: String,
    /// Sources.
    pub paths: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Statistics.
    pub summary: SnapshotSummary,
}

impl Record for SnapshotRecord {
    const SCHEMA: u8 = 1;
}

/// The files cache key: device and inode, big-endian.
pub fn file_key(device: u64, inode: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&device.to_be_bytes());
    k.extend_from_slice(&inode.to_be_bytes());
    k
}

/// An open catalog.
#[derive(Debug)]
pub struct Catalog {
    store: Store,
    files: Tree<Vec<u8>, CachedFile>,
    snapshots: Tree<String, SnapshotRecord>,
}

/// The catalog could not be used.
#[derive(Debug, thiserror::Error)]
#[error("backup catalog {path}: {source}")]
pub struct CatalogError {
    /// The catalog's folder.
    pub path: PathBuf,
    /// The store's error.
    #[source]
    pub source: StoreError,
}

impl Catalog {
    /// Opens (creating) the catalog of repository `repo_id` under `cache_dir`.
    pub fn open(cache_dir: &Path, repo_id: &str) -> Result<Self, CatalogError> {
        let path = cache_dir.join(repo_id).join("catalog");
        let err = |source| CatalogError {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                err(StoreError::Open {
                    path: parent.to_path_buf(),
                    source: Box::new(e),
                })
            })?;
        }
        // The files cache of a large tree is read once per backup: a small cache suffices.
        let store = Store::open(
            &path,
            StoreOptions {
                cache_bytes: 4 << 20,
            },
        )
        .map_err(err)?;
        let files = store.tree("files").map_err(err)?;
        let snapshots = store.tree("snapshots").map_err(err)?;
        Ok(Catalog {
            store,
            files,
            snapshots,
        })
    }

    fn err(&self, source: StoreError) -> CatalogError {
        CatalogError {
            path: self.store.path().to_path_buf(),
            source,
        }
    }

    /// The cached state of a file, if any.
    pub fn cached_file(&self, device: u64, inode: u64) -> Result<Option<CachedFile>, CatalogError> {
        self.files
            .get(&file_key(device, inode))
            .map_err(|e| self.err(e))
    }

    /// A batch of files cache updates.
    pub fn files_batch(&self) -> TreeBatch<Vec<u8>, CachedFile> {
        self.files.batch()
    }

    /// Applies a files cache batch.
    pub fn apply_files(&self, batch: TreeBatch<Vec<u8>, CachedFile>) -> Result<(), CatalogError> {
        self.files.apply(batch).map_err(|e| self.err(e))
    }

    /// Makes the snapshot list match the repository's snapshot files (adds new ones, drops
    /// forgotten ones) and flushes.
    pub fn sync_snapshots(&self, all: &[SnapshotEntry]) -> Result<(), CatalogError> {
        let mut batch = self.snapshots.batch();
        let known: std::collections::HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
        for item in self.snapshots.iter() {
            let (id, _) = item.map_err(|e| self.err(e))?;
            if !known.contains(id.as_str()) {
                batch.remove(&id);
            }
        }
        for e in all {
            let s = &e.snapshot;
            let rec = SnapshotRecord {
                time: s.time.to_rfc3339(),
                host: s.host.clone(),
                paths: s.paths.clone(),
                tags: s.tags.clone(),
                summary: s.summary.clone(),
            };
            batch.insert(&e.id, &rec).map_err(|e| self.err(e))?;
        }
        self.snapshots.apply(batch).map_err(|e| self.err(e))?;
        self.flush()
    }

    /// Snapshot summaries, by id.
    pub fn snapshots(&self) -> Result<Vec<(String, SnapshotRecord)>, CatalogError> {
        self.snapshots
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }

    /// Makes everything written durable.
    pub fn flush(&self) -> Result<(), CatalogError> {
        self.store.flush().map(|_| ()).map_err(|e| self.err(e))
    }
}
