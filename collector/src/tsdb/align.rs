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

#[cfg(test)]
mod tests {
    use super::*;

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
