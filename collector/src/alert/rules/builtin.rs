//! The rules every collector has, on by default, each overridable by name under
//! `[alerting.builtin.NAME]` ([`BuiltinOverride`]): disable it, change its `for`,
//! `keep_firing_for`, threshold or severity, add labels, replace annotations.
//!
//! | name                 | fires when                                           | threshold (default)        | for  | severity |
//! |----------------------|------------------------------------------------------|----------------------------|------|----------|
//! | `HostDown`           | no pull of a host succeeded for the threshold        | seconds (30)               | 0s   | critical |
//! | `ProbeFailing`       | `muster_probe_healthy == 0`                          | —                          | 1m   | warning  |
//! | `FilesystemWillFill` | under 40% free and full within the threshold at the rate of the last 6h | seconds ahead (86400) | 15m | warning |
//! | `MemoryPressure`     | MemAvailable / MemTotal below the threshold          | ratio (0.1)                | 5m   | warning  |
//! | `ContainerRestarting`| the container started more than threshold times in 15m | count (2)                | 0s   | warning  |
//! | `ContainerUnhealthy` | its Docker health check reports unhealthy            | —                          | 1m   | warning  |
//! | `BackupOverdue`      | the last successful backup is older than the threshold | seconds (172800)         | 0s   | warning  |
//! | `BackupFailed`       | the last backup run failed                           | —                          | 0s   | warning  |
//! | `CertificateExpiring`| a probed TLS certificate expires within the threshold | seconds (1209600)         | 0s   | warning  |
//!
//! **Host down.** The collector stores `up{host}` at every pull, 1 or 0, stamped with the
//! pull's start. `up == 0` for 30 s would fire only 30 s after the first *failed* pull was
//! recorded — a pull interval and a timeout later than "no successful pull for 30 s" — so
//! the rule asks exactly that: `max_over_time(up[30s]) == 0`, no `for`. It needs at least
//! one recorded pull in the window, so the threshold must be at least twice the pull
//! interval (10 s by default); a host the collector stops pulling (removed, or the store
//! refusing writes) goes quiet rather than alerting for the whole fleet.
//!
//! **Series the rules expect.** From the agent: `up` (the collector's), node_exporter's
//! `node_filesystem_{avail,size}_bytes`, `node_filesystem_readonly`,
//! `node_memory_{MemAvailable,MemTotal}_bytes`; cAdvisor's `container_start_time_seconds`;
//! `muster_container_health{health}`; the probes' `muster_probe_healthy{probe,target}` and
//! blackbox_exporter's `probe_ssl_earliest_cert_expiry{probe,target}`. From the backup
//! feature, which is to emit them per backup with a `backup` label naming the backup:
//! `muster_backup_last_success_timestamp_seconds` (Unix seconds of the last successful run)
//! and `muster_backup_last_run_success` (1 or 0 for the last run). Every series carries
//! `host`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DisabledRule, Location, Rule, RuleDef, RuleError};
use crate::alert::labels::LabelSet;

/// How `[alerting.builtin.NAME]` changes one built-in rule. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltinOverride {
    /// `false` turns the rule off (a rule file may then define a rule of the same name).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Replaces the rule's `for`.
    #[serde(default, rename = "for")]
    pub for_: Option<muster_shared::config::Duration>,
    /// Replaces the rule's `keep_firing_for`.
    #[serde(default)]
    pub keep_firing_for: Option<muster_shared::config::Duration>,
    /// Replaces the rule's threshold, in the unit the rule documents (seconds, a ratio, a
    /// count). Only for rules that have one.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Replaces the `severity` label.
    #[serde(default)]
    pub severity: Option<String>,
    /// Added to the rule's labels (templates allowed), replacing same-named ones.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Added to the rule's annotations (templates allowed), replacing same-named ones.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The built-in rules' names, in evaluation order.
