//! The collector's own metrics, served at `/metrics` in Prometheus text.
//!
//! Names follow `muster_collector_<what>_<unit>`; every answer passes
//! `promtool check metrics` (tested end to end). The scrape loop counts as it
//! goes; the store's figures ([`StoreMetrics`]) are read from the tsdb by the
//! maintenance task once per flush interval.

use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::tsdb::TsdbStats;

/// Values of `muster_collector_samples_dropped_total`'s `reason` label.
pub const DROP_REASONS: &[&str] = &[DROPPED_TOO_OLD, DROPPED_OVER_LIMIT];
/// Older than the raw data kept (already rolled up).
pub const DROPPED_TOO_OLD: &str = "too_old";
/// Their series would pass `storage.max_series`.
pub const DROPPED_OVER_LIMIT: &str = "over_limit";

/// Every metric the collector exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Families of the current store session's parts (the alert outbox), rendered with the
    /// rest; replaced when the store is reopened, since a registry cannot take the same
    /// family twice.
    session: Arc<Mutex<Registry>>,
    /// Scrapes by result (`success`, `failure`).
    pub scrapes: IntCounterVec,
    /// Scrape duration.
    pub scrape_duration: Histogram,
    /// The last scrape's duration, per host.
    pub host_scrape_duration: GaugeVec,
    /// Scrapes holding one of the `scrape.concurrency` permits.
    pub scrapes_in_flight: IntGauge,
    /// Scrapes waiting for a permit.
    pub scrapes_waiting: IntGauge,
    /// Hosts by status (`up`, `down`).
    pub hosts: IntGaugeVec,
    /// API requests by method, matched route and status code.
    pub http_requests: IntCounterVec,
    /// Enrollments by result (`success`, `refused`, `error`).
    pub enrollments: IntCounterVec,
    /// 1 once the first scrape round is done.
    pub ready: IntGauge,
    /// Samples stored from agents.
    pub samples_ingested: IntCounter,
    /// Samples dropped as already stored (re-pulls after a restart).
    pub samples_duplicate: IntCounter,
    /// Samples the store would not take, by reason ([`DROP_REASONS`]).
    pub samples_dropped: IntCounterVec,
    /// Agent batches refused: undecodable, or breaking the protocol's rules.
    pub batches_refused: IntCounter,
    /// Agent batches whose series dictionary the agent left out because the collector
    /// held it (`protocol::samples`, "Dictionary elision").
    pub dictionaries_elided: IntCounter,
    /// Rounds agents dropped before they were pulled (gap markers).
    pub gap_rounds: IntCounter,
    /// The store's figures and health.
    pub store: StoreMetrics,
}

