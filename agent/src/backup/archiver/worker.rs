//! The archiver's file workers: read a file, cut it into chunks, store the new ones.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use super::Progress;
use super::store::{BlobStore, PackSlot};
use crate::backup::chunker::Chunker;
use crate::backup::id::BlobId;
use crate::backup::repo::RepoError;
use crate::backup::repo::pack::BlobKind;

/// A file to read.
#[derive(Debug)]
pub struct FileJob {
    /// The directory (walker's slot) holding the file's node.
    pub dir: usize,
    /// The node's position in it.
    pub node: usize,
    /// The file.
    pub path: PathBuf,
}

/// What reading a file gave.
#[derive(Debug)]
pub struct FileDone {
    /// As in the job.
    pub dir: usize,
    /// As in the job.
    pub node: usize,
    /// The chunks, or why the file could not be read (the backup goes on without it), or a
    /// repository error (the backup stops).
    pub result: Result<Vec<BlobId>, FileFailure>,
    /// Bytes read.
    pub bytes: u64,
}

/// Why a file was not stored.
#[derive(Debug)]
pub enum FileFailure {
    /// The file could not be read: skipped, counted, logged.
    Unreadable(io::Error),
    /// Writing to the repository failed: the run stops.
    Repo(RepoError),
}

impl From<io::Error> for FileFailure {
    fn from(e: io::Error) -> Self {
        FileFailure::Unreadable(e)
    }
}

/// Runs until the job channel closes, then finishes its pack.
pub fn run(
    store: &BlobStore<'_>,
    jobs: Arc<Mutex<Receiver<FileJob>>>,
    results: SyncSender<FileDone>,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<(), RepoError> {
    let repo = store.repo();
    let mut slot = PackSlot::new(repo.config().compression).map_err(|e| RepoError::Io {
        path: repo.root().to_path_buf(),
        source: e,
    })?;
    let mut chunker = Chunker::new(repo.config().chunker);
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        let Ok(job) = job else { break };
        let mut bytes = 0u64;
        let result = if cancel.load(Ordering::Relaxed) {
            Err(FileFailure::Unreadable(io::Error::new(
                io::ErrorKind::Interrupted,
                "backup cancelled",
            )))
        } else {
            read_file(store, &mut slot, &mut chunker, &job, &mut bytes, progress)
        };
        if results
            .send(FileDone {
                dir: job.dir,
                node: job.node,
                result,
                bytes,
            })
            .is_err()
        {
            break;
        }
    }
    store.finish(&mut slot)
}

fn read_file(
    store: &BlobStore<'_>,
    slot: &mut PackSlot,
    chunker: &mut Chunker,
    job: &FileJob,
    bytes: &mut u64,
    progress: &dyn Progress,
) -> Result<Vec<BlobId>, FileFailure> {
    let file = File::open(&job.path)?;
    let key = store.repo().key();
    let mut ids = Vec::new();
    chunker.chunk(file, |chunk| {
        let id = key.blob_id(chunk);
        ids.push(id);
        *bytes += chunk.len() as u64;
        progress.bytes(chunk.len() as u64);
        store
            .save(slot, BlobKind::Data, id, chunk)
            .map_err(FileFailure::Repo)
    })?;
    Ok(ids)
}
