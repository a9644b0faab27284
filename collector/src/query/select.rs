//! Loading the data a query needs, once, and looking it up at each step.
//!
//! Before the first step, every selector in the expression asks the [`SeriesSource`] once
//! for everything any step can see: for an instant selector the lookback window before the
//! first step through the last step, for a range selector its range before the first step
//! through the last. Each step then finds its window in memory by binary search. So a range
//! query of 1,000 steps costs one trip to the store per selector, not 1,000.
//!
//! Windows are left-open, as in Prometheus 3: an instant selector at time `t` sees the
//! latest sample in `(t - 5m, t]`, a range selector `[r]` the samples in `(t - r, t]`.
//! A Prometheus staleness marker hides a series from instant selectors from its timestamp
//! on, and is never a value in a range.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use promql_parser::parser::{AtModifier, Expr, MatrixSelector, Offset, VectorSelector};

use crate::series::{Labels, METRIC_NAME, MatchOp, Matcher, Sample, SeriesSource};

use super::engine::check_deadline;
use super::error::QueryError;
use super::{LOOKBACK_DELTA_MS, Limits};

/// The bit pattern of Prometheus's staleness marker, a NaN no other value uses.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `value` is a staleness marker.
pub fn is_stale(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// The evaluation times of a query: one step for an instant query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// One series as a selector loaded it.
#[derive(Debug)]
pub(crate) struct LoadedSeries {
    pub labels: Arc<Labels>,
    pub samples: Vec<Sample>,
}

/// Every selector's data, keyed by the selector node's address in the (immutable) tree.
#[derive(Debug, Default)]
pub(crate) struct Preloaded {
    selectors: HashMap<usize, Vec<LoadedSeries>>,
}

fn key(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs).addr()
}

/// A duration in milliseconds, saturating.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(offset: Option<&Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => duration_ms(*d).saturating_neg(),
    }
}

/// A time from the `@` modifier, in ms since the epoch (negative before it).
fn system_time_ms(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => duration_ms(after),
        Err(before) => duration_ms(before.duration()).saturating_neg(),
    }
}

/// The time a selector reads at when its expression is evaluated at `t_ms`: the `@` time
/// if any, else `t_ms`, then moved back by the offset.
pub(crate) fn selector_time(vs: &VectorSelector, t_ms: i64, span: Span) -> i64 {
    let at = match &vs.at {
        None => t_ms,
        Some(AtModifier::Start) => span.start_ms,
        Some(AtModifier::End) => span.end_ms,
        Some(AtModifier::At(time)) => system_time_ms(*time),
    };
    at.saturating_sub(offset_ms(vs.offset.as_ref()))
}

/// The selector's matchers, the metric name included.
fn matchers(vs: &VectorSelector) -> Vec<Matcher> {
    let mut out = vs.matchers.matchers.clone();
    if let Some(name) = &vs.name {
        out.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
    }
    out
}

/// What the loader has used up so far, against the limits.
struct Budget<'a> {
    limits: &'a Limits,
    series: usize,
    samples: usize,
    deadline: Option<Instant>,
}

impl Preloaded {
    /// Loads every selector of `expr` for evaluation times in `span`.
    ///
    /// # Errors
    /// The source's error, [`QueryError::TooManySeries`], [`QueryError::TooManySamples`] or
    /// [`QueryError::Timeout`] (checked between selectors).
    pub fn load(
        source: &dyn SeriesSource,
        expr: &Expr,
        span: Span,
        limits: &Limits,
        deadline: Option<Instant>,
    ) -> Result<Self, QueryError> {
        let mut loaded = Self::default();
        let mut budget = Budget {
            limits,
            series: 0,
            samples: 0,
            deadline,
        };
        loaded.walk(source, expr, span, &mut budget)?;
        Ok(loaded)
    }

    fn walk(
        &mut self,
        source: &dyn SeriesSource,
        expr: &Expr,
        span: Span,
        budget: &mut Budget<'_>,
    ) -> Result<(), QueryError> {
        match expr {
            Expr::VectorSelector(vs) => {
                self.load_one(source, vs, LOOKBACK_DELTA_MS, false, span, budget)
            }
            Expr::MatrixSelector(ms) => {
                let range = duration_ms(ms.range);
                self.load_one(source, &ms.vs, range, true, span, budget)
            }
            Expr::Paren(p) => self.walk(source, &p.expr, span, budget),
            Expr::Unary(u) => self.walk(source, &u.expr, span, budget),
            Expr::Binary(b) => {
                self.walk(source, &b.lhs, span, budget)?;
                self.walk(source, &b.rhs, span, budget)
            }
            Expr::Aggregate(a) => {
                if let Some(param) = &a.param {
                    self.walk(source, param, span, budget)?;
                }
                self.walk(source, &a.expr, span, budget)
            }
            Expr::Call(c) => c
                .args
                .args
                .iter()
                .try_for_each(|arg| self.walk(source, arg, span, budget)),
            // The subset check rejected subqueries and extensions before loading.
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::Subquery(_)
            | Expr::Extension(_) => Ok(()),
        }
    }

