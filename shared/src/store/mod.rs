//! The only place that touches sled: typed trees, bincode values, a small cache, explicit
//! commit points.
//!
//! It owns opening the database ([`Store::open`], with a cache sized for the process instead
//! of sled's 1 GiB default), typed trees ([`Tree`]: keys through [`Key`], values through
//! [`Record`] as one schema byte + bincode) and durability
//! ([`Store::flush`]). It leaves out what is stored: the agent's buffer and jobs, the
//! collector's tsdb, outbox and cursors each own their trees and their migrations.
//! Multi-tree transactions are deliberately absent: each owner keeps what must change
//! together in one tree and writes it with one [`TreeBatch`].
//!
//! # Durability and interruptions
//!
//! A write is in memory (and in sled's log buffers) until [`Store::flush`] returns; flush is
//! the commit point. A process killed at any moment leaves a store that reopens and holds
//! everything written before the last completed flush. Of the writes after it, any subset
//! may be there (sled also flushes in the background every 500 ms), but each
//! [`Tree::apply`] batch is there whole or not at all, and so is each single write.
//! `crash_test` proves this by SIGKILLing a writer process at random points.
//!
//! # Blocking
//!
//! Every method blocks on disk I/O (flush waits for fsync). Async code calls the store from
//! `spawn_blocking`, one hop per unit of work (a sample pass, a job step), not per call;
//! [`Store::flush_async`] is the one exception, running on sled's own thread.
//!
//! # Backend
//!
//! sled `=0.34.7`. Its last release is from 2021 and has reports of databases that do not
//! reopen after an abrupt stop; if the crash test ever shows that, the store moves to redb
//! behind this same interface, which therefore exposes no sled type (errors carry opaque
//! sources).

mod key;
mod record;
mod tree;

#[cfg(test)]
mod crash_test;

pub use key::{Key, KeyError};
pub use record::{MAX_RECORD_BYTES, Record};
pub use tree::{CasConflict, Iter, Tree, TreeBatch};

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::CodecError;

/// How to open a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// The page cache size in bytes. Memory use grows to about this much beyond the working
    /// set; sled's own default (1 GiB) is never used.
    pub cache_bytes: u64,
}

impl StoreOptions {
    /// An agent's store: 1 MiB of cache. The agent must stay small, and its buffer is
    /// written once and read once or twice soon after (1 MiB holds about 100 recent rounds
    /// of a 2,000-series host). The cache fills slowly (a round is ~8 KB), so a larger one
    /// shows up as RSS that creeps up for hours.
    pub fn agent() -> Self {
        StoreOptions {
            cache_bytes: 1 << 20,
        }
    }

    /// A collector's store: 64 MiB of cache (the tsdb's index and recent blocks are hot).
    pub fn collector() -> Self {
        StoreOptions {
            cache_bytes: 64 << 20,
        }
    }
}

