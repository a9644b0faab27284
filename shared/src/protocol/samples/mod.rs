//! `GET /v1/samples?after=SEQ&max=N`: the sample batches the collector pulls from an agent's
//! buffer.
//!
//! The agent numbers each sample pass (a *round*: one timestamp, many series) with a sequence
//! number from a monotonic counter starting at 1. The collector keeps a cursor, the last
//! sequence it stored durably, and asks for what comes after it; the answer's
//! [`SampleBatch::next_after`] is the cursor for the next request. So after any outage the
//! collector asks again from its cursor and gets exactly what it has not stored.
//!
//! A batch is self-contained: [`SampleBatch::series`] defines, once, every series id its
//! rounds use, and ids mean nothing outside that batch. Labels therefore travel once per
//! series per request, values as `(id, f64)` pairs; a collector restart needs nothing but
//! its cursor.
//!
//! # Dictionary elision
//!
//! A host's series rarely change, and the agent numbers a batch's ids in order of first
//! use, so from one pull to the next the dictionary is usually the same, and decoding it
//! was most of a steady-state pull's cost. So the agent names every binary batch's
//! dictionary in the [`DICTIONARY_HEADER`] response header ([`dictionary_digest`]). A
//! collector that still holds the dictionary it last stored for that host sends its name
//! back in the same request header; when the new batch's dictionary has that name, the
//! agent leaves `series` empty and says so in [`DICTIONARY_ELIDED_HEADER`], and the
//! collector reads the ids with the dictionary it holds ([`SampleBatch::validate_elided`]).
//! Headers, not fields, so the body keeps its shape and protocol version: an agent that
//! does not know the header ignores it and sends the dictionary, and a collector that
//! does not send it always gets one. A collector after a restart holds nothing and asks
//! without the header.
//!
//! Rounds that left the agent's buffer (evicted by age or size) before the collector asked
//! are reported as a [`Gap`], never silently skipped.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

mod dictionary;
mod urgent;

pub use dictionary::{
    DICTIONARY_ELIDED_HEADER, DICTIONARY_HEADER, DictionaryAnswer, dictionary_digest,
};
pub use urgent::{MAX_URGENT_WAIT_MS, UrgentAnswer, UrgentQuery};

/// Rounds per batch when the request gives no `max`.
pub const DEFAULT_MAX_ROUNDS: u32 = 500;
/// The largest `max` an agent honours; a larger request is served this many rounds.
/// With a typical host (~2,000 series) a full batch stays well under
/// [`crate::codec::Limits::DEFAULT`].
pub const MAX_ROUNDS: u32 = 5_000;

/// The query string of `GET /v1/samples`: `?after=SEQ&max=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplesQuery {
    /// Return rounds with a sequence number greater than this; `0` asks from the oldest
    /// round still buffered.
    pub after: u64,
    /// At most this many rounds, `1..=`[`MAX_ROUNDS`] (larger values are clamped); absent
    /// means [`DEFAULT_MAX_ROUNDS`].
    #[serde(default)]
    pub max: Option<u32>,
}

impl SamplesQuery {
    /// The number of rounds to serve: `max` clamped to `1..=MAX_ROUNDS`, or the default.
    pub fn effective_max(&self) -> u32 {
        self.max.unwrap_or(DEFAULT_MAX_ROUNDS).clamp(1, MAX_ROUNDS)
    }
}

/// One answer of `GET /v1/samples`.
///
/// Invariants ([`SampleBatch::validate`] checks them on the collector side):
/// - `rounds` are in strictly increasing `seq` order, and `first_seq`/`last_seq` are the
///   first and last round's `seq`; an empty batch has `first_seq == last_seq == 0`;
/// - `next_after >= last_seq` (it equals `last_seq` when rounds were served; with no rounds
///   it is the request's `after`, or `gap.last_missing` when a gap was reported);
/// - every series id used in `rounds` is defined exactly once in `series`;
/// - a gap lies before `first_seq`.
///
/// `S` is the type of the strings: `String` (the default) for a batch one owns, `&str` for
/// one decoded in place from a frame's payload ([`crate::codec::FramePayload::decode`]),
/// as the collector decodes each batch it pulls without an allocation per label. Both
/// have the same encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleBatch<S = String> {
    /// Sequence number of the first round in `rounds`; 0 when there is none.
    pub first_seq: u64,
    /// Sequence number of the last round in `rounds`; 0 when there is none.
    pub last_seq: u64,
    /// The cursor to send as `after` in the next request. The collector stores it only
    /// once the rounds of this batch are durable in its own store.
    pub next_after: u64,
    /// Whether more rounds were already buffered beyond `max`: ask again at once rather than
    /// at the next scrape interval.
    pub more: bool,
    /// Rounds after the requested cursor that the agent no longer holds (evicted by its
    /// buffer's age or size bound); `None` when nothing was lost.
    pub gap: Option<Gap>,
    /// The series dictionary for this batch: each id used in `rounds` exactly once.
    pub series: Vec<SeriesDef<S>>,
    /// The rounds, oldest first.
    pub rounds: Vec<Round>,
}

