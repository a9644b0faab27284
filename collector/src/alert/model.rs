//! Alerts and notifications: the types the alerting stages hand each other.
//!
//! The evaluator makes [`Alert`]s, one per rule and label set, and keeps their state
//! ([`AlertState`]). The dispatcher turns groups of alerts into [`Notification`]s, one per
//! receiver and group, and the outbox stores those until a receiver took them. A
//! notification carries everything a receiver renders, so it can be delivered after a
//! restart without the alerts it came from.
//!
//! Times are milliseconds since the Unix epoch, as everywhere in the collector.

use serde::{Deserialize, Serialize};

use super::labels::{ALERTNAME, Fingerprint, LabelSet};

/// Where an alert is in its life (Prometheus's states, with resolved kept for a while so
/// receivers hear of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds, but not yet for the rule's `for`.
    Pending,
    /// The condition has held for `for` (or is kept by `keep_firing_for`).
    Firing,
    /// It fired and no longer does.
    Resolved,
}

impl AlertState {
    /// `pending`, `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert: a rule's result for one label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Identity: the series' labels, the rule's labels, and `alertname`.
    pub labels: LabelSet,
    /// Summary, description and the like, templates already expanded.
    pub annotations: LabelSet,
    /// The current state.
    pub state: AlertState,
    /// When the condition first held in this episode (the start of pending).
    pub active_at_ms: u64,
    /// When it fired; `None` while pending.
    pub fired_at_ms: Option<u64>,
    /// When it resolved; `None` unless resolved.
    pub resolved_at_ms: Option<u64>,
    /// The expression's value at the last evaluation that matched.
    pub value: f64,
    /// The last evaluation that saw the condition hold.
    pub last_active_ms: u64,
    /// A link to the collector's view of the rule's expression.
    pub generator_url: String,
}

impl Alert {
    /// Its fingerprint (of the labels only).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.labels)
    }

    /// The `alertname` label, `""` when missing.
    pub fn name(&self) -> &str {
        self.labels.get(ALERTNAME).map_or("", String::as_str)
    }

    /// `startsAt` as Alertmanager means it: when it fired, or became active if pending.
    pub fn starts_at_ms(&self) -> u64 {
        self.fired_at_ms.unwrap_or(self.active_at_ms)
    }
}

/// Whether a notification (or one alert in it) reports trouble or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyStatus {
    /// At least one alert fires.
    Firing,
    /// Every alert in it has resolved.
    Resolved,
}

impl NotifyStatus {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyStatus::Firing => "firing",
            NotifyStatus::Resolved => "resolved",
        }
    }
}

/// One alert as a notification reports it: a snapshot, so the message says what was true
/// when the dispatcher decided to send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifiedAlert {
    /// Firing or resolved.
    pub status: NotifyStatus,
    /// Its labels.
    pub labels: LabelSet,
    /// Its annotations.
    pub annotations: LabelSet,
    /// When it fired.
    pub starts_at_ms: u64,
    /// When it resolved; `None` while firing.
    pub ends_at_ms: Option<u64>,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// A link back to the rule.
    pub generator_url: String,
    /// Who acknowledged it, if someone did.
    pub acknowledged_by: Option<String>,
}

impl NotifiedAlert {
    /// A snapshot of `alert`; a pending alert is never notified, and is reported as firing
    /// if asked.
    pub fn of(alert: &Alert, acknowledged_by: Option<String>) -> Self {
        let resolved = alert.state == AlertState::Resolved;
        Self {
            status: if resolved {
                NotifyStatus::Resolved
            } else {
                NotifyStatus::Firing
            },
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at_ms: alert.starts_at_ms(),
            ends_at_ms: if resolved { alert.resolved_at_ms } else { None },
            fingerprint: alert.fingerprint(),
            generator_url: alert.generator_url.clone(),
            acknowledged_by,
        }
    }
}

