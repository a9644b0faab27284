//! The collector's `/metrics` passes `promtool check metrics`.

use muster_tests::{Collector, CollectorOptions, promtool_check_metrics, wait_for};

#[test]
fn collector_metrics_pass_promtool() {
    let collector = Collector::start(CollectorOptions::default());
    wait_for("ready", || {
        collector
            .get("/health/ready", None)
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    // A request so the request counter has children too.
    let _ = collector.get("/api/v1/hosts", None);
    let (status, body) = collector.get("/metrics", None).unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("muster_collector_http_requests_total{"),
        "{body}"
    );

    let Some((passed, report)) = promtool_check_metrics(&body, "checks the collector's /metrics")
    else {
        return;
    };
    assert!(
        passed,
        "promtool check metrics failed:\n{}\n--- input ---\n{body}",
        report.join("\n")
    );
    assert!(
        report.is_empty(),
        "promtool lint findings:\n{}",
        report.join("\n")
    );
}