/// Sequence numbers `first_missing..=last_missing` were dropped from the agent's buffer
/// before the collector asked for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The first sequence number lost (inclusive).
    pub first_missing: u64,
    /// The last sequence number lost (inclusive), `>= first_missing`.
    pub last_missing: u64,
}

/// A dictionary entry: what series `id` means within one [`SampleBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesDef<S = String> {
    /// The id [`SeriesValue::series`] refers to; unique within the batch.
    pub id: u32,
    /// The metric name (`node_memory_MemAvailable_bytes`), not repeated as a label.
    pub metric: S,
    /// The labels, sorted by name, names unique (`device`, `mountpoint`, ...).
    pub labels: Vec<Label<S>>,
}

/// One label of a series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Label<S = String> {
    /// The label name, `[a-zA-Z_][a-zA-Z0-9_]*`.
    pub name: S,
    /// The label value, any UTF-8.
    pub value: S,
}

/// One sample pass: every value taken at one instant, under one sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// The round's sequence number (from 1, strictly increasing, never reused).
    pub seq: u64,
    /// When the pass ran, in milliseconds since the Unix epoch (UTC).
    pub timestamp_unix_ms: u64,
    /// The values, at most one per series.
    pub values: Vec<SeriesValue>,
}

/// One value of one series in a [`Round`].
///
/// bincode carries the `f64` bit for bit (NaN, infinities). JSON has no NaN or infinity:
/// there they appear as `null`, so the JSON form is for reading, not for re-ingesting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesValue {
    /// A [`SeriesDef::id`] of the same batch.
    pub series: u32,
    /// The sample value, in the metric's base unit.
    pub value: f64,
}

/// A [`SampleBatch`] invariant that does not hold; the collector refuses such a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// `first_seq`/`last_seq` do not match the rounds (or are not 0 with no rounds).
    #[error("first_seq {first_seq} / last_seq {last_seq} do not match the rounds")]
    SeqBounds {
        /// The batch's `first_seq`.
        first_seq: u64,
        /// The batch's `last_seq`.
        last_seq: u64,
    },
    /// A round's sequence number is not greater than the previous one's.
    #[error("round seq {seq} does not follow {previous}")]
    SeqOrder {
        /// The round's sequence number.
        seq: u64,
        /// The previous round's sequence number.
        previous: u64,
    },
    /// `next_after` is behind the last round.
    #[error("next_after {next_after} is before last_seq {last_seq}")]
    CursorBehind {
        /// The batch's `next_after`.
        next_after: u64,
        /// The batch's `last_seq`.
        last_seq: u64,
    },
    /// The gap is empty or overlaps the rounds.
    #[error("gap {first_missing}..={last_missing} is inverted or overlaps the rounds")]
    BadGap {
        /// The gap's first missing sequence number.
        first_missing: u64,
        /// The gap's last missing sequence number.
        last_missing: u64,
    },
    /// A series id is defined twice.
    #[error("series id {id} is defined twice")]
    DuplicateSeries {
        /// The id.
        id: u32,
    },
    /// A series' labels are not sorted by name or repeat a name.
    #[error("labels of series id {id} are not sorted by unique name")]
    UnsortedLabels {
        /// The series id.
        id: u32,
    },
    /// A round uses a series id the dictionary does not define.
    #[error("round seq {seq} uses undefined series id {id}")]
    UndefinedSeries {
        /// The round's sequence number.
        seq: u64,
        /// The undefined id.
        id: u32,
    },
    /// The agent said it left the dictionary out, yet the batch carries series.
    #[error("the dictionary was elided but the batch defines {count} series")]
    ElidedWithSeries {
        /// Series defined.
        count: usize,
    },
    /// A round carries two values for one series.
    #[error("round seq {seq} has two values for series id {id}")]
    DuplicateValue {
        /// The round's sequence number.
        seq: u64,
        /// The repeated id.
        id: u32,
    },
}

impl SampleBatch {
    /// A batch with no rounds: nothing after `after` is buffered (yet).
    pub fn empty(after: u64) -> Self {
        SampleBatch {
            first_seq: 0,
            last_seq: 0,
            next_after: after,
            more: false,
            gap: None,
            series: Vec::new(),
            rounds: Vec::new(),
        }
    }
}

impl<S: AsRef<str>> SampleBatch<S> {
    /// The same batch with owned strings.
    pub fn to_owned_batch(&self) -> SampleBatch {
        let owned = |s: &S| s.as_ref().to_owned();
        SampleBatch {
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            next_after: self.next_after,
            more: self.more,
            gap: self.gap,
            series: self
                .series
                .iter()
                .map(|def| SeriesDef {
                    id: def.id,
                    metric: owned(&def.metric),
                    labels: def
                        .labels
                        .iter()
                        .map(|l| Label {
                            name: owned(&l.name),
                            value: owned(&l.value),
                        })
                        .collect(),
                })
                .collect(),
            rounds: self.rounds.clone(),
        }
    }

