//! Backing up: walk the sources, read new and changed files on worker threads, store their
//! chunks and the trees of their folders, then commit packs, index and snapshot.
//!
//! The walker runs on the calling thread. It lists folders depth first, takes unchanged
//! files from the files cache, and hands the rest to `threads` workers through a bounded
//! queue. Each worker cuts, hashes, compresses and packs on its own, so the work scales with
//! cores and no chunk crosses a thread. A folder's tree is stored once all its entries are
//! known; trees go into their own packs (restic's v2 layout: listing a snapshot reads only
//! small tree packs). Memory is bounded by the queue, not by the size of the tree.

mod node;
mod store;
mod stream;
mod walk;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use node::{Excludes, node_from_meta};
pub use store::{BlobStore, PackSlot};
pub use stream::StreamSource;

use super::catalog::{Catalog, CatalogError};
use super::repo::{RepoError, Repository};
use super::snapshot::{self, Snapshot};

/// Progress callbacks (a terminal bar, a job record); every method may be called from any
/// thread.
pub trait Progress: Sync {
    /// `n` more bytes were read.
    fn bytes(&self, _n: u64) {}
    /// One more entry was finished (stored or taken from the cache).
    fn entry(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// What to back up.
#[derive(Debug, Clone, Default)]
pub struct BackupRequest {
    /// Files and folders (made absolute; symlinks in the given paths are not followed).
    pub sources: Vec<PathBuf>,
    /// Exclude patterns (see [`Excludes`]).
    pub excludes: Vec<String>,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// Commands whose output is stored as files at the snapshot's root.
    pub streams: Vec<StreamSource>,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

/// A backup that did not complete. Unreadable entries are not errors: they are skipped,
/// logged and counted in the summary.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A source does not exist or cannot be read at all.
    #[error("source {path}: {source}")]
    Source {
        /// The source.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An exclude pattern does not compile.
    #[error("{0}")]
    Exclude(String),
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A command source failed (did not start, exited non-zero, timed out).
    #[error("command source {name}: {reason}")]
    Command {
        /// The source's name.
        name: String,
        /// What happened.
        reason: String,
    },
    /// Cancelled before the snapshot was written (nothing is lost: finished packs are reused).
    #[error("backup cancelled")]
    Cancelled,
}

/// A finished backup.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// The snapshot's id.
    pub id: String,
    /// The snapshot.
    pub snapshot: Snapshot,
}

/// Queue depth per worker: enough that a worker never waits for the walker.
const JOBS_PER_WORKER: usize = 16;

/// Backs up `request` into `repo` (opened exclusively), using and updating `catalog`.
pub fn run(
    repo: &mut Repository,
    catalog: &Catalog,
    request: &BackupRequest,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<BackupOutcome, BackupError> {
    let started = Instant::now();
    let mut sources = Vec::new();
    for s in &request.sources {
        let abs = std::path::absolute(s).map_err(|source| BackupError::Source {
            path: s.clone(),
            source,
        })?;
        std::fs::symlink_metadata(&abs).map_err(|source| BackupError::Source {
            path: abs.clone(),
            source,
        })?;
        sources.push(abs);
    }
    let mut always = vec![repo.root().to_path_buf()];
    if let Ok(canonical) = repo.root().canonicalize() {
        always.push(canonical);
    }
    let excludes = Excludes::new(&request.excludes, always).map_err(BackupError::Exclude)?;
    let threads = match request.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let store = BlobStore::new(repo);
    let (job_tx, job_rx) = mpsc::sync_channel(threads * JOBS_PER_WORKER);
    // Every job yields exactly one result, so results never exceed jobs queued plus jobs
    // being worked on: with this capacity a worker never blocks on sending.
    let (done_tx, done_rx) = mpsc::sync_channel(threads * JOBS_PER_WORKER + threads);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (walked, worker_results) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (store, jobs, done) = (&store, job_rx.clone(), done_tx.clone());
                scope.spawn(move || worker::run(store, jobs, done, progress, cancel))
            })
            .collect();
        drop(done_tx);
        let walked = walk::Walker::new(
            &store, catalog, &excludes, job_tx, done_rx, progress, cancel,
        )
        .and_then(|w| w.run(&sources, &request.streams));
        let results: Vec<Result<(), RepoError>> = workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(RepoError::Config {
                        path: repo.root().to_path_buf(),
                        reason: "a backup worker panicked".into(),
                    })
                })
            })
            .collect();
        (walked, results)
    });
    // Packs finished before a failure are kept: the next run (or open) indexes them.
    let added = (
        store.added.blobs.load(Ordering::Relaxed),
        store.added.raw_bytes.load(Ordering::Relaxed),
        store.added.stored_bytes.load(Ordering::Relaxed),
    );
    let finished = store.into_finished();
    let commit_packs = |repo: &mut Repository| repo.add_packs(finished);
    let walked = match (walked, worker_results.into_iter().find_map(Result::err)) {
        (Ok(w), None) => w,
        (Err(e), _) => {
            commit_packs(repo)?;
            return Err(e);
        }
        (Ok(_), Some(e)) => {
            commit_packs(repo)?;
            return Err(e.into());
        }
    };
    commit_packs(repo)?;
    if cancel.load(Ordering::Relaxed) {
        return Err(BackupError::Cancelled);
    }
    let paths = sources
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .chain(
            request
                .streams
                .iter()
                .map(|s| format!("command:{}", s.name)),
        )
        .collect();
    let mut snap = Snapshot::new(paths, request.tags.clone(), walked.root);
    let all = snapshot::list(repo)?;
    snap.parent = all
        .iter()
        .rev()
        .find(|e| e.snapshot.host == snap.host && e.snapshot.paths == snap.paths)
        .map(|e| e.id.clone());
    let mut summary = walked.summary;
    summary.blobs_added = added.0;
    summary.raw_bytes_added = added.1;
    summary.bytes_added = added.2;
    summary.duration_seconds = started.elapsed().as_secs_f64();
    snap.summary = summary;
    let id = snapshot::save(repo, &snap)?;
    let mut all = all;
    all.push(snapshot::SnapshotEntry {
        id: id.clone(),
        snapshot: snap.clone(),
    });
    catalog.sync_snapshots(&all)?;
    Ok(BackupOutcome { id, snapshot: snap })
}
