//! The series index: labels ↔ series id, and postings (label pair → ids), on disk in one
//! sled tree and in memory as interned symbols.
//!
//! # On disk (tree `tsdb_index`, values [`IndexRecord`], schema 1)
//!
//! | key                                                   | value                      |
//! |-------------------------------------------------------|----------------------------|
//! | `S` · id (u32 big endian)                             | `Series(labels)`, sorted   |
//! | `P` · name · `0xFF` · value · `0xFF` · id (u32 BE)    | `Posting`                  |
//!
//! `0xFF` never occurs in UTF-8, so a posting key splits unambiguously, and a prefix scan
//! of `P·name·0xFF·value·0xFF` yields that pair's ids in order. A new series' record and
//! its postings are written in one batch, so they are on disk together or not at all.
//! Ids are handed out in increasing order from 1 and never reused: at open the next id is
//! past the largest id in the index *and* in the blocks (a block whose series record was
//! lost in a crash keeps its id to itself).
//!
//! # In memory ([`MemIndex`])
//!
//! Strings are interned once; a label pair (name, value) is interned as a `u32`; a series
//! is a slice of pair ids in a shared arena (no `Vec<Label>` per series); postings are
//! sorted id vectors per pair. About 80 bytes per series with 8 labels. The in-memory form
//! is rebuilt from the `S` records at open (the single source of truth); the `P` records
//! serve a reader that does not load the index ([`Index::postings_on_disk`]).
//!
//! Selection by matchers lives in `select.rs`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};
use std::hash::BuildHasher;

use super::error::TsdbError;
use crate::series::{Label, Labels};

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
    /// A posting: the key says it all.
    Posting,
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

/// Where a series' pair ids sit in the arena (12 bytes).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Entry {
    start: u32,
    len: u16,
    present: bool,
    /// The symbol of its `host` value, or [`NO_SYMBOL`].
    host: u32,
}

/// The in-memory index. Read it through [`Index::read`].
#[derive(Debug, Default)]
pub struct MemIndex {
    hasher: DefaultHashBuilder,
    pub(super) strings: Vec<Box<str>>,
    string_table: HashTable<u32>,
    /// Pair id → (name symbol, value symbol).
    pub(super) pairs: Vec<(u32, u32)>,
    pair_table: HashTable<u32>,
    /// Pair id → ids of the series with that pair, ascending.
    pub(super) postings: Vec<Vec<SeriesId>>,
    /// Name symbol → the pairs with that name.
    pub(super) name_pairs: HashMap<u32, Vec<u32>>,
    arena: Vec<u32>,
    entries: Vec<Entry>,
    by_labels: HashTable<SeriesId>,
    count: usize,
}

impl MemIndex {
    /// The symbol of `s`, if interned.
    pub fn symbol(&self, s: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(s);
        self.string_table
            .find(hash, |&sym| &*self.strings[sym as usize] == s)
            .copied()
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(sym) = self.symbol(s) {
            return sym;
        }
        let sym = self.strings.len() as u32;
        self.strings.push(s.into());
        let (hasher, strings) = (&self.hasher, &self.strings);
        let hash = hasher.hash_one(s);
        self.string_table.insert_unique(hash, sym, |&other| {
            hasher.hash_one(&*strings[other as usize])
        });
        sym
    }

    /// The string of symbol `sym`.
    pub fn string(&self, sym: u32) -> &str {
        self.strings.get(sym as usize).map_or("", |s| s)
    }

    /// The pair id of (name, value) symbols, if interned.
    pub fn pair(&self, name: u32, value: u32) -> Option<u32> {
        let hash = self.hasher.hash_one((name, value));
        self.pair_table
            .find(hash, |&p| self.pairs[p as usize] == (name, value))
            .copied()
    }

    fn intern_pair(&mut self, name: u32, value: u32) -> u32 {
        if let Some(p) = self.pair(name, value) {
            return p;
        }
        let p = self.pairs.len() as u32;
        self.pairs.push((name, value));
        self.postings.push(Vec::new());
        self.name_pairs.entry(name).or_default().push(p);
        let (hasher, pairs) = (&self.hasher, &self.pairs);
        let hash = hasher.hash_one((name, value));
        self.pair_table
            .insert_unique(hash, p, |&other| hasher.hash_one(pairs[other as usize]));
        p
    }

    /// The pair ids of series `id` in label-name order; empty when absent.
    pub fn pairs_of(&self, id: SeriesId) -> &[u32] {
        pairs_in(&self.arena, &self.entries, id)
    }

    /// The pair ids `labels` would have, if all are interned.
    fn pair_ids(&self, labels: &Labels) -> Option<Vec<u32>> {
        labels
            .iter()
            .map(|l| {
                let name = self.symbol(&l.name)?;
                let value = self.symbol(&l.value)?;
                self.pair(name, value)
            })
            .collect()
    }

    /// The id of the series with exactly `labels`.
    pub fn lookup(&self, labels: &Labels) -> Option<SeriesId> {
        let pairs = self.pair_ids(labels)?;
        let hash = self.hasher.hash_one(&pairs[..]);
        self.by_labels
            .find(hash, |&id| self.pairs_of(id) == &pairs[..])
            .copied()
    }