    /// Checks the invariants listed on [`SampleBatch`]; the first one broken is returned.
    /// Linear in the batch size.
    pub fn validate(&self) -> Result<(), BatchError> {
        self.validate_bounds()?;
        let mut ids = IdTable::for_ids(self.series.len(), self.series.iter().map(|d| d.id));
        for def in &self.series {
            if !ids.define(def.id) {
                return Err(BatchError::DuplicateSeries { id: def.id });
            }
            if def
                .labels
                .windows(2)
                .any(|p| p[0].name.as_ref() >= p[1].name.as_ref())
            {
                return Err(BatchError::UnsortedLabels { id: def.id });
            }
        }
        self.validate_rounds(ids)
    }

    /// Checks a batch whose dictionary the agent left out (see "Dictionary elision"):
    /// `series` must be empty, and `defined` (the ids of the dictionary the collector
    /// holds) stands for it; every other invariant as [`SampleBatch::validate`].
    ///
    /// # Errors
    /// [`BatchError::ElidedWithSeries`] when `series` is not empty, else the first
    /// invariant broken.
    pub fn validate_elided(&self, defined: &[u32]) -> Result<(), BatchError> {
        if !self.series.is_empty() {
            return Err(BatchError::ElidedWithSeries {
                count: self.series.len(),
            });
        }
        self.validate_bounds()?;
        let mut ids = IdTable::for_ids(defined.len(), defined.iter().copied());
        for &id in defined {
            ids.define(id);
        }
        self.validate_rounds(ids)
    }

    /// Sequence numbers, cursor and gap.
    fn validate_bounds(&self) -> Result<(), BatchError> {
        let bounds = match (self.rounds.first(), self.rounds.last()) {
            (Some(first), Some(last)) => (first.seq, last.seq),
            _ => (0, 0),
        };
        if (self.first_seq, self.last_seq) != bounds {
            return Err(BatchError::SeqBounds {
                first_seq: self.first_seq,
                last_seq: self.last_seq,
            });
        }
        for pair in self.rounds.windows(2) {
            if pair[1].seq <= pair[0].seq {
                return Err(BatchError::SeqOrder {
                    seq: pair[1].seq,
                    previous: pair[0].seq,
                });
            }
        }
        if self.next_after < self.last_seq {
            return Err(BatchError::CursorBehind {
                next_after: self.next_after,
                last_seq: self.last_seq,
            });
        }
        if let Some(gap) = self.gap {
            let overlaps = !self.rounds.is_empty() && gap.last_missing >= self.first_seq;
            if gap.first_missing > gap.last_missing || overlaps {
                return Err(BatchError::BadGap {
                    first_missing: gap.first_missing,
                    last_missing: gap.last_missing,
                });
            }
        }
        Ok(())
    }

    /// The rounds' values against the defined `ids`.
    fn validate_rounds(&self, mut ids: IdTable) -> Result<(), BatchError> {
        for (n, round) in self.rounds.iter().enumerate() {
            // Marks are 2 + the round's index: one table serves every round unchanged.
            let mark = u32::try_from(n).unwrap_or(u32::MAX - 2) + 2;
            for value in &round.values {
                match ids.mark(value.series, mark) {
                    Mark::Fresh => {}
                    Mark::Undefined => {
                        return Err(BatchError::UndefinedSeries {
                            seq: round.seq,
                            id: value.series,
                        });
                    }
                    Mark::Repeated => {
                        return Err(BatchError::DuplicateValue {
                            seq: round.seq,
                            id: value.series,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// The series ids of a batch being validated, each with a state: 0 undefined, 1 defined,
/// `m >= 2` last used by the round marked `m`. Indexed by id when the ids are dense (agents
/// number them from 0), hashed otherwise: the collector validates every batch it pulls, and
/// the table costs a few nanoseconds per value where hashing cost about a hundred.
enum IdTable {
    Dense(Vec<u32>),
    Sparse(HashMap<u32, u32>),
}

enum Mark {
    Fresh,
    Undefined,
    Repeated,
}

impl IdTable {
    fn for_ids(count: usize, ids: impl Iterator<Item = u32>) -> Self {
        let max = ids.map(|id| id as usize).max().unwrap_or(0);
        if max <= 4 * count + 1024 {
            IdTable::Dense(vec![0; max + 1])
        } else {
            IdTable::Sparse(HashMap::with_capacity(count))
        }
    }

    /// Defines `id`; false if it already was.
    fn define(&mut self, id: u32) -> bool {
        let state = match self {
            IdTable::Dense(v) => match v.get_mut(id as usize) {
                Some(state) => state,
                None => return false,
            },
            IdTable::Sparse(m) => m.entry(id).or_insert(0),
        };
        let fresh = *state == 0;
        *state = 1;
        fresh
    }

    /// Notes that the round marked `mark` uses `id`.
    fn mark(&mut self, id: u32, mark: u32) -> Mark {
        let state = match self {
            IdTable::Dense(v) => v.get_mut(id as usize),
            IdTable::Sparse(m) => m.get_mut(&id),
        };
        match state {
            None | Some(0) => Mark::Undefined,
            Some(state) if *state == mark => Mark::Repeated,
            Some(state) => {
                *state = mark;
                Mark::Fresh
            }
        }
    }
}

#[cfg(test)]
mod tests;
