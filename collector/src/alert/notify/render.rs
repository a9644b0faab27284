//! The message every chat receiver formats: a title and, per alert, who is at fault and
//! what is wrong, as plain text that each kind escapes and lays out for its platform.
//!
//! - Title: Alertmanager's default, `[FIRING:2] HostDown web1` or `[RESOLVED] HostDown web1`:
//!   the group labels' values, `alertname` first. When the group is not formed by
//!   `alertname`, the alerts' names come first (`[FIRING:2] ContainerUnhealthy, HostDown
//!   web1`), so a chat notification always says what fired. An escalated notification
//!   says so.
//! - Per alert: a heading naming the alert, the host and the container or probe at fault
//!   (`ContainerUnhealthy — host web1, container api`), then its summary, description,
//!   start (and end) time and who acknowledged it.
//!
//! Leaves out escaping and limits (each kind's), and the webhook and Alertmanager kinds,
//! which send labels as they are.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::alert::labels::{ALERTNAME, LabelSet};
use crate::alert::model::{Notification, NotifiedAlert, NotifyStatus};

/// Label naming the host of an alert; `instance` is used when it is missing.
const HOST_LABELS: &[&str] = &["host", "instance"];
/// Labels naming the container at fault: ours, then cAdvisor's.
const CONTAINER_LABELS: &[&str] = &["container", "name"];

/// How bad a message or an alert is; kinds map it to a colour, a priority or a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tone {
    /// Resolved.
    Resolved,
    /// Firing with `severity="info"` (or `none`).
    Info,
    /// Firing with `severity="warning"`, or without a known severity.
    Warning,
    /// Firing with `severity` `critical`, `error` or `page`.
    Critical,
}

/// What is at fault besides the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A container, by name.
    Container(String),
    /// A probe and, when known, its target.
    Probe {
        /// The probe's name (`probe` label); may be empty when only the target is known.
        probe: String,
        /// What it probes (`target` label).
        target: Option<String>,
    },
}

/// One alert as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertText {
    /// Firing or resolved.
    pub status: NotifyStatus,
    /// `alertname`.
    pub name: String,
    /// `severity`, when set.
    pub severity: Option<String>,
    /// The host at fault (`host`, else `instance`).
    pub host: Option<String>,
    /// The container or probe at fault.
    pub fault: Option<Fault>,
    /// The `summary` annotation.
    pub summary: Option<String>,
    /// The `description` annotation, when it says more than the summary.
    pub description: Option<String>,
    /// When it fired, `2024-05-01 12:00:00 UTC`.
    pub starts_at: String,
    /// When it fired, ms since the epoch.
    pub starts_at_ms: u64,
    /// When it resolved, same form.
    pub ends_at: Option<String>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// The link back to the rule, when it is an `http(s)` URL.
    pub link: Option<String>,
}

/// A notification as text, before a kind lays it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Firing or resolved.
    pub status: NotifyStatus,
    /// `[FIRING:2] HostDown web1`.
    pub title: String,
    /// The alerts, in the notification's order (firing first).
    pub alerts: Vec<AlertText>,
    /// Alerts the notification already left out (`truncated_alerts`).
    pub left_out: usize,
    /// The collector's external URL, when it is an `http(s)` URL.
    pub link: Option<String>,
}

impl Message {
    /// Renders `n`.
    pub fn of(n: &Notification) -> Self {
        Self {
            status: n.status,
            title: title(n),
            alerts: n.alerts.iter().map(AlertText::of).collect(),
            left_out: n.truncated_alerts,
            link: web_link(&n.external_url),
        }
    }

    /// The worst tone among the alerts (resolved when none fires).
    pub fn tone(&self) -> Tone {
        self.alerts
            .iter()
            .map(AlertText::tone)
            .max()
            .unwrap_or(Tone::Resolved)
    }

    /// The closing line when `shown` of the alerts made it into the message:
    /// `…and 3 more alerts`, or `None` when nothing was left out.
    pub fn more_line(&self, shown: usize) -> Option<String> {
        let more = self.alerts.len().saturating_sub(shown) + self.left_out;
        match more {
            0 => None,
            1 => Some("…and 1 more alert".to_owned()),
            n => Some(format!("…and {n} more alerts")),
        }
    }
}

