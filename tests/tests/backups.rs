//! The collector's side of backups against the fake agent: sets, snapshots and history
//! through the API, backup and restore jobs (idempotent, audited, refused by the agent's
//! allowlist), roles, an agent without backups, the bounded and polled BackupLog, and the
//! `muster-collector backup` commands.

use std::process::Command;

use muster_tests::fake_agent::FakeAgent;
use muster_tests::fake_agent::backups::{FakeBackups, RESTORE_ROOT};
use muster_tests::{Collector, CollectorConfig, CollectorOptions, bin, run, wait_for};
use serde_json::Value;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn post_json(collector: &Collector, path: &str, body: &str, token: &str) -> (u16, Value) {
    let (status, answer) = collector
        .post(
            path,
            "application/json",
            body.as_bytes().to_vec(),
            Some(token),
        )
        .unwrap();
    (status, json(&answer))
}

fn get_json(collector: &Collector, path: &str, token: &str) -> (u16, Value) {
    let (status, answer) = collector.get(path, Some(token)).unwrap();
    (status, json(&answer))
}

/// Polls `url` until the job ends; its final status.
fn wait_for_job(collector: &Collector, url: &str, token: &str) -> Value {
    wait_for("the job ends", || {
        let (status, job) = get_json(collector, url, token);
        assert_eq!(status, 200, "{job}");
        matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        )
        .then_some(job)
    })
}

#[test]
fn backups_and_restores_go_through_the_agent_and_are_recorded() {
    let collector = Collector::start(CollectorOptions::default());
    let agent = FakeAgent::start(&collector, "web1");
    agent.serve_backups(FakeBackups::example());
    let viewer = collector.create_token(&["--role", "viewer", "--name", "dash"]);
    let ops = collector.create_token(&["--role", "operator", "--name", "ops"]);

    // Sets, live; their last runs go to the history once however often they are seen.
    for _ in 0..2 {
        let (status, list) = get_json(&collector, "/api/v1/hosts/web1/backups", &viewer);
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["sets"][0]["set"], "etc");
        assert_eq!(list["sets"][0]["dedup_ratio"], 1.33);
    }
    let (status, history) = get_json(&collector, "/api/v1/hosts/web1/backups/history", &viewer);
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["entries"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history["entries"][0]["event"]["run"]["trigger"], "schedule");

    let (status, snaps) = get_json(
        &collector,
        "/api/v1/hosts/web1/backups/etc/snapshots",
        &viewer,
    );
    assert_eq!(status, 200, "{snaps}");
    assert_eq!(snaps["snapshots"].as_array().unwrap().len(), 2);
    let latest = snaps["snapshots"][1]["id"].as_str().unwrap().to_owned();
    let (status, err) = get_json(
        &collector,
        "/api/v1/hosts/web1/backups/nope/snapshots",
        &viewer,
    );
    assert_eq!(status, 404, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("unknown backup set"),
        "{err}"
    );

    // Runs: operators only; a repeated key is one job.
    let body = r#"{"set":"etc","idempotency_key":"nightly-1"}"#;
    let (status, _) = post_json(&collector, "/api/v1/hosts/web1/backups", body, &viewer);
    assert_eq!(status, 403);
    let (status, first) = post_json(&collector, "/api/v1/hosts/web1/backups", body, &ops);
    assert_eq!(status, 202, "{first}");
    let (status, again) = post_json(&collector, "/api/v1/hosts/web1/backups", body, &ops);
    assert_eq!(status, 202, "{again}");
    assert_eq!(first["job"]["id"], again["job"]["id"]);
    assert_eq!(agent.jobs_created(), 1);
    assert!(
        agent
            .job_requests()
            .iter()
            .all(|r| r.idempotency_key == "nightly-1")
    );
    let url = first["url"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        format!(
            "/api/v1/hosts/web1/jobs/{}",
            first["job"]["id"].as_str().unwrap()
        )
    );
    let done = wait_for_job(&collector, &url, &viewer);
    assert_eq!(done["state"], "succeeded", "{done}");
    // Without a key the collector makes one per request.
    let (status, other) = post_json(
        &collector,
        "/api/v1/hosts/web1/backups",
        r#"{"set":"etc"}"#,
        &ops,
    );
    assert_eq!(status, 202, "{other}");
    assert_ne!(other["job"]["id"], first["job"]["id"]);
    assert!(
        other["job"]["idempotency_key"]
            .as_str()
            .unwrap()
            .starts_with("backup-")
    );

    let (_, history) = get_json(
        &collector,
        "/api/v1/hosts/web1/backups/history?set=etc",
        &viewer,
    );
    let jobs: Vec<&Value> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].get("job"))
        .collect();
    assert_eq!(jobs.len(), 2, "{history}");
    assert!(
        jobs.iter()
            .any(|j| j["status"]["state"] == "succeeded" && j["requested_by"] == "ops"),
        "{history}"
    );

    // Restores: the agent's allowlist decides; `latest` is the newest snapshot; audited.
    let outside = r#"{"set":"etc","snapshot":"latest","target_dir":"/etc"}"#;
    let (status, err) = post_json(&collector, "/api/v1/hosts/web1/restores", outside, &ops);
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("outside the allowed restore paths"),
        "{err}"
    );
    let inside = format!(
        r#"{{"set":"etc","snapshot":"latest","target_dir":"{RESTORE_ROOT}/etc","sub_path":"/etc/nginx"}}"#
    );
    let (status, started) = post_json(&collector, "/api/v1/hosts/web1/restores", &inside, &ops);
    assert_eq!(status, 202, "{started}");
    let restore = agent.job_requests().pop().unwrap();
    let spec = serde_json::to_value(&restore.spec).unwrap();
    assert_eq!(spec["restore"]["snapshot_id"], latest.as_str());
    assert_eq!(spec["restore"]["sub_path"], "etc/nginx");

    let (status, audit) = get_json(&collector, "/api/v1/audit", &collector.admin_token);
    assert_eq!(status, 200, "{audit}");
    let restores: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "backup.restore")
        .collect();
    assert_eq!(restores.len(), 2, "{audit}");
    assert_eq!(restores[0]["actor"], "ops");
    assert_eq!(restores[0]["target"], "web1");
    assert_eq!(
        restores[0]["detail"]["target_dir"],
        format!("{RESTORE_ROOT}/etc")
    );
    assert_eq!(restores[0]["detail"]["outcome"], "started");
    assert!(
        restores[1]["detail"]["outcome"]
            .as_str()
            .unwrap()
            .contains("outside"),
        "{audit}"
    );
    let (status, _) = get_json(&collector, "/api/v1/audit", &ops);
    assert_eq!(status, 403, "the audit log is for admins");

    // An agent without the capability: 503 naming it.
    let _plain = FakeAgent::start(&collector, "web2");
    let (status, err) = get_json(&collector, "/api/v1/hosts/web2/backups", &viewer);
    assert_eq!(status, 503, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("does not serve backups"),
        "{err}"
    );
}

