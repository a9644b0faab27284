//! The dispatcher: the evaluator's current alerts in, notifications for the outbox out
//! (Alertmanager's `dispatch/` and notify pipeline, research §6).
//!
//! At each pass ([`Dispatcher::process`], once per evaluation and whenever
//! [`Dispatcher::next_due_ms`] comes) it
//! 1. reads the current acknowledgements (dropping lapsed ones) and active silences, and
//!    works out which alerts are inhibited;
//! 2. routes every firing or resolved alert (pending ones are never notified) to its route
//!    nodes and puts it in the node's aggregation group for its group labels; an alert that
//!    left the list is taken as resolved now; an escalating alert also joins the node's
//!    escalation group;
//! 3. flushes every group whose timer is due. A new group waits `group_wait`, then flushes
//!    every `group_interval`; a flush notifies only what the notification log says the
//!    receiver has not heard (new firing alerts, resolved ones if it wants them, or the
//!    whole group again once `repeat_interval` has passed since the last send, so repeats
//!    fall on a `group_interval` tick). Muting runs in Alertmanager's order: inhibition,
//!    quiet hours, silences, then the log's dedup. Resolved alerts a flush dealt with leave
//!    the group; an empty group disappears.
//!
//! Escalation (one level): on a route node with `escalate_to`, a firing alert matching
//! `escalate_matchers` and unacknowledged `escalate_after` after it fired joins the
//! node's escalation group, which notifies `escalate_to` at once when an alert joins
//! (`escalation_level = 1`), then behaves as any group with the node's intervals: its
//! alerts are repeated, and told when they resolve. An alert that escalated stays in
//! that group until it resolves, acknowledged or not (known from the group, or after a
//! restart from the log). The escalation receiver's own route is not consulted, so
//! escalation does not chain.
//!
//! Acknowledgements: an acknowledged alert carries `acknowledged_by`, does not escalate,
//! and a group whose firing alerts are all acknowledged is not repeated (changes are
//! still notified).
//!
//! # Durability and order (at-least-once)
//!
//! `process` keeps what it sent in the in-memory notification log; [`Dispatcher::commit`]
//! writes those entries to sled (tree `alert_nflog`) in one batch. The caller must make
//! the notifications durable first: put them in the outbox and flush the store, *then*
//! `commit` (and let the next flush make the log durable). A crash before the outbox
//! flush loses the pass but not the log's knowledge that nothing was sent, so the next
//! run sends again; a crash between the outbox flush and the log's flush sends the same
//! notification again after the restart: a duplicate, never a loss. When the outbox write
//! fails without a crash, [`Dispatcher::discard`] puts the dispatcher back where a restart
//! would, so nothing is lost then either.
//!
//! The server's loop is therefore: `process` (at each evaluation and at `next_due_ms`),
//! put the notifications in the outbox, flush the store, `commit`; on an outbox error,
//! `discard`.
//!
//! Every method blocks on sled: the server calls them from `spawn_blocking`.

mod group;
pub mod nflog;
mod policy;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};

use muster_shared::store::{Store, StoreError};

use self::group::{Group, GroupId, Mutes, group_key};
use self::nflog::NotificationLog;
pub use self::nflog::{DEFAULT_RETENTION_MS, NflogEntry};
pub use self::policy::ReceiverPolicy;
use super::ack::{Ack, AckError, AckStore};
use super::inhibit::{self, InhibitRuleConfig, Inhibitor};
use super::labels::Fingerprint;
use super::matcher::all_match;
use super::model::{Alert, AlertState, Notification};
use super::route::{Route, RouteConfig, RouteNode};
use super::silence::{self, SilenceError, SilenceStore};

/// How often the dispatcher removes old expired silences.
const SILENCE_GC_INTERVAL_MS: u64 = 3_600_000;

