//! A sampler's series and their latest values, reused round after round.
//!
//! Each sampler owns one [`SeriesTable`]. A round begins with
//! [`SeriesTable::begin_round`]; the sampler calls [`SeriesTable::set`] for each
//! value; series not set in a round are not live in it (a removed container, an
//! unmounted filesystem). In steady state nothing is allocated: a series is
//! found by hashing its family and label values, borrowed from the sampler's
//! own buffers, and only a series seen for the first time copies its labels.
//!
//! Series unseen for [`FORGET_AFTER_ROUNDS`] rounds are dropped, so churn
//! (containers coming and going) does not grow the table forever.

use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// Rounds a series may go unseen before the table forgets it.
pub const FORGET_AFTER_ROUNDS: u64 = 30;

/// Counter or gauge, as in the Prometheus text format's `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Monotonic; name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    /// The word used in `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// What a metric family is: name, help text, type and label names.
///
/// Usually a `const`; samplers whose names come from the data (meminfo) build
/// one over a reused `String`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilySpec<'a> {
    /// The metric name, e.g. `node_cpu_seconds_total`.
    pub name: &'a str,
    /// One line of help text.
    pub help: &'a str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Label names, in the order values are given to [`SeriesTable::set`].
    pub labels: &'a [&'a str],
}

/// A registered family, owned by the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// The metric name.
    pub name: Box<str>,
    /// Help text.
    pub help: Box<str>,
    /// Counter or gauge.
    pub kind: Kind,
    /// Label names.
    pub labels: Box<[Box<str>]>,
}

/// An index into a table's families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FamilyId(u32);

impl FamilyId {
    /// The position of the family in [`SeriesTable::families`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One series of a table.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its family.
    pub family: FamilyId,
    /// Label values, in the family's label order.
    pub values: Box<[Box<str>]>,
    /// The latest value.
    pub value: f64,
    /// The round it was last set in.
    pub seen_round: u64,
    /// An id given by the buffer's dictionary, cached here so it is looked up
    /// once per series, not once per round.
    pub global_id: Option<u32>,
    hash: u64,
}

/// A sampler's series.
#[derive(Debug, Default)]
pub struct SeriesTable {
    families: Vec<Family>,
    family_index: HashTable<u32>,
    series: Vec<Option<Series>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    round: u64,
    malformed: u64,
}

