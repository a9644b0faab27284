//! Why a query failed, and how Prometheus's HTTP API would classify it.

use crate::series::SourceError;

use super::parse::Unsupported;

/// Every way parsing or evaluating a query can fail.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The text is not PromQL; the message is the parser's.
    #[error("parse error: {message}")]
    Parse {
        /// What the parser said.
        message: String,
    },
    /// Valid PromQL outside the subset this engine evaluates.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// A range query over an expression that is neither a scalar nor an instant vector.
    #[error("invalid expression type {found:?} for range query, must be Scalar or instant Vector")]
    RangeQueryType {
        /// The expression's type (`range vector` or `string`).
        found: &'static str,
    },
    /// A range query's step is zero or negative.
    #[error(
        "zero or negative query resolution step widths are not accepted. Try a positive integer"
    )]
    InvalidStep {
        /// The step that was given, in milliseconds.
        step_ms: i64,
    },
    /// A range query's end is before its start.
    #[error("end timestamp must not be before start time")]
    EndBeforeStart,
    /// A range query would return more points per series than allowed.
    #[error(
        "exceeded maximum resolution of {limit} points per timeseries. Try decreasing the query resolution (?step=XX)"
    )]
    TooManyPoints {
        /// The limit ([`super::Limits::max_points_per_series`]).
        limit: usize,
    },
    /// The selectors of the query match more series than allowed.
    #[error("the query selects more than {limit} series")]
    TooManySeries {
        /// The limit ([`super::Limits::max_series`]).
        limit: usize,
    },
    /// The selectors of the query would load more samples than allowed.
    #[error(
        "query processing would load too many samples into memory in query execution (more than {limit})"
    )]
    TooManySamples {
        /// The limit ([`super::Limits::max_samples`]).
        limit: usize,
    },
    /// The query ran past its timeout.
    #[error("query timed out in {stage}")]
    Timeout {
        /// Where it was when the deadline passed.
        stage: &'static str,
    },
    /// Two series on the "one" side of a one-to-one match share a match group.
    #[error(
        "found duplicate series for the match group {group} on the {side} hand-side of the operation: [{first}, {second}];many-to-many matching not allowed: matching labels must be unique on one side"
    )]
    DuplicateMatch {
        /// The labels the two series match on.
        group: String,
        /// `left` or `right`.
        side: &'static str,
        /// One series.
        first: String,
        /// The other.
        second: String,
    },
    /// Two series on the left side of a one-to-one match found the same partner.
    #[error(
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    )]
    MultipleMatches {
        /// The labels of the right-hand series both matched.
        group: String,
    },
    /// An operation produced two elements with the same labels (after dropping the metric
    /// name, for example).
    #[error("vector cannot contain metrics with the same labelset: {labels}")]
    DuplicateLabelset {
        /// The label set that appeared twice.
        labels: String,
    },
    /// A parameter of an aggregation or function has a value it can't take.
    #[error("invalid parameter of `{operation}`: {reason}")]
    InvalidParameter {
        /// The aggregation or function.
        operation: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// An operand has a type the operation can't take. The parser's type check rules this
    /// out; seeing it means the engine and the parser disagree.
    #[error("`{operation}` cannot take {found}")]
    OperandType {
        /// The operation.
        operation: String,
        /// What it was given.
        found: &'static str,
    },
    /// The series source failed.
    #[error("reading series: {0}")]
    Source(SourceError),
}

/// How the Prometheus HTTP API reports an error (its `errorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// `bad_data` (400): the query or its parameters are wrong.
    BadData,
    /// `execution` (422): the query is valid but can't be computed on this data.
    Execution,
    /// `timeout` (503): the query ran out of time.
    Timeout,
    /// `internal` (500): the store failed.
    Internal,
}

impl QueryError {
    /// The class of this error, as Prometheus's API reports it.
    pub fn kind(&self) -> QueryErrorKind {
        match self {
            Self::Parse { .. }
            | Self::Unsupported(_)
            | Self::RangeQueryType { .. }
            | Self::InvalidStep { .. }
            | Self::EndBeforeStart
            | Self::TooManyPoints { .. } => QueryErrorKind::BadData,
            Self::TooManySeries { .. }
            | Self::TooManySamples { .. }
            | Self::DuplicateMatch { .. }
            | Self::MultipleMatches { .. }
            | Self::DuplicateLabelset { .. }
            | Self::InvalidParameter { .. }
            | Self::OperandType { .. } => QueryErrorKind::Execution,
            Self::Timeout { .. } => QueryErrorKind::Timeout,
            Self::Source(SourceError::TooManySeries { .. }) => QueryErrorKind::Execution,
            Self::Source(SourceError::Store(_)) => QueryErrorKind::Internal,
        }
    }
}

impl From<SourceError> for QueryError {
    fn from(err: SourceError) -> Self {
        match err {
            SourceError::TooManySeries { limit } => Self::TooManySeries { limit },
            other => Self::Source(other),
        }
    }
}
