//! Functions through the engine: windows, extrapolation, counter resets, labels.

use super::{MIN, assert_close, instant, instant_error, only_value, scalar, source};
use crate::query::QueryError;

#[test]
fn rate_of_a_steady_counter_is_its_slope_at_any_alignment() {
    // +60 a minute is 1 per second, whether the window's edges fall on samples or between.
    let s = source(&[("c", "0+60x10")]);
    assert_close(only_value(&s, "rate(c[5m])", 10 * MIN), 1.0);
    assert_close(only_value(&s, "rate(c[5m])", 10 * MIN - 30_000), 1.0);
    assert_close(only_value(&s, "increase(c[5m])", 10 * MIN), 300.0);
}

#[test]
fn increase_extrapolates_half_an_interval_where_the_series_starts() {
    // Samples at 7m, 8m, 9m: the window (4m, 9m] starts 180 s before the first sample,
    // more than 1.1 intervals, so only 30 s is added there: 120 * 150 / 120.
    let s = source(&[("c", "_x7 100 160 220")]);
    assert_close(only_value(&s, "increase(c[5m])", 9 * MIN), 150.0);
    assert_close(only_value(&s, "rate(c[5m])", 9 * MIN), 0.5);
}

#[test]
fn increase_does_not_extrapolate_a_counter_below_zero() {
    // From 1 the line reaches zero 1 s before the first sample: 120 * (120 + 1) / 120.
    let s = source(&[("c", "_x7 1 61 121")]);
    assert_close(only_value(&s, "increase(c[5m])", 9 * MIN), 121.0);
}

#[test]
fn counter_resets_count_as_restarts_from_zero() {
    // 10, 20, reset, 5, 15: 25 of increase over 180 s of samples; the window (-30s, 3m30s]
    // adds 30 s at each edge: 25 * 240 / 180 over 240 s.
    let s = source(&[("c", "10 20 5 15")]);
    assert_close(
        only_value(&s, "increase(c[4m])", 3 * MIN + 30_000),
        25.0 * 240.0 / 180.0,
    );
    assert_close(
        only_value(&s, "rate(c[4m])", 3 * MIN + 30_000),
        25.0 / 180.0,
    );
    // delta treats the series as a gauge: 5 * 240 / 180.
    assert_close(
        only_value(&s, "delta(c[4m])", 3 * MIN + 30_000),
        5.0 * 240.0 / 180.0,
    );
}

#[test]
fn irate_uses_the_last_two_samples() {
    let s = source(&[("c", "1 5 8"), ("r", "1 5 2")]);
    assert_close(only_value(&s, "irate(c[5m])", 2 * MIN), 3.0 / 60.0);
    assert_close(only_value(&s, "irate(r[5m])", 2 * MIN), 2.0 / 60.0);
}

#[test]
fn rate_needs_two_samples_in_the_window() {
    let s = source(&[("c", "1 2")]);
    assert!(instant(&s, "rate(c[1m])", MIN).is_empty());
    assert!(instant(&s, "irate(c[1m])", MIN).is_empty());
    assert!(instant(&s, "deriv(c[1m])", MIN).is_empty());
}

