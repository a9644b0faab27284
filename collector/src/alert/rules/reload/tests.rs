//! Tests of loading and reloading rule files, in a temp dir standing for the folder of
//! `collector.toml`.

use std::fs;
use std::time::Duration;

use super::*;
use crate::alert::rules::builtin::BUILTIN_NAMES;

const LOAD: &str = r#"
[[rule]]
name = "HighLoad"
expr = "node_load1 > 4"
"#;

const DISK: &str = r#"
[[rule]]
name = "DiskBusy"
expr = "rate(node_disk_io_time_seconds_total[5m]) > 0.9"
for = "10m"
"#;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join("rules")).expect("rules dir");
        Self { dir }
    }

    fn write(&self, name: &str, text: &str) {
        fs::write(self.dir.path().join(name), text).expect("write rule file");
    }

    fn source(&self, patterns: &[&str]) -> RuleSource {
        let config = AlertingRulesConfig {
            rule_files: patterns.iter().map(|p| (*p).to_owned()).collect(),
            ..AlertingRulesConfig::default()
        };
        RuleSource::new(&config, &self.dir.path().join("collector.toml"))
    }

    fn rel(&self, error: &RuleError) -> String {
        let prefix = format!("{}/", self.dir.path().display());
        error.to_string().replace(&prefix, "")
    }
}

fn names(set: &RuleSet) -> Vec<&str> {
    set.rules()
        .iter()
        .map(|r| r.name())
        .filter(|n| !BUILTIN_NAMES.contains(n))
        .collect()
}

#[test]
fn loads_builtins_then_files_in_path_order() {
    let setup = Setup::new();
    setup.write("rules/b.toml", LOAD);
    setup.write("rules/a.toml", DISK);
    setup.write("rules/notes.txt", "not a rule file");
    let source = setup.source(&["rules/*.toml", "rules/a.toml", "nothing/*.toml"]);
    let set = source.load().unwrap();
    assert_eq!(set.rules()[0].name(), "HostDown");
    assert_eq!(
        names(&set),
        ["DiskBusy", "HighLoad"],
        "a.toml once, then b.toml"
    );
    assert_eq!(set.len(), BUILTIN_NAMES.len() + 2);
}

#[test]
fn a_missing_plain_path_is_an_error_but_an_empty_glob_is_not() {
    let setup = Setup::new();
    let err = setup.source(&["rules/missing.toml"]).load().unwrap_err();
    let text = setup.rel(&err.0[0]);
    assert!(
        text.starts_with("rule_files pattern \"rules/missing.toml\": rules/missing.toml: "),
        "{text}"
    );
    assert!(setup.source(&["rules/*.toml"]).load().is_ok());
    let err = setup.source(&["rules/[.toml"]).load().unwrap_err();
    assert!(err.to_string().contains("invalid pattern"), "{err}");
}

#[test]
fn every_problem_of_every_file_is_reported_together() {
    let setup = Setup::new();
    setup.write("rules/a.toml", LOAD);
    setup.write(
        "rules/b.toml",
        &format!("{LOAD}\n[[rule]]\nname = \"HostDown\"\nexpr = \"up == 0\"\n"),
    );
    setup.write("rules/c.toml", "[[rule]]\nname = \"X\"\nexpr = \"up ==\"\n");
    let err = setup.source(&["rules/*.toml"]).load().unwrap_err();
    let lines: Vec<String> = err.0.iter().map(|e| setup.rel(e)).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("rules/c.toml:3:8: invalid expression: parse error"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "rules/b.toml:3:8: rule HighLoad is already defined at rules/a.toml:3:8"
    );
    assert!(
        lines[2].starts_with(
            "rules/b.toml:7:8: rule HostDown is already defined at built-in rule HostDown"
        ),
        "{}",
        lines[2]
    );
}

