//! Trees: a directory's entries, sorted by name, stored as blobs.
//!
//! A tree blob is one version byte and the bincode of its nodes. Identical directories give
//! identical bytes, so an unchanged directory costs nothing in the next snapshot. A file's
//! chunk list is inline when short; a long one is stored as list blobs of [`LIST_IDS`] ids, so
//! a changed large file rewrites a small list and an unchanged one is shared. A directory too
//! large for one blob is split across several tree blobs.

use serde::{Deserialize, Serialize};

use crate::backup::id::BlobId;

/// The tree format this build writes.
const TREE_VERSION: u8 = 1;
/// A file's chunk ids are inline up to this many.
pub const INLINE_IDS: usize = 16;
/// Ids per content list blob.
pub const LIST_IDS: usize = 1024;
/// A tree blob's encoded size before it is split (the decoder's limit is 16 MiB).
pub const TREE_SPLIT_BYTES: usize = 8 << 20;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A unix socket (recorded, restored as nothing: a socket cannot be recreated).
    Socket,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The entry's name: one path component, as the OS gave its bytes.
    pub name: Vec<u8>,
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch (change detection only).
    pub ctime_ns: i64,
    /// Size in bytes (files).
    pub size: u64,
    /// Inode number (hard-link detection on restore).
    pub inode: u64,
    /// Device of the inode.
    pub device: u64,
    /// Link count when backed up.
    pub links: u64,
    /// Device number (character and block devices).
    pub rdev: u64,
    /// A file's chunks in order, when there are at most [`INLINE_IDS`].
    pub content: Vec<BlobId>,
    /// A file's list blobs, when it has more chunks.
    pub content_lists: Vec<BlobId>,
    /// A directory's tree blobs (one unless it was split).
    pub subtree: Vec<BlobId>,
    /// A symlink's target bytes.
    pub target: Vec<u8>,
}

impl Node {
    /// A node with only a name and a kind: no permission bits, owner root, time zero, one
    /// link, no content.
    pub fn empty(name: Vec<u8>, kind: NodeKind) -> Self {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            size: 0,
            inode: 0,
            device: 0,
            links: 1,
            rdev: 0,
            content: Vec::new(),
            content_lists: Vec::new(),
            subtree: Vec::new(),
            target: Vec::new(),
        }
    }

    /// The name shown to humans (lossy UTF-8).
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A tree or list blob that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("tree blob {id} is damaged: {reason}")]
pub struct TreeError {
    /// The blob.
    pub id: BlobId,
    /// What is wrong.
    pub reason: String,
}

/// Encodes nodes (already sorted by name) as one tree blob's bytes.
pub fn encode_nodes(nodes: &[Node]) -> Vec<u8> {
    let mut out = vec![TREE_VERSION];
    // Nodes hold only plain data: encoding cannot fail.
    out.extend(muster_shared::codec::encode_value(nodes).unwrap_or_default());
    out
}

/// Splits sorted nodes into groups that each encode under [`TREE_SPLIT_BYTES`].
pub fn split_nodes(nodes: Vec<Node>) -> Vec<Vec<u8>> {
    let whole = encode_nodes(&nodes);
    if whole.len() <= TREE_SPLIT_BYTES || nodes.len() < 2 {
        return vec![whole];
    }
    let mid = nodes.len() / 2;
    let mut left = nodes;
    let right = left.split_off(mid);
    let mut out = split_nodes(left);
    out.extend(split_nodes(right));
    out
}

/// Decodes a tree blob.
pub fn decode_nodes(id: &BlobId, bytes: &[u8]) -> Result<Vec<Node>, TreeError> {
    let err = |reason: String| TreeError { id: *id, reason };
    match bytes.split_first() {
        Some((&TREE_VERSION, body)) => {
            muster_shared::codec::decode_value(body, muster_shared::codec::MAX_VALUE_BYTES)
                .map_err(|e| err(e.to_string()))
        }
        Some((v, _)) => Err(err(format!("unknown tree version {v}"))),
        None => Err(err("empty".into())),
    }
}

/// Encodes a content list blob.
pub fn encode_list(ids: &[BlobId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + ids.len() * 32);
    out.push(TREE_VERSION);
    for id in ids {
        out.extend_from_slice(&id.0);
    }
    out
}

/// Decodes a content list blob.
pub fn decode_list(id: &BlobId, bytes: &[u8]) -> Result<Vec<BlobId>, TreeError> {
    let err = |reason: String| TreeError { id: *id, reason };
    let body = match bytes.split_first() {
        Some((&TREE_VERSION, body)) => body,
        _ => return Err(err("not a content list".into())),
    };
    if body.len() % 32 != 0 {
        return Err(err(format!(
            "list of {} bytes is not whole ids",
            body.len()
        )));
    }
    Ok(body
        .chunks_exact(32)
        .map(|c| {
            let mut a = [0u8; 32];
            a.copy_from_slice(c);
            BlobId(a)
        })
        .collect())
}

/// Checks that a node's name is one plain path component: not empty, not `.` or `..`, no
/// `/` and no NUL. Restore and import refuse anything else.
pub fn check_name(name: &[u8]) -> Result<(), String> {
    if name.is_empty() || name == b"." || name == b".." {
        return Err(format!(
            "entry name {:?} is not allowed",
            String::from_utf8_lossy(name)
        ));
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(format!(
            "entry name {:?} contains '/' or NUL",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn file(name: &str) -> Node {
        Node {
            name: name.as_bytes().to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime_ns: 1,
            ctime_ns: 2,
            size: 3,
            inode: 4,
            device: 5,
            links: 1,
            rdev: 0,
            content: vec![BlobId([9; 32])],
            content_lists: vec![],
            subtree: vec![],
            target: vec![],
        }
    }

    #[test]
    fn trees_and_lists_round_trip() {
        let nodes = vec![file("a"), file("b\u{7f}\u{e9}")];
        let id = BlobId([0; 32]);
        assert_eq!(decode_nodes(&id, &encode_nodes(&nodes)).unwrap(), nodes);
        let ids = vec![BlobId([1; 32]), BlobId([2; 32])];
        assert_eq!(decode_list(&id, &encode_list(&ids)).unwrap(), ids);
        assert!(decode_list(&id, &[1, 2, 3]).is_err());
        assert!(decode_nodes(&id, &[9, 1]).is_err());
        assert!(decode_nodes(&id, &[]).is_err());
    }

    #[test]
    fn names_that_escape_are_refused() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(b"...").is_ok());
        assert!(check_name(b"-rf").is_ok());
    }

    #[test]
    fn big_directories_split() {
        let mut nodes = Vec::new();
        let mut f = file("x");
        f.target = vec![7; 100_000];
        for i in 0..200 {
            let mut n = f.clone();
            n.name = format!("{i:04}").into_bytes();
            nodes.push(n);
        }
        let parts = split_nodes(nodes.clone());
        assert!(parts.len() > 1);
        let id = BlobId([0; 32]);
        let back: Vec<Node> = parts
            .iter()
            .flat_map(|p| decode_nodes(&id, p).unwrap())
            .collect();
        assert_eq!(back, nodes);
    }
}