impl SeriesTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a round: values set from now on are live in it.
    pub fn begin_round(&mut self) {
        self.round += 1;
        self.malformed = 0;
    }

    /// The current round number (starts at 1 after the first `begin_round`).
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Registers `spec` (once) and returns its id. No allocation when known.
    pub fn family(&mut self, spec: &FamilySpec<'_>) -> FamilyId {
        let hash = self.hasher.hash_one(spec.name);
        let families = &self.families;
        let entry = self.family_index.entry(
            hash,
            |&i| {
                families
                    .get(i as usize)
                    .is_some_and(|f| *f.name == *spec.name)
            },
            |&i| {
                families
                    .get(i as usize)
                    .map_or(0, |f| self.hasher.hash_one(&*f.name))
            },
        );
        match entry {
            Entry::Occupied(o) => FamilyId(*o.get()),
            Entry::Vacant(v) => {
                let id = u32::try_from(self.families.len()).unwrap_or(u32::MAX);
                v.insert(id);
                self.families.push(Family {
                    name: spec.name.into(),
                    help: spec.help.into(),
                    kind: spec.kind,
                    labels: spec.labels.iter().map(|l| Box::from(*l)).collect(),
                });
                FamilyId(id)
            }
        }
    }

    /// Registers `spec` and sets one value: the common one-liner.
    pub fn set_spec(&mut self, spec: &FamilySpec<'_>, label_values: &[&str], value: f64) {
        let family = self.family(spec);
        self.set(family, label_values, value);
    }

    /// Sets the value of the series `family{labels = label_values}` for this
    /// round. `label_values` must match the family's label names in number;
    /// a mismatch is a programming error, counted as malformed and dropped.
    pub fn set(&mut self, family: FamilyId, label_values: &[&str], value: f64) {
        let expected = self
            .families
            .get(family.0 as usize)
            .map_or(0, |f| f.labels.len());
        if expected != label_values.len() {
            debug_assert!(false, "label count mismatch for family {family:?}");
            self.malformed += 1;
            return;
        }
        let hash = series_hash(&self.hasher, family, label_values);
        let series = &self.series;
        let found = self.index.find(hash, |&i| {
            series
                .get(i as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.family == family && same_values(&s.values, label_values))
        });
        if let Some(&i) = found {
            if let Some(Some(s)) = self.series.get_mut(i as usize) {
                s.value = value;
                s.seen_round = self.round;
            }
            return;
        }
        let entry = Series {
            family,
            values: label_values.iter().map(|v| Box::from(*v)).collect(),
            value,
            seen_round: self.round,
            global_id: None,
            hash,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.series[i as usize] = Some(entry);
                i
            }
            None => {
                self.series.push(Some(entry));
                u32::try_from(self.series.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let series = &self.series;
        self.index.insert_unique(hash, slot, |&i| {
            series
                .get(i as usize)
                .and_then(Option::as_ref)
                .map_or(0, |s| s.hash)
        });
    }

    /// Counts `n` malformed input lines skipped this round.
    pub fn malformed(&mut self, n: u64) {
        self.malformed += n;
    }

    /// Malformed lines skipped this round.
    pub fn malformed_count(&self) -> u64 {
        self.malformed
    }

    /// Forgets series unseen for [`FORGET_AFTER_ROUNDS`] rounds; returns how
    /// many were forgotten.
    pub fn forget_stale(&mut self) -> usize {
        let round = self.round;
        let mut forgotten = 0;
        for (i, slot) in self.series.iter_mut().enumerate() {
            let stale = slot
                .as_ref()
                .is_some_and(|s| round.saturating_sub(s.seen_round) >= FORGET_AFTER_ROUNDS);
            if stale && let Some(s) = slot.take() {
                let index = u32::try_from(i).unwrap_or(u32::MAX);
                if let Ok(entry) = self.index.find_entry(s.hash, |&j| j == index) {
                    entry.remove();
                }
                self.free.push(index);
                forgotten += 1;
            }
        }
        forgotten
    }

    /// The registered families.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// A family by id.
    pub fn family_of(&self, id: FamilyId) -> Option<&Family> {
        self.families.get(id.0 as usize)
    }

    /// Series set in the current round.
    pub fn live(&self) -> impl Iterator<Item = &Series> {
        let round = self.round;
        self.series
            .iter()
            .filter_map(Option::as_ref)
            .filter(move |s| s.seen_round == round)
    }

    /// Series set in the current round, mutable (to cache global ids).
    pub fn live_mut(&mut self) -> impl Iterator<Item = &mut Series> {
        let round = self.round;
        self.series
            .iter_mut()
            .filter_map(Option::as_mut)
            .filter(move |s| s.seen_round == round)
    }

    /// The families and the live series, mutable, borrowed together (to
    /// cache global ids without copying family names).
    pub fn families_and_live_mut(&mut self) -> (&[Family], impl Iterator<Item = &mut Series>) {
        let round = self.round;
        let live = self
            .series
            .iter_mut()
            .filter_map(Option::as_mut)
            .filter(move |s| s.seen_round == round);
        (&self.families, live)
    }

    /// Drops every cached global id, so each series is interned again. Used
    /// after a pass that returned late: ids unused for long may have been
    /// collected by the buffer meanwhile.
    pub fn clear_global_ids(&mut self) {
        for series in self.series.iter_mut().flatten() {
            series.global_id = None;
        }
    }

    /// How many series are live in the current round.
    pub fn live_count(&self) -> usize {
        self.live().count()
    }
}

fn series_hash(hasher: &hashbrown::DefaultHashBuilder, family: FamilyId, values: &[&str]) -> u64 {
    let mut state = hasher.build_hasher();
    family.0.hash(&mut state);
    for v in values {
        v.hash(&mut state);
    }
    state.finish()
}

fn same_values(stored: &[Box<str>], given: &[&str]) -> bool {
    stored.len() == given.len() && stored.iter().zip(given).all(|(a, b)| **a == **b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: FamilySpec<'static> = FamilySpec {
        name: "node_cpu_seconds_total",
        help: "Seconds the CPUs spent in each mode.",
        kind: Kind::Counter,
        labels: &["cpu", "mode"],
    };

    #[test]
    fn values_are_updated_in_place_and_live_per_round() {
        let mut t = SeriesTable::new();
        t.begin_round();
        let f = t.family(&CPU);
        t.set(f, &["0", "idle"], 1.0);
        t.set(f, &["0", "user"], 2.0);
        assert_eq!(t.live_count(), 2);

        t.begin_round();
        t.set(f, &["0", "idle"], 3.0);
        let live: Vec<_> = t
            .live()
            .map(|s| (s.values[1].to_string(), s.value))
            .collect();
        assert_eq!(live, vec![("idle".to_owned(), 3.0)]);
        assert_eq!(t.family(&CPU), f, "families are registered once");
        assert_eq!(t.families().len(), 1);
    }

    #[test]
    fn stale_series_are_forgotten_and_slots_reused() {
        let mut t = SeriesTable::new();
        t.begin_round();
        t.set_spec(&CPU, &["0", "idle"], 1.0);
        t.set_spec(&CPU, &["1", "idle"], 1.0);
        for _ in 0..FORGET_AFTER_ROUNDS {
            t.begin_round();
            t.set_spec(&CPU, &["0", "idle"], 1.0);
        }
        assert_eq!(t.forget_stale(), 1);
        t.begin_round();
        t.set_spec(&CPU, &["2", "idle"], 5.0);
        t.set_spec(&CPU, &["0", "idle"], 6.0);
        let mut live: Vec<_> = t
            .live()
            .map(|s| (s.values[0].to_string(), s.value))
            .collect();
        live.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(live, vec![("0".to_owned(), 6.0), ("2".to_owned(), 5.0)]);
        assert_eq!(t.series.len(), 2, "the forgotten slot was reused");
    }

    #[test]
    fn label_count_mismatch_is_counted_not_stored() {
        let mut t = SeriesTable::new();
        t.begin_round();
        let f = t.family(&CPU);
        // debug_assert fires in debug builds; check the release behaviour.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.set(f, &["0"], 1.0)));
        if result.is_ok() {
            assert_eq!(t.malformed_count(), 1);
        }
        assert_eq!(t.live_count(), 0);
    }

    #[test]
    fn global_ids_stick_to_series() {
        let mut t = SeriesTable::new();
        t.begin_round();
        t.set_spec(&CPU, &["0", "idle"], 1.0);
        for s in t.live_mut() {
            s.global_id = Some(7);
        }
        t.begin_round();
        t.set_spec(&CPU, &["0", "idle"], 2.0);
        assert_eq!(t.live().next().and_then(|s| s.global_id), Some(7));
    }
}