    /// Adds series `id` with `labels` (not already present).
    fn insert(&mut self, id: SeriesId, labels: &Labels) {
        let start = self.arena.len() as u32;
        let mut host = NO_SYMBOL;
        for label in labels.iter() {
            let name = self.intern(&label.name);
            let value = self.intern(&label.value);
            let p = self.intern_pair(name, value);
            self.arena.push(p);
            let ids = &mut self.postings[p as usize];
            // Ids arrive in increasing order (at open and when created); keep sorted anyway.
            match ids.last() {
                Some(&last) if last >= id => {
                    let at = ids.partition_point(|&x| x < id);
                    ids.insert(at, id);
                }
                _ => ids.push(id),
            }
            if label.name == HOST_LABEL {
                host = value;
            }
        }
        let index = id as usize;
        if self.entries.len() <= index {
            self.entries.resize(index + 1, Entry::default());
        }
        self.entries[index] = Entry {
            start,
            len: labels.len() as u16,
            present: true,
            host,
        };
        self.count += 1;
        let (hasher, arena, entries) = (&self.hasher, &self.arena, &self.entries);
        let hash = hasher.hash_one(pairs_in(arena, entries, id));
        self.by_labels.insert_unique(hash, id, |&other| {
            hasher.hash_one(pairs_in(arena, entries, other))
        });
    }

    /// The labels of series `id`.
    pub fn labels(&self, id: SeriesId) -> Option<Labels> {
        let pairs = self.pairs_of(id);
        if pairs.is_empty() {
            return None;
        }
        Some(Labels::from_pairs(pairs.iter().map(|&p| {
            let (name, value) = self.pairs[p as usize];
            (self.string(name), self.string(value))
        })))
    }

    /// The value symbol of label `name` (a symbol) of series `id`.
    pub fn value_of(&self, id: SeriesId, name: u32) -> Option<u32> {
        self.pairs_of(id).iter().find_map(|&p| {
            let (n, v) = self.pairs[p as usize];
            (n == name).then_some(v)
        })
    }

    /// The symbol of series `id`'s host, or [`NO_SYMBOL`].
    pub fn host_of(&self, id: SeriesId) -> u32 {
        self.entries.get(id as usize).map_or(NO_SYMBOL, |e| e.host)
    }

    /// Every present series id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = SeriesId> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.present)
            .map(|(id, _)| id as SeriesId)
    }

    /// Series held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no series is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Heap bytes, estimated from capacities.
    pub fn heap_bytes(&self) -> usize {
        let strings: usize = self.strings.iter().map(|s| s.len() + 16).sum();
        let postings: usize = self.postings.iter().map(|p| p.capacity() * 4 + 24).sum();
        strings
            + postings
            + self.string_table.capacity() * 5
            + self.pairs.capacity() * 8
            + self.pair_table.capacity() * 5
            + self.arena.capacity() * 4
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.by_labels.capacity() * 5
            + self.name_pairs.capacity() * 32
    }
}

fn pairs_in<'a>(arena: &'a [u32], entries: &[Entry], id: SeriesId) -> &'a [u32] {
    match entries.get(id as usize) {
        Some(e) if e.present => {
            let start = e.start as usize;
            arena.get(start..start + usize::from(e.len)).unwrap_or(&[])
        }
        _ => &[],
    }
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
                IndexRecord::Posting => {}
            }
        }
        Ok(Index {
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
            let written = batch.insert(&series_key(id), &record).and_then(|()| {
                labels.iter().try_for_each(|l| {
                    let mut key = posting_prefix(&l.name, &l.value);
                    key.extend_from_slice(&id.to_be_bytes());
                    batch.insert(&key, &IndexRecord::Posting)
                })
            });
            written.map_err(|source| TsdbError::IndexWrite {
                host: host.to_owned(),
                count: 1,
                source,
            })?;
            created.push((i, id));
            out[i] = Some(Resolved { id, created: true });
        }
        if created.is_empty() {
            return Ok(out);
        }
        self.tree
            .apply(batch)
            .map_err(|source| TsdbError::IndexWrite {
                host: host.to_owned(),
                count: created.len(),
                source,
            })?;
        for &(i, id) in &created {
            mem.insert(id, &wanted[i]);
        }
        self.next_id.store(next, Ordering::Release);
        Ok(out)
    }

    /// The ids the on-disk postings list for `name="value"`, ascending.
    ///
    /// # Errors
    /// [`StoreError`] on I/O failure or an undecodable key.
    pub fn postings_on_disk(&self, name: &str, value: &str) -> Result<Vec<SeriesId>, StoreError> {
        let prefix = posting_prefix(name, value);
        let mut ids = Vec::new();
        for entry in self.tree.scan_prefix(&prefix) {
            let (key, _) = entry?;
            if let Some(id) = key
                .get(prefix.len()..)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
            {
                ids.push(u32::from_be_bytes(id));
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_shared::store::StoreOptions;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn ids_are_stable_across_reopen_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = labels(&[("__name__", "up"), ("host", "web1")]);
        let b = labels(&[("__name__", "up"), ("host", "web2")]);
        let (id_a, id_b) = {
            let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
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
        let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
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
        let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
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
        let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
        let index = Index::open(&store, 1).unwrap();
        let a = labels(&[("__name__", "a")]);
        let b = labels(&[("__name__", "b")]);
        index.resolve("h", std::slice::from_ref(&a), 1).unwrap();
        let got = index.resolve("h", &[a, b], 1).unwrap();
        assert!(got[0].is_some());
        assert_eq!(got[1], None);
    }
}
