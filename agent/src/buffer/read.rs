//! Serving `GET /v1/samples`: rounds after a cursor, with a per-batch series dictionary.
//!
//! The rounds are read and re-numbered without the state lock; the lock is taken twice,
//! briefly: for the bounds, then to copy the definitions of the ids used. If an eviction
//! ran in between, the rounds it took are dropped from the batch (the gap grows to cover
//! them) and the ids re-numbered, so the batch stays dense and self-contained.

use std::collections::HashMap;

use muster_shared::protocol::samples::{
    Gap, Label, Round, SampleBatch, SamplesQuery, SeriesDef, SeriesValue,
};

use super::{Buffer, BufferError, lock};

/// The most bincode a batch is planned to hold, in bytes (an upper bound: every varint
/// counted at its widest). Well under `codec::Limits::DEFAULT` (16 MiB frames, even when
/// zstd gains nothing, and 64 MiB decoded): 5,000 rounds of a 2,000-series host would be
/// about 100 MB, so such a batch is cut and says `more`.
pub const MAX_BATCH_BYTES: u64 = 12 << 20;

/// Bincode of everything in a batch but its series and rounds (at its widest).
const BATCH_OVERHEAD: u64 = 64;

/// A round read from the store, unpacked.
struct Loaded {
    seq: u64,
    timestamp_unix_ms: u64,
    values: Vec<(u32, f64)>,
}

impl Buffer {
    pub(super) fn read_batch(&self, query: &SamplesQuery) -> Result<SampleBatch, BufferError> {
        let after = query.after;
        let (floor, last, newest) = {
            let state = lock(&self.state);
            (state.floor(), state.last_held(), state.newest_issued)
        };
        if after > newest {
            return Err(BufferError::CursorAhead { after, newest });
        }
        let start = after.saturating_add(1).max(floor);
        let mut rounds = Vec::new();
        if let Some(last) = last.filter(|&last| start <= last) {
            let max = query.effective_max() as usize;
            let mut bytes = BATCH_OVERHEAD;
            for item in self.rounds.range(start..=last) {
                let (seq, record) = item.map_err(|source| BufferError::Read { after, source })?;
                let values = record
                    .unpack()
                    .map_err(|source| BufferError::CorruptRound { seq, source })?;
                let round = Loaded {
                    seq,
                    timestamp_unix_ms: record.timestamp_unix_ms,
                    values,
                };
                let len = round_wire_len(&round);
                if !rounds.is_empty() && bytes + len > MAX_BATCH_BYTES {
                    break;
                }
                bytes += len;
                rounds.push(round);
                if rounds.len() >= max {
                    break;
                }
            }
        }

        loop {
            let numbering = Numbering::of(&rounds);
            let (floor, series) = {
                let state = lock(&self.state);
                let floor = state.floor();
                let evicted = rounds.first().is_some_and(|r| r.seq < floor);
                (
                    floor,
                    (!evicted).then(|| numbering.definitions(&state.dictionary)),
                )
            };
            let Some(series) = series else {
                // Evicted while we read: drop what is gone and number again.
                rounds.retain(|r| r.seq >= floor);
                continue;
            };
            let series = series?;
            // The series travel too: cut rounds from the end until everything fits (the
            // definitions only shrink with them). Rare: a host's series are few next to
            // its rounds, unless containers churn hard.
            let mut bytes = BATCH_OVERHEAD + series.iter().map(def_wire_len).sum::<u64>();
            let fitting = rounds
                .iter()
                .take_while(|r| {
                    bytes += round_wire_len(r);
                    bytes <= MAX_BATCH_BYTES
                })
                .count()
                .max(1);
            if fitting < rounds.len() {
                rounds.truncate(fitting);
                continue;
            }
            return Ok(assemble(after, floor, last, rounds, series, &numbering));
        }
    }
}

