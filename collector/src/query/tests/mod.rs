//! Tests of the whole engine against [`MemorySource`], with expectations computed by hand
//! (and, in `promtool`, checked against Prometheus itself).
//!
//! Series are written in promtool's notation with samples every minute from time 0, so a
//! value's index is its minute.

mod aggregations;
mod binary;
mod functions;
mod promtool;
mod range;
mod selectors;

use super::{Engine, Limits, MemorySource, QueryError, Value};

/// One minute in milliseconds.
pub(super) const MIN: i64 = 60_000;

/// A source holding `series` (`(labels, values)` in promtool's notation), one sample per
/// minute from 0.
pub(super) fn source(series: &[(&str, &str)]) -> MemorySource {
    let source = MemorySource::new();
    for (labels, values) in series {
        source
            .add_notation(labels, values, 0, MIN)
            .unwrap_or_else(|e| panic!("{labels}: {e}"));
    }
    source
}

/// An instant query's vector as `labels => value` lines, in the engine's order.
pub(super) fn instant(source: &MemorySource, query: &str, at_ms: i64) -> Vec<String> {
    match Engine::new(Limits::default()).instant(source, query, at_ms) {
        Ok(Value::Vector(samples)) => samples
            .iter()
            .map(|s| {
                assert_eq!(s.sample.timestamp_ms, at_ms, "{query}: sample time");
                format!("{} => {}", s.labels, s.sample.value)
            })
            .collect(),
        other => panic!("{query}: expected a vector, got {other:?}"),
    }
}

/// An instant query's scalar.
pub(super) fn scalar(source: &MemorySource, query: &str, at_ms: i64) -> f64 {
    match Engine::new(Limits::default()).instant(source, query, at_ms) {
        Ok(Value::Scalar(s)) => s.value,
        other => panic!("{query}: expected a scalar, got {other:?}"),
    }
}

/// The error of an instant query that must fail.
pub(super) fn instant_error(source: &MemorySource, query: &str, at_ms: i64) -> QueryError {
    match Engine::new(Limits::default()).instant(source, query, at_ms) {
        Err(err) => err,
        Ok(value) => panic!("{query}: expected an error, got {value:?}"),
    }
}

/// A range query's matrix as `labels => t:v t:v ...` lines, times in minutes.
pub(super) fn range(
    source: &MemorySource,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Vec<String> {
    let matrix = Engine::new(Limits::default())
        .range(source, query, start_ms, end_ms, step_ms)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    matrix
        .iter()
        .map(|s| {
            let points: Vec<String> = s
                .samples
                .iter()
                .map(|p| format!("{}:{}", p.timestamp_ms as f64 / MIN as f64, p.value))
                .collect();
            format!("{} => {}", s.labels, points.join(" "))
        })
        .collect()
}

/// Asserts two floats agree to 1e-9 relative.
#[track_caller]
pub(super) fn assert_close(got: f64, want: f64) {
    let tolerance = 1e-9 * want.abs().max(1.0);
    assert!((got - want).abs() <= tolerance, "got {got}, want {want}");
}

/// The value of the only element of an instant query's vector.
pub(super) fn only_value(source: &MemorySource, query: &str, at_ms: i64) -> f64 {
    match Engine::new(Limits::default()).instant(source, query, at_ms) {
        Ok(Value::Vector(samples)) if samples.len() == 1 => samples[0].sample.value,
        other => panic!("{query}: expected one element, got {other:?}"),
    }
}
