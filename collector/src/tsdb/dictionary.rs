//! A host's batch dictionary as ingest sees it: where it is ([`Dictionary`]), the map
//! from its ids to stored series ([`DefMap`]), and the one held between pulls so that
//! an agent may leave it out (`protocol::samples`, "Dictionary elision").
//!
//! The map is filled by resolving a batch's series (`ingest.rs`) and kept with the
//! dictionary's name; a later batch that says its dictionary was left out under that name
//! is read with the map as it is, so a steady-state pull decodes, hashes and looks up no
//! series at all. Anything else that resolves series (the collector's own `up` series)
//! uses a map of its own, so the held one always matches its name.

use super::index::SeriesId;

/// Where a batch's series dictionary is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dictionary {
    /// In the batch, unnamed: an agent that does not name its dictionaries.
    Inline,
    /// In the batch, named by the agent: held after ingest, so the next pull can ask the
    /// agent to leave it out.
    Named(String),
    /// Left out by the agent, which says it is the one held under this name.
    Elided(String),
}

/// A series' id and its head slot (in its host's shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SeriesRef {
    pub id: SeriesId,
    pub slot: u32,
}

/// Batch series id → stored series (`None`: over the series limit).
#[derive(Debug, Default)]
pub(super) struct DefMap {
    /// Indexed by id when the ids are dense (agents number them from 0).
    refs: Vec<Option<SeriesRef>>,
    /// Sparse fallback: (id, series), sorted once filled.
    sparse: Vec<(u32, Option<SeriesRef>)>,
    sparse_sorted: bool,
    /// The ids defined, in the batch's order.
    ids: Vec<u32>,
}

impl DefMap {
    /// Empties the map for a dictionary of `count` ids up to `max_id`; returns whether it
    /// is indexed densely.
    pub fn reset(&mut self, count: usize, max_id: u32) -> bool {
        let dense = (max_id as usize) < 2 * count + 1024;
        self.refs.clear();
        self.sparse.clear();
        self.sparse_sorted = false;
        self.ids.clear();
        if dense {
            self.refs.resize(max_id as usize + 1, None);
        }
        dense
    }

    /// Maps `id` to `r`. In sparse mode the first pass pushes (call [`DefMap::seal`]
    /// after it); later calls update in place.
    pub fn set(&mut self, dense: bool, id: u32, r: Option<SeriesRef>) {
        if dense {
            if let Some(slot) = self.refs.get_mut(id as usize) {
                *slot = r;
            }
        } else {
            match self.sparse.binary_search_by_key(&id, |&(id, _)| id) {
                Ok(i) if self.sparse_sorted => self.sparse[i].1 = r,
                _ => self.sparse.push((id, r)),
            }
        }
    }

    /// Records `id` as defined (once per id, in order).
    pub fn define(&mut self, id: u32) {
        self.ids.push(id);
    }

    /// Ends the first pass of sparse mode.
    pub fn seal(&mut self) {
        self.sparse.sort_unstable_by_key(|&(id, _)| id);
        self.sparse_sorted = true;
    }

    /// The stored series of batch id `id`.
    #[inline]
    pub fn lookup(&self, id: u32) -> Option<SeriesRef> {
        if !self.refs.is_empty() {
            return self.refs.get(id as usize).copied().flatten();
        }
        self.sparse
            .binary_search_by_key(&id, |&(i, _)| i)
            .ok()
            .and_then(|i| self.sparse[i].1)
    }

    /// The ids defined.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: SeriesId) -> Option<SeriesRef> {
        Some(SeriesRef { id, slot: id + 100 })
    }

    #[test]
    fn dense_and_sparse_maps_answer_alike() {
        for max_id in [10, 4_000_000_000] {
            let mut map = DefMap::default();
            let dense = map.reset(3, max_id);
            assert_eq!(dense, max_id == 10);
            for (id, series) in [(max_id, r(1)), (0, None), (5, r(2))] {
                map.set(dense, id, series);
                map.define(id);
            }
            if !dense {
                map.seal();
            }
            map.set(dense, 0, r(3));
            assert_eq!(map.lookup(max_id), r(1));
            assert_eq!(map.lookup(5), r(2));
            assert_eq!(map.lookup(0), r(3));
            assert_eq!(map.lookup(6), None);
            assert_eq!(map.ids(), [max_id, 0, 5]);
            map.reset(0, 0);
            assert_eq!((map.lookup(5), map.ids().len()), (None, 0));
        }
    }
}
