//! The in-memory index: strings interned once, a label pair (name, value) interned as a
//! `u32`, a series as a slice of pair ids in one shared arena (no `Vec<Label>` per series),
//! postings as ascending id vectors per pair. About 80 bytes per series with 8 labels.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use super::{HOST_LABEL, NO_SYMBOL, SeriesId};
use crate::series::Labels;

/// Where a series' pair ids sit in the arena (12 bytes).
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    start: u32,
    len: u16,
    present: bool,
    /// The symbol of its `host` value, or [`NO_SYMBOL`].
    host: u32,
}

/// The in-memory index. Read it through [`super::Index::read`].
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
    pub(super) fn insert(&mut self, id: SeriesId, labels: &Labels) {
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

    /// Whether series `id` is held.
    pub fn contains(&self, id: SeriesId) -> bool {
        self.entries.get(id as usize).is_some_and(|e| e.present)
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