impl AlertText {
    /// Renders one alert.
    pub fn of(alert: &NotifiedAlert) -> Self {
        let label = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| alert.labels.get(*n).filter(|v| !v.is_empty()))
                .cloned()
        };
        let annotation = |name: &str| {
            alert
                .annotations
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let fault = match (
            label(&["probe"]),
            label(&["target"]),
            label(CONTAINER_LABELS),
        ) {
            (Some(probe), target, _) => Some(Fault::Probe { probe, target }),
            (None, Some(target), _) => Some(Fault::Probe {
                probe: String::new(),
                target: Some(target),
            }),
            (None, None, Some(container)) => Some(Fault::Container(container)),
            (None, None, None) => None,
        };
        let summary = annotation("summary");
        let description = annotation("description").filter(|d| Some(d) != summary.as_ref());
        Self {
            status: alert.status,
            name: label(&[ALERTNAME]).unwrap_or_else(|| "alert".to_owned()),
            severity: label(&["severity"]),
            host: label(HOST_LABELS),
            fault,
            summary,
            description,
            starts_at: human_time(alert.starts_at_ms),
            starts_at_ms: alert.starts_at_ms,
            ends_at: alert.ends_at_ms.map(human_time),
            acknowledged_by: alert.acknowledged_by.clone().filter(|a| !a.is_empty()),
            link: web_link(&alert.generator_url),
        }
    }

    /// How bad it is.
    pub fn tone(&self) -> Tone {
        if self.status == NotifyStatus::Resolved {
            return Tone::Resolved;
        }
        match self
            .severity
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("critical" | "error" | "page") => Tone::Critical,
            Some("info" | "none") => Tone::Info,
            _ => Tone::Warning,
        }
    }

    /// `host web1, container api`, `host web1, probe api-health (https://api/health)`, or
    /// empty when the labels name neither.
    pub fn subject(&self) -> String {
        let mut parts = Vec::new();
        if let Some(host) = &self.host {
            parts.push(format!("host {host}"));
        }
        match &self.fault {
            Some(Fault::Container(name)) => parts.push(format!("container {name}")),
            Some(Fault::Probe { probe, target }) => match (probe.is_empty(), target) {
                (false, Some(target)) => parts.push(format!("probe {probe} ({target})")),
                (false, None) => parts.push(format!("probe {probe}")),
                (true, Some(target)) => parts.push(format!("target {target}")),
                (true, None) => {}
            },
            None => {}
        }
        parts.join(", ")
    }

    /// `ContainerUnhealthy — host web1, container api`.
    pub fn heading(&self) -> String {
        let subject = self.subject();
        if subject.is_empty() {
            self.name.clone()
        } else {
            format!("{} — {subject}", self.name)
        }
    }

    /// `critical`, `warning`, `firing` (no severity) or `resolved`: the word plain-text
    /// layouts put before the heading.
    pub fn state_word(&self) -> &str {
        match (self.status, &self.severity) {
            (NotifyStatus::Resolved, _) => "resolved",
            (NotifyStatus::Firing, Some(severity)) => severity,
            (NotifyStatus::Firing, None) => "firing",
        }
    }

    /// `Started 2024-05-01 12:00:00 UTC`, with `, resolved ...` when it ended.
    pub fn times(&self) -> String {
        match &self.ends_at {
            Some(end) => format!("Started {}, resolved {end}", self.starts_at),
            None => format!("Started {}", self.starts_at),
        }
    }

    /// The lines under the heading: summary, description, times, acknowledgement.
    pub fn details(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.extend(self.summary.clone());
        lines.extend(self.description.clone());
        lines.push(self.times());
        if let Some(who) = &self.acknowledged_by {
            lines.push(format!("Acknowledged by {who}"));
        }
        lines
    }

    /// Name and value pairs for platforms that lay an alert out as fields (Discord's
    /// embed fields, Teams' facts): host, the container or probe at fault, severity,
    /// times, acknowledgement.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts: Vec<(&'static str, String)> = Vec::new();
        if let Some(host) = &self.host {
            facts.push(("Host", host.clone()));
        }
        match &self.fault {
            Some(Fault::Container(name)) => facts.push(("Container", name.clone())),
            Some(Fault::Probe { probe, target }) => {
                if !probe.is_empty() {
                    facts.push(("Probe", probe.clone()));
                }
                if let Some(target) = target {
                    facts.push(("Target", target.clone()));
                }
            }
            None => {}
        }
        if let Some(severity) = &self.severity {
            facts.push(("Severity", severity.clone()));
        }
        facts.push(("Started", self.starts_at.clone()));
        if let Some(end) = &self.ends_at {
            facts.push(("Resolved", end.clone()));
        }
        if let Some(who) = &self.acknowledged_by {
            facts.push(("Acknowledged by", who.clone()));
        }
        facts
    }

    /// `[critical] ContainerUnhealthy — host web1, container api` and the details, one
    /// per line: the plain-text block of one alert.
    pub fn plain_text(&self) -> String {
        let mut text = format!("[{}] {}", self.state_word(), self.heading());
        for line in self.details() {
            text.push('\n');
            text.push_str(&line);
        }
        text
    }
}

