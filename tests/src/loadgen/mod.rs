//! The load generator behind `tests/bench/collector_vs_prometheus.rs`: one process that
//! plays a fleet of simulated hosts, so its CPU is counted against neither store.
//!
//! It serves, for each host, either the agent API the collector pulls (`GET /v1/info`,
//! `GET /v1/samples` over mutual TLS with the host's own certificate, [`agent_api`]) or a
//! plain-HTTP Prometheus `/metrics` ([`metrics_api`]), from the same series and values
//! ([`catalogue`], [`values`]). Rounds are every 10 s of wall time from the moment the
//! clock starts ([`Clock`]); a round's values are a pure function of (host, series, round),
//! so nothing is kept per round and any round can be served again after a re-pull.
//!
//! Host 0 can carry a backlog: rounds of its CPU series only, every 10 s over the period
//! before the clock started (24 h for the benchmark), which the collector backfills through
//! its normal cursor pull and which [`openmetrics`] writes out for `promtool tsdb
//! create-blocks-from openmetrics`, so both stores hold the same day of data.
//!
//! Left out: everything but samples (no jobs, probes, backups), and a sample buffer with an
//! age bound (a real agent keeps 6 h by default; the backlog is served whatever its age).

pub mod agent_api;
pub mod catalogue;
pub mod enroll;
pub mod metrics_api;
pub mod openmetrics;
pub mod values;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use catalogue::HostSeries;
use values::mix;

/// Milliseconds between rounds.
pub const INTERVAL_MS: u64 = 10_000;
/// Rounds in 24 hours: the benchmark's backlog for host 0.
pub const ROUNDS_PER_DAY: u64 = 8_640;

/// When rounds happen: round 0 at the start, one every [`INTERVAL_MS`], none after a freeze.
#[derive(Debug)]
pub struct Clock {
    start_ms: OnceLock<u64>,
    /// The last round served after a freeze; `i64::MAX` while running.
    frozen: AtomicI64,
}

impl Clock {
    /// A clock not started: no live rounds yet.
    pub fn new() -> Self {
        Self {
            start_ms: OnceLock::new(),
            frozen: AtomicI64::new(i64::MAX),
        }
    }

    /// Starts the clock at `now_ms` (once; later calls keep the first start). Returns the
    /// start.
    pub fn start(&self, now_ms: u64) -> u64 {
        *self.start_ms.get_or_init(|| now_ms)
    }

    /// The start, if started.
    pub fn start_ms(&self) -> Option<u64> {
        self.start_ms.get().copied()
    }

    /// The newest live round at `now_ms`: `None` before the start.
    pub fn newest_round(&self, now_ms: u64) -> Option<i64> {
        let start = self.start_ms()?;
        let elapsed = now_ms.saturating_sub(start) / INTERVAL_MS;
        let round = i64::try_from(elapsed).unwrap_or(i64::MAX);
        Some(round.min(self.frozen.load(Ordering::Acquire)))
    }

    /// The last round served, once frozen.
    pub fn frozen_round(&self) -> Option<i64> {
        let frozen = self.frozen.load(Ordering::Acquire);
        (frozen != i64::MAX).then_some(frozen)
    }

