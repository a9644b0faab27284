//! The in-memory series dictionary: series (metric + sorted labels) ↔ buffer-wide id, with
//! the newest round that used each id, so entries no held round needs can be collected.

use std::collections::HashMap;
use std::sync::Arc;

use super::record::SeriesRecord;

/// Rounds an id is kept after its last use even when no held round uses it any more, so
/// that an id a sampler still caches (a series absent for a few rounds, under byte
/// pressure) stays valid. Larger than the sampler's `FORGET_AFTER_ROUNDS` (a test checks).
pub const SERIES_GRACE_ROUNDS: u64 = 64;

/// A series as the dictionary keys it: labels sorted by name, names unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SeriesKey {
    metric: Box<str>,
    labels: Box<[(Box<str>, Box<str>)]>,
}

impl SeriesKey {
    /// The key of `metric{labels}`: labels sorted by name; of repeated names the first
    /// given is kept (a repeated label name is a sampler bug, and the wire refuses it).
    pub fn new(metric: &str, labels: &[(&str, &str)]) -> SeriesKey {
        let mut sorted: Vec<(&str, &str)> = labels.to_vec();
        // Stable: among equal names the first given stays first and survives dedup.
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        sorted.dedup_by(|later, earlier| later.0 == earlier.0);
        SeriesKey {
            metric: metric.into(),
            labels: sorted
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }

    /// The key of a stored entry (trusted to be sorted; re-sorted anyway, it is cheap).
    pub fn from_record(record: &SeriesRecord) -> SeriesKey {
        let labels: Vec<(&str, &str)> = record
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        SeriesKey::new(&record.metric, &labels)
    }

    /// The metric name.
    pub fn metric(&self) -> &str {
        &self.metric
    }

    /// The labels, sorted by name.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels.iter().map(|(n, v)| (&**n, &**v))
    }

