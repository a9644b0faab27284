//! The collector's `/metrics` passes `promtool check metrics`.

use muster_tests::fake_agent::FakeAgent;
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
    // A pulled host, so the per-host families have children too.
    let agent = FakeAgent::start(&collector, "web1");
    agent.add_rounds(3);
    wait_for("web1 is pulled", || {
        (collector.host("web1")["cursor"] == 3).then_some(())
    });
    // A request so the request counter has children too.
    let _ = collector.get("/api/v1/hosts", None);
    let (status, body) = collector.get("/metrics", None).unwrap();
    assert_eq!(status, 200);
    for family in [
        "muster_collector_http_requests_total{",
        "muster_collector_host_scrape_duration_seconds{host=\"web1\"}",
        "muster_collector_store_writable 1",
        "muster_collector_tsdb_series ",
        "muster_collector_store_size_bytes ",
    ] {
        assert!(body.contains(family), "{family} missing:\n{body}");
    }

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
