//! The values a query produces: what the engine hands back ([`Value`]), and what flows
//! between the nodes of one evaluation step ([`StepValue`]).
//!
//! Inside a step, labels are shared behind an `Arc`: a selector's series keep the same
//! labels at every step, so passing them on costs a reference count, not a copy.

use std::collections::HashSet;
use std::sync::Arc;

use crate::series::{Labels, METRIC_NAME, Sample, SeriesSamples};

use super::error::QueryError;

/// The result of an instant query, in Prometheus's four result types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `scalar`: one number at the evaluation time.
    Scalar(Sample),
    /// `string`: a string literal at the evaluation time.
    String {
        /// The evaluation time, ms since the Unix epoch.
        timestamp_ms: i64,
        /// The string.
        value: String,
    },
    /// `vector`: one sample per series, each at the evaluation time.
    Vector(Vec<InstantSample>),
    /// `matrix`: samples of each series over a range (an instant query of `foo[5m]`).
    Matrix(Vec<SeriesSamples>),
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    /// The series' labels.
    pub labels: Labels,
    /// The value, at the evaluation time.
    pub sample: Sample,
}

/// One element of an instant vector during a step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Element {
    pub labels: Arc<Labels>,
    pub value: f64,
}

impl Element {
    pub fn new(labels: Arc<Labels>, value: f64) -> Self {
        Self { labels, value }
    }
}

/// A series' samples in a range, as a range selector yields them during a step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RangeSeries {
    pub labels: Arc<Labels>,
    pub samples: Vec<Sample>,
}

/// What one node of the expression yields at one step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StepValue {
    Scalar(f64),
    String(String),
    Vector(Vec<Element>),
    Matrix(Vec<RangeSeries>),
}

impl StepValue {
    /// The type's name as Prometheus spells it in errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Scalar(_) => "scalar",
            Self::String(_) => "string",
            Self::Vector(_) => "instant vector",
            Self::Matrix(_) => "range vector",
        }
    }
}

/// `labels` without the metric name; the same `Arc` when there was none.
pub(crate) fn drop_metric_name(labels: &Arc<Labels>) -> Arc<Labels> {
    if labels.metric_name().is_some() {
        Arc::new(labels.with(METRIC_NAME, ""))
    } else {
        Arc::clone(labels)
    }
}

/// Fails when two elements share a label set, as Prometheus does after any operation that
/// rewrites labels (two metrics that differ only by name, after `rate`, for example).
pub(crate) fn check_unique_labels(elements: &[Element]) -> Result<(), QueryError> {
    if elements.len() < 2 {
        return Ok(());
    }
    let mut seen = HashSet::with_capacity(elements.len());
    for element in elements {
        if !seen.insert(&*element.labels) {
            return Err(QueryError::DuplicateLabelset {
                labels: element.labels.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_name_keeps_the_other_labels() {
        let labels = Arc::new(Labels::from_pairs([(METRIC_NAME, "up"), ("host", "a")]));
        let dropped = drop_metric_name(&labels);
        assert_eq!(*dropped, Labels::from_pairs([("host", "a")]));
        assert!(Arc::ptr_eq(&drop_metric_name(&dropped), &dropped));
    }

    #[test]
    fn same_labels_twice_is_an_error_naming_them() {
        let labels = Arc::new(Labels::from_pairs([("host", "a")]));
        let elements = [Element::new(labels.clone(), 1.0), Element::new(labels, 2.0)];
        let err = check_unique_labels(&elements).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"vector cannot contain metrics with the same labelset: {host="a"}"#
        );
    }
}
