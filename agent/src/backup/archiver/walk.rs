//! The walker: lists folders depth first, feeds files to the workers, and stores each
//! folder's tree once every entry in it is known.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use muster_shared::store::TreeBatch;

use super::stream::StreamSource;
use super::worker::{FileDone, FileFailure, FileJob};
use super::{BackupError, Excludes, PackSlot, Progress, node_from_meta};
use crate::backup::catalog::{CachedFile, Catalog, file_key};
use crate::backup::id::BlobId;
use crate::backup::repo::RepoError;
use crate::backup::snapshot::SnapshotSummary;
use crate::backup::tree::{Node, NodeKind};

use super::store::BlobStore;

/// Files cache updates are written in batches of this many.
const CACHE_BATCH: usize = 1024;

/// What the walk produced.
#[derive(Debug)]
pub struct Walked {
    /// The root tree.
    pub root: BlobId,
    /// Counts (the blob figures are filled in by the caller).
    pub summary: SnapshotSummary,
}

/// A folder whose tree is not stored yet.
#[derive(Debug)]
struct DirState {
    /// The parent folder's slot and this folder's node in it (none for the root).
    parent: Option<(usize, usize)>,
    path: PathBuf,
    /// Entries; `None` for one that failed and is left out.
    nodes: Vec<Option<Node>>,
    /// Entries not finished yet (files being read, sub-folders not stored).
    pending: usize,
}

/// A source tree: folders on the way to the sources, and the sources.
enum Prefix {
    Ancestor(BTreeMap<Vec<u8>, Prefix>),
    Source(PathBuf),
    Stream(StreamSource),
}

pub struct Walker<'s, 'r> {
    store: &'s BlobStore<'r>,
    catalog: &'s Catalog,
    excludes: &'s Excludes,
    jobs: Option<SyncSender<FileJob>>,
    done: Receiver<FileDone>,
    progress: &'s dyn Progress,
    cancel: &'s AtomicBool,
    slot: PackSlot,
    /// Data of command streams (tree packs stay trees only).
    data_slot: PackSlot,
    dirs: Vec<Option<DirState>>,
    free: Vec<usize>,
    to_list: Vec<usize>,
    in_flight: usize,
    cache: TreeBatch<Vec<u8>, CachedFile>,
    summary: SnapshotSummary,
    root: Option<BlobId>,
}