    fn load_one(
        &mut self,
        source: &dyn SeriesSource,
        vs: &VectorSelector,
        window_ms: i64,
        is_range: bool,
        span: Span,
        budget: &mut Budget<'_>,
    ) -> Result<(), QueryError> {
        check_deadline(budget.deadline, "loading series")?;
        let first = selector_time(vs, span.start_ms, span);
        let last = selector_time(vs, span.end_ms, span);
        // Timestamps are whole milliseconds, so the open end `(first - window` starts one
        // millisecond later, closed, as the source takes it.
        let from = first.saturating_sub(window_ms).saturating_add(1);
        let max_series = budget.limits.max_series;
        let remaining = max_series.saturating_sub(budget.series);
        let selected = source
            .select(&matchers(vs), from, last, remaining)
            .map_err(|err| match err {
                crate::series::SourceError::TooManySeries { .. } => {
                    QueryError::TooManySeries { limit: max_series }
                }
                other => QueryError::Source(other),
            })?;
        budget.series += selected.len();
        if budget.series > max_series {
            return Err(QueryError::TooManySeries { limit: max_series });
        }
        let mut series = Vec::with_capacity(selected.len());
        for mut one in selected {
            if is_range {
                // A staleness marker is never a value inside a range.
                one.samples.retain(|s| !is_stale(s.value));
            }
            budget.samples = budget.samples.saturating_add(one.samples.len());
            if budget.samples > budget.limits.max_samples {
                return Err(QueryError::TooManySamples {
                    limit: budget.limits.max_samples,
                });
            }
            series.push(LoadedSeries {
                labels: Arc::new(one.labels),
                samples: one.samples,
            });
        }
        self.selectors.insert(key(vs), series);
        Ok(())
    }

    fn series(&self, vs: &VectorSelector) -> &[LoadedSeries] {
        self.selectors.get(&key(vs)).map_or(&[], Vec::as_slice)
    }

    /// What an instant selector sees when evaluated at `t_ms`: per series, the latest
    /// sample in `(t - lookback, t]` (the sample keeps its own timestamp), unless that
    /// sample is a staleness marker.
    pub fn instant(
        &self,
        vs: &VectorSelector,
        t_ms: i64,
        span: Span,
    ) -> impl Iterator<Item = (&Arc<Labels>, Sample)> {
        let at = selector_time(vs, t_ms, span);
        let from = at.saturating_sub(LOOKBACK_DELTA_MS);
        self.series(vs).iter().filter_map(move |series| {
            let end = series.samples.partition_point(|s| s.timestamp_ms <= at);
            let latest = series.samples[..end].last()?;
            (latest.timestamp_ms > from && !is_stale(latest.value))
                .then_some((&series.labels, *latest))
        })
    }

    /// What a range selector sees when evaluated at `t_ms`: per series, the samples in
    /// `(t - range, t]`; series with none are left out.
    pub fn range<'a>(
        &'a self,
        ms: &'a MatrixSelector,
        t_ms: i64,
        span: Span,
    ) -> impl Iterator<Item = (&'a Arc<Labels>, &'a [Sample])> {
        let (from, to) = range_bounds(ms, t_ms, span);
        self.series(&ms.vs).iter().filter_map(move |series| {
            let start = series.samples.partition_point(|s| s.timestamp_ms <= from);
            let end = series.samples.partition_point(|s| s.timestamp_ms <= to);
            (start < end).then(|| (&series.labels, &series.samples[start..end]))
        })
    }
}

/// The open start and closed end of a range selector's window at `t_ms`.
pub(crate) fn range_bounds(ms: &MatrixSelector, t_ms: i64, span: Span) -> (i64, i64) {
    let to = selector_time(&ms.vs, t_ms, span);
    (to.saturating_sub(duration_ms(ms.range)), to)
}
