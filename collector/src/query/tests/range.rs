//! Range queries, the issue's example expressions, limits and the timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{MIN, assert_close, instant, range, source};
use crate::query::{Engine, Limits, MemorySource, QueryError, QueryErrorKind};
use crate::series::{Labels, Matcher, SeriesSamples, SeriesSource, SourceError};

#[test]
fn range_query_evaluates_each_step() {
    let s = source(&[(r#"up{host="a"}"#, "1 2 3"), (r#"up{host="b"}"#, "_ _ 7")]);
    assert_eq!(
        range(&s, "up", 0, 2 * MIN, MIN),
        [r#"up{host="a"} => 0:1 1:2 2:3"#, r#"up{host="b"} => 2:7"#,]
    );
    assert_eq!(
        range(&s, "up * 2", 30_000, 2 * MIN, MIN),
        [r#"{host="a"} => 0.5:2 1.5:4"#,],
        "steps start at `start`, not aligned to the step"
    );
}

#[test]
fn range_query_of_a_scalar_is_one_unlabelled_series() {
    let s = MemorySource::new();
    assert_eq!(
        range(&s, "time() / 60", 0, 2 * MIN, MIN),
        ["{} => 0:0 1:1 2:2"]
    );
}

#[test]
fn lookback_carries_a_series_over_missing_samples() {
    let s = source(&[("up", "1 _ _ _ _ _ _ 2")]);
    assert_eq!(
        range(&s, "up", 0, 7 * MIN, MIN),
        ["up{} => 0:1 1:1 2:1 3:1 4:1 7:2"],
        "the sample at 0 is seen until 5m, exclusive"
    );
}

#[test]
fn at_start_and_end_are_the_same_at_every_step() {
    let s = source(&[("up", "1 2 3")]);
    assert_eq!(
        range(&s, "up @ start()", 0, 2 * MIN, MIN),
        ["up{} => 0:1 1:1 2:1"]
    );
    assert_eq!(
        range(&s, "up @ end()", 0, 2 * MIN, MIN),
        ["up{} => 0:3 1:3 2:3"]
    );
}

#[test]
fn topk_in_a_range_query_picks_per_step() {
    let s = source(&[(r#"x{host="a"}"#, "1 5"), (r#"x{host="b"}"#, "3 2")]);
    assert_eq!(
        range(&s, "topk(1, x)", 0, MIN, MIN),
        [r#"x{host="a"} => 1:5"#, r#"x{host="b"} => 0:3"#]
    );
}

#[test]
fn the_issues_expressions_evaluate() {
    let s = source(&[
        (
            r#"node_cpu_seconds_total{host="a", cpu="0", mode="idle"}"#,
            "0+30x10",
        ),
        (
            r#"node_cpu_seconds_total{host="a", cpu="1", mode="idle"}"#,
            "0+54x10",
        ),
        (
            r#"node_cpu_seconds_total{host="a", cpu="0", mode="user"}"#,
            "0+30x10",
        ),
        (
            r#"node_filesystem_avail_bytes{host="a", mountpoint="/"}"#,
            "1000-100x10",
        ),
        (
            r#"node_filesystem_size_bytes{host="a", mountpoint="/"}"#,
            "1000x10",
        ),
        (
            r#"container_cpu_usage_seconds_total{name="web"}"#,
            "0+60x10",
        ),
        (r#"container_cpu_usage_seconds_total{name="db"}"#, "0+6x10"),
    ]);
    let at = 10 * MIN;
    // Idle 0.5 and 0.9 of a second per second: 70% busy on average.
    let value = |query: &str| -> Vec<(String, f64)> {
        instant(&s, query, at)
            .iter()
            .map(|line| {
                let (labels, value) = line.rsplit_once(" => ").unwrap();
                (labels.to_owned(), value.parse().unwrap())
            })
            .collect()
    };
    // Idle 0.5 and 0.9 of a second per second: 30% busy on average.
    let busy =
        value(r#"100 * (1 - avg by (host) (rate(node_cpu_seconds_total{mode="idle"}[5m])))"#);
    assert_eq!(busy[0].0, r#"{host="a"}"#);
    assert_close(busy[0].1, 30.0);
    assert_eq!(
        instant(
            &s,
            "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1",
            at
        ),
        [r#"{host="a",mountpoint="/"} => 0"#]
    );
    let top = value("topk(5, rate(container_cpu_usage_seconds_total[5m]))");
    assert_eq!(top[0].0, r#"{name="web"}"#);
    assert_close(top[0].1, 1.0);
    assert_eq!(top[1].0, r#"{name="db"}"#);
    assert_close(top[1].1, 0.1);
    let full = value("predict_linear(node_filesystem_avail_bytes[6h], 4*3600) < 0");
    assert_eq!(full[0].0, r#"{host="a",mountpoint="/"}"#);
    assert_close(full[0].1, -24_000.0);
    assert_eq!(
        range(
            &s,
            "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.25",
            8 * MIN,
            10 * MIN,
            MIN
        ),
        [r#"{host="a",mountpoint="/"} => 8:0.2 9:0.1 10:0"#]
    );
}

/// A source that counts calls, to prove each selector is read once per query.
struct CountingSource {
    inner: MemorySource,
    selects: AtomicUsize,
}

impl SeriesSource for CountingSource {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<SeriesSamples>, SourceError> {
        self.selects.fetch_add(1, Ordering::Relaxed);
        self.inner.select(matchers, start_ms, end_ms, limit)
    }

    fn series(&self, m: &[Matcher], s: i64, e: i64, l: usize) -> Result<Vec<Labels>, SourceError> {
        self.inner.series(m, s, e, l)
    }

    fn label_names(&self, m: &[Matcher], s: i64, e: i64) -> Result<Vec<String>, SourceError> {
        self.inner.label_names(m, s, e)
    }

    fn label_values(
        &self,
        n: &str,
        m: &[Matcher],
        s: i64,
        e: i64,
    ) -> Result<Vec<String>, SourceError> {
        self.inner.label_values(n, m, s, e)
    }
}

#[test]
fn range_query_reads_each_selector_once() {
    let counting = CountingSource {
        inner: source(&[("a", "0+1x100"), ("b", "0+2x100")]),
        selects: AtomicUsize::new(0),
    };
    let matrix = Engine::default()
        .range(
            &counting,
            "a + on () rate(b[5m]) * 60",
            10 * MIN,
            100 * MIN,
            MIN,
        )
        .unwrap();
    assert_eq!(matrix.len(), 1);
    assert_eq!(matrix[0].samples.len(), 91);
    assert_eq!(counting.selects.load(Ordering::Relaxed), 2);
}

fn range_error(limits: Limits, query: &str, start: i64, end: i64, step: i64) -> QueryError {
    let s = source(&[(r#"x{host="a"}"#, "1x10"), (r#"x{host="b"}"#, "1x10")]);
    match Engine::new(limits).range(&s, query, start, end, step) {
        Err(err) => err,
        Ok(m) => panic!("{query}: expected an error, got {m:?}"),
    }
}

#[test]
fn range_parameters_are_checked() {
    let err = range_error(Limits::default(), "x", 0, MIN, 0);
    assert!(
        matches!(err, QueryError::InvalidStep { step_ms: 0 }),
        "{err}"
    );
    let err = range_error(Limits::default(), "x", MIN, 0, 1);
    assert!(matches!(err, QueryError::EndBeforeStart), "{err}");
    let err = range_error(Limits::default(), "x[5m]", 0, MIN, 1000);
    assert_eq!(
        err.to_string(),
        r#"invalid expression type "range vector" for range query, must be Scalar or instant Vector"#
    );
    let err = range_error(Limits::default(), r#""text""#, 0, MIN, 1000);
    assert!(
        matches!(err, QueryError::RangeQueryType { found: "string" }),
        "{err}"
    );
    assert_eq!(err.kind(), QueryErrorKind::BadData);
}

#[test]
fn points_per_series_are_limited_as_prometheus_does() {
    let limits = Limits::default();
    let err = range_error(limits.clone(), "x", 0, 11_001 * 1000, 1000);
    assert!(
        matches!(err, QueryError::TooManyPoints { limit: 11_000 }),
        "{err}"
    );
    let s = source(&[("x", "1")]);
    let ok = Engine::new(limits)
        .range(&s, "x", 0, 11_000 * 1000, 1000)
        .unwrap();
    assert_eq!(
        ok[0].samples.len(),
        300,
        "11,001 steps, 5 minutes of them see the sample"
    );
}

#[test]
fn selecting_too_many_series_fails() {
    let limits = Limits {
        max_series: 1,
        ..Limits::default()
    };
    let err = range_error(limits, "x", 0, MIN, MIN);
    assert!(
        matches!(err, QueryError::TooManySeries { limit: 1 }),
        "{err}"
    );
    assert_eq!(err.kind(), QueryErrorKind::Execution);
}

#[test]
fn series_count_across_selectors() {
    let limits = Limits {
        max_series: 3,
        ..Limits::default()
    };
    let err = range_error(limits, "x + x", 0, MIN, MIN);
    assert!(
        matches!(err, QueryError::TooManySeries { limit: 3 }),
        "{err}"
    );
}

#[test]
fn loading_too_many_samples_fails() {
    let limits = Limits {
        max_samples: 15,
        ..Limits::default()
    };
    let err = range_error(limits, "x", 0, 9 * MIN, MIN);
    assert!(
        matches!(err, QueryError::TooManySamples { limit: 15 }),
        "{err}"
    );
}

#[test]
fn a_query_past_its_deadline_times_out() {
    let limits = Limits {
        timeout: Duration::ZERO,
        ..Limits::default()
    };
    let err = range_error(limits.clone(), "x", 0, MIN, MIN);
    assert!(matches!(err, QueryError::Timeout { .. }), "{err}");
    assert_eq!(err.kind(), QueryErrorKind::Timeout);
    let s = source(&[("x", "1")]);
    let err = Engine::new(limits).instant(&s, "x", 0).unwrap_err();
    assert!(matches!(err, QueryError::Timeout { .. }), "{err}");
}
