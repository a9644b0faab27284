//! Running probes: one task per probe, on its own interval, until shutdown.
//!
//! A probe's task waits `initial_delay` (from [`start`]), then runs the probe every `interval` (a run that
//! overruns skips the ticks it missed; runs of one probe never overlap). A run is bounded
//! by the probe's `timeout`: the prober's future is dropped at the deadline and the run
//! fails with "timeout", keeping what the prober had recorded. Then its conditions are
//! checked, the thresholds update the state ([`super::health`]), and the run's values
//! ([`super::report`]) are
//! - appended to the buffer as one round timestamped with the run's start (one blocking
//!   hop per run), like every sample, so the collector pulls them with the rest;
//! - published on the [`ProbeBoard`] for `/metrics`.
//!
//! A probe's rounds are appended in order by its own task, so each of its series moves
//! forward in time; rounds of different probes and of the sampling loop interleave in the
//! buffer, which is fine: a round holds only the series it sets, and neither the buffer
//! nor the collector reads a series missing from a round as gone. When a failure's reason
//! changes or the probe succeeds again, the previous `muster_probe_failure_info` series
//! gets one Prometheus staleness marker in the round, so queries stop showing the old
//! reason at once rather than for their lookback.
//!
//! A failed append is logged when its error changes (the sampling loop counts the buffer's
//! failures); the run's values still reach `/metrics`. Cancelling stops a task at any
//! await; an append in progress completes first (the tracker waits for it).

use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::board::ProbeBoard;
use super::families::FAILURE_INFO;
use super::health::{HealthState, Transition};
use super::report::{self, ProbeValue};
use super::{Outcome, Probe, Prober};
use crate::sample::scheduler::RoundSink;
use crate::urgent::UrgentRounds;

/// Prometheus' staleness marker: the NaN with these bits ends a series at its timestamp.
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// Starts one task per probe under `tasks`; each stops when `shutdown` is cancelled.
/// `board` slots follow the order of `probes`.
pub fn start<P: Prober>(
    probes: Vec<Probe<P>>,
    sink: Arc<dyn RoundSink>,
    board: Arc<ProbeBoard>,
    urgent: Arc<UrgentRounds>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) {
    let now = tokio::time::Instant::now();
    for (slot, probe) in probes.into_iter().enumerate() {
        let task = ProbeTask {
            first_run_at: now + probe.timing.initial_delay,
            slot,
            probe: Arc::new(probe),
            sink: sink.clone(),
            board: board.clone(),
            urgent: urgent.clone(),
            health: HealthState::new(),
            last_success: None,
            last_reason: None,
            last_append_error: None,
        };
        tasks.spawn(task.run(shutdown.child_token()));
    }
}

/// One probe's loop and its state between runs.
struct ProbeTask<P> {
    /// Start plus the initial delay.
    first_run_at: tokio::time::Instant,
    slot: usize,
    probe: Arc<Probe<P>>,
    sink: Arc<dyn RoundSink>,
    board: Arc<ProbeBoard>,
    /// Where rounds that change the probe's verdict are announced.
    urgent: Arc<UrgentRounds>,
    health: HealthState,
    /// The previous run's success, to tell a change.
    last_success: Option<bool>,
    /// The reason of the previous run's failure, while it failed.
    last_reason: Option<String>,
    last_append_error: Option<String>,
}

/// A finished run.
struct Run {
    started_unix_ms: u64,
    values: Vec<ProbeValue>,
    /// Success or health changed: the collector should pull this round at once.
    urgent: bool,
}