    /// The record stored for this key.
    pub fn to_record(&self) -> SeriesRecord {
        SeriesRecord {
            metric: self.metric.to_string(),
            labels: self
                .labels()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    key: Arc<SeriesKey>,
    /// The newest seq that used the id, or the newest seq when it was (re)interned.
    last_use: u64,
    /// Stored size of its record.
    bytes: u64,
    /// Whether its record has been written (with an append); until then it is pending.
    written: bool,
}

/// Series ↔ id. Ids are assigned in increasing order and never reused (until the u32 space
/// wraps, after 4 billion series, when the next free id is taken).
#[derive(Debug, Default)]
pub(super) struct Dictionary {
    by_key: HashMap<Arc<SeriesKey>, u32>,
    by_id: HashMap<u32, Entry>,
    /// Interned, not yet written, in id order of assignment.
    pending: Vec<u32>,
    next_id: u32,
    /// Stored size of every entry, pending ones included.
    bytes: u64,
    /// A lower bound of every written entry's `last_use`: while it is not collectable,
    /// nothing is, and [`Dictionary::collect`] skips its scan.
    min_last_use: u64,
}

impl Dictionary {
    /// The id of `key`, assigning the next one if it is new. Either way the id counts as
    /// used at `newest_seq`, so it is not collected for [`SERIES_GRACE_ROUNDS`] rounds.
    pub fn intern(&mut self, key: SeriesKey, newest_seq: u64) -> u32 {
        if let Some(&id) = self.by_key.get(&key) {
            if let Some(entry) = self.by_id.get_mut(&id) {
                entry.last_use = entry.last_use.max(newest_seq);
            }
            return id;
        }
        let id = self.free_id();
        let key = Arc::new(key);
        let bytes = key.to_record().stored_len();
        self.by_key.insert(key.clone(), id);
        self.by_id.insert(
            id,
            Entry {
                key,
                last_use: newest_seq,
                bytes,
                written: false,
            },
        );
        self.bytes += bytes;
        self.pending.push(id);
        id
    }

    fn free_id(&mut self) -> u32 {
        let mut id = self.next_id;
        while self.by_id.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        id
    }

    /// Adds an entry read from the store at open, as written and unused (`last_use` 0). Of
    /// two ids for one series (possible after a crash) lookups find the larger.
    pub fn load(&mut self, id: u32, record: &SeriesRecord) {
        let key = Arc::new(SeriesKey::from_record(record));
        let bytes = record.stored_len();
        match self.by_key.get(&key) {
            Some(&other) if other > id => {}
            _ => {
                self.by_key.insert(key.clone(), id);
            }
        }
        if let Some(old) = self.by_id.insert(
            id,
            Entry {
                key,
                last_use: 0,
                bytes,
                written: true,
            },
        ) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        self.min_last_use = 0;
        self.next_id = self.next_id.max(id.wrapping_add(1));
    }

    /// Makes sure ids are assigned from at least `next_id` (the persisted high-water mark).
    pub fn raise_next_id(&mut self, next_id: u32) {
        self.next_id = self.next_id.max(next_id);
    }

    /// The next id to assign, for the meta record.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Whether `id` is defined.
    pub fn contains(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Marks `id` used by round `seq`. Returns false (and does nothing) for an unknown id.
    pub fn touch(&mut self, id: u32, seq: u64) -> bool {
        match self.by_id.get_mut(&id) {
            Some(entry) => {
                entry.last_use = entry.last_use.max(seq);
                true
            }
            None => false,
        }
    }

    /// The key of `id`.
    pub fn key(&self, id: u32) -> Option<&Arc<SeriesKey>> {
        self.by_id.get(&id).map(|e| &e.key)
    }

    /// The pending entries' ids and records, to write with the next append.
    pub fn pending(&self) -> Vec<(u32, SeriesRecord)> {
        self.pending
            .iter()
            .filter_map(|&id| self.by_id.get(&id).map(|e| (id, e.key.to_record())))
            .collect()
    }

    /// Marks the first `n` pending entries written.
    pub fn mark_written(&mut self, n: usize) {
        let n = n.min(self.pending.len());
        for id in self.pending.drain(..n) {
            if let Some(entry) = self.by_id.get_mut(&id) {
                entry.written = true;
                // A scan may have passed over it while it was pending.
                self.min_last_use = self.min_last_use.min(entry.last_use);
            }
        }
    }

    /// Removes the written entries that no round from `floor` on uses and that were last
    /// used more than [`SERIES_GRACE_ROUNDS`] before `newest_seq` (0: no grace, at open);
    /// returns their ids, for removal from the store.
    pub fn collect(&mut self, floor: u64, newest_seq: u64, grace: u64) -> Vec<u32> {
        let collectable =
            |last_use: u64| last_use < floor && last_use.saturating_add(grace) <= newest_seq;
        if !collectable(self.min_last_use) {
            return Vec::new();
        }
        let mut removed = Vec::new();
        let mut min_kept = u64::MAX;
        self.by_id.retain(|&id, entry| {
            if entry.written && collectable(entry.last_use) {
                removed.push((id, entry.key.clone(), entry.bytes));
                false
            } else {
                if entry.written {
                    min_kept = min_kept.min(entry.last_use);
                }
                true
            }
        });
        self.min_last_use = min_kept;
        removed
            .into_iter()
            .map(|(id, key, bytes)| {
                self.bytes -= bytes;
                if self.by_key.get(&key) == Some(&id) {
                    self.by_key.remove(&key);
                }
                id
            })
            .collect()
    }

    /// Number of entries, pending included.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Stored size of all entries, pending included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_follows_floor_and_grace_even_after_emptying() {
        let mut dictionary = Dictionary::default();
        let a = dictionary.intern(SeriesKey::new("a", &[]), 0);
        assert_eq!(
            dictionary.collect(100, 100, 0),
            [] as [u32; 0],
            "pending: never collected"
        );
        dictionary.mark_written(1);
        dictionary.touch(a, 10);
        // Used by round 10: kept while round 10 is held, then for the grace.
        assert!(dictionary.collect(10, 20, 5).is_empty());
        assert!(dictionary.collect(11, 14, 5).is_empty());
        assert_eq!(dictionary.collect(11, 15, 5), [a]);
        assert_eq!((dictionary.len(), dictionary.bytes()), (0, 0));
        // Emptied: a later entry is still collected in its turn.
        let b = dictionary.intern(SeriesKey::new("b", &[("x", "1")]), 30);
        assert!(b > a, "ids are not reused");
        dictionary.mark_written(1);
        assert!(dictionary.collect(31, 34, 5).is_empty());
        assert_eq!(dictionary.collect(31, 35, 5), [b]);
        // Interning a collected series again gives a new id.
        assert!(dictionary.intern(SeriesKey::new("a", &[]), 40) > b);
    }

    #[test]
    fn keys_are_sorted_by_label_name() {
        let key = SeriesKey::new("m", &[("z", "1"), ("a", "2"), ("z", "3")]);
        let labels: Vec<(&str, &str)> = key.labels().collect();
        assert_eq!(labels, [("a", "2"), ("z", "1")]);
        assert_eq!(key, SeriesKey::new("m", &[("a", "2"), ("z", "1")]));
    }
}
