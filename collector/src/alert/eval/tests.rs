//! The evaluator end to end: rules from rule-file text, series in a [`MemorySource`], an
//! explicit clock, and the alert state in a temp store that can be closed and reopened.

use std::path::Path;

use muster_shared::store::StoreOptions;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::alert::rules::file::parse_rule_file;
use crate::alert::rules::reload::{LoadedRules, RuleSource};
use crate::query::MemorySource;
use crate::series::{Labels, Sample};

const SEC: u64 = 1_000;

/// `load > 1` per host, `for` 20 s, with a label and annotations from templates.
const LOAD: &str = r#"
[[rule]]
name = "HighLoad"
expr = "load"
op = ">"
threshold = 1
for = "20s"
labels = { severity = "warning" }
annotations = { summary = "load {{ $value }} on {{ $labels.host }}" }
"#;

fn rules(text: &str) -> Arc<RuleSet> {
    let parsed = parse_rule_file(text, Path::new("test.toml")).expect("valid rules");
    Arc::new(RuleSet::new(parsed.rules, parsed.disabled).expect("unique names"))
}

struct Harness {
    dir: tempfile::TempDir,
    store: Store,
    evaluator: Evaluator,
    source: MemorySource,
    options: EvalOptions,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), StoreOptions::collector()).expect("store");
        let options = EvalOptions {
            resolved_retention: Duration::from_secs(60),
            external_url: "https://m.example".to_owned(),
            ..EvalOptions::default()
        };
        let evaluator = Evaluator::open(&store, options.clone()).expect("evaluator");
        Self {
            dir,
            store,
            evaluator,
            source: MemorySource::new(),
            options,
        }
    }

    /// Stops the collector (flushing, as the loop does) and starts it again on the same
    /// store; the series stay.
    fn restart(self) -> Self {
        self.store.flush().expect("flush");
        let Harness {
            dir,
            store,
            evaluator,
            source,
            options,
        } = self;
        drop(evaluator);
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::collector()).expect("reopen");
        let evaluator = Evaluator::open(&store, options.clone()).expect("evaluator");
        Self {
            dir,
            store,
            evaluator,
            source,
            options,
        }
    }

    /// Records `load{host}` values at `t_s`, evaluates `set` then, and returns each alert as
    /// `host=state`.
    fn step(&self, set: &Arc<RuleSet>, t_s: u64, loads: &[(&str, f64)]) -> Vec<String> {
        for (host, value) in loads {
            let labels = Labels::from_pairs([("__name__", "load"), ("host", host)]);
            let sample = Sample {
                timestamp_ms: i64::try_from(t_s * SEC).expect("small"),
                value: *value,
            };
            self.source.add(&labels, sample).expect("in order");
        }
        self.evaluator
            .evaluate(set, &self.source, t_s * SEC)
            .expect("evaluation");
        self.states()
    }

    fn states(&self) -> Vec<String> {
        self.evaluator
            .alerts()
            .iter()
            .map(|a| {
                format!(
                    "{}:{}={}",
                    a.name(),
                    a.labels.get("host").map_or("", String::as_str),
                    a.state.as_str()
                )
            })
            .collect()
    }

    fn alert(&self, host: &str) -> Alert {
        self.evaluator
            .alerts()
            .into_iter()
            .find(|a| a.labels.get("host").map(String::as_str) == Some(host))
            .unwrap_or_else(|| panic!("no alert for {host}"))
    }
}

/// Runs a table of `(time s, load of host a, expected states)` against `text`.
fn table(text: &str, steps: &[(u64, f64, &[&str])]) -> Harness {
    let harness = Harness::new();
    let set = rules(text);
    for (i, (t, load, want)) in steps.iter().enumerate() {
        let got = harness.step(&set, *t, &[("a", *load)]);
        assert_eq!(got, *want, "step {i} at {t}s");
    }
    harness
}

#[test]
fn pending_then_firing_then_resolved_with_labels_and_annotations() {
    let h = table(
        LOAD,
        &[
            (0, 0.5, &[]),
            (5, 2.0, &["HighLoad:a=pending"]),
            (20, 3.0, &["HighLoad:a=pending"]),
            (25, 4.0, &["HighLoad:a=firing"]),
            (30, 0.5, &["HighLoad:a=resolved"]),
        ],
    );
    let alert = h.alert("a");
    assert_eq!(
        alert.labels,
        LabelSet::from([
            ("alertname".to_owned(), "HighLoad".to_owned()),
            ("host".to_owned(), "a".to_owned()),
            ("severity".to_owned(), "warning".to_owned()),
        ]),
        "series labels without __name__, the rule's labels, alertname"
    );
    assert_eq!(alert.annotations["summary"], "load 4 on a");
    assert_eq!(alert.value, 4.0);
    assert_eq!(
        (alert.active_at_ms, alert.fired_at_ms, alert.resolved_at_ms),
        (5 * SEC, Some(25 * SEC), Some(30 * SEC))
    );
    assert_eq!(
        alert.generator_url,
        "https://m.example/graph?g0.expr=%28load%29+%3E+1&g0.tab=1"
    );
    // Resolved alerts are listed for the retention (60 s), then forgotten.
    let set = rules(LOAD);
    assert_eq!(h.step(&set, 90, &[("a", 0.5)]), ["HighLoad:a=resolved"]);
    assert!(h.step(&set, 91, &[("a", 0.5)]).is_empty());
}