    /// Serves no round after the newest one at `now_ms`; returns it (`None` if not started).
    pub fn freeze(&self, now_ms: u64) -> Option<i64> {
        let newest = self.newest_round(now_ms)?;
        self.frozen.fetch_min(newest, Ordering::AcqRel);
        Some(self.frozen.load(Ordering::Acquire))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The simulated hosts, their clock and what was served.
#[derive(Debug)]
pub struct Fleet {
    /// Host `i` is `hosts[i]`.
    pub hosts: Vec<HostSeries>,
    /// Rounds of backlog before round 0 on host 0 (its CPU series only).
    pub backlog_rounds: u64,
    /// The round schedule.
    pub clock: Clock,
    /// When this process started (the agents' `started_at_unix_ms`).
    pub started_at_unix_ms: u64,
    /// Requests answered, for the final report.
    pub served: Counters,
}

/// What the load generator answered.
#[derive(Debug, Default)]
pub struct Counters {
    /// `/v1/samples` answers.
    pub batches: AtomicU64,
    /// Rounds in them.
    pub rounds: AtomicU64,
    /// Values in them.
    pub values: AtomicU64,
    /// `/metrics` answers.
    pub scrapes: AtomicU64,
    /// 409s and errors.
    pub errors: AtomicU64,
}

impl Fleet {
    /// `hosts` simulated hosts, host 0 with `backlog_rounds` of backlog.
    pub fn new(hosts: usize, backlog_rounds: u64, now_ms: u64) -> Self {
        Self {
            hosts: (0..hosts).map(HostSeries::new).collect(),
            backlog_rounds,
            clock: Clock::new(),
            started_at_unix_ms: now_ms,
            served: Counters::default(),
        }
    }

    /// Rounds before round 0 on host `host`.
    pub fn backlog(&self, host: usize) -> u64 {
        if host == 0 { self.backlog_rounds } else { 0 }
    }

    /// The sequence number of `round` on `host` (from 1; the backlog comes first).
    pub fn seq(&self, host: usize, round: i64) -> u64 {
        u64::try_from(round + 1 + i64::try_from(self.backlog(host)).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    /// The round of sequence number `seq` (>= 1) on `host`.
    pub fn round(&self, host: usize, seq: u64) -> i64 {
        i64::try_from(seq).unwrap_or(i64::MAX)
            - 1
            - i64::try_from(self.backlog(host)).unwrap_or(i64::MAX)
    }

    /// The newest sequence number `host` holds at `now_ms`; 0 before the clock starts.
    pub fn newest_seq(&self, host: usize, now_ms: u64) -> u64 {
        self.clock
            .newest_round(now_ms)
            .map_or(0, |round| self.seq(host, round))
    }

    /// When `round` was taken on `host`, in ms since the epoch: on the 10 s grid from the
    /// start plus 0–3 ms of jitter, as a real sampling pass starts a little late.
    pub fn timestamp_ms(&self, host: usize, start_ms: u64, round: i64) -> u64 {
        let jitter = mix(((host as u64) << 32) ^ round as u64) % 4;
        let offset = round * i64::try_from(INTERVAL_MS).unwrap_or(i64::MAX);
        start_ms.saturating_add_signed(offset) + jitter
    }

    /// How many series round `round` carries on any host: the CPU series in the backlog,
    /// everything afterwards.
    pub fn series_in_round(&self, host: usize, round: i64) -> usize {
        if round < 0 {
            catalogue::CPU_SERIES
        } else {
            self.hosts[host].defs.len()
        }
    }
}

/// Now, in ms since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_counts_rounds_from_the_start_and_stops_at_a_freeze() {
        let clock = Clock::new();
        assert_eq!(clock.newest_round(5_000), None);
        clock.start(1_000_000);
        clock.start(2_000_000);
        assert_eq!(clock.newest_round(1_000_000), Some(0));
        assert_eq!(clock.newest_round(1_019_999), Some(1));
        assert_eq!(clock.freeze(1_030_000), Some(3));
        assert_eq!(clock.newest_round(9_000_000), Some(3));
    }

    #[test]
    fn the_backlog_comes_first_on_host_zero_only() {
        let fleet = Fleet::new(2, 100, 0);
        assert_eq!(fleet.seq(0, -100), 1);
        assert_eq!(fleet.seq(0, 0), 101);
        assert_eq!(fleet.seq(1, 0), 1);
        assert_eq!(fleet.round(0, 1), -100);
        assert_eq!(fleet.round(1, 1), 0);
        assert_eq!(fleet.newest_seq(0, 0), 0, "nothing before the start");
        fleet.clock.start(1_000);
        assert_eq!(fleet.newest_seq(0, 1_000), 101);
        let t = fleet.timestamp_ms(0, 1_000_000_000, -1);
        assert!((999_990_000..=999_990_003).contains(&t), "{t}");
    }
}