/// Per-batch ids: the global ids of the rounds, numbered densely in order of first use.
struct Numbering {
    /// Global id → batch id.
    batch_ids: HashMap<u32, u32>,
    /// Batch id → (global id, first round using it).
    global: Vec<(u32, u64)>,
}

impl Numbering {
    fn of(rounds: &[Loaded]) -> Numbering {
        let mut numbering = Numbering {
            batch_ids: HashMap::new(),
            global: Vec::new(),
        };
        for round in rounds {
            for &(id, _) in &round.values {
                let next = numbering.global.len();
                numbering.batch_ids.entry(id).or_insert_with(|| {
                    numbering.global.push((id, round.seq));
                    u32::try_from(next).unwrap_or(u32::MAX)
                });
            }
        }
        numbering
    }

    /// The batch's dictionary, copied from the buffer's (under its lock).
    fn definitions(
        &self,
        dictionary: &super::dictionary::Dictionary,
    ) -> Result<Vec<SeriesDef>, BufferError> {
        self.global
            .iter()
            .enumerate()
            .map(|(batch_id, &(id, seq))| {
                let key = dictionary
                    .key(id)
                    .ok_or(BufferError::MissingSeries { seq, id })?;
                Ok(SeriesDef {
                    id: u32::try_from(batch_id).unwrap_or(u32::MAX),
                    metric: key.metric().to_owned(),
                    labels: key
                        .labels()
                        .map(|(name, value)| Label {
                            name: name.to_owned(),
                            value: value.to_owned(),
                        })
                        .collect(),
                })
            })
            .collect()
    }
}

/// The batch of `rounds` (all at or after `floor`) for cursor `after`; `last` is the newest
/// round held when the read began (what `more` compares with).
fn assemble(
    after: u64,
    floor: u64,
    last: Option<u64>,
    rounds: Vec<Loaded>,
    series: Vec<SeriesDef>,
    numbering: &Numbering,
) -> SampleBatch {
    let gap = (after.saturating_add(1) < floor).then(|| Gap {
        first_missing: after + 1,
        last_missing: floor - 1,
    });
    let rounds: Vec<Round> = rounds
        .into_iter()
        .map(|round| Round {
            seq: round.seq,
            timestamp_unix_ms: round.timestamp_unix_ms,
            values: round
                .values
                .iter()
                .filter_map(|&(id, value)| {
                    let series = *numbering.batch_ids.get(&id)?;
                    Some(SeriesValue { series, value })
                })
                .collect(),
        })
        .collect();
    let more = match (rounds.last(), last) {
        (Some(served), Some(last)) => served.seq < last,
        // Everything read was evicted meanwhile: what is held now comes after the gap.
        (None, Some(last)) => last >= after.saturating_add(1).max(floor),
        (_, None) => false,
    };
    let first_seq = rounds.first().map_or(0, |r| r.seq);
    let last_seq = rounds.last().map_or(0, |r| r.seq);
    let next_after = if last_seq > 0 {
        last_seq
    } else {
        gap.map_or(after, |g| g.last_missing)
    };
    SampleBatch {
        first_seq,
        last_seq,
        next_after,
        more,
        gap,
        series,
        rounds,
    }
}

/// bincode 2 varint at its widest for a u64 (or a length).
const WIDE_U64: u64 = 9;
/// At its widest for a u32.
const WIDE_U32: u64 = 5;

/// An upper bound of a [`Round`]'s bincode.
fn round_wire_len(round: &Loaded) -> u64 {
    3 * WIDE_U64 + round.values.len() as u64 * (WIDE_U32 + 8)
}

/// An upper bound of a [`SeriesDef`]'s bincode.
fn def_wire_len(def: &SeriesDef) -> u64 {
    let labels: u64 = def
        .labels
        .iter()
        .map(|l| 2 * WIDE_U64 + l.name.len() as u64 + l.value.len() as u64)
        .sum();
    WIDE_U32 + WIDE_U64 + def.metric.len() as u64 + WIDE_U64 + labels
}
