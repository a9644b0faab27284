//! How each rule is doing, as the API shows it: Prometheus's rule health, the last error,
//! when and how long it last ran, and its alerts by state.

use serde::Serialize;

use crate::alert::labels::LabelSet;
use crate::alert::model::AlertState;
use crate::alert::rules::Location;

use super::{Evaluator, lock};

/// How a rule's last evaluation went (Prometheus's rule `health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleHealth {
    /// Not evaluated yet.
    Unknown,
    /// The last evaluation succeeded.
    Ok,
    /// The last evaluation failed; see `last_error`.
    Err,
    /// The rule is disabled (`enabled = false`).
    Disabled,
}

/// One rule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStatus {
    /// The rule's name.
    pub name: String,
    /// The query evaluated (the expression with its threshold).
    pub query: String,
    /// `for`, in seconds.
    pub for_seconds: f64,
    /// `keep_firing_for`, in seconds.
    pub keep_firing_for_seconds: f64,
    /// Label templates.
    pub labels: LabelSet,
    /// Annotation templates.
    pub annotations: LabelSet,
    /// Where it is defined.
    pub location: Location,
    /// How its last evaluation went.
    pub health: RuleHealth,
    /// The last evaluation's error, if it failed.
    pub last_error: Option<String>,
    /// When it was last evaluated, ms since the Unix epoch.
    pub last_eval_ms: Option<u64>,
    /// How long that took, in seconds.
    pub eval_duration_seconds: f64,
    /// Its pending alerts.
    pub pending: usize,
    /// Its firing alerts.
    pub firing: usize,
}

impl Evaluator {
    /// Every rule of the last evaluation, then the disabled ones, with how its last
    /// evaluation went and how many alerts it has.
    pub fn rule_states(&self) -> Vec<RuleStatus> {
        let state = lock(&self.state);
        let mut out = Vec::new();
        for rule in state.last_rules.rules() {
            let entry = state.rules.get(rule.name());
            let count = |s: AlertState| {
                entry.map_or(0, |e| {
                    e.alerts.values().filter(|t| t.alert.state == s).count()
                })
            };
            let last_error = entry.and_then(|e| e.last_error.clone());
            let last_eval_ms = entry.and_then(|e| e.last_eval_ms);
            let health = match (&last_error, last_eval_ms) {
                (Some(_), _) => RuleHealth::Err,
                (None, Some(_)) => RuleHealth::Ok,
                (None, None) => RuleHealth::Unknown,
            };
            out.push(RuleStatus {
                name: rule.name().to_owned(),
                query: rule.query().text().to_owned(),
                for_seconds: rule.for_().as_secs_f64(),
                keep_firing_for_seconds: rule.keep_firing_for().as_secs_f64(),
                labels: rule.def().labels.clone(),
                annotations: rule.def().annotations.clone(),
                location: rule.location().clone(),
                health,
                last_error,
                last_eval_ms,
                eval_duration_seconds: entry.map_or(0.0, |e| e.eval_duration.as_secs_f64()),
                pending: count(AlertState::Pending),
                firing: count(AlertState::Firing),
            });
        }
        for disabled in state.last_rules.disabled() {
            out.push(RuleStatus {
                name: disabled.name.clone(),
                query: String::new(),
                for_seconds: 0.0,
                keep_firing_for_seconds: 0.0,
                labels: LabelSet::new(),
                annotations: LabelSet::new(),
                location: disabled.location.clone(),
                health: RuleHealth::Disabled,
                last_error: None,
                last_eval_ms: None,
                eval_duration_seconds: 0.0,
                pending: 0,
                firing: 0,
            });
        }
        out
    }
}
