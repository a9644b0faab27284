//! The series index: labels ↔ series id, and postings (label pair → ids), on disk in one
//! sled tree and in memory as interned symbols.
//!
//! # On disk (tree `tsdb_index`, values [`IndexRecord`], schema 1)
//!
//! | key                                                      | value                     |
//! |----------------------------------------------------------|---------------------------|
//! | `S` · id (u32 big endian)                                | `Series(labels)`, sorted  |
//! | `P` · name · `0xFF` · value · `0xFF` · first id (u32 BE) | `Postings(ids)`, ascending|
//!
//! A postings record is a *segment*: the ids with that pair among the series one call
//! created (a host's new series arrive together in its first batch). `0xFF` never occurs
//! in UTF-8, so a key splits unambiguously, and a prefix scan of `P·name·0xFF·value·0xFF`
//! yields the pair's segments in id order. Segments rather than one key per (pair, id):
//! sled holds memory per record it has written (spacejam/sled#1093; measured here at
//! ~1.8 KB per key before a flush and ~270 B after), and segments cut the index's records
//! from ~5 per series to ~1.3. A call's series records and segments are written in one
//! batch and committed at once, so they are on disk together or not at all.
//! Ids are handed out in increasing order from 1 and never reused: at open the next id is
//! past the largest id in the index *and* in the blocks (a block whose series record was
//! lost in a crash keeps its id to itself).
//!
//! # In memory ([`MemIndex`], `memory.rs`)
//!
//! Interned strings and label pairs, series as slices of pair ids, postings per pair. It is
//! rebuilt from the `S` records at open (the single source of truth); the `P` records serve
//! a reader that does not load the index ([`Index::postings_on_disk`]). Selection by
//! matchers is in `select.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};

use super::error::TsdbError;
use crate::series::{Label, Labels};

mod log;
mod memory;
mod select;

pub use log::{FILE_NAME as SERIES_LOG_FILE, SeriesLog, SeriesLogError};
pub use memory::MemIndex;

/// A series' id: stable for the store's life, never reused.
pub type SeriesId = u32;

const SERIES: u8 = b'S';
const POSTING: u8 = b'P';
const SEP: u8 = 0xFF;
/// The label every stored series carries, naming its host.
pub const HOST_LABEL: &str = "host";
/// No symbol (a series without a `host` label).
pub const NO_SYMBOL: u32 = u32::MAX;

/// A value of the `tsdb_index` tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexRecord {
    /// A series' labels, sorted by name, the metric name as `__name__`.
    Series(Vec<Label>),
    /// A postings segment: ids with the key's pair, ascending.
    Postings(Vec<SeriesId>),
}

impl Record for IndexRecord {
    const SCHEMA: u8 = 1;
}

fn series_key(id: SeriesId) -> Vec<u8> {
    let mut key = Vec::with_capacity(5);
    key.push(SERIES);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn posting_prefix(name: &str, value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + value.len() + 7);
    key.push(POSTING);
    key.extend_from_slice(name.as_bytes());
    key.push(SEP);
    key.extend_from_slice(value.as_bytes());
    key.push(SEP);
    key
}

/// A series [`Index::resolve`] found or created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// Its id.
    pub id: SeriesId,
    /// Whether this call created it.
    pub created: bool,
}

/// The index: the on-disk tree and the in-memory form, kept in step.
#[derive(Debug)]
pub struct Index {
    store: Store,
    tree: Tree<Vec<u8>, IndexRecord>,
    mem: RwLock<MemIndex>,
    next_id: AtomicU32,
}

