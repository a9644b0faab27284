//! Timestamp alignment: a host's round timestamps are moved onto its sampling grid when
//! they are within a tolerance of it, as Prometheus does with its scrape timestamps
//! (`--scrape.timestamp-tolerance`, 2 ms by default; prometheus/prometheus#9283).
//!
//! Why: an agent ticks every interval from a monotonic timer but stamps the wall clock when
//! it wakes, a few milliseconds late, differently each round. Stored as they are, those
//! jittered timestamps cost 4 to 6 bits each in a chunk (see [`super::encoding`]); on the
//! grid they cost 1. Moving a timestamp by at most the tolerance changes no query result
//! that matters (rates over 10 s intervals move by well under 0.1%).
//!
//! The state is per host and in memory only. After a restart the first round of each host is
//! stored as it came, so a round re-ingested after a crash may be stored up to the
//! tolerance away from its first copy; the head therefore drops a sample as a duplicate when
//! it is within the tolerance of the series' last one (`head.rs`). A tolerance of 0 stores
//! timestamps exactly.
//!
//! A host's rounds come from several clocks: the sampling loop, and each probe on its own
//! interval. Interleaved, they would break every grid, so [`RoundAligners`] keeps one
//! aligner per producer, told apart by the first series of a round (each producer writes
//! its own series, in a stable order).

/// Aligns one host's round timestamps (24 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimestampAligner {
    /// The previous round's timestamp as received and as stored; 0 before the first.
    last_raw: i64,
    last_stored: i64,
    /// The grid interval, learned from the rounds.
    interval: i64,
}

impl TimestampAligner {
    /// The timestamp to store for a round stamped `raw`: the previous stored timestamp plus
    /// the host's interval when `raw` is within `tolerance_ms` of that, else `raw`.
    pub fn align(&mut self, raw: i64, tolerance_ms: i64) -> i64 {
        let mut stored = raw;
        if tolerance_ms > 0 && self.last_raw != 0 && raw > self.last_raw {
            let near = |interval: i64| {
                let expected = self.last_stored.saturating_add(interval);
                (interval > 2 * tolerance_ms && raw.abs_diff(expected) <= tolerance_ms as u64)
                    .then_some(expected)
            };
            // The known interval first; else the one this delta suggests, rounded to 10 ms
            // (agents' intervals are whole milliseconds, usually whole seconds).
            let suggested = (raw - self.last_raw + 5) / 10 * 10;
            if let Some(expected) = near(self.interval) {
                stored = expected;
            } else if let Some(expected) = near(suggested) {
                stored = expected;
                self.interval = suggested;
            }
        }
        self.last_raw = raw;
        self.last_stored = stored;
        stored
    }
}

/// Producers of rounds tracked per host at most; a further one replaces the one seen
/// least recently (its next round is then stored as it came, once).
const MAX_PRODUCERS: usize = 8;

/// One [`TimestampAligner`] per producer of a host's rounds, keyed by a round's first
/// series id; the most recently used first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundAligners {
    by_first_series: Vec<(u32, TimestampAligner)>,
}

impl RoundAligners {
    /// [`TimestampAligner::align`] on the aligner of the producer whose rounds start with
    /// `first_series` (`None`: a round without values).
    pub fn align(&mut self, first_series: Option<u32>, raw: i64, tolerance_ms: i64) -> i64 {
        let key = first_series.unwrap_or(u32::MAX);
        let found = self.by_first_series.iter().position(|(k, _)| *k == key);
        let index = match found {
            Some(index) => index,
            None => {
                if self.by_first_series.len() >= MAX_PRODUCERS {
                    self.by_first_series.pop();
                }
                self.by_first_series
                    .push((key, TimestampAligner::default()));
                self.by_first_series.len() - 1
            }
        };
        // Most recent first: the sampling loop's aligner is found at once.
        self.by_first_series[..=index].rotate_right(1);
        self.by_first_series[0].1.align(raw, tolerance_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_producers_each_keep_their_grid() {
        let mut a = RoundAligners::default();
        let mut stored = Vec::new();
        // Sampling every 10 s (series 0 first), a probe every 1 s (series 900 first),
        // each with its own jitter.
        for i in 0..30_i64 {
            let probe = 100_350 + i * 1_000 + (i % 3) - 1;
            let got = a.align(Some(900), probe, 2);
            assert!(got.abs_diff(probe) <= 2);
            if i % 10 == 0 {
                let raw = 100_000 + i * 1_000 + (i % 4);
                stored.push(a.align(Some(0), raw, 2));
            }
        }
        assert_eq!(stored, [100_000, 110_000, 120_000]);
        assert_eq!(a.by_first_series.len(), 2);
        for k in 0..20 {
            a.align(Some(1_000 + k), 1_000_000 + i64::from(k), 2);
        }
        assert_eq!(a.by_first_series.len(), MAX_PRODUCERS);
    }

    #[test]
    fn jitter_within_tolerance_lands_on_the_grid() {
        let mut a = TimestampAligner::default();
        let raw = [100_000, 110_002, 120_001, 129_999, 140_002];
        let stored: Vec<i64> = raw.iter().map(|&t| a.align(t, 2)).collect();
        assert_eq!(stored, [100_000, 110_000, 120_000, 130_000, 140_000]);
    }

    #[test]
    fn late_rounds_and_interval_changes_are_kept_as_they_are() {
        let mut a = TimestampAligner::default();
        assert_eq!(a.align(100_000, 2), 100_000);
        assert_eq!(a.align(110_001, 2), 110_000);
        assert_eq!(a.align(120_150, 2), 120_150); // late: stored as it came
        assert_eq!(a.align(130_001, 2), 130_000); // back on the grid
        assert_eq!(a.align(140_000, 2), 140_000);
        assert_eq!(a.align(145_001, 2), 145_000); // the agent's interval changed
        assert_eq!(a.align(150_002, 2), 150_000);
    }

    #[test]
    fn zero_tolerance_stores_timestamps_exactly() {
        let mut a = TimestampAligner::default();
        for t in [100_000, 110_002, 120_001] {
            assert_eq!(a.align(t, 0), t);
        }
    }

    #[test]
    fn stored_never_strays_beyond_tolerance() {
        let mut a = TimestampAligner::default();
        let mut rng = crate::tsdb::synthetic::Rng::new(7);
        let mut t = 1_000_000;
        let mut last = 0;
        for _ in 0..10_000 {
            t += 10_000 + rng.below(7) as i64 - 3;
            let stored = a.align(t, 2);
            assert!(stored.abs_diff(t) <= 2 && stored > last);
            last = stored;
        }
    }
}
