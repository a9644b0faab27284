//! The sampling loop: one round per interval, each sampler isolated.
//!
//! Sketch of a round: every idle sampler gets one pass on the blocking pool
//! (one hop per pass, its own table moved in and back); the round waits for
//! them until a shared deadline. A sampler that fails reports
//! `node_scrape_collector_success 0` and keeps going next round; one that
//! overruns the deadline stays in flight, is reported as failed, and is
//! skipped until its pass returns (a hung NFS mount must not stall the rest,
//! nor pile up threads). Then the live values of every idle table get their
//! buffer ids (interned once per series), are appended to the buffer as one
//! round, and the text exposition is rendered for `/metrics` (with any
//! [`ExtraSeries`], such as the probes', which are buffered by their owner).
//!
//! Cancelling the loop between awaits leaves the buffer consistent: an
//! append is a single blocking call that completes or never starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::exposition::{self, Exposition};
use super::series::{FamilySpec, Kind, SeriesTable};
use super::{SampleError, Sampler};

/// Where rounds go: the buffer, or a fake in tests.
pub trait RoundSink: Send + Sync + 'static {
    /// A stable id for the series `metric{labels}`; memory only.
    fn intern(&self, metric: &str, labels: &[(&str, &str)]) -> u32;
    /// Appends one round; returns its sequence number. Blocking.
    ///
    /// # Errors
    /// A description of why the round was not stored.
    fn append(&self, timestamp_unix_ms: u64, values: &[(u32, f64)]) -> Result<u64, String>;
    /// Adds the sink's own series (sizes, evictions) to `out`.
    fn report(&self, out: &mut SeriesTable);
}

/// Series that `/metrics` shows with each round but that their owner appends to the
/// buffer itself (probes: each run is its own round). The scheduler copies them into a
/// table of its own at each render, never into a round.
pub trait ExtraSeries: Send + Sync + 'static {
    /// Sets the owner's current values in `out`, a table whose round has just begun.
    fn fill(&self, out: &mut SeriesTable);
}

/// Timing of the loop.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleOptions {
    /// Time between rounds.
    pub interval: Duration,
    /// How long a round waits for its samplers.
    pub timeout: Duration,
}

struct Pass {
    sampler: Box<dyn Sampler>,
    table: SeriesTable,
    result: Result<(), SampleError>,
    elapsed: Duration,
}

enum State {
    Idle(Box<dyn Sampler>, SeriesTable),
    Running(JoinHandle<Pass>),
    /// The sampler panicked; it is not run again.
    Lost,
}

struct Slot {
    name: &'static str,
    state: State,
    /// The round in which the in-flight pass started.
    started_round: u64,
    /// Outcome of the last finished pass, for logging changes only.
    last_error: Option<String>,
    malformed_total: u64,
    failures_total: u64,
}

const SUCCESS: FamilySpec<'static> = FamilySpec {
    name: "node_scrape_collector_success",
    help: "node_exporter: Whether a collector succeeded.",
    kind: Kind::Gauge,
    labels: &["collector"],
};
const DURATION: FamilySpec<'static> = FamilySpec {
    name: "node_scrape_collector_duration_seconds",
    help: "node_exporter: Duration of a collector scrape.",
    kind: Kind::Gauge,
    labels: &["collector"],
};
const MALFORMED: FamilySpec<'static> = FamilySpec {
    name: "muster_agent_sampler_malformed_lines_total",
    help: "Input lines a sampler skipped because they did not parse.",
    kind: Kind::Counter,
    labels: &["sampler"],
};
const FAILURES: FamilySpec<'static> = FamilySpec {
    name: "muster_agent_sampler_failures_total",
    help: "Sampler passes that failed or timed out.",
    kind: Kind::Counter,
    labels: &["sampler"],
};
const ROUND_SECONDS: FamilySpec<'static> = FamilySpec {
    name: "muster_agent_round_duration_seconds",
    help: "Time the last sampling round took, samplers and buffer append included.",
    kind: Kind::Gauge,
    labels: &[],
};
const SERIES: FamilySpec<'static> = FamilySpec {
    name: "muster_agent_series",
    help: "Series the samplers produced in the last round.",
    kind: Kind::Gauge,
    labels: &[],
};
const APPEND_FAILURES: FamilySpec<'static> = FamilySpec {
    name: "muster_agent_buffer_append_failures_total",
    help: "Rounds that could not be written to the buffer.",
    kind: Kind::Counter,
    labels: &[],
};

