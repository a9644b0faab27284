//! Rule evaluation: every rule in force, at one time, over the stored series, becomes the
//! current list of alerts, with their state carried from one evaluation to the next and
//! across restarts.
//!
//! [`Evaluator::evaluate`] runs each rule's query ([`crate::query::Engine`]), turns each
//! returned series into an alert's labels (series labels without `__name__`, the rule's
//! labels, `alertname`) and annotations, and advances every alert's state ([`state`]):
//! pending, firing, resolved (kept for `resolved_retention`), with `for` and
//! `keep_firing_for`. It then persists what changed in one batch ([`store`]); the caller
//! flushes. [`Evaluator::run`] does this on an interval.
//!
//! One rule failing (a query error, two series with the same labels after the rule's
//! labels) is recorded on that rule ([`Evaluator::rule_states`]) and leaves its alerts as
//! they were; the other rules go on. A rule removed or disabled by a reload resolves its
//! firing alerts and drops its pending ones.
//!
//! Leaves out what happens to alerts next (routing, grouping, silences, notification): the
//! dispatcher reads [`Evaluator::alerts`] or [`Evaluator::subscribe`].

mod run;
pub mod state;
mod status;
pub mod store;

pub use status::{RuleHealth, RuleStatus};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use muster_shared::store::{Store, StoreError};
use tokio::sync::watch;

use crate::alert::labels::{ALERTNAME, Fingerprint, LabelSet};
use crate::alert::model::{Alert, AlertState};
use crate::alert::rules::config::AlertingRulesConfig;
use crate::alert::rules::template::TemplateData;
use crate::alert::rules::{Rule, RuleSet};
use crate::query::{Engine, Limits, Value};
use crate::series::{METRIC_NAME, SeriesSource};

use state::{Outcome, Seen, Timing};
use store::{AlertStore, key, needs_write};

/// How evaluation behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// How long a resolved alert stays listed. Default 15 minutes.
    pub resolved_retention: Duration,
    /// The longest one rule's query may run. Default 10 seconds.
    pub query_timeout: Duration,
    /// `$externalURL`, and the base of alerts' generator URLs. Default empty.
    pub external_url: String,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self::from_config(&AlertingRulesConfig::default())
    }
}

impl EvalOptions {
    /// The options `[alerting]` sets.
    pub fn from_config(config: &AlertingRulesConfig) -> Self {
        Self {
            resolved_retention: config.resolved_retention.get(),
            query_timeout: config.query_timeout.get(),
            external_url: config.external_url.trim_end_matches('/').to_owned(),
        }
    }
}

/// Why evaluation state could not be restored or saved.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading the stored alert state at start failed.
    #[error("cannot restore alert state")]
    Restore(#[source] StoreError),
    /// Writing an evaluation's changes failed; the alerts were evaluated and are listed,
    /// and the next evaluation writes them again.
    #[error("cannot save alert state")]
    Persist(#[source] StoreError),
}

/// What one evaluation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalSummary {
    /// Alerts written or removed in the store: flush when not zero.
    pub written: usize,
    /// Pending alerts after it.
    pub pending: usize,
    /// Firing alerts after it.
    pub firing: usize,
    /// Resolved alerts still listed.
    pub resolved: usize,
    /// Rules whose evaluation failed.
    pub failed_rules: usize,
}

/// The alerts after an evaluation, as published to subscribers.
#[derive(Debug, Clone, Default)]
pub struct AlertSnapshot {
    /// The evaluation's time, ms since the Unix epoch; `None` before the first (restored
    /// alerts only).
    pub at_ms: Option<u64>,
    /// Every alert listed: pending, firing, resolved within retention; sorted by labels.
    pub alerts: Arc<Vec<Alert>>,
}

/// Evaluates rules into alerts and keeps their state. Share it as `Arc<Evaluator>`:
/// one evaluation runs at a time, readers never wait for a query.
#[derive(Debug)]
pub struct Evaluator {
    engine: Engine,
    options: EvalOptions,
    store: AlertStore,
    /// Held for a whole evaluation, so two never interleave.
    evaluating: Mutex<()>,
    /// Held only to read or apply results, never during a query.
    state: Mutex<EvalState>,
    published: watch::Sender<AlertSnapshot>,
}

