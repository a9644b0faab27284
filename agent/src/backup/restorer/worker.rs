//! The restore workers: write a file's chunks, leaving holes for all-zero chunks.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use super::{FileJob, RestoreSummary, entry};
use crate::backup::archiver::Progress;
use crate::backup::id::BlobId;
use crate::backup::repo::{BlobReader, RepoError, Repository};
use crate::backup::tree;

/// Writes files until the queue closes.
pub fn run(
    repo: &Repository,
    jobs: Arc<Mutex<Receiver<FileJob>>>,
    summary: &Mutex<RestoreSummary>,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) {
    let mut reader = repo.blob_reader();
    let mut buf = Vec::new();
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        let Ok(job) = job else { break };
        if cancel.load(Ordering::Relaxed) {
            continue;
        }
        let result = write_file(&mut reader, &job, &mut buf, progress);
        let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(bytes) => {
                s.files += 1;
                s.bytes += bytes;
            }
            Err(e) => {
                tracing::warn!(path = %job.path.display(), error = %e, "cannot restore file; skipped");
                s.errors += 1;
            }
        }
        drop(s);
        progress.entry();
    }
}

/// Why a file was not restored.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Tree(#[from] tree::TreeError),
}

/// Where a file being written stands.
#[derive(Debug, Default)]
struct Cursor {
    pos: u64,
    written: u64,
    hole: bool,
}

impl Cursor {
    fn chunk(
        &mut self,
        reader: &mut BlobReader<'_>,
        file: &mut File,
        id: &BlobId,
        buf: &mut Vec<u8>,
        progress: &dyn Progress,
    ) -> Result<(), WriteError> {
        reader.read(id, buf)?;
        if buf.iter().all(|&b| b == 0) {
            // Sparse: skip over zeros; the final set_len makes the hole.
            file.seek(SeekFrom::Current(buf.len() as i64))?;
            self.hole = true;
        } else {
            file.write_all(buf)?;
            self.written += buf.len() as u64;
        }
        self.pos += buf.len() as u64;
        progress.bytes(buf.len() as u64);
        Ok(())
    }
}

fn write_file(
    reader: &mut BlobReader<'_>,
    job: &FileJob,
    buf: &mut Vec<u8>,
    progress: &dyn Progress,
) -> Result<u64, WriteError> {
    entry::clear_spot(&job.path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&job.path)?;
    let node = &job.node;
    let mut cursor = Cursor::default();
    for id in &node.content {
        cursor.chunk(reader, &mut file, id, buf, progress)?;
    }
    let mut list = Vec::new();
    for list_id in &node.content_lists {
        reader.read(list_id, &mut list)?;
        for id in tree::decode_list(list_id, &list)? {
            cursor.chunk(reader, &mut file, &id, buf, progress)?;
        }
    }
    if cursor.hole {
        file.set_len(cursor.pos)?;
    }
    entry::apply_file_meta(&file, node)?;
    Ok(cursor.written)
}
