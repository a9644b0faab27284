//! Backups: a deduplicating, compressing repository in a local folder, and what reads and
//! writes it.
//!
//! Layers, bottom up: `id`, `chunker`, `compress` (pure); `repo` (packs, index, lock: knows
//! blobs only); `tree` and `snapshot` (what blobs mean); `catalog` (the local cache of
//! snapshot statistics and the files cache); `archiver` (backup) and `restorer` (restore).
//! The format is described in docs/backup.md.

pub mod archiver;
pub mod catalog;
pub mod checker;
pub mod chunker;
pub mod compress;
pub mod crypto;
pub mod id;
pub mod prune;
pub mod repo;
pub mod restorer;
pub mod retention;
pub mod schedule;
pub mod sets;
pub mod snapshot;
pub mod tarball;
pub mod tree;

#[cfg(test)]
mod tests;

/// Checks exclude patterns (for config validation).
pub fn excludes_valid(patterns: &[String]) -> Result<(), String> {
    archiver::Excludes::new(patterns, Vec::new()).map(|_| ())
}

/// This host's name, as snapshots and locks record it.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string())
}