/// The sampling loop and its state.
pub struct Scheduler {
    slots: Vec<Slot>,
    own: SeriesTable,
    sink: Arc<dyn RoundSink>,
    exposition: Arc<Exposition>,
    /// Shown on `/metrics` only, with its table.
    extra: Option<(Arc<dyn ExtraSeries>, SeriesTable)>,
    options: ScheduleOptions,
    values: Vec<(u32, f64)>,
    /// Length of the last rendered text, to size the next one.
    text_len: usize,
    round: u64,
    append_failures: u64,
    last_append_error: Option<String>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field(
                "samplers",
                &self.slots.iter().map(|s| s.name).collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A loop over `samplers`, writing rounds to `sink` and the text format
    /// to `exposition`.
    pub fn new(
        samplers: Vec<Box<dyn Sampler>>,
        sink: Arc<dyn RoundSink>,
        exposition: Arc<Exposition>,
        options: ScheduleOptions,
    ) -> Self {
        let slots = samplers
            .into_iter()
            .map(|sampler| Slot {
                name: sampler.name(),
                state: State::Idle(sampler, SeriesTable::new()),
                started_round: 0,
                last_error: None,
                malformed_total: 0,
                failures_total: 0,
            })
            .collect();
        Self {
            slots,
            own: SeriesTable::new(),
            sink,
            exposition,
            extra: None,
            options,
            values: Vec::new(),
            text_len: 0,
            round: 0,
            append_failures: 0,
            last_append_error: None,
        }
    }

    /// Also shows `extra`'s series on `/metrics` (rendered after the samplers' and the
    /// loop's own).
    #[must_use]
    pub fn with_extra(mut self, extra: Arc<dyn ExtraSeries>) -> Self {
        self.extra = Some((extra, SeriesTable::new()));
        self
    }

    /// Runs a round at once, then every interval, until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.options.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = self.round() => {}
            }
        }
        tracing::debug!("sampling stopped");
    }

    /// Takes one round: samplers, buffer append, exposition.
    pub async fn round(&mut self) {
        let started = Instant::now();
        let timestamp_unix_ms = crate::unix_ms();
        self.round += 1;
        self.own.begin_round();
        self.start_passes();
        self.collect_passes(started + self.options.timeout).await;
        self.report_slots();
        self.sink.report(&mut self.own);
        self.own
            .set_spec(&APPEND_FAILURES, &[], self.append_failures as f64);

        self.gather_values();
        self.own.set_spec(&SERIES, &[], self.values.len() as f64);
        self.own
            .set_spec(&ROUND_SECONDS, &[], started.elapsed().as_secs_f64());
        self.gather_own_values();
        self.append(timestamp_unix_ms).await;
        self.render();
    }

    fn start_passes(&mut self) {
        let round = self.round;
        for slot in &mut self.slots {
            match std::mem::replace(&mut slot.state, State::Lost) {
                State::Idle(mut sampler, mut table) => {
                    slot.started_round = round;
                    slot.state = State::Running(tokio::task::spawn_blocking(move || {
                        let begun = Instant::now();
                        table.begin_round();
                        let result = sampler.sample(&mut table);
                        table.forget_stale();
                        Pass {
                            sampler,
                            table,
                            result,
                            elapsed: begun.elapsed(),
                        }
                    }));
                }
                other => slot.state = other,
            }
        }
    }

    async fn collect_passes(&mut self, deadline: Instant) {
        let deadline = tokio::time::Instant::from_std(deadline);
        for slot in &mut self.slots {
            let State::Running(handle) = &mut slot.state else {
                continue;
            };
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(pass)) => {
                    let outcome = match &pass.result {
                        Ok(()) => None,
                        Err(SampleError::NoData(reason)) => {
                            tracing::debug!(sampler = slot.name, reason = %reason, "no data");
                            None
                        }
                        Err(err) => Some(err.to_string()),
                    };
                    slot.malformed_total += pass.table.malformed_count();
                    let failed = outcome.is_some();
                    Self::log_change(slot, outcome);
                    if failed {
                        slot.failures_total += 1;
                    }
                    let mut table = pass.table;
                    if slot.started_round < self.round {
                        // Back from a hang: its cached buffer ids may have
                        // been collected meanwhile; intern them again.
                        table.clear_global_ids();
                    }
                    slot.state = State::Idle(pass.sampler, table);
                    self.own
                        .set_spec(&DURATION, &[slot.name], pass.elapsed.as_secs_f64());
                }
                Ok(Err(join_error)) => {
                    tracing::error!(sampler = slot.name, error = %join_error, "sampler panicked; it is disabled until restart");
                    slot.failures_total += 1;
                    slot.state = State::Lost;
                }
                Err(_) => {
                    slot.failures_total += 1;
                    Self::log_change(
                        slot,
                        Some(format!("timed out after {:?}", self.options.timeout)),
                    );
                }
            }
        }
    }

    /// Logs a sampler's outcome only when it changes; failures are counted
    /// every time by the caller.
    fn log_change(slot: &mut Slot, outcome: Option<String>) {
        if slot.last_error == outcome {
            return;
        }
        match &outcome {
            Some(error) => tracing::warn!(sampler = slot.name, error = %error, "sampler failed"),
            None => tracing::info!(sampler = slot.name, "sampler recovered"),
        }
        slot.last_error = outcome;
    }

    fn report_slots(&mut self) {
        for slot in &self.slots {
            let ok = matches!(slot.state, State::Idle(..)) && slot.last_error.is_none();
            self.own
                .set_spec(&SUCCESS, &[slot.name], if ok { 1.0 } else { 0.0 });
            if !matches!(slot.state, State::Idle(..)) {
                // In flight past the deadline, or lost: its duration is the timeout.
                self.own
                    .set_spec(&DURATION, &[slot.name], self.options.timeout.as_secs_f64());
            }
            self.own
                .set_spec(&MALFORMED, &[slot.name], slot.malformed_total as f64);
            self.own
                .set_spec(&FAILURES, &[slot.name], slot.failures_total as f64);
        }
    }

    /// The live values of every idle sampler, with buffer ids.
    fn gather_values(&mut self) {
        self.values.clear();
        for slot in &mut self.slots {
            if let State::Idle(_, table) = &mut slot.state {
                push_values(table, self.sink.as_ref(), &mut self.values);
            }
        }
    }

    fn gather_own_values(&mut self) {
        push_values(&mut self.own, self.sink.as_ref(), &mut self.values);
    }

    async fn append(&mut self, timestamp_unix_ms: u64) {
        let values = std::mem::take(&mut self.values);
        let sink = self.sink.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let result = sink.append(timestamp_unix_ms, &values);
            // The round's buffers are free now; give their pages back.
            crate::memory::release_free();
            (values, result)
        })
        .await;
        let result = match joined {
            Ok((values, result)) => {
                self.values = values;
                result
            }
            Err(err) => Err(format!("append task failed: {err}")),
        };
        match result {
            Ok(seq) => {
                if self.last_append_error.take().is_some() {
                    tracing::info!(seq, "buffer append recovered");
                }
            }
            Err(err) => {
                self.append_failures += 1;
                if self.last_append_error.as_ref() != Some(&err) {
                    tracing::error!(error = %err, "cannot write the round to the buffer; samples are lost");
                    self.last_append_error = Some(err);
                }
            }
        }
    }

    fn render(&mut self) {
        if let Some((extra, table)) = &mut self.extra {
            table.begin_round();
            extra.fill(table);
            table.forget_stale();
        }
        let tables: Vec<&SeriesTable> = self
            .slots
            .iter()
            .filter_map(|slot| match &slot.state {
                State::Idle(_, table) => Some(table),
                _ => None,
            })
            .chain(std::iter::once(&self.own))
            .chain(self.extra.as_ref().map(|(_, table)| table))
            .collect();
        // A fresh buffer each round, handed over without a copy: keeping a render
        // buffer beside the served text held both (~1.5 MB with 50 containers).
        // Above glibc's mmap threshold, it is mapped and unmapped whole.
        let mut text = String::with_capacity(self.text_len + self.text_len / 8);
        exposition::render(&tables, &mut text);
        self.text_len = text.len();
        self.exposition.publish(Bytes::from(text.into_bytes()));
    }
}

/// Appends `table`'s live values to `values`, interning new series once;
/// in steady state nothing is allocated.
fn push_values(table: &mut SeriesTable, sink: &dyn RoundSink, values: &mut Vec<(u32, f64)>) {
    let (families, live) = table.families_and_live_mut();
    for series in live {
        let id = match series.global_id {
            Some(id) => id,
            None => {
                let Some(family) = families.get(series.family.index()) else {
                    continue;
                };
                let labels: Vec<(&str, &str)> = family
                    .labels
                    .iter()
                    .zip(series.values.iter())
                    .map(|(n, v)| (&**n, &**v))
                    .collect();
                let id = sink.intern(&family.name, &labels);
                series.global_id = Some(id);
                id
            }
        };
        values.push((id, series.value));
    }
}

#[cfg(test)]
mod tests;
