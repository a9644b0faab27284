//! Tests of the whole store: ingest → select, crash and re-ingest, flush failures,
//! retention, and the space and speed measurements (ignored; run them by name).

use std::collections::BTreeMap;

use muster_shared::protocol::samples::{
    BatchError, Label, Round, SampleBatch, SeriesDef, SeriesValue,
};
use muster_shared::store::{Store, StoreOptions};

use super::block::SeriesTimeKey;
use super::downsample::day_of;
use super::synthetic::{HostProfile, SyntheticHost};
use super::*;
use crate::series::{Labels, MatchOp, Matcher, SeriesSource, SourceError};

const START: i64 = 1_700_000_000_000;

fn options() -> TsdbOptions {
    TsdbOptions {
        tolerance_ms: 0,
        ..TsdbOptions::default()
    }
}

fn open(dir: &std::path::Path, options: TsdbOptions) -> Tsdb {
    let store = Store::open(dir, StoreOptions::collector()).unwrap();
    Tsdb::open(&store, options).unwrap()
}

/// An agent's buffer: every round it took, served from a cursor.
struct FakeAgent {
    defs: Vec<SeriesDef>,
    rounds: Vec<Round>,
}

impl FakeAgent {
    fn new(seed: u64, series: usize, rounds: usize) -> Self {
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

    fn batch(&self, after: u64, max: usize) -> SampleBatch {
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

    fn ts_of(&self, seq: u64) -> i64 {
        self.rounds[seq as usize - 1].timestamp_unix_ms as i64
    }

    /// Ingests every round after `after`, `step` rounds per batch.
    fn send(&self, tsdb: &Tsdb, host: &str, after: u64, step: usize) -> IngestStats {
        self.send_until(tsdb, host, after, u64::MAX, step)
    }

    /// Ingests the rounds after `after` up to `upto`, `step` rounds per batch.
    fn send_until(
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
    fn expected(&self, host: &str, upto: u64) -> BTreeMap<Labels, Vec<(i64, u64)>> {
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

fn stored(tsdb: &Tsdb, matchers: &[Matcher]) -> BTreeMap<Labels, Vec<(i64, u64)>> {
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
fn assert_same(got: BTreeMap<Labels, Vec<(i64, u64)>>, want: BTreeMap<Labels, Vec<(i64, u64)>>) {
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

fn host_is(host: &str) -> Vec<Matcher> {
    vec![Matcher::new(MatchOp::Equal, "host", host)]
}

#[test]
fn ingest_then_select_round_trips_through_head_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(dir.path(), options());
    let agent = FakeAgent::new(1, 30, 400);
    let stats = agent.send(&tsdb, "web1", 0, 37);
    assert_eq!(stats.appended, 30 * 400);
    assert_eq!(stats.new_series, 30);
    // Half in blocks, half in the head.
    tsdb.flush(agent.ts_of(200)).unwrap();
    assert!(tsdb.stats().unwrap().blocks_written > 0);
    assert_same(stored(&tsdb, &host_is("web1")), agent.expected("web1", 400));
    // All in blocks, read back after a reopen.
    tsdb.flush_all().unwrap();
    drop(tsdb);
    let tsdb = open(dir.path(), options());
    assert_same(stored(&tsdb, &[]), agent.expected("web1", 400));
    let range = tsdb
        .select(&host_is("web1"), agent.ts_of(10), agent.ts_of(19), 100)
        .unwrap();
    assert!(range.iter().all(|s| s.samples.len() == 10));
}

#[test]
fn matchers_of_all_four_kinds_select_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(dir.path(), options());
    let (a, b) = (FakeAgent::new(1, 20, 3), FakeAgent::new(2, 20, 3));
    a.send(&tsdb, "web1", 0, 10);
    b.send(&tsdb, "db1", 0, 10);
    let count = |m: Vec<Matcher>| tsdb.series(&m, i64::MIN, i64::MAX, 1000).unwrap().len();
    let re = |s: &str| regex::Regex::new(&format!("^(?:{s})$")).unwrap();
    assert_eq!(count(vec![]), 40);
    assert_eq!(count(host_is("web1")), 20);
    assert_eq!(
        count(vec![Matcher::new(MatchOp::NotEqual, "host", "web1")]),
        20
    );
    assert_eq!(
        count(vec![Matcher::new(MatchOp::Re(re("web.*|db1")), "host", "")]),
        40
    );
    assert_eq!(
        count(vec![Matcher::new(MatchOp::NotRe(re("d.*")), "host", "")]),
        20
    );
    let cpu = Matcher::new(MatchOp::Equal, "__name__", "node_cpu_seconds_total");
    assert_eq!(count(vec![cpu.clone()]), 4);
    assert_eq!(count(vec![cpu, Matcher::new(MatchOp::Equal, "job", "")]), 4);
    let names = tsdb
        .label_names(&host_is("db1"), i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(names, ["__name__", "device", "host", "index"]);
    let hosts = tsdb.label_values("host", &[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(hosts, ["db1", "web1"]);
    // Nothing in range, nothing selected.
    assert_eq!(tsdb.series(&[], 0, 1, 1000).unwrap().len(), 0);
    assert!(matches!(
        tsdb.select(&[], i64::MIN, i64::MAX, 39),
        Err(SourceError::TooManySeries { limit: 39 })
    ));
}

#[test]
fn agent_host_label_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(dir.path(), options());
    let mut agent = FakeAgent::new(1, 2, 2);
    for def in &mut agent.defs {
        def.labels.push(Label {
            name: "host".into(),
            value: "liar".into(),
        });
        def.labels.sort();
    }
    agent.send(&tsdb, "web1", 0, 10);
    assert_eq!(
        tsdb.series(&host_is("liar"), i64::MIN, i64::MAX, 10)
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        tsdb.series(&host_is("web1"), i64::MIN, i64::MAX, 10)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn crash_then_reingest_from_durable_cursor_gives_one_copy_of_each_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (web, db) = (FakeAgent::new(1, 25, 500), FakeAgent::new(2, 25, 500));
    let cursor_before_crash = {
        let tsdb = open(dir.path(), options());
        web.send_until(&tsdb, "web1", 0, 300, 50);
        db.send_until(&tsdb, "db1", 0, 300, 50);
        tsdb.flush(web.ts_of(300)).unwrap();
        web.send(&tsdb, "web1", 300, 50);
        db.send(&tsdb, "db1", 300, 50);
        // Crash: the head (rounds past the cursor) is lost, nothing else flushed.
        tsdb.durable_cursor("web1")
    };
    let tsdb = open(dir.path(), options());
    let cursor = tsdb.durable_cursor("web1");
    assert_eq!(cursor, cursor_before_crash);
    assert!(cursor > 0 && cursor < 300, "{cursor}");
    // Never ahead: every round up to the cursor is there with the head gone.
    assert_same(
        stored(&tsdb, &host_is("web1")),
        web.expected("web1", cursor),
    );
    // Re-pull from the cursor, and again from 0 as a careless scraper would.
    let again = web.send(&tsdb, "web1", cursor, 64);
    assert_eq!(again.duplicates, 0);
    let from_zero = web.send(&tsdb, "web1", 0, 64);
    assert_eq!(from_zero.appended, 0);
    assert_eq!(from_zero.duplicates, 25 * 500);
    db.send(&tsdb, "db1", tsdb.durable_cursor("db1"), 64);
    assert_same(stored(&tsdb, &host_is("web1")), web.expected("web1", 500));
    assert_same(stored(&tsdb, &host_is("db1")), db.expected("db1", 500));
    // And after flushing everything, the same from disk alone.
    tsdb.flush_all().unwrap();
    assert_eq!(tsdb.durable_cursor("web1"), 500);
    drop(tsdb);
    let tsdb = open(dir.path(), options());
    assert_same(stored(&tsdb, &host_is("web1")), web.expected("web1", 500));
}

#[test]
fn shutdown_flush_then_reingest_dedupes_partial_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let agent = FakeAgent::new(3, 10, 300);
    {
        let tsdb = open(dir.path(), options());
        agent.send(&tsdb, "web1", 0, 100);
        tsdb.flush_all().unwrap();
        assert_eq!(tsdb.durable_cursor("web1"), 300);
    }
    let tsdb = open(dir.path(), options());
    // A scraper that lost its own cursor re-sends everything.
    assert_eq!(agent.send(&tsdb, "web1", 0, 64).appended, 0);
    assert_same(stored(&tsdb, &[]), agent.expected("web1", 300));
}

#[test]
fn aligned_timestamps_survive_a_crash_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        tolerance_ms: 2,
        ..TsdbOptions::default()
    };
    let agent = FakeAgent::new(4, 10, 400);
    let before: Vec<usize> = {
        let tsdb = open(dir.path(), opts);
        agent.send(&tsdb, "web1", 0, 40);
        tsdb.flush(agent.ts_of(250)).unwrap();
        stored(&tsdb, &[]).values().map(Vec::len).collect()
    };
    let tsdb = open(dir.path(), opts);
    agent.send(&tsdb, "web1", 0, 40);
    let after = stored(&tsdb, &[]);
    assert_eq!(after.values().map(Vec::len).collect::<Vec<_>>(), before);
    for samples in after.values() {
        assert!(samples.windows(2).all(|w| w[1].0 - w[0].0 > 5_000));
    }
}

#[test]
fn failed_flush_keeps_head_and_cursors_and_the_next_one_retries() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(dir.path(), options());
    let agent = FakeAgent::new(5, 10, 400);
    agent.send(&tsdb, "web1", 0, 50);
    let now = agent.ts_of(400);

    tsdb.faults.arm("blocks");
    let err = tsdb.flush(now).unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("flushing"), "{err}");
    assert_eq!(tsdb.durable_cursor("web1"), 0);
    assert_same(stored(&tsdb, &[]), agent.expected("web1", 400));

    // Blocks committed, cursors not: they stay behind.
    tsdb.faults.disarm();
    tsdb.faults.arm("cursors");
    assert!(matches!(tsdb.flush(now), Err(TsdbError::Cursors { .. })));
    assert_eq!(tsdb.durable_cursor("web1"), 0);

    tsdb.faults.disarm();
    let ok = tsdb.flush(now).unwrap();
    assert_eq!(ok.cursors, 1);
    let cursor = tsdb.durable_cursor("web1");
    assert!(cursor > 0);
    drop(tsdb);
    let tsdb = open(dir.path(), options());
    assert_eq!(tsdb.durable_cursor("web1"), cursor);
    assert_same(stored(&tsdb, &[]), agent.expected("web1", cursor));
}

#[test]
fn malformed_batches_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(dir.path(), options());
    let agent = FakeAgent::new(6, 5, 3);
    let good = agent.batch(0, 10);
    let mut undefined = good.clone();
    undefined.rounds[1].values.push(SeriesValue {
        series: 99,
        value: 1.0,
    });
    let mut unnamed = good.clone();
    unnamed.series[0].metric.clear();
    let mut far_future = good.clone();
    far_future.rounds[2].timestamp_unix_ms = u64::MAX;
    for (batch, host) in [
        (&undefined, "web1"),
        (&unnamed, "web1"),
        (&far_future, "web1"),
        (&good, ""),
    ] {
        let err = tsdb.ingest(host, batch).unwrap_err();
        assert!(!err.is_retryable(), "{err}");
    }
    assert!(matches!(
        tsdb.ingest("web1", &undefined),
        Err(TsdbError::InvalidBatch {
            source: BatchError::UndefinedSeries { id: 99, .. },
            ..
        })
    ));
    assert_eq!(tsdb.stats().unwrap().series, 0);
    assert_eq!(tsdb.stats().unwrap().head_samples, 0);
    tsdb.flush_all().unwrap();
    assert_eq!(tsdb.durable_cursor("web1"), 0);
    assert!(stored(&tsdb, &[]).is_empty());
}

#[test]
fn empty_batches_move_the_cursor_past_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(dir.path(), options());
    tsdb.ingest("web1", &SampleBatch::empty(42)).unwrap();
    tsdb.flush(START).unwrap();
    assert_eq!(tsdb.durable_cursor("web1"), 42);
}

#[test]
fn series_limit_drops_new_series_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(
        dir.path(),
        TsdbOptions {
            max_series: 3,
            ..options()
        },
    );
    let stats = FakeAgent::new(7, 5, 2).send(&tsdb, "web1", 0, 10);
    assert_eq!(stats.new_series, 3);
    assert_eq!((stats.appended, stats.over_limit), (6, 4));
    assert_eq!(tsdb.stats().unwrap().samples_refused, 4);
}