/// What one receiver is told about one group at one moment. Stored in the outbox until
/// delivered; everything a receiver renders is in here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The receiver's name in the configuration.
    pub receiver: String,
    /// The group's stable key (route path and group labels). Receivers that can
    /// deduplicate or thread use it; it is the same for every notification of a group.
    pub group_key: String,
    /// The labels the group is formed by (the route's `group_by`).
    pub group_labels: LabelSet,
    /// Firing if any alert in it fires.
    pub status: NotifyStatus,
    /// The alerts, firing first, each sorted by labels.
    pub alerts: Vec<NotifiedAlert>,
    /// Alerts left out by the receiver's `max_alerts`.
    pub truncated_alerts: usize,
    /// The collector's external URL, for links.
    pub external_url: String,
    /// When the dispatcher made it.
    pub created_at_ms: u64,
    /// 0 for the route's receiver; 1 and up when escalation sent it on.
    pub escalation_level: u32,
}

impl Notification {
    /// The labels every alert in it shares (name and value), Alertmanager's `commonLabels`.
    pub fn common_labels(&self) -> LabelSet {
        common(self.alerts.iter().map(|a| &a.labels))
    }

    /// The annotations every alert shares, Alertmanager's `commonAnnotations`.
    pub fn common_annotations(&self) -> LabelSet {
        common(self.alerts.iter().map(|a| &a.annotations))
    }

    /// How many of its alerts fire.
    pub fn firing_count(&self) -> usize {
        self.alerts
            .iter()
            .filter(|a| a.status == NotifyStatus::Firing)
            .count()
    }

    /// How many of its alerts have resolved.
    pub fn resolved_count(&self) -> usize {
        self.alerts.len() - self.firing_count()
    }
}

/// The pairs present with the same value in every set; empty for no sets.
fn common<'a>(mut sets: impl Iterator<Item = &'a LabelSet>) -> LabelSet {
    let Some(first) = sets.next() else {
        return LabelSet::new();
    };
    let mut shared = first.clone();
    for set in sets {
        shared.retain(|name, value| set.get(name) == Some(value));
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(pairs: &[(&str, &str)], state: AlertState) -> Alert {
        Alert {
            labels: pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            annotations: LabelSet::from([("summary".to_owned(), "s".to_owned())]),
            state,
            active_at_ms: 1_000,
            fired_at_ms: (state != AlertState::Pending).then_some(2_000),
            resolved_at_ms: (state == AlertState::Resolved).then_some(3_000),
            value: 1.0,
            last_active_ms: 2_000,
            generator_url: String::new(),
        }
    }

    #[test]
    fn snapshots_report_times_as_alertmanager_expects() {
        let firing = NotifiedAlert::of(&alert(&[("alertname", "A")], AlertState::Firing), None);
        assert_eq!(firing.status, NotifyStatus::Firing);
        assert_eq!((firing.starts_at_ms, firing.ends_at_ms), (2_000, None));
        let resolved = NotifiedAlert::of(&alert(&[("alertname", "A")], AlertState::Resolved), None);
        assert_eq!(resolved.ends_at_ms, Some(3_000));
    }

    #[test]
    fn common_labels_are_shared_pairs_only() {
        let alerts = vec![
            NotifiedAlert::of(
                &alert(&[("alertname", "A"), ("host", "a")], AlertState::Firing),
                None,
            ),
            NotifiedAlert::of(
                &alert(&[("alertname", "A"), ("host", "b")], AlertState::Resolved),
                None,
            ),
        ];
        let n = Notification {
            receiver: "r".to_owned(),
            group_key: "{}:{alertname=\"A\"}".to_owned(),
            group_labels: LabelSet::new(),
            status: NotifyStatus::Firing,
            alerts,
            truncated_alerts: 0,
            external_url: String::new(),
            created_at_ms: 0,
            escalation_level: 0,
        };
        assert_eq!(
            n.common_labels(),
            LabelSet::from([("alertname".to_owned(), "A".to_owned())])
        );
        assert_eq!(n.common_annotations().len(), 1);
        assert_eq!((n.firing_count(), n.resolved_count()), (1, 1));
    }
}
