//! The alerting pipeline at run time, for one store session: rules in force, the
//! evaluator, the dispatcher, the outbox and its delivery workers, and the stores the API
//! reads (silences, acknowledgements, history).
//!
//! One *round*: evaluate every rule (when due, or at once after an urgent pull), hand the
//! alerts to the dispatcher, put its notifications in the outbox (which flushes: from then
//! on they are delivered even after a crash), then record the dispatcher's log, and record
//! resolved episodes in the history. Rounds also run when the dispatcher has a group due
//! between evaluations. A round is one blocking task, so cancellation never cuts one in
//! half; a crash between the outbox's flush and the log's can only repeat a notification
//! (at-least-once; receivers deduplicate by group key).
//!
//! Leaves out what each stage does (see [`super::eval`], [`super::dispatch`],
//! [`super::outbox`]) and the HTTP API ([`crate::api`]).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use muster_shared::store::Store;
use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ack::AckStore;
use super::config::AlertingConfig;
use super::dispatch::{AlertMarks, Dispatcher};
use super::eval::{EvalOptions, Evaluator};
use super::history::AlertHistory;
use super::labels::Fingerprint;
use super::model::{Alert, AlertState};
use super::notify::Receiver;
use super::outbox::{Outbox, OutboxWorkers};
use super::rules::config::AlertingRulesConfig;
use super::rules::reload::{LoadedRules, RuleSource};
use super::silence::SilenceStore;
use crate::series::SeriesSource;

/// How often ended episodes past their retention are dropped from the history.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why alerting could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    /// A rule file is malformed (each error with `file:line:col`).
    #[error("alert rules: {0}")]
    Rules(String),
    /// Restoring alert state, silences, acknowledgements, the log or the outbox failed.
    #[error("cannot open alerting state: {0}")]
    Store(String),
    /// A receiver could not be built (a `*_file` that cannot be read, a bad CA file).
    #[error("alert receivers: {0}")]
    Receivers(String),
    /// The routing configuration is invalid (config validation normally catches this).
    #[error("alert routing: {}", .0.join("; "))]
    Routing(Vec<String>),
    /// Metrics could not be registered.
    #[error("alerting metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The pipeline's own metrics, in the session's registry.
#[derive(Debug, Clone)]
struct AlertMetrics {
    alerts: IntGaugeVec,
    rounds_failed: IntCounter,
    rules: IntGauge,
    reload_ok: IntGauge,
}

impl AlertMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let alerts = IntGaugeVec::new(
            Opts::new(
                "muster_collector_alerts",
                "Alerts listed after the last evaluation, by state.",
            ),
            &["state"],
        )?;
        let rounds_failed = IntCounter::new(
            "muster_collector_alert_rounds_failed_total",
            "Alerting rounds that could not save their state or queue their notifications.",
        )?;
        let rules = IntGauge::new(
            "muster_collector_alert_rules",
            "Alert rules in force, built-in ones included.",
        )?;
        let reload_ok = IntGauge::new(
            "muster_collector_alert_rules_last_reload_success",
            "1 when the last load of the rule files succeeded; 0 while the previous rules are kept.",
        )?;
        registry.register(Box::new(alerts.clone()))?;
        registry.register(Box::new(rounds_failed.clone()))?;
        registry.register(Box::new(rules.clone()))?;
        registry.register(Box::new(reload_ok.clone()))?;
        for state in ["pending", "firing", "resolved"] {
            alerts.with_label_values(&[state]);
        }
        Ok(Self {
            alerts,
            rounds_failed,
            rules,
            reload_ok,
        })
    }
}

/// The alerting pipeline of one store session. The API reads through its public fields.
#[derive(Debug)]
pub struct Alerting {
    /// The rules in force and the last reload's outcome.
    pub rules: Arc<LoadedRules>,
    /// Alerts and rule health.
    pub evaluator: Arc<Evaluator>,
    /// Silences.
    pub silences: SilenceStore,
    /// Acknowledgements.
    pub acks: AckStore,
    /// Ended episodes.
    pub history: AlertHistory,
    /// Notifications not yet delivered, and dead letters; `None` without receivers.
    pub outbox: Option<Arc<Outbox>>,
    dispatcher: Option<Mutex<Dispatcher>>,
    receivers: Mutex<Option<Vec<Receiver>>>,
    store: Store,
    source: Arc<dyn SeriesSource>,
    evaluation_interval: Duration,
    reload_interval: Duration,
    history_retention_ms: u64,
    metrics: AlertMetrics,
    /// Wakes the loop for an evaluation now (an urgent pull, an acknowledgement).
    wake: Arc<Notify>,
}

