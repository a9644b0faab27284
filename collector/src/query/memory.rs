//! [`MemorySource`]: a [`SeriesSource`] held in memory, for tests of everything that reads
//! series (queries, alert rules) and for a collector that has no store yet.
//!
//! It keeps the trait's contract exactly (selection by matchers and time, sorted output,
//! the series limit), so a reader that passes its tests against it behaves the same on the
//! real store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use crate::series::{Labels, Matcher, Sample, SeriesSamples, SeriesSource, SourceError};

use super::notation::{NotationError, expand_values, parse_series_labels};

/// Why a sample could not be added.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MemorySourceError {
    /// Samples of a series must come in strictly increasing time.
    #[error("sample at {timestamp_ms} ms for {series} is not after the last one at {last_ms} ms")]
    OutOfOrder {
        /// The series.
        series: String,
        /// The rejected sample's time.
        timestamp_ms: i64,
        /// The series' latest time.
        last_ms: i64,
    },
    /// A series or values description in promtool's notation did not parse.
    #[error(transparent)]
    Notation(#[from] NotationError),
}

/// Series and their samples in memory, sorted by labels. Safe to share between threads.
#[derive(Debug, Default)]
pub struct MemorySource {
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one sample to the series `labels` (created on first use).
    ///
    /// # Errors
    /// [`MemorySourceError::OutOfOrder`] unless `sample` is later than the series' last.
    pub fn add(&self, labels: &Labels, sample: Sample) -> Result<(), MemorySourceError> {
        let mut series = self
            .series
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let samples = series.entry(labels.clone()).or_default();
        if let Some(last) = samples.last()
            && last.timestamp_ms >= sample.timestamp_ms
        {
            return Err(MemorySourceError::OutOfOrder {
                series: labels.to_string(),
                timestamp_ms: sample.timestamp_ms,
                last_ms: last.timestamp_ms,
            });
        }
        samples.push(sample);
        Ok(())
    }

    /// Appends samples to the series `labels`, in order.
    ///
    /// # Errors
    /// As [`MemorySource::add`], for the first sample out of order (the ones before it stay).
    pub fn add_samples(
        &self,
        labels: &Labels,
        samples: impl IntoIterator<Item = Sample>,
    ) -> Result<(), MemorySourceError> {
        samples
            .into_iter()
            .try_for_each(|sample| self.add(labels, sample))
    }

    /// Adds a series written as in `promtool test rules`: `series` is
    /// `name{label="value",...}` and `values` the expanding notation (`1+2x3`, `_`,
    /// `stale`, ...). The n-th value is at `start_ms + n * interval_ms`.
    ///
    /// # Errors
    /// [`MemorySourceError::Notation`] naming the part that did not parse, or
    /// [`MemorySourceError::OutOfOrder`].
    pub fn add_notation(
        &self,
        series: &str,
        values: &str,
        start_ms: i64,
        interval_ms: i64,
    ) -> Result<(), MemorySourceError> {
        let labels = parse_series_labels(series)?;
        let samples = expand_values(values, start_ms, interval_ms)?;
        self.add_samples(&labels, samples)
    }

    /// The selected series, with samples in `start_ms..=end_ms`, in label order.
    fn selected<T>(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        mut each: impl FnMut(&Labels, &[Sample]) -> Result<(), T>,
    ) -> Result<(), T> {
        let series = self
            .series
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (labels, samples) in series.iter() {
            if !labels.matches(matchers) {
                continue;
            }
            let from = samples.partition_point(|s| s.timestamp_ms < start_ms);
            let to = samples.partition_point(|s| s.timestamp_ms <= end_ms);
            if from < to {
                each(labels, &samples[from..to])?;
            }
        }
        Ok(())
    }
}

