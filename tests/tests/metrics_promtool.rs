//! The collector's `/metrics` passes `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};

use muster_tests::{Collector, CollectorOptions, require_tool, wait_for};

#[test]
fn collector_metrics_pass_promtool() {
    let Some(promtool) = require_tool("promtool", "checks the /metrics exposition") else {
        return;
    };
    let collector = Collector::start(CollectorOptions::default());
    wait_for("ready", || {
        collector
            .get("/health/ready", None)
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    // A few requests so the request counter has children too.
    let _ = collector.get("/api/v1/hosts", None);
    let (status, body) = collector.get("/metrics", None).unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("muster_collector_http_requests_total{"),
        "{body}"
    );

    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{report}\n--- input ---\n{body}"
    );
    assert!(
        report.trim().is_empty(),
        "promtool lint findings:\n{report}"
    );
}
