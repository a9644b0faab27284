//! The collector's own metrics, served at `/metrics` in Prometheus text.
//!
//! Names follow `muster_collector_<what>_<unit>`; every answer passes
//! `promtool check metrics` (tested end to end).

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the collector exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Scrapes by result (`success`, `failure`).
    pub scrapes: IntCounterVec,
    /// Scrape duration.
    pub scrape_duration: Histogram,
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
    /// Agent batches refused (undecodable, invalid) or not stored.
    pub batches_refused: IntCounter,
    /// Rounds agents dropped before they were pulled (gap markers).
    pub gap_rounds: IntCounter,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    ///
    /// # Errors
    /// Only on a programming error (a duplicate or malformed name).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let scrapes = IntCounterVec::new(
            Opts::new("muster_collector_scrapes_total", "Agent scrapes by result."),
            &["result"],
        )?;
        let scrape_duration = Histogram::with_opts(
            HistogramOpts::new(
                "muster_collector_scrape_duration_seconds",
                "Time taken by one agent scrape.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let hosts = IntGaugeVec::new(
            Opts::new("muster_collector_hosts", "Enrolled hosts by status."),
            &["status"],
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "muster_collector_http_requests_total",
                "API requests by method, route and status code.",
            ),
            &["method", "route", "code"],
        )?;
        let enrollments = IntCounterVec::new(
            Opts::new(
                "muster_collector_enrollments_total",
                "Enrollment requests by result.",
            ),
            &["result"],
        )?;
        let ready = IntGauge::new(
            "muster_collector_ready",
            "1 once the store is open and the first scrape round is done.",
        )?;
        let samples_ingested = IntCounter::new(
            "muster_collector_samples_ingested_total",
            "Samples stored from agents.",
        )?;
        let samples_duplicate = IntCounter::new(
            "muster_collector_samples_duplicate_total",
            "Samples dropped because the store already held them (re-pulls).",
        )?;
        let batches_refused = IntCounter::new(
            "muster_collector_batches_refused_total",
            "Agent sample batches refused or not stored; the host's cursor stays.",
        )?;
        let gap_rounds = IntCounter::new(
            "muster_collector_gap_rounds_total",
            "Sampling rounds agents dropped before the collector pulled them.",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "muster_collector_build_info",
                "Build information; always 1.",
            ),
            &["version", "commit"],
        )?;
        build_info
            .with_label_values(&[
                muster_shared::version::VERSION,
                muster_shared::version::GIT_COMMIT,
            ])
            .set(1);
        for result in ["success", "failure"] {
            scrapes.with_label_values(&[result]);
        }
        for status in ["up", "down"] {
            hosts.with_label_values(&[status]);
        }
        for result in ["success", "refused", "error"] {
            enrollments.with_label_values(&[result]);
        }
        registry.register(Box::new(scrapes.clone()))?;
        registry.register(Box::new(scrape_duration.clone()))?;
        registry.register(Box::new(hosts.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(enrollments.clone()))?;
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(samples_ingested.clone()))?;
        registry.register(Box::new(samples_duplicate.clone()))?;
        registry.register(Box::new(batches_refused.clone()))?;
        registry.register(Box::new(gap_rounds.clone()))?;
        Ok(Self {
            registry,
            scrapes,
            scrape_duration,
            hosts,
            http_requests,
            enrollments,
            ready,
            samples_ingested,
            samples_duplicate,
            batches_refused,
            gap_rounds,
        })
    }

    /// The registry, for parts that register their own families (remote write).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %err, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help() {
        let metrics = Metrics::new().unwrap();
        metrics.scrapes.with_label_values(&["success"]).inc();
        let text = metrics.render();
        for name in [
            "muster_collector_scrapes_total",
            "muster_collector_scrape_duration_seconds",
            "muster_collector_hosts",
            "muster_collector_enrollments_total",
            "muster_collector_ready",
            "muster_collector_build_info",
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} missing:\n{text}"
            );
        }
        assert!(text.contains("muster_collector_scrapes_total{result=\"success\"} 1"));
    }
}