impl SeriesSource for MemorySource {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<SeriesSamples>, SourceError> {
        let mut out = Vec::new();
        self.selected(matchers, start_ms, end_ms, |labels, samples| {
            if out.len() == limit {
                return Err(SourceError::TooManySeries { limit });
            }
            out.push(SeriesSamples {
                labels: labels.clone(),
                samples: samples.to_vec(),
            });
            Ok(())
        })?;
        Ok(out)
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<Labels>, SourceError> {
        let mut out = Vec::new();
        self.selected(matchers, start_ms, end_ms, |labels, _| {
            if out.len() == limit {
                return Err(SourceError::TooManySeries { limit });
            }
            out.push(labels.clone());
            Ok(())
        })?;
        Ok(out)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, SourceError> {
        let mut names = BTreeSet::new();
        self.selected(matchers, start_ms, end_ms, |labels, _| {
            names.extend(labels.iter().map(|l| l.name.clone()));
            Ok::<_, SourceError>(())
        })?;
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, SourceError> {
        let mut values = BTreeSet::new();
        self.selected(matchers, start_ms, end_ms, |labels, _| {
            if let Some(value) = labels.get(name) {
                values.insert(value.to_owned());
            }
            Ok::<_, SourceError>(())
        })?;
        Ok(values.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{METRIC_NAME, MatchOp};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn sample(timestamp_ms: i64, value: f64) -> Sample {
        Sample {
            timestamp_ms,
            value,
        }
    }

    fn fixture() -> MemorySource {
        let source = MemorySource::new();
        let up_b = labels(&[(METRIC_NAME, "up"), ("host", "b")]);
        let up_a = labels(&[(METRIC_NAME, "up"), ("host", "a")]);
        let load = labels(&[(METRIC_NAME, "load"), ("host", "a"), ("cpu", "0")]);
        source
            .add_samples(&up_b, [sample(10, 1.0), sample(20, 0.0)])
            .unwrap();
        source.add_samples(&up_a, [sample(30, 1.0)]).unwrap();
        source.add_samples(&load, [sample(5, 0.5)]).unwrap();
        source
    }

    #[test]
    fn select_filters_by_matchers_and_time_and_sorts_by_labels() {
        let source = fixture();
        let up = [Matcher::new(MatchOp::Equal, METRIC_NAME, "up")];
        let all = source.select(&up, 0, 100, 10).unwrap();
        let hosts: Vec<_> = all.iter().map(|s| s.labels.get("host").unwrap()).collect();
        assert_eq!(hosts, ["a", "b"]);

        let window = source.select(&up, 15, 25, 10).unwrap();
        assert_eq!(window.len(), 1, "host a has no sample in [15, 25]");
        assert_eq!(window[0].samples, [sample(20, 0.0)]);

        let inclusive = source.select(&up, 10, 10, 10).unwrap();
        assert_eq!(inclusive[0].samples, [sample(10, 1.0)]);
    }

    #[test]
    fn select_refuses_more_series_than_the_limit() {
        let source = fixture();
        let err = source.select(&[], 0, 100, 2).unwrap_err();
        assert!(matches!(err, SourceError::TooManySeries { limit: 2 }));
        assert_eq!(source.select(&[], 0, 100, 3).unwrap().len(), 3);
        assert!(matches!(
            source.series(&[], 0, 100, 1),
            Err(SourceError::TooManySeries { limit: 1 })
        ));
    }

    #[test]
    fn label_names_and_values_come_from_selected_series_only() {
        let source = fixture();
        assert_eq!(
            source.label_names(&[], 0, 100).unwrap(),
            ["__name__", "cpu", "host"]
        );
        let host_a = [Matcher::new(MatchOp::Equal, "host", "a")];
        assert_eq!(
            source.label_values(METRIC_NAME, &host_a, 0, 100).unwrap(),
            ["load", "up"]
        );
        assert_eq!(
            source.label_values(METRIC_NAME, &host_a, 6, 100).unwrap(),
            ["up"],
            "load has no sample after 5 ms"
        );
        assert!(source.label_values("nope", &[], 0, 100).unwrap().is_empty());
    }

    #[test]
    fn out_of_order_samples_are_refused_and_change_nothing() {
        let source = MemorySource::new();
        let up = labels(&[(METRIC_NAME, "up")]);
        source.add(&up, sample(10, 1.0)).unwrap();
        let err = source.add(&up, sample(10, 2.0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sample at 10 ms for up{} is not after the last one at 10 ms"
        );
        assert_eq!(source.select(&[], 0, 100, 10).unwrap()[0].samples.len(), 1);
    }

    #[test]
    fn notation_adds_a_series_at_the_interval() {
        let source = MemorySource::new();
        source
            .add_notation(r#"up{host="a"}"#, "1 _ 3", 1_000, 60_000)
            .unwrap();
        let got = source.select(&[], 0, i64::MAX, 10).unwrap();
        assert_eq!(got[0].labels, labels(&[(METRIC_NAME, "up"), ("host", "a")]));
        assert_eq!(got[0].samples, [sample(1_000, 1.0), sample(121_000, 3.0)]);
    }
}
