//! Prometheus remote write 1.0 from the collector to VictoriaMetrics, Mimir, Thanos or
//! Prometheus (DESIGN.md §4 and §6).
//!
//! [`RemoteWrite::start`] takes the `[[remote_write]]` entries and starts one sender task per
//! endpoint; [`RemoteWrite::enqueue`] is called by the ingest path with what was just stored
//! and never waits: each endpoint has its own bounded queue that drops its oldest samples
//! when full. A sender sends batches in queue order, retries what can be retried before
//! sending anything newer, and flushes on shutdown within a deadline. See `sender.rs` for
//! the algorithm and `docs/remote-write.md` for the operator's view.
//!
//! Parts, one per file:
//! - `config.rs`: [`RemoteWriteConfig`](config::RemoteWriteConfig), the `[[remote_write]]` keys.
//! - `url.rs`: [`RemoteUrl`], the endpoint URL and its redacted form.
//! - `proto.rs`: the protobuf messages.
//! - `encode.rs`: a batch as a Snappy-compressed body, and the protocol's headers.
//! - `queue.rs`: the bounded sample queue.
//! - `client.rs`: one HTTP request and the retry classification ([`SendError`]).
//! - `sender.rs`: batching, retries and backoff, shutdown flush.
//! - `metrics.rs`: the `muster_collector_remote_write_*` metrics.
//! - `report.rs`: logging repeated failures without flooding.
//!
//! Left out: a write-ahead log (a queue lives in memory: a collector restart loses what was
//! queued, and the agents' buffers do not replay it here), sharding one endpoint over
//! parallel requests, metadata, exemplars, native histograms, relabelling, and remote write
//! 2.0.

pub mod config;
pub mod proto;

mod client;
mod encode;
mod metrics;
mod queue;
mod report;
mod sender;
mod url;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use client::{ClientTlsError, SendError, client_tls, status_is_retryable};
pub use config::RemoteWriteConfig;
pub use encode::{decode_body, user_agent};
pub use metrics::{REASONS, RESULTS};
pub use url::{RemoteUrl, redact_url};

use crate::series::{Labels, SeriesSamples};
use client::HttpTransport;
use metrics::{RemoteMetrics, RemoteWriteMetrics};
use queue::SampleQueue;
use report::DropLog;
use sender::Sender;

/// Why remote write could not start. Texts name the endpoint by its `remote` label (its
/// `name` or its redacted URL) and never hold a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteWriteError {
    /// Cross-field rules failed; every problem is listed.
    #[error("invalid remote_write config: {}", problems.join("; "))]
    Invalid {
        /// Each problem, naming its key.
        problems: Vec<String>,
    },
    /// A secret file could not be read.
    #[error("remote write {remote}: cannot read {what} {}", path.display())]
    ReadFile {
        /// The endpoint.
        remote: String,
        /// The key naming the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The CA file (or the system bundle) could not be read or parsed.
    #[error("remote write {remote}: CA certificates {}: {reason}", path.display())]
    CaFile {
        /// The endpoint.
        remote: String,
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// An `https` endpoint without `ca_file`, and no system CA bundle found.
    #[error(
        "remote write {remote}: no ca_file given and no system CA bundle found \
         (/etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt)"
    )]
    NoSystemRoots {
        /// The endpoint.
        remote: String,
    },
    /// A header (from `headers` or an auth key) has a value HTTP cannot carry.
    #[error("remote write {remote}: header or auth value {name:?} is not valid in HTTP")]
    Header {
        /// The endpoint.
        remote: String,
        /// The header's name or the auth key.
        name: String,
    },
    /// The HTTP client could not be built.
    #[error("remote write {remote}: cannot build the HTTP client: {reason}")]
    Client {
        /// The endpoint.
        remote: String,
        /// What failed.
        reason: String,
    },
    /// The metrics could not be registered (remote write started twice on one registry).
    #[error("registering remote write metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Remote write to every configured endpoint: one queue and one sender task each.
#[derive(Debug)]
pub struct RemoteWrite {
    endpoints: Vec<Endpoint>,
    tracker: TaskTracker,
}

#[derive(Debug)]
struct Endpoint {
    remote: String,
    capacity: usize,
    queue: Arc<SampleQueue>,
    metrics: RemoteMetrics,
    drops: DropLog,
}

impl RemoteWrite {
    /// Checks `configs`, registers the metrics in `registry` and starts one sender per entry,
    /// each stopped by a child of `shutdown`. Call from within a Tokio runtime. Reads each
    /// entry's `ca_file` (or the system CA bundle) and secret files once (blocking I/O); if
    /// any entry fails, nothing is started. With no entry, [`enqueue`](Self::enqueue) does
    /// nothing.
    ///
    /// # Errors
    /// [`RemoteWriteError::Invalid`] listing every config problem; the others name the
    /// endpoint and the file or header at fault.
    pub fn start(
        configs: &[RemoteWriteConfig],
        registry: &prometheus::Registry,
        shutdown: CancellationToken,
    ) -> Result<Self, RemoteWriteError> {
        let problems = config::problems(configs);
        if !problems.is_empty() {
            return Err(RemoteWriteError::Invalid { problems });
        }
        let transports = configs
            .iter()
            .map(|c| HttpTransport::new(c, &c.remote()))
            .collect::<Result<Vec<_>, _>>()?;
        let families = RemoteWriteMetrics::register(registry)?;
        let tracker = TaskTracker::new();
        let mut endpoints = Vec::with_capacity(configs.len());
        for (config, transport) in configs.iter().zip(transports) {
            let remote = config.remote();
            let metrics = families.remote(&remote);
            let queue = Arc::new(SampleQueue::new(
                config.queue_capacity,
                metrics.queue.clone(),
            ));
            let sender = Sender::new(
                config,
                remote.clone(),
                Arc::clone(&queue),
                transport,
                metrics.clone(),
            );
            tracker.spawn(sender.run(shutdown.child_token()));
            endpoints.push(Endpoint {
                remote,
                capacity: config.queue_capacity,
                queue,
                metrics,
                drops: DropLog::default(),
            });
        }
        tracker.close();
        Ok(Self { endpoints, tracker })
    }

    /// Queues `series` for every endpoint. Never waits (beyond each queue's short lock):
    /// a full queue drops its oldest samples and counts them
    /// (`muster_collector_remote_write_samples_total{result="dropped_queue_full"}`).
    ///
    /// Samples of a series are sent in the order they are enqueued, so pass them oldest
    /// first, as [`SeriesSamples`] holds them.
    pub fn enqueue(&self, series: &[SeriesSamples]) {
        if self.endpoints.is_empty() {
            return;
        }
        let shared: Vec<(Arc<Labels>, &[crate::series::Sample])> = series
            .iter()
            .filter(|s| !s.samples.is_empty())
            .map(|s| (Arc::new(s.labels.clone()), s.samples.as_slice()))
            .collect();
        for endpoint in &self.endpoints {
            let dropped = endpoint
                .queue
                .push(shared.iter().map(|(labels, samples)| (labels, *samples)));
            endpoint.metrics.count(metrics::DROPPED_QUEUE_FULL, dropped);
            endpoint
                .drops
                .record(&endpoint.remote, dropped, endpoint.capacity);
        }
    }

    /// The `remote` label of each endpoint, in config order.
    pub fn remotes(&self) -> Vec<&str> {
        self.endpoints.iter().map(|e| e.remote.as_str()).collect()
    }

    /// Waits until every sender has stopped: after `shutdown` is cancelled, each flushes its
    /// queue for at most its `flush_deadline`.
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }
}