impl<'s, 'r> Walker<'s, 'r> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &'s BlobStore<'r>,
        catalog: &'s Catalog,
        excludes: &'s Excludes,
        jobs: SyncSender<FileJob>,
        done: Receiver<FileDone>,
        progress: &'s dyn Progress,
        cancel: &'s AtomicBool,
    ) -> Result<Self, BackupError> {
        let new_slot = || {
            PackSlot::new(store.repo().config().compression).map_err(|e| RepoError::Io {
                path: store.repo().root().to_path_buf(),
                source: e,
            })
        };
        let (slot, data_slot) = (new_slot()?, new_slot()?);
        Ok(Walker {
            store,
            catalog,
            excludes,
            jobs: Some(jobs),
            done,
            progress,
            cancel,
            slot,
            data_slot,
            dirs: Vec::new(),
            free: Vec::new(),
            to_list: Vec::new(),
            in_flight: 0,
            cache: catalog.files_batch(),
            summary: SnapshotSummary::default(),
            root: None,
        })
    }

    /// Walks `sources` (absolute) to the end and returns the root tree.
    pub fn run(
        mut self,
        sources: &[PathBuf],
        streams: &[StreamSource],
    ) -> Result<Walked, BackupError> {
        let result = self.walk(sources, streams);
        // Closing the queue lets the workers finish their packs, whatever happened here.
        self.jobs = None;
        let finished = self
            .store
            .finish(&mut self.slot)
            .and(self.store.finish(&mut self.data_slot));
        result?;
        finished?;
        let cache = std::mem::replace(&mut self.cache, self.catalog.files_batch());
        self.catalog.apply_files(cache)?;
        let root = self.root.ok_or_else(|| RepoError::Config {
            path: self.store.repo().root().to_path_buf(),
            reason: "the walk ended without a root tree".into(),
        })?;
        Ok(Walked {
            root,
            summary: self.summary,
        })
    }

    fn walk(&mut self, sources: &[PathBuf], streams: &[StreamSource]) -> Result<(), BackupError> {
        let mut prefix = BTreeMap::new();
        for s in sources {
            insert_source(&mut prefix, s);
        }
        for s in streams {
            crate::backup::tree::check_name(s.name.as_bytes()).map_err(|reason| {
                BackupError::Command {
                    name: s.name.clone(),
                    reason,
                }
            })?;
            if prefix.contains_key(s.name.as_bytes()) || prefix.contains_key(&Vec::new()) {
                return Err(BackupError::Command {
                    name: s.name.clone(),
                    reason: "its name is taken by a source path at the snapshot's root".into(),
                });
            }
            prefix.insert(s.name.as_bytes().to_vec(), Prefix::Stream(s.clone()));
        }
        if let Some(Prefix::Source(root_source)) = prefix.remove(&Vec::new()) {
            // The source is `/` itself: the root is a real folder.
            let idx = self.new_dir(None, root_source);
            self.list_dir(idx)?;
        } else {
            let idx = self.new_dir(None, PathBuf::from("/"));
            self.add_prefix(idx, prefix)?;
        }
        while let Some(idx) = self.to_list.pop() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(BackupError::Cancelled);
            }
            self.list_dir(idx)?;
        }
        while self.in_flight > 0 {
            self.take_result()?;
        }
        Ok(())
    }

    fn new_dir(&mut self, parent: Option<(usize, usize)>, path: PathBuf) -> usize {
        let state = DirState {
            parent,
            path,
            nodes: Vec::new(),
            pending: 0,
        };
        match self.free.pop() {
            Some(i) => {
                self.dirs[i] = Some(state);
                i
            }
            None => {
                self.dirs.push(Some(state));
                self.dirs.len() - 1
            }
        }
    }

    fn dir(&mut self, idx: usize) -> &mut DirState {
        self.dirs[idx]
            .as_mut()
            .expect("a folder slot is used only while its tree is pending")
    }

    /// Fills an ancestor folder (a folder on the way to a source) with its listed children.
    fn add_prefix(
        &mut self,
        idx: usize,
        children: BTreeMap<Vec<u8>, Prefix>,
    ) -> Result<(), BackupError> {
        let base = self.dir(idx).path.clone();
        let mut files = Vec::new();
        for (name, child) in children {
            let path = base.join(OsString::from_vec(name.clone()));
            if let Prefix::Stream(source) = &child {
                let node = super::stream::read_stream(
                    self.store,
                    &mut self.data_slot,
                    source,
                    self.progress,
                )?;
                self.summary.files += 1;
                self.summary.total_bytes += node.size;
                self.summary.bytes_read += node.size;
                self.summary.files_read += 1;
                self.dir(idx).nodes.push(Some(node));
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).map_err(|source| BackupError::Source {
                path: path.clone(),
                source,
            })?;
            let mut node = node_from_meta(name, &meta);
            let pos = self.dir(idx).nodes.len();
            match child {
                Prefix::Ancestor(grand) => {
                    if node.kind != NodeKind::Dir {
                        return Err(BackupError::Source {
                            path,
                            source: std::io::Error::other(
                                "is on the way to a source but is not a folder",
                            ),
                        });
                    }
                    self.summary.dirs += 1;
                    self.dir(idx).nodes.push(Some(node));
                    self.dir(idx).pending += 1;
                    let child_idx = self.new_dir(Some((idx, pos)), path);
                    self.add_prefix(child_idx, grand)?;
                }
                Prefix::Source(_) => {
                    self.prepare_node(idx, pos, &path, &mut node, &mut files)?;
                    self.dir(idx).nodes.push(Some(node));
                }
                Prefix::Stream(_) => {}
            }
        }
        self.submit(idx, files)
    }

    /// Lists a real folder and queues its entries.
    fn list_dir(&mut self, idx: usize) -> Result<(), BackupError> {
        let path = self.dir(idx).path.clone();
        let mut entries: Vec<OsString> = match std::fs::read_dir(&path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot list folder; stored empty");
                self.summary.errors += 1;
                Vec::new()
            }
        };
        entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut files = Vec::new();
        for name in entries {
            let child = path.join(&name);
            if self.excludes.is_excluded(&child, &name) {
                continue;
            }
            let meta = match std::fs::symlink_metadata(&child) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(path = %child.display(), error = %e, "cannot stat; skipped");
                    self.summary.errors += 1;
                    continue;
                }
            };
            let mut node = node_from_meta(name.into_vec(), &meta);
            let pos = self.dir(idx).nodes.len();
            self.prepare_node(idx, pos, &child, &mut node, &mut files)?;
            self.dir(idx).nodes.push(Some(node));
        }
        self.submit(idx, files)
    }

    /// Decides what a node needs: a folder is queued for listing, a changed file for reading,
    /// an unchanged file takes its chunks from the cache, a symlink reads its target.
    fn prepare_node(
        &mut self,
        idx: usize,
        pos: usize,
        path: &Path,
        node: &mut Node,
        files: &mut Vec<FileJob>,
    ) -> Result<(), BackupError> {
        match node.kind {
            NodeKind::Dir => {
                self.summary.dirs += 1;
                self.dir(idx).pending += 1;
                let child = self.new_dir(Some((idx, pos)), path.to_path_buf());
                self.to_list.push(child);
            }
            NodeKind::File => {
                self.summary.files += 1;
                self.summary.total_bytes += node.size;
                if let Some(hit) = self.cached(node)? {
                    node.content = hit.content;
                    node.content_lists = hit.content_lists;
                    self.summary.files_unchanged += 1;
                    self.progress.entry();
                } else {
                    files.push(FileJob {
                        dir: idx,
                        node: pos,
                        path: path.to_path_buf(),
                    });
                }
            }
            NodeKind::Symlink => match std::fs::read_link(path) {
                Ok(target) => node.target = target.into_os_string().into_vec(),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read symlink");
                    self.summary.errors += 1;
                }
            },
            _ => {}
        }
        Ok(())
    }

    fn cached(&self, node: &Node) -> Result<Option<CachedFile>, BackupError> {
        let Some(hit) = self.catalog.cached_file(node.device, node.inode)? else {
            return Ok(None);
        };
        let index = self.store.repo().index();
        let fresh = hit.size == node.size
            && hit.mtime_ns == node.mtime_ns
            && hit.ctime_ns == node.ctime_ns
            && hit
                .content
                .iter()
                .chain(&hit.content_lists)
                .all(|id| index.contains(id));
        Ok(fresh.then_some(hit))
    }

    /// Queues a listed folder's files; stores the folder's tree at once if nothing is pending.
    fn submit(&mut self, idx: usize, files: Vec<FileJob>) -> Result<(), BackupError> {
        self.dir(idx).pending += files.len();
        for job in files {
            self.send(job)?;
        }
        if self.dir(idx).pending == 0 {
            self.store_dir(idx)?;
        }
        Ok(())
    }

    fn send(&mut self, mut job: FileJob) -> Result<(), BackupError> {
        loop {
            let jobs = self.jobs.as_ref().ok_or(BackupError::Cancelled)?;
            match jobs.try_send(job) {
                Ok(()) => {
                    self.in_flight += 1;
                    return Ok(());
                }
                Err(TrySendError::Full(j)) => {
                    job = j;
                    self.take_result()?;
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(RepoError::Config {
                        path: self.store.repo().root().to_path_buf(),
                        reason: "backup workers stopped".into(),
                    }
                    .into());
                }
            }
        }
    }

    /// Waits for one file result and records it.
    fn take_result(&mut self) -> Result<(), BackupError> {
        let done = self.done.recv().map_err(|_| RepoError::Config {
            path: self.store.repo().root().to_path_buf(),
            reason: "backup workers stopped".into(),
        })?;
        self.in_flight -= 1;
        self.summary.bytes_read += done.bytes;
        self.progress.entry();
        match done.result {
            Ok(ids) => {
                self.summary.files_read += 1;
                let (content, content_lists) = self.store.content_form(&mut self.slot, ids)?;
                let node = self.dir(done.dir).nodes[done.node]
                    .as_mut()
                    .expect("a queued file's node is present");
                node.content = content;
                node.content_lists = content_lists;
                let cached = CachedFile {
                    size: node.size,
                    mtime_ns: node.mtime_ns,
                    ctime_ns: node.ctime_ns,
                    content: node.content.clone(),
                    content_lists: node.content_lists.clone(),
                };
                let key = file_key(node.device, node.inode);
                self.cache.insert(&key, &cached).map_err(|source| {
                    crate::backup::catalog::CatalogError {
                        path: PathBuf::from("files cache"),
                        source,
                    }
                })?;
                if self.cache.len() >= CACHE_BATCH {
                    let batch = std::mem::replace(&mut self.cache, self.catalog.files_batch());
                    self.catalog.apply_files(batch)?;
                }
            }
            Err(FileFailure::Unreadable(e)) => {
                let path = self.dir(done.dir).path.clone();
                let node = self.dir(done.dir).nodes[done.node].take();
                let name = node.map(|n| n.display_name()).unwrap_or_default();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::warn!(path = %path.join(name).display(), error = %e, "cannot read file; skipped");
                }
                self.summary.errors += 1;
                self.summary.files -= 1;
            }
            Err(FileFailure::Repo(e)) => return Err(e.into()),
        }
        let dir = self.dir(done.dir);
        dir.pending -= 1;
        if dir.pending == 0 {
            self.store_dir(done.dir)?;
        }
        Ok(())
    }

    /// Stores a finished folder's tree, then finishes its parent if that was its last entry.
    fn store_dir(&mut self, mut idx: usize) -> Result<(), BackupError> {
        loop {
            let state = self.dirs[idx].take().expect("a folder is stored once");
            self.free.push(idx);
            let nodes: Vec<Node> = state.nodes.into_iter().flatten().collect();
            let ids = self.store.save_tree(&mut self.slot, nodes)?;
            let Some((parent, pos)) = state.parent else {
                if ids.len() != 1 {
                    return Err(RepoError::Config {
                        path: state.path,
                        reason: "the root folder has too many sources for one tree".into(),
                    }
                    .into());
                }
                self.root = ids.first().copied();
                return Ok(());
            };
            let p = self.dir(parent);
            if let Some(node) = p.nodes[pos].as_mut() {
                node.subtree = ids;
            }
            p.pending -= 1;
            if p.pending > 0 {
                return Ok(());
            }
            idx = parent;
        }
    }
}

/// Adds absolute `path` to the prefix tree. A source under another source is dropped; a
/// source above earlier ones replaces them.
fn insert_source(root: &mut BTreeMap<Vec<u8>, Prefix>, path: &Path) {
    let parts: Vec<Vec<u8>> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        root.clear();
        root.insert(Vec::new(), Prefix::Source(path.to_path_buf()));
        return;
    }
    if matches!(root.get(&Vec::new()), Some(Prefix::Source(_))) {
        return;
    }
    let mut level = root;
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            level.insert(part.clone(), Prefix::Source(path.to_path_buf()));
            return;
        }
        let entry = level
            .entry(part.clone())
            .or_insert_with(|| Prefix::Ancestor(BTreeMap::new()));
        match entry {
            Prefix::Ancestor(next) => level = next,
            Prefix::Source(_) | Prefix::Stream(_) => return,
        }
    }
}
