//! The scrape loop: a hung agent delays only itself, and the collector
//! reports ready only after the first round has finished.

use muster_shared::protocol::PROTOCOL_VERSION;
use muster_shared::protocol::enroll::EnrollRequest;
use muster_shared::tls::{Role, generate_csr};
use muster_tests::{AgentDir, Collector, CollectorOptions, wait_for};

/// Enrolls a host through the API directly, as an agent would, recording
/// `listen_port` as its address; returns nothing else (no agent runs there).
fn enroll_fake_host(collector: &Collector, host: &str, listen_port: u16) {
    let token = collector.create_token(&["--enroll", "--host", host]);
    let csr = generate_csr(&Role::Agent("x".into())).unwrap();
    let body = serde_json::to_vec(&EnrollRequest {
        token,
        csr_pem: csr.csr_pem,
        listen_port,
        agent_version: "test".into(),
        protocol_version: PROTOCOL_VERSION,
    })
    .unwrap();
    let (status, text) = collector
        .post("/api/v1/enroll", "application/json", body, None)
        .unwrap();
    assert_eq!(status, 200, "{text}");
}

fn host(collector: &Collector, id: &str) -> serde_json::Value {
    collector
        .hosts()
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} is enrolled"))
}

#[test]
fn a_hung_agent_delays_only_itself() {
    // A long timeout makes the hung pull outlast the whole test.
    let collector = Collector::start(CollectorOptions {
        tls: true,
        scrape_interval: "60s",
    });
    // A listener that never answers: connections complete in the kernel's
    // backlog and the TLS handshake waits until the scrape timeout.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let blackhole_port = blackhole.local_addr().unwrap().port();
    enroll_fake_host(&collector, "hung", blackhole_port);

    let token = collector.create_token(&["--enroll", "--host", "web1"]);
    let agent = AgentDir::new();
    assert!(agent.enroll(&collector.url, &token).status.success());
    let _proc = agent.start();

    wait_for("web1 is up while the hung host's pull is in flight", || {
        (host(&collector, "web1")["status"] == "up").then_some(())
    });
    let hung = host(&collector, "hung");
    assert_eq!(hung["status"], "down");
    assert!(
        hung["last_scrape"].is_null(),
        "the hung pull has not finished: {hung}"
    );
    drop(blackhole);
}

#[test]
fn ready_waits_for_the_first_round() {
    let mut collector = Collector::start(CollectorOptions {
        tls: true,
        scrape_interval: "10s",
    });
    // No hosts at start: ready at once.
    wait_for("ready with no hosts", || {
        collector
            .get("/health/ready", None)
            .ok()
            .filter(|(s, _)| *s == 200)
    });

    // After a restart with a hung host enrolled, the first round lasts until
    // that pull times out: not ready until then.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    enroll_fake_host(&collector, "hung", blackhole.local_addr().unwrap().port());
    collector.restart();
    let (status, body) = collector.get("/health/ready", None).unwrap();
    assert_eq!(status, 503, "not ready during the first round: {body}");
    assert!(
        collector
            .get("/metrics", None)
            .unwrap()
            .1
            .contains("muster_collector_ready 0")
    );
    wait_for("ready once the hung pull timed out", || {
        collector
            .get("/health/ready", None)
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    let hung = host(&collector, "hung");
    assert_eq!(hung["status"], "down");
    assert!(
        hung["last_error"].as_str().unwrap().contains("timed out"),
        "{hung}"
    );
    drop(blackhole);
}