#[derive(Debug, Default)]
struct EvalState {
    rules: BTreeMap<String, RuleEntry>,
    /// The rules of the last evaluation, for [`Evaluator::rule_states`].
    last_rules: Arc<RuleSet>,
    /// The last evaluation before a restart, until the first one after it.
    down_at_ms: Option<u64>,
    /// Removals a failed write left to do.
    unwritten_removals: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct RuleEntry {
    alerts: BTreeMap<Fingerprint, Tracked>,
    last_error: Option<String>,
    last_eval_ms: Option<u64>,
    eval_duration: Duration,
}

#[derive(Debug)]
struct Tracked {
    alert: Alert,
    /// The alert as last written to the store.
    written: Option<Alert>,
}

/// What a rule's query returned, by alert: labels and what was seen.
type Observed = BTreeMap<Fingerprint, (LabelSet, Seen)>;

impl Evaluator {
    /// An evaluator over the alert state kept in `store` ([`store::TREE`]), restoring the
    /// alerts of the last run: they are listed at once and continue at the next evaluation.
    /// Blocks on the store.
    ///
    /// # Errors
    /// [`EvalError::Restore`] when the tree can't be read.
    pub fn open(store: &Store, options: EvalOptions) -> Result<Self, EvalError> {
        let alert_store = AlertStore::open(store).map_err(EvalError::Restore)?;
        let restored = alert_store.restore().map_err(EvalError::Restore)?;
        let mut state = EvalState {
            down_at_ms: restored.last_eval_ms,
            ..EvalState::default()
        };
        let count = restored.alerts.len();
        for (rule, alert) in restored.alerts {
            let tracked = Tracked {
                written: Some(alert.clone()),
                alert,
            };
            state
                .rules
                .entry(rule)
                .or_default()
                .alerts
                .insert(tracked.alert.fingerprint(), tracked);
        }
        if count > 0 {
            tracing::info!(alerts = count, "alert state restored");
        }
        let snapshot = AlertSnapshot {
            at_ms: None,
            alerts: Arc::new(listed(&state)),
        };
        Ok(Self {
            engine: Engine::new(Limits {
                timeout: options.query_timeout,
                ..Limits::default()
            }),
            options,
            store: alert_store,
            evaluating: Mutex::new(()),
            state: Mutex::new(state),
            published: watch::Sender::new(snapshot),
        })
    }

    /// Evaluates every rule of `rules` at `now_ms` (ms since the Unix epoch) against
    /// `source`, advances every alert, writes the changes to the store (flush when
    /// [`EvalSummary::written`] is not zero) and publishes the alerts. Blocks on queries
    /// and the store: call it from `spawn_blocking`.
    ///
    /// # Errors
    /// [`EvalError::Persist`] when the store refused the changes; the evaluation itself
    /// took effect. Rule failures are not errors here: see [`Evaluator::rule_states`].
    pub fn evaluate(
        &self,
        rules: &Arc<RuleSet>,
        source: &dyn SeriesSource,
        now_ms: u64,
    ) -> Result<EvalSummary, EvalError> {
        let _one = lock(&self.evaluating);
        let results: Vec<_> = rules
            .rules()
            .iter()
            .map(|rule| {
                let started = Instant::now();
                let observed = self.observe(rule, source, now_ms);
                (rule, observed, started.elapsed())
            })
            .collect();

        let mut state = lock(&self.state);
        if let Some(down_at_ms) = state.down_at_ms.take() {
            for tracked in state.rules.values_mut().flat_map(|e| e.alerts.values_mut()) {
                state::shift_for_downtime(&mut tracked.alert, down_at_ms, now_ms);
            }
        }
        let mut removals: Vec<String> = std::mem::take(&mut state.unwritten_removals)
            .into_iter()
            .collect();
        let mut summary = EvalSummary::default();
        for (rule, observed, took) in results {
            let entry = state.rules.entry(rule.name().to_owned()).or_default();
            entry.last_eval_ms = Some(now_ms);
            entry.eval_duration = took;
            match observed {
                Ok(observed) => {
                    if entry.last_error.take().is_some() {
                        tracing::info!(rule = rule.name(), "alert rule evaluates again");
                    }
                    self.advance_rule(rule, entry, observed, now_ms, &mut removals);
                }
                Err(message) => {
                    summary.failed_rules += 1;
                    if entry.last_error.as_ref() != Some(&message) {
                        tracing::warn!(rule = rule.name(), error = %message, "alert rule evaluation failed");
                    }
                    entry.last_error = Some(message);
                }
            }
        }
        self.retire_gone_rules(&mut state, rules, now_ms, &mut removals);
        state.last_rules = Arc::clone(rules);

        let changed: Vec<(String, Alert)> = state
            .rules
            .iter()
            .flat_map(|(name, entry)| entry.alerts.values().map(move |t| (name, t)))
            .filter(|(_, t)| needs_write(t.written.as_ref(), &t.alert))
            .map(|(name, t)| (name.clone(), t.alert.clone()))
            .collect();
        let refs: Vec<(&str, &Alert)> = changed.iter().map(|(r, a)| (r.as_str(), a)).collect();
        let written = self.store.write(&refs, &removals, now_ms);
        match &written {
            Ok(()) => {
                for (rule, alert) in changed.iter() {
                    let tracked = state
                        .rules
                        .get_mut(rule)
                        .and_then(|e| e.alerts.get_mut(&alert.fingerprint()));
                    if let Some(tracked) = tracked {
                        tracked.written = Some(alert.clone());
                    }
                }
                summary.written = changed.len() + removals.len();
            }
            Err(_) => state.unwritten_removals.extend(removals),
        }

        let alerts = listed(&state);
        for alert in &alerts {
            match alert.state {
                AlertState::Pending => summary.pending += 1,
                AlertState::Firing => summary.firing += 1,
                AlertState::Resolved => summary.resolved += 1,
            }
        }
        drop(state);
        self.published.send_replace(AlertSnapshot {
            at_ms: Some(now_ms),
            alerts: Arc::new(alerts),
        });
        written.map_err(EvalError::Persist)?;
        Ok(summary)
    }