impl Index {
    /// Loads the index from `store`; new ids start past the largest stored one and past
    /// `min_next_id` (from the blocks).
    ///
    /// A record that does not decode is skipped with a warning (its id stays reserved), so
    /// one damaged record does not keep the collector from starting.
    ///
    /// # Errors
    /// [`TsdbError::Open`] when the tree cannot be opened or read.
    pub fn open(store: &Store, min_next_id: SeriesId) -> Result<Index, TsdbError> {
        let tree = store
            .tree::<Vec<u8>, IndexRecord>("tsdb_index")
            .map_err(|source| TsdbError::Open {
                what: "index tree",
                source,
            })?;
        let mut mem = MemIndex::default();
        let mut next_id = min_next_id.max(1);
        for entry in tree.scan_prefix([SERIES]) {
            let (key, record) = match entry {
                Ok(entry) => entry,
                Err(err @ StoreError::Backend { .. }) => {
                    return Err(TsdbError::Open {
                        what: "index records",
                        source: err,
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "skipping a damaged series record");
                    continue;
                }
            };
            let Some(id) = key
                .get(1..5)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
            else {
                tracing::warn!(key = %hex::encode(&key), "skipping a series record with a bad key");
                continue;
            };
            next_id = next_id.max(id.saturating_add(1));
            match record {
                IndexRecord::Series(labels) => {
                    let labels = Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)));
                    if mem.lookup(&labels).is_none() {
                        mem.insert(id, &labels);
                    }
                }
                IndexRecord::Postings(_) => {}
            }
        }
        Ok(Index {
            store: store.clone(),
            tree,
            mem: RwLock::new(mem),
            next_id: AtomicU32::new(next_id),
        })
    }

    /// The in-memory index, read-locked. Hold it briefly: series creation waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, MemIndex> {
        self.mem
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One past the largest id handed out.
    pub fn next_id(&self) -> SeriesId {
        self.next_id.load(Ordering::Acquire)
    }

    /// The ids of `wanted` (each a full label set), creating the missing ones in one write
    /// unless that would exceed `max_series` series (then `None`).
    ///
    /// # Errors
    /// [`TsdbError::IndexWrite`] when the new series cannot be written; then none of them
    /// exist.
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
        let mut mem = self
            .mem
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut batch = self.tree.batch();
        let mut next = self.next_id.load(Ordering::Acquire);
        let mut created: Vec<(usize, SeriesId)> = Vec::new();
        let mut segments: BTreeMap<(&str, &str), Vec<SeriesId>> = BTreeMap::new();
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
            if let Some(&(_, id)) = created.iter().find(|(j, _)| wanted[*j] == *labels) {
                out[i] = Some(Resolved { id, created: false });
                continue;
            }
            if room == 0 || next == u32::MAX {
                continue;
            }
            room -= 1;
            let id = next;
            next += 1;
            let record = IndexRecord::Series(labels.clone().into_vec());
            batch
                .insert(&series_key(id), &record)
                .map_err(|source| TsdbError::IndexWrite {
                    host: host.to_owned(),
                    count: 1,
                    source,
                })?;
            for l in labels.iter() {
                segments
                    .entry((l.name.as_str(), l.value.as_str()))
                    .or_default()
                    .push(id);
            }
            created.push((i, id));
            out[i] = Some(Resolved { id, created: true });
        }
        if created.is_empty() {
            return Ok(out);
        }
        let failed = |source| TsdbError::IndexWrite {
            host: host.to_owned(),
            count: created.len(),
            source,
        };
        for ((name, value), ids) in segments {
            let mut key = posting_prefix(name, value);
            key.extend_from_slice(&ids[0].to_be_bytes());
            batch
                .insert(&key, &IndexRecord::Postings(ids))
                .map_err(failed)?;
        }
        self.tree.apply(batch).map_err(failed)?;
        // Committed now rather than at the next block flush: sled holds the memory of
        // unflushed writes, and a fleet's first pull creates every series at once.
        self.store.flush().map_err(failed)?;
        for &(i, id) in &created {
            mem.insert(id, &wanted[i]);
        }
        self.next_id.store(next, Ordering::Release);
        Ok(out)
    }

    /// The ids the on-disk postings hold for `name="value"`, ascending.
    ///
    /// # Errors
    /// [`StoreError`] on I/O failure or an undecodable record.
    pub fn postings_on_disk(&self, name: &str, value: &str) -> Result<Vec<SeriesId>, StoreError> {
        let mut ids = Vec::new();
        for entry in self.tree.scan_prefix(posting_prefix(name, value)) {
            if let (_, IndexRecord::Postings(segment)) = entry? {
                ids.extend(segment);
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn ids_are_stable_across_reopen_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = labels(&[("__name__", "up"), ("host", "web1")]);
        let b = labels(&[("__name__", "up"), ("host", "web2")]);
        let (id_a, id_b) = {
            let store = crate::tsdb::tests::open_store(dir.path());
            let index = Index::open(&store, 1).unwrap();
            let got = index
                .resolve("web1", &[a.clone(), b.clone(), a.clone()], 10)
                .unwrap();
            assert_eq!(got[0].map(|r| r.created), Some(true));
            assert_eq!(
                got[2].map(|r| (r.id, r.created)),
                got[0].map(|r| (r.id, false))
            );
            store.flush().unwrap();
            (got[0].unwrap().id, got[1].unwrap().id)
        };
        let store = crate::tsdb::tests::open_store(dir.path());
        let index = Index::open(&store, 1).unwrap();
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
        let new = index.resolve("web3", &[c], 10).unwrap()[0].unwrap();
        assert!(new.id > id_b && new.created);
        // A floor from the blocks pushes new ids past ids only the blocks know.
        let index = Index::open(&store, 100).unwrap();
        let d = labels(&[("__name__", "up"), ("host", "web4")]);
        assert_eq!(index.resolve("web4", &[d], 10).unwrap()[0].unwrap().id, 100);
    }

    #[test]
    fn memory_and_disk_postings_agree() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::tsdb::tests::open_store(dir.path());
        let index = Index::open(&store, 1).unwrap();
        let all: Vec<Labels> = (0..20)
            .map(|i| {
                labels(&[
                    ("__name__", "node_cpu_seconds_total"),
                    ("cpu", &(i % 4).to_string()),
                    ("host", &format!("h{}", i / 4)),
                ])
            })
            .collect();
        index.resolve("h", &all, 100).unwrap();
        let mem = index.read();
        let cpu = mem.symbol("cpu").unwrap();
        let two = mem.symbol("2").unwrap();
        let in_memory = &mem.postings[mem.pair(cpu, two).unwrap() as usize];
        assert_eq!(in_memory.len(), 5);
        assert_eq!(&index.postings_on_disk("cpu", "2").unwrap(), in_memory);
        assert_eq!(mem.labels(in_memory[0]).unwrap(), all[2]);
        assert_eq!(mem.string(mem.host_of(in_memory[0])), "h0");
    }

    #[test]
    fn series_limit_refuses_new_series_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::tsdb::tests::open_store(dir.path());
        let index = Index::open(&store, 1).unwrap();
        let a = labels(&[("__name__", "a")]);
        let b = labels(&[("__name__", "b")]);
        index.resolve("h", std::slice::from_ref(&a), 1).unwrap();
        let got = index.resolve("h", &[a, b], 1).unwrap();
        assert!(got[0].is_some());
        assert_eq!(got[1], None);
    }
}
