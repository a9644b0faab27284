//! `[alerting]` in `collector.toml`: rules, routing, receivers and the outbox in one table.
//!
//! The rule keys are [`AlertingRulesConfig`]'s, repeated here because serde cannot flatten
//! a struct into one that refuses unknown keys; [`AlertingConfig::rules`] hands them over.
//! [`AlertingConfig::problems`] checks every part and names each problem's key.
//!
//! Without receivers, rules are still evaluated and alerts listed by the API; nothing is
//! sent. With receivers but no `[alerting.route]`, one receiver gets everything (with a
//! route's default timings); two or more need a route.

use std::collections::{BTreeMap, HashMap};

use muster_shared::config::Duration;
use serde::{Deserialize, Serialize};

use super::dispatch::{DispatchSettings, ReceiverPolicy};
use super::inhibit::InhibitRuleConfig;
use super::notify::ReceiverKind;
use super::notify::config::ReceiverConfig;
use super::outbox::OutboxConfig;
use super::route::RouteConfig;
use super::rules::builtin::BuiltinOverride;
use super::rules::config::AlertingRulesConfig;

/// HostDown's window when neither the config nor a long pull interval changes it.
const DEFAULT_HOST_DOWN_SECONDS: f64 = 30.0;

/// `[alerting]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// Rule files: globs relative to `collector.toml`'s folder. Default none (built-in
    /// rules only).
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// How often rules are evaluated. Default `"5s"`, at least `"1s"`.
    #[serde(default = "defaults::evaluation_interval")]
    pub evaluation_interval: Duration,
    /// How often rule files are checked for changes (`"0s"`: only on SIGHUP or
    /// `POST /api/v1/rules/reload`). Default `"5s"`.
    #[serde(default = "defaults::reload_interval")]
    pub reload_interval: Duration,
    /// How long a resolved alert stays listed with the active ones. Default `"15m"`.
    #[serde(default = "defaults::resolved_retention")]
    pub resolved_retention: Duration,
    /// The longest one rule's query may run. Default `"10s"`.
    #[serde(default = "defaults::query_timeout")]
    pub query_timeout: Duration,
    /// The collector's URL as people reach it, for links in notifications. Default: the
    /// API's own URL.
    #[serde(default)]
    pub external_url: String,
    /// Overrides of built-in rules by name (`[alerting.builtin.HostDown]`).
    #[serde(default)]
    pub builtin: BTreeMap<String, BuiltinOverride>,
    /// The routing tree.
    #[serde(default)]
    pub route: Option<RouteConfig>,
    /// Inhibition rules (`[[alerting.inhibit_rules]]`).
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// A firing `HostDown` mutes the host's other alerts. Default `true`.
    #[serde(default = "defaults::yes")]
    pub inhibit_host_down: bool,
    /// Where notifications go (`[[alerting.receivers]]`).
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Delivery retries and dead letters (`[alerting.outbox]`).
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// How long ended alert episodes stay searchable. Default `"30d"`.
    #[serde(default = "defaults::history_retention")]
    pub history_retention: Duration,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        let rules = AlertingRulesConfig::default();
        Self {
            rule_files: rules.rule_files,
            evaluation_interval: rules.evaluation_interval,
            reload_interval: rules.reload_interval,
            resolved_retention: rules.resolved_retention,
            query_timeout: rules.query_timeout,
            external_url: rules.external_url,
            builtin: rules.builtin,
            route: None,
            inhibit_rules: Vec::new(),
            inhibit_host_down: true,
            receivers: Vec::new(),
            outbox: OutboxConfig::default(),
            history_retention: defaults::history_retention(),
        }
    }
}

impl AlertingConfig {
    /// The rule evaluator's part.
    pub fn rules(&self) -> AlertingRulesConfig {
        AlertingRulesConfig {
            rule_files: self.rule_files.clone(),
            evaluation_interval: self.evaluation_interval,
            reload_interval: self.reload_interval,
            resolved_retention: self.resolved_retention,
            query_timeout: self.query_timeout,
            external_url: self.external_url.clone(),
            builtin: self.builtin.clone(),
        }
    }

    /// Widens `HostDown`'s window to two pulls when the pull interval is long and the
    /// threshold was left at its default (30 s), so a collector pulling every minute keeps
    /// the rule instead of refusing its config. A threshold set by hand is left alone (and
    /// [`AlertingConfig::problems`] says if it is too short).
    pub fn adapt_to_pull_interval(&mut self, pull_interval: std::time::Duration) {
        let needed = (2.0 * pull_interval.as_secs_f64()).ceil();
        if needed <= DEFAULT_HOST_DOWN_SECONDS {
            return;
        }
        let entry = self.builtin.entry("HostDown".to_owned()).or_default();
        if entry.threshold.is_none() {
            entry.threshold = Some(needed);
        }
    }

    /// The route in force: the configured one, or everything to the only receiver.
    pub fn effective_route(&self) -> Option<RouteConfig> {
        match (&self.route, self.receivers.as_slice()) {
            (Some(route), _) => Some(route.clone()),
            (None, [only]) => Some(RouteConfig {
                receiver: Some(only.name.clone()),
                ..RouteConfig::default()
            }),
            (None, _) => None,
        }
    }

