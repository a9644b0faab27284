//! Ingest → select round trips, matchers, refusals, limits and concurrency.

use muster_shared::protocol::samples::{BatchError, Label, SampleBatch, SeriesValue};

use super::*;
use crate::series::SourceError;

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
fn local_series_sit_beside_the_hosts_own_without_moving_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(dir.path(), options());
    let agent = FakeAgent::new(1, 5, 20);
    agent.send(&tsdb, "web1", 0, 20);
    let (t1, t2) = (agent.ts_of(3), agent.ts_of(4));
    let stats = tsdb
        .append_local(
            "web1",
            t1,
            &[("up", 1.0), ("scrape_duration_seconds", 0.25)],
        )
        .unwrap();
    assert_eq!((stats.appended, stats.new_series), (2, 2));
    let stats = tsdb.append_local("web1", t2, &[("up", 0.0)]).unwrap();
    assert_eq!((stats.appended, stats.new_series), (1, 0));
    // The same timestamp again is a duplicate, not a second sample.
    assert_eq!(
        tsdb.append_local("web1", t2, &[("up", 0.0)])
            .unwrap()
            .duplicates,
        1
    );
    assert!(tsdb.append_local("", t2, &[("up", 1.0)]).is_err());
    assert!(tsdb.append_local("web1", t2, &[("", 1.0)]).is_err());
    // The inline path stores only what its cache already knows.
    let t3 = agent.ts_of(5);
    assert_eq!(
        tsdb.append_local_cached("web1", t3, &[("up", 1.0), ("new_series", 1.0)]),
        None
    );
    assert_eq!(tsdb.append_local_cached("web2", t3, &[("up", 1.0)]), None);
    let cached = tsdb
        .append_local_cached("web1", t3, &[("up", 1.0)])
        .unwrap();
    assert_eq!((cached.appended, cached.new_series), (1, 0));
    assert_eq!(
        tsdb.append_local_cached("web1", t3, &[("up", 1.0)])
            .unwrap()
            .duplicates,
        1
    );

    let up = Matcher::new(MatchOp::Equal, "__name__", "up");
    let mut matchers = host_is("web1");
    matchers.push(up);
    let series = tsdb.select(&matchers, i64::MIN, i64::MAX, 10).unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0].labels,
        Labels::from_pairs([("__name__", "up"), ("host", "web1")])
    );
    let values: Vec<(i64, f64)> = series[0]
        .samples
        .iter()
        .map(|s| (s.timestamp_ms, s.value))
        .collect();
    assert_eq!(values, [(t1, 1.0), (t2, 0.0), (t3, 1.0)]);

    // They survive a flush with the host's own series, and the cursor is the agent's.
    tsdb.flush_all().unwrap();
    assert_eq!(tsdb.durable_cursor("web1"), 20);
    drop(tsdb);
    let tsdb = open(dir.path(), options());
    assert_eq!(
        tsdb.select(&matchers, i64::MIN, i64::MAX, 10).unwrap()[0]
            .samples
            .len(),
        3
    );
}

#[test]
fn an_elided_dictionary_is_read_with_the_one_held() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(dir.path(), options());
    let agent = FakeAgent::new(7, 20, 6);
    let named = Dictionary::Named("d1".to_owned());
    assert_eq!(tsdb.held_dictionary("web1"), None);
    tsdb.ingest_with("web1", &agent.batch(0, 2), &named)
        .unwrap();
    assert_eq!(tsdb.held_dictionary("web1").as_deref(), Some("d1"));

    // The collector's own series resolve beside it without disturbing the held map.
    tsdb.append_local("web1", agent.ts_of(2) + 1, &[("up", 1.0)])
        .unwrap();

    let mut elided = agent.batch(2, 2);
    elided.series.clear();
    let values: u64 = elided.rounds.iter().map(|r| r.values.len() as u64).sum();
    assert!(values > 0);
    let stats = tsdb
        .ingest_with("web1", &elided, &Dictionary::Elided("d1".to_owned()))
        .unwrap();
    assert_eq!((stats.appended, stats.new_series), (values, 0));

    // Ids the held dictionary does not define are refused, and nothing is stored.
    let mut stray = agent.batch(4, 1);
    stray.series.clear();
    stray.rounds[0].values[0].series = 999;
    assert!(matches!(
        tsdb.ingest_with("web1", &stray, &Dictionary::Elided("d1".to_owned())),
        Err(TsdbError::InvalidBatch { .. })
    ));
    // A dictionary it does not hold is refused, and forgotten: the next pull asks whole.
    let mut unknown = agent.batch(4, 2);
    unknown.series.clear();
    assert!(matches!(
        tsdb.ingest_with("web1", &unknown, &Dictionary::Elided("d2".to_owned())),
        Err(TsdbError::Refused { .. })
    ));
    assert_eq!(tsdb.held_dictionary("web1"), None);
    tsdb.ingest_with("web1", &agent.batch(4, 2), &Dictionary::Inline)
        .unwrap();
    assert_eq!(tsdb.held_dictionary("web1"), None);

    assert_same(
        stored(&tsdb, &host_is("web1"))
            .into_iter()
            .filter(|(labels, _)| labels.get("__name__") != Some("up"))
            .collect(),
        agent.expected("web1", 6),
    );
}