impl Alerting {
    /// Loads the rule files once for the process (a malformed file is an error, as a
    /// malformed `collector.toml` is; later reloads keep the rules in force instead).
    /// `config_path` anchors the globs; `external_url` is the links' base when the config
    /// gives none. Blocking.
    ///
    /// # Errors
    /// [`AlertingError::Rules`] with every error and its `file:line:col`.
    pub fn load_rules(
        config: &AlertingConfig,
        config_path: &Path,
        external_url: &str,
    ) -> Result<LoadedRules, AlertingError> {
        LoadedRules::open(
            RuleSource::new(&rules_config(config, external_url), config_path),
            crate::unix_ms(),
        )
        .map_err(|e| AlertingError::Rules(e.to_string()))
    }

    /// Opens every part over `store` with the process's `rules`: restores alert state,
    /// the log and the outbox, and builds the receivers. Blocking.
    ///
    /// # Errors
    /// An [`AlertingError`] naming the part that failed.
    pub fn open(
        config: &AlertingConfig,
        rules: Arc<LoadedRules>,
        external_url: &str,
        store: &Store,
        source: Arc<dyn SeriesSource>,
        registry: &Registry,
    ) -> Result<Self, AlertingError> {
        let rules_config = rules_config(config, external_url);
        let evaluator = Evaluator::open(store, EvalOptions::from_config(&rules_config))
            .map_err(|e| AlertingError::Store(e.to_string()))?;
        let store_err = |e: &dyn std::fmt::Display| AlertingError::Store(e.to_string());
        let dispatcher = match config
            .dispatch_settings(&rules_config.external_url)
            .map_err(AlertingError::Routing)?
        {
            Some(settings) => Some(Mutex::new(
                Dispatcher::open(store, settings).map_err(|e| store_err(&e))?,
            )),
            None => None,
        };
        let (outbox, receivers) = if config.receivers.is_empty() {
            (None, None)
        } else {
            let receivers = super::notify::build_all(&config.receivers)
                .map_err(|e| AlertingError::Receivers(e.to_string()))?;
            let outbox =
                Outbox::open(store, config.outbox.clone(), registry).map_err(|e| store_err(&e))?;
            (Some(outbox), Some(receivers))
        };
        let metrics = AlertMetrics::register(registry)?;
        Ok(Self {
            rules,
            evaluator: Arc::new(evaluator),
            silences: SilenceStore::open(store).map_err(|e| store_err(&e))?,
            acks: AckStore::open(store).map_err(|e| store_err(&e))?,
            history: AlertHistory::open(store).map_err(|e| store_err(&e))?,
            outbox,
            dispatcher,
            receivers: Mutex::new(receivers),
            store: store.clone(),
            source,
            evaluation_interval: config.evaluation_interval.get(),
            reload_interval: config.reload_interval.get(),
            history_retention_ms: u64::try_from(config.history_retention.get().as_millis())
                .unwrap_or(u64::MAX),
            metrics,
            wake: Arc::new(Notify::new()),
        })
    }

    /// What wakes the loop for an evaluation now: the scraper tells it after an urgent
    /// pull.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Starts the rule file watcher, the delivery workers and the pipeline loop under
    /// `tasks`; they stop with `cancel`.
    pub fn start(self: &Arc<Self>, tasks: &TaskTracker, cancel: &CancellationToken) {
        tasks.spawn(
            self.rules
                .clone()
                .run(self.reload_interval, cancel.child_token()),
        );
        let receivers = lock(&self.receivers).take();
        if let (Some(outbox), Some(receivers)) = (&self.outbox, receivers) {
            let workers: OutboxWorkers = outbox.start(receivers, cancel);
            let stop = cancel.clone();
            tasks.spawn(async move {
                stop.cancelled().await;
                workers.wait().await;
            });
        }
        tasks.spawn(self.clone().run(cancel.child_token()));
    }

    /// What the dispatcher's last pass decided for each alert: silences, inhibitions,
    /// acknowledgement. One lock for the whole list: a round holds it across its outbox
    /// write.
    pub fn marks(&self, fingerprints: &[Fingerprint]) -> Vec<Option<AlertMarks>> {
        match &self.dispatcher {
            Some(dispatcher) => {
                let dispatcher = lock(dispatcher);
                fingerprints
                    .iter()
                    .map(|fp| dispatcher.marks(*fp).cloned())
                    .collect()
            }
            None => vec![None; fingerprints.len()],
        }
    }

    /// Asks for a round with an evaluation now (after an acknowledgement or a silence, so
    /// its effect shows at once).
    pub fn evaluate_soon(&self) {
        self.wake.notify_one();
    }

