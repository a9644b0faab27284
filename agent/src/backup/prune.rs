//! `prune`: free the space of blobs no snapshot needs any more.
//!
//! Marks every blob reachable from a snapshot, then deletes packs holding nothing needed and
//! repacks packs that are mostly unneeded (copying the needed blobs' stored bytes as they
//! are, after checking their hash). New packs and their index are durable before any old
//! pack is deleted, so a prune killed at any point loses nothing: a later open indexes what
//! it finds and drops what is gone. Runs under the exclusive lock, so no backup can be
//! adding references meanwhile (restic's rule; no delayed delete needed).

use std::collections::HashSet;

use super::id::{BlobId, PackId};
use super::repo::index::IndexedPack;
use super::repo::pack::PackEntry;
use super::repo::{RepoError, Repository};
use super::snapshot;
use super::tree::{self, NodeKind};

/// A pack is repacked when at least this share of its bytes is unneeded.
const REPACK_UNUSED_SHARE: f64 = 0.25;

/// What prune did (or, with `dry_run`, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Blobs still needed.
    pub blobs_used: u64,
    /// Blobs no snapshot needs.
    pub blobs_unused: u64,
    /// Packs deleted whole.
    pub packs_deleted: u64,
    /// Packs rewritten with only their needed blobs.
    pub packs_repacked: u64,
    /// Bytes of pack files removed.
    pub bytes_freed: u64,
    /// Bytes written into new packs.
    pub bytes_repacked: u64,
}

/// A prune that stopped.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A snapshot's tree could not be read: pruning now could delete what it needs.
    #[error("cannot read tree of snapshot {snapshot}: {reason}; run verify, nothing was deleted")]
    Unreadable {
        /// The snapshot.
        snapshot: String,
        /// Why.
        reason: String,
    },
}

/// Every blob reachable from every snapshot.
pub fn used_blobs(repo: &Repository) -> Result<HashSet<BlobId>, PruneError> {
    let mut used = HashSet::new();
    let mut reader = repo.blob_reader();
    let mut buf = Vec::new();
    for entry in snapshot::list(repo)? {
        let unreadable = |reason: String| PruneError::Unreadable {
            snapshot: entry.id[..8].to_string(),
            reason,
        };
        let mut stack = vec![entry.snapshot.tree];
        while let Some(id) = stack.pop() {
            if !used.insert(id) {
                continue; // A shared subtree: already walked.
            }
            reader
                .read(&id, &mut buf)
                .map_err(|e| unreadable(e.to_string()))?;
            for node in tree::decode_nodes(&id, &buf).map_err(|e| unreadable(e.to_string()))? {
                match node.kind {
                    NodeKind::Dir => stack.extend(node.subtree),
                    NodeKind::File => {
                        used.extend(node.content);
                        for list in node.content_lists {
                            if used.insert(list) {
                                reader
                                    .read(&list, &mut buf)
                                    .map_err(|e| unreadable(e.to_string()))?;
                                used.extend(
                                    tree::decode_list(&list, &buf)
                                        .map_err(|e| unreadable(e.to_string()))?,
                                );
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(used)
}

/// Prunes `repo` (opened exclusively).
pub fn prune(repo: &mut Repository, dry_run: bool) -> Result<PruneReport, PruneError> {
    let used = used_blobs(repo)?;
    let mut report = PruneReport::default();
    let mut keep = Vec::new();
    let mut delete: Vec<(PackId, u64)> = Vec::new();
    let mut repack: Vec<(PackId, u64, Vec<PackEntry>)> = Vec::new();
    for p in repo.index().to_indexed_packs() {
        let (mut used_bytes, mut total) = (0u64, 0u64);
        for e in &p.entries {
            total += u64::from(e.stored_len);
            if used.contains(&e.id) {
                used_bytes += u64::from(e.stored_len);
                report.blobs_used += 1;
            } else {
                report.blobs_unused += 1;
            }
        }
        if used_bytes == 0 {
            delete.push((p.id, p.size));
        } else if (total - used_bytes) as f64 >= REPACK_UNUSED_SHARE * total as f64 {
            let needed = p
                .entries
                .iter()
                .filter(|e| used.contains(&e.id))
                .copied()
                .collect();
            repack.push((p.id, p.size, needed));
        } else {
            keep.push(p);
        }
    }
    report.packs_deleted = delete.len() as u64;
    report.packs_repacked = repack.len() as u64;
    report.bytes_freed = delete.iter().map(|(_, size)| size).sum::<u64>()
        + repack.iter().map(|(_, size, _)| size).sum::<u64>();
    if dry_run || (delete.is_empty() && repack.is_empty()) {
        return Ok(report);
    }
    let new_packs = copy_needed(repo, &repack, &mut report)?;
    keep.extend(new_packs.iter().cloned());
    repo.add_packs(new_packs)?;
    let removed: Vec<PackId> = delete
        .iter()
        .map(|(id, _)| *id)
        .chain(repack.iter().map(|(id, _, _)| *id))
        .collect();
    repo.replace_index(keep, &removed)?;
    Ok(report)
}

/// Copies the needed blobs of the packs to repack into new packs.
fn copy_needed(
    repo: &Repository,
    repack: &[(PackId, u64, Vec<PackEntry>)],
    report: &mut PruneReport,
) -> Result<Vec<IndexedPack>, RepoError> {
    let mut out = Vec::new();
    let mut writer = None;
    let mut reader = repo.blob_reader();
    let mut plain = Vec::new();
    for (pack_id, _, entries) in repack {
        let path = repo.pack_path(pack_id);
        let bytes = std::fs::read(&path).map_err(super::repo::io_at(&path))?;
        for e in entries {
            let start = e.offset as usize;
            let stored = bytes
                .get(start..start + e.stored_len as usize)
                .ok_or_else(|| RepoError::BlobDamaged {
                    id: e.id,
                    pack: *pack_id,
                    reason: "lies outside its pack".into(),
                })?;
            // The hash check reads through the index; a damaged blob stops the prune
            // before anything is deleted.
            reader.read(&e.id, &mut plain)?;
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(repo.new_pack()?),
            };
            w.add(e.id, e.kind, e.raw_len, stored, e.compressed)?;
            report.bytes_repacked += u64::from(e.stored_len);
            if w.len() >= repo.config().pack_size
                && let Some(w) = writer.take()
            {
                let (id, size, entries) = w.finish(|id| repo.pack_path(id))?;
                out.push(IndexedPack { id, size, entries });
            }
        }
    }
    if let Some(w) = writer.take() {
        let (id, size, entries) = w.finish(|id| repo.pack_path(id))?;
        out.push(IndexedPack { id, size, entries });
    }
    Ok(out)
}
