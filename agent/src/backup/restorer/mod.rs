//! Restoring a snapshot, or a sub-path of it, into a target folder.
//!
//! The walker (calling thread) reads trees depth first, checks every name, creates folders,
//! links and special files, and hands regular files to worker threads that write their
//! chunks. Folder metadata is applied last, deepest first, so writing into a folder does not
//! disturb its restored mtime. Memory is bounded by the work queue.
//!
//! # What cannot escape the target
//! Every path is the target joined with names that [`tree::check_name`] accepts (one plain
//! component; no `/`, `.`, `..` or NUL), each unique in its folder. Every folder on the way
//! is checked to be a real folder, never a symlink, before anything is written into it, and
//! files are opened with `O_NOFOLLOW`: a symlink in the snapshot (or already in the target)
//! cannot redirect a later write outside the target.

mod entry;
mod worker;

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::archiver::Progress;
use super::id::BlobId;
use super::repo::{RepoError, Repository};
use super::snapshot::Snapshot;
use super::tree::{self, Node, NodeKind};

pub use entry::ensure_real_dir;

/// What to restore and where.
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// The folder to restore into (created if missing). `/` restores to the original place.
    pub target: PathBuf,
    /// Only this path of the snapshot (absolute, as backed up), with everything under it.
    pub include: Option<PathBuf>,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreSummary {
    /// Files written.
    pub files: u64,
    /// Folders created or reused.
    pub dirs: u64,
    /// Symlinks, hard links and special files made.
    pub others: u64,
    /// Bytes written (holes in sparse files not counted).
    pub bytes: u64,
    /// Entries that could not be restored (logged), skipped.
    pub errors: u64,
}

/// A restore that stopped.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The repository failed (a missing or damaged blob among them).
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A tree does not decode.
    #[error(transparent)]
    Tree(#[from] tree::TreeError),
    /// An entry would land outside the target, or through a symlink.
    #[error("refused: {0}")]
    Unsafe(String),
    /// `--path` names nothing in the snapshot.
    #[error("{0} is not in the snapshot")]
    NoSuchPath(PathBuf),
    /// The target could not be prepared.
    #[error("target {path}: {source}")]
    Target {
        /// The folder.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Cancelled; what was written stays.
    #[error("restore cancelled")]
    Cancelled,
}

/// A file to write.
#[derive(Debug)]
struct FileJob {
    path: PathBuf,
    node: Node,
}

/// Restores `snapshot` from `repo` as `request` says.
pub fn run(
    repo: &Repository,
    snapshot: &Snapshot,
    request: &RestoreRequest,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<RestoreSummary, RestoreError> {
    std::fs::create_dir_all(&request.target).map_err(|source| RestoreError::Target {
        path: request.target.clone(),
        source,
    })?;
    let threads = match request.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let (job_tx, job_rx) = mpsc::sync_channel::<FileJob>(threads * 16);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let summary = Mutex::new(RestoreSummary::default());
    let walked = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (rx, summary) = (job_rx.clone(), &summary);
                scope.spawn(move || worker::run(repo, rx, summary, progress, cancel))
            })
            .collect();
        let mut walker = Walker {
            repo,
            jobs: job_tx,
            summary: &summary,
            dir_meta: Vec::new(),
            links: HashMap::new(),
            deferred_links: Vec::new(),
            cancel,
            progress,
        };
        let walked = walker.restore_root(snapshot.tree, request);
        let Walker {
            jobs,
            dir_meta,
            deferred_links,
            ..
        } = walker;
        drop(jobs);
        for w in workers {
            if w.join().is_err() {
                return Err(RestoreError::Unsafe("a restore worker panicked".into()));
            }
        }
        walked?;
        for (first, path) in &deferred_links {
            let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
            match entry::hard_link(first, path) {
                Ok(()) => s.others += 1,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot restore hard link; skipped");
                    s.errors += 1;
                }
            }
            drop(s);
            progress.entry();
        }
        // Deepest folders first: setting a folder's mtime after its children are final.
        for (path, node) in dir_meta.iter().rev() {
            entry::apply_dir_meta(path, node);
        }
        Ok(())
    });
    walked?;
    if cancel.load(Ordering::Relaxed) {
        return Err(RestoreError::Cancelled);
    }
    Ok(summary.into_inner().unwrap_or_else(|e| e.into_inner()))
}

