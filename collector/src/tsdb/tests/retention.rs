//! Retention: rollups, deletion, downsampled reads, interrupted compaction.

use super::*;
use crate::tsdb::block::SeriesTimeKey;
use crate::tsdb::downsample::day_of;

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
