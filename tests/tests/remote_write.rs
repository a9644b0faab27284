//! Remote write into a real VictoriaMetrics: the collector's `RemoteWrite` pushes a few
//! series, VictoriaMetrics' export API gives back exactly those labels, timestamps and values.
//!
//! Needs the `victoria-metrics` binary (Debian package `victoria-metrics`); skips without it,
//! fails without it in CI.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use muster_collector::metrics::Metrics;
use muster_collector::remote_write::{RemoteWrite, RemoteWriteConfig};
use muster_collector::series::{Labels, Sample, SeriesSamples};
use muster_tests::{
    Proc, free_port, http_client, promtool_check_metrics, require_tool, runtime, wait_for,
};
use tokio_util::sync::CancellationToken;

/// 2023-11-14T22:13:20Z, well inside the retention below.
const BASE_MS: i64 = 1_700_000_000_000;

/// A series as VictoriaMetrics exports it: labels, then (timestamp, value) pairs.
type Exported = BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>>;

fn series(pairs: &[(&str, &str)], points: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: points
            .iter()
            .map(|&(offset, value)| Sample {
                timestamp_ms: BASE_MS + offset,
                value,
            })
            .collect(),
    }
}

fn expected_of(batches: &[Vec<SeriesSamples>]) -> Exported {
    let mut out = Exported::new();
    for s in batches.iter().flatten() {
        let labels = s
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        out.entry(labels)
            .or_default()
            .extend(s.samples.iter().map(|p| (p.timestamp_ms, p.value)));
    }
    out
}

/// Parses `/api/v1/export`'s JSON lines.
fn parse_export(body: &str) -> Exported {
    let mut out = Exported::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let labels = row["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let timestamps = row["timestamps"].as_array().unwrap();
        let values = row["values"].as_array().unwrap();
        let points: &mut Vec<(i64, f64)> = out.entry(labels).or_default();
        for (t, v) in timestamps.iter().zip(values) {
            points.push((t.as_i64().unwrap(), v.as_f64().unwrap()));
        }
        points.sort_by_key(|p| p.0);
    }
    out
}

#[test]
fn victoria_metrics_stores_exactly_what_remote_write_sends() {
    let Some(victoria) = require_tool(
        "victoria-metrics",
        "the remote write end-to-end test writes into a real VictoriaMetrics",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut vm = Proc::start(
        "victoria-metrics",
        Command::new(victoria).args([
            format!("-httpListenAddr=127.0.0.1:{port}"),
            format!("-storageDataPath={}", dir.path().join("data").display()),
            "-retentionPeriod=100y".to_owned(),
        ]),
        dir.path().join("victoria-metrics.log"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let rt = runtime();
    let client = http_client(None);
    let get = |path: &str| -> Option<(u16, String)> {
        rt.block_on(async {
            let response = client.get(format!("{base}{path}")).send().await.ok()?;
            let status = response.status().as_u16();
            Some((status, response.text().await.ok()?))
        })
    };
    wait_for("VictoriaMetrics answers /health", || {
        if let Some(status) = vm.exited() {
            panic!("victoria-metrics exited with {status}:\n{}", vm.log());
        }
        get("/health").filter(|(s, _)| *s == 200)
    });

    let batches = vec![
        vec![
            series(
                &[
                    ("__name__", "muster_e2e_cpu_seconds_total"),
                    ("cpu", "0"),
                    ("host", "web1"),
                    ("mode", "idle"),
                ],
                &[(0, 100.25), (10_000, 110.5), (20_000, 120.75)],
            ),
            series(
                &[("__name__", "muster_e2e_load1"), ("host", "web1")],
                &[(0, 0.5), (10_000, -1.5), (20_000, 1e-3)],
            ),
        ],
        vec![
            series(
                &[
                    ("__name__", "muster_e2e_cpu_seconds_total"),
                    ("cpu", "0"),
                    ("host", "web1"),
                    ("mode", "idle"),
                ],
                &[(30_000, 130.0), (40_000, 140.125)],
            ),
            series(
                &[
                    ("__name__", "muster_e2e_filesystem_avail_bytes"),
                    ("device", "/dev/sda1"),
                    ("host", "db \"primary\""),
                    ("mountpoint", "/"),
                ],
                &[(5_000, 1.0e12), (15_000, 999_999_999_488.0)],
            ),
        ],
    ];
    let expected = expected_of(&batches);
    let total: usize = expected.values().map(Vec::len).sum();

    let metrics = Metrics::new().unwrap();
    rt.block_on(async {
        let mut config: RemoteWriteConfig =
            RemoteWriteConfig::new(format!("{base}/api/v1/write").parse().unwrap());
        config.name = Some("victoria".to_owned());
        config.max_samples_per_send = 4;
        config.batch_send_deadline = muster_shared::config::Duration(Duration::from_millis(50));
        let shutdown = CancellationToken::new();
        let remote_write =
            RemoteWrite::start(&[config], metrics.registry(), shutdown.clone()).unwrap();
        for batch in &batches {
            remote_write.enqueue(batch);
        }
        // Shutdown flushes the queue; the deadline bounds the wait.
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), remote_write.wait())
            .await
            .expect("the sender flushes and stops");
    });
    let rendered = metrics.render();
    assert!(
        rendered.contains(&format!(
            "muster_collector_remote_write_samples_total{{remote=\"victoria\",result=\"sent\"}} {total}"
        )),
        "every sample accepted:\n{rendered}\nVictoriaMetrics log:\n{}",
        vm.log()
    );

    // Make what was just written searchable, then read it back.
    let _ = get("/internal/force_flush");
    let query = "/api/v1/export?match[]=%7B__name__%3D~%22muster_e2e_.%2A%22%7D&start=0";
    let exported = wait_for("VictoriaMetrics exports every sample", || {
        let _ = get("/internal/force_flush");
        get(query)
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| parse_export(&body))
            .filter(|e| e.values().map(Vec::len).sum::<usize>() >= total)
    });
    assert_eq!(exported, expected);

    // The remote write families, used, still pass promtool's checks and lint.
    if let Some((passed, report)) =
        promtool_check_metrics(&rendered, "checks the remote write metrics")
    {
        assert!(
            passed && report.is_empty(),
            "promtool check metrics:\n{}\n--- input ---\n{rendered}",
            report.join("\n")
        );
    }

    let status = vm.stop();
    assert!(
        status.success(),
        "victoria-metrics exits 0 on SIGTERM: {status}"
    );
}
