//! Snapshots: one small JSON file each in `REPO/snapshots/`, named by its BLAKE3.
//!
//! A snapshot names its root tree and says when, where and what was backed up, with the
//! run's statistics. The root tree mirrors the absolute paths of the sources (as restic
//! does): restoring to `/` puts every file back where it was.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::crypto::BlobCipher;
use super::id::BlobId;
use super::repo::{RepoError, Repository, io_at, list_names};

/// The snapshot format this build writes.
const SNAPSHOT_VERSION: u32 = 1;
/// A snapshot file is at most this large (a JSON of names and figures).
const MAX_SNAPSHOT_BYTES: u64 = 1 << 20;

/// What a backup run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotSummary {
    /// Files seen.
    pub files: u64,
    /// Directories seen.
    pub dirs: u64,
    /// Files read because they were new or changed.
    pub files_read: u64,
    /// Files taken from the files cache without reading.
    pub files_unchanged: u64,
    /// Bytes of all files in the snapshot.
    pub total_bytes: u64,
    /// Bytes read from files.
    pub bytes_read: u64,
    /// Blobs new to the repository.
    pub blobs_added: u64,
    /// Plain bytes of those blobs.
    pub raw_bytes_added: u64,
    /// Bytes those blobs take in packs (after compression).
    pub bytes_added: u64,
    /// Entries that could not be read (named in the log), skipped.
    pub errors: u64,
    /// Run time in seconds.
    pub duration_seconds: f64,
}

/// A snapshot file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    /// When the backup started (RFC 3339 with the host's offset).
    pub time: chrono::DateTime<chrono::FixedOffset>,
    /// The host it was taken on.
    pub host: String,
    /// The sources as given (absolute paths; `stdin:NAME` for a command's output).
    pub paths: Vec<String>,
    /// Tags (the backup set's name among them).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The root tree.
    pub tree: BlobId,
    /// The snapshot whose files cache state this one started from, if any.
    #[serde(default)]
    pub parent: Option<String>,
    /// The program that wrote it.
    pub program: String,
    /// What the run did.
    #[serde(default)]
    pub summary: SnapshotSummary,
}

impl Snapshot {
    /// A snapshot of `paths` taken now on this host.
    pub fn new(paths: Vec<String>, tags: Vec<String>, tree: BlobId) -> Self {
        Snapshot {
            version: SNAPSHOT_VERSION,
            time: chrono::Local::now().fixed_offset(),
            host: super::hostname(),
            paths,
            tags,
            tree,
            parent: None,
            program: format!("muster-agent {}", env!("CARGO_PKG_VERSION")),
            summary: SnapshotSummary::default(),
        }
    }
}

/// A snapshot and its id.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotEntry {
    /// 64 hex digits.
    pub id: String,
    /// The snapshot.
    pub snapshot: Snapshot,
}

impl SnapshotEntry {
    /// What the retention rules look at.
    pub fn retention_meta(&self) -> super::retention::SnapshotMeta {
        super::retention::SnapshotMeta {
            id: self.id.clone(),
            time: self.snapshot.time,
            host: self.snapshot.host.clone(),
            paths: self.snapshot.paths.clone(),
            tags: self.snapshot.tags.clone(),
        }
    }
}

fn dir(repo: &Repository) -> PathBuf {
    repo.root().join("snapshots")
}

/// Writes a snapshot file (the commit point of a backup) and returns its id.
pub fn save(repo: &Repository, snapshot: &Snapshot) -> Result<String, RepoError> {
    let json = serde_json::to_vec_pretty(snapshot).map_err(|e| RepoError::Config {
        path: dir(repo),
        reason: e.to_string(),
    })?;
    let bytes = match repo.cipher() {
        Some(c) => c
            .seal_file(&json, SEALED_AS)
            .map_err(|reason| RepoError::Config {
                path: dir(repo),
                reason,
            })?,
        None => json,
    };
    let id = blake3::hash(&bytes).to_hex().to_string();
    repo.write_file_atomic(&dir(repo).join(&id), &bytes)?;
    Ok(id)
}