    async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut next_eval = Instant::now();
        let mut next_prune = Instant::now();
        let mut last_failure: Option<String> = None;
        loop {
            let due = self.dispatcher_due();
            let wake_at = due.map_or(next_eval, |due| due.min(next_eval));
            let urgent = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = self.wake.notified() => true,
                () = tokio::time::sleep_until(wake_at) => false,
            };
            let now = Instant::now();
            let evaluate = urgent || now >= next_eval;
            if now >= next_eval {
                next_eval += self.evaluation_interval;
                if next_eval <= now {
                    next_eval = now + self.evaluation_interval;
                }
            }
            let prune = now >= next_prune;
            if prune {
                next_prune = now + PRUNE_EVERY;
            }
            let this = self.clone();
            let round = tokio::task::spawn_blocking(move || this.round(evaluate, prune))
                .await
                .unwrap_or_else(|err| Err(format!("alerting round task failed: {err}")));
            match round {
                Ok(()) => {
                    if last_failure.take().is_some() {
                        tracing::info!("alerting rounds succeed again");
                    }
                }
                Err(message) => {
                    self.metrics.rounds_failed.inc();
                    if last_failure.as_ref() != Some(&message) {
                        tracing::error!(error = %message, "alerting round failed; retried next round");
                    }
                    last_failure = Some(message);
                }
            }
        }
        tracing::debug!("alerting stopped");
    }

    /// When the dispatcher next has a group due, on the loop's clock.
    fn dispatcher_due(&self) -> Option<Instant> {
        let due_ms = self
            .dispatcher
            .as_ref()
            .and_then(|d| lock(d).next_due_ms())?;
        let wait = due_ms.saturating_sub(crate::unix_ms());
        Some(Instant::now() + Duration::from_millis(wait))
    }

    /// One round (see the module docs). Blocking.
    fn round(&self, evaluate: bool, prune: bool) -> Result<(), String> {
        let now = crate::unix_ms();
        let mut dirty = false;
        if evaluate {
            let rules = self.rules.current();
            let summary = self
                .evaluator
                .evaluate(&rules, self.source.as_ref(), now)
                .map_err(|e| format!("cannot save alert state: {e}"))?;
            dirty |= summary.written > 0;
            self.metrics.rules.set(gauge(rules.len()));
            self.metrics
                .reload_ok
                .set(i64::from(self.rules.last_reload().ok));
        }
        let alerts = self.evaluator.alerts();
        self.count(&alerts);
        dirty |= self
            .history
            .record_resolved(&alerts)
            .map_err(|e| format!("cannot record alert history: {e}"))?
            > 0;
        if prune {
            let cutoff = now.saturating_sub(self.history_retention_ms);
            dirty |= self
                .history
                .prune(cutoff)
                .map_err(|e| format!("cannot prune alert history: {e}"))?
                > 0;
        }
        if let Some(dispatcher) = &self.dispatcher {
            let mut dispatcher = lock(dispatcher);
            let notifications = dispatcher
                .process(now, &alerts)
                .map_err(|e| format!("cannot route alerts: {e}"))?;
            if !notifications.is_empty() {
                let outbox = self
                    .outbox
                    .as_ref()
                    .ok_or_else(|| "notifications but no receivers".to_owned())?;
                // The outbox flushes the store: alert state and history go with it.
                if let Err(err) = outbox.enqueue(notifications) {
                    let _ = dispatcher.discard();
                    return Err(format!("cannot queue notifications: {err}"));
                }
                dirty = false;
            }
            dirty |= dispatcher
                .commit()
                .map_err(|e| format!("cannot record sent notifications: {e}"))?
                > 0;
        }
        if dirty {
            self.store
                .flush()
                .map_err(|e| format!("cannot flush alerting state: {e}"))?;
        }
        Ok(())
    }

    fn count(&self, alerts: &[Alert]) {
        let mut counts = [0usize; 3];
        for alert in alerts {
            counts[match alert.state {
                AlertState::Pending => 0,
                AlertState::Firing => 1,
                AlertState::Resolved => 2,
            }] += 1;
        }
        for (state, n) in ["pending", "firing", "resolved"].iter().zip(counts) {
            self.metrics
                .alerts
                .with_label_values(&[state])
                .set(gauge(n));
        }
    }
}

/// The rule evaluator's settings, links based on `external_url` unless the config names one.
fn rules_config(config: &AlertingConfig, external_url: &str) -> AlertingRulesConfig {
    let mut rules = config.rules();
    if rules.external_url.is_empty() {
        external_url.clone_into(&mut rules.external_url);
    }
    rules
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
