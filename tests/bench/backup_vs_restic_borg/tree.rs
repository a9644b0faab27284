//! Folder trees: their size on disk, a listing of their metadata, reading every file once,
//! and checking that a restored tree equals its source.
//!
//! A restore is equal when both trees hold the same relative paths with the same kinds and
//! permission bits, files have the same sizes, contents and mtimes (to the nanosecond), and
//! folders the same mtimes. Owners and access times are not compared. Contents are compared
//! byte for byte in 1 MiB reads: the tests crate has no hash, and both trees are in the page
//! cache right after a restore, so reading both is about as fast as hashing one.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Read size for contents.
const BLOCK: usize = 1 << 20;
/// At most this many differences are reported.
pub const MAX_DIFFERENCES: usize = 20;

/// What a folder takes on disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// `st_blocks × 512` over every entry, the folder itself included, hard links once.
    pub allocated: u64,
    /// The sum of the files' lengths.
    pub apparent: u64,
    /// Regular files.
    pub files: u64,
}

/// Disk usage of `root`, like `du -s --block-size=1`; zero when it does not exist.
pub fn disk_usage(root: &Path) -> anyhow::Result<Usage> {
    let mut usage = Usage::default();
    if !root.exists() {
        return Ok(usage);
    }
    let mut seen = HashSet::new();
    for (_, meta) in walk(root)? {
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        usage.allocated += meta.blocks() * 512;
        if meta.is_file() {
            usage.apparent += meta.len();
            usage.files += 1;
        }
    }
    Ok(usage)
}

/// One entry's compared metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    /// Length for files, 0 for anything else (folder sizes depend on the file system's history).
    pub size: u64,
    /// mtime in nanoseconds since the epoch.
    pub mtime_ns: i128,
}

/// Every entry under `root` (itself included, as ""), by relative path.
pub fn listing(root: &Path) -> anyhow::Result<BTreeMap<PathBuf, Entry>> {
    Ok(walk(root)?
        .into_iter()
        .map(|(path, meta)| {
            let relative = path
                .strip_prefix(root)
                .expect("walk yields paths under root")
                .to_path_buf();
            let entry = Entry {
                mode: meta.mode(),
                size: if meta.is_file() { meta.len() } else { 0 },
                mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            };
            (relative, entry)
        })
        .collect())
}

/// A listing as text, one entry a line (`path mode size mtime_ns`): what the dataset stamp keeps.
pub fn listing_text(listing: &BTreeMap<PathBuf, Entry>) -> String {
    listing
        .iter()
        .map(|(path, e)| {
            format!(
                "{}\t{:o}\t{}\t{}\n",
                path.display(),
                e.mode,
                e.size,
                e.mtime_ns
            )
        })
        .collect()
}

/// Reads every regular file under `root` once, in path order, in 1 MiB reads on one thread:
/// `(bytes, files)`.
pub fn read_all(root: &Path) -> anyhow::Result<(u64, u64)> {
    let mut buf = vec![0u8; BLOCK];
    let (mut bytes, mut files) = (0u64, 0u64);
    for (path, meta) in walk(root)? {
        if !meta.is_file() {
            continue;
        }
        let mut file = File::open(&path).with_context(|| format!("open {}", path.display()))?;
        loop {
            let n = file
                .read(&mut buf)
                .with_context(|| format!("read {}", path.display()))?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
        files += 1;
    }
    Ok((bytes, files))
}

/// What a successful comparison covered.
#[derive(Debug, Clone, Copy)]
pub struct Compared {
    /// Entries (files and folders) compared.
    pub entries: usize,
    /// Bytes of file contents compared.
    pub bytes: u64,
}

/// Checks that `actual` (a restore) equals `expected` (its source); `Err` lists the first
/// differences found, or the I/O error that stopped the check.
pub fn compare(expected: &Path, actual: &Path) -> Result<Compared, Vec<String>> {
    let want = listing(expected).map_err(|e| vec![format!("{e:#}")])?;
    let got = listing(actual).map_err(|e| vec![format!("{e:#}")])?;
    let mut differences = Vec::new();
    for path in want.keys().filter(|p| !got.contains_key(*p)) {
        differences.push(format!("missing: {}", path.display()));
    }
    for path in got.keys().filter(|p| !want.contains_key(*p)) {
        differences.push(format!("extra: {}", path.display()));
    }
    let mut bytes = 0;
    for (path, w) in &want {
        if differences.len() >= MAX_DIFFERENCES {
            break;
        }
        let Some(g) = got.get(path) else { continue };
        if w != g {
            differences.push(format!(
                "{}: mode {:o} size {} mtime_ns {} restored as mode {:o} size {} mtime_ns {}",
                path.display(),
                w.mode,
                w.size,
                w.mtime_ns,
                g.mode,
                g.size,
                g.mtime_ns
            ));
            continue;
        }
        if w.mode & 0o170_000 == 0o100_000 {
            match same_contents(&expected.join(path), &actual.join(path)) {
                Ok(true) => bytes += w.size,
                Ok(false) => differences.push(format!("{}: contents differ", path.display())),
                Err(e) => differences.push(format!("{}: {e:#}", path.display())),
            }
        }
    }
    if differences.is_empty() {
        Ok(Compared {
            entries: want.len(),
            bytes,
        })
    } else {
        differences.truncate(MAX_DIFFERENCES);
        Err(differences)
    }
}

fn same_contents(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let open = |p: &Path| File::open(p).with_context(|| format!("open {}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; BLOCK], vec![0u8; BLOCK]);
    loop {
        let na = fill(&mut fa, &mut ba).with_context(|| format!("read {}", a.display()))?;
        let nb = fill(&mut fb, &mut bb).with_context(|| format!("read {}", b.display()))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends: the length read.
fn fill(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Every entry under `root`, itself first, then depth first in name order; symlinks are not
/// followed.
fn walk(root: &Path) -> anyhow::Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta =
            std::fs::symlink_metadata(&path).with_context(|| format!("stat {}", path.display()))?;
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&path)
                .with_context(|| format!("list {}", path.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .with_context(|| format!("list {}", path.display()))?;
            children.sort();
            stack.extend(children.into_iter().rev());
        }
        out.push((path, meta));
    }
    Ok(out)
}