#[test]
fn hosts_ingest_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(dir.path(), options());
    let agents: Vec<FakeAgent> = (0..8).map(|i| FakeAgent::new(i, 20, 50)).collect();
    std::thread::scope(|scope| {
        for (i, agent) in agents.iter().enumerate() {
            let tsdb = &tsdb;
            scope.spawn(move || agent.send(tsdb, &format!("h{i}"), 0, 7));
        }
    });
    let stats = tsdb.stats().unwrap();
    assert_eq!((stats.series, stats.samples_appended), (160, 160 * 50));
    for (i, agent) in agents.iter().enumerate() {
        let host = format!("h{i}");
        assert_same(stored(&tsdb, &host_is(&host)), agent.expected(&host, 50));
    }
}

#[test]
fn retention_rolls_up_deletes_and_serves_downsampled_reads() {
    use super::config::{DAY_MS, ROLLUP_BUCKET_MS};
    use super::downsample::bucket_of;
    let dir = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        retention_ms: 2 * DAY_MS,
        rollup_retention_ms: 4 * DAY_MS,
        ..options()
    };
    let tsdb = open(dir.path(), opts);
    let days = 6;
    let agent = FakeAgent::new(8, 3, days * 8640);
    let mut sent = 0;
    for day in 1..=days as u64 {
        sent = {
            agent.send_until(&tsdb, "web1", sent, day * 8640, 500);
            day * 8640
        };
        let now = agent.ts_of(sent) + 1;
        tsdb.flush(now).unwrap();
        if day == 5 {
            // Interrupted after the roll-up floor moved: raw blocks still there.
            tsdb.faults.arm("delete");
            assert!(tsdb.compact(now).is_err());
            tsdb.faults.disarm();
        }
        tsdb.compact(now).unwrap();
    }
    let now = agent.ts_of(sent) + 1;
    let floors = tsdb.floors.record();
    assert_eq!(floors.sealed_before, day_of(now - 2 * DAY_MS));
    assert_eq!(floors.rolled_up_before, floors.sealed_before);
    // No raw block below the floor, no rollup beyond rollup retention.
    let id = tsdb.index.read().ids().next().unwrap();
    let below = SeriesTimeKey::first(id)..SeriesTimeKey {
        series: id,
        ts: floors.rolled_up_before,
    };
    assert_eq!(tsdb.blocks.range(below).count(), 0);
    let oldest_day = tsdb
        .rollups
        .range(SeriesTimeKey::first(id)..)
        .next()
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(oldest_day.ts, day_of(now - 4 * DAY_MS));

    // Old ranges: one sample per 5-minute bucket, the bucket's last raw sample.
    let want = agent.expected("web1", sent);
    let got = stored(&tsdb, &[]);
    for (labels, samples) in &want {
        let mut expected: Vec<(i64, u64)> = Vec::new();
        for &(ts, bits) in samples {
            if ts < oldest_day.ts {
                continue;
            }
            if ts >= floors.rolled_up_before {
                expected.push((ts, bits));
            } else if let Some(last) = expected
                .last_mut()
                .filter(|l| bucket_of(l.0) == bucket_of(ts))
            {
                *last = (ts, bits);
            } else {
                expected.push((ts, bits));
            }
        }
        let stored = &got[labels];
        assert_eq!(stored.len(), expected.len(), "{labels}");
        assert!(stored == &expected, "{labels}");
    }
    let rolled_up = got.values().next().unwrap();
    let old: Vec<_> = rolled_up
        .iter()
        .filter(|s| s.0 < floors.rolled_up_before)
        .collect();
    assert_eq!(
        old.len() as i64,
        (floors.rolled_up_before - oldest_day.ts) / ROLLUP_BUCKET_MS
    );

    // Idempotent, and the floors survive a reopen.
    let again = tsdb.compact(now).unwrap();
    assert_eq!(again, CompactStats::default());
    tsdb.flush_all().unwrap();
    drop(tsdb);
    let tsdb = open(dir.path(), opts);
    assert_same(stored(&tsdb, &[]), got);
    // Samples below the seal are refused as too old.
    let mut late = agent.batch(0, 1);
    late.rounds[0].seq = sent + 1;
    late.first_seq = late.rounds[0].seq;
    late.last_seq = late.rounds[0].seq;
    late.next_after = late.rounds[0].seq;
    let stats = tsdb.ingest("web2", &late).unwrap();
    assert_eq!((stats.appended, stats.too_old), (0, 3));
}
