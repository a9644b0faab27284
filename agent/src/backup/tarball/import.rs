//! `.tar.zst` → a new snapshot.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::AtomicBool;

use super::TarballError;
use crate::backup::archiver::{BlobStore, PackSlot, Progress};
use crate::backup::catalog::Catalog;
use crate::backup::chunker::Chunker;
use crate::backup::id::BlobId;
use crate::backup::repo::{RepoError, Repository};
use crate::backup::snapshot::{self, Snapshot, SnapshotEntry, SnapshotSummary};
use crate::backup::tree::{self, Node, NodeKind};

/// A finished import.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    /// The new snapshot's id.
    pub id: String,
    /// The snapshot.
    pub snapshot: Snapshot,
}

enum Entry {
    Dir(Node, BTreeMap<Vec<u8>, Entry>),
    Leaf(Node),
}

fn blank(name: Vec<u8>, kind: NodeKind) -> Node {
    Node {
        mode: 0o755,
        ..Node::empty(name, kind)
    }
}

/// Splits an archive path into checked components: relative, no `..`, no NUL; `.` and empty
/// components (`./a//b`) are dropped as tar does.
fn components(raw: &[u8]) -> Result<Vec<Vec<u8>>, TarballError> {
    let unsafe_entry = |reason: &str| TarballError::Unsafe {
        entry: String::from_utf8_lossy(raw).into_owned(),
        reason: reason.to_string(),
    };
    if raw.starts_with(b"/") {
        return Err(unsafe_entry("is absolute"));
    }
    let mut out = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(unsafe_entry("climbs out with '..'")),
            _ => {
                tree::check_name(part).map_err(|reason| unsafe_entry(&reason))?;
                out.push(part.to_vec());
            }
        }
    }
    Ok(out)
}

/// The folder that holds `parts`' last component, creating folders on the way. A symlink or
/// file on the way refuses the entry: following it could leave the root.
fn parent_of<'t>(
    root: &'t mut BTreeMap<Vec<u8>, Entry>,
    parts: &[Vec<u8>],
    raw: &[u8],
) -> Result<&'t mut BTreeMap<Vec<u8>, Entry>, TarballError> {
    let mut level = root;
    for part in &parts[..parts.len() - 1] {
        let e = level
            .entry(part.clone())
            .or_insert_with(|| Entry::Dir(blank(part.clone(), NodeKind::Dir), BTreeMap::new()));
        match e {
            Entry::Dir(_, children) => level = children,
            Entry::Leaf(n) => {
                return Err(TarballError::Unsafe {
                    entry: String::from_utf8_lossy(raw).into_owned(),
                    reason: format!(
                        "passes through {:?}, which is not a folder ({:?})",
                        n.display_name(),
                        n.kind
                    ),
                });
            }
        }
    }
    Ok(level)
}

fn find_leaf<'t>(
    root: &'t mut BTreeMap<Vec<u8>, Entry>,
    parts: &[Vec<u8>],
) -> Option<&'t mut Node> {
    let (last, dirs) = parts.split_last()?;
    let mut level = root;
    for part in dirs {
        match level.get_mut(part)? {
            Entry::Dir(_, children) => level = children,
            Entry::Leaf(_) => return None,
        }
    }
    match level.get_mut(last)? {
        Entry::Leaf(n) => Some(n),
        Entry::Dir(..) => None,
    }
}

