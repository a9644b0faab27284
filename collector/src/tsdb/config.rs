//! `[storage]` in `collector.toml`: how long samples are kept and how chunks are cut.
//!
//! Two stages, as elsewhere: [`TsdbConfig`] mirrors the file; [`TsdbOptions`] holds the
//! checked values in milliseconds and is all the store sees.

use muster_shared::config::Duration;
use serde::{Deserialize, Serialize};

/// Rollup bucket width: one rollup sample per series per 5 minutes.
pub const ROLLUP_BUCKET_MS: i64 = 5 * 60 * 1000;
/// A day in milliseconds: rollups are kept one record per series per day, and raw data is
/// rolled up and deleted a day at a time.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The `[storage]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsdbConfig {
    /// How long raw samples are kept. Default `"15d"`, at least `"1d"`. Raw data is rolled
    /// up and deleted a whole day at a time, so it is kept up to a day longer.
    #[serde(default = "default_retention")]
    pub retention: Duration,
    /// How long 5-minute rollups (min, max, sum, count, last) of raw data are kept.
    /// Default `"365d"`, at least `retention`.
    #[serde(default = "default_rollup_retention")]
    pub rollup_retention: Duration,
    /// Chunks are cut at multiples of this since the Unix epoch, so every series of every
    /// host cuts together. Default `"30m"`; a multiple of 5 minutes that divides a day.
    /// Longer windows compress a little better and hold more in memory.
    #[serde(default = "default_chunk_window")]
    pub chunk_window: Duration,
    /// How long after a window ends its chunks wait for late rounds before a flush writes
    /// them. Default `"2m"`; less than `chunk_window`.
    #[serde(default = "default_window_grace")]
    pub window_grace: Duration,
    /// Round timestamps within this of the host's sampling grid are stored on the grid,
    /// as Prometheus does with scrape timestamps; this saves about 0.2 bytes per sample.
    /// Default `"2ms"`; `"0s"` stores timestamps exactly; at most `"100ms"`.
    #[serde(default = "default_timestamp_tolerance")]
    pub timestamp_tolerance: Duration,
    /// Most series the store holds; samples of new series beyond it are dropped and
    /// counted. Default 5,000,000 (about 1 GiB of index and head).
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

impl Default for TsdbConfig {
    fn default() -> Self {
        TsdbConfig {
            retention: default_retention(),
            rollup_retention: default_rollup_retention(),
            chunk_window: default_chunk_window(),
            window_grace: default_window_grace(),
            timestamp_tolerance: default_timestamp_tolerance(),
            max_series: default_max_series(),
        }
    }
}

fn default_retention() -> Duration {
    Duration::from_secs(15 * 24 * 3600)
}
fn default_rollup_retention() -> Duration {
    Duration::from_secs(365 * 24 * 3600)
}
fn default_chunk_window() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_window_grace() -> Duration {
    Duration::from_secs(2 * 60)
}
fn default_timestamp_tolerance() -> Duration {
    Duration(std::time::Duration::from_millis(2))
}
fn default_max_series() -> usize {
    5_000_000
}

/// The checked form of [`TsdbConfig`], in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsdbOptions {
    /// Raw retention.
    pub retention_ms: i64,
    /// Rollup retention.
    pub rollup_retention_ms: i64,
    /// Chunk window.
    pub window_ms: i64,
    /// Grace after a window's end.
    pub grace_ms: i64,
    /// Timestamp alignment tolerance; 0 stores timestamps exactly.
    pub tolerance_ms: i64,
    /// Series limit.
    pub max_series: usize,
}

impl Default for TsdbOptions {
    fn default() -> Self {
        TsdbConfig::default()
            .resolve()
            .expect("the defaults pass their own checks")
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.get().as_millis()).unwrap_or(i64::MAX)
}

impl TsdbConfig {
    /// Checks the cross-field rules and converts to milliseconds.
    ///
    /// # Errors
    /// Every problem, each naming its `storage.*` key.
    pub fn resolve(&self) -> Result<TsdbOptions, Vec<String>> {
        let o = TsdbOptions {
            retention_ms: millis(self.retention),
            rollup_retention_ms: millis(self.rollup_retention),
            window_ms: millis(self.chunk_window),
            grace_ms: millis(self.window_grace),
            tolerance_ms: millis(self.timestamp_tolerance),
            max_series: self.max_series,
        };
        let mut problems = Vec::new();
        if o.retention_ms < DAY_MS {
            problems.push("storage.retention must be at least 1d".to_owned());
        }
        if o.rollup_retention_ms < o.retention_ms {
            problems.push("storage.rollup_retention must be at least storage.retention".to_owned());
        }
        if o.window_ms < ROLLUP_BUCKET_MS
            || o.window_ms % ROLLUP_BUCKET_MS != 0
            || DAY_MS % o.window_ms != 0
        {
            problems.push(
                "storage.chunk_window must be a multiple of 5m that divides 1d (5m, 10m, 15m, 30m, 1h, 2h, ...)"
                    .to_owned(),
            );
        }
        if o.grace_ms >= o.window_ms {
            problems.push("storage.window_grace must be less than storage.chunk_window".to_owned());
        }
        if o.tolerance_ms > 100 {
            problems.push("storage.timestamp_tolerance must be at most 100ms".to_owned());
        }
        if o.max_series == 0 || o.max_series > u32::MAX as usize / 2 {
            problems.push("storage.max_series must be between 1 and 2147483647".to_owned());
        }
        if problems.is_empty() {
            Ok(o)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TsdbConfig, muster_shared::config::ConfigError> {
        muster_shared::config::parse(text, std::path::Path::new("storage.toml"))
    }

    #[test]
    fn defaults_resolve_to_milliseconds() {
        let o = TsdbConfig::default().resolve().unwrap();
        assert_eq!(o.retention_ms, 15 * DAY_MS);
        assert_eq!(o.rollup_retention_ms, 365 * DAY_MS);
        assert_eq!(o.window_ms, 1_800_000);
        assert_eq!(o.tolerance_ms, 2);
    }

    #[test]
    fn every_problem_is_named() {
        let c: TsdbConfig = parse(
            "retention = \"12h\"\nchunk_window = \"7m\"\nwindow_grace = \"1h\"\nmax_series = 0\n",
        )
        .unwrap();
        let problems = c.resolve().unwrap_err().join("\n");
        for key in [
            "storage.retention",
            "storage.chunk_window",
            "storage.window_grace",
            "storage.max_series",
        ] {
            assert!(problems.contains(key), "{key} missing from {problems}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("retention_days = 3\n").is_err());
    }
}
