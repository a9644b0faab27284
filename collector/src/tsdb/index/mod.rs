//! The series index: labels ↔ series id, on disk in the series log and in memory as
//! interned symbols with postings (label pair → ids).
//!
//! # On disk (`<tsdb dir>/series.log`, `log/`)
//!
//! An append-only file of records, each a CRC-checked zstd frame holding the (id, labels)
//! pairs of the series one [`Index::resolve`] call created; the layout is in
//! `log/format.rs`, and what a crash or a damaged byte leaves behind in `log/mod.rs`.
//! Postings are not stored: they are rebuilt from the labels at open. About 7 bytes per
//! series for a host's series (sled's tree, which held the index before, took 517; it is
//! moved into the log once, by `migrate.rs`).
//!
//! Ids are handed out in increasing order from 1 and never reused: at open the next id is
//! past the largest id in the log *and* in the blocks (a block whose series was cut off
//! the log with a damaged record keeps its id to itself).
//!
//! # In memory ([`MemIndex`], `memory.rs`)
//!
//! Interned strings and label pairs, series as slices of pair ids, postings per pair. It is
//! rebuilt from the log at open and is what queries read. Selection by matchers is in
//! `select.rs`.
//!
//! # Writing
//!
//! [`Index::resolve`] appends the new series' record and fdatasyncs before it puts them in
//! memory or returns their ids, so an id a caller stores samples under is always on disk.
//! Creators take turns (the log's lock); readers are not held up by the fsync, only by
//! the short insertion into memory after it.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use muster_shared::store::Store;

use super::error::TsdbError;
use crate::series::Labels;

mod log;
mod memory;
mod migrate;
mod select;

pub use log::{SeriesLog, SeriesLogError};
pub use memory::MemIndex;

#[cfg(test)]
pub(crate) use log::Fault;

/// A series' id: stable for the store's life, never reused.
pub type SeriesId = u32;

/// The label every stored series carries, naming its host.
pub const HOST_LABEL: &str = "host";
/// No symbol (a series without a `host` label).
pub const NO_SYMBOL: u32 = u32::MAX;

/// A series [`Index::resolve`] found or created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// Its id.
    pub id: SeriesId,
    /// Whether this call created it.
    pub created: bool,
}

/// The index: the series log and the in-memory form, kept in step.
#[derive(Debug)]
pub struct Index {
    log: Mutex<SeriesLog>,
    mem: RwLock<MemIndex>,
    next_id: AtomicU32,
}

impl Index {
    /// Loads the index from the series log in `dir` (the tsdb directory; created if
    /// missing), first moving an index an earlier build kept in `store` into a new log.
    /// New ids start past the largest stored one and past `min_next_id` (from the
    /// blocks). Reads about 7 bytes per series; a torn or damaged end of the log is cut
    /// off with a log line (`log/mod.rs`).
    ///
    /// # Errors
    /// [`TsdbError::OpenIndex`] when the log cannot be created, read or repaired, or is
    /// not a series log; [`TsdbError::Open`] when sled's old index cannot be read.
    pub fn open(store: &Store, dir: &Path, min_next_id: SeriesId) -> Result<Index, TsdbError> {
        let path = dir.join(log::FILE_NAME);
        std::fs::create_dir_all(dir).map_err(|source| TsdbError::OpenIndex {
            source: SeriesLogError::Io {
                op: "creating the directory of",
                path: path.clone(),
                source,
            },
        })?;
        migrate::ensure_log(store, &path)?;
        let mut mem = MemIndex::default();
        let mut max_id = None;
        let mut skipped = 0u64;
        let log = SeriesLog::open(&path, |id, labels| {
            max_id = max_id.max(Some(id));
            // Only a bug writes an id or a label set twice; the first stays.
            if mem.contains(id) || mem.lookup(&labels).is_some() {
                skipped += 1;
            } else {
                mem.insert(id, &labels);
            }
        })
        .map_err(|source| TsdbError::OpenIndex { source })?;
        if skipped > 0 {
            tracing::warn!(path = %path.display(), skipped,
                "the series log repeats ids or label sets; kept the first of each");
        }
        let next_id = max_id
            .map_or(1, |id| id.saturating_add(1))
            .max(min_next_id)
            .max(1);
        Ok(Index {
            log: Mutex::new(log),
            mem: RwLock::new(mem),
            next_id: AtomicU32::new(next_id),
        })
    }

