//! The arithmetic of functions over a range of samples: `rate` and its family,
//! `deriv`/`predict_linear`, `changes`, and the `*_over_time` aggregations.
//!
//! Each is a pure function of one series' samples in the window (staleness markers already
//! removed), written after Prometheus 3's `promql/functions.go` so results agree to the
//! last bit where the arithmetic allows: the same extrapolation rules, the same
//! Kahan-Neumaier summation, the same regression.

use crate::series::Sample;

/// `rate`, `increase` and `delta`: the change over the window, extrapolated towards the
/// window's edges, per second when `is_rate`.
///
/// Counter resets (a drop in value) are treated as restarts from zero when `is_counter`.
/// The change is extrapolated to an edge when the first/last sample lies within 110% of
/// the average sample interval from it, else by half an interval (the series likely starts
/// or ends inside the window); a counter is never extrapolated below zero.
/// `None` with fewer than two samples.
pub fn extrapolated_rate(
    samples: &[Sample],
    range_start_ms: i64,
    range_end_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let (first, last) = match samples {
        [first, .., last] => (first, last),
        _ => return None,
    };
    let mut result = last.value - first.value;
    if is_counter {
        let mut previous = first.value;
        for sample in &samples[1..] {
            if sample.value < previous {
                result += previous;
            }
            previous = sample.value;
        }
    }
    let mut to_start = seconds(first.timestamp_ms - range_start_ms);
    let mut to_end = seconds(range_end_ms - last.timestamp_ms);
    let sampled = seconds(last.timestamp_ms - first.timestamp_ms);
    let average_interval = sampled / (samples.len() - 1) as f64;
    let threshold = average_interval * 1.1;

    if to_start >= threshold {
        to_start = average_interval / 2.0;
    }
    if is_counter && result > 0.0 && first.value >= 0.0 {
        // Where a straight line through the change would reach zero: a counter starts
        // there at the earliest, so don't extrapolate past it.
        let to_zero = sampled * (first.value / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average_interval / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= seconds(range_end_ms - range_start_ms);
    }
    Some(result * factor)
}

/// `irate` (`is_rate`) and `idelta`: from the last two samples only. For `irate`, a drop is
/// a counter reset and the last value is the increase since it. `None` with fewer than two
/// samples.
pub fn instant_rate(samples: &[Sample], is_rate: bool) -> Option<f64> {
    let [.., previous, last] = samples else {
        return None;
    };
    let interval_ms = last.timestamp_ms - previous.timestamp_ms;
    if interval_ms == 0 {
        return None;
    }
    let mut result = last.value;
    if !is_rate || last.value >= previous.value || last.value.is_nan() || previous.value.is_nan() {
        result = last.value - previous.value;
    }
    if is_rate {
        result /= seconds(interval_ms);
    }
    Some(result)
}

/// The least-squares line through the samples, time in seconds from `intercept_ms`:
/// `(slope per second, value at intercept_ms)`. A constant series has slope 0 (NaN when the
/// constant is infinite).
pub fn linear_regression(samples: &[Sample], intercept_ms: i64) -> (f64, f64) {
    let mut n = 0.0;
    let (mut sum_x, mut sum_y, mut sum_xy, mut sum_x2) = (
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
    );
    let init_y = samples.first().map_or(f64::NAN, |s| s.value);
    let mut constant_y = true;
    for (i, sample) in samples.iter().enumerate() {
        if constant_y && i > 0 && sample.value != init_y {
            constant_y = false;
        }
        n += 1.0;
        let x = (sample.timestamp_ms - intercept_ms) as f64 / 1e3;
        sum_x.add(x);
        sum_y.add(sample.value);
        sum_xy.add(x * sample.value);
        sum_x2.add(x * x);
    }
    if constant_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) =
        (sum_x.total(), sum_y.total(), sum_xy.total(), sum_x2.total());
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// `deriv`: the regression slope per second. `None` with fewer than two samples.
pub fn deriv(samples: &[Sample]) -> Option<f64> {
    let first = samples.first()?;
    (samples.len() >= 2).then(|| linear_regression(samples, first.timestamp_ms).0)
}

/// `predict_linear`: the regression line's value `horizon_s` seconds after `at_ms`.
/// `None` with fewer than two samples.
pub fn predict_linear(samples: &[Sample], at_ms: i64, horizon_s: f64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(samples, at_ms);
    Some(slope * horizon_s + intercept)
}

/// `changes`: how many times the value differs from the one before it (two NaNs in a row
/// are no change). `None` for an empty window; one sample is no change.
pub fn changes(samples: &[Sample]) -> Option<f64> {
    let (first, rest) = samples.split_first()?;
    let mut previous = first.value;
    let mut count = 0_u32;
    for sample in rest {
        let current = sample.value;
        if current != previous && !(current.is_nan() && previous.is_nan()) {
            count += 1;
        }
        previous = current;
    }
    Some(f64::from(count))
}

/// The `*_over_time` aggregations. Each needs at least one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverTime {
    /// Mean.
    Avg,
    /// Largest; NaN only when every value is.
    Max,
    /// Smallest; NaN only when every value is.
    Min,
    /// Sum.
    Sum,
    /// Number of samples.
    Count,
    /// Latest value.
    Last,
}

