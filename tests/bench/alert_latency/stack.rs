//! The anchor: Debian's blackbox_exporter probing the target, Prometheus scraping it every
//! second and evaluating `probe_success == 0` every second, Alertmanager (group_wait 0,
//! group_interval 1 s) posting to the webhook. The same intervals as Muster's side.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use muster_tests::alertmanager::{Alertmanager, AlertmanagerTimings};
use muster_tests::{Proc, free_port};

use super::{ALERT_NAME, INTERVAL, Side};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";

/// The running stack; every process stops by PID when dropped.
pub struct Stack {
    _prometheus: Proc,
    _blackbox: Proc,
    _alertmanager: Alertmanager,
    _dir: tempfile::TempDir,
}

impl Stack {
    pub fn start(target_urls: &[String], webhook_url: &str) -> anyhow::Result<Self> {
        for binary in [PROMETHEUS, BLACKBOX] {
            if !std::path::Path::new(binary).is_file() {
                anyhow::bail!(
                    "{binary} is missing (apt install prometheus prometheus-blackbox-exporter prometheus-alertmanager)"
                );
            }
        }
        let alertmanager = Alertmanager::start(webhook_url, AlertmanagerTimings::default())
            .context("prometheus-alertmanager is not installed")?;
        let dir = tempfile::Builder::new().prefix("alert-stack-").tempdir()?;
        let interval_ms = INTERVAL.as_millis();
        // The probe's deadline: a little under the scrape interval, as blackbox derives it.
        let timeout_ms = interval_ms * 9 / 10;

        let blackbox_port = free_port();
        let blackbox_config = dir.path().join("blackbox.yml");
        std::fs::write(
            &blackbox_config,
            format!(
                "modules:\n  http_200:\n    prober: http\n    timeout: {timeout_ms}ms\n    http:\n      \
                 valid_status_codes: [200]\n      preferred_ip_protocol: ip4\n"
            ),
        )?;
        let blackbox = Proc::start(
            "blackbox_exporter",
            Command::new(BLACKBOX).args([
                format!("--config.file={}", blackbox_config.display()),
                format!("--web.listen-address=127.0.0.1:{blackbox_port}"),
            ]),
            dir.path().join("blackbox.log"),
        );

        let rules = dir.path().join("rules.yml");
        std::fs::write(
            &rules,
            format!(
                "groups:\n  - name: probes\n    interval: {interval_ms}ms\n    rules:\n      \
                 - alert: {ALERT_NAME}\n        expr: probe_success == 0\n"
            ),
        )?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: {interval_ms}ms\n  scrape_timeout: {timeout_ms}ms\n  \
                 evaluation_interval: {interval_ms}ms\n\
                 rule_files: ['{rules}']\n\
                 alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am}']\n\
                 scrape_configs:\n  - job_name: blackbox\n    metrics_path: /probe\n    \
                 params: {{module: [http_200]}}\n    static_configs:\n      - targets: [{targets}]\n    \
                 relabel_configs:\n      - source_labels: [__address__]\n        target_label: __param_target\n      \
                 - source_labels: [__param_target]\n        target_label: instance\n      \
                 - target_label: __address__\n        replacement: 127.0.0.1:{blackbox_port}\n",
                rules = rules.display(),
                targets = target_urls
                    .iter()
                    .map(|u| format!("'{u}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
                am = alertmanager.url.trim_start_matches("http://"),
            ),
        )?;
        let port = free_port();
        let prometheus = Proc::start(
            "prometheus",
            Command::new(PROMETHEUS).args([
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", dir.path().join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ]),
            dir.path().join("prometheus.log"),
        );
        Ok(Self {
            _prometheus: prometheus,
            _blackbox: blackbox,
            _alertmanager: alertmanager,
            _dir: dir,
        })
    }
}

impl Side for Stack {
    fn name(&self) -> &'static str {
        "prometheus+blackbox+alertmanager"
    }

    fn settle(&self) -> Duration {
        // Prometheus's first scrape and evaluation, Alertmanager's first group.
        Duration::from_secs(5)
    }
}
