//! One aggregation group: the alerts one route node sends one receiver under one set of
//! group labels, with its flush timer, and what a flush tells the receiver.
//!
//! A flush (Alertmanager's `aggrGroup.flush` and notify pipeline in one) takes the
//! group's alerts, leaves out the muted ones in Alertmanager's order (inhibited, then
//! held by quiet hours, then silenced), asks the notification log whether the receiver
//! must hear of the rest ([`super::nflog::needs_update`]), builds the notification if so,
//! and drops the resolved alerts it has dealt with. Alerts held by quiet hours stay,
//! resolved or not, so they are told when the window ends.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::alert::ack::Ack;
use crate::alert::labels::{Fingerprint, LabelSet};
use crate::alert::model::{Alert, AlertState, Notification, NotifiedAlert, NotifyStatus};
use crate::alert::quiet::is_critical;

use super::nflog::{Found, NflogEntry, NotificationLog, needs_update};
use super::policy::ReceiverPolicy;

/// A group's identity within one compiled route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct GroupId {
    /// The route node's index.
    pub route: usize,
    /// Whether this is the node's escalation group.
    pub escalation: bool,
    /// The group labels.
    pub labels: LabelSet,
}

/// The key a group is known by outside: `ROUTE_KEY:{name="value",...}`, with
/// `/escalation` after it for an escalation group. Stable across restarts.
pub(super) fn group_key(route_key: &str, labels: &LabelSet, escalation: bool) -> String {
    let mut key = format!("{route_key}:{{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(name);
        key.push_str("=\"");
        for c in value.chars() {
            match c {
                '"' => key.push_str("\\\""),
                '\\' => key.push_str("\\\\"),
                '\n' => key.push_str("\\n"),
                c => key.push(c),
            }
        }
        key.push('"');
    }
    key.push('}');
    if escalation {
        let _ = write!(key, "/escalation");
    }
    key
}

/// What muting knows of the current alerts, shared by every flush of one pass.
#[derive(Debug)]
pub(super) struct Mutes<'a> {
    /// Inhibited alerts.
    pub inhibited: &'a HashMap<Fingerprint, Vec<Fingerprint>>,
    /// Silenced alerts.
    pub silenced: &'a HashMap<Fingerprint, Vec<String>>,
    /// Current acknowledgements.
    pub acks: &'a HashMap<Fingerprint, Ack>,
}

/// One aggregation group.
#[derive(Debug)]
pub(super) struct Group {
    pub receiver: String,
    pub key: String,
    pub labels: LabelSet,
    pub escalation_level: u32,
    pub group_wait_ms: u64,
    pub group_interval_ms: u64,
    pub repeat_interval_ms: u64,
    pub alerts: BTreeMap<Fingerprint, Alert>,
    pub next_flush_ms: u64,
    /// Whether it has flushed once (its first flush waits `group_wait`).
    pub flushed: bool,
}

/// What a flush produced.
#[derive(Debug, Default)]
pub(super) struct Flushed {
    /// The notification, when the receiver must hear of the group.
    pub notification: Option<Notification>,
    /// Resolved alerts dealt with and dropped: fingerprint and resolve time.
    pub retired: Vec<(Fingerprint, u64)>,
}

impl Group {
    /// Adds or refreshes `alert` at `now_ms`. A new alert in a group that has not flushed
    /// yet and that fired `group_wait` ago or earlier (a restart, or a late evaluation)
    /// brings the flush forward to now, as Alertmanager does; a new alert in an
    /// escalation group is told at once.
    pub fn insert(&mut self, alert: &Alert, now_ms: u64) {
        let fp = alert.fingerprint();
        let new = self.alerts.insert(fp, alert.clone()).is_none();
        let overdue = alert.starts_at_ms().saturating_add(self.group_wait_ms) <= now_ms;
        if new && (self.escalation_level > 0 || (!self.flushed && overdue)) {
            self.next_flush_ms = self.next_flush_ms.min(now_ms);
        }
    }

