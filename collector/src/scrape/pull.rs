//! One turn of a host's loop: pull the agent's batches after its cursor and
//! store them, or pause while the store cannot write.

use std::collections::HashMap;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use muster_shared::protocol::info::CAP_URGENT;

use super::client::{self, AgentClient, ScrapeError};
use super::{PULLS_PER_TICK, ROUNDS_PER_PULL, Scraper};
use crate::hosts::{HostRecord, HostStatus};
use crate::metrics::{DROPPED_OVER_LIMIT, DROPPED_TOO_OLD};
use crate::series::{Sample, SeriesSamples};
use crate::store_health::StoreFailure;
use crate::tsdb::{Dictionary, TsdbError};

/// What one turn of a host's loop did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The agent was pulled: success, or the error shown as the host's `last_error`.
    Pulled(Result<(), String>),
    /// Nothing was pulled, or a batch was not stored, because the store cannot write.
    Paused,
}

/// Why a pull ended early.
#[derive(Debug)]
enum PullError {
    /// The agent failed or sent a batch that was refused: the host is down.
    Agent(String),
    /// The store failed to write a good batch: the host is fine, the collector is not.
    Store(String),
}

/// Why a pulled batch was not stored.
#[derive(Debug)]
enum BatchFailure {
    /// Undecodable, invalid or unstorable: asking again gets the same answer.
    Refused(String),
    /// The store failed to write it; it can be stored later.
    Store(String),
}

impl BatchFailure {
    fn from_tsdb(err: &TsdbError) -> Self {
        let text = client::error_chain(err);
        if err.is_retryable() {
            BatchFailure::Store(text)
        } else {
            BatchFailure::Refused(text)
        }
    }
}

/// Adds one to a gauge for as long as it lives (cancellation included).
struct GaugeGuard(prometheus::IntGauge);

