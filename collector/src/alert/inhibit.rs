//! Inhibition: a firing alert mutes others (Alertmanager's `inhibit_rules`, research §6).
//!
//! A rule (`[[alerting.inhibit_rules]]`) has `source_matchers`, `target_matchers` and
//! `equal`: an alert matching the target matchers is muted while some *firing* alert that
//! matches the source matchers has the same values for every `equal` label (a missing
//! label counts as `""`, so two alerts both without it are equal). An alert never
//! inhibits itself, even when it matches both sides. Pending and resolved alerts inhibit
//! nothing; a source that is itself silenced or inhibited still inhibits (Alertmanager's
//! rule: muting is about notifications, not about whether the problem exists).
//!
//! Built in, on unless turned off: a firing `HostDown` alert inhibits every other alert
//! with the same `host` label, so a host that is down pages once, not once per check.
//!
//! It owns the rules and the question "which alerts are inhibited, by which"; it leaves out
//! when muting happens (the dispatcher asks once per pass over the current alerts).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::labels::{Fingerprint, LabelSet, value_of};
use super::matcher::{Matcher, all_match};
use super::model::{Alert, AlertState};

/// The alert name of the built-in host-down rule.
pub const HOST_DOWN: &str = "HostDown";
/// The label the built-in host-down inhibition compares.
pub const HOST_LABEL: &str = "host";

/// One `[[alerting.inhibit_rules]]` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Which firing alerts inhibit (all must match).
    #[serde(default)]
    pub source_matchers: Vec<Matcher>,
    /// Which alerts are inhibited (all must match).
    #[serde(default)]
    pub target_matchers: Vec<Matcher>,
    /// Labels whose values must be the same in source and target.
    #[serde(default)]
    pub equal: Vec<String>,
}

impl InhibitRuleConfig {
    /// The built-in rule: `HostDown` inhibits every other alert with its `host`.
    pub fn host_down() -> Self {
        Self {
            source_matchers: Matcher::parse_list(&format!("alertname=\"{HOST_DOWN}\""))
                .unwrap_or_default(),
            target_matchers: Vec::new(),
            equal: vec![HOST_LABEL.to_owned()],
        }
    }
}

/// Every problem with the rules, each naming `alerting.inhibit_rules[i]`: empty source
/// matchers (every firing alert would inhibit) and invalid or repeated `equal` names.
pub fn problems(rules: &[InhibitRuleConfig]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let key = format!("alerting.inhibit_rules[{i}]");
        if rule.source_matchers.is_empty() {
            problems.push(format!(
                "{key}.source_matchers is empty: every firing alert would inhibit"
            ));
        }
        for (j, name) in rule.equal.iter().enumerate() {
            let mut chars = name.chars();
            let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                problems.push(format!("{key}.equal: invalid label name {name:?}"));
            }
            if rule.equal[..j].contains(name) {
                problems.push(format!("{key}.equal: {name:?} is listed twice"));
            }
        }
    }
    problems
}

/// The compiled inhibition rules.
#[derive(Debug, Clone, Default)]
pub struct Inhibitor {
    rules: Vec<InhibitRuleConfig>,
}

impl Inhibitor {
    /// The rules of `rules`, after the built-in host-down rule when `host_down` is set.
    pub fn new(rules: &[InhibitRuleConfig], host_down: bool) -> Self {
        let mut all = Vec::with_capacity(rules.len() + 1);
        if host_down {
            all.push(InhibitRuleConfig::host_down());
        }
        all.extend_from_slice(rules);
        Self { rules: all }
    }

    /// Which of `alerts` are inhibited, each with the fingerprints of the firing alerts
    /// that inhibit it (sorted, no repeats). One pass per rule over the alerts:
    /// O(rules × alerts).
    pub fn inhibited(&self, alerts: &[Alert]) -> HashMap<Fingerprint, Vec<Fingerprint>> {
        let mut muted: HashMap<Fingerprint, Vec<Fingerprint>> = HashMap::new();
        for rule in &self.rules {
            // Firing sources by their `equal` values.
            let mut sources: BTreeMap<Vec<&str>, Vec<Fingerprint>> = BTreeMap::new();
            for alert in alerts.iter().filter(|a| a.state == AlertState::Firing) {
                if all_match(&rule.source_matchers, &alert.labels) {
                    sources
                        .entry(equal_values(&rule.equal, &alert.labels))
                        .or_default()
                        .push(alert.fingerprint());
                }
            }
            if sources.is_empty() {
                continue;
            }
            for alert in alerts {
                if !all_match(&rule.target_matchers, &alert.labels) {
                    continue;
                }
                let Some(by) = sources.get(&equal_values(&rule.equal, &alert.labels)) else {
                    continue;
                };
                let me = alert.fingerprint();
                let others = by.iter().filter(|fp| **fp != me);
                let mut others = others.peekable();
                if others.peek().is_some() {
                    muted.entry(me).or_default().extend(others);
                }
            }
        }
        for by in muted.values_mut() {
            by.sort_unstable();
            by.dedup();
        }
        muted
    }
}