impl OverTime {
    /// The aggregate of `samples`; `None` when empty.
    pub fn apply(self, samples: &[Sample]) -> Option<f64> {
        let first = samples.first()?.value;
        let values = samples.iter().map(|s| s.value);
        Some(match self {
            Self::Avg => {
                let mut mean = Mean::default();
                values.for_each(|v| mean.add(v));
                mean.value()
            }
            Self::Max => values.fold(
                first,
                |max, v| if v > max || max.is_nan() { v } else { max },
            ),
            Self::Min => values.fold(
                first,
                |min, v| if v < min || min.is_nan() { v } else { min },
            ),
            Self::Sum => {
                let mut sum = KahanSum::default();
                values.for_each(|v| sum.add(v));
                sum.total()
            }
            Self::Count => samples.len() as f64,
            Self::Last => samples.last().map_or(first, |s| s.value),
        })
    }
}

/// Kahan-Neumaier compensated summation, as Prometheus's `kahanSumInc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KahanSum {
    sum: f64,
    compensation: f64,
}

impl KahanSum {
    /// Adds `value`.
    pub fn add(&mut self, value: f64) {
        let t = self.sum + value;
        if t.is_infinite() {
            self.compensation = 0.0;
        } else if self.sum.abs() >= value.abs() {
            self.compensation += (self.sum - t) + value;
        } else {
            self.compensation += (value - t) + self.sum;
        }
        self.sum = t;
    }

    /// The compensated total.
    pub fn total(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// An arithmetic mean that switches to an incremental mean when the plain sum would
/// overflow, as Prometheus's `avg` and `avg_over_time` do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mean {
    count: f64,
    sum: KahanSum,
    incremental: Option<KahanSum>,
}

impl Mean {
    /// Adds `value`.
    pub fn add(&mut self, value: f64) {
        self.count += 1.0;
        if self.incremental.is_none() {
            let mut next = self.sum;
            next.add(value);
            if self.count == 1.0 || !next.sum.is_infinite() {
                self.sum = next;
                return;
            }
            // The sum would overflow: carry on with the mean of what came so far.
            let before = self.count - 1.0;
            self.incremental = Some(KahanSum {
                sum: self.sum.sum / before,
                compensation: self.sum.compensation / before,
            });
        }
        if let Some(mean) = &mut self.incremental {
            if mean.sum.is_infinite() {
                if value.is_infinite() && (mean.sum > 0.0) != (value > 0.0) {
                    // +Inf and -Inf average to NaN.
                    mean.sum = f64::NAN;
                }
                return;
            }
            let corrected = mean.sum + mean.compensation;
            mean.add(value / self.count - corrected / self.count);
        }
    }

