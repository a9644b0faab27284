//! Enrollment end to end: `token create --enroll` → `muster-agent enroll` →
//! `muster-agent run` → the collector pulls it over mutual TLS.

use std::os::unix::fs::PermissionsExt;

use muster_tests::{AgentDir, Collector, CollectorOptions, wait_for};

#[test]
fn agent_enrolls_and_is_pulled_over_mutual_tls() {
    let collector = Collector::start(CollectorOptions::default());
    let token = collector.create_token(&["--enroll", "--host", "web1", "--ttl", "10m"]);
    assert!(token.starts_with("mse_"), "{token}");

    let agent = AgentDir::new();
    let out = agent.enroll(&collector.url, &token);
    assert!(
        out.status.success(),
        "enroll failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled as web1"));
    for file in ["agent.key", "agent.crt", "ca.crt"] {
        let path = agent.dir.path().join("pki").join(file);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} mode");
    }
    assert_eq!(
        std::fs::read_to_string(agent.dir.path().join("pki/ca.crt")).unwrap(),
        collector.ca_pem,
        "the agent stores the fleet CA"
    );

    let mut proc = agent.start();
    let host = wait_for("web1 is up", || {
        let hosts = collector.hosts();
        hosts
            .as_array()
            .and_then(|a| a.iter().find(|h| h["id"] == "web1" && h["status"] == "up"))
            .cloned()
    });
    assert_eq!(host["address"], format!("127.0.0.1:{}", agent.port));
    assert_eq!(host["agent_version"], env!("CARGO_PKG_VERSION"));
    assert!(host["last_error"].is_null());

    // The agent going away is seen as down, with the reason.
    assert!(
        proc.stop().success(),
        "agent exits 0 on SIGTERM:\n{}",
        proc.log()
    );
    let host = wait_for("web1 is down", || {
        collector
            .hosts()
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|h| h["id"] == "web1" && h["status"] == "down")
            })
            .cloned()
    });
    assert!(host["last_error"].as_str().is_some_and(|e| !e.is_empty()));
}

#[test]
fn enrollment_token_is_refused_a_second_time() {
    let collector = Collector::start(CollectorOptions::default());
    let token = collector.create_token(&["--enroll", "--host", "web2"]);
    let first = AgentDir::new();
    assert!(first.enroll(&collector.url, &token).status.success());

    let second = AgentDir::new();
    let out = second.enroll(&collector.url, &token);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("enrollment token already used"), "{stderr}");
    assert!(
        !second.dir.path().join("pki").exists(),
        "a failed enroll writes nothing"
    );
}

#[test]
fn expired_enrollment_token_is_refused() {
    let collector = Collector::start(CollectorOptions::default());
    let token = collector.create_token(&["--enroll", "--host", "web3", "--ttl", "1ms"]);
    let agent = AgentDir::new();
    let out = agent.enroll(&collector.url, &token);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("enrollment token expired"), "{stderr}");
    assert!(
        !agent.dir.path().join("pki").exists(),
        "a failed enroll writes nothing"
    );
}

#[test]
fn agent_refuses_a_collector_whose_ca_does_not_match_the_token() {
    let collector = Collector::start(CollectorOptions::default());
    let token = collector.create_token(&["--enroll", "--host", "web4"]);
    // Same secret, another CA fingerprint: the pin must fail before anything is sent.
    let secret = token.rsplit('_').next().unwrap();
    let forged = format!("mse_{}_{secret}", "ab".repeat(32));
    let agent = AgentDir::new();
    let out = agent.enroll(&collector.url, &forged);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach the collector"), "{stderr}");
    assert!(stderr.to_lowercase().contains("fingerprint"), "{stderr}");
    assert!(!agent.dir.path().join("pki").exists());

    // The real token still works afterwards: nothing was consumed.
    assert!(agent.enroll(&collector.url, &token).status.success());
}

#[test]
fn malformed_token_and_plain_http_off_loopback_are_refused_locally() {
    let agent = AgentDir::new();
    let out = agent.enroll("https://127.0.0.1:1", "mse_nope");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed enrollment token"));

    let token = format!("mse_{}_{}", "ab".repeat(32), "cd".repeat(32));
    let out = agent.enroll("http://192.0.2.1:7070", &token);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only for a loopback collector"));
}
