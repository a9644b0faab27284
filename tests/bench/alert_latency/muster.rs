//! Muster's side: one agent probing every target over HTTP every second (failure threshold
//! 1), the collector pulling it every second and evaluating `probe_success == 0` every
//! second, routing to a webhook receiver with group_wait 0 and group_interval 1 s.

use std::time::Duration;

use muster_tests::{AgentDir, Collector, CollectorConfig, CollectorOptions, Proc};

use super::{ALERT_NAME, INTERVAL, Side};

/// The running pair; both stop by PID when dropped (the agent first).
pub struct Muster {
    _agent: Proc,
    _agent_dir: AgentDir,
    _collector: Collector,
    _rules: tempfile::TempDir,
}

impl Muster {
    pub fn start(target_urls: &[String], webhook_url: &str) -> anyhow::Result<Self> {
        let secs = INTERVAL.as_secs_f64();
        let rules_dir = tempfile::Builder::new().prefix("alert-rules-").tempdir()?;
        let rules = rules_dir.path().join("latency.toml");
        std::fs::write(
            &rules,
            format!(
                "[[rule]]\nname = \"{ALERT_NAME}\"\nexpr = \"probe_success == 0\"\n\
                 annotations = {{ summary = \"{{{{ $labels.target }}}} is down\" }}\n"
            ),
        )?;
        let collector = Collector::start_with(
            CollectorOptions {
                tls: true,
                scrape_interval: "1s",
            },
            &CollectorConfig {
                data_dir: None,
                sections: format!(
                    "[alerting]\nevaluation_interval = \"{secs}s\"\nrule_files = [{rules:?}]\n\n\
                     [[alerting.receivers]]\nname = \"sink\"\nkind = \"webhook\"\nurl = \"{webhook_url}/muster\"\n\n\
                     [alerting.route]\nreceiver = \"sink\"\ngroup_by = [\"...\"]\ngroup_wait = \"0s\"\n\
                     group_interval = \"{secs}s\"\nrepeat_interval = \"1h\"\n"
                ),
            },
        );
        let probes: String = target_urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                format!(
                    "[[probe]]\nname = \"t{i}\"\nkind = \"http\"\ntarget = \"{url}\"\n\
                     interval = \"{secs}s\"\ntimeout = \"{}ms\"\nfailure_threshold = 1\n\
                     success_threshold = 1\n\n",
                    INTERVAL.mul_f64(0.9).as_millis()
                )
            })
            .collect();
        let agent_dir = collector.enroll_agent("bench", &probes);
        let agent = agent_dir.start();
        muster_tests::wait_for("the collector to pull the benchmark agent", || {
            let hosts = collector.hosts();
            (hosts[0]["status"] == "up").then_some(())
        });
        Ok(Self {
            _agent: agent,
            _agent_dir: agent_dir,
            _collector: collector,
            _rules: rules_dir,
        })
    }
}

impl Side for Muster {
    fn name(&self) -> &'static str {
        "muster"
    }

    fn settle(&self) -> Duration {
        Duration::from_secs(3)
    }
}
