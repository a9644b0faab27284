//! A real Prometheus federating from the collector: it scrapes `/federate` over HTTPS with
//! a bearer token, parses every line, and its own query API then returns the agent's
//! series with their `host` label, as many as the collector offered.
//!
//! Needs the `prometheus` binary (Debian package `prometheus`); skips without it, fails
//! without it in CI.

use std::process::Command;

use muster_tests::{
    Collector, CollectorOptions, Proc, free_port, http_client, percent_encode, require_tool,
    wait_for,
};

/// What Prometheus federates: a gauge, a counter family with many series, and the agent's
/// own metrics.
const MATCH: &str = r#"{__name__=~"node_load1|node_cpu_seconds_total|muster_agent_.*"}"#;

#[test]
fn prometheus_ingests_what_federate_serves() {
    let Some(prometheus) = require_tool(
        "prometheus",
        "the federation end-to-end test runs a real Prometheus against /federate",
    ) else {
        return;
    };
    let collector = Collector::start(CollectorOptions {
        tls: true,
        scrape_interval: "1s",
    });
    let agent = collector.enroll_agent("web1", "[sample]\ninterval = \"1s\"\ntimeout = \"1s\"\n");
    let _agent = agent.start();
    let viewer = collector.create_token(&["--role", "viewer", "--name", "prometheus"]);

    // What the collector offers, once the agent's CPU series are in.
    let federate = format!("/federate?match[]={}", percent_encode(MATCH));
    let offered = wait_for("the collector federates web1's CPU series", || {
        let (status, text) = collector.get(&federate, Some(&viewer)).ok()?;
        assert_eq!(status, 200, "{text}");
        let cpu = count_series(&text, "node_cpu_seconds_total");
        (cpu > 0 && text.contains("node_load1{host=\"web1\"}")).then_some(text)
    });
    let offered_cpu = count_series(&offered, "node_cpu_seconds_total");

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &collector.ca_pem).unwrap();
    let target = collector.url.trim_start_matches("https://");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: muster
    honor_labels: true
    metrics_path: /federate
    scheme: https
    params:
      'match[]': ['{MATCH}']
    authorization:
      credentials: '{viewer}'
    tls_config:
      ca_file: '{ca}'
    static_configs:
      - targets: ['{target}']
"#,
            ca = ca.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut server = Proc::start(
        "prometheus",
        Command::new(prometheus).args([
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ]),
        dir.path().join("prometheus.log"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = http_client(None);
    let get = |path: &str| -> Option<serde_json::Value> {
        collector.rt.block_on(async {
            let response = client.get(format!("{base}{path}")).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.json().await.ok()
        })
    };

    let query = |expr: &str| get(&format!("/api/v1/query?query={}", percent_encode(expr)));

    // The target is healthy: Prometheus parsed the whole answer without error.
    let health = wait_for("Prometheus scraped /federate successfully", || {
        if let Some(status) = server.exited() {
            panic!("prometheus exited with {status}:\n{}", server.log());
        }
        let targets = get("/api/v1/targets")?;
        let target = targets["data"]["activeTargets"][0].clone();
        (target["health"] == "up").then_some(target)
    });
    assert_eq!(health["lastError"], "", "{health}");

    // The federated series are in Prometheus with the collector's `host` label beside the
    // scrape's own `job`.
    let load = wait_for("Prometheus answers node_load1 for web1", || {
        let answer = query(r#"node_load1{host="web1",job="muster"}"#)?;
        answer["data"]["result"].as_array()?.first().cloned()
    });
    let value: f64 = load["value"][1].as_str().unwrap().parse().unwrap();
    assert!(value >= 0.0, "a load average: {load}");

    let stored_cpu = wait_for("Prometheus holds every federated CPU series", || {
        let answer = query(r#"count(node_cpu_seconds_total{host="web1"})"#)?;
        let count: usize = answer["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()?;
        (count >= offered_cpu).then_some(count)
    });
    assert_eq!(
        stored_cpu, offered_cpu,
        "Prometheus stores as many CPU series as /federate offered"
    );

    // A counter keeps rising through federation: rate() over it works in Prometheus.
    let rate = wait_for("rate() over a federated counter", || {
        let answer = query(r#"sum(rate(node_cpu_seconds_total{host="web1"}[10s]))"#)?;
        let value: f64 = answer["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()?;
        (value > 0.0).then_some(value)
    });
    assert!(rate.is_finite(), "{rate}");

    let status = server.stop();
    assert!(
        status.success() || status.code().is_none(),
        "prometheus stopped cleanly: {status}\n{}",
        server.log()
    );
}

/// Series of `name` in a text exposition.
fn count_series(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .count()
}
