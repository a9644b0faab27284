//! [`Engine`]: instant and range queries over a [`SeriesSource`], within [`Limits`].
//!
//! A query runs in three stages: parse and check the subset ([`Query::parse`]), load every
//! selector's data once for the whole span ([`Preloaded::load`]), then evaluate the
//! expression at each step ([`eval`]), checking the deadline between steps. Nothing is
//! written anywhere, so a query stopped by an error or its timeout leaves nothing behind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use promql_parser::parser::Expr;
use promql_parser::parser::value::ValueType;

use crate::series::{Labels, Sample, SeriesSamples, SeriesSource};

use super::aggregate::Aggregation;
use super::error::QueryError;
use super::eval::{StepContext, eval};
use super::parse::Query;
use super::select::{Preloaded, Span};
use super::value::{Element, InstantSample, StepValue, Value};

/// What one query may cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Series all selectors of a query may select together.
    pub max_series: usize,
    /// Samples all selectors of a query may load together (16 bytes each in memory).
    pub max_samples: usize,
    /// Points per series a range query may return (Prometheus: 11,000).
    pub max_points_per_series: usize,
    /// Wall time a query may take, checked between steps.
    pub timeout: Duration,
}

impl Default for Limits {
    /// 50,000 series, 20 million samples (about 320 MiB), 11,000 points, 2 minutes
    /// (Prometheus's default query timeout).
    fn default() -> Self {
        Self {
            max_series: 50_000,
            max_samples: 20_000_000,
            max_points_per_series: 11_000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// Evaluates PromQL queries of the supported subset. Cheap to create and to clone; holds
/// no data between queries.
///
/// ```
/// use muster_collector::query::{Engine, Limits, MemorySource, Value};
///
/// let source = MemorySource::new();
/// source.add_notation(r#"up{host="a"}"#, "1 1 0", 0, 60_000).unwrap();
/// let engine = Engine::new(Limits::default());
/// let Value::Vector(down) = engine.instant(&source, "up == 0", 120_000).unwrap() else {
///     panic!("an instant vector");
/// };
/// assert_eq!(down[0].labels.get("host"), Some("a"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Engine {
    limits: Limits,
}

impl Engine {
    /// An engine that enforces `limits` on every query.
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses `query` and evaluates it at `at_ms` (ms since the Unix epoch). Blocks on the
    /// source's I/O.
    ///
    /// # Errors
    /// Parse and subset errors, limits, timeout, evaluation and source errors (see
    /// [`QueryError::kind`]).
    pub fn instant(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        at_ms: i64,
    ) -> Result<Value, QueryError> {
        self.instant_query(source, &Query::parse(query)?, at_ms)
    }

    /// Evaluates a parsed query at `at_ms`.
    ///
    /// A vector comes back sorted by labels, except the result of a top-level `topk` or
    /// `bottomk`, which keeps its ranking.
    ///
    /// # Errors
    /// As [`Engine::instant`].
    pub fn instant_query(
        &self,
        source: &dyn SeriesSource,
        query: &Query,
        at_ms: i64,
    ) -> Result<Value, QueryError> {
        let deadline = self.deadline();
        let span = Span {
            start_ms: at_ms,
            end_ms: at_ms,
        };
        let data = Preloaded::load(source, query.expr(), span, &self.limits, deadline)?;
        check_deadline(deadline, "expression evaluation")?;
        let ctx = StepContext {
            data: &data,
            t_ms: at_ms,
            span,
        };
        Ok(match eval(&ctx, query.expr())? {
            StepValue::Scalar(value) => Value::Scalar(Sample {
                timestamp_ms: at_ms,
                value,
            }),
            StepValue::String(value) => Value::String {
                timestamp_ms: at_ms,
                value,
            },
            StepValue::Vector(mut elements) => {
                if !is_ranking(query.expr()) {
                    elements.sort_by(|a, b| a.labels.cmp(&b.labels));
                }
                Value::Vector(
                    elements
                        .into_iter()
                        .map(|e| InstantSample {
                            labels: Arc::unwrap_or_clone(e.labels),
                            sample: Sample {
                                timestamp_ms: at_ms,
                                value: e.value,
                            },
                        })
                        .collect(),
                )
            }
            StepValue::Matrix(series) => Value::Matrix(
                series
                    .into_iter()
                    .map(|s| SeriesSamples {
                        labels: Arc::unwrap_or_clone(s.labels),
                        samples: s.samples,
                    })
                    .collect(),
            ),
        })
    }

    /// Parses `query` and evaluates it at `start_ms`, `start_ms + step_ms`, ... up to
    /// `end_ms` (all ms since the Unix epoch). Blocks on the source's I/O.
    ///
    /// # Errors
    /// As [`Engine::instant`], and [`QueryError::RangeQueryType`] for an expression that is
    /// neither a scalar nor an instant vector, [`QueryError::InvalidStep`],
    /// [`QueryError::EndBeforeStart`], [`QueryError::TooManyPoints`].
    pub fn range(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<SeriesSamples>, QueryError> {
        self.range_query(source, &Query::parse(query)?, start_ms, end_ms, step_ms)
    }

    /// Evaluates a parsed query over a range: a matrix sorted by labels, each series' points
    /// in time order. A scalar expression yields one series with no labels.
    ///
    /// # Errors
    /// As [`Engine::range`].
    pub fn range_query(
        &self,
        source: &dyn SeriesSource,
        query: &Query,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<SeriesSamples>, QueryError> {
        match query.expr().value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            ValueType::Matrix => {
                return Err(QueryError::RangeQueryType {
                    found: "range vector",
                });
            }
            ValueType::String => return Err(QueryError::RangeQueryType { found: "string" }),
        }
        if step_ms <= 0 {
            return Err(QueryError::InvalidStep { step_ms });
        }
        if end_ms < start_ms {
            return Err(QueryError::EndBeforeStart);
        }
        // As Prometheus: the number of intervals, one less than the number of points.
        let intervals = usize::try_from((end_ms - start_ms) / step_ms).unwrap_or(usize::MAX);
        if intervals > self.limits.max_points_per_series {
            return Err(QueryError::TooManyPoints {
                limit: self.limits.max_points_per_series,
            });
        }
        let deadline = self.deadline();
        let span = Span { start_ms, end_ms };
        let data = Preloaded::load(source, query.expr(), span, &self.limits, deadline)?;

        let mut series: HashMap<Arc<Labels>, Vec<Sample>> = HashMap::new();
        let mut t_ms = start_ms;
        while t_ms <= end_ms {
            check_deadline(deadline, "expression evaluation")?;
            let ctx = StepContext {
                data: &data,
                t_ms,
                span,
            };
            let elements = match eval(&ctx, query.expr())? {
                StepValue::Scalar(value) => vec![Element::new(Arc::new(Labels::default()), value)],
                StepValue::Vector(elements) => elements,
                other => {
                    return Err(QueryError::RangeQueryType {
                        found: other.type_name(),
                    });
                }
            };
            for element in elements {
                series.entry(element.labels).or_default().push(Sample {
                    timestamp_ms: t_ms,
                    value: element.value,
                });
            }
            let Some(next) = t_ms.checked_add(step_ms) else {
                break;
            };
            t_ms = next;
        }
        let mut matrix: Vec<SeriesSamples> = series
            .into_iter()
            .map(|(labels, samples)| SeriesSamples {
                labels: Arc::unwrap_or_clone(labels),
                samples,
            })
            .collect();
        matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(matrix)
    }

    /// When the query must stop; `None` for a timeout too large to represent.
    fn deadline(&self) -> Option<Instant> {
        Instant::now().checked_add(self.limits.timeout)
    }
}

/// Fails once `deadline` has passed.
pub(crate) fn check_deadline(
    deadline: Option<Instant>,
    stage: &'static str,
) -> Result<(), QueryError> {
    match deadline {
        Some(deadline) if Instant::now() >= deadline => Err(QueryError::Timeout { stage }),
        _ => Ok(()),
    }
}

/// Whether the outermost operation ranks its output (`topk`, `bottomk`), whose order
/// the caller should see.
fn is_ranking(expr: &Expr) -> bool {
    match expr {
        Expr::Paren(p) => is_ranking(&p.expr),
        Expr::Aggregate(a) => matches!(
            Aggregation::from_token(a.op),
            Some(Aggregation::Topk | Aggregation::Bottomk)
        ),
        _ => false,
    }
}
