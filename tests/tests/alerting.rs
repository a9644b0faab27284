//! Alerting end to end, with the real binaries: a probe failing on an agent reaches a
//! webhook naming the host and the probe; our alerts pushed to a real Alertmanager come out
//! of its webhook; notifications survive a receiver that is down for a minute and a
//! collector killed while they wait; a malformed rule file keeps the old rules and says
//! why; silences and acknowledgements through the CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use muster_tests::alertmanager::{Alertmanager, AlertmanagerTimings};
use muster_tests::webhook::{Received, WebhookSink};
use muster_tests::{Collector, CollectorConfig, CollectorOptions, bin, run, wait_for, wait_within};

/// Rules that fire at once without any agent.
const ALWAYS: &str = r#"
[[rule]]
name = "AlwaysOn"
expr = "vector(1)"
labels = { severity = "warning", team = "ops" }
annotations = { summary = "always on ({{ $value }})" }
"#;

/// `[alerting]` with quick timings and `receivers` (TOML) routed by alertname.
fn alerting_section(rules: &Path, receivers: &str, repeat: &str) -> String {
    format!(
        "[alerting]\nevaluation_interval = \"1s\"\nreload_interval = \"1s\"\nrule_files = [{rules:?}]\n\n\
         [alerting.outbox]\nmin_backoff = \"200ms\"\nmax_backoff = \"2s\"\n\n\
         {receivers}\n\
         [alerting.route]\nreceiver = \"sink\"\ngroup_by = [\"alertname\"]\ngroup_wait = \"0s\"\n\
         group_interval = \"1s\"\nrepeat_interval = \"{repeat}\"\n"
    )
}

fn webhook_receiver(url: &str) -> String {
    format!("[[alerting.receivers]]\nname = \"sink\"\nkind = \"webhook\"\nurl = \"{url}\"\n")
}

/// A collector pulling every second with `rules` in a rule file (kept in the returned
/// folder).
fn collector_with(
    rules: &str,
    receivers: &str,
    repeat: &str,
) -> (Collector, tempfile::TempDir, PathBuf) {
    collector_pulling_every("1s", rules, receivers, repeat)
}

/// [`collector_with`] with another scrape interval.
fn collector_pulling_every(
    interval: &'static str,
    rules: &str,
    receivers: &str,
    repeat: &str,
) -> (Collector, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.toml");
    std::fs::write(&file, rules).unwrap();
    let collector = Collector::start_with(
        CollectorOptions {
            tls: true,
            scrape_interval: interval,
        },
        &CollectorConfig {
            data_dir: None,
            sections: alerting_section(&file, receivers, repeat),
        },
    );
    (collector, dir, file)
}

/// Every (alertname, status) a request reported, in the webhook v4 shape.
fn reported(received: &[Received]) -> Vec<(String, String)> {
    received
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .flat_map(|body| {
            body["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    (
                        a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                        a["status"].as_str().unwrap_or("").to_owned(),
                    )
                })
        })
        .collect()
}

fn wait_reported(
    sink: &WebhookSink,
    limit: Duration,
    alertname: &str,
    status: &str,
) -> serde_json::Value {
    wait_within(
        limit,
        &format!("{alertname} {status} at the webhook"),
        || {
            sink.received().iter().find_map(|r| {
                let body: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
                body["alerts"]
                    .as_array()?
                    .iter()
                    .any(|a| a["labels"]["alertname"] == alertname && a["status"] == status)
                    .then_some(body)
            })
        },
    )
}

