//! Each built-in rule on a fixture that must trigger it and on neighbours that must not,
//! through the real engine; and the overrides.

use std::collections::BTreeMap;

use super::*;
use crate::query::{Engine, Limits, MemorySource, Value};

const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const DAY: i64 = 86_400 * SEC;

/// The labels (without `__name__`) of the series `rule` returns at `at_ms`.
fn firing(rules: &[Rule], name: &str, source: &MemorySource, at_ms: i64) -> Vec<String> {
    let rule = rules
        .iter()
        .find(|r| r.name() == name)
        .unwrap_or_else(|| panic!("no rule {name}"));
    let engine = Engine::new(Limits::default());
    match engine.instant_query(source, rule.query(), at_ms) {
        Ok(Value::Vector(samples)) => samples
            .iter()
            .map(|s| s.labels.filtered(|n| n != "__name__").to_string())
            .collect(),
        other => panic!("{name}: expected a vector, got {other:?}"),
    }
}

fn defaults() -> Vec<Rule> {
    builtin_rules(&BTreeMap::new())
        .expect("built-in rules are valid")
        .0
}

fn source(series: &[(&str, &str)], interval_ms: i64) -> MemorySource {
    source_from(series, 0, interval_ms)
}

/// Series in promtool's notation, the first value at `start_ms`.
fn source_from(series: &[(&str, &str)], start_ms: i64, interval_ms: i64) -> MemorySource {
    let source = MemorySource::new();
    for (labels, values) in series {
        source
            .add_notation(labels, values, start_ms, interval_ms)
            .unwrap_or_else(|e| panic!("{labels}: {e}"));
    }
    source
}

#[test]
fn every_builtin_parses_with_its_defaults() {
    let rules = defaults();
    let names: Vec<_> = rules.iter().map(Rule::name).collect();
    assert_eq!(names, BUILTIN_NAMES);
    for rule in &rules {
        assert!(rule.labels().iter().any(|(n, _)| n == "severity"));
        let annotations: Vec<_> = rule.annotations().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(annotations, ["description", "summary"], "{}", rule.name());
    }
    let host_down = &rules[0];
    assert_eq!(host_down.query().text(), "max_over_time(up[30s]) == 0");
    assert_eq!(host_down.labels()[0].1.text(), "critical");
}

