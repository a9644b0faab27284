//! `verify`: the repository's structure, and with `read_data` every byte of every pack.
//!
//! Structure: every indexed pack exists with the size the index says, and its trailer agrees
//! with the index; every snapshot's trees decode; every blob a snapshot needs is indexed.
//! Read data: every pack is read whole and checked against its name (BLAKE3); in a pack that
//! fails, every blob is decompressed and re-hashed to find which are damaged, and each
//! damaged blob is traced to the snapshots and files that need it.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::archiver::Progress;
use super::compress::BlobDecompressor;
use super::id::BlobId;
use super::repo::index::BlobLoc;
use super::repo::pack;
use super::repo::{RepoError, Repository};
use super::snapshot::{self, SnapshotEntry};
use super::tree::{self, NodeKind};

/// What `verify` found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// Snapshots checked.
    pub snapshots: usize,
    /// Packs checked.
    pub packs: usize,
    /// Tree blobs decoded.
    pub trees: usize,
    /// Packs read whole (with `read_data`).
    pub packs_read: usize,
    /// Bytes read (with `read_data`).
    pub bytes_read: u64,
    /// Every problem, one line each, naming its subject.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether the repository is sound.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks `repo`; with `read_data`, reads every pack on `threads` threads.
pub fn verify(
    repo: &Repository,
    read_data: bool,
    threads: usize,
    progress: &dyn Progress,
) -> Result<VerifyReport, RepoError> {
    let mut report = VerifyReport::default();
    for name in &repo.open_report().damaged_packs {
        report.problems.push(format!(
            "pack {name}: unreadable trailer (damaged or not a pack)"
        ));
    }
    check_packs(repo, &mut report);
    let damaged = if read_data {
        read_packs(repo, threads, progress, &mut report)
    } else {
        HashSet::new()
    };
    let snapshots = snapshot::list(repo)?;
    report.snapshots = snapshots.len();
    for entry in &snapshots {
        check_snapshot(repo, entry, &damaged, &mut report);
    }
    Ok(report)
}

/// Every indexed pack exists, has its size, and its trailer lists what the index says.
fn check_packs(repo: &Repository, report: &mut VerifyReport) {
    let mut by_pack: HashMap<u32, Vec<(BlobId, BlobLoc)>> = HashMap::new();
    for (id, loc) in repo.index().blobs() {
        by_pack.entry(loc.pack).or_default().push((*id, *loc));
    }
    for (pos, meta) in repo.index().packs().iter().enumerate() {
        report.packs += 1;
        let path = repo.pack_path(&meta.id);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == meta.size => {}
            Ok(m) => report.problems.push(format!(
                "pack {}: {} bytes, the index says {}",
                meta.id,
                m.len(),
                meta.size
            )),
            Err(e) => {
                report.problems.push(format!("pack {}: {e}", meta.id));
                continue;
            }
        }
        let trailer = match pack::read_trailer(&path) {
            Ok(t) => t,
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        let listed: HashMap<BlobId, pack::PackEntry> = trailer.iter().map(|e| (e.id, *e)).collect();
        let pos = u32::try_from(pos).unwrap_or(u32::MAX);
        for (id, loc) in by_pack.get(&pos).map(Vec::as_slice).unwrap_or_default() {
            let agrees = listed.get(id).is_some_and(|e| {
                e.offset == loc.offset && e.stored_len == loc.stored_len && e.raw_len == loc.raw_len
            });
            if !agrees {
                report.problems.push(format!(
                    "pack {}: the index places blob {id} where the pack's trailer does not",
                    meta.id
                ));
            }
        }
    }
}