#[test]
fn deriv_and_predict_linear_fit_a_line() {
    // 100, 80, 60: -20 a minute.
    let s = source(&[(r#"avail{host="a"}"#, "100 80 60")]);
    assert_close(only_value(&s, "deriv(avail[5m])", 2 * MIN), -1.0 / 3.0);
    assert_close(
        only_value(&s, "predict_linear(avail[5m], 60)", 2 * MIN),
        40.0,
    );
    assert_close(
        only_value(&s, "predict_linear(avail[5m], 3 * 60)", 2 * MIN),
        0.0,
    );
    assert_eq!(
        instant(&s, "predict_linear(avail[5m], 4 * 60) < 0", 2 * MIN),
        [r#"{host="a"} => -20"#]
    );
}

#[test]
fn over_time_aggregations_see_the_whole_window() {
    let s = source(&[(r#"g{host="a"}"#, "3 1 8")]);
    let at = 2 * MIN;
    assert_eq!(
        instant(&s, "avg_over_time(g[5m])", at),
        [r#"{host="a"} => 4"#]
    );
    assert_eq!(
        instant(&s, "max_over_time(g[5m])", at),
        [r#"{host="a"} => 8"#]
    );
    assert_eq!(
        instant(&s, "min_over_time(g[5m])", at),
        [r#"{host="a"} => 1"#]
    );
    assert_eq!(
        instant(&s, "sum_over_time(g[5m])", at),
        [r#"{host="a"} => 12"#]
    );
    assert_eq!(
        instant(&s, "count_over_time(g[5m])", at),
        [r#"{host="a"} => 3"#]
    );
    assert_eq!(
        instant(&s, "last_over_time(g[5m])", at),
        [r#"g{host="a"} => 8"#],
        "last_over_time keeps the metric name"
    );
}

#[test]
fn changes_counts_value_changes_in_the_window_and_drops_the_name() {
    // A container restarted twice: its start time changed at minutes 2 and 4.
    let s = source(&[(r#"start{name="web"}"#, "100 100 220 220 340 340")]);
    assert_eq!(
        instant(&s, "changes(start[10m])", 5 * MIN),
        [r#"{name="web"} => 2"#]
    );
    // The window (2m, 5m] holds 220 220 340: one change.
    assert_eq!(
        instant(&s, "changes(start[3m])", 5 * MIN),
        [r#"{name="web"} => 1"#]
    );
    assert!(instant(&s, "changes(start[1m])", 20 * MIN).is_empty());
}

#[test]
fn math_functions_drop_the_name() {
    let s = source(&[(r#"x{host="a"}"#, "-1.5"), (r#"y{host="a"}"#, "1.23")]);
    assert_eq!(instant(&s, "abs(x)", 0), [r#"{host="a"} => 1.5"#]);
    assert_eq!(instant(&s, "ceil(x)", 0), [r#"{host="a"} => -1"#]);
    assert_eq!(instant(&s, "floor(x)", 0), [r#"{host="a"} => -2"#]);
    assert_eq!(instant(&s, "round(x)", 0), [r#"{host="a"} => -1"#]);
    assert_eq!(instant(&s, "round(y, 0.2)", 0), [r#"{host="a"} => 1.2"#]);
    assert_eq!(instant(&s, "clamp_min(x, 0)", 0), [r#"{host="a"} => 0"#]);
    assert_eq!(instant(&s, "clamp_max(y, 1)", 0), [r#"{host="a"} => 1"#]);
    assert_eq!(instant(&s, "clamp_max(x, 1)", 0), [r#"{host="a"} => -1.5"#]);
}

#[test]
fn time_vector_and_scalar() {
    let s = source(&[(r#"up{host="a"}"#, "4"), (r#"up{host="b"}"#, "5")]);
    assert_eq!(scalar(&s, "time()", 90_000), 90.0);
    assert_eq!(instant(&s, "vector(time())", 90_000), ["{} => 90"]);
    assert_eq!(scalar(&s, r#"scalar(up{host="a"})"#, 0), 4.0);
    assert!(
        scalar(&s, "scalar(up)", 0).is_nan(),
        "two elements make NaN"
    );
    assert!(scalar(&s, "scalar(nothing)", 0).is_nan());
}

#[test]
fn timestamp_of_a_selector_is_the_sample_time() {
    let s = source(&[(r#"up{host="a"}"#, "1 1 1")]);
    let at = 2 * MIN + 30_000;
    assert_eq!(instant(&s, "timestamp(up)", at), [r#"{host="a"} => 120"#]);
    assert_eq!(instant(&s, "timestamp((up))", at), [r#"{host="a"} => 120"#]);
    assert_eq!(
        instant(&s, "timestamp(abs(up))", at),
        [r#"{host="a"} => 150"#],
        "other expressions are at the evaluation time"
    );
}

#[test]
fn dropping_names_that_collide_is_an_error() {
    let s = source(&[(r#"a{host="x"}"#, "1 2"), (r#"b{host="x"}"#, "1 2")]);
    let err = instant_error(&s, r#"rate({__name__=~"a|b"}[5m])"#, MIN);
    assert!(matches!(err, QueryError::DuplicateLabelset { .. }), "{err}");
    let err = instant_error(&s, r#"-{__name__=~"a|b"}"#, MIN);
    assert!(matches!(err, QueryError::DuplicateLabelset { .. }), "{err}");
    assert_eq!(
        instant(&s, r#"last_over_time({__name__=~"a|b"}[5m])"#, MIN).len(),
        2,
        "last_over_time keeps the names apart"
    );
}
