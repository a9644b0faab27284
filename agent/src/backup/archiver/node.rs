//! A tree node from a file's metadata, and the exclude patterns.

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use globset::{GlobSet, GlobSetBuilder};

use crate::backup::tree::{Node, NodeKind};

/// The node for an entry named `name` with metadata `meta` (from `symlink_metadata`).
pub fn node_from_meta(name: Vec<u8>, meta: &Metadata) -> Node {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else if ft.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    };
    Node {
        name,
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        size: if kind == NodeKind::File {
            meta.size()
        } else {
            0
        },
        inode: meta.ino(),
        device: meta.dev(),
        links: meta.nlink(),
        rdev: meta.rdev(),
        content: Vec::new(),
        content_lists: Vec::new(),
        subtree: Vec::new(),
        target: Vec::new(),
    }
}

/// Exclude patterns, restic-style: a pattern without `/` matches an entry's name at any
/// depth; a pattern with `/` matches the whole absolute path (`**` spans folders).
#[derive(Debug)]
pub struct Excludes {
    names: GlobSet,
    paths: GlobSet,
    prefixes: Vec<std::path::PathBuf>,
}

impl Excludes {
    /// Compiles `patterns`; `always` are paths excluded with everything under them (the
    /// repository and the cache, so a backup never reads itself).
    pub fn new(patterns: &[String], always: Vec<std::path::PathBuf>) -> Result<Self, String> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let glob = globset::GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("exclude pattern {p:?}: {e}"))?;
            if p.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| format!("exclude patterns: {e}"));
        Ok(Excludes {
            names: build(names)?,
            paths: build(paths)?,
            prefixes: always,
        })
    }

    /// Whether `path` (absolute) with file name `name` is excluded.
    pub fn is_excluded(&self, path: &Path, name: &std::ffi::OsStr) -> bool {
        self.names.is_match(name)
            || self.paths.is_match(path)
            || self.prefixes.iter().any(|p| path == p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn names_match_anywhere_paths_match_whole() {
        let ex = Excludes::new(
            &["*.tmp".into(), "/data/**/cache".into()],
            vec!["/repo".into()],
        )
        .unwrap();
        assert!(ex.is_excluded(Path::new("/a/b/x.tmp"), OsStr::new("x.tmp")));
        assert!(!ex.is_excluded(Path::new("/a/b/x.tmpl"), OsStr::new("x.tmpl")));
        assert!(ex.is_excluded(Path::new("/data/1/2/cache"), OsStr::new("cache")));
        assert!(!ex.is_excluded(Path::new("/other/cache"), OsStr::new("cache")));
        assert!(ex.is_excluded(Path::new("/repo"), OsStr::new("repo")));
        assert!(Excludes::new(&["a[".into()], vec![]).is_err());
    }
}