/// Why a store operation failed. Each variant names its subject: the store's path, or the
/// tree and the key (hex, cut at 64 bytes).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the store open (sled locks its data file). For the collector's
    /// CLI this usually means the collector is running.
    #[error("store {path} is in use by another process")]
    Locked {
        /// The store's directory.
        path: PathBuf,
    },
    /// The store could not be opened (permissions, disk, or a damaged database).
    #[error("cannot open store {path}")]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A store-wide operation (`flush`, `size_on_disk`) failed.
    #[error("{op} on store {path} failed")]
    Store {
        /// The store's directory.
        path: PathBuf,
        /// The operation.
        op: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// An operation on a tree failed in the backend (I/O, or sled reporting corruption).
    #[error("{op} on tree {tree} failed")]
    Backend {
        /// The tree.
        tree: &'static str,
        /// The operation (`get`, `insert`, `apply`, ...).
        op: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A value could not be encoded; nothing was written.
    #[error("cannot encode value for key {key_hex} of tree {tree}")]
    Encode {
        /// The tree.
        tree: &'static str,
        /// The key, hex.
        key_hex: String,
        /// Why.
        #[source]
        source: CodecError,
    },
    /// A value is larger than [`MAX_RECORD_BYTES`]; nothing was written.
    #[error("value of {len} bytes for key {key_hex} of tree {tree} exceeds {limit} bytes")]
    ValueTooLarge {
        /// The tree.
        tree: &'static str,
        /// The key, hex.
        key_hex: String,
        /// Encoded length, schema byte included.
        len: usize,
        /// [`MAX_RECORD_BYTES`].
        limit: usize,
    },
    /// A stored value was written under another [`Record::SCHEMA`]: migrate the tree.
    #[error("value for key {key_hex} of tree {tree} has schema {found}, expected {expected}")]
    SchemaMismatch {
        /// The tree.
        tree: &'static str,
        /// The key, hex.
        key_hex: String,
        /// The stored schema byte.
        found: u8,
        /// The reader's [`Record::SCHEMA`].
        expected: u8,
    },
    /// A stored value has the right schema byte but does not decode.
    #[error("cannot decode value for key {key_hex} of tree {tree}")]
    Decode {
        /// The tree.
        tree: &'static str,
        /// The key, hex.
        key_hex: String,
        /// Why.
        #[source]
        source: CodecError,
    },
    /// A stored value is empty: not even a schema byte (not written by this module).
    #[error("value for key {key_hex} of tree {tree} is empty")]
    EmptyValue {
        /// The tree.
        tree: &'static str,
        /// The key, hex.
        key_hex: String,
    },
    /// A stored key does not decode as the tree's key type.
    #[error("cannot decode key {key_hex} of tree {tree}")]
    Key {
        /// The tree.
        tree: &'static str,
        /// The key, hex.
        key_hex: String,
        /// Why.
        #[source]
        source: KeyError,
    },
}

/// An open store: a directory holding one sled database. Cheap to clone (clones share the
/// database); the database closes, and its lock is released, when the last clone and the
/// last [`Tree`] are dropped.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    path: Arc<PathBuf>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in directory `path`. After a crash this runs
    /// sled's recovery, which reads the log written since the last snapshot.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process has the store open,
    /// [`StoreError::Open`] otherwise.
    ///
    /// # Example
    /// ```
    /// use muster_shared::store::{Record, Store, StoreOptions};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Cursor {
    ///     after: u64,
    /// }
    /// impl Record for Cursor {
    ///     const SCHEMA: u8 = 1;
    /// }
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path(), StoreOptions::collector())?;
    /// let cursors = store.tree::<String, Cursor>("cursors")?;
    /// cursors.insert(&"web1".to_owned(), &Cursor { after: 42 })?;
    /// store.flush()?; // the commit point
    /// assert_eq!(cursors.get(&"web1".to_owned())?, Some(Cursor { after: 42 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            .open()
            .map_err(|source| {
                if is_lock_conflict(&source) {
                    StoreError::Locked {
                        path: path.to_owned(),
                    }
                } else {
                    StoreError::Open {
                        path: path.to_owned(),
                        source: Box::new(source),
                    }
                }
            })?;
        Ok(Store {
            db,
            path: Arc::new(path.to_owned()),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tree `name` (created if missing) with key type `K` and value type `V`.
    ///
    /// The types are not recorded in the store: one tree name must always be used with the
    /// same `K`, and `V` versions are told apart by [`Record::SCHEMA`].
    ///
    /// # Errors
    /// [`StoreError::Backend`] on I/O failure.
    pub fn tree<K: Key, V: Record>(&self, name: &'static str) -> Result<Tree<K, V>, StoreError> {
        let inner = self
            .db
            .open_tree(name)
            .map_err(|source| StoreError::Backend {
                tree: name,
                op: "open_tree",
                source: Box::new(source),
            })?;
        Ok(Tree::new(name, inner))
    }

    /// Removes tree `name` and every record in it, if the store has such a tree, and
    /// returns how many records it held (`None`: there was no such tree). For an owner
    /// retiring a tree it no longer uses; the removal is durable at the next
    /// [`Store::flush`]. Counting walks the tree once (O(n)).
    ///
    /// # Errors
    /// [`StoreError::Backend`] on I/O failure.
    pub fn drop_tree(&self, name: &'static str) -> Result<Option<usize>, StoreError> {
        let backend = |op| {
            move |source: sled::Error| StoreError::Backend {
                tree: name,
                op,
                source: Box::new(source),
            }
        };
        // `open_tree` would create it: look first.
        if !self
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == name.as_bytes())
        {
            return Ok(None);
        }
        let tree = self.db.open_tree(name).map_err(backend("open_tree"))?;
        let mut records = 0;
        for key in tree.iter().keys() {
            key.map_err(backend("drop_tree"))?;
            records += 1;
        }
        drop(tree);
        self.db.drop_tree(name).map_err(backend("drop_tree"))?;
        Ok(Some(records))
    }

    /// Writes everything written so far (in every tree) to disk and fsyncs: the commit point.
    /// Once it returns, those writes survive a crash or power loss. Returns the number of
    /// bytes it wrote. Blocks for the fsync (milliseconds to tens of milliseconds).
    ///
    /// # Errors
    /// [`StoreError::Store`] on I/O failure; then nothing is known to be durable beyond the
    /// previous successful flush.
    pub fn flush(&self) -> Result<usize, StoreError> {
        self.db
            .flush()
            .map_err(|source| self.store_error("flush", source))
    }

    /// [`Store::flush`] without blocking the caller's thread: sled runs it on its own thread.
    /// Same guarantee once the future completes with `Ok`.
    ///
    /// # Errors
    /// As [`Store::flush`].
    pub async fn flush_async(&self) -> Result<usize, StoreError> {
        self.db
            .flush_async()
            .await
            .map_err(|source| self.store_error("flush_async", source))
    }

    /// The bytes the store's files take on disk.
    ///
    /// # Errors
    /// [`StoreError::Store`] on I/O failure.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db
            .size_on_disk()
            .map_err(|source| self.store_error("size_on_disk", source))
    }

    fn store_error(&self, op: &'static str, source: sled::Error) -> StoreError {
        StoreError::Store {
            path: self.path.to_path_buf(),
            op,
            source: Box::new(source),
        }
    }
}

/// Whether `err` is sled failing to take its exclusive lock on the data file.
///
/// sled 0.34.7 (`Config::try_lock`, src/config.rs) turns the failed `flock(LOCK_EX |
/// LOCK_NB)` into `Error::Io(io::Error::new(ErrorKind::Other, "could not acquire lock on
/// ..."))`, losing the errno; the message is all there is to match. The version is pinned
/// exactly, and a test (`second_open_is_locked`) catches a change.
fn is_lock_conflict(err: &sled::Error) -> bool {
    matches!(err, sled::Error::Io(io) if io.kind() == io::ErrorKind::Other
        && io.to_string().starts_with("could not acquire lock"))
}

#[cfg(test)]
mod tests;
