//! Remote write's own metrics, registered into the collector's registry, one `remote` label
//! value per endpoint (its `name`, or its URL redacted).

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Values of `muster_collector_remote_write_samples_total`'s `result` label.
pub const RESULTS: &[&str] = &[
    SENT,
    DROPPED_QUEUE_FULL,
    DROPPED_REJECTED,
    DROPPED_SHUTDOWN,
    DROPPED_UNENCODABLE,
];
/// Accepted by the receiver (2xx).
pub const SENT: &str = "sent";
/// Dropped from a full queue, oldest first.
pub const DROPPED_QUEUE_FULL: &str = "dropped_queue_full";
/// Refused by the receiver with a status that must not be retried (4xx other than 429).
pub const DROPPED_REJECTED: &str = "dropped_rejected";
/// Still queued or unsent when the flush deadline passed at shutdown.
pub const DROPPED_SHUTDOWN: &str = "dropped_shutdown";
/// Could not be encoded (a request past Snappy's 4 GiB limit).
pub const DROPPED_UNENCODABLE: &str = "dropped_unencodable";
/// Values of `muster_collector_remote_write_failures_total`'s `reason` label.
pub const REASONS: &[&str] = &[
    "server_error",
    "rate_limited",
    "client_error",
    "network",
    "timeout",
];

/// Every remote write metric family.
#[derive(Debug, Clone)]
pub(crate) struct RemoteWriteMetrics {
    samples: IntCounterVec,
    queue: IntGaugeVec,
    retries: IntCounterVec,
    failures: IntCounterVec,
    send_duration: HistogramVec,
    last_success: GaugeVec,
}

impl RemoteWriteMetrics {
    /// Creates the families and registers them in `registry`.
    ///
    /// # Errors
    /// A duplicate registration (remote write started twice on one registry).
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let samples = IntCounterVec::new(
            Opts::new(
                "muster_collector_remote_write_samples_total",
                "Samples handled by remote write, by endpoint and result.",
            ),
            &["remote", "result"],
        )?;
        let queue = IntGaugeVec::new(
            Opts::new(
                "muster_collector_remote_write_queue_samples",
                "Samples waiting in an endpoint's queue.",
            ),
            &["remote"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new(
                "muster_collector_remote_write_retries_total",
                "Requests sent again after a retryable failure.",
            ),
            &["remote"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "muster_collector_remote_write_failures_total",
                "Failed remote write requests, by endpoint and reason.",
            ),
            &["remote", "reason"],
        )?;
        let send_duration = HistogramVec::new(
            HistogramOpts::new(
                "muster_collector_remote_write_send_duration_seconds",
                "Time taken by one remote write request, failed ones included.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["remote"],
        )?;
        let last_success = GaugeVec::new(
            Opts::new(
                "muster_collector_remote_write_last_success_timestamp_seconds",
                "Unix time of an endpoint's last accepted request; 0 before the first.",
            ),
            &["remote"],
        )?;
        registry.register(Box::new(samples.clone()))?;
        registry.register(Box::new(queue.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(send_duration.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        Ok(Self {
            samples,
            queue,
            retries,
            failures,
            send_duration,
            last_success,
        })
    }

    /// The handles of one endpoint, every label value created at zero.
    pub fn remote(&self, remote: &str) -> RemoteMetrics {
        for result in RESULTS {
            self.samples.with_label_values(&[remote, result]);
        }
        for reason in REASONS {
            self.failures.with_label_values(&[remote, reason]);
        }
        RemoteMetrics {
            remote: remote.to_owned(),
            samples: self.samples.clone(),
            failures: self.failures.clone(),
            queue: self.queue.with_label_values(&[remote]),
            retries: self.retries.with_label_values(&[remote]),
            send_duration: self.send_duration.with_label_values(&[remote]),
            last_success: self.last_success.with_label_values(&[remote]),
        }
    }
}

/// One endpoint's metrics.
#[derive(Debug, Clone)]
pub(crate) struct RemoteMetrics {
    remote: String,
    samples: IntCounterVec,
    failures: IntCounterVec,
    /// Samples queued.
    pub queue: IntGauge,
    /// Requests sent again.
    pub retries: IntCounter,
    /// Duration of each request.
    pub send_duration: Histogram,
    /// Unix time of the last accepted request.
    pub last_success: Gauge,
}

impl RemoteMetrics {
    /// Counts `count` samples under `result` (one of [`RESULTS`]).
    pub fn count(&self, result: &str, count: u64) {
        if count > 0 {
            self.samples
                .with_label_values(&[self.remote.as_str(), result])
                .inc_by(count);
        }
    }

    /// Counts one failed request under `reason` (one of [`REASONS`]).
    pub fn failed(&self, reason: &str) {
        self.failures
            .with_label_values(&[self.remote.as_str(), reason])
            .inc();
    }
}