pub const BUILTIN_NAMES: [&str; 9] = [
    "HostDown",
    "ProbeFailing",
    "FilesystemWillFill",
    "MemoryPressure",
    "ContainerRestarting",
    "ContainerUnhealthy",
    "BackupOverdue",
    "BackupFailed",
    "CertificateExpiring",
];

/// The filesystems whose fill is not a disk filling: memory-backed, layered or read-only
/// images, namespaces.
const PSEUDO_FS: &str = r#"fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs""#;

/// A built-in rule's fixed parts; the threshold and `for` as overridden are filled in by
/// [`Builtin::def`].
struct Builtin {
    name: &'static str,
    severity: &'static str,
    for_secs: u64,
    /// The default threshold and what it is, for errors; `None`: the rule has none.
    threshold: Option<(f64, &'static str)>,
    /// Whether a threshold is acceptable.
    valid: fn(f64) -> bool,
    expr: fn(f64) -> String,
    summary: &'static str,
    description: fn(&Params) -> String,
}

/// What a description may mention.
struct Params {
    threshold: f64,
    for_: Duration,
}

fn any(_: f64) -> bool {
    true
}

fn positive(t: f64) -> bool {
    t > 0.0
}

const BUILTINS: [Builtin; 9] = [
    Builtin {
        name: "HostDown",
        severity: "critical",
        for_secs: 0,
        threshold: Some((30.0, "seconds without a successful pull, at least 1")),
        valid: |t| t >= 1.0,
        expr: |t| format!("max_over_time(up[{}]) == 0", promql_duration(t)),
        summary: "Host {{ $labels.host }} is down",
        description: |p| {
            format!(
                "No pull from {{{{ $labels.host }}}} has succeeded for {}: the agent is stopped, \
                 unreachable, or refusing the collector. GET /api/v1/hosts shows the last pull error.",
                span(p.threshold)
            )
        },
    },
    Builtin {
        name: "ProbeFailing",
        severity: "warning",
        for_secs: 60,
        threshold: None,
        valid: any,
        expr: |_| "muster_probe_healthy == 0".to_owned(),
        summary: "Probe {{ $labels.probe }} on {{ $labels.host }} is failing",
        description: |p| {
            format!(
                "Probe {{{{ $labels.probe }}}} of {{{{ $labels.target }}}}, run by {{{{ $labels.host }}}}, \
                 has failed for {}.",
                for_text(p.for_)
            )
        },
    },
    Builtin {
        name: "FilesystemWillFill",
        severity: "warning",
        for_secs: 15 * 60,
        threshold: Some((86_400.0, "seconds ahead, above 0")),
        valid: positive,
        expr: |t| {
            format!(
                "(node_filesystem_avail_bytes{{{PSEUDO_FS}}} / node_filesystem_size_bytes{{{PSEUDO_FS}}} < 0.4)\n\
                 and predict_linear(node_filesystem_avail_bytes{{{PSEUDO_FS}}}[6h], {t}) < 0\n\
                 unless node_filesystem_readonly == 1"
            )
        },
        summary: "Filesystem {{ $labels.mountpoint }} on {{ $labels.host }} is filling up",
        description: |p| {
            format!(
                "{{{{ $labels.mountpoint }}}} ({{{{ $labels.device }}}}, {{{{ $labels.fstype }}}}) on \
                 {{{{ $labels.host }}}} has {{{{ $value | humanizePercentage }}}} free and, at the \
                 rate of the last 6 hours, will be full within {}.",
                span(p.threshold)
            )
        },
    },
    Builtin {
        name: "MemoryPressure",
        severity: "warning",
        for_secs: 5 * 60,
        threshold: Some((0.1, "a ratio of available to total memory, between 0 and 1")),
        valid: |t| t > 0.0 && t < 1.0,
        expr: |t| format!("node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < {t}"),
        summary: "Memory pressure on {{ $labels.host }}",
        description: |p| {
            format!(
                "Only {{{{ $value | humanizePercentage }}}} of memory is available on \
                 {{{{ $labels.host }}}} (below {} for {}).",
                super::humanize::humanize_percentage(p.threshold),
                for_text(p.for_)
            )
        },
    },
    Builtin {
        name: "ContainerRestarting",
        severity: "warning",
        for_secs: 0,
        threshold: Some((2.0, "starts in 15 minutes, at least 0")),
        valid: |t| t >= 0.0,
        expr: |t| format!("changes(container_start_time_seconds[15m]) > {t}"),
        summary: "Container {{ $labels.name }} on {{ $labels.host }} is restarting",
        description: |p| {
            format!(
                "{{{{ $labels.name }}}} ({{{{ $labels.image }}}}) on {{{{ $labels.host }}}} started \
                 {{{{ $value }}}} times in the last 15 minutes (more than {}).",
                p.threshold
            )
        },
    },
    Builtin {
        name: "ContainerUnhealthy",
        severity: "warning",
        for_secs: 60,
        threshold: None,
        valid: any,
        expr: |_| r#"muster_container_health{health="unhealthy"} == 1"#.to_owned(),
        summary: "Container {{ $labels.name }} on {{ $labels.host }} is unhealthy",
        description: |p| {
            format!(
                "The health check of {{{{ $labels.name }}}} ({{{{ $labels.image }}}}) on \
                 {{{{ $labels.host }}}} has reported unhealthy for {}.",
                for_text(p.for_)
            )
        },
    },
    Builtin {
        name: "BackupOverdue",
        severity: "warning",
        for_secs: 0,
        threshold: Some((
            172_800.0,
            "seconds since the last successful backup, above 0",
        )),
        valid: positive,
        expr: |t| format!("time() - muster_backup_last_success_timestamp_seconds > {t}"),
        summary: "Backup {{ $labels.backup }} on {{ $labels.host }} is overdue",
        description: |p| {
            format!(
                "The last successful run of backup {{{{ $labels.backup }}}} on {{{{ $labels.host }}}} \
                 was {{{{ $value | humanizeDuration }}}} ago (more than {}).",
                span(p.threshold)
            )
        },
    },
    Builtin {
        name: "BackupFailed",
        severity: "warning",
        for_secs: 0,
        threshold: None,
        valid: any,
        expr: |_| "muster_backup_last_run_success == 0".to_owned(),
        summary: "Backup {{ $labels.backup }} on {{ $labels.host }} failed",
        description: |_| {
            "The last run of backup {{ $labels.backup }} on {{ $labels.host }} failed; \
             its job's status says why."
                .to_owned()
        },
    },
    Builtin {
        name: "CertificateExpiring",
        severity: "warning",
        for_secs: 0,
        threshold: Some((1_209_600.0, "seconds before expiry, above 0")),
        valid: positive,
        expr: |t| format!("probe_ssl_earliest_cert_expiry - time() < {t}"),
        summary: "Certificate of {{ $labels.target }} expires in {{ $value | humanizeDuration }}",
        description: |p| {
            format!(
                "The TLS certificate served by {{{{ $labels.target }}}} (probe {{{{ $labels.probe }}}} \
                 on {{{{ $labels.host }}}}) expires in {{{{ $value | humanizeDuration }}}}, within \
                 the {} warning window.",
                span(p.threshold)
            )
        },
    },
];

impl Builtin {
    /// The rule with `o` applied, or what is wrong with `o`.
    fn def(&self, o: &BuiltinOverride) -> Result<RuleDef, Vec<String>> {
        let mut problems = Vec::new();
        let threshold = match (self.threshold, o.threshold) {
            (None, None) => 0.0,
            (None, Some(_)) => {
                problems.push("threshold: this rule has no threshold".to_owned());
                0.0
            }
            (Some((default, _)), None) => default,
            (Some((_, what)), Some(t)) if !t.is_finite() || !(self.valid)(t) => {
                problems.push(format!("threshold {t}: must be {what}"));
                0.0
            }
            (Some(_), Some(t)) => t,
        };
        let severity = o.severity.as_deref().unwrap_or(self.severity);
        if severity.is_empty() {
            problems.push("severity: must not be empty".to_owned());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let for_ = o
            .for_
            .map_or(Duration::from_secs(self.for_secs), |d| d.get());
        let params = Params { threshold, for_ };
        let mut labels = LabelSet::from([("severity".to_owned(), severity.to_owned())]);
        labels.extend(o.labels.clone());
        let mut annotations = LabelSet::from([
            ("summary".to_owned(), self.summary.to_owned()),
            ("description".to_owned(), (self.description)(&params)),
        ]);
        annotations.extend(o.annotations.clone());
        Ok(RuleDef {
            name: self.name.to_owned(),
            expr: (self.expr)(threshold),
            condition: None,
            for_,
            keep_firing_for: o.keep_firing_for.map_or(Duration::ZERO, |d| d.get()),
            labels,
            annotations,
        })
    }
}

/// The built-in rules with `overrides` applied: the enabled ones, and the disabled ones'
/// names.
///
/// # Errors
/// Every problem: an override of a name that is not a built-in rule, a threshold on a rule
/// without one or out of its range, an empty severity, a bad label name or template.
pub fn builtin_rules(
    overrides: &BTreeMap<String, BuiltinOverride>,
) -> Result<(Vec<Rule>, Vec<DisabledRule>), Vec<RuleError>> {
    let mut errors: Vec<RuleError> = overrides
        .keys()
        .filter(|name| !BUILTIN_NAMES.contains(&name.as_str()))
        .map(|name| RuleError {
            location: Location::Builtin { name: name.clone() },
            message: format!(
                "[alerting.builtin.{name}]: no built-in rule of that name (they are {})",
                BUILTIN_NAMES.join(", ")
            ),
        })
        .collect();
    let mut rules = Vec::new();
    let mut disabled = Vec::new();
    let no_override = BuiltinOverride::default();
    for builtin in &BUILTINS {
        let o = overrides.get(builtin.name).unwrap_or(&no_override);
        let location = Location::Builtin {
            name: builtin.name.to_owned(),
        };
        let fail = |message: String| RuleError {
            location: location.clone(),
            message: format!("[alerting.builtin.{}] {message}", builtin.name),
        };
        let def = match builtin.def(o) {
            Ok(def) => def,
            Err(problems) => {
                errors.extend(problems.into_iter().map(fail));
                continue;
            }
        };
        match Rule::new(def, location.clone()) {
            Ok(_) if o.enabled == Some(false) => disabled.push(DisabledRule {
                name: builtin.name.to_owned(),
                location,
            }),
            Ok(rule) => rules.push(rule),
            Err(field_errors) => errors.extend(field_errors.into_iter().map(|e| fail(e.message))),
        }
    }
    if errors.is_empty() {
        Ok((rules, disabled))
    } else {
        Err(errors)
    }
}

/// What is wrong with `overrides`, one line each, for the config's own validation at start.
pub fn override_problems(overrides: &BTreeMap<String, BuiltinOverride>) -> Vec<String> {
    match builtin_rules(overrides) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| e.message).collect(),
    }
}

/// Seconds as a PromQL range: whole seconds as `30s`, else milliseconds.
fn promql_duration(seconds: f64) -> String {
    let ms = (seconds * 1000.0).round() as u64;
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Seconds as people say them in a sentence: `30s`, `5m`, `24h`, `14d`.
fn span(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 2 * 86_400 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s >= 3_600 && s.is_multiple_of(3_600) {
        format!("{}h", s / 3_600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{}s", super::humanize::format_g(seconds, Some(4)))
    }
}

fn for_text(d: Duration) -> String {
    if d.is_zero() {
        "at least one evaluation".to_owned()
    } else {
        span(d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests;