#[test]
fn a_malformed_file_keeps_the_old_rules_and_reports_why() {
    let setup = Setup::new();
    setup.write("rules/a.toml", LOAD);
    let rules = LoadedRules::open(setup.source(&["rules/*.toml"]), 1_000).unwrap();
    let before = rules.current();
    assert_eq!(names(&before), ["HighLoad"]);
    assert!(rules.last_reload().ok);

    setup.write(
        "rules/a.toml",
        "[[rule]]\nname = \"HighLoad\"\nexpr = \"node_load1 >\"\n",
    );
    let err = rules.reload(2_000).unwrap_err();
    assert!(
        Arc::ptr_eq(&before, &rules.current()),
        "the old set stays in force"
    );
    let status = rules.last_reload();
    assert!(!status.ok);
    assert_eq!(status.at_ms, 2_000);
    assert_eq!(status.loaded_at_ms, 1_000);
    assert_eq!(status.rules, before.len());
    assert_eq!(status.errors, err.0);
    let error = status.error.expect("an error text");
    assert!(
        error.contains("rules/a.toml:3:8: invalid expression: parse error"),
        "{error}"
    );

    setup.write("rules/a.toml", DISK);
    rules.reload(3_000).unwrap();
    assert_eq!(names(&rules.current()), ["DiskBusy"]);
    let status = rules.last_reload();
    assert!(status.ok && status.error.is_none() && status.errors.is_empty());
    assert_eq!(status.loaded_at_ms, 3_000);
}

#[test]
fn reloads_only_when_files_change() {
    let setup = Setup::new();
    setup.write("rules/a.toml", LOAD);
    let rules = LoadedRules::open(setup.source(&["rules/*.toml"]), 0).unwrap();
    assert!(rules.reload_if_changed(1).is_none());

    setup.write("rules/b.toml", DISK);
    assert_eq!(
        rules.reload_if_changed(2).map(|r| r.ok()),
        Some(Some(BUILTIN_NAMES.len() + 2))
    );
    assert!(rules.reload_if_changed(3).is_none());

    // A bad edit is tried once, not at every check.
    setup.write("rules/b.toml", "[[rule]]\nname = 1\n");
    assert!(matches!(rules.reload_if_changed(4), Some(Err(_))));
    assert!(rules.reload_if_changed(5).is_none());
    assert!(!rules.last_reload().ok);

    fs::remove_file(setup.dir.path().join("rules/b.toml")).unwrap();
    assert!(matches!(rules.reload_if_changed(6), Some(Ok(_))));
    assert_eq!(names(&rules.current()), ["HighLoad"]);
}

#[test]
fn fallback_keeps_the_builtin_rules_when_files_are_bad() {
    let setup = Setup::new();
    setup.write("rules/a.toml", "[[rule]]\nexpr = \"up\"\n");
    let source = setup.source(&["rules/*.toml"]);
    assert!(LoadedRules::open(source.clone(), 0).is_err());
    let rules = LoadedRules::open_with_fallback(source, 0);
    assert_eq!(rules.current().len(), BUILTIN_NAMES.len());
    let status = rules.last_reload();
    assert!(!status.ok);
    assert!(status.error.unwrap().contains("missing field `name`"));
}

#[tokio::test]
async fn the_reload_task_picks_up_changes_until_cancelled() {
    let setup = Setup::new();
    setup.write("rules/a.toml", LOAD);
    let rules = Arc::new(LoadedRules::open(setup.source(&["rules/*.toml"]), 0).unwrap());
    let mut changes = rules.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(Arc::clone(&rules).run(Duration::from_millis(10), cancel.clone()));

    setup.write("rules/b.toml", DISK);
    tokio::time::timeout(Duration::from_secs(30), changes.changed())
        .await
        .expect("the reload task never reloaded the changed files")
        .expect("sender alive");
    assert_eq!(names(&changes.borrow()), ["HighLoad", "DiskBusy"]);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the reload task never stopped after cancel")
        .expect("no panic");
    // Reloading on demand, as SIGHUP does.
    assert_eq!(
        rules.reload_async().await.ok(),
        Some(BUILTIN_NAMES.len() + 2)
    );
}
