//! `muster-collector dev`: one command gives a collector and a local agent;
//! a second start reuses everything; SIGTERM stops both; the agent never
//! outlives the collector, even after a SIGKILL.

use std::process::Command;

use muster_tests::{Proc, bin, free_port, http_client, pid_alive, runtime, wait_for};
use nix::sys::signal::Signal;

fn start_dev(dir: &std::path::Path, port: u16, log: &str) -> Proc {
    Proc::start(
        "dev",
        Command::new(bin("muster-collector")).args([
            "dev",
            "--data-dir",
            dir.join("muster-dev").to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ]),
        dir.join(log),
    )
}

fn hosts(port: u16, token: &str) -> Option<serde_json::Value> {
    let client = http_client(None);
    runtime().block_on(async move {
        let response = client
            .get(format!("http://127.0.0.1:{port}/api/v1/hosts"))
            .bearer_auth(token)
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    })
}

/// PIDs of processes whose command line mentions `needle`.
fn pids_with(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) && pid_alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn dev_mode_starts_reuses_and_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut dev = start_dev(tmp.path(), port, "dev1.log");
    let token_path = tmp.path().join("muster-dev/admin.token");
    let token = wait_for("admin token written", || {
        std::fs::read_to_string(&token_path).ok()
    });
    let token = token.trim().to_owned();

    let host = wait_for("the local agent is up", || {
        hosts(port, &token)?
            .as_array()?
            .iter()
            .find(|h| h["status"] == "up")
            .cloned()
    });
    assert!(host["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    let out = dev.log();
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}")),
        "prints the URL:\n{out}"
    );
    assert!(
        out.contains("admin.token"),
        "says where the token is:\n{out}"
    );

    // Both configs reproduce the setup as two processes.
    let dir = tmp.path().join("muster-dev");
    for (binary, config) in [
        ("muster-collector", "collector.toml"),
        ("muster-agent", "agent.toml"),
    ] {
        let out = muster_tests::run(Command::new(bin(binary)).args([
            "check-config",
            "--config",
            dir.join(config).to_str().unwrap(),
        ]));
        assert!(
            out.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let agent_config = dir.join("agent.toml");
    let agents = pids_with(agent_config.to_str().unwrap());
    assert_eq!(agents.len(), 1, "one agent child");
    assert!(
        dev.stop().success(),
        "dev exits 0 on SIGTERM:\n{}",
        dev.log()
    );
    wait_for("the agent child stops with dev mode", || {
        (!pid_alive(agents[0])).then_some(())
    });

    // Second start: same token, same host, nothing recreated.
    let mut dev = start_dev(tmp.path(), port, "dev2.log");
    wait_for("the local agent is up again", || {
        hosts(port, &token)?
            .as_array()?
            .iter()
            .find(|h| h["status"] == "up" && h["id"] == host["id"])
            .cloned()
    });
    assert!(dev.log().contains("reusing dev folder"), "{}", dev.log());
    assert_eq!(std::fs::read_to_string(&token_path).unwrap().trim(), token);
    assert!(dev.stop().success());
}

#[test]
fn the_agent_child_never_outlives_a_killed_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let dev = start_dev(tmp.path(), port, "dev.log");
    let agent_config = tmp.path().join("muster-dev/agent.toml");
    let agent = wait_for("the agent child runs", || {
        let pids = pids_with(agent_config.to_str().unwrap());
        (pids.len() == 1).then(|| pids[0])
    });
    dev.signal(Signal::SIGKILL);
    wait_for("the agent child exits after its parent was killed", || {
        (!pid_alive(agent)).then_some(())
    });
    drop(dev);
}

#[test]
fn alert_webhook_gets_a_host_down_alert_and_is_kept_in_collector_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = muster_tests::webhook::WebhookSink::start();
    let port = free_port();
    let dir = tmp.path().join("muster-dev");
    let start = |url: &str, log: &str| {
        Proc::start(
            "dev",
            Command::new(bin("muster-collector")).args([
                "dev",
                "--data-dir",
                dir.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--alert-webhook",
                url,
            ]),
            tmp.path().join(log),
        )
    };
    let mut dev = start(&format!("{}/first", sink.url()), "dev1.log");
    let token = wait_for("admin token written", || {
        std::fs::read_to_string(dir.join("admin.token")).ok()
    });
    wait_for("the local agent is up", || {
        hosts(port, token.trim())?
            .as_array()?
            .iter()
            .any(|h| h["status"] == "up")
            .then_some(())
    });

    // A stopped agent stops answering: HostDown fires and reaches the webhook.
    let agent_config = dir.join("agent.toml");
    let agents = pids_with(agent_config.to_str().unwrap());
    assert_eq!(agents.len(), 1, "one agent child");
    let agent = nix::unistd::Pid::from_raw(agents[0]);
    nix::sys::signal::kill(agent, Signal::SIGSTOP).unwrap();
    let body = muster_tests::wait_within(
        std::time::Duration::from_secs(120),
        "HostDown at the webhook",
        || {
            sink.received().into_iter().find_map(|r| {
                let body = r.json();
                (r.path == "/first" && body["alerts"][0]["labels"]["alertname"] == "HostDown")
                    .then_some(body)
            })
        },
    );
    nix::sys::signal::kill(agent, Signal::SIGCONT).unwrap();
    assert_eq!(body["status"], "firing", "{body}");
    assert_eq!(body["version"], "4", "{body}");
    assert!(dev.stop().success(), "{}", dev.log());

    // Written into collector.toml, and replaced (not repeated) by a second start.
    let mut dev = start(&format!("{}/second", sink.url()), "dev2.log");
    wait_for("the second start listens", || {
        hosts(port, token.trim()).map(|_| ())
    });
    assert!(dev.stop().success(), "{}", dev.log());
    let config = std::fs::read_to_string(dir.join("collector.toml")).unwrap();
    assert_eq!(
        config.matches("[[alerting.receivers]]").count(),
        1,
        "{config}"
    );
    assert!(
        config.contains("/second") && !config.contains("/first"),
        "{config}"
    );
    let out = muster_tests::run(Command::new(bin("muster-collector")).args([
        "check-config",
        "--config",
        dir.join("collector.toml").to_str().unwrap(),
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