    /// Flushes at `now_ms` (see the module docs). Records what it sent in `nflog`.
    pub fn flush(
        &mut self,
        now_ms: u64,
        policy: &ReceiverPolicy,
        mutes: &Mutes<'_>,
        nflog: &mut NotificationLog,
        external_url: &str,
    ) -> Flushed {
        // The receiver's window and its end, if it is quiet now.
        let quiet = policy
            .quiet_hours
            .as_ref()
            .and_then(|q| q.quiet_until(now_ms).map(|until| (q, until)));
        let mut firing = Vec::new();
        let mut resolved = Vec::new();
        let mut held = BTreeSet::new();
        for (fp, alert) in &self.alerts {
            if mutes.inhibited.contains_key(fp) {
                continue;
            }
            if quiet.is_some_and(|(q, _)| !(q.allow_critical && is_critical(&alert.labels))) {
                held.insert(*fp);
                continue;
            }
            if mutes.silenced.contains_key(fp) {
                continue;
            }
            if alert.state == AlertState::Resolved {
                resolved.push(alert);
            } else {
                firing.push(alert);
            }
        }
        let mut flushed = Flushed::default();
        if !firing.is_empty() || !resolved.is_empty() {
            let firing_set: BTreeSet<Fingerprint> =
                firing.iter().map(|a| a.fingerprint()).collect();
            let resolved_set: BTreeSet<Fingerprint> =
                resolved.iter().map(|a| a.fingerprint()).collect();
            let found = Found {
                firing: &firing_set,
                resolved: &resolved_set,
                send_resolved: policy.send_resolved,
                repeat_interval_ms: self.repeat_interval_ms,
                may_repeat: policy.repeat_acknowledged
                    || !firing_set.iter().all(|fp| mutes.acks.contains_key(fp)),
            };
            if needs_update(nflog.get(&self.receiver, &self.key), &found, now_ms) {
                if !firing.is_empty() || policy.send_resolved {
                    let told = if policy.send_resolved {
                        resolved.as_slice()
                    } else {
                        &[]
                    };
                    flushed.notification =
                        Some(self.notification(now_ms, &firing, told, policy, mutes, external_url));
                }
                nflog.record(NflogEntry {
                    receiver: self.receiver.clone(),
                    group_key: self.key.clone(),
                    firing: firing_set.into_iter().collect(),
                    resolved: resolved_set.into_iter().collect(),
                    sent_at_ms: now_ms,
                });
            }
        }
        self.alerts.retain(|fp, alert| {
            let done = alert.state == AlertState::Resolved && !held.contains(fp);
            if done {
                flushed
                    .retired
                    .push((*fp, alert.resolved_at_ms.unwrap_or(now_ms)));
            }
            !done
        });
        self.flushed = true;
        self.next_flush_ms = now_ms.saturating_add(self.group_interval_ms);
        if let Some((_, end)) = quiet.filter(|_| !held.is_empty()) {
            self.next_flush_ms = self.next_flush_ms.min(end);
        }
        flushed
    }

    fn notification(
        &self,
        now_ms: u64,
        firing: &[&Alert],
        resolved: &[&Alert],
        policy: &ReceiverPolicy,
        mutes: &Mutes<'_>,
        external_url: &str,
    ) -> Notification {
        let mut firing = firing.to_vec();
        let mut resolved = resolved.to_vec();
        firing.sort_by(|a, b| a.labels.cmp(&b.labels));
        resolved.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut alerts: Vec<NotifiedAlert> = firing
            .iter()
            .chain(&resolved)
            .map(|a| NotifiedAlert::of(a, mutes.acks.get(&a.fingerprint()).map(|k| k.by.clone())))
            .collect();
        let mut truncated_alerts = 0;
        if policy.max_alerts > 0 && alerts.len() > policy.max_alerts {
            truncated_alerts = alerts.len() - policy.max_alerts;
            alerts.truncate(policy.max_alerts);
        }
        Notification {
            receiver: self.receiver.clone(),
            group_key: self.key.clone(),
            group_labels: self.labels.clone(),
            status: if firing.is_empty() {
                NotifyStatus::Resolved
            } else {
                NotifyStatus::Firing
            },
            alerts,
            truncated_alerts,
            external_url: external_url.to_owned(),
            created_at_ms: now_ms,
            escalation_level: self.escalation_level,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keys_are_alertmanagers_and_readable() {
        let labels = LabelSet::from([
            ("alertname".to_owned(), "HostDown".to_owned()),
            ("host".to_owned(), "web\"1".to_owned()),
        ]);
        assert_eq!(
            group_key("{}/{severity=\"critical\"}", &labels, false),
            r#"{}/{severity="critical"}:{alertname="HostDown",host="web\"1"}"#
        );
        assert_eq!(group_key("{}", &LabelSet::new(), true), "{}:{}/escalation");
    }
}
