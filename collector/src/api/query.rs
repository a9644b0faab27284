//! The Prometheus-compatible query API (viewer), so Grafana's Prometheus data source and
//! other Prometheus clients can read the collector's series:
//!
//! - `GET|POST /api/v1/query` — `query`, `time` (default now), `timeout`;
//! - `GET|POST /api/v1/query_range` — `query`, `start`, `end`, `step`, `timeout`;
//! - `GET|POST /api/v1/series` — `match[]` (one or more), `start`, `end`;
//! - `GET|POST /api/v1/labels` — optional `match[]`, `start`, `end`;
//! - `GET /api/v1/label/{name}/values` — optional `match[]`, `start`, `end`.
//!
//! Parameters and answers follow Prometheus's HTTP API ([`super::query_params`],
//! [`super::query_response`]). Queries run on the blocking pool: the source reads from
//! disk, and evaluation is CPU work that must not hold an async worker.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;

use super::ApiState;
use super::query_params::{MAX_TIME_MS, MIN_TIME_MS, PromParams, invalid};
use super::query_response::{
    PromError, encode_instant, encode_label_sets, encode_matrix, encode_strings, success,
};
use crate::query::{Engine, Limits, Query};
use crate::series::{Labels, Matcher, SourceError};

/// `/api/v1/query`: evaluates `query` at `time`.
///
/// # Errors
/// `bad_data` for parameters and queries, `execution`, `timeout`, `internal`.
pub async fn instant(
    State(state): State<ApiState>,
    params: PromParams,
) -> Result<Response, PromError> {
    let at_ms = match params.time("time")? {
        Some(t) => t,
        None => now_ms(),
    };
    let engine = engine(&params)?;
    let query = parse_query(&params)?;
    let source = Arc::clone(&state.series);
    let value = run_blocking(move || engine.instant_query(&*source, &query, at_ms)).await?;
    Ok(success(&encode_instant(&value)))
}

/// `/api/v1/query_range`: evaluates `query` from `start` to `end` every `step`.
///
/// # Errors
/// As [`instant`].
pub async fn range(
    State(state): State<ApiState>,
    params: PromParams,
) -> Result<Response, PromError> {
    let start_ms = params.required_time("start")?;
    let end_ms = params.required_time("end")?;
    let step_ms = params
        .duration("step")?
        .ok_or_else(|| invalid("step", "cannot parse \"\" to a valid duration"))?;
    let engine = engine(&params)?;
    let query = parse_query(&params)?;
    let source = Arc::clone(&state.series);
    let matrix =
        run_blocking(move || engine.range_query(&*source, &query, start_ms, end_ms, step_ms))
            .await?;
    Ok(success(&encode_matrix(&matrix)))
}

/// `/api/v1/series`: the label sets of series matching any `match[]`.
///
/// # Errors
/// `bad_data` without `match[]` or for a bad one; `execution` past the series limit.
pub async fn series(
    State(state): State<ApiState>,
    params: PromParams,
) -> Result<Response, PromError> {
    let selectors = params.required_selectors()?;
    let (start_ms, end_ms) = time_range(&params)?;
    let source = Arc::clone(&state.series);
    let limit = Limits::default().max_series;
    let sets = run_blocking(move || {
        let mut all: Vec<Labels> = Vec::new();
        for matchers in &selectors {
            all.extend(source.series(matchers, start_ms, end_ms, limit)?);
        }
        all.sort();
        all.dedup();
        if all.len() > limit {
            return Err(SourceError::TooManySeries { limit });
        }
        Ok(all)
    })
    .await?;
    Ok(success(&encode_label_sets(&sets)))
}

/// `/api/v1/labels`: label names of the series matching any `match[]` (all without).
///
/// # Errors
/// `bad_data` for a bad `match[]` or time.
pub async fn label_names(
    State(state): State<ApiState>,
    params: PromParams,
) -> Result<Response, PromError> {
    let selectors = params.selectors()?;
    let (start_ms, end_ms) = time_range(&params)?;
    let source = Arc::clone(&state.series);
    let names = run_blocking(move || {
        union(&selectors, |matchers| {
            source.label_names(matchers, start_ms, end_ms)
        })
    })
    .await?;
    Ok(success(&encode_strings(&names)))
}

/// `/api/v1/label/{name}/values`: values of label `name` among the series matching any
/// `match[]` (all without).
///
/// # Errors
/// `bad_data` for an invalid label name, a bad `match[]` or time.
pub async fn label_values(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    params: PromParams,
) -> Result<Response, PromError> {
    if !is_label_name(&name) {
        return Err(PromError::BadData(format!("invalid label name: {name:?}")));
    }
    let selectors = params.selectors()?;
    let (start_ms, end_ms) = time_range(&params)?;
    let source = Arc::clone(&state.series);
    let values = run_blocking(move || {
        union(&selectors, |matchers| {
            source.label_values(&name, matchers, start_ms, end_ms)
        })
    })
    .await?;
    Ok(success(&encode_strings(&values)))
}

/// Sorted, unique strings from each selector, or from all series when there is none.
fn union(
    selectors: &[Vec<Matcher>],
    mut each: impl FnMut(&[Matcher]) -> Result<Vec<String>, SourceError>,
) -> Result<Vec<String>, SourceError> {
    if selectors.is_empty() {
        return each(&[]);
    }
    let mut all = Vec::new();
    for matchers in selectors {
        all.extend(each(matchers)?);
    }
    all.sort();
    all.dedup();
    Ok(all)
}

fn parse_query(params: &PromParams) -> Result<Query, PromError> {
    Query::parse(params.get("query").unwrap_or("")).map_err(|e| PromError::from_query(&e, "query"))
}

/// The engine for this request: default limits, the timeout lowered by `timeout`.
fn engine(params: &PromParams) -> Result<Engine, PromError> {
    let mut limits = Limits::default();
    if let Some(ms) = params.duration("timeout")? {
        let requested = std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        limits.timeout = limits.timeout.min(requested);
    }
    Ok(Engine::new(limits))
}

/// `start` and `end`, all of time by default.
fn time_range(params: &PromParams) -> Result<(i64, i64), PromError> {
    let start = params.time("start")?.unwrap_or(MIN_TIME_MS);
    let end = params.time("end")?.unwrap_or(MAX_TIME_MS);
    if end < start {
        return Err(invalid(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

fn now_ms() -> i64 {
    i64::try_from(crate::unix_ms()).unwrap_or(i64::MAX)
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where a query's or a listing's failure comes from.
pub(super) trait IntoPromError {
    fn into_prom_error(self) -> PromError;
}

impl IntoPromError for crate::query::QueryError {
    fn into_prom_error(self) -> PromError {
        PromError::from_query(&self, "query")
    }
}

impl IntoPromError for SourceError {
    fn into_prom_error(self) -> PromError {
        match self {
            SourceError::TooManySeries { .. } => PromError::Execution(self.to_string()),
            SourceError::Store(_) => PromError::Internal(self.to_string()),
        }
    }
}

/// Runs `work` on the blocking pool.
pub(super) async fn run_blocking<T, E, F>(work: F) -> Result<T, PromError>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: IntoPromError + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PromError::Internal(format!("query task failed: {e}")))?
        .map_err(IntoPromError::into_prom_error)
}