#[test]
fn flapping_within_for_restarts_pending() {
    let h = table(
        LOAD,
        &[
            (0, 2.0, &["HighLoad:a=pending"]),
            (10, 2.0, &["HighLoad:a=pending"]),
            (15, 0.0, &[]),
            (20, 2.0, &["HighLoad:a=pending"]),
            (35, 2.0, &["HighLoad:a=pending"]),
            (40, 2.0, &["HighLoad:a=firing"]),
        ],
    );
    assert_eq!(h.alert("a").active_at_ms, 20 * SEC);
}

#[test]
fn keep_firing_for_holds_through_a_gap() {
    let text = LOAD.replace("for = \"20s\"", "keep_firing_for = \"15s\"");
    table(
        &text,
        &[
            (0, 2.0, &["HighLoad:a=firing"]),
            (5, 0.0, &["HighLoad:a=firing"]),
            (10, 2.0, &["HighLoad:a=firing"]),
            (20, 0.0, &["HighLoad:a=firing"]),
            (25, 0.0, &["HighLoad:a=resolved"]),
        ],
    );
}

#[test]
fn without_for_an_alert_fires_at_the_first_match() {
    let text = LOAD.replace("for = \"20s\"", "");
    table(&text, &[(0, 2.0, &["HighLoad:a=firing"])]);
}

#[test]
fn a_pending_alert_survives_a_restart_and_fires_when_its_for_is_served() {
    let h = Harness::new();
    let set = rules(LOAD);
    assert_eq!(h.step(&set, 0, &[("a", 2.0)]), ["HighLoad:a=pending"]);
    assert_eq!(h.step(&set, 10, &[("a", 2.0)]), ["HighLoad:a=pending"]);
    // Down from 10 s to 40 s: 10 s of pending before, none during.
    let h = h.restart();
    assert_eq!(
        h.states(),
        ["HighLoad:a=pending"],
        "listed before any evaluation"
    );
    assert_eq!(h.step(&set, 40, &[("a", 2.0)]), ["HighLoad:a=pending"]);
    assert_eq!(h.alert("a").active_at_ms, 30 * SEC);
    assert_eq!(h.step(&set, 45, &[("a", 2.0)]), ["HighLoad:a=pending"]);
    assert_eq!(h.step(&set, 50, &[("a", 2.0)]), ["HighLoad:a=firing"]);
}

#[test]
fn a_firing_alert_survives_a_restart_without_firing_anew() {
    let text = LOAD.replace("for = \"20s\"", "");
    let h = Harness::new();
    let set = rules(&text);
    h.step(&set, 0, &[("a", 2.0), ("b", 2.0)]);
    h.step(&set, 5, &[("a", 2.0), ("b", 0.0)]);
    let before = h.alert("a");
    let h = h.restart();
    assert_eq!(h.states(), ["HighLoad:a=firing", "HighLoad:b=resolved"]);
    assert_eq!(
        h.step(&set, 60, &[("a", 2.0), ("b", 0.0)]),
        ["HighLoad:a=firing", "HighLoad:b=resolved"]
    );
    let after = h.alert("a");
    assert_eq!(after.fired_at_ms, before.fired_at_ms, "the same episode");
    assert_eq!(after.active_at_ms, before.active_at_ms);
}

#[test]
fn alerts_of_a_rule_gone_across_a_restart_are_retired() {
    let text = LOAD.replace("for = \"20s\"", "");
    let h = Harness::new();
    h.step(&rules(&text), 0, &[("a", 2.0)]);
    let h = h.restart();
    assert_eq!(
        h.step(&rules(""), 5, &[("a", 2.0)]),
        ["HighLoad:a=resolved"]
    );
}

#[test]
fn only_changes_are_written() {
    let h = Harness::new();
    let set = rules(LOAD);
    let step = |t: u64, load: f64| {
        h.source
            .add(
                &Labels::from_pairs([("__name__", "load"), ("host", "a")]),
                Sample {
                    timestamp_ms: i64::try_from(t * SEC).expect("small"),
                    value: load,
                },
            )
            .expect("in order");
        h.evaluator
            .evaluate(&set, &h.source, t * SEC)
            .expect("evaluation")
    };
    assert_eq!(step(0, 2.0).written, 1, "new pending alert");
    assert_eq!(step(5, 3.0).written, 0, "value only");
    assert_eq!(step(25, 3.0).written, 1, "fired");
    assert_eq!(step(30, 0.0).written, 1, "resolved");
    assert_eq!(step(200, 0.0).written, 1, "removed after retention");
    assert_eq!(step(205, 0.0), EvalSummary::default());
}