    /// The mean; NaN when nothing was added.
    pub fn value(&self) -> f64 {
        match &self.incremental {
            Some(mean) => mean.total(),
            None => self.sum.total() / self.count,
        }
    }
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(t, v)| Sample {
                timestamp_ms: t * 1000,
                value: v,
            })
            .collect()
    }

    #[test]
    fn rate_extrapolates_to_both_edges_when_samples_reach_them() {
        // Samples every 60 s at 30..270 s in the window (0, 300]: 30 s to each edge is
        // within 1.1 intervals, so the 40 of change over 240 s becomes 50 over 300 s.
        let s = series(&[
            (30, 10.0),
            (90, 20.0),
            (150, 30.0),
            (210, 40.0),
            (270, 50.0),
        ]);
        let increase = extrapolated_rate(&s, 0, 300_000, true, false).unwrap();
        assert!((increase - 50.0).abs() < 1e-9, "{increase}");
        let rate = extrapolated_rate(&s, 0, 300_000, true, true).unwrap();
        assert!((rate - 50.0 / 300.0).abs() < 1e-12, "{rate}");
    }

    #[test]
    fn rate_extrapolates_half_an_interval_where_the_series_starts_inside_the_window() {
        // The first sample is 150 s from the start (> 66 s): extrapolate 30 s there, and
        // the 30 s to the end fully: 20 of change over 120 s becomes 20 * 180 / 120.
        let s = series(&[(150, 100.0), (210, 110.0), (270, 120.0)]);
        let increase = extrapolated_rate(&s, 0, 300_000, true, false).unwrap();
        assert!((increase - 30.0).abs() < 1e-9, "{increase}");
    }

    #[test]
    fn counter_extrapolation_stops_at_zero() {
        // 2 -> 12 over 60 s: the line reaches zero 12 s before the first sample, closer
        // than the 30 s edge, so the start extrapolates only 12 s.
        let s = series(&[(30, 2.0), (90, 12.0)]);
        let increase = extrapolated_rate(&s, 0, 120_000, true, false).unwrap();
        assert!(
            (increase - 10.0 * (60.0 + 12.0 + 30.0) / 60.0).abs() < 1e-9,
            "{increase}"
        );
        // delta is not a counter: it extrapolates the full 30 s.
        let delta = extrapolated_rate(&s, 0, 120_000, false, false).unwrap();
        assert!((delta - 10.0 * 120.0 / 60.0).abs() < 1e-9, "{delta}");
    }

    #[test]
    fn counter_resets_add_the_value_before_the_drop() {
        // 10 -> 20, reset, 5 -> 15: the increase seen is 10 + 5 + 10 = 25.
        let s = series(&[(0, 10.0), (60, 20.0), (120, 5.0), (180, 15.0)]);
        let increase = extrapolated_rate(&s, 0, 180_000, true, false).unwrap();
        assert!((increase - 25.0).abs() < 1e-9, "{increase}");
        let delta = extrapolated_rate(&s, 0, 180_000, false, false).unwrap();
        assert!((delta - 5.0).abs() < 1e-9, "{delta}");
    }

    #[test]
    fn rate_needs_two_samples() {
        assert_eq!(
            extrapolated_rate(&series(&[(1, 1.0)]), 0, 60_000, true, true),
            None
        );
    }

    #[test]
    fn irate_uses_the_last_two_samples_and_sees_resets() {
        let s = series(&[(0, 1.0), (10, 5.0), (20, 8.0)]);
        assert_eq!(instant_rate(&s, true), Some(0.3));
        let reset = series(&[(0, 1.0), (10, 5.0), (20, 2.0)]);
        assert_eq!(instant_rate(&reset, true), Some(0.2));
        assert_eq!(instant_rate(&reset, false), Some(-3.0));
        assert_eq!(instant_rate(&series(&[(0, 1.0)]), true), None);
    }

    #[test]
    fn regression_slope_and_prediction() {
        // y = 100 - 2 per second.
        let s = series(&[(0, 100.0), (10, 80.0), (20, 60.0)]);
        assert_eq!(deriv(&s), Some(-2.0));
        // At 20 s the line is at 60; 30 s later at 0.
        let predicted = predict_linear(&s, 20_000, 30.0).unwrap();
        assert!(predicted.abs() < 1e-9, "{predicted}");
        assert_eq!(
            linear_regression(&series(&[(0, 3.0), (1, 3.0)]), 0),
            (0.0, 3.0)
        );
        assert_eq!(deriv(&series(&[(0, 1.0)])), None);
    }

    #[test]
    fn changes_counts_differences_and_not_nan_repeats() {
        let s = series(&[(0, 1.0), (1, 1.0), (2, 2.0), (3, 1.0), (4, 1.0)]);
        assert_eq!(changes(&s), Some(2.0));
        let nan = series(&[(0, f64::NAN), (1, f64::NAN), (2, 3.0), (3, f64::NAN)]);
        assert_eq!(changes(&nan), Some(2.0));
        assert_eq!(changes(&series(&[(0, 5.0)])), Some(0.0));
        assert_eq!(changes(&[]), None);
    }

    #[test]
    fn over_time_aggregations() {
        let s = series(&[(0, 3.0), (1, f64::NAN), (2, 1.0), (3, 8.0)]);
        assert_eq!(OverTime::Max.apply(&s), Some(8.0));
        assert_eq!(OverTime::Min.apply(&s), Some(1.0));
        assert_eq!(OverTime::Count.apply(&s), Some(4.0));
        assert_eq!(OverTime::Last.apply(&s), Some(8.0));
        let s = series(&[(0, 3.0), (1, 1.0), (2, 8.0)]);
        assert_eq!(OverTime::Sum.apply(&s), Some(12.0));
        assert_eq!(OverTime::Avg.apply(&s), Some(4.0));
        assert_eq!(OverTime::Avg.apply(&[]), None);
        let nan_first = series(&[(0, f64::NAN), (1, 2.0)]);
        assert_eq!(OverTime::Max.apply(&nan_first), Some(2.0));
    }

    #[test]
    fn kahan_sum_keeps_small_terms() {
        let mut sum = KahanSum::default();
        for v in [1e16, 1.0, -1e16] {
            sum.add(v);
        }
        assert_eq!(sum.total(), 1.0);
    }

    #[test]
    fn mean_survives_overflowing_sums() {
        let mut mean = Mean::default();
        mean.add(f64::MAX);
        mean.add(f64::MAX);
        assert_eq!(mean.value(), f64::MAX);
    }
}