/// Reads every pack whole; returns the ids of damaged blobs.
fn read_packs(
    repo: &Repository,
    threads: usize,
    progress: &dyn Progress,
    report: &mut VerifyReport,
) -> HashSet<BlobId> {
    let packs = repo.index().packs();
    let next = AtomicUsize::new(0);
    let found = Mutex::new((HashSet::new(), Vec::new(), 0u64, 0usize));
    let threads = threads.max(1).min(packs.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut dec = BlobDecompressor::default();
                let mut plain = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(meta) = packs.get(i) else { break };
                    let path = repo.pack_path(&meta.id);
                    let whole = pack::read_whole(&path, &meta.id);
                    let mut bad = Vec::new();
                    let mut problems = Vec::new();
                    let bytes = match whole {
                        Ok(b) => {
                            progress.bytes(b.len() as u64);
                            Some((b, None))
                        }
                        Err(pack::PackError::Damaged { reason, .. }) => {
                            match std::fs::read(&path) {
                                Ok(b) => Some((b, Some(reason))),
                                Err(e) => {
                                    problems.push(format!("pack {}: {e}", meta.id));
                                    None
                                }
                            }
                        }
                        Err(e) => {
                            problems.push(e.to_string());
                            None
                        }
                    };
                    let len = bytes.as_ref().map_or(0, |(b, _)| b.len() as u64);
                    if let Some((bytes, Some(reason))) = bytes {
                        problems.push(format!("pack {}: {reason}", meta.id));
                        // Find the damaged blobs: every blob the index places in this pack.
                        for (id, loc) in repo.index().blobs() {
                            if repo.index().pack(loc.pack).map(|p| p.id) != Some(meta.id) {
                                continue;
                            }
                            let start = loc.offset as usize;
                            let stored = bytes.get(start..start + loc.stored_len as usize);
                            let sound = stored.is_some_and(|s| {
                                repo.decode_blob(id, loc, s, &mut dec, &mut plain).is_ok()
                            });
                            if !sound {
                                bad.push(*id);
                            }
                        }
                    }
                    let mut f = found.lock().unwrap_or_else(|e| e.into_inner());
                    f.0.extend(bad);
                    f.1.extend(problems);
                    f.2 += len;
                    f.3 += 1;
                }
            });
        }
    });
    let (bad, problems, bytes, read) = found.into_inner().unwrap_or_else(|e| e.into_inner());
    report.problems.extend(problems);
    report.bytes_read = bytes;
    report.packs_read = read;
    bad
}

/// Walks one snapshot's trees, naming every missing or damaged blob with the path that
/// needs it.
fn check_snapshot(
    repo: &Repository,
    entry: &SnapshotEntry,
    damaged: &HashSet<BlobId>,
    report: &mut VerifyReport,
) {
    let short = &entry.id[..8];
    let mut reader = repo.blob_reader();
    let mut buf = Vec::new();
    let mut stack: Vec<(PathBuf, Vec<BlobId>)> =
        vec![(PathBuf::from("/"), vec![entry.snapshot.tree])];
    let index = repo.index();
    let state = |id: &BlobId| -> Option<&'static str> {
        if !index.contains(id) {
            Some("missing")
        } else if damaged.contains(id) {
            Some("damaged")
        } else {
            None
        }
    };
    while let Some((dir, ids)) = stack.pop() {
        let mut nodes = Vec::new();
        for id in &ids {
            if let Some(what) = state(id) {
                report.problems.push(format!(
                    "snapshot {short}: folder {} is unreadable (tree blob {id} {what})",
                    dir.display()
                ));
                continue;
            }
            report.trees += 1;
            let decoded = reader
                .read(id, &mut buf)
                .map_err(|e| e.to_string())
                .and_then(|()| tree::decode_nodes(id, &buf).map_err(|e| e.to_string()));
            match decoded {
                Ok(n) => nodes.extend(n),
                Err(e) => report
                    .problems
                    .push(format!("snapshot {short}: folder {}: {e}", dir.display())),
            }
        }
        for node in nodes {
            let path = dir.join(OsString::from_vec(node.name.clone()));
            match node.kind {
                NodeKind::Dir => stack.push((path, node.subtree)),
                NodeKind::File => {
                    let mut bad: Vec<String> = Vec::new();
                    for id in &node.content {
                        if let Some(what) = state(id) {
                            bad.push(format!("chunk {} {what}", id.short()));
                        }
                    }
                    for list in &node.content_lists {
                        if let Some(what) = state(list) {
                            bad.push(format!("chunk list {} {what}", list.short()));
                            continue;
                        }
                        let ids = reader
                            .read(list, &mut buf)
                            .map_err(|e| e.to_string())
                            .and_then(|()| {
                                tree::decode_list(list, &buf).map_err(|e| e.to_string())
                            });
                        match ids {
                            Ok(ids) => {
                                for id in &ids {
                                    if let Some(what) = state(id) {
                                        bad.push(format!("chunk {} {what}", id.short()));
                                    }
                                }
                            }
                            Err(e) => bad.push(e),
                        }
                    }
                    if !bad.is_empty() {
                        report.problems.push(format!(
                            "snapshot {short}: file {}: {}",
                            path.display(),
                            bad.join(", ")
                        ));
                    }
                }
                _ => {}
            }
        }
    }
}