    /// The dispatcher's settings; `None` when there are no receivers (nothing is sent).
    ///
    /// # Errors
    /// Every problem of the route, the inhibition rules and the quiet hours.
    pub fn dispatch_settings(
        &self,
        external_url: &str,
    ) -> Result<Option<DispatchSettings>, Vec<String>> {
        if self.receivers.is_empty() && self.route.is_none() {
            return Ok(None);
        }
        let Some(route) = self.effective_route() else {
            return Err(vec![
                "alerting.route is required when more than one receiver is configured".to_owned(),
            ]);
        };
        let receivers: HashMap<String, ReceiverPolicy> = self
            .receivers
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    ReceiverPolicy {
                        send_resolved: r.send_resolved,
                        quiet_hours: r.quiet_hours.clone(),
                        max_alerts: r.max_alerts,
                        // Alertmanager ends an alert whose lease is not renewed.
                        repeat_acknowledged: r.kind == ReceiverKind::Alertmanager,
                    },
                )
            })
            .collect();
        DispatchSettings::new(
            &route,
            &self.inhibit_rules,
            self.inhibit_host_down,
            receivers,
            external_url,
        )
        .map(Some)
    }

    /// Every problem of `[alerting]`, each naming its key; empty when it is valid.
    /// `pull_interval` is the scrape interval (the host-down rule must span two pulls).
    pub fn problems(&self, pull_interval: std::time::Duration) -> Vec<String> {
        let rules = self.rules();
        let mut problems = rules.problems();
        problems.extend(rules.host_down_problem(pull_interval));
        problems.extend(super::notify::config::problems(
            "alerting.receivers",
            &self.receivers,
        ));
        problems.extend(self.outbox.problems("alerting.outbox"));
        match self.dispatch_settings("") {
            Err(found) => problems.extend(found),
            Ok(Some(settings)) => problems.extend(self.lease_problems(&settings)),
            Ok(None) => {}
        }
        if self.history_retention.get().is_zero() {
            problems.push("alerting.history_retention must be above zero".to_owned());
        }
        problems
    }
}

impl AlertingConfig {
    /// Alertmanager ends a pushed alert when its lease (`endsAt`) passes without a new
    /// push, so a route to an `alertmanager` receiver must notify again within a quarter
    /// of the lease (research §6: re-send well before it lapses).
    fn lease_problems(&self, settings: &DispatchSettings) -> Vec<String> {
        let mut problems = Vec::new();
        for receiver in &self.receivers {
            if receiver.kind != ReceiverKind::Alertmanager {
                continue;
            }
            let quarter_ms = u64::try_from(receiver.lease().as_millis() / 4).unwrap_or(u64::MAX);
            for node in settings.route.nodes() {
                let escalates_here = node
                    .escalation
                    .as_ref()
                    .is_some_and(|e| e.receiver == receiver.name);
                if node.receiver != receiver.name && !escalates_here {
                    continue;
                }
                if node.group_interval_ms > quarter_ms || node.repeat_interval_ms > quarter_ms {
                    problems.push(format!(
                        "alerting.route {}: receiver {:?} is an Alertmanager with a {} lease, so \
                         group_interval and repeat_interval must be at most {} (a quarter of it), \
                         or it resolves alerts that still fire",
                        node.key,
                        receiver.name,
                        humantime::format_duration(receiver.lease()),
                        humantime::format_duration(std::time::Duration::from_millis(quarter_ms)),
                    ));
                }
            }
        }
        problems
    }
}

mod defaults {
    use muster_shared::config::Duration;

    use crate::alert::rules::config::AlertingRulesConfig;

    pub fn evaluation_interval() -> Duration {
        AlertingRulesConfig::default().evaluation_interval
    }
    pub fn reload_interval() -> Duration {
        AlertingRulesConfig::default().reload_interval
    }
    pub fn resolved_retention() -> Duration {
        AlertingRulesConfig::default().resolved_retention
    }
    pub fn query_timeout() -> Duration {
        AlertingRulesConfig::default().query_timeout
    }
    pub fn history_retention() -> Duration {
        Duration::from_secs(30 * 24 * 3600)
    }
    pub fn yes() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn parse(text: &str) -> AlertingConfig {
        muster_shared::config::parse(text, Path::new("collector.toml")).unwrap()
    }

    #[test]
    fn host_down_widens_with_a_long_pull_interval_unless_set() {
        let mut config = parse("");
        config.adapt_to_pull_interval(Duration::from_secs(10));
        assert!(config.builtin.is_empty(), "30 s spans two 10 s pulls");
        assert!(config.problems(Duration::from_secs(10)).is_empty());

        config.adapt_to_pull_interval(Duration::from_secs(60));
        assert_eq!(config.builtin["HostDown"].threshold, Some(120.0));
        assert!(config.problems(Duration::from_secs(60)).is_empty());

        let mut set = parse("[builtin.HostDown]\nthreshold = 30\n");
        set.adapt_to_pull_interval(Duration::from_secs(60));
        assert_eq!(set.builtin["HostDown"].threshold, Some(30.0));
        let problems = set.problems(Duration::from_secs(60));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("alerting.builtin.HostDown.threshold")),
            "{problems:?}"
        );
    }

    #[test]
    fn alertmanager_routes_must_repeat_within_a_quarter_of_the_lease() {
        let config = parse(
            "[[receivers]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\n\
             [route]\nreceiver = \"am\"\n",
        );
        let problems = config.problems(Duration::from_secs(10));
        assert!(
            problems.iter().any(|p| p.contains("a quarter of it")),
            "{problems:?}"
        );
        let config = parse(
            "[[receivers]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\n\
             [route]\nreceiver = \"am\"\ngroup_interval = \"30s\"\nrepeat_interval = \"1m\"\n",
        );
        assert!(config.problems(Duration::from_secs(10)).is_empty());
    }
}