/// The store's figures and health.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// 1 while the store takes writes, 0 while scraping is paused because it
    /// does not.
    pub writable: IntGauge,
    /// Store writes (flushes, new series) that failed.
    pub write_failures: IntCounter,
    /// Times the store was closed and opened again to clear a write error.
    pub reopens: IntCounter,
    /// Series in the index.
    pub series: IntGauge,
    /// Series with data in the head.
    pub head_series: IntGauge,
    /// Samples in the head, not yet written to blocks.
    pub head_samples: IntGauge,
    /// Estimated bytes of the head.
    pub head_bytes: IntGauge,
    /// Estimated bytes of the in-memory series index.
    pub index_bytes: IntGauge,
    /// Bytes of the store's files.
    pub disk_bytes: IntGauge,
    /// Chunks written as blocks.
    pub blocks_written: IntCounter,
    /// The last `blocks_written` figure read from the tsdb, whose counter starts
    /// again at 0 when the store is reopened.
    blocks_seen: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl StoreMetrics {
    /// Copies the tsdb's figures into the gauges.
    pub fn observe(&self, stats: &TsdbStats) {
        use std::sync::atomic::Ordering;
        self.series.set(gauge(stats.series));
        self.head_series.set(gauge(stats.head_series));
        self.head_samples.set(gauge(stats.head_samples));
        self.head_bytes.set(gauge(stats.head_bytes));
        self.index_bytes.set(gauge(stats.index_bytes));
        self.disk_bytes.set(gauge(stats.disk_bytes));
        let seen = self
            .blocks_seen
            .swap(stats.blocks_written, Ordering::Relaxed);
        // A smaller figure comes from a reopened store, counting from 0 again.
        let new = if stats.blocks_written >= seen {
            stats.blocks_written - seen
        } else {
            stats.blocks_written
        };
        self.blocks_written.inc_by(new);
    }

    /// Notes that the store was opened again: its counters start from 0.
    pub fn reopened(&self) {
        self.blocks_seen
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.reopens.inc();
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Registers `metric` in `registry` and returns it.
fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    ///
    /// # Errors
    /// Only on a programming error (a duplicate or malformed name).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;
        let scrapes = register(
            r,
            IntCounterVec::new(
                Opts::new("muster_collector_scrapes_total", "Agent scrapes by result."),
                &["result"],
            )?,
        )?;
        let scrape_duration = register(
            r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "muster_collector_scrape_duration_seconds",
                    "Time taken by one agent scrape.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            )?,
        )?;
        let host_scrape_duration = register(
            r,
            GaugeVec::new(
                Opts::new(
                    "muster_collector_host_scrape_duration_seconds",
                    "Time taken by the last scrape of each host.",
                ),
                &["host"],
            )?,
        )?;
        let scrapes_in_flight = register(
            r,
            IntGauge::new(
                "muster_collector_scrapes_in_flight",
                "Agent scrapes running, each holding one of scrape.concurrency permits.",
            )?,
        )?;
        let scrapes_waiting = register(
            r,
            IntGauge::new(
                "muster_collector_scrapes_waiting",
                "Agent scrapes due but waiting for a permit (scrape.concurrency reached).",
            )?,
        )?;
        let hosts = register(
            r,
            IntGaugeVec::new(
                Opts::new("muster_collector_hosts", "Enrolled hosts by status."),
                &["status"],
            )?,
        )?;
        let http_requests = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "muster_collector_http_requests_total",
                    "API requests by method, route and status code.",
                ),
                &["method", "route", "code"],
            )?,
        )?;
        let enrollments = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "muster_collector_enrollments_total",
                    "Enrollment requests by result.",
                ),
                &["result"],
            )?,
        )?;
        let ready = register(
            r,
            IntGauge::new(
                "muster_collector_ready",
                "1 once the store is open and the first scrape round is done.",
            )?,
        )?;
        let build_info = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "muster_collector_build_info",
                    "Build information; always 1.",
                ),
                &["version", "commit"],
            )?,
        )?;
        build_info
            .with_label_values(&[
                muster_shared::version::VERSION,
                muster_shared::version::GIT_COMMIT,
            ])
            .set(1);
        let samples_ingested = register(
            r,
            IntCounter::new(
                "muster_collector_samples_ingested_total",
                "Samples stored from agents.",
            )?,
        )?;
        let samples_duplicate = register(
            r,
            IntCounter::new(
                "muster_collector_samples_duplicate_total",
                "Samples dropped because the store already held them (re-pulls).",
            )?,
        )?;
        let samples_dropped = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "muster_collector_samples_dropped_total",
                    "Samples the store would not take: older than the raw data kept, or of new series past storage.max_series.",
                ),
                &["reason"],
            )?,
        )?;
        let batches_refused = register(
            r,
            IntCounter::new(
                "muster_collector_batches_refused_total",
                "Agent sample batches refused as undecodable or invalid; the host's cursor stays.",
            )?,
        )?;
        let dictionaries_elided = register(
            r,
            IntCounter::new(
                "muster_collector_dictionaries_elided_total",
                "Agent sample batches stored without their series dictionary, which the collector held from an earlier pull.",
            )?,
        )?;
        let gap_rounds = register(
            r,
            IntCounter::new(
                "muster_collector_gap_rounds_total",
                "Sampling rounds agents dropped before the collector pulled them.",
            )?,
        )?;
        for result in ["success", "failure"] {
            scrapes.with_label_values(&[result]);
        }
        for status in ["up", "down"] {
            hosts.with_label_values(&[status]);
        }
        for result in ["success", "refused", "error"] {
            enrollments.with_label_values(&[result]);
        }
        for reason in DROP_REASONS {
            samples_dropped.with_label_values(&[reason]);
        }
        let store = StoreMetrics::new(r)?;
        Ok(Self {
            registry,
            session: Arc::new(Mutex::new(Registry::new())),
            scrapes,
            scrape_duration,
            host_scrape_duration,
            scrapes_in_flight,
            scrapes_waiting,
            hosts,
            http_requests,
            enrollments,
            ready,
            samples_ingested,
            samples_duplicate,
            samples_dropped,
            batches_refused,
            dictionaries_elided,
            gap_rounds,
            store,
        })
    }

    /// The registry, for parts that register their own families (remote write).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A fresh registry for a new store session's parts, rendered from now on in place of
    /// the previous session's.
    pub fn new_session_registry(&self) -> Registry {
        let registry = Registry::new();
        *self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = registry.clone();
        registry
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let mut families = self.registry.gather();
        families.extend(
            self.session
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .gather(),
        );
        families.sort_by(|a, b| a.name().cmp(b.name()));
        if let Err(err) = TextEncoder::new().encode(&families, &mut buffer) {
            tracing::error!(error = %err, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl StoreMetrics {
    fn new(r: &Registry) -> Result<Self, prometheus::Error> {
        let int_gauge = |name: &str, help: &str| register(r, IntGauge::new(name, help)?);
        let counter = |name: &str, help: &str| register(r, IntCounter::new(name, help)?);
        let writable = int_gauge(
            "muster_collector_store_writable",
            "1 while the store takes writes; 0 while it does not and scraping is paused.",
        )?;
        writable.set(1);
        Ok(Self {
            writable,
            write_failures: counter(
                "muster_collector_store_write_failures_total",
                "Store writes (flushes, new series) that failed, e.g. on a full disk.",
            )?,
            reopens: counter(
                "muster_collector_store_reopens_total",
                "Times the store was closed and opened again to clear a write error.",
            )?,
            series: int_gauge(
                "muster_collector_tsdb_series",
                "Series in the time-series store's index.",
            )?,
            head_series: int_gauge(
                "muster_collector_tsdb_head_series",
                "Series with samples in memory (the head).",
            )?,
            head_samples: int_gauge(
                "muster_collector_tsdb_head_samples",
                "Samples in memory, not yet written to blocks on disk.",
            )?,
            head_bytes: int_gauge(
                "muster_collector_tsdb_head_bytes",
                "Estimated memory held by the head.",
            )?,
            index_bytes: int_gauge(
                "muster_collector_tsdb_index_bytes",
                "Estimated memory held by the series index.",
            )?,
            disk_bytes: int_gauge(
                "muster_collector_store_size_bytes",
                "Bytes the store's files take on disk.",
            )?,
            blocks_written: counter(
                "muster_collector_tsdb_blocks_written_total",
                "Chunks written to disk as blocks.",
            )?,
            blocks_seen: std::sync::Arc::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help() {
        let metrics = Metrics::new().unwrap();
        metrics.scrapes.with_label_values(&["success"]).inc();
        metrics
            .host_scrape_duration
            .with_label_values(&["web1"])
            .set(0.25);
        let text = metrics.render();
        for name in [
            "muster_collector_scrapes_total",
            "muster_collector_scrape_duration_seconds",
            "muster_collector_host_scrape_duration_seconds",
            "muster_collector_scrapes_in_flight",
            "muster_collector_scrapes_waiting",
            "muster_collector_hosts",
            "muster_collector_enrollments_total",
            "muster_collector_ready",
            "muster_collector_build_info",
            "muster_collector_samples_dropped_total",
            "muster_collector_store_writable",
            "muster_collector_store_write_failures_total",
            "muster_collector_tsdb_series",
            "muster_collector_tsdb_head_samples",
            "muster_collector_store_size_bytes",
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} missing:\n{text}"
            );
        }
        assert!(text.contains("muster_collector_scrapes_total{result=\"success\"} 1"));
        assert!(text.contains("muster_collector_host_scrape_duration_seconds{host=\"web1\"} 0.25"));
        assert!(text.contains("muster_collector_store_writable 1"));
    }

    #[test]
    fn blocks_written_counts_on_across_a_reopen() {
        let metrics = Metrics::new().unwrap();
        let store = &metrics.store;
        let stats = |blocks_written| TsdbStats {
            blocks_written,
            series: 7,
            ..TsdbStats::default()
        };
        store.observe(&stats(5));
        store.observe(&stats(8));
        assert_eq!(store.blocks_written.get(), 8);
        assert_eq!(store.series.get(), 7);
        store.reopened();
        store.observe(&stats(2));
        assert_eq!(store.blocks_written.get(), 10);
        assert_eq!(store.reopens.get(), 1);
    }
}