/// Associated data of sealed snapshot files.
const SEALED_AS: &[u8] = b"snapshot";

/// Reads one snapshot file.
pub fn load(repo: &Repository, id: &str) -> Result<Snapshot, RepoError> {
    read_file(&dir(repo).join(id), repo.cipher())
}

fn read_file(path: &Path, cipher: Option<&BlobCipher>) -> Result<Snapshot, RepoError> {
    let meta = fs::metadata(path).map_err(io_at(path))?;
    if meta.len() > MAX_SNAPSHOT_BYTES {
        return Err(RepoError::Config {
            path: path.to_path_buf(),
            reason: format!("snapshot file of {} bytes is too large", meta.len()),
        });
    }
    let bytes = fs::read(path).map_err(io_at(path))?;
    let bytes = match (cipher, crate::backup::crypto::is_sealed(&bytes)) {
        (Some(c), true) => c
            .open_file(&bytes, SEALED_AS)
            .map_err(|reason| RepoError::Config {
                path: path.to_path_buf(),
                reason: format!("sealed snapshot: {reason}"),
            })?,
        (None, true) => {
            return Err(RepoError::KeyRequired {
                path: path.to_path_buf(),
            });
        }
        (_, false) => bytes,
    };
    serde_json::from_slice(&bytes).map_err(|e| RepoError::Config {
        path: path.to_path_buf(),
        reason: format!("not a snapshot: {e}"),
    })
}

/// Every snapshot, oldest first. A damaged snapshot file is an error naming it.
pub fn list(repo: &Repository) -> Result<Vec<SnapshotEntry>, RepoError> {
    list_in(repo.root(), repo.cipher())
}

/// Every snapshot of the repository at `root`, without its lock: snapshot files appear and
/// disappear whole (rename, unlink), so a listing is always of complete snapshots.
pub fn list_in(root: &Path, cipher: Option<&BlobCipher>) -> Result<Vec<SnapshotEntry>, RepoError> {
    let dir = root.join("snapshots");
    let mut out = Vec::new();
    for name in list_names(&dir)? {
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let snapshot = match read_file(&dir.join(&name), cipher) {
            Ok(s) => s,
            // Forgotten between the listing and the read.
            Err(RepoError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                continue;
            }
            Err(e) => return Err(e),
        };
        out.push(SnapshotEntry { id: name, snapshot });
    }
    out.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Removes a snapshot file (forget). Its data stays until prune.
pub fn remove(repo: &Repository, id: &str) -> Result<(), RepoError> {
    let path = dir(repo).join(id);
    fs::remove_file(&path).map_err(io_at(&path))?;
    super::repo::sync_dir(&dir(repo))
}

/// Why a snapshot reference did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Nothing matched.
    #[error("no snapshot matches {0:?}")]
    NotFound(String),
    /// A prefix matched several.
    #[error("{0:?} matches {1} snapshots; give more digits")]
    Ambiguous(String, usize),
    /// Listing failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Finds the snapshot named by `reference`: `latest`, a full id, or a prefix of at least 4
/// hex digits.
pub fn resolve(repo: &Repository, reference: &str) -> Result<SnapshotEntry, ResolveError> {
    let all = list(repo)?;
    if reference == "latest" {
        return all
            .into_iter()
            .last()
            .ok_or_else(|| ResolveError::NotFound(reference.to_string()));
    }
    if reference.len() < 4 || !reference.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ResolveError::NotFound(reference.to_string()));
    }
    let reference_lc = reference.to_ascii_lowercase();
    let mut hits: Vec<SnapshotEntry> = all
        .into_iter()
        .filter(|e| e.id.starts_with(&reference_lc))
        .collect();
    match hits.len() {
        0 => Err(ResolveError::NotFound(reference.to_string())),
        1 => Ok(hits.remove(0)),
        n => Err(ResolveError::Ambiguous(reference.to_string(), n)),
    }
}
