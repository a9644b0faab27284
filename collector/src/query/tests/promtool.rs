//! The engine against Prometheus itself: `promtool test rules` evaluates the same
//! expressions on the same series, and every answer must agree (values to 1e-9 relative,
//! errors with errors).
//!
//! promtool is asked with no expectations, so it prints what it got for every expression
//! with a result; those lines are parsed back and compared. Evaluation times sit between
//! samples, and counters start far from zero, so the answers don't depend on what changed
//! between the Prometheus 2 that distributions ship and Prometheus 3 (left-open windows,
//! the order of the zero-point check in `rate`). Skipped with a reason when promtool is
//! missing, except under `CI=true`.
//!
//! `topk` among equal values is not compared: Prometheus picks by the order its storage
//! returns series in, which for promtool's in-memory storage changes from run to run.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Command;

use super::source;
use crate::query::notation::parse_series_labels;
use crate::query::{Engine, Limits, MemorySource, Value};
use crate::series::Labels;

const SERIES: &[(&str, &str)] = &[
    (
        r#"node_cpu_seconds_total{host="a",cpu="0",mode="idle"}"#,
        "100+30x20",
    ),
    (
        r#"node_cpu_seconds_total{host="a",cpu="1",mode="idle"}"#,
        "200+54x20",
    ),
    (
        r#"node_cpu_seconds_total{host="a",cpu="0",mode="user"}"#,
        "500+30x20",
    ),
    (
        r#"node_cpu_seconds_total{host="b",cpu="0",mode="idle"}"#,
        "1000+6x8 10+6x11",
    ),
    (
        r#"node_filesystem_avail_bytes{host="a",mountpoint="/"}"#,
        "1000-40x20",
    ),
    (
        r#"node_filesystem_avail_bytes{host="a",mountpoint="/var"}"#,
        "500x20",
    ),
    (
        r#"node_filesystem_avail_bytes{host="b",mountpoint="/"}"#,
        "900+1x20",
    ),
    (
        r#"node_filesystem_size_bytes{host="a",mountpoint="/"}"#,
        "1000x20",
    ),
    (
        r#"node_filesystem_size_bytes{host="a",mountpoint="/var"}"#,
        "1000x20",
    ),
    (
        r#"node_filesystem_size_bytes{host="b",mountpoint="/"}"#,
        "1000x20",
    ),
    (
        r#"container_cpu_usage_seconds_total{name="web"}"#,
        "1000+60x20",
    ),
    (
        r#"container_cpu_usage_seconds_total{name="db"}"#,
        "500+6x20",
    ),
    // Not equal to db: among equal values Prometheus's choice follows its storage's series
    // order, which promtool randomises.
    (
        r#"container_cpu_usage_seconds_total{name="cache"}"#,
        "500+7x20",
    ),
    (r#"up{host="a",job="node"}"#, "1x20"),
    (r#"up{host="b",job="node"}"#, "1x10 0x9"),
    (
        r#"gauge{host="a"}"#,
        "3 1 8 -2.5 4 7 _ 9 stale 5 6.25 -1 0 2 2 2 7.5 1e3 -4 3 3",
    ),
    ("late", "_x5 100+10x10"),
];

const EXPRESSIONS: &[&str] = &[
    "rate(node_cpu_seconds_total[5m])",
    "irate(node_cpu_seconds_total[5m])",
    "increase(node_cpu_seconds_total[5m])",
    "rate(late[5m])",
    "increase(late[3m])",
    "delta(node_filesystem_avail_bytes[5m])",
    "deriv(node_filesystem_avail_bytes[10m])",
    "deriv(gauge[10m])",
    "predict_linear(node_filesystem_avail_bytes[10m], 3600)",
    "predict_linear(node_filesystem_avail_bytes[6h], 4*3600) < 0",
    r#"100 * (1 - avg by (host) (rate(node_cpu_seconds_total{mode="idle"}[5m])))"#,
    "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.5",
    "topk(5, rate(container_cpu_usage_seconds_total[5m]))",
    "topk(2, rate(container_cpu_usage_seconds_total[5m]))",
    "bottomk(2, rate(container_cpu_usage_seconds_total[5m]))",
    "topk by (host) (1, node_cpu_seconds_total)",
    "sum by (host) (node_cpu_seconds_total)",
    "sum without (cpu) (node_cpu_seconds_total)",
    "count(node_cpu_seconds_total) by (mode)",
    "max(gauge) + min(gauge)",
    "avg(node_filesystem_avail_bytes)",
    "avg_over_time(gauge[5m])",
    "max_over_time(gauge[5m])",
    "min_over_time(gauge[5m])",
    "sum_over_time(gauge[5m])",
    "count_over_time(gauge[5m])",
    "last_over_time(gauge[5m])",
    "abs(gauge)",
    "ceil(gauge / 3)",
    "floor(gauge / 3)",
    "round(gauge / 3)",
    "round(gauge, 2)",
    "clamp_min(gauge, 2)",
    "clamp_max(gauge, 2)",
    "time()",
    "vector(time() / 60)",
    r#"scalar(up{host="b"})"#,
    "timestamp(gauge)",
    "timestamp(abs(gauge))",
    "up == 0",
    "up != bool 0",
    "1 - up",
    "node_filesystem_avail_bytes * on (host, mountpoint) node_filesystem_size_bytes",
    r#"node_filesystem_avail_bytes{mountpoint="/"} * on (host) up"#,
    "node_filesystem_avail_bytes + ignoring (job, mountpoint) up",
    "up * on (host) node_filesystem_avail_bytes",
    "node_filesystem_avail_bytes * on (host) up",
    "up and on (host) (node_filesystem_avail_bytes < 800)",
    "node_cpu_seconds_total unless on (host) (up == 0)",
    "up or vector(5)",
    "-gauge",
    "gauge offset 2m",
    "gauge @ 120",
    "2 ^ 3 ^ 2 - 7 % 4",
    "node_cpu_seconds_total % 7",
    "gauge > 2",
    "3 < bool gauge",
];

/// Evaluation times in seconds: between samples (which fall on whole minutes).
const TIMES_S: &[i64] = &[150, 330, 450, 510, 630, 990, 1170];

#[test]
fn engine_agrees_with_promtool() {
    if !promtool_available() {
        let reason = "promtool not found on PATH (apt-get install prometheus)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and {reason}"
        );
        eprintln!("skipping engine_agrees_with_promtool: {reason}");
        return;
    }
    let source = source(SERIES);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("oracle.yml");
    std::fs::write(&file, promtool_file()).expect("write the promtool test file");
    let output = Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let answers = parse_answers(&text);
    assert!(
        answers.len() > EXPRESSIONS.len(),
        "promtool's report did not parse:\n{text}"
    );
    let mut mismatches = Vec::new();
    for expr in EXPRESSIONS {
        for &t in TIMES_S {
            let key = (go_quote(expr), go_duration(t));
            let theirs = answers
                .get(&key)
                .cloned()
                .unwrap_or(Answer::Samples(Vec::new()));
            let ours = evaluate(&source, expr, t * 1000);
            if !agree(&ours, &theirs) {
                mismatches.push(format!(
                    "{expr} at {t}s:\n  ours:     {}\n  promtool: {}",
                    describe(&ours),
                    describe(&theirs)
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} disagreements with promtool:\n{}\n--- promtool output ---\n{text}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

fn promtool_available() -> bool {
    Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn promtool_file() -> String {
    let mut yaml = String::from(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (series, values) in SERIES {
        let _ = writeln!(
            yaml,
            "      - series: '{series}'\n        values: '{values}'"
        );
    }
    yaml.push_str("    promql_expr_test:\n");
    for expr in EXPRESSIONS {
        for t in TIMES_S {
            let expr = expr.replace('\'', "''");
            let _ = writeln!(yaml, "      - expr: '{expr}'\n        eval_time: {t}s");
        }
    }
    yaml
}

/// What an expression gave at one time.
#[derive(Debug, Clone)]
enum Answer {
    Samples(Vec<(Labels, f64)>),
    Error(String),
}

fn evaluate(source: &MemorySource, expr: &str, at_ms: i64) -> Answer {
    let value = match Engine::new(Limits::default()).instant(source, expr, at_ms) {
        Ok(value) => value,
        Err(err) => return Answer::Error(err.to_string()),
    };
    let mut samples = match value {
        Value::Scalar(s) => vec![(Labels::default(), s.value)],
        Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.sample.value)).collect(),
        other => return Answer::Error(format!("unexpected result {other:?}")),
    };
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    Answer::Samples(samples)
}

fn describe(answer: &Answer) -> String {
    match answer {
        Answer::Error(err) => format!("error: {err}"),
        Answer::Samples(samples) => samples
            .iter()
            .map(|(labels, value)| format!("{labels} {value}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn agree(ours: &Answer, theirs: &Answer) -> bool {
    match (ours, theirs) {
        (Answer::Error(_), Answer::Error(_)) => true,
        (Answer::Samples(a), Answer::Samples(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|((la, va), (lb, vb))| {
                    la == lb
                        && (va == vb
                            || (va.is_nan() && vb.is_nan())
                            || (va - vb).abs() <= 1e-9 * va.abs().max(vb.abs()))
                })
        }
        _ => false,
    }
}

/// promtool's failure report, by (quoted expression, time): either
/// `    expr: "<q>", time: <t>,` followed by `exp:` and `got: <samples>` lines, or
/// `    expr: "<q>", time: <t>, err: <message>`.
fn parse_answers(text: &str) -> HashMap<(String, String), Answer> {
    let mut answers = HashMap::new();
    let mut pending: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("expr: ") {
            let Some((quoted, rest)) = split_quoted(rest) else {
                continue;
            };
            let rest = rest.trim_start_matches(", time: ");
            match rest.split_once(", err: ") {
                Some((time, err)) => {
                    answers.insert((quoted, time.to_owned()), Answer::Error(err.to_owned()));
                }
                None => pending = Some((quoted, rest.trim_end_matches(',').to_owned())),
            }
        } else if let Some(got) = line.strip_prefix("got: ")
            && let Some(key) = pending.take()
        {
            answers.insert(key, Answer::Samples(parse_samples(got)));
        }
    }
    answers
}

/// A Go-quoted string at the start of `text`, kept quoted, and the rest.
fn split_quoted(text: &str) -> Option<(String, &str)> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some((text[..=i].to_owned(), &text[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// `{a="x", b="y"} 1E+00, {} NaN` into label sets and values, sorted by labels.
fn parse_samples(got: &str) -> Vec<(Labels, f64)> {
    let mut out = Vec::new();
    let mut rest = got.trim();
    while let Some(close) = rest.find("} ") {
        let labels = &rest[..=close];
        let after = &rest[close + 2..];
        let (value, next) = after.split_once(", ").unwrap_or((after, ""));
        let labels = if labels == "{}" {
            Labels::default()
        } else {
            parse_series_labels(labels).expect("promtool's labels parse")
        };
        out.push((labels, value.parse().expect("promtool's value parses")));
        rest = next;
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Go's `%q` for the plain ASCII expressions above.
fn go_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Prometheus's duration text for whole seconds under a day (`1h2m30s`, `0s`).
fn go_duration(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (n, unit) in [
        (seconds / 3600, "h"),
        (seconds / 60 % 60, "m"),
        (seconds % 60, "s"),
    ] {
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
        }
    }
    out
}

#[test]
fn durations_print_as_prometheus_prints_them() {
    assert_eq!(go_duration(150), "2m30s");
    assert_eq!(go_duration(3600), "1h");
    assert_eq!(go_duration(3630), "1h30s");
}
