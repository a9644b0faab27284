//! Retention: day merges, rollups, deletion that frees disk, downsampled reads,
//! interrupted compaction.

use super::*;
use crate::tsdb::config::DAY_MS;
use crate::tsdb::downsample::day_of;
use crate::tsdb::segment::Level;

/// Bytes of the files in `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn retention_rolls_up_deletes_and_serves_downsampled_reads() {
    use super::config::ROLLUP_BUCKET_MS;
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
    // No raw segment wholly below the floor; finished days merged into one file each; no
    // rollup beyond rollup retention.
    let raw = tsdb.blocks.snapshot();
    assert!(
        raw.iter()
            .all(|s| s.trailer().max_ts >= floors.rolled_up_before)
    );
    let today = day_of(now);
    for s in raw.iter() {
        let t = s.trailer();
        assert_eq!(
            t.level == Level::Day,
            t.max_ts < today,
            "{}",
            s.path().display()
        );
    }
    let oldest_day = tsdb
        .rollups
        .snapshot()
        .iter()
        .map(|s| s.trailer().day)
        .min()
        .unwrap();
    assert_eq!(oldest_day, day_of(now - 4 * DAY_MS));

    // Old ranges: one sample per 5-minute bucket, the bucket's last raw sample.
    let want = agent.expected("web1", sent);
    let got = stored(&tsdb, &[]);
    for (labels, samples) in &want {
        let mut expected: Vec<(i64, u64)> = Vec::new();
        for &(ts, bits) in samples {
            if ts < oldest_day {
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
        (floors.rolled_up_before - oldest_day) / ROLLUP_BUCKET_MS
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

#[test]
fn expired_segments_are_deleted_and_their_disk_space_freed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        retention_ms: DAY_MS,
        rollup_retention_ms: 2 * DAY_MS,
        ..options()
    };
    let tsdb = open(dir.path(), opts);
    let agent = FakeAgent::new(9, 50, 4 * 8640);
    let blocks = dir.path().join("tsdb/blocks");
    let rollups = dir.path().join("tsdb/rollups");
    let mut sent = 0;
    for day in 1..=3u64 {
        agent.send_until(&tsdb, "web1", sent, day * 8640, 1000);
        sent = day * 8640;
        tsdb.flush(agent.ts_of(sent) + 1).unwrap();
    }
    // Three days of flush segments, nothing compacted yet.
    let before = dir_bytes(&blocks);
    assert_eq!(dir_bytes(&rollups), 0);
    let now = agent.ts_of(sent) + 1;
    let stats = tsdb.compact(now).unwrap();
    let after = dir_bytes(&blocks);
    assert!(
        stats.segments_merged > 0 && stats.blocks_deleted > 0,
        "{stats:?}"
    );
    assert!(stats.bytes_freed > 0, "{stats:?}");
    // Everything below the floor went, about a third of the data (merging the rest by day
    // moved a few index entries around: the flushes straddled midnight).
    assert!(stats.bytes_freed > before / 4, "{before} B ({stats:?})");
    assert!(
        after < before - stats.bytes_freed / 2,
        "{before} B -> {after} B ({stats:?})"
    );
    assert!(dir_bytes(&rollups) > 0);
    let s = tsdb.stats().unwrap();
    assert_eq!(s.raw_bytes, after);
    // A day later, the rollups expire as well, files and all.
    let later = now + DAY_MS;
    agent.send(&tsdb, "web1", sent, 1000);
    let again = tsdb.compact(later).unwrap();
    assert!(again.rollups_deleted > 0, "{again:?}");
    let rollup_days: Vec<i64> = tsdb
        .rollups
        .snapshot()
        .iter()
        .map(|s| s.trailer().day)
        .collect();
    assert!(
        rollup_days.iter().all(|&d| d >= day_of(later - 2 * DAY_MS)),
        "{rollup_days:?}"
    );
    assert_eq!(
        std::fs::read_dir(&rollups).unwrap().count(),
        rollup_days.len()
    );
}

#[test]
fn reads_racing_compaction_see_every_sample_once() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        retention_ms: 2 * DAY_MS,
        rollup_retention_ms: 4 * DAY_MS,
        ..options()
    };
    let tsdb = open(dir.path(), opts);
    let agent = FakeAgent::new(10, 4, 2 * 8640);
    agent.send_until(&tsdb, "web1", 0, 8640, 1000);
    tsdb.flush(agent.ts_of(8640) + 1).unwrap();
    agent.send(&tsdb, "web1", 8640, 1000);
    let now = agent.ts_of(2 * 8640) + 1;
    tsdb.flush(now).unwrap();
    let want = stored(&tsdb, &[]);
    // Merging the first day while readers read: each read sees the flush segments or the
    // day file, never both halves or neither.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
                assert_same(stored(&tsdb, &[]), want.clone());
                reads += 1;
            }
            reads
        });
        tsdb.compact(now).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Release);
        assert!(reader.join().unwrap() > 0);
    });
    assert!(
        tsdb.blocks
            .snapshot()
            .iter()
            .any(|s| s.trailer().level == Level::Day)
    );
    assert_same(stored(&tsdb, &[]), want);
}

#[test]
fn compaction_skips_a_damaged_chunk_and_merges_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (web, db) = (FakeAgent::new(14, 5, 8640), FakeAgent::new(15, 5, 8640));
    let now = web.ts_of(8640) + 1;
    {
        let tsdb = open(dir.path(), options());
        web.send(&tsdb, "web1", 0, 500);
        db.send(&tsdb, "db1", 0, 500);
        tsdb.flush_all().unwrap();
    }
    // Series 1 (web1's first) has the first run: header, chunk length, then its chunk.
    let flushed: Vec<_> = std::fs::read_dir(dir.path().join("tsdb/blocks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(flushed.len(), 1);
    let mut bytes = std::fs::read(&flushed[0]).unwrap();
    bytes[8 + 4 + 20] ^= 0x04;
    std::fs::write(&flushed[0], bytes).unwrap();

    let tsdb = open(dir.path(), options());
    let stats = tsdb.compact(now + DAY_MS).unwrap();
    assert_eq!(stats.damaged_chunks, 1, "{stats:?}");
    assert!(
        stats.days_merged >= 2 && stats.segments_merged >= 1,
        "{stats:?}"
    );
    assert!(!flushed[0].exists());
    assert_same(stored(&tsdb, &host_is("db1")), db.expected("db1", 8640));
    // web1 lost the damaged chunk, its series' first, and nothing else.
    let got = stored(&tsdb, &host_is("web1"));
    let mut short = Vec::new();
    for (labels, samples) in web.expected("web1", 8640) {
        let have = got.get(&labels).map_or(&[][..], |s| &s[..]);
        if have.len() != samples.len() {
            assert!(samples.ends_with(have), "{labels}");
            short.push(samples.len() - have.len());
        }
    }
    assert!(
        short.len() == 1 && (1..=180).contains(&short[0]),
        "{short:?}"
    );
}