/// Everything the dispatcher is configured with; rebuilt by the server on a reload.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// The compiled routing tree.
    pub route: Route,
    /// Inhibition rules.
    pub inhibitor: Inhibitor,
    /// Per receiver name; a receiver missing here gets [`ReceiverPolicy::default`].
    pub receivers: HashMap<String, ReceiverPolicy>,
    /// The collector's external URL, put in every notification for links.
    pub external_url: String,
    /// How long a notification log entry outlives its group, ms. Default
    /// [`DEFAULT_RETENTION_MS`] (5 days); keep it above the longest `repeat_interval`.
    pub nflog_retention_ms: u64,
    /// How long an expired silence is kept, ms; the dispatcher removes older ones once
    /// an hour. Default [`silence::DEFAULT_RETENTION_MS`] (5 days).
    pub silence_retention_ms: u64,
}

impl DispatchSettings {
    /// Checks and compiles the `[alerting]` parts the dispatcher takes: the route (its
    /// receivers must be keys of `receivers`), the inhibition rules (after the built-in
    /// host-down rule when `inhibit_host_down`) and each receiver's quiet hours. Retentions
    /// take their defaults.
    ///
    /// # Errors
    /// Every problem found, each naming its key (`alerting.route.routes[0].receiver`,
    /// `alerting.inhibit_rules[1].equal`, `receivers.chat.quiet_hours`).
    pub fn new(
        route: &RouteConfig,
        inhibit_rules: &[InhibitRuleConfig],
        inhibit_host_down: bool,
        receivers: HashMap<String, ReceiverPolicy>,
        external_url: impl Into<String>,
    ) -> Result<Self, Vec<String>> {
        let mut names: Vec<&str> = receivers.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut problems = route.validate(&names);
        problems.extend(inhibit::problems(inhibit_rules));
        for name in &names {
            if let Some(q) = receivers.get(*name).and_then(|p| p.quiet_hours.as_ref()) {
                problems.extend(q.problems(&format!("receivers.{name}.quiet_hours")));
            }
        }
        let compiled = Route::compile(route, &names);
        match compiled {
            Ok(route) if problems.is_empty() => Ok(Self {
                route,
                inhibitor: Inhibitor::new(inhibit_rules, inhibit_host_down),
                receivers,
                external_url: external_url.into(),
                nflog_retention_ms: DEFAULT_RETENTION_MS,
                silence_retention_ms: silence::DEFAULT_RETENTION_MS,
            }),
            _ => Err(problems),
        }
    }
}

/// Why a dispatch pass failed. Nothing was sent and no state changed; the next pass
/// tries again.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The silences could not be read.
    #[error("dispatch could not read the silences")]
    Silences(#[from] SilenceError),
    /// The acknowledgements could not be read or pruned.
    #[error("dispatch could not read the acknowledgements")]
    Acks(#[from] AckError),
    /// The notification log could not be opened or written.
    #[error("notification log failed")]
    Log(#[from] StoreError),
}

/// Why an alert is not notified, as of the last pass (the API shows it beside the alert).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertMarks {
    /// Ids of the active silences that match it, sorted.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the firing alerts that inhibit it, sorted.
    pub inhibited_by: Vec<Fingerprint>,
    /// Who acknowledged it, if someone did.
    pub acknowledged_by: Option<String>,
}

/// The dispatcher (see the module docs).
///
/// ```
/// use std::collections::HashMap;
/// use muster_collector::alert::dispatch::{DispatchSettings, Dispatcher, ReceiverPolicy};
/// use muster_collector::alert::model::{Alert, AlertState};
/// use muster_collector::alert::route::RouteConfig;
/// use muster_shared::store::{Store, StoreOptions};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path(), StoreOptions::collector())?;
/// let route = RouteConfig { receiver: Some("chat".into()), ..Default::default() };
/// let receivers = HashMap::from([("chat".to_owned(), ReceiverPolicy::default())]);
/// let settings = DispatchSettings::new(&route, &[], true, receivers, "https://muster.example")
///     .map_err(|problems| problems.join("; "))?;
/// let mut dispatcher = Dispatcher::open(&store, settings)?;
///
/// let alert = Alert {
///     labels: [("alertname".to_owned(), "HostDown".to_owned())].into(),
///     annotations: Default::default(),
///     state: AlertState::Firing,
///     active_at_ms: 0,
///     fired_at_ms: Some(0),
///     resolved_at_ms: None,
///     value: 1.0,
///     last_active_ms: 0,
///     generator_url: String::new(),
/// };
/// // Fired a minute ago, past the default group_wait of 30 s: notified at once.
/// let notifications = dispatcher.process(60_000, &[alert])?;
/// assert_eq!(notifications[0].group_key, "{}:{}");
/// // outbox.put_all(&notifications)?; then:
/// store.flush()?;
/// dispatcher.commit()?;
/// assert_eq!(dispatcher.next_due_ms(), Some(60_000 + 5 * 60_000));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Dispatcher {
    settings: DispatchSettings,
    silences: SilenceStore,
    acks: AckStore,
    nflog: NotificationLog,
    groups: BTreeMap<GroupId, Group>,
    /// Resolved alerts a flush dropped, with their resolve time, so the evaluator's
    /// lingering copies do not form new groups; forgotten once the evaluator drops them.
    retired: HashMap<Fingerprint, u64>,
    marks: HashMap<Fingerprint, AlertMarks>,
    escalation_due_ms: Option<u64>,
    /// When expired silences were last removed.
    silence_gc_ms: Option<u64>,
}

