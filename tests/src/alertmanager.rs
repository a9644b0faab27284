//! A real Alertmanager (Debian's `prometheus-alertmanager`) on a loopback port, for the
//! tests that push our alerts to it and for the alert latency benchmark's stack. It sends
//! everything to one webhook, with the timings the caller picks; clustering is off.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{Proc, free_port, require_tool, wait_for};

/// The route timings of the one receiver.
#[derive(Debug, Clone, Copy)]
pub struct AlertmanagerTimings {
    /// `group_wait`.
    pub group_wait: Duration,
    /// `group_interval`.
    pub group_interval: Duration,
    /// `repeat_interval`.
    pub repeat_interval: Duration,
}

impl Default for AlertmanagerTimings {
    fn default() -> Self {
        Self {
            group_wait: Duration::ZERO,
            group_interval: Duration::from_secs(1),
            repeat_interval: Duration::from_secs(3600),
        }
    }
}

/// A running Alertmanager, stopped by PID when dropped.
#[derive(Debug)]
pub struct Alertmanager {
    /// Its API base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The process.
    pub proc: Proc,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts one that forwards every alert (grouped by all labels) to `webhook_url`;
    /// `None` when Alertmanager is not installed (a skip, but a failure in CI).
    pub fn start(webhook_url: &str, timings: AlertmanagerTimings) -> Option<Self> {
        let binary = require_tool(
            "prometheus-alertmanager",
            "alerting interoperability (apt install prometheus-alertmanager)",
        )?;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: sink\n  group_by: ['...']\n  group_wait: {}ms\n  \
                 group_interval: {}ms\n  repeat_interval: {}ms\nreceivers:\n  - name: sink\n    \
                 webhook_configs:\n      - url: {webhook_url}\n        send_resolved: true\n",
                timings.group_wait.as_millis(),
                timings.group_interval.as_millis(),
                timings.repeat_interval.as_millis(),
            ),
        )
        .unwrap();
        let port = free_port();
        let storage: PathBuf = dir.path().join("data");
        let proc = Proc::start(
            "alertmanager",
            Command::new(binary).args([
                format!("--config.file={}", config.display()),
                format!("--storage.path={}", storage.display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                // An empty address turns the HA cluster (and its gossip port) off.
                "--cluster.listen-address=".to_owned(),
                "--log.level=debug".to_owned(),
            ]),
            dir.path().join("alertmanager.log"),
        );
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("127.0.0.1:{port}");
        wait_for("alertmanager to listen", || {
            std::net::TcpStream::connect(&ready).ok().map(|_| ())
        });
        Some(Self {
            url,
            proc,
            _dir: dir,
        })
    }

    /// The alerts it holds now (`GET /api/v2/alerts`), as JSON.
    pub fn alerts(&self) -> serde_json::Value {
        crate::install_crypto();
        let url = format!("{}/api/v2/alerts", self.url);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::get(&url)
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        })
    }
}