/// `muster-collector backup ...` as the operator `token`.
fn backup_cli(collector: &Collector, token: &str, args: &[&str]) -> (bool, String, String) {
    let config = collector.config_path();
    let mut all = vec!["backup", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run(Command::new(bin("muster-collector"))
        .args(&all)
        .env("MUSTER_TOKEN", token));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_runs_and_waits_and_the_history_is_bounded() {
    let collector = Collector::start_with(
        CollectorOptions::default(),
        &CollectorConfig {
            data_dir: None,
            sections: "[backup]\nhistory_per_set = 3\npoll_interval = \"1s\"\n".to_owned(),
        },
    );
    let agent = FakeAgent::start(&collector, "web1");
    agent.serve_backups(FakeBackups::example());
    let ops = collector.create_token(&["--role", "operator", "--name", "ops"]);

    // The poll records the agent's last run with nobody listing the sets.
    wait_for("the poll records the last run", || {
        let (status, history) = get_json(&collector, "/api/v1/hosts/web1/backups/history", &ops);
        assert_eq!(status, 200, "{history}");
        history["entries"][0]["event"].get("run").map(|_| ())
    });

    let (ok, out, err) = backup_cli(&collector, &ops, &["list", "web1"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("etc  last success 20") && out.contains("dedup 1.33x"),
        "{out}"
    );
    assert!(out.contains("broken  last success never"), "{out}");
    let (ok, out, err) = backup_cli(&collector, &ops, &["snapshots", "web1", "etc"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");

    for _ in 0..4 {
        let (ok, out, err) = backup_cli(&collector, &ops, &["run", "web1", "etc", "--wait"]);
        assert!(ok, "{out}{err}");
        assert!(
            out.contains("running") && out.trim_end().ends_with("succeeded"),
            "{out}"
        );
    }
    let (ok, out, err) = backup_cli(&collector, &ops, &["run", "web1", "broken", "--wait"]);
    assert!(!ok, "a failed job fails the command: {out}");
    assert!(err.contains("failed: source unreadable"), "{err}");
    let (ok, out, err) = backup_cli(
        &collector,
        &ops,
        &["restore", "web1", "etc", "latest", "--target", "/root"],
    );
    assert!(!ok, "{out}");
    assert!(err.contains("outside the allowed restore paths"), "{err}");

    // 1 run (polled and listed) and 4 jobs: only the newest 3 of `etc` are kept.
    let (ok, out, err) = backup_cli(&collector, &ops, &["history", "web1", "--set", "etc"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.lines()
            .all(|l| l.contains("backup job") && l.contains("succeeded")),
        "{out}"
    );
    let (ok, out, _) = backup_cli(&collector, &ops, &["history", "web1", "--set", "broken"]);
    assert!(ok);
    assert!(out.contains("failed  source unreadable"), "{out}");
}