#[test]
fn host_down_fires_once_no_pull_succeeded_for_the_threshold() {
    // Pulls every 10 s. web1 last succeeded at 20 s; web2 always does; web3 was pulled
    // once, long ago (removed, or the store refused writes): quiet, not a fleet-wide storm.
    let s = source(
        &[
            (r#"up{host="web1"}"#, "1 1 1 0 0 0 0"),
            (r#"up{host="web2"}"#, "1x6"),
            (r#"up{host="web3"}"#, "1"),
        ],
        10 * SEC,
    );
    let rules = defaults();
    assert!(
        firing(&rules, "HostDown", &s, 45 * SEC).is_empty(),
        "25 s since success"
    );
    assert_eq!(
        firing(&rules, "HostDown", &s, 50 * SEC),
        [r#"{host="web1"}"#]
    );
    assert_eq!(
        firing(&rules, "HostDown", &s, 60 * SEC),
        [r#"{host="web1"}"#]
    );
}

#[test]
fn probe_failing_and_certificate_expiring() {
    // Evaluated at day 100: api's certificate expires at day 110 (10 days left: fires),
    // web's at day 120 (20 days: quiet).
    let at = 100 * DAY;
    let s = source_from(
        &[
            (
                r#"muster_probe_healthy{host="a",probe="api",target="https://api"}"#,
                "0",
            ),
            (
                r#"muster_probe_healthy{host="a",probe="web",target="https://web"}"#,
                "1",
            ),
            (
                r#"probe_ssl_earliest_cert_expiry{host="a",probe="api",target="https://api"}"#,
                "9504000",
            ),
            (
                r#"probe_ssl_earliest_cert_expiry{host="a",probe="web",target="https://web"}"#,
                "10368000",
            ),
        ],
        at - MIN,
        MIN,
    );
    let rules = defaults();
    let api = [r#"{host="a",probe="api",target="https://api"}"#];
    assert_eq!(firing(&rules, "ProbeFailing", &s, at), api);
    assert_eq!(firing(&rules, "CertificateExpiring", &s, at), api);
}

#[test]
fn filesystem_will_fill_needs_a_falling_trend_little_space_and_a_real_disk() {
    // Every 5 minutes for 6 hours (73 samples), 0.1 GB less each time: -1.2 GB an hour.
    let fs = |labels: &str| {
        [
            (
                format!("node_filesystem_avail_bytes{{{labels}}}"),
                "30e9-1e8x72".to_owned(),
            ),
            (
                format!("node_filesystem_size_bytes{{{labels}}}"),
                "100e9x72".to_owned(),
            ),
            (
                format!("node_filesystem_readonly{{{labels}}}"),
                "0x72".to_owned(),
            ),
        ]
    };
    let root = r#"host="a",device="/dev/vda1",fstype="ext4",mountpoint="/""#;
    let tmp = r#"host="a",device="tmpfs",fstype="tmpfs",mountpoint="/run""#;
    let ro = r#"host="a",device="/dev/vdb",fstype="ext4",mountpoint="/ro""#;
    let roomy = r#"host="a",device="/dev/vdc",fstype="xfs",mountpoint="/data""#;
    let steady = r#"host="a",device="/dev/vdd",fstype="xfs",mountpoint="/srv""#;
    let mut series: Vec<(String, String)> = Vec::new();
    for labels in [root, tmp, ro] {
        series.extend(fs(labels));
    }
    series.extend([
        (
            format!("node_filesystem_avail_bytes{{{roomy}}}"),
            "60e9-1e8x72".to_owned(),
        ),
        (
            format!("node_filesystem_size_bytes{{{roomy}}}"),
            "100e9x72".to_owned(),
        ),
        (
            format!("node_filesystem_avail_bytes{{{steady}}}"),
            "5e9x72".to_owned(),
        ),
        (
            format!("node_filesystem_size_bytes{{{steady}}}"),
            "100e9x72".to_owned(),
        ),
    ]);
    let ro_flag = format!("node_filesystem_readonly{{{ro}}}");
    for (labels, values) in &mut series {
        if *labels == ro_flag {
            *values = "1x72".to_owned();
        }
    }
    let borrowed: Vec<(&str, &str)> = series
        .iter()
        .map(|(l, v)| (l.as_str(), v.as_str()))
        .collect();
    let s = source(&borrowed, 5 * MIN);
    // At 6 h, / has 22.8 GB of 100 (22.8% free) and loses 1.2 GB an hour: empty in 19 h.
    let rules = defaults();
    assert_eq!(
        firing(&rules, "FilesystemWillFill", &s, 6 * 60 * MIN),
        [r#"{device="/dev/vda1",fstype="ext4",host="a",mountpoint="/"}"#]
    );
    // With a 12 h horizon it is not full in time.
    let twelve_hours = BTreeMap::from([(
        "FilesystemWillFill".to_owned(),
        BuiltinOverride {
            threshold: Some(12.0 * 3600.0),
            ..BuiltinOverride::default()
        },
    )]);
    let (rules, _) = builtin_rules(&twelve_hours).unwrap();
    assert!(firing(&rules, "FilesystemWillFill", &s, 6 * 60 * MIN).is_empty());
}

#[test]
fn memory_pressure_is_a_low_available_ratio() {
    let s = source(
        &[
            (r#"node_memory_MemAvailable_bytes{host="a"}"#, "0.5e9"),
            (r#"node_memory_MemTotal_bytes{host="a"}"#, "8e9"),
            (r#"node_memory_MemAvailable_bytes{host="b"}"#, "4e9"),
            (r#"node_memory_MemTotal_bytes{host="b"}"#, "8e9"),
        ],
        MIN,
    );
    assert_eq!(
        firing(&defaults(), "MemoryPressure", &s, MIN),
        [r#"{host="a"}"#]
    );
}

#[test]
fn containers_restarting_or_unhealthy() {
    let web = r#"host="a",id="/docker/1",image="shop/web:1",name="web""#;
    let db = r#"host="a",id="/docker/2",image="postgres:16",name="db""#;
    let s = source(
        &[
            // web started at 100, then again at minutes 2, 4 and 6; db once.
            (
                &format!("container_start_time_seconds{{{web}}}"),
                "100 100 220 220 340 340 460 460",
            ),
            (&format!("container_start_time_seconds{{{db}}}"), "50x7"),
            (
                &format!(r#"muster_container_health{{{web},health="unhealthy"}}"#),
                "1x7",
            ),
            (
                &format!(r#"muster_container_health{{{db},health="unhealthy"}}"#),
                "0x7",
            ),
            (
                &format!(r#"muster_container_health{{{db},health="healthy"}}"#),
                "1x7",
            ),
        ],
        MIN,
    );
    let rules = defaults();
    let web_labels = r#"{host="a",id="/docker/1",image="shop/web:1",name="web"}"#;
    assert_eq!(
        firing(&rules, "ContainerRestarting", &s, 7 * MIN),
        [web_labels]
    );
    assert!(
        firing(&rules, "ContainerRestarting", &s, 5 * MIN).is_empty(),
        "two restarts are not more than two"
    );
    assert_eq!(
        firing(&rules, "ContainerUnhealthy", &s, 7 * MIN),
        [r#"{health="unhealthy",host="a",id="/docker/1",image="shop/web:1",name="web"}"#]
    );
}

#[test]
fn backups_overdue_or_failed() {
    // Evaluated at day 10: nightly last succeeded on day 9, weekly on day 3.
    let at = 10 * DAY;
    let s = source_from(
        &[
            (
                r#"muster_backup_last_success_timestamp_seconds{host="a",backup="nightly"}"#,
                "777600",
            ),
            (
                r#"muster_backup_last_success_timestamp_seconds{host="a",backup="weekly"}"#,
                "259200",
            ),
            (
                r#"muster_backup_last_run_success{host="a",backup="nightly"}"#,
                "0",
            ),
            (
                r#"muster_backup_last_run_success{host="a",backup="weekly"}"#,
                "1",
            ),
        ],
        at - MIN,
        MIN,
    );
    let rules = defaults();
    assert_eq!(
        firing(&rules, "BackupOverdue", &s, at),
        [r#"{backup="weekly",host="a"}"#]
    );
    assert_eq!(
        firing(&rules, "BackupFailed", &s, at),
        [r#"{backup="nightly",host="a"}"#]
    );
}

#[test]
fn overrides_change_for_threshold_severity_labels_and_annotations() {
    let overrides = BTreeMap::from([
        (
            "HostDown".to_owned(),
            BuiltinOverride {
                threshold: Some(90.0),
                for_: Some(muster_shared::config::Duration::from_secs(60)),
                keep_firing_for: Some(muster_shared::config::Duration::from_secs(30)),
                severity: Some("page".to_owned()),
                labels: BTreeMap::from([("team".to_owned(), "ops".to_owned())]),
                annotations: BTreeMap::from([(
                    "summary".to_owned(),
                    "{{ $labels.host }} gone".to_owned(),
                )]),
                ..BuiltinOverride::default()
            },
        ),
        (
            "BackupFailed".to_owned(),
            BuiltinOverride {
                enabled: Some(false),
                ..BuiltinOverride::default()
            },
        ),
    ]);
    let (rules, disabled) = builtin_rules(&overrides).unwrap();
    let host_down = &rules[0];
    assert_eq!(host_down.query().text(), "max_over_time(up[90s]) == 0");
    assert_eq!(host_down.for_(), Duration::from_secs(60));
    assert_eq!(host_down.keep_firing_for(), Duration::from_secs(30));
    let labels: Vec<_> = host_down
        .labels()
        .iter()
        .map(|(n, t)| format!("{n}={}", t.text()))
        .collect();
    assert_eq!(labels, ["severity=page", "team=ops"]);
    let summary = host_down
        .annotations()
        .iter()
        .find(|(n, _)| n == "summary")
        .map(|(_, t)| t.text());
    assert_eq!(summary, Some("{{ $labels.host }} gone"));
    let description = &host_down.def().annotations["description"];
    assert!(description.contains("for 90s"), "{description}");
    assert!(rules.iter().all(|r| r.name() != "BackupFailed"));
    assert_eq!(disabled[0].name, "BackupFailed");
}

#[test]
fn bad_overrides_are_errors_naming_the_rule() {
    let overrides = BTreeMap::from([
        (
            "MemoryPressure".to_owned(),
            BuiltinOverride {
                threshold: Some(10.0),
                ..BuiltinOverride::default()
            },
        ),
        (
            "HostDown".to_owned(),
            BuiltinOverride {
                labels: BTreeMap::from([("x".to_owned(), "{{ $value | nope }}".to_owned())]),
                ..BuiltinOverride::default()
            },
        ),
    ]);
    let errors: Vec<String> = builtin_rules(&overrides)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "built-in rule HostDown: [alerting.builtin.HostDown] label x: template column 13: unknown function `nope`: expected humanize, humanize1024, humanizeDuration, humanizePercentage, humanizeTimestamp or printf",
            "built-in rule MemoryPressure: [alerting.builtin.MemoryPressure] threshold 10: must be a ratio of available to total memory, between 0 and 1",
        ]
    );
}

#[test]
fn spans_read_as_people_write_them() {
    assert_eq!(span(30.0), "30s");
    assert_eq!(span(90.0), "90s");
    assert_eq!(span(300.0), "5m");
    assert_eq!(span(86_400.0), "24h");
    assert_eq!(span(1_209_600.0), "14d");
    assert_eq!(promql_duration(30.0), "30s");
    assert_eq!(promql_duration(1.5), "1500ms");
}

/// The backup series as an agent sends them (a `backup` label, no `host`) and the scrape
/// path stores them (the collector adds `host`): the backup rules fire on them, labelled
/// with both.
#[test]
fn backup_rules_fire_on_backup_series_as_the_scrape_path_stores_them() {
    use muster_shared::protocol::samples::{Label, Round, SampleBatch, SeriesDef, SeriesValue};

    let dir = tempfile::tempdir().unwrap();
    let store = muster_shared::store::Store::open(
        &dir.path().join("store"),
        muster_shared::store::StoreOptions::collector(),
    )
    .unwrap();
    let tsdb = crate::tsdb::Tsdb::open(
        &store,
        &dir.path().join("tsdb"),
        crate::tsdb::TsdbOptions::default(),
    )
    .unwrap();
    let def = |id, metric: &str, backup: &str| SeriesDef {
        id,
        metric: metric.to_owned(),
        labels: vec![Label {
            name: "backup".to_owned(),
            value: backup.to_owned(),
        }],
    };
    let now = i64::try_from(crate::unix_ms()).unwrap();
    let now_s = (now / 1000) as f64;
    let batch = SampleBatch {
        first_seq: 1,
        last_seq: 1,
        next_after: 1,
        more: false,
        gap: None,
        series: vec![
            def(0, "muster_backup_last_success_timestamp_seconds", "etc"),
            def(1, "muster_backup_last_success_timestamp_seconds", "db"),
            def(2, "muster_backup_last_run_success", "etc"),
            def(3, "muster_backup_last_run_success", "db"),
        ],
        rounds: vec![Round {
            seq: 1,
            timestamp_unix_ms: u64::try_from(now - MIN).unwrap(),
            values: [now_s - 3_600.0, now_s - 3.0 * 86_400.0, 0.0, 1.0]
                .into_iter()
                .enumerate()
                .map(|(series, value)| SeriesValue {
                    series: u32::try_from(series).unwrap(),
                    value,
                })
                .collect(),
        }],
    };
    tsdb.ingest("web1", &batch).unwrap();

    let rules = defaults();
    let engine = Engine::new(Limits::default());
    let fired = |name: &str| -> Vec<String> {
        let rule = rules.iter().find(|r| r.name() == name).unwrap();
        match engine.instant_query(&tsdb, rule.query(), now) {
            Ok(Value::Vector(samples)) => samples
                .iter()
                .map(|s| s.labels.filtered(|n| n != "__name__").to_string())
                .collect(),
            other => panic!("{name}: expected a vector, got {other:?}"),
        }
    };
    assert_eq!(fired("BackupOverdue"), [r#"{backup="db",host="web1"}"#]);
    assert_eq!(fired("BackupFailed"), [r#"{backup="etc",host="web1"}"#]);
}