    /// The in-memory index, read-locked. Hold it briefly: series creation waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, MemIndex> {
        self.mem.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// One past the largest id handed out.
    pub fn next_id(&self) -> SeriesId {
        self.next_id.load(Ordering::Acquire)
    }

    /// Bytes of the series log on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.lock_log().len()
    }

    /// The ids of `wanted` (each a full label set), creating the missing ones in one
    /// record of the log unless that would exceed `max_series` series (then `None`).
    /// Blocks for the log's fdatasync when it creates series.
    ///
    /// # Errors
    /// [`TsdbError::IndexWrite`] when the new series cannot be written (disk full, I/O;
    /// retryable); then none of them exist, on disk or in memory.
    pub fn resolve(
        &self,
        host: &str,
        wanted: &[Labels],
        max_series: usize,
    ) -> Result<Vec<Option<Resolved>>, TsdbError> {
        let mut out: Vec<Option<Resolved>> = {
            let mem = self.read();
            wanted
                .iter()
                .map(|l| mem.lookup(l).map(|id| Resolved { id, created: false }))
                .collect()
        };
        if out.iter().all(Option::is_some) {
            return Ok(out);
        }
        // Only a holder of the log's lock changes memory or the next id, so what is
        // decided under the read lock below still holds when memory is updated.
        let mut log = self.lock_log();
        let mut next = self.next_id.load(Ordering::Acquire);
        let mut created: Vec<(usize, SeriesId)> = Vec::new();
        // Labels created by this call: a host's first batch creates hundreds at once.
        let mut fresh: std::collections::HashMap<&Labels, SeriesId> =
            std::collections::HashMap::new();
        {
            let mem = self.read();
            let mut room = max_series.saturating_sub(mem.len());
            for (i, labels) in wanted.iter().enumerate() {
                if out[i].is_some() {
                    continue;
                }
                if let Some(id) = mem.lookup(labels) {
                    out[i] = Some(Resolved { id, created: false });
                    continue;
                }
                // The same labels twice in one call: the first creation serves both.
                if let Some(&id) = fresh.get(labels) {
                    out[i] = Some(Resolved { id, created: false });
                    continue;
                }
                if room == 0 || next == u32::MAX {
                    continue;
                }
                room -= 1;
                created.push((i, next));
                fresh.insert(labels, next);
                out[i] = Some(Resolved {
                    id: next,
                    created: true,
                });
                next += 1;
            }
        }
        if created.is_empty() {
            return Ok(out);
        }
        let series: Vec<(SeriesId, &Labels)> =
            created.iter().map(|&(i, id)| (id, &wanted[i])).collect();
        log.append(&series)
            .map_err(|source| TsdbError::IndexWrite {
                host: host.to_owned(),
                count: created.len(),
                source,
            })?;
        let mut mem = self.mem.write().unwrap_or_else(PoisonError::into_inner);
        for (id, labels) in series {
            mem.insert(id, labels);
        }
        self.next_id.store(next, Ordering::Release);
        Ok(out)
    }

    /// Arms (or disarms) a failure of the next appends to the log.
    #[cfg(test)]
    pub(crate) fn set_fault(&self, fault: Option<log::Fault>) {
        self.lock_log().set_fault(fault);
    }

    fn lock_log(&self) -> std::sync::MutexGuard<'_, SeriesLog> {
        // Poisoned: the log's fields change only after a write succeeded, so they are
        // consistent at every step.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    /// The index as the tsdb lays it out: sled in `<dir>/store`, the log in `<dir>/tsdb`.
    pub(crate) fn open_index(dir: &Path, min_next_id: SeriesId) -> Index {
        let store = crate::tsdb::tests::open_store(&dir.join("store"));
        Index::open(&store, &dir.join("tsdb"), min_next_id).unwrap()
    }

    #[test]
    fn ids_are_stable_across_reopen_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = labels(&[("__name__", "up"), ("host", "web1")]);
        let b = labels(&[("__name__", "up"), ("host", "web2")]);
        let (id_a, id_b) = {
            let index = open_index(dir.path(), 1);
            let got = index
                .resolve("web1", &[a.clone(), b.clone(), a.clone()], 10)
                .unwrap();
            assert_eq!(got[0].map(|r| r.created), Some(true));
            assert_eq!(
                got[2].map(|r| (r.id, r.created)),
                got[0].map(|r| (r.id, false))
            );
            (got[0].unwrap().id, got[1].unwrap().id)
        };
        let index = open_index(dir.path(), 1);
        let again = index.resolve("web1", &[b.clone(), a.clone()], 10).unwrap();
        assert_eq!(
            again[0],
            Some(Resolved {
                id: id_b,
                created: false
            })
        );
        assert_eq!(
            again[1],
            Some(Resolved {
                id: id_a,
                created: false
            })
        );
        let c = labels(&[("__name__", "up"), ("host", "web3")]);
        let new = index.resolve("web3", std::slice::from_ref(&c), 10).unwrap()[0].unwrap();
        assert!(new.id > id_b && new.created);
        drop(index);
        // A floor from the blocks pushes new ids past ids only the blocks know.
        let index = open_index(dir.path(), 100);
        assert_eq!(index.read().lookup(&c), Some(new.id));
        let d = labels(&[("__name__", "up"), ("host", "web4")]);
        assert_eq!(index.resolve("web4", &[d], 10).unwrap()[0].unwrap().id, 100);
        drop(index);
        // And the log alone keeps ids past it after that.
        assert_eq!(open_index(dir.path(), 1).next_id(), 101);
    }

    #[test]
    fn postings_and_labels_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let all: Vec<Labels> = (0..20)
            .map(|i| {
                labels(&[
                    ("__name__", "node_cpu_seconds_total"),
                    ("cpu", &(i % 4).to_string()),
                    ("host", &format!("h{}", i / 4)),
                ])
            })
            .collect();
        let postings = |index: &Index| {
            let mem = index.read();
            let cpu = mem.symbol("cpu").unwrap();
            let two = mem.symbol("2").unwrap();
            mem.postings[mem.pair(cpu, two).unwrap() as usize].clone()
        };
        let before = {
            let index = open_index(dir.path(), 1);
            // Two calls, two records.
            index.resolve("h", &all[..8], 100).unwrap();
            index.resolve("h", &all[8..], 100).unwrap();
            postings(&index)
        };
        assert_eq!(before.len(), 5);
        let index = open_index(dir.path(), 1);
        assert_eq!(postings(&index), before);
        let mem = index.read();
        assert_eq!(mem.len(), 20);
        assert_eq!(mem.labels(before[0]).unwrap(), all[2]);
        assert_eq!(mem.string(mem.host_of(before[0])), "h0");
        for (i, l) in all.iter().enumerate() {
            assert_eq!(mem.lookup(l), Some(i as SeriesId + 1));
        }
    }

    #[test]
    fn failed_append_creates_nothing_and_a_retry_works() {
        let dir = tempfile::tempdir().unwrap();
        let index = open_index(dir.path(), 1);
        let a = labels(&[("__name__", "up"), ("host", "web1")]);
        let b = labels(&[("__name__", "load1"), ("host", "web1")]);
        index.resolve("web1", std::slice::from_ref(&a), 10).unwrap();
        let log_path = dir.path().join("tsdb").join(log::FILE_NAME);
        let bytes = std::fs::read(&log_path).unwrap();
        for truncate_fails in [false, true] {
            index.set_fault(Some(log::Fault {
                write_bytes: 9,
                truncate_fails,
            }));
            let err = index
                .resolve("web1", &[a.clone(), b.clone()], 10)
                .unwrap_err();
            assert!(
                matches!(err, TsdbError::IndexWrite { count: 1, .. }),
                "{err}"
            );
            assert!(err.is_retryable(), "{err}");
            assert_eq!(index.read().lookup(&b), None);
            assert_eq!(index.next_id(), 2);
            if !truncate_fails {
                assert_eq!(std::fs::read(&log_path).unwrap(), bytes);
            }
        }
        index.set_fault(None);
        let got = index.resolve("web1", &[a, b.clone()], 10).unwrap();
        assert_eq!(
            got[1],
            Some(Resolved {
                id: 2,
                created: true
            })
        );
        drop(index);
        // The retry's record replaced what the failed ones left.
        assert_eq!(open_index(dir.path(), 1).read().lookup(&b), Some(2));
    }

    #[test]
    fn series_limit_refuses_new_series_only() {
        let dir = tempfile::tempdir().unwrap();
        let index = open_index(dir.path(), 1);
        let a = labels(&[("__name__", "a")]);
        let b = labels(&[("__name__", "b")]);
        index.resolve("h", std::slice::from_ref(&a), 1).unwrap();
        let got = index.resolve("h", &[a, b], 1).unwrap();
        assert!(got[0].is_some());
        assert_eq!(got[1], None);
    }
}