fn equal_values<'a>(names: &[String], labels: &'a LabelSet) -> Vec<&'a str> {
    names.iter().map(|n| value_of(labels, n)).collect()
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
            annotations: LabelSet::new(),
            state,
            active_at_ms: 0,
            fired_at_ms: (state != AlertState::Pending).then_some(0),
            resolved_at_ms: (state == AlertState::Resolved).then_some(1),
            value: 1.0,
            last_active_ms: 0,
            generator_url: String::new(),
        }
    }

    fn rule(source: &str, target: &str, equal: &[&str]) -> InhibitRuleConfig {
        InhibitRuleConfig {
            source_matchers: Matcher::parse_list(source).unwrap(),
            target_matchers: Matcher::parse_list(target).unwrap(),
            equal: equal.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    use AlertState::{Firing, Pending, Resolved};

    #[test]
    fn inhibits_like_alertmanager() {
        let down_web1 = alert(&[("alertname", "HostDown"), ("host", "web1")], Firing);
        let disk_web1 = alert(&[("alertname", "DiskFull"), ("host", "web1")], Firing);
        let disk_web2 = alert(&[("alertname", "DiskFull"), ("host", "web2")], Firing);
        let no_host = alert(&[("alertname", "Backup")], Firing);
        let crit = alert(
            &[("alertname", "Api"), ("severity", "critical"), ("zone", "")],
            Firing,
        );
        let warn_nozone = alert(&[("alertname", "Api"), ("severity", "warning")], Firing);
        let warn_zone = alert(
            &[("alertname", "Api"), ("severity", "warning"), ("zone", "a")],
            Firing,
        );
        let both = alert(
            &[
                ("alertname", "Loop"),
                ("severity", "critical"),
                ("zone", "z"),
            ],
            Firing,
        );
        let pending_down = alert(&[("alertname", "HostDown"), ("host", "db1")], Pending);
        let resolved_down = alert(&[("alertname", "HostDown"), ("host", "db2")], Resolved);
        let disk_db1 = alert(&[("alertname", "DiskFull"), ("host", "db1")], Firing);
        let disk_db2 = alert(&[("alertname", "DiskFull"), ("host", "db2")], Firing);
        let severity = rule(r#"severity="critical""#, r#"severity="warning""#, &["zone"]);
        let loops = rule(r#"alertname="Loop""#, r#"severity="critical""#, &[]);

        let cases: [(&str, Inhibitor, &Alert, Option<&Alert>); 10] = [
            (
                "host down mutes its host",
                Inhibitor::new(&[], true),
                &disk_web1,
                Some(&down_web1),
            ),
            (
                "not another host",
                Inhibitor::new(&[], true),
                &disk_web2,
                None,
            ),
            (
                "not an alert without host",
                Inhibitor::new(&[], true),
                &no_host,
                None,
            ),
            ("not itself", Inhibitor::new(&[], true), &down_web1, None),
            ("built-in off", Inhibitor::new(&[], false), &disk_web1, None),
            (
                "missing equals empty",
                Inhibitor::new(std::slice::from_ref(&severity), false),
                &warn_nozone,
                Some(&crit),
            ),
            (
                "different equal value",
                Inhibitor::new(&[severity], false),
                &warn_zone,
                None,
            ),
            (
                "self match is no inhibition",
                Inhibitor::new(&[loops], false),
                &both,
                None,
            ),
            (
                "a pending source inhibits nothing",
                Inhibitor::new(&[], true),
                &disk_db1,
                None,
            ),
            (
                "a resolved source inhibits nothing",
                Inhibitor::new(&[], true),
                &disk_db2,
                None,
            ),
        ];
        let all = [
            &down_web1,
            &disk_web1,
            &disk_web2,
            &no_host,
            &crit,
            &warn_nozone,
            &warn_zone,
            &both,
            &pending_down,
            &resolved_down,
            &disk_db1,
            &disk_db2,
        ]
        .map(Clone::clone);
        for (name, inhibitor, target, by) in cases {
            let muted = inhibitor.inhibited(&all);
            let got = muted.get(&target.fingerprint()).cloned();
            assert_eq!(got, by.map(|s| vec![s.fingerprint()]), "{name}");
        }
    }

    #[test]
    fn problems_name_the_rule() {
        let rules = [rule("", "a=\"b\"", &["host", "9x", "host"])];
        let p = problems(&rules);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("alerting.inhibit_rules[0].source_matchers is empty"));
        assert!(problems(&[InhibitRuleConfig::host_down()]).is_empty());
    }

    #[test]
    fn rules_load_from_toml() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            inhibit_rules: Vec<InhibitRuleConfig>,
        }
        let text = "[[inhibit_rules]]\nsource_matchers = [\"severity=critical\"]\n\
                    target_matchers = [\"severity=~\\\"warning|info\\\"\"]\nequal = [\"host\"]\n";
        let file: File = muster_shared::config::parse(text, "c.toml".as_ref()).unwrap();
        assert_eq!(
            file.inhibit_rules[0].target_matchers[0].value(),
            "warning|info"
        );
    }
}