/// Alertmanager's default title, with the alerts' names when the group labels lack them.
fn title(n: &Notification) -> String {
    let status = match n.status {
        NotifyStatus::Firing => format!("[FIRING:{}]", n.firing_count()),
        NotifyStatus::Resolved => "[RESOLVED]".to_owned(),
    };
    let mut words: Vec<String> = Vec::new();
    if !n.group_labels.contains_key(ALERTNAME) {
        let mut names: Vec<&str> = Vec::new();
        for alert in &n.alerts {
            let name = alert.labels.get(ALERTNAME).map_or("", String::as_str);
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        names.sort_unstable();
        if !names.is_empty() {
            words.push(names.join(", "));
        }
    }
    words.extend(group_values(&n.group_labels));
    let mut title = status;
    if !words.is_empty() {
        title.push(' ');
        title.push_str(&words.join(" "));
    }
    if n.escalation_level > 0 {
        title.push_str(&format!(" (escalation {})", n.escalation_level));
    }
    title
}

/// The values of `labels`, `alertname` first, then by name (Alertmanager's `SortedPairs`).
fn group_values(labels: &LabelSet) -> Vec<String> {
    let first = labels.get(ALERTNAME).filter(|v| !v.is_empty());
    first
        .into_iter()
        .chain(
            labels
                .iter()
                .filter(|(name, value)| name.as_str() != ALERTNAME && !value.is_empty())
                .map(|(_, value)| value),
        )
        .cloned()
        .collect()
}

/// `text` if it is an absolute `http` or `https` URL (platforms refuse other links).
fn web_link(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

/// `2024-05-01 12:00:00 UTC` for `ms` since the epoch.
pub fn human_time(ms: u64) -> String {
    datetime(ms).format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// RFC 3339 in UTC with a `Z`, fractional seconds only when there are some
/// (`2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.250Z`): Alertmanager's form.
pub fn rfc3339(ms: u64) -> String {
    datetime(ms).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn datetime(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::testkit;

    #[test]
    fn title_names_the_alerts_and_the_group() {
        let n = testkit::two_alerts();
        assert_eq!(
            Message::of(&n).title,
            "[FIRING:2] ContainerUnhealthy, HostDown web1"
        );
        let mut grouped = testkit::two_alerts();
        grouped.group_labels = LabelSet::from([
            ("host".to_owned(), "web1".to_owned()),
            ("alertname".to_owned(), "HostDown".to_owned()),
        ]);
        grouped.alerts.truncate(1);
        grouped.escalation_level = 1;
        assert_eq!(
            Message::of(&grouped).title,
            "[FIRING:1] HostDown web1 (escalation 1)"
        );
        let resolved = testkit::resolved();
        assert_eq!(Message::of(&resolved).title, "[RESOLVED] HostDown web1");
    }

    #[test]
    fn alerts_name_host_and_container_or_probe() {
        let message = Message::of(&testkit::two_alerts());
        let headings: Vec<String> = message.alerts.iter().map(AlertText::heading).collect();
        assert_eq!(
            headings,
            [
                "ContainerUnhealthy — host web1, container api",
                "HostDown — host web1",
            ]
        );
        let mut probe = testkit::two_alerts().alerts.remove(0);
        probe.labels.remove("container");
        probe.labels.insert("probe".into(), "api-health".into());
        probe
            .labels
            .insert("target".into(), "https://api.example/health".into());
        assert_eq!(
            AlertText::of(&probe).subject(),
            "host web1, probe api-health (https://api.example/health)"
        );
        probe.labels.remove("probe");
        probe.labels.remove("host");
        assert_eq!(
            AlertText::of(&probe).subject(),
            "target https://api.example/health"
        );
    }

    #[test]
    fn plain_text_block_carries_every_detail() {
        let mut n = testkit::two_alerts();
        n.alerts[0].acknowledged_by = Some("alice".into());
        let text = AlertText::of(&n.alerts[0]).plain_text();
        assert_eq!(
            text,
            "[warning] ContainerUnhealthy — host web1, container api\n\
             Container api on web1 is unhealthy\n\
             Its health check failed 3 times in a row.\n\
             Started 2024-05-01 12:00:00 UTC\n\
             Acknowledged by alice"
        );
    }

    #[test]
    fn tones_follow_severity_and_status() {
        let message = Message::of(&testkit::two_alerts());
        assert_eq!(message.alerts[0].tone(), Tone::Warning);
        assert_eq!(message.alerts[1].tone(), Tone::Critical);
        assert_eq!(message.tone(), Tone::Critical);
        assert_eq!(Message::of(&testkit::resolved()).tone(), Tone::Resolved);
    }

    #[test]
    fn more_line_counts_unshown_and_left_out_alerts() {
        let mut n = testkit::two_alerts();
        n.truncated_alerts = 2;
        let message = Message::of(&n);
        assert_eq!(message.more_line(2).as_deref(), Some("…and 2 more alerts"));
        assert_eq!(message.more_line(1).as_deref(), Some("…and 3 more alerts"));
        n.truncated_alerts = 0;
        assert_eq!(Message::of(&n).more_line(2), None);
        assert_eq!(
            Message::of(&n).more_line(1).as_deref(),
            Some("…and 1 more alert")
        );
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(human_time(1_714_564_800_000), "2024-05-01 12:00:00 UTC");
        assert_eq!(rfc3339(1_714_564_800_000), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339(1_714_564_800_250), "2024-05-01T12:00:00.250Z");
    }

    #[test]
    fn only_web_links_are_kept() {
        assert_eq!(web_link("javascript:alert(1)"), None);
        assert_eq!(web_link(""), None);
        assert_eq!(
            web_link("http://muster:9464/rules").as_deref(),
            Some("http://muster:9464/rules")
        );
    }
}
