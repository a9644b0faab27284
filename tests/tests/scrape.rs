//! The scrape loop: a hung agent delays only itself, and the collector
//! reports ready only after the first round has finished.

use muster_tests::{AgentDir, Collector, CollectorOptions, wait_for};

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
    collector.enroll_fake_host("hung", blackhole_port);

    let token = collector.create_token(&["--enroll", "--host", "web1"]);
    let agent = AgentDir::new();
    assert!(agent.enroll(&collector.url, &token).status.success());
    let _proc = agent.start();

    wait_for("web1 is up while the hung host's pull is in flight", || {
        (collector.host("web1")["status"] == "up").then_some(())
    });
    let hung = collector.host("hung");
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
    collector.enroll_fake_host("hung", blackhole.local_addr().unwrap().port());
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
    let hung = collector.host("hung");
    assert_eq!(hung["status"], "down");
    assert!(
        hung["last_error"].as_str().unwrap().contains("timed out"),
        "{hung}"
    );
    drop(blackhole);
}

/// The agent's samples reach the store through the pull, and the query API
/// and `/federate` read them back with the `host` label; after a collector
/// restart the host's cursor resumes and nothing is stored twice.
#[test]
fn samples_flow_from_agent_to_queries_and_survive_a_restart() {
    let mut collector = Collector::start(CollectorOptions {
        tls: true,
        scrape_interval: "1s",
    });
    let agent = collector.enroll_agent("web1", "[sample]\ninterval = \"1s\"\ntimeout = \"1s\"\n");
    let _proc = agent.start();
    let admin = collector.admin_token.clone();

    let query = |collector: &Collector, q: &str| -> serde_json::Value {
        let path = format!("/api/v1/query?query={q}");
        let (status, body) = collector.get(&path, Some(&admin)).unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let load = wait_for("node_load1 of web1 is queryable", || {
        let answer = query(&collector, "node_load1");
        let result = answer["data"]["result"].as_array().cloned()?;
        result.into_iter().find(|r| r["metric"]["host"] == "web1")
    });
    assert_eq!(load["metric"]["__name__"], "node_load1");

    let (status, text) = collector
        .get("/federate?match[]=node_load1", Some(&admin))
        .unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("# TYPE node_load1 untyped\nnode_load1{host=\"web1\"} "),
        "{text}"
    );
    let ingested = collector.host("web1")["samples_ingested"].as_u64().unwrap();
    assert!(ingested > 0, "the host view counts stored samples");
    // Once the collector holds the host's dictionary, the agent leaves it out of the
    // batches whose series are the same.
    wait_for("a batch stored without its dictionary", || {
        (collector.metric("muster_collector_dictionaries_elided_total")? > 0.0).then_some(())
    });
    let before = query(&collector, "count_over_time(node_load1[1h])");
    wait_for("node_load1 keeps growing with elided dictionaries", || {
        let now = query(&collector, "count_over_time(node_load1[1h])");
        (now["data"]["result"][0]["value"][1] != before["data"]["result"][0]["value"][1])
            .then_some(())
    });

    // A restart: the cursor comes back from the store, the overlap is dropped
    // as duplicates, and the count over a window has no repeated sample.
    collector.restart();
    wait_for("web1 is pulled again after the restart", || {
        (collector.host("web1")["samples_ingested"].as_u64()? > 0).then_some(())
    });
    let counts = query(&collector, "count_over_time(node_load1[30s])");
    let count = counts["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap();
    assert!(
        count <= 31.0,
        "at most one sample per second in 30 s (1 s sampling), got {count}"
    );
}
