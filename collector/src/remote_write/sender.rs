//! The sender task of one endpoint: batches its queue, sends, retries, flushes on shutdown.
//!
//! Sketch:
//! 1. Wait for a first sample, then until `max_samples_per_send` are queued or
//!    `batch_send_deadline` has passed.
//! 2. Take up to `max_samples_per_send` of the oldest samples, encode them once, and send
//!    the body until it is accepted (2xx) or refused for good (any other non-retryable
//!    status, counted `dropped_rejected`). A retryable failure (5xx, 429, network, timeout)
//!    waits `Retry-After` when the receiver gave one (up to 5 minutes), else an exponential
//!    backoff from `min_backoff` to `max_backoff` with jitter, and sends the same body again.
//!    Nothing else is sent meanwhile: the endpoint's queue waits behind the batch (and drops
//!    its oldest samples if it fills), so a series' samples never overtake each other.
//! 3. On shutdown, stop waiting for full batches and send what is queued, for at most
//!    `flush_deadline`. Whatever is still queued or in flight then is counted
//!    `dropped_shutdown`: an interrupted sender loses at most that, never sends twice
//!    except a request whose answer it did not see.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{SendError, Transport};
use super::config::RemoteWriteConfig;
use super::encode;
use super::metrics::{self, RemoteMetrics};
use super::queue::{Chunk, SampleQueue};
use super::report::FailureLog;

/// The longest `Retry-After` honoured; a longer one is cut to this.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// One endpoint's sender; see the module doc.
#[derive(Debug)]
pub(crate) struct Sender<T> {
    remote: String,
    queue: Arc<SampleQueue>,
    transport: T,
    metrics: RemoteMetrics,
    max_samples_per_send: usize,
    batch_send_deadline: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
    flush_deadline: Duration,
    /// Samples of the batch being sent, for the shutdown count.
    in_flight: AtomicU64,
}

impl<T: Transport> Sender<T> {
    /// A sender for `config`'s endpoint, named `remote`, taking from `queue`.
    pub fn new(
        config: &RemoteWriteConfig,
        remote: String,
        queue: Arc<SampleQueue>,
        transport: T,
        metrics: RemoteMetrics,
    ) -> Self {
        Self {
            remote,
            queue,
            transport,
            metrics,
            max_samples_per_send: config.max_samples_per_send.max(1),
            batch_send_deadline: config.batch_send_deadline.get(),
            min_backoff: config.min_backoff.get(),
            max_backoff: config.max_backoff.get().max(config.min_backoff.get()),
            flush_deadline: config.flush_deadline.get(),
            in_flight: AtomicU64::new(0),
        }
    }

    /// Runs until `shutdown` is cancelled and the queue is flushed, or `flush_deadline`
    /// after the cancellation, whichever comes first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(remote = %self.remote, "remote write sender started");
        let work = self.work(&shutdown);
        tokio::pin!(work);
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(self.flush_deadline).await;
        };
        tokio::select! {
            () = &mut work => {
                tracing::info!(remote = %self.remote, "remote write sender stopped; queue flushed");
            }
            () = deadline => {
                let dropped = self.in_flight.swap(0, Ordering::Relaxed)
                    + u64::try_from(self.queue.clear()).unwrap_or(u64::MAX);
                self.metrics.count(metrics::DROPPED_SHUTDOWN, dropped);
                tracing::warn!(
                    remote = %self.remote,
                    dropped_samples = dropped,
                    flush_deadline = ?self.flush_deadline,
                    "remote write sender stopped at its flush deadline; unsent samples dropped"
                );
            }
        }
    }

    /// Batches and sends until cancelled and empty.
    async fn work(&self, shutdown: &CancellationToken) {
        let mut failures = FailureLog::default();
        loop {
            if shutdown.is_cancelled() {
                if self.queue.len() == 0 {
                    return;
                }
            } else {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => continue,
                    () = self.queue.wait_not_empty() => {}
                }
                self.wait_for_batch(shutdown).await;
            }
            let batch = self.queue.take(self.max_samples_per_send);
            if !batch.is_empty() {
                self.deliver(&batch, &mut failures).await;
            }
        }
    }

    /// Returns once a full batch is queued, `batch_send_deadline` has passed, or shutdown.
    async fn wait_for_batch(&self, shutdown: &CancellationToken) {
        let deadline = Instant::now() + self.batch_send_deadline;
        while self.queue.len() < self.max_samples_per_send {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(deadline) => return,
                () = self.queue.pushed() => {}
            }
        }
    }

    /// Sends one batch until it is accepted or refused for good.
    async fn deliver(&self, batch: &[Chunk], failures: &mut FailureLog) {
        let samples: u64 = batch
            .iter()
            .map(|c| u64::try_from(c.samples.len()).unwrap_or(u64::MAX))
            .sum();
        let body = match encode::encode_body(&encode::write_request(batch)) {
            Ok(body) => body,
            Err(err) => {
                self.metrics.count(metrics::DROPPED_UNENCODABLE, samples);
                tracing::error!(remote = %self.remote, error = %err, samples, "remote write batch dropped");
                return;
            }
        };
        self.in_flight.store(samples, Ordering::Relaxed);
        let mut backoff = Backoff::new(self.min_backoff, self.max_backoff);
        loop {
            let started = Instant::now();
            let result = self.transport.send(body.clone()).await;
            self.metrics
                .send_duration
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    self.in_flight.store(0, Ordering::Relaxed);
                    self.metrics.count(metrics::SENT, samples);
                    self.metrics.last_success.set(unix_seconds());
                    if failures.clear() {
                        tracing::info!(remote = %self.remote, "remote write recovered");
                    }
                    return;
                }
                Err(err) if !err.retryable() => {
                    self.in_flight.store(0, Ordering::Relaxed);
                    self.metrics.failed(err.reason());
                    self.metrics.count(metrics::DROPPED_REJECTED, samples);
                    if failures.changed(&err.to_string()) {
                        tracing::error!(
                            remote = %self.remote,
                            error = %err,
                            samples,
                            "remote write batch refused; dropped, not retried"
                        );
                    }
                    return;
                }
                Err(err) => {
                    self.metrics.failed(err.reason());
                    let delay = self.retry_delay(&err, &mut backoff);
                    if failures.changed(&err.to_string()) {
                        tracing::warn!(
                            remote = %self.remote,
                            error = %err,
                            retry_in = ?delay,
                            "remote write failed; retrying"
                        );
                    }
                    tokio::time::sleep(delay).await;
                    self.metrics.retries.inc();
                }
            }
        }
    }

    fn retry_delay(&self, err: &SendError, backoff: &mut Backoff) -> Duration {
        match err.retry_after() {
            Some(asked) => asked.clamp(self.min_backoff, MAX_RETRY_AFTER.max(self.min_backoff)),
            None => backoff.next_delay(),
        }
    }
}

/// Exponential backoff with jitter: each delay is drawn from `[d/2, d]`, `d` doubling from
/// `min` to `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    ceiling: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `min`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { ceiling: min, max }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling.min(self.max);
        self.ceiling = ceiling.saturating_mul(2);
        let half = ceiling / 2;
        let jitter = u32::try_from(random() % 1000).unwrap_or(0);
        half + half.mul_f64(f64::from(jitter) / 1000.0)
    }
}

/// A random number from the standard library's per-process hash keys (no crate needed for
/// jitter).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    );
    h.finish()
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
