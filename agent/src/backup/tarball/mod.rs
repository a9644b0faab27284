//! Export and import of a snapshot as a standard `.tar.zst`, so data is never locked in.
//!
//! Export writes a GNU tar (long names, symlinks, hard links, fifos and devices, owners,
//! modes, mtimes) through zstd; `tar --zstd -x` reads it. Import reads any such archive into
//! a new snapshot, refusing the whole archive (and adding no snapshot) if an entry is
//! absolute, climbs with `..`, or would pass through a symlink or a file.

mod export;
mod import;

pub use export::{ExportSummary, export};
pub use import::{ImportOutcome, import};

use super::repo::RepoError;

/// An export or import that stopped.
#[derive(Debug, thiserror::Error)]
pub enum TarballError {
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A tree does not decode.
    #[error(transparent)]
    Tree(#[from] super::tree::TreeError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] super::catalog::CatalogError),
    /// Reading or writing the archive failed.
    #[error("archive: {0}")]
    Archive(#[from] std::io::Error),
    /// An entry would land outside the snapshot's root.
    #[error("refused: archive entry {entry:?} {reason}; nothing was imported")]
    Unsafe {
        /// The entry's path as the archive gives it.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
}