impl<P: Prober> ProbeTask<P> {
    async fn run(mut self, shutdown: CancellationToken) {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(self.first_run_at) => {}
        }
        let mut ticker = tokio::time::interval(self.probe.timing.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let run = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                run = self.run_once() => run,
            };
            self.board.publish(
                self.slot,
                &self.probe.name,
                &self.probe.target,
                run.values.clone(),
            );
            self.append(run).await;
        }
        tracing::debug!(probe = %self.probe.name, "probe stopped");
    }

    /// Runs the probe once, bounded by its timeout, and judges the run.
    async fn run_once(&mut self) -> Run {
        let probe = self.probe.clone();
        let started_unix_ms = crate::unix_ms();
        let started = tokio::time::Instant::now();
        let mut outcome = Outcome::default();
        let finished = tokio::time::timeout(probe.timing.timeout, probe.prober.probe(&mut outcome))
            .await
            .is_ok();
        if !finished {
            outcome.fail_instead("timeout");
        }
        let elapsed = started.elapsed().min(probe.timing.timeout);
        let failed_condition =
            report::check_conditions(&mut outcome, &probe.conditions, elapsed, SystemTime::now());
        let success = outcome.failure().is_none();
        let transition = self.health.record(
            success,
            probe.timing.success_threshold,
            probe.timing.failure_threshold,
        );
        self.log(&outcome, transition);
        let urgent = transition.is_some() || self.last_success.is_some_and(|last| last != success);
        self.last_success = Some(success);
        Run {
            started_unix_ms,
            values: report::values(&outcome, elapsed, failed_condition, &self.health),
            urgent,
        }
    }

    fn log(&self, outcome: &Outcome, transition: Option<Transition>) {
        let probe = &self.probe;
        match transition {
            Some(Transition::Failed) => tracing::warn!(
                probe = %probe.name,
                target = %probe.target,
                reason = outcome.failure().unwrap_or_default(),
                failures = self.health.consecutive_failures(),
                "probe unhealthy"
            ),
            Some(Transition::Recovered) => tracing::info!(
                probe = %probe.name,
                target = %probe.target,
                "probe healthy again"
            ),
            None => tracing::debug!(
                probe = %probe.name,
                reason = outcome.failure().unwrap_or_default(),
                "probe run"
            ),
        }
    }

    /// Appends the run as one round: its values, and a staleness marker for the previous
    /// failure reason when it changed.
    async fn append(&mut self, run: Run) {
        let labels = |reason: Option<&str>| -> Vec<(&'static str, String)> {
            let mut labels = vec![
                ("probe", self.probe.name.clone()),
                ("target", self.probe.target.clone()),
            ];
            if let Some(reason) = reason {
                labels.push(("reason", reason.to_owned()));
            }
            labels
        };
        let intern = |family: &str, labels: &[(&'static str, String)]| {
            let pairs: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (*n, v.as_str())).collect();
            self.sink.intern(family, &pairs)
        };
        let mut values: Vec<(u32, f64)> = run
            .values
            .iter()
            .map(|v| (intern(v.family.name, &labels(v.reason.as_deref())), v.value))
            .collect();
        let reason = run
            .values
            .iter()
            .find(|v| v.family.name == FAILURE_INFO.name)
            .and_then(|v| v.reason.clone());
        if let Some(previous) = &self.last_reason
            && reason.as_ref() != Some(previous)
        {
            values.push((
                intern(FAILURE_INFO.name, &labels(Some(previous))),
                STALE_NAN,
            ));
        }
        self.last_reason = reason;

        let sink = self.sink.clone();
        let timestamp = run.started_unix_ms;
        let result = tokio::task::spawn_blocking(move || sink.append(timestamp, &values))
            .await
            .unwrap_or_else(|err| Err(format!("append task failed: {err}")));
        match result {
            Ok(seq) => {
                if run.urgent {
                    self.urgent.mark(seq);
                }
                if self.last_append_error.take().is_some() {
                    tracing::info!(probe = %self.probe.name, "probe results reach the buffer again");
                }
            }
            Err(err) => {
                if self.last_append_error.as_ref() != Some(&err) {
                    tracing::error!(probe = %self.probe.name, error = %err,
                        "cannot write the probe's results to the buffer; they are lost");
                    self.last_append_error = Some(err);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