    /// Every alert listed: pending, firing, and resolved within retention, sorted by labels.
    pub fn alerts(&self) -> Vec<Alert> {
        self.published.borrow().alerts.as_ref().clone()
    }

    /// A receiver of the alerts after each evaluation.
    pub fn subscribe(&self) -> watch::Receiver<AlertSnapshot> {
        self.published.subscribe()
    }

    /// Runs `rule`'s query and turns each series into an alert's labels and annotations.
    fn observe(
        &self,
        rule: &Rule,
        source: &dyn SeriesSource,
        now_ms: u64,
    ) -> Result<Observed, String> {
        let at_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let samples = match self.engine.instant_query(source, rule.query(), at_ms) {
            Ok(Value::Vector(samples)) => samples,
            Ok(_) => return Err("the expression did not return an instant vector".to_owned()),
            Err(err) => return Err(err.to_string()),
        };
        let mut observed = Observed::new();
        for sample in samples {
            let series: LabelSet = sample
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            let data = TemplateData {
                labels: &series,
                value: sample.sample.value,
                external_url: &self.options.external_url,
            };
            let mut labels = series.clone();
            labels.remove(METRIC_NAME);
            for (name, template) in rule.labels() {
                let value = template.render(&data);
                if value.is_empty() {
                    labels.remove(name);
                } else {
                    labels.insert(name.clone(), value);
                }
            }
            labels.insert(ALERTNAME.to_owned(), rule.name().to_owned());
            let annotations = rule
                .annotations()
                .iter()
                .map(|(name, template)| (name.clone(), template.render(&data)))
                .collect();
            let fingerprint = Fingerprint::of(&labels);
            let seen = Seen {
                value: sample.sample.value,
                annotations,
            };
            if observed.insert(fingerprint, (labels, seen)).is_some() {
                return Err(format!(
                    "two series have the same labels after the rule's labels are applied: {}",
                    sample.labels
                ));
            }
        }
        Ok(observed)
    }

    /// Advances `rule`'s tracked alerts by what its query returned; starts new ones.
    fn advance_rule(
        &self,
        rule: &Rule,
        entry: &mut RuleEntry,
        mut observed: Observed,
        now_ms: u64,
        removals: &mut Vec<String>,
    ) {
        let timing = self.timing(rule);
        let url = generator_url(&self.options.external_url, rule.query().text());
        entry.alerts.retain(|fingerprint, tracked| {
            let seen = observed.remove(fingerprint).map(|(_, seen)| seen);
            match state::advance(&mut tracked.alert, seen, timing, now_ms, &url) {
                Outcome::Keep => true,
                Outcome::Drop => {
                    if tracked.written.is_some() {
                        removals.push(key(rule.name(), *fingerprint));
                    }
                    false
                }
            }
        });
        for (fingerprint, (labels, seen)) in observed {
            let alert = state::start(labels, seen, timing, now_ms, &url);
            entry.alerts.insert(
                fingerprint,
                Tracked {
                    alert,
                    written: None,
                },
            );
        }
    }

    /// Retires the alerts of rules no longer in `rules`, and forgets such rules once they
    /// have none.
    fn retire_gone_rules(
        &self,
        state: &mut EvalState,
        rules: &RuleSet,
        now_ms: u64,
        removals: &mut Vec<String>,
    ) {
        let timing = Timing {
            for_ms: 0,
            keep_firing_for_ms: 0,
            resolved_retention_ms: millis(self.options.resolved_retention),
        };
        state.rules.retain(|name, entry| {
            if rules.get(name).is_some() {
                return true;
            }
            entry.last_error = None;
            entry.alerts.retain(|fingerprint, tracked| {
                match state::retire(&mut tracked.alert, timing, now_ms) {
                    Outcome::Keep => true,
                    Outcome::Drop => {
                        if tracked.written.is_some() {
                            removals.push(key(name, *fingerprint));
                        }
                        false
                    }
                }
            });
            !entry.alerts.is_empty()
        });
    }

    fn timing(&self, rule: &Rule) -> Timing {
        Timing {
            for_ms: millis(rule.for_()),
            keep_firing_for_ms: millis(rule.keep_firing_for()),
            resolved_retention_ms: millis(self.options.resolved_retention),
        }
    }
}

/// Every tracked alert, sorted by labels.
fn listed(state: &EvalState) -> Vec<Alert> {
    let mut alerts: Vec<Alert> = state
        .rules
        .values()
        .flat_map(|e| e.alerts.values().map(|t| t.alert.clone()))
        .collect();
    alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
    alerts
}

/// A link to the rule's query in the collector, as Prometheus links its rules:
/// `{external_url}/graph?g0.expr=QUERY&g0.tab=1`.
pub fn generator_url(external_url: &str, query: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
    format!("{external_url}/graph?g0.expr={encoded}&g0.tab=1")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
