//! The keys of `collector.toml`'s `[alerting]` table that rules and their evaluation own.
//!
//! ```toml
//! [alerting]
//! rule_files = ["rules/*.toml"]      # relative to collector.toml's folder
//! evaluation_interval = "5s"
//! reload_interval = "5s"
//! resolved_retention = "15m"
//! query_timeout = "10s"
//! external_url = "https://muster.example.com"
//!
//! [alerting.builtin.HostDown]
//! threshold = 60                     # seconds without a successful pull
//! severity = "page"
//!
//! [alerting.builtin.BackupOverdue]
//! enabled = false
//! ```
//!
//! Leaves out the rest of `[alerting]` (routes, receivers, silences), which other parts own.

use std::collections::BTreeMap;

use muster_shared::config::Duration;
use serde::{Deserialize, Serialize};

use super::builtin::{BuiltinOverride, override_problems};

/// Rule files, built-in rule overrides and evaluation timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingRulesConfig {
    /// Rule files: paths or glob patterns (`*`, `?`, `[...]`; no `**`), relative to the
    /// folder of `collector.toml`. A pattern matching no file is fine; a plain path that
    /// does not exist is an error. Default: none (built-in rules only).
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// How often every rule is evaluated. Default `"5s"`, at least `"1s"`.
    #[serde(default = "default_evaluation_interval")]
    pub evaluation_interval: Duration,
    /// How often rule files are checked for changes (path, size, modification time); a
    /// changed set is reloaded. SIGHUP and the API reload at once. Default `"5s"`; `"0s"`
    /// turns the check off.
    #[serde(default = "default_reload_interval")]
    pub reload_interval: Duration,
    /// How long a resolved alert is still listed (and handed to notification) after it
    /// resolved. Default `"15m"`.
    #[serde(default = "default_resolved_retention")]
    pub resolved_retention: Duration,
    /// The longest one rule's query may run. Default `"10s"`, at most the evaluation
    /// interval is wise: rules are evaluated one after another.
    #[serde(default = "default_query_timeout")]
    pub query_timeout: Duration,
    /// The collector's URL as people reach it: `{{ $externalURL }}` in templates and the
    /// base of each alert's link to its rule's query. Default: empty.
    #[serde(default)]
    pub external_url: String,
    /// Built-in rules changed by name (see [`super::builtin`]).
    #[serde(default)]
    pub builtin: BTreeMap<String, BuiltinOverride>,
}

impl Default for AlertingRulesConfig {
    fn default() -> Self {
        Self {
            rule_files: Vec::new(),
            evaluation_interval: default_evaluation_interval(),
            reload_interval: default_reload_interval(),
            resolved_retention: default_resolved_retention(),
            query_timeout: default_query_timeout(),
            external_url: String::new(),
            builtin: BTreeMap::new(),
        }
    }
}

impl AlertingRulesConfig {
    /// Every problem the keys have, each naming its key (for the config's `validate()`).
    /// Rule files themselves are checked when they load.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.evaluation_interval.get() < std::time::Duration::from_secs(1) {
            problems.push("alerting.evaluation_interval must be at least 1s".to_owned());
        }
        if self.query_timeout.get().is_zero() {
            problems.push("alerting.query_timeout must be above zero".to_owned());
        }
        if self.rule_files.iter().any(|p| p.trim().is_empty()) {
            problems.push("alerting.rule_files: a pattern is empty".to_owned());
        }
        problems.extend(
            override_problems(&self.builtin)
                .into_iter()
                .map(|p| format!("alerting.builtin: {p}")),
        );
        problems
    }

    /// A problem with `HostDown`'s threshold for hosts pulled every `pull_interval`: its
    /// window must hold at least two pulls, or a down host's alert flaps (see
    /// [`super::builtin`]). For the server to log or refuse at start; `None` when fine or
    /// the rule is disabled.
    pub fn host_down_problem(&self, pull_interval: std::time::Duration) -> Option<String> {
        let o = self.builtin.get("HostDown");
        if o.and_then(|o| o.enabled) == Some(false) {
            return None;
        }
        let threshold = o.and_then(|o| o.threshold).unwrap_or(30.0);
        let needed = 2.0 * pull_interval.as_secs_f64();
        (threshold < needed).then(|| {
            format!(
                "alerting.builtin.HostDown.threshold ({threshold} s) must be at least twice \
                 scrape.interval ({needed} s) for the rule to see a pull in its window"
            )
        })
    }
}

fn default_evaluation_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_resolved_retention() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_query_timeout() -> Duration {
    Duration::from_secs(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> AlertingRulesConfig {
        muster_shared::config::parse(text, Path::new("collector.toml")).unwrap()
    }

    #[test]
    fn defaults_and_every_key() {
        assert_eq!(parse(""), AlertingRulesConfig::default());
        let c = parse(
            r#"
rule_files = ["rules/*.toml"]
evaluation_interval = "10s"
reload_interval = "0s"
resolved_retention = "1h"
query_timeout = "3s"
external_url = "https://m.example"
[builtin.HostDown]
threshold = 60
severity = "page"
[builtin.BackupOverdue]
enabled = false
"#,
        );
        assert_eq!(c.rule_files, ["rules/*.toml"]);
        assert_eq!(c.evaluation_interval, Duration::from_secs(10));
        assert_eq!(c.builtin["HostDown"].threshold, Some(60.0));
        assert_eq!(c.builtin["BackupOverdue"].enabled, Some(false));
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn host_down_needs_two_pulls_in_its_window() {
        let ten = std::time::Duration::from_secs(10);
        assert_eq!(parse("").host_down_problem(ten), None);
        assert_eq!(
            parse("").host_down_problem(ten * 2).as_deref(),
            Some(
                "alerting.builtin.HostDown.threshold (30 s) must be at least twice scrape.interval (40 s) for the rule to see a pull in its window"
            )
        );
        let off = parse("[builtin.HostDown]\nenabled = false\n");
        assert_eq!(off.host_down_problem(ten * 6), None);
    }

    #[test]
    fn problems_name_their_keys() {
        let c = parse(
            r#"
evaluation_interval = "100ms"
[builtin.HostDwn]
enabled = false
[builtin.BackupFailed]
threshold = 3
"#,
        );
        assert_eq!(
            c.problems(),
            [
                "alerting.evaluation_interval must be at least 1s",
                "alerting.builtin: [alerting.builtin.HostDwn]: no built-in rule of that name (they are HostDown, ProbeFailing, FilesystemWillFill, MemoryPressure, ContainerRestarting, ContainerUnhealthy, BackupOverdue, BackupFailed, CertificateExpiring)",
                "alerting.builtin: [alerting.builtin.BackupFailed] threshold: this rule has no threshold",
            ]
        );
    }
}