impl Dispatcher {
    /// A dispatcher over `store`'s `alert_silences`, `alert_acks` and `alert_nflog` trees
    /// (the log is read whole).
    ///
    /// # Errors
    /// [`DispatchError::Log`] when a tree cannot be opened or the log read.
    pub fn open(store: &Store, settings: DispatchSettings) -> Result<Self, DispatchError> {
        Ok(Self {
            settings,
            silences: SilenceStore::open(store)?,
            acks: AckStore::open(store)?,
            nflog: NotificationLog::open(store)?,
            groups: BTreeMap::new(),
            retired: HashMap::new(),
            marks: HashMap::new(),
            escalation_due_ms: None,
            silence_gc_ms: None,
        })
    }

    /// Takes new settings (a config reload). Groups start afresh from the next pass; the
    /// notification log keeps the receivers from hearing again what they already heard.
    pub fn reconfigure(&mut self, settings: DispatchSettings) {
        self.settings = settings;
        self.groups.clear();
        self.retired.clear();
        self.escalation_due_ms = None;
    }

    /// One pass at `now_ms` (ms since the epoch) over `alerts`, the evaluator's whole
    /// current list: ingests them and flushes due groups. Returns the notifications to
    /// put in the outbox, in group order; then call [`Self::commit`] (module docs).
    ///
    /// # Errors
    /// [`DispatchError`] when silences or acknowledgements cannot be read; no group
    /// changed (lapsed acknowledgements may have been removed).
    pub fn process(
        &mut self,
        now_ms: u64,
        alerts: &[Alert],
    ) -> Result<Vec<Notification>, DispatchError> {
        let acks = self.acks.current(alerts, now_ms)?;
        let silences = self.silences.active(now_ms)?;
        let inhibited = self.settings.inhibitor.inhibited(alerts);
        let mut silenced: HashMap<Fingerprint, Vec<String>> = HashMap::new();
        for alert in alerts {
            let mut ids: Vec<String> = silences
                .iter()
                .filter(|s| s.matches(&alert.labels))
                .map(|s| s.id.clone())
                .collect();
            if !ids.is_empty() {
                ids.sort();
                silenced.insert(alert.fingerprint(), ids);
            }
        }
        self.mark(alerts, &acks, &inhibited, &silenced);
        self.ingest(now_ms, alerts, &acks);

        let mutes = Mutes {
            inhibited: &inhibited,
            silenced: &silenced,
            acks: &acks,
        };
        let default_policy = ReceiverPolicy::default();
        let mut notifications = Vec::new();
        for group in self
            .groups
            .values_mut()
            .filter(|g| g.next_flush_ms <= now_ms)
        {
            let policy = self
                .settings
                .receivers
                .get(&group.receiver)
                .unwrap_or(&default_policy);
            let flushed = group.flush(
                now_ms,
                policy,
                &mutes,
                &mut self.nflog,
                &self.settings.external_url,
            );
            notifications.extend(flushed.notification);
            self.retired.extend(flushed.retired);
        }
        self.groups.retain(|_, g| !g.alerts.is_empty());
        let live: HashSet<(&str, &str)> = self
            .groups
            .values()
            .map(|g| (g.receiver.as_str(), g.key.as_str()))
            .collect();
        self.nflog
            .gc(now_ms, self.settings.nflog_retention_ms, &live);
        self.collect_silences(now_ms);
        Ok(notifications)
    }