fn api(collector: &Collector, path: &str) -> serde_json::Value {
    let (status, body) = collector.get(path, Some(&collector.admin_token)).unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_failing_probe_reaches_the_webhook_naming_host_and_probe_then_resolves() {
    let target = WebhookSink::start();
    let sink = WebhookSink::start();
    let rules = "# built-ins only\n";
    let receivers = format!(
        "{}\n[alerting.builtin.ProbeFailing]\nfor = \"0s\"\n",
        webhook_receiver(&format!("{}/hook", sink.url()))
    );
    let (collector, _rules_dir, _) = collector_with(rules, &receivers, "1h");
    let agent = collector.enroll_agent(
        "web1",
        &format!(
            "[[probe]]\nname = \"api\"\nkind = \"http\"\ntarget = \"{}/health\"\ninterval = \"1s\"\n\
             timeout = \"900ms\"\nfailure_threshold = 1\n",
            target.url()
        ),
    );
    let _agent = agent.start();
    wait_for("the probe's series at the collector", || {
        let result = collector.query("muster_probe_healthy", None);
        (result["data"]["result"][0]["value"][1] == "1").then_some(())
    });

    target.answer(503);
    let body = wait_reported(&sink, Duration::from_secs(30), "ProbeFailing", "firing");
    let alert = &body["alerts"][0];
    assert_eq!(alert["labels"]["host"], "web1", "{body}");
    assert_eq!(alert["labels"]["probe"], "api", "{body}");
    let summary = alert["annotations"]["summary"].as_str().unwrap_or("");
    assert!(
        summary.contains("web1") && summary.contains("api"),
        "{body}"
    );
    assert_eq!(body["version"], "4");
    assert_eq!(alert["fingerprint"].as_str().map(str::len), Some(16));

    let listed = api(&collector, "/api/v1/alerts?state=firing");
    assert_eq!(
        listed["alerts"][0]["labels"]["alertname"], "ProbeFailing",
        "{listed}"
    );

    target.answer(200);
    wait_reported(&sink, Duration::from_secs(30), "ProbeFailing", "resolved");
    wait_for("the episode in the history", || {
        let found = api(&collector, "/api/v1/alerts/history?q=web1");
        (found["alerts"][0]["labels"]["probe"] == "api").then_some(())
    });
}

#[test]
fn a_probe_failure_is_pulled_at_once_without_waiting_for_the_next_pull() {
    let target = WebhookSink::start();
    let sink = WebhookSink::start();
    let rules = "[[rule]]\nname = \"TargetDown\"\nexpr = \"probe_success == 0\"\n";
    // One scheduled pull at start, the next an hour later: only an urgent pull can bring
    // the failure in time for this test.
    let (mut collector, _dir, _) = collector_pulling_every(
        "1h",
        rules,
        &webhook_receiver(&format!("{}/hook", sink.url())),
        "1h",
    );
    let agent = collector.enroll_agent(
        "web1",
        &format!(
            "[[probe]]\nname = \"api\"\nkind = \"http\"\ntarget = \"{}/\"\ninterval = \"1s\"\n\
             timeout = \"900ms\"\nfailure_threshold = 1\n",
            target.url()
        ),
    );
    let _agent = agent.start();
    // The pull at enrollment found no agent yet; a restart pulls every host at once.
    collector.restart();
    wait_for("the first pull", || {
        (collector.host("web1")["status"] == "up").then_some(())
    });
    target.answer(503);
    let body = wait_reported(&sink, Duration::from_secs(30), "TargetDown", "firing");
    assert_eq!(body["alerts"][0]["labels"]["probe"], "api", "{body}");
    target.answer(200);
    wait_reported(&sink, Duration::from_secs(30), "TargetDown", "resolved");
}

#[test]
fn alerts_pushed_to_a_real_alertmanager_come_out_of_its_webhook() {
    let sink = WebhookSink::start();
    let Some(alertmanager) = Alertmanager::start(
        &format!("{}/from-alertmanager", sink.url()),
        AlertmanagerTimings::default(),
    ) else {
        return;
    };
    let receivers = format!(
        "[[alerting.receivers]]\nname = \"sink\"\nkind = \"alertmanager\"\nurl = \"{}\"\n",
        alertmanager.url
    );
    // Alertmanager needs a repeat within a quarter of the lease (1m by default).
    let (collector, _dir, file) = collector_with(ALWAYS, &receivers, "1m");
    let body = wait_reported(&sink, Duration::from_secs(30), "AlwaysOn", "firing");
    let alert = &body["alerts"][0];
    assert_eq!(alert["labels"]["severity"], "warning", "{body}");
    assert_eq!(alert["labels"]["team"], "ops", "{body}");
    assert_eq!(alert["annotations"]["summary"], "always on (1)", "{body}");
    // Alertmanager computes the same fingerprint from the same labels.
    let ours = api(&collector, "/api/v1/alerts?state=firing");
    assert_eq!(
        ours["alerts"][0]["fingerprint"], alert["fingerprint"],
        "{ours}"
    );

    // The rule goes away: the alert resolves, and Alertmanager says so.
    std::fs::write(&file, "# nothing\n").unwrap();
    let (status, reply) = collector
        .post(
            "/api/v1/rules/reload",
            "application/json",
            b"{}".to_vec(),
            Some(&collector.admin_token),
        )
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    wait_reported(&sink, Duration::from_secs(30), "AlwaysOn", "resolved");
}

/// Four rules, four groups: the notifications every test below waits for.
fn four_rules() -> String {
    (1..=4)
        .map(|i| format!("[[rule]]\nname = \"Always{i}\"\nexpr = \"vector({i})\"\n"))
        .collect()
}

fn all_four_arrived(sink: &WebhookSink) -> bool {
    let seen = reported(&sink.received());
    (1..=4).all(|i| {
        seen.iter()
            .any(|(name, status)| *name == format!("Always{i}") && status == "firing")
    })
}

fn pending_notifications(collector: &Collector) -> usize {
    api(collector, "/api/v1/notifications?state=pending")["notifications"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn a_receiver_down_for_a_minute_gets_every_notification_after() {
    let mut sink = WebhookSink::start();
    sink.pause();
    let down_since = Instant::now();
    let (collector, _dir, _) = collector_with(
        &four_rules(),
        &webhook_receiver(&format!("{}/hook", sink.url())),
        "1h",
    );
    wait_for("four notifications waiting in the outbox", || {
        (pending_notifications(&collector) == 4).then_some(())
    });
    std::thread::sleep(Duration::from_secs(60).saturating_sub(down_since.elapsed()));
    assert_eq!(sink.count(), 0);
    sink.resume();
    wait_for("all four at the webhook", || {
        all_four_arrived(&sink).then_some(())
    });
    wait_for("an empty outbox", || {
        (pending_notifications(&collector) == 0).then_some(())
    });
    let metrics = collector.get("/metrics", None).unwrap().1;
    assert!(
        metrics.contains("muster_collector_notifications_failed_total"),
        "failed attempts are counted"
    );
}

#[test]
fn notifications_waiting_when_the_collector_is_killed_are_delivered_after_restart() {
    let mut sink = WebhookSink::start();
    sink.pause();
    let (mut collector, _dir, _) = collector_with(
        &four_rules(),
        &webhook_receiver(&format!("{}/hook", sink.url())),
        "1h",
    );
    wait_for("four notifications waiting in the outbox", || {
        (pending_notifications(&collector) == 4).then_some(())
    });
    collector.kill();
    sink.resume();
    collector.start_again();
    wait_for("all four at the webhook after the restart", || {
        all_four_arrived(&sink).then_some(())
    });
}

#[test]
fn a_malformed_rule_file_keeps_the_old_rules_and_says_why() {
    let sink = WebhookSink::start();
    let (collector, _dir, file) = collector_with(
        ALWAYS,
        &webhook_receiver(&format!("{}/hook", sink.url())),
        "1h",
    );
    let names = |rules: &serde_json::Value| -> Vec<String> {
        rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert!(names(&api(&collector, "/api/v1/rules")).contains(&"AlwaysOn".to_owned()));

    std::fs::write(&file, "[[rule]]\nname = \"Broken\"\nexpr = \"rate(\"\n").unwrap();
    let (status, reply) = collector
        .post(
            "/api/v1/rules/reload",
            "application/json",
            b"{}".to_vec(),
            Some(&collector.admin_token),
        )
        .unwrap();
    assert_eq!(status, 400, "{reply}");
    let shown = file.display().to_string();
    assert!(
        reply.contains(&shown) && reply.contains(":3:"),
        "names file:line: {reply}"
    );

    let rules = api(&collector, "/api/v1/rules");
    assert_eq!(rules["reload"]["ok"], false, "{rules}");
    assert!(
        names(&rules).contains(&"AlwaysOn".to_owned()),
        "old rules kept: {rules}"
    );
    assert!(!names(&rules).contains(&"Broken".to_owned()));
    // It goes on evaluating the rules in force.
    wait_reported(&sink, Duration::from_secs(30), "AlwaysOn", "firing");
    assert!(
        collector.proc.log().contains("Broken") || collector.proc.log().contains("rules.toml"),
        "the log says why"
    );
}

fn cli(collector: &Collector, token_file: &Path, args: &[&str]) -> String {
    let config = collector.config_path();
    let mut all: Vec<&str> = Vec::new();
    all.extend_from_slice(&args[..1]);
    let tail = &args[1..];
    // `silence add|list|expire` take the target after the subcommand.
    let (head, rest) = if args[0] == "silence" {
        all.push(tail[0]);
        (all, &tail[1..])
    } else {
        (all, tail)
    };
    let mut command = Command::new(bin("muster-collector"));
    command
        .args(&head)
        .args(["--config", config.to_str().unwrap()])
        .args(["--api-token-file", token_file.to_str().unwrap()])
        .args(rest);
    let out = run(&mut command);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn silences_and_acknowledgements_through_the_cli() {
    let sink = WebhookSink::start();
    let (collector, dir, _) = collector_with(
        ALWAYS,
        &webhook_receiver(&format!("{}/hook", sink.url())),
        "1h",
    );
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &collector.admin_token).unwrap();
    wait_reported(&sink, Duration::from_secs(30), "AlwaysOn", "firing");

    let id = cli(
        &collector,
        &token_file,
        &[
            "silence",
            "add",
            "-m",
            r#"alertname="AlwaysOn""#,
            "--duration",
            "1h",
            "-c",
            "maintenance",
        ],
    );
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 36, "a uuid: {id}");
    let listed = cli(&collector, &token_file, &["silence", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("active"),
        "{listed}"
    );
    wait_for("the alert shown silenced", || {
        cli(&collector, &token_file, &["alerts"])
            .contains("[silenced]")
            .then_some(())
    });
    let expired = cli(&collector, &token_file, &["silence", "expire", &id]);
    assert!(expired.contains(&id), "{expired}");
    let listed = cli(
        &collector,
        &token_file,
        &["silence", "list", "--state", "expired"],
    );
    assert!(listed.contains(&id), "{listed}");

    let fingerprint = api(&collector, "/api/v1/alerts?state=firing")["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let acked = cli(
        &collector,
        &token_file,
        &["alerts", "ack", &fingerprint, "--comment", "on it"],
    );
    assert!(acked.contains("test admin"), "{acked}");
    wait_for("the alert shown acknowledged", || {
        cli(&collector, &token_file, &["alerts", "--state", "firing"])
            .contains("[acked by test admin]")
            .then_some(())
    });

    // Bad input: a clear refusal, nothing created.
    let config = collector.config_path();
    let out = run(Command::new(bin("muster-collector")).args([
        "silence",
        "add",
        "--config",
        config.to_str().unwrap(),
        "--api-token-file",
        token_file.to_str().unwrap(),
        "-m",
        "alertname=~\"(\"",
        "-c",
        "x",
    ]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid regex"), "{stderr}");
}

#[test]
fn bad_alerting_api_bodies_get_clear_errors() {
    let sink = WebhookSink::start();
    let (collector, _dir, _) = collector_with(
        ALWAYS,
        &webhook_receiver(&format!("{}/hook", sink.url())),
        "1h",
    );
    let token = Some(collector.admin_token.as_str());
    let cases: [(&str, &[u8], u16, &str); 5] = [
        ("/api/v1/silences", b"{", 400, "JSON"),
        (
            "/api/v1/silences",
            br#"{"matchers":[],"duration":"1h","comment":"c"}"#,
            400,
            "matcher",
        ),
        (
            "/api/v1/silences",
            br#"{"matchers":["a=\"b\""],"comment":"c"}"#,
            400,
            "ends_at",
        ),
        ("/api/v1/alerts/zz/ack", b"{}", 400, "fingerprint"),
        (
            "/api/v1/alerts/00000000000000ab/ack",
            b"{}",
            404,
            "no alert",
        ),
    ];
    for (path, body, status, words) in cases {
        let (got, reply) = collector
            .post(path, "application/json", body.to_vec(), token)
            .unwrap();
        assert_eq!(got, status, "{path}: {reply}");
        assert!(reply.contains(words), "{path}: {reply}");
    }
    let (got, reply) = collector
        .get("/api/v1/alerts?state=burning", token)
        .unwrap();
    assert_eq!(got, 400, "{reply}");
    let silences = api(&collector, "/api/v1/silences");
    assert_eq!(silences["silences"].as_array().map(Vec::len), Some(0));
}
