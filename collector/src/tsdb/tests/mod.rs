//! Tests of the whole store, by concern: `ingest.rs` (round trips, matchers, refusals,
//! concurrency), `crash.rs` (durable cursors, re-ingest, flush failures, damaged and
//! unfinished segments), `killed.rs` (a writer SIGKILLed mid-flush), `retention.rs`
//! (merges, rollups and deletion) and `measure.rs` (space and speed figures; ignored, run
//! by name).
//! This file holds what they share: a fake agent buffer and comparisons.

use std::collections::BTreeMap;

use muster_shared::protocol::samples::{Round, SampleBatch, SeriesDef};
use muster_shared::store::{Store, StoreOptions};

use super::synthetic::{HostProfile, SyntheticHost};
use super::*;
use crate::series::{Labels, MatchOp, Matcher, SeriesSource};

mod crash;
mod ingest;
mod killed;
mod measure;
mod retention;

pub(super) const START: i64 = 1_700_000_000_000;

pub(super) fn options() -> TsdbOptions {
    TsdbOptions {
        tolerance_ms: 0,
        ..TsdbOptions::default()
    }
}

/// Opens the store as the collector lays it out: sled in `<dir>/store`, segments in
/// `<dir>/tsdb`.
pub(super) fn open(dir: &std::path::Path, options: TsdbOptions) -> Tsdb {
    let store = open_store(&dir.join("store"));
    Tsdb::open(&store, &dir.join("tsdb"), options).unwrap()
}

/// Opens the store in `dir`, retrying `Locked` for up to 5 s: sled's `flock` belongs to
/// the open file description, and a child forked by a concurrent test (the crash test
/// spawns writers) holds a copy of every descriptor until it execs, so a reopen right
/// after a drop can find the store locked for a moment.
pub(crate) fn open_store(dir: &std::path::Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(dir, StoreOptions::collector()) {
            Err(muster_shared::store::StoreError::Locked { .. })
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.unwrap(),
        }
    }
}

/// An agent's buffer: every round it took, served from a cursor.
pub(super) struct FakeAgent {
    pub defs: Vec<SeriesDef>,
    pub rounds: Vec<Round>,
}

impl FakeAgent {
    pub fn new(seed: u64, series: usize, rounds: usize) -> Self {
        let profile = HostProfile {
            series,
            interval_ms: 10_000,
            start_ms: START,
        };
        let mut synth = SyntheticHost::new(seed, profile);
        let batch = synth.next_batch(rounds);
        FakeAgent {
            defs: batch.series,
            rounds: batch.rounds,
        }
    }

    pub fn batch(&self, after: u64, max: usize) -> SampleBatch {
        let rounds: Vec<Round> = self
            .rounds
            .iter()
            .filter(|r| r.seq > after)
            .take(max)
            .cloned()
            .collect();
        SampleBatch {
            first_seq: rounds.first().map_or(0, |r| r.seq),
            last_seq: rounds.last().map_or(0, |r| r.seq),
            next_after: rounds.last().map_or(after, |r| r.seq),
            more: false,
            gap: None,
            series: self.defs.clone(),
            rounds,
        }
    }

    pub fn ts_of(&self, seq: u64) -> i64 {
        self.rounds[seq as usize - 1].timestamp_unix_ms as i64
    }

    /// Ingests every round after `after`, `step` rounds per batch.
    pub fn send(&self, tsdb: &Tsdb, host: &str, after: u64, step: usize) -> IngestStats {
        self.send_until(tsdb, host, after, u64::MAX, step)
    }

    /// Ingests the rounds after `after` up to `upto`, `step` rounds per batch.
    pub fn send_until(
        &self,
        tsdb: &Tsdb,
        host: &str,
        after: u64,
        upto: u64,
        step: usize,
    ) -> IngestStats {
        let mut total = IngestStats::default();
        let mut cursor = after;
        loop {
            let left = upto.saturating_sub(cursor).min(step as u64) as usize;
            let batch = self.batch(cursor, left);
            if batch.rounds.is_empty() {
                return total;
            }
            cursor = batch.next_after;
            let s = tsdb.ingest(host, &batch).unwrap();
            total.appended += s.appended;
            total.duplicates += s.duplicates;
            total.too_old += s.too_old;
            total.over_limit += s.over_limit;
            total.new_series += s.new_series;
        }
    }

    /// What the store should hold for `host` from rounds `1..=upto`: (labels, ts, bits).
    pub fn expected(&self, host: &str, upto: u64) -> BTreeMap<Labels, Vec<(i64, u64)>> {
        let mut out: BTreeMap<Labels, Vec<(i64, u64)>> = BTreeMap::new();
        for round in self.rounds.iter().filter(|r| r.seq <= upto) {
            for v in &round.values {
                let def = &self.defs[v.series as usize];
                let labels = Labels::from_pairs(
                    def.labels
                        .iter()
                        .map(|l| (l.name.as_str(), l.value.as_str()))
                        .chain([("__name__", def.metric.as_str()), ("host", host)]),
                );
                out.entry(labels)
                    .or_default()
                    .push((round.timestamp_unix_ms as i64, v.value.to_bits()));
            }
        }
        out
    }
}

pub(super) fn stored(tsdb: &Tsdb, matchers: &[Matcher]) -> BTreeMap<Labels, Vec<(i64, u64)>> {
    tsdb.select(matchers, i64::MIN, i64::MAX, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|s| {
            let samples = s
                .samples
                .iter()
                .map(|x| (x.timestamp_ms, x.value.to_bits()))
                .collect();
            (s.labels, samples)
        })
        .collect()
}

/// Compares series by series, reporting the first difference briefly.
pub(super) fn assert_same(
    got: BTreeMap<Labels, Vec<(i64, u64)>>,
    want: BTreeMap<Labels, Vec<(i64, u64)>>,
) {
    assert_eq!(got.len(), want.len(), "series count");
    for ((gl, gs), (wl, ws)) in got.iter().zip(&want) {
        assert_eq!(gl, wl);
        let first_diff = gs.iter().zip(ws).position(|(a, b)| a != b);
        assert!(
            gs.len() == ws.len() && first_diff.is_none(),
            "{gl}: {} samples stored, {} expected, first difference at {first_diff:?}: {:?} vs {:?}",
            gs.len(),
            ws.len(),
            first_diff.map(|i| gs[i]),
            first_diff.map(|i| ws[i]),
        );
    }
}

pub(super) fn host_is(host: &str) -> Vec<Matcher> {
    vec![Matcher::new(MatchOp::Equal, "host", host)]
}