    /// Writes the notification log entries of the passes since the last commit, in one
    /// batch; returns how many entries it wrote. Call after the notifications are durable
    /// in the outbox (module docs). On error the entries stay pending.
    ///
    /// # Errors
    /// [`DispatchError::Log`].
    pub fn commit(&mut self) -> Result<usize, DispatchError> {
        Ok(self.nflog.commit()?)
    }

    /// Forgets the passes since the last commit, as a restart would: for when their
    /// notifications did not reach the outbox. The log is read again from the store and
    /// groups form afresh at the next pass, which sends again whatever the stored log
    /// does not show as sent.
    ///
    /// # Errors
    /// [`DispatchError::Log`] when the log cannot be read; call again before the next pass.
    pub fn discard(&mut self) -> Result<(), DispatchError> {
        self.groups.clear();
        self.retired.clear();
        self.escalation_due_ms = None;
        Ok(self.nflog.reload()?)
    }

    /// The earliest time a pass has work that the next evaluation may not bring soon
    /// enough: a group's flush, or an alert reaching its escalation delay. `None` when
    /// nothing is scheduled.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.groups
            .values()
            .map(|g| g.next_flush_ms)
            .chain(self.escalation_due_ms)
            .min()
    }

    /// Why the alert `fingerprint` was muted or who acknowledged it, as of the last pass;
    /// `None` when nothing applied.
    pub fn marks(&self, fingerprint: Fingerprint) -> Option<&AlertMarks> {
        self.marks.get(&fingerprint)
    }

    /// How many aggregation groups are live (for metrics).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Removes expired silences past their retention, once an hour. A failure is logged
    /// and tried again at the next pass: it does not stop notifications.
    fn collect_silences(&mut self, now_ms: u64) {
        if self
            .silence_gc_ms
            .is_some_and(|last| now_ms < last.saturating_add(SILENCE_GC_INTERVAL_MS))
        {
            return;
        }
        match self.silences.gc(now_ms, self.settings.silence_retention_ms) {
            Ok(removed) => {
                self.silence_gc_ms = Some(now_ms);
                if removed > 0 {
                    tracing::info!(removed, "removed expired silences");
                }
            }
            Err(err) => tracing::warn!(error = %err, "removing expired silences failed"),
        }
    }

    fn mark(
        &mut self,
        alerts: &[Alert],
        acks: &HashMap<Fingerprint, Ack>,
        inhibited: &HashMap<Fingerprint, Vec<Fingerprint>>,
        silenced: &HashMap<Fingerprint, Vec<String>>,
    ) {
        self.marks.clear();
        for alert in alerts {
            let fp = alert.fingerprint();
            let marks = AlertMarks {
                silenced_by: silenced.get(&fp).cloned().unwrap_or_default(),
                inhibited_by: inhibited.get(&fp).cloned().unwrap_or_default(),
                acknowledged_by: acks.get(&fp).map(|a| a.by.clone()),
            };
            if marks != AlertMarks::default() {
                self.marks.insert(fp, marks);
            }
        }
    }

    /// Routes `alerts` into groups (step 2 of the module docs).
    fn ingest(&mut self, now_ms: u64, alerts: &[Alert], acks: &HashMap<Fingerprint, Ack>) {
        let current: HashMap<Fingerprint, &Alert> = alerts
            .iter()
            .filter(|a| a.state != AlertState::Pending)
            .map(|a| (a.fingerprint(), a))
            .collect();
        self.retired.retain(|fp, at| {
            current.get(fp).is_some_and(|a| {
                a.state == AlertState::Resolved && a.resolved_at_ms.unwrap_or(now_ms) == *at
            })
        });
        // Alerts that left the list are resolved now.
        for group in self.groups.values_mut() {
            for (fp, alert) in &mut group.alerts {
                if !current.contains_key(fp) && alert.state != AlertState::Resolved {
                    alert.state = AlertState::Resolved;
                    alert.resolved_at_ms = Some(now_ms);
                }
            }
        }
        let mut ingest = Ingest {
            groups: &mut self.groups,
            retired: &self.retired,
            nflog: &self.nflog,
            acks,
            now_ms,
            escalation_due_ms: None,
        };
        for alert in current.values() {
            for node in self.settings.route.matching(&alert.labels) {
                let labels = node.group_by.group_labels(&alert.labels);
                let id = GroupId {
                    route: node.index,
                    escalation: false,
                    labels,
                };
                ingest.insert(id.clone(), node, alert);
                if node.escalation.is_some() {
                    ingest.escalate(id, node, alert);
                }
            }
        }
        self.escalation_due_ms = ingest.escalation_due_ms;
    }
}