#[test]
fn a_rule_removed_by_reload_resolves_its_firing_alerts_and_drops_pending_ones() {
    let both = format!("{}\n{}", LOAD.replace("for = \"20s\"", ""), SLOW);
    let h = Harness::new();
    let set = rules(&both);
    h.step(&set, 0, &[("a", 2.0)]);
    assert_eq!(h.states(), ["HighLoad:a=firing", "SlowLoad:a=pending"]);
    let none = rules("");
    assert_eq!(h.step(&none, 5, &[("a", 2.0)]), ["HighLoad:a=resolved"]);
    assert_eq!(h.alert("a").resolved_at_ms, Some(5 * SEC));
    assert!(
        h.step(&none, 70, &[("a", 2.0)]).is_empty(),
        "past retention"
    );
}

const SLOW: &str = r#"
[[rule]]
name = "SlowLoad"
expr = "load > 1"
for = "1h"
"#;

#[test]
fn a_failing_rule_is_recorded_and_the_others_go_on() {
    // `host` replaced by a constant: both hosts' alerts would have the same labels.
    let broken = r#"
[[rule]]
name = "Collides"
expr = "load > 1"
labels = { host = "all" }
"#;
    let h = Harness::new();
    let set = rules(&format!(
        "{}\n{broken}\n[[rule]]\nname = \"Off\"\nexpr = \"up\"\nenabled = false\n",
        LOAD.replace("for = \"20s\"", "")
    ));
    let summary = h
        .evaluator
        .evaluate(&set, &h.source, 0)
        .expect("evaluation");
    assert_eq!(summary.failed_rules, 0);
    h.step(&set, 1, &[("a", 2.0), ("b", 2.0)]);
    assert_eq!(h.states(), ["HighLoad:a=firing", "HighLoad:b=firing"]);
    let states = h.evaluator.rule_states();
    let by_name = |name: &str| {
        states
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no status for {name}"))
    };
    let high = by_name("HighLoad");
    assert_eq!(
        (high.health, high.firing, high.pending),
        (RuleHealth::Ok, 2, 0)
    );
    assert_eq!(high.query, "(load) > 1");
    assert_eq!(high.last_eval_ms, Some(SEC));
    let collides = by_name("Collides");
    assert_eq!(collides.health, RuleHealth::Err);
    assert_eq!(
        collides.last_error.as_deref(),
        Some(
            r#"two series have the same labels after the rule's labels are applied: load{host="b"}"#
        )
    );
    assert_eq!(by_name("Off").health, RuleHealth::Disabled);
    assert_eq!(states.len(), 3);
}

#[test]
fn subscribers_see_each_evaluation() {
    let h = Harness::new();
    let mut updates = h.evaluator.subscribe();
    assert!(updates.borrow().at_ms.is_none());
    h.step(&rules(LOAD), 7, &[("a", 2.0)]);
    assert!(updates.has_changed().expect("sender alive"));
    let snapshot = updates.borrow_and_update().clone();
    assert_eq!(snapshot.at_ms, Some(7 * SEC));
    assert_eq!(snapshot.alerts.len(), 1);
}

#[tokio::test]
async fn the_loop_evaluates_on_its_interval_and_saves_until_cancelled() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("always.toml"),
        "[[rule]]\nname = \"Always\"\nexpr = \"vector(1)\"\n",
    )
    .expect("rule file");
    let config = AlertingRulesConfig {
        rule_files: vec!["always.toml".to_owned()],
        ..AlertingRulesConfig::default()
    };
    let source = RuleSource::new(&config, &dir.path().join("collector.toml"));
    let loaded = Arc::new(LoadedRules::open(source, 0).expect("rules"));
    let store = Store::open(&dir.path().join("data"), StoreOptions::collector()).expect("store");
    let evaluator = Arc::new(Evaluator::open(&store, EvalOptions::default()).expect("evaluator"));
    let mut updates = evaluator.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(Arc::clone(&evaluator).run(
        loaded,
        Arc::new(MemorySource::new()),
        store.clone(),
        Duration::from_millis(10),
        cancel.clone(),
    ));
    tokio::time::timeout(
        Duration::from_secs(30),
        updates.wait_for(|s| s.alerts.iter().any(|a| a.name() == "Always")),
    )
    .await
    .expect("the loop never produced the Always alert")
    .expect("sender alive");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the loop never stopped after cancel")
        .expect("no panic");
    drop(evaluator);
    let reopened = Evaluator::open(&store, EvalOptions::default()).expect("reopen");
    assert!(
        reopened.alerts().iter().any(|a| a.name() == "Always"),
        "the loop saved the alert"
    );
}
