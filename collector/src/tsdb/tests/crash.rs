//! Crashes, re-ingest from durable cursors, shutdown flushes, failed flushes, and what a
//! crash or a bad disk leaves in the segment folder.

use std::path::{Path, PathBuf};

use super::*;
use crate::series::SourceError;

/// The segment files of `dir`'s raw folder, by name.
fn raw_segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("tsdb/blocks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    out.sort();
    out
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x04;
    std::fs::write(path, bytes).unwrap();
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
fn unfinished_segments_are_removed_and_damaged_ones_skipped_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let agent = FakeAgent::new(11, 10, 600);
    let flushed_at = agent.ts_of(200);
    {
        let tsdb = open(dir.path(), options());
        agent.send_until(&tsdb, "web1", 0, 200, 50);
        tsdb.flush(flushed_at).unwrap();
        agent.send(&tsdb, "web1", 200, 50);
        tsdb.flush_all().unwrap();
    }
    let segments = raw_segments(dir.path());
    assert_eq!(segments.len(), 2);
    // The first segment's trailer is damaged; a crash left a flush half written.
    let len = std::fs::metadata(&segments[0]).unwrap().len() as usize;
    flip(&segments[0], len - 20);
    let torn = dir.path().join("tsdb/blocks/00000000000000000003.seg.tmp");
    std::fs::write(&torn, b"MUSTSEG\x01 and no more").unwrap();

    let tsdb = open(dir.path(), options());
    assert!(!torn.exists());
    assert_eq!(tsdb.stats().unwrap().damaged_segments, 1);
    // What the other segment holds is served, and nothing of the damaged one.
    let o = options();
    let boundary = window_start(flushed_at - o.grace_ms, o.window_ms);
    let want = agent
        .expected("web1", 600)
        .into_iter()
        .map(|(l, s)| (l, s.into_iter().filter(|x| x.0 >= boundary).collect()))
        .collect();
    assert_same(stored(&tsdb, &[]), want);
}

#[test]
fn a_damaged_chunk_fails_the_reads_that_touch_it_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (web, db) = (FakeAgent::new(12, 5, 100), FakeAgent::new(13, 5, 100));
    {
        let tsdb = open(dir.path(), options());
        web.send(&tsdb, "web1", 0, 50);
        db.send(&tsdb, "db1", 0, 50);
        tsdb.flush_all().unwrap();
    }
    let segments = raw_segments(dir.path());
    // Series 1 (web1's first) has the first run: header, chunk length, then its chunk.
    flip(&segments[0], 8 + 4 + 20);
    let tsdb = open(dir.path(), options());
    assert_same(stored(&tsdb, &host_is("db1")), db.expected("db1", 100));
    match tsdb.select(&host_is("web1"), i64::MIN, i64::MAX, 100) {
        Err(SourceError::Store(text)) => {
            let name = segments[0].display().to_string();
            assert!(text.contains(&name) && text.contains("checksum"), "{text}");
        }
        other => panic!("damaged chunk read as {other:?}"),
    }
}

#[test]
fn new_series_the_index_cannot_write_are_refused_whole_and_a_retry_stores_them() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(dir.path(), options());
    let agent = FakeAgent::new(14, 10, 100);
    tsdb.index.set_fault(Some(index::Fault {
        write_bytes: 30,
        truncate_fails: false,
    }));
    let err = tsdb.ingest("web1", &agent.batch(0, 50)).unwrap_err();
    assert!(
        matches!(err, TsdbError::IndexWrite { count: 10, .. }),
        "{err}"
    );
    assert!(err.is_retryable(), "{err}");
    assert!(stored(&tsdb, &[]).is_empty());
    assert_eq!(tsdb.stats().unwrap().series, 0);

    tsdb.index.set_fault(None);
    agent.send(&tsdb, "web1", 0, 50);
    assert_same(stored(&tsdb, &[]), agent.expected("web1", 100));
    tsdb.flush_all().unwrap();
    drop(tsdb);
    let tsdb = open(dir.path(), options());
    assert_same(stored(&tsdb, &[]), agent.expected("web1", 100));
}

#[test]
fn a_series_log_damaged_before_its_end_loses_those_series_not_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (web, db) = (FakeAgent::new(15, 5, 100), FakeAgent::new(16, 5, 100));
    {
        let tsdb = open(dir.path(), options());
        web.send(&tsdb, "web1", 0, 50);
        db.send(&tsdb, "db1", 0, 50);
        tsdb.flush_all().unwrap();
    }
    // web1's record is the first: a byte of its payload (after the file header and the
    // record header). db1's record after it cannot be trusted to start where the first
    // says it ends, so it goes too.
    let log = dir.path().join("tsdb/series.log");
    flip(&log, 8 + 12 + 3);
    let tsdb = open(dir.path(), options());
    assert_eq!(tsdb.stats().unwrap().series, 0);
    assert!(dir.path().join("tsdb/series.log.damaged-8").exists());
    // The durable cursors stayed: the agents send from there, and the series come back
    // under new ids past those the segments hold.
    assert_eq!(tsdb.durable_cursor("web1"), 100);
    let later = FakeAgent::new(15, 5, 150);
    later.send(&tsdb, "web1", 100, 50);
    let ids = tsdb.index.read().ids().collect::<Vec<_>>();
    assert_eq!(ids.len(), 5);
    assert!(ids.iter().all(|&id| id > 10), "{ids:?}");
    let want = later
        .expected("web1", 150)
        .into_iter()
        .map(|(l, s)| (l, s[100..].to_vec()))
        .collect();
    assert_same(stored(&tsdb, &[]), want);
}

#[derive(serde::Serialize, serde::Deserialize)]
struct OldChunk {
    chunk: Vec<u8>,
}

impl muster_shared::store::Record for OldChunk {
    const SCHEMA: u8 = 1;
}

#[test]
fn chunks_an_earlier_build_kept_in_sled_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(&dir.path().join("store"));
        let old = store.tree::<Vec<u8>, OldChunk>("tsdb_blocks").unwrap();
        old.insert(&vec![0; 12], &OldChunk { chunk: vec![1; 40] })
            .unwrap();
        store.flush().unwrap();
    }
    drop(open(dir.path(), options()));
    let store = open_store(&dir.path().join("store"));
    assert_eq!(store.drop_tree("tsdb_blocks").unwrap(), None);
    assert_eq!(store.drop_tree("tsdb_rollups").unwrap(), None);
}
