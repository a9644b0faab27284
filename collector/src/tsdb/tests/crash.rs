//! Crashes, re-ingest from durable cursors, shutdown flushes and failed flushes.

use super::*;

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