impl GaugeGuard {
    fn hold(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Scraper {
    /// One pull, or none while the store cannot write; `None` when cancelled.
    pub(super) async fn scrape_once(
        &self,
        host: &HostRecord,
        client: &AgentClient,
        rounds: &mut u32,
        cancel: &CancellationToken,
    ) -> Option<Outcome> {
        if let Some(failure) = self.store_health.failure() {
            self.pause(host, &failure);
            return Some(Outcome::Paused);
        }
        let _permit = {
            let _waiting = GaugeGuard::hold(&self.metrics.scrapes_waiting);
            tokio::select! {
                biased;
                () = cancel.cancelled() => return None,
                permit = self.permits.clone().acquire_owned() => permit.ok()?,
            }
        };
        let _in_flight = GaugeGuard::hold(&self.metrics.scrapes_in_flight);
        let started = Instant::now();
        let started_ms = crate::unix_ms();
        let mut status = self.hosts.status(&host.id);
        let ingested_before = status.samples_ingested;
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => return None,
            result = self.pull(host, client, &mut status, rounds) => result,
        };
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.scrape_duration.observe(seconds);
        self.metrics
            .host_scrape_duration
            .with_label_values(&[host.id.as_str()])
            .set(seconds);
        status.last_scrape_unix_ms = Some(crate::unix_ms());
        let outcome = match result {
            Ok(()) => {
                status.up = true;
                status.last_error = None;
                Outcome::Pulled(Ok(()))
            }
            Err(PullError::Agent(err)) => {
                status.up = false;
                status.last_error = Some(err.clone());
                Outcome::Pulled(Err(err))
            }
            // The agent answered; what failed is ours, logged by the store's health.
            Err(PullError::Store(err)) => {
                status.last_error = Some(err);
                Outcome::Paused
            }
        };
        if let Outcome::Pulled(pulled) = &outcome {
            let up = if pulled.is_ok() { 1.0 } else { 0.0 };
            let scraped = status.samples_ingested.saturating_sub(ingested_before);
            self.append_scrape_series(&host.id, started_ms, up, seconds, scraped)
                .await;
        }
        self.hosts.set_status(&host.id, status);
        self.update_gauges();
        Some(outcome)
    }

    /// Stores `up`, `scrape_duration_seconds` and `scrape_samples_scraped` for `host`
    /// at the pull's start, as Prometheus does for each of its targets, so alerts and
    /// dashboards written for Prometheus's `up` work here.
    async fn append_scrape_series(
        &self,
        host: &str,
        started_ms: u64,
        up: f64,
        seconds: f64,
        scraped: u64,
    ) {
        let timestamp_ms = i64::try_from(started_ms).unwrap_or(i64::MAX);
        let values = [
            ("up", up),
            ("scrape_duration_seconds", seconds),
            ("scrape_samples_scraped", scraped as f64),
        ];
        if self
            .tsdb
            .append_local_cached(host, timestamp_ms, &values)
            .is_some()
        {
            return;
        }
        let tsdb = self.tsdb.clone();
        let id = host.to_owned();
        let stored =
            tokio::task::spawn_blocking(move || tsdb.append_local(&id, timestamp_ms, &values))
                .await;
        match stored {
            Ok(Ok(_)) => {}
            // A store that cannot write is reported by its health check; this is one
            // more symptom of it.
            Ok(Err(err)) => tracing::debug!(host, error = %err, "cannot store the up series"),
            Err(err) => tracing::warn!(host, error = %err, "up series task failed"),
        }
    }

    /// Shows why `host` is not pulled; its up/down state stays that of its last pull.
    fn pause(&self, host: &HostRecord, failure: &StoreFailure) {
        let mut status = self.hosts.status(&host.id);
        let reason = format!(
            "not pulling: the store cannot write (since {}): {}",
            failure.since, failure.error
        );
        if status.last_error.as_deref() != Some(reason.as_str()) {
            tracing::debug!(host = %host.id, "pull paused: the store cannot write");
            status.last_error = Some(reason);
            self.hosts.set_status(&host.id, status);
        }
    }

    /// `/v1/info` when the host was not up, then sample batches until the
    /// agent has no more (or [`PULLS_PER_TICK`]). Each batch is stored before
    /// the next is asked for; `status` carries the cursor and counters.
    ///
    /// `rounds` is how many rounds a request asks for: halved when a request
    /// times out, back to [`ROUNDS_PER_PULL`] once the host is caught up. A
    /// host catching up after an outage may hold more than its agent can send
    /// within the timeout; asking for the same amount again would fail every
    /// time and the host would never catch up.
    async fn pull(
        &self,
        host: &HostRecord,
        client: &AgentClient,
        status: &mut HostStatus,
        rounds: &mut u32,
    ) -> Result<(), PullError> {
        if !status.up || status.agent_version.is_none() {
            let request_id = uuid::Uuid::new_v4().to_string();
            let info = client
                .info(host.address, &request_id)
                .await
                .map_err(|e| PullError::Agent(e.to_string()))?;
            status.urgent = info.has_capability(CAP_URGENT);
            status.agent_version = Some(info.agent_version);
        }
        if status.cursor == 0 {
            status.cursor = self.tsdb.durable_cursor(&host.id);
        }
        let mut reset = false;
        for _ in 0..PULLS_PER_TICK {
            if self.store_health.failure().is_some() {
                // Another host's batch found the store failing: stop with what is stored.
                break;
            }
            // The request id is also in the agent's log line for this call.
            let request_id = uuid::Uuid::new_v4().to_string();
            // Remote write needs every batch's labels, so it always asks for the
            // dictionary; otherwise the agent may leave out the one held.
            let held = match self.remote {
                Some(_) => None,
                None => self.tsdb.held_dictionary(&host.id),
            };
            let answer = match client
                .samples_frame(
                    host.address,
                    &request_id,
                    status.cursor,
                    *rounds,
                    held.as_deref(),
                )
                .await
            {
                Ok(answer) => answer,
                Err(ScrapeError::CursorAhead { after }) if !reset => {
                    tracing::warn!(host = %host.id, cursor = after,
                        "the agent does not know our cursor (its buffer was reset); asking from the start");
                    reset = true;
                    status.cursor = 0;
                    continue;
                }
                Err(err @ ScrapeError::Timeout(_)) => {
                    if *rounds > 1 {
                        let fewer = (*rounds / 2).max(1);
                        tracing::warn!(host = %host.id, rounds = *rounds, next = fewer,
                            "pull timed out; asking for fewer rounds");
                        *rounds = fewer;
                    }
                    return Err(PullError::Agent(err.to_string()));
                }
                Err(err) => return Err(PullError::Agent(err.to_string())),
            };
            let tsdb = self.tsdb.clone();
            let remote = self.remote.clone();
            let id = host.id.clone();
            let stored = tokio::task::spawn_blocking(move || -> Result<_, BatchFailure> {
                let refused = |e: ScrapeError| BatchFailure::Refused(client::error_chain(&e));
                let payload = client::open_batch(&answer.frame).map_err(refused)?;
                let batch = client::decode_batch(&payload, &answer.dictionary).map_err(refused)?;
                let stats = tsdb
                    .ingest_with(&id, &batch, &answer.dictionary)
                    .map_err(|e| BatchFailure::from_tsdb(&e))?;
                if let Some(remote) = remote {
                    remote.enqueue(&to_series(&id, &batch));
                }
                let elided = matches!(answer.dictionary, Dictionary::Elided(_));
                Ok((batch.next_after, batch.more, batch.gap, stats, elided))
            })
            .await
            .map_err(|e| PullError::Agent(format!("ingest task failed: {e}")))?;
            // Either way the cursor stays and nothing of the batch was stored.
            let (next_after, more, gap, stats, elided) = match stored {
                Ok(stored) => stored,
                Err(BatchFailure::Refused(err)) => {
                    tracing::warn!(host = %host.id, request_id = %request_id, error = %err, "batch refused");
                    self.metrics.batches_refused.inc();
                    return Err(PullError::Agent(err));
                }
                Err(BatchFailure::Store(err)) => {
                    self.store_health.write_failed(&err);
                    return Err(PullError::Store(format!("batch not stored: {err}")));
                }
            };
            if let Some(gap) = gap {
                let lost = gap.last_missing.saturating_sub(gap.first_missing) + 1;
                status.gap_rounds += lost;
                status.last_gap = Some(format!(
                    "seq {}..={} at {}",
                    gap.first_missing,
                    gap.last_missing,
                    crate::hosts::rfc3339(crate::unix_ms())
                ));
                self.metrics.gap_rounds.inc_by(lost);
                tracing::warn!(host = %host.id, first = gap.first_missing, last = gap.last_missing,
                    "the agent dropped rounds before they were pulled");
            }
            if elided {
                self.metrics.dictionaries_elided.inc();
            }
            status.cursor = next_after;
            status.samples_ingested += stats.appended;
            self.metrics.samples_ingested.inc_by(stats.appended);
            self.metrics.samples_duplicate.inc_by(stats.duplicates);
            for (reason, n) in [
                (DROPPED_TOO_OLD, stats.too_old),
                (DROPPED_OVER_LIMIT, stats.over_limit),
            ] {
                if n > 0 {
                    self.metrics
                        .samples_dropped
                        .with_label_values(&[reason])
                        .inc_by(n);
                }
            }
            if !more {
                *rounds = ROUNDS_PER_PULL;
                break;
            }
        }
        Ok(())
    }
}

/// A batch as series with the `host` label, for remote write.
fn to_series<S: AsRef<str>>(
    host: &str,
    batch: &muster_shared::protocol::samples::SampleBatch<S>,
) -> Vec<SeriesSamples> {
    let mut series: Vec<SeriesSamples> = batch
        .series
        .iter()
        .map(|def| SeriesSamples {
            labels: crate::tsdb::stored_labels(host, def),
            samples: Vec::new(),
        })
        .collect();
    let index: HashMap<u32, usize> = batch
        .series
        .iter()
        .enumerate()
        .map(|(i, def)| (def.id, i))
        .collect();
    for round in &batch.rounds {
        let timestamp_ms = i64::try_from(round.timestamp_unix_ms).unwrap_or(i64::MAX);
        for value in &round.values {
            if let Some(&i) = index.get(&value.series) {
                series[i].samples.push(Sample {
                    timestamp_ms,
                    value: value.value,
                });
            }
        }
    }
    series.retain(|s| !s.samples.is_empty());
    series
}