/// One pass's view for putting alerts in groups.
struct Ingest<'a> {
    groups: &'a mut BTreeMap<GroupId, Group>,
    retired: &'a HashMap<Fingerprint, u64>,
    nflog: &'a NotificationLog,
    acks: &'a HashMap<Fingerprint, Ack>,
    now_ms: u64,
    escalation_due_ms: Option<u64>,
}

impl Ingest<'_> {
    /// Puts `alert` in group `id` of `node`, creating the group, unless it is a resolved
    /// alert already dealt with and not in the group.
    fn insert(&mut self, id: GroupId, node: &RouteNode, alert: &Alert) {
        let fp = alert.fingerprint();
        let retired = self.retired.contains_key(&fp);
        if let Some(group) = self.groups.get_mut(&id) {
            if !retired || group.alerts.contains_key(&fp) {
                group.insert(alert, self.now_ms);
            }
            return;
        }
        if retired {
            return;
        }
        let (receiver, escalation_level, group_wait_ms) = match (&node.escalation, id.escalation) {
            (Some(e), true) => (e.receiver.clone(), 1, 0),
            _ => (node.receiver.clone(), 0, node.group_wait_ms),
        };
        let mut group = Group {
            key: group_key(&node.key, &id.labels, id.escalation),
            receiver,
            labels: id.labels.clone(),
            escalation_level,
            group_wait_ms,
            group_interval_ms: node.group_interval_ms,
            repeat_interval_ms: node.repeat_interval_ms,
            alerts: BTreeMap::new(),
            next_flush_ms: self.now_ms.saturating_add(group_wait_ms),
            flushed: false,
        };
        group.insert(alert, self.now_ms);
        self.groups.insert(id, group);
    }

    /// Puts `alert` in the escalation group beside `base` if it escalates now or did
    /// before; otherwise notes when it will.
    fn escalate(&mut self, base: GroupId, node: &RouteNode, alert: &Alert) {
        let Some(escalation) = &node.escalation else {
            return;
        };
        let id = GroupId {
            escalation: true,
            ..base
        };
        let fp = alert.fingerprint();
        let member = self
            .groups
            .get(&id)
            .is_some_and(|g| g.alerts.contains_key(&fp))
            || self
                .nflog
                .get(
                    &escalation.receiver,
                    &group_key(&node.key, &id.labels, true),
                )
                .is_some_and(|e| e.firing.contains(&fp));
        let candidate =
            alert.state == AlertState::Firing && all_match(&escalation.matchers, &alert.labels);
        let due = alert.starts_at_ms().saturating_add(escalation.after_ms);
        let ack = self.acks.get(&fp);
        if member || (candidate && ack.is_none() && due <= self.now_ms) {
            self.insert(id, node, alert);
            return;
        }
        if candidate {
            // Unacknowledged: when its delay ends; acknowledged with an expiry: when that
            // lapses, if later.
            let at = match ack {
                None => Some(due),
                Some(a) => a.expires_at_ms.map(|e| e.max(due)),
            };
            if let Some(at) = at.filter(|at| *at > self.now_ms) {
                self.escalation_due_ms = Some(self.escalation_due_ms.map_or(at, |d| d.min(at)));
            }
        }
    }
}