struct Walker<'a, 'r> {
    repo: &'r Repository,
    jobs: mpsc::SyncSender<FileJob>,
    summary: &'a Mutex<RestoreSummary>,
    dir_meta: Vec<(PathBuf, Node)>,
    /// (device, inode) of multiply-linked files already restored, and where.
    links: HashMap<(u64, u64), PathBuf>,
    /// Further names of those files: (first name, this name).
    deferred_links: Vec<(PathBuf, PathBuf)>,
    cancel: &'a AtomicBool,
    progress: &'a dyn Progress,
}

impl Walker<'_, '_> {
    fn count(&self, f: impl FnOnce(&mut RestoreSummary)) {
        f(&mut self.summary.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn read_tree(&self, ids: &[BlobId]) -> Result<Vec<Node>, RestoreError> {
        let mut reader = self.repo.blob_reader();
        let mut nodes = Vec::new();
        let mut buf = Vec::new();
        for id in ids {
            reader.read(id, &mut buf)?;
            nodes.extend(tree::decode_nodes(id, &buf)?);
        }
        // Names must be plain and unique (sorted strictly), or a second entry of the same
        // name could replace a checked folder with a symlink.
        for (i, n) in nodes.iter().enumerate() {
            tree::check_name(&n.name).map_err(RestoreError::Unsafe)?;
            if i > 0 && nodes[i - 1].name >= n.name {
                return Err(RestoreError::Unsafe(format!(
                    "tree has entries out of order or twice: {:?}",
                    n.display_name()
                )));
            }
        }
        Ok(nodes)
    }

    fn restore_root(&mut self, root: BlobId, request: &RestoreRequest) -> Result<(), RestoreError> {
        let target = request.target.clone();
        let Some(include) = &request.include else {
            return self.restore_children(&[root], &target);
        };
        // Descend along the included path, creating the folders on the way.
        let parts: Vec<OsString> = include
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_os_string()),
                _ => None,
            })
            .collect();
        let mut ids = vec![root];
        let mut dest = target;
        for (i, part) in parts.iter().enumerate() {
            let nodes = self.read_tree(&ids)?;
            let name = part.clone().into_vec();
            let node = nodes
                .into_iter()
                .find(|n| n.name == name)
                .ok_or_else(|| RestoreError::NoSuchPath(include.clone()))?;
            let path = dest.join(part);
            if i + 1 == parts.len() {
                return self.restore_node(&dest, node);
            }
            if node.kind != NodeKind::Dir {
                return Err(RestoreError::NoSuchPath(include.clone()));
            }
            entry::ensure_real_dir(&path).map_err(RestoreError::Unsafe)?;
            ids = node.subtree.clone();
            self.dir_meta.push((path.clone(), node));
            dest = path;
        }
        self.restore_children(&ids, &dest)
    }

    fn restore_children(&mut self, ids: &[BlobId], dir: &Path) -> Result<(), RestoreError> {
        entry::ensure_real_dir(dir).map_err(RestoreError::Unsafe)?;
        for node in self.read_tree(ids)? {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(RestoreError::Cancelled);
            }
            self.restore_node(dir, node)?;
        }
        Ok(())
    }

    fn restore_node(&mut self, dir: &Path, node: Node) -> Result<(), RestoreError> {
        let path = dir.join(OsString::from_vec(node.name.clone()));
        match node.kind {
            NodeKind::Dir => {
                entry::ensure_real_dir(&path).map_err(RestoreError::Unsafe)?;
                self.count(|s| s.dirs += 1);
                let subtree = node.subtree.clone();
                self.dir_meta.push((path.clone(), node));
                self.restore_children(&subtree, &path)?;
            }
            NodeKind::File => {
                if node.links > 1 {
                    if let Some(first) = self.links.get(&(node.device, node.inode)) {
                        // Linked once the workers have written the first name.
                        self.deferred_links.push((first.clone(), path));
                        return Ok(());
                    }
                    self.links.insert((node.device, node.inode), path.clone());
                }
                self.send(FileJob { path, node })?;
            }
            _ => {
                match entry::make_special(&path, &node) {
                    Ok(()) => self.count(|s| s.others += 1),
                    Err(e) => self.skip(&path, e),
                }
                self.progress.entry();
            }
        }
        Ok(())
    }

    fn skip(&self, path: &Path, e: std::io::Error) {
        tracing::warn!(path = %path.display(), error = %e, "cannot restore; skipped");
        self.count(|s| s.errors += 1);
    }

    fn send(&self, job: FileJob) -> Result<(), RestoreError> {
        // Blocks while the queue is full: the workers never wait on the walker.
        self.jobs
            .send(job)
            .map_err(|_| RestoreError::Unsafe("restore workers stopped".into()))
    }
}