/// Imports the `.tar.zst` read from `input` as a new snapshot tagged `imported`, with
/// `source` (the archive's name) as its path.
pub fn import<R: Read>(
    repo: &mut Repository,
    catalog: &Catalog,
    input: R,
    source: &str,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<ImportOutcome, TarballError> {
    let store = BlobStore::new(repo);
    let mut slot = PackSlot::new(repo.config().compression).map_err(TarballError::Archive)?;
    let started = std::time::Instant::now();
    let mut summary = SnapshotSummary::default();
    let built = read_entries(&store, &mut slot, input, progress, cancel, &mut summary)
        .and_then(|root| store_dir(&store, &mut slot, root));
    summary.blobs_added = store.added.blobs.load(std::sync::atomic::Ordering::Relaxed);
    summary.raw_bytes_added = store
        .added
        .raw_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    summary.bytes_added = store
        .added
        .stored_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    let finished = store.finish(&mut slot);
    let new_packs = store.into_finished();
    // Packs are committed even when the archive is refused: their blobs are sound, and an
    // unreferenced blob costs nothing until prune.
    repo.add_packs(new_packs)?;
    let root = built?;
    finished?;
    let root = match root.as_slice() {
        [one] => *one,
        _ => {
            return Err(RepoError::Config {
                path: repo.root().to_path_buf(),
                reason: "the archive's top level is too large for one tree".into(),
            }
            .into());
        }
    };
    let mut snap = Snapshot::new(
        vec![format!("import:{source}")],
        vec!["imported".into()],
        root,
    );
    summary.duration_seconds = started.elapsed().as_secs_f64();
    snap.summary = summary;
    let id = snapshot::save(repo, &snap)?;
    let mut all = snapshot::list(repo)?;
    if !all.iter().any(|e| e.id == id) {
        all.push(SnapshotEntry {
            id: id.clone(),
            snapshot: snap.clone(),
        });
    }
    catalog.sync_snapshots(&all)?;
    Ok(ImportOutcome { id, snapshot: snap })
}

fn read_entries<R: Read>(
    store: &BlobStore<'_>,
    slot: &mut PackSlot,
    input: R,
    progress: &dyn Progress,
    cancel: &AtomicBool,
    summary: &mut SnapshotSummary,
) -> Result<BTreeMap<Vec<u8>, Entry>, TarballError> {
    let decoder = zstd::stream::read::Decoder::new(input)?;
    let mut archive = tar::Archive::new(decoder);
    let mut root: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
    let mut chunker = Chunker::new(store.repo().config().chunker);
    let mut next_inode = 1u64;
    for entry in archive.entries()? {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(TarballError::Archive(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "import cancelled",
            )));
        }
        let mut entry = entry?;
        let raw = entry.path_bytes().into_owned();
        let parts = components(&raw)?;
        let Some(name) = parts.last().cloned() else {
            continue; // "./": the root itself.
        };
        let h = entry.header();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => NodeKind::File,
            tar::EntryType::Directory => NodeKind::Dir,
            tar::EntryType::Symlink => NodeKind::Symlink,
            tar::EntryType::Link => NodeKind::File,
            tar::EntryType::Fifo => NodeKind::Fifo,
            tar::EntryType::Char => NodeKind::CharDevice,
            tar::EntryType::Block => NodeKind::BlockDevice,
            _ => continue,
        };
        let mut node = blank(name.clone(), kind);
        node.mode = h.mode()? & 0o7777;
        node.uid = u32::try_from(h.uid()?).unwrap_or(0);
        node.gid = u32::try_from(h.gid()?).unwrap_or(0);
        node.mtime_ns = i64::try_from(h.mtime()?)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000);
        if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
            let major = h.device_major()?.unwrap_or(0);
            let minor = h.device_minor()?.unwrap_or(0);
            node.rdev = nix::sys::stat::makedev(u64::from(major), u64::from(minor));
        }
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let node_is_link = h.entry_type() == tar::EntryType::Link;
        match h.entry_type() {
            tar::EntryType::Link => {
                let target_raw = link.unwrap_or_default();
                let target = components(&target_raw)?;
                let Some(first) = find_leaf(&mut root, &target) else {
                    return Err(TarballError::Unsafe {
                        entry: String::from_utf8_lossy(&raw).into_owned(),
                        reason: "is a hard link to no earlier file".into(),
                    });
                };
                if first.inode == 0 {
                    first.inode = next_inode;
                    next_inode += 1;
                }
                first.links += 1;
                node.inode = first.inode;
                node.links = first.links;
                node.size = first.size;
                node.content = first.content.clone();
                node.content_lists = first.content_lists.clone();
            }
            tar::EntryType::Symlink => node.target = link.unwrap_or_default(),
            _ if kind == NodeKind::File => {
                let (ids, size) = store.save_stream(slot, &mut chunker, &mut entry, progress)?;
                node.size = size;
                (node.content, node.content_lists) = store.content_form(slot, ids)?;
            }
            _ => {}
        }
        progress.entry();
        match kind {
            NodeKind::Dir => summary.dirs += 1,
            NodeKind::File => {
                summary.files += 1;
                summary.total_bytes += node.size;
                if !node_is_link {
                    summary.files_read += 1;
                    summary.bytes_read += node.size;
                }
            }
            _ => {}
        }
        let parent = parent_of(&mut root, &parts, &raw)?;
        match (parent.get_mut(&name), kind) {
            (Some(Entry::Dir(existing, _)), NodeKind::Dir) => *existing = node,
            (Some(Entry::Dir(..)), _) => {
                return Err(TarballError::Unsafe {
                    entry: String::from_utf8_lossy(&raw).into_owned(),
                    reason: "replaces a folder of the same name".into(),
                });
            }
            (_, NodeKind::Dir) => {
                parent.insert(name, Entry::Dir(node, BTreeMap::new()));
            }
            _ => {
                parent.insert(name, Entry::Leaf(node));
            }
        }
    }
    Ok(root)
}

/// Stores a folder's tree, children first.
fn store_dir(
    store: &BlobStore<'_>,
    slot: &mut PackSlot,
    children: BTreeMap<Vec<u8>, Entry>,
) -> Result<Vec<BlobId>, TarballError> {
    let mut nodes = Vec::with_capacity(children.len());
    for (_, e) in children {
        match e {
            Entry::Leaf(n) => nodes.push(n),
            Entry::Dir(mut n, grand) => {
                n.subtree = store_dir(store, slot, grand)?;
                nodes.push(n);
            }
        }
    }
    Ok(store.save_tree(slot, nodes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_checked() {
        assert_eq!(
            components(b"./a//b/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(components(b"/etc/passwd").is_err());
        assert!(components(b"a/../../etc").is_err());
        assert!(components(b"..").is_err());
        assert!(components(b"./").unwrap().is_empty());
    }
}
