//! The data model the time-series store shares with its readers: queries, `/federate`,
//! alert rules and remote write.
//!
//! The store ([`crate::tsdb`]) implements [`SeriesSource`]; readers ask it for what they need
//! through that trait, so a reader's tests can hand it an in-memory fake. Matchers are
//! promql-parser's own type, so a selector parsed from PromQL (or from `/federate`'s
//! `match[]`) reaches the store unchanged.

use std::fmt;

pub use muster_shared::protocol::samples::Label;
pub use promql_parser::label::{MatchOp, Matcher};

/// The label that carries a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// A series' identity: labels sorted by name, names unique, the metric name among them as
/// [`METRIC_NAME`]. Empty values are not stored (a label with an empty value is the same as
/// no label, as in Prometheus).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Labels from any pairs: sorted by name, empty values dropped, and for a repeated name
    /// the last value wins.
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: Into<String>,
        V: Into<String>,
    {
        let mut labels: Vec<Label> = pairs
            .into_iter()
            .map(|(name, value)| Label {
                name: name.into(),
                value: value.into(),
            })
            .collect();
        // Stable sort keeps input order among equal names, so "last wins" below holds.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for label in labels {
            match out.last_mut() {
                Some(last) if last.name == label.name => *last = label,
                _ => out.push(label),
            }
        }
        out.retain(|l| !l.value.is_empty());
        Labels(out)
    }

    /// The value of `name`, if the series has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The labels in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    /// The number of labels, the metric name included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no label at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These labels with `name` set to `value` (removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Self {
        let mut labels = self.0.clone();
        match labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                labels.remove(i);
            }
            Ok(i) => value.clone_into(&mut labels[i].value),
            Err(_) if value.is_empty() => {}
            Err(i) => labels.insert(
                i,
                Label {
                    name: name.to_owned(),
                    value: value.to_owned(),
                },
            ),
        }
        Labels(labels)
    }

    /// These labels with only the names `keep` returns true for.
    pub fn filtered(&self, mut keep: impl FnMut(&str) -> bool) -> Self {
        Labels(self.0.iter().filter(|l| keep(&l.name)).cloned().collect())
    }

    /// Whether every matcher accepts these labels. A missing label reads as the empty
    /// string, so `{job=""}` matches series without `job`, as in Prometheus.
    pub fn matches(&self, matchers: &[Matcher]) -> bool {
        matchers
            .iter()
            .all(|m| m.is_match(self.get(&m.name).unwrap_or("")))
    }

    /// The labels as a vector, for serialising.
    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }
}

impl fmt::Display for Labels {
    /// `name{a="x",b="y"}`, values escaped as in the Prometheus text format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric_name().unwrap_or(""))?;
        f.write_str("{")?;
        let mut first = true;
        for label in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}=\"", label.name)?;
            for c in label.value.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

/// One sample: a timestamp in milliseconds since the Unix epoch and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: i64,
    /// The value; NaN and infinities are carried as they are.
    pub value: f64,
}

/// A series and its samples in a time range, oldest first, timestamps strictly increasing.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series' labels.
    pub labels: Labels,
    /// The samples, oldest first.
    pub samples: Vec<Sample>,
}

/// Why a [`SeriesSource`] could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The selection would return more series than the reader allows.
    #[error("the selection matches more than {limit} series")]
    TooManySeries {
        /// The limit that was passed.
        limit: usize,
    },
    /// The store failed underneath.
    #[error("reading the time-series store: {0}")]
    Store(String),
}

/// Read access to stored series. Methods block on disk I/O: call them from blocking code
/// (`spawn_blocking`), one hop per query rather than per call.
///
/// Every method takes the same selection: series whose labels satisfy *all* `matchers` (see
/// [`Labels::matches`]) and that have at least one sample with `start_ms <= t <= end_ms`.
/// An empty `matchers` selects every series.
pub trait SeriesSource: Send + Sync {
    /// The selected series with their samples in `start_ms..=end_ms`, at most `limit`
    /// series (more is [`SourceError::TooManySeries`]), sorted by labels.
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<SeriesSamples>, SourceError>;

    /// The latest sample of each selected series within `start_ms..=end_ms`, at most
    /// `limit` series. The default reads the range through [`SeriesSource::select`]; a
    /// store that can find the newest sample without decoding the range overrides it.
    fn latest(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Labels, Sample)>, SourceError> {
        Ok(self
            .select(matchers, start_ms, end_ms, limit)?
            .into_iter()
            .filter_map(|s| s.samples.last().copied().map(|last| (s.labels, last)))
            .collect())
    }

    /// The label sets of the selected series, sorted, without their samples.
    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<Labels>, SourceError>;

    /// The label names used by the selected series, sorted, unique.
    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, SourceError>;

    /// The values of label `name` among the selected series, sorted, unique.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, SourceError>;
}

impl fmt::Debug for dyn SeriesSource {
    /// Only the trait's name: a source's contents are no one's debug output, and holders
    /// of an `Arc<dyn SeriesSource>` (the API's state) can still derive `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeriesSource")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_drops_empty_and_keeps_last() {
        let labels = Labels::from_pairs([("b", "1"), ("a", "x"), ("b", "2"), ("c", "")]);
        let names: Vec<_> = labels.iter().map(|l| (&*l.name, &*l.value)).collect();
        assert_eq!(names, vec![("a", "x"), ("b", "2")]);
    }

    #[test]
    fn missing_label_matches_empty_matcher() {
        let labels = Labels::from_pairs([(METRIC_NAME, "up"), ("host", "web1")]);
        let empty_job = Matcher::new(MatchOp::Equal, "job", "");
        let host = Matcher::new(MatchOp::Equal, "host", "web1");
        let other = Matcher::new(MatchOp::NotEqual, "host", "web1");
        assert!(labels.matches(&[empty_job, host]));
        assert!(!labels.matches(&[other]));
    }

    #[test]
    fn with_sets_replaces_and_removes() {
        let labels = Labels::from_pairs([(METRIC_NAME, "up")]);
        let labels = labels.with("host", "a");
        assert_eq!(labels.get("host"), Some("a"));
        let labels = labels.with("host", "b");
        assert_eq!(labels.get("host"), Some("b"));
        let labels = labels.with("host", "");
        assert_eq!(labels.get("host"), None);
        assert_eq!(labels.len(), 1);
    }

    #[test]
    fn displays_escaped() {
        let labels = Labels::from_pairs([(METRIC_NAME, "m"), ("a", "x\"y\\z\n")]);
        assert_eq!(labels.to_string(), r#"m{a="x\"y\\z\n"}"#);
    }
}
