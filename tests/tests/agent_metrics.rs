//! The agent's sampling end to end: `/metrics` passes promtool (apart from
//! node_exporter's own camelCase meminfo names), `/v1/samples` serves the
//! buffered rounds in both encodings, and the buffer survives a restart.

use muster_shared::codec::{Limits, decode_frame};
use muster_shared::protocol::samples::SampleBatch;
use muster_shared::protocol::{BATCH_MEDIA_TYPE, is_compatible};
use muster_tests::{
    AgentDir, Collector, CollectorOptions, free_port, http_client, promtool_check_metrics, runtime,
    wait_for,
};

/// promtool findings accepted because node_exporter's own names trip them:
/// meminfo keys are kept as the kernel writes them (`node_memory_MemTotal_bytes`).
const ACCEPTED_LINT: &[(&str, &str)] = &[(
    "node_memory_",
    "metric names should be written in 'snake_case' not 'camelCase'",
)];

struct Fixture {
    collector: Collector,
    agent: AgentDir,
    proc: muster_tests::Proc,
    metrics_port: u16,
}

fn fixture() -> Fixture {
    fixture_with("")
}

fn fixture_with(extra_config: &str) -> Fixture {
    let collector = Collector::start(CollectorOptions::default());
    let token = collector.create_token(&["--enroll", "--host", "web1"]);
    let agent = AgentDir::new();
    let out = agent.enroll(&collector.url, &token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics_port = free_port();
    agent.append_config(&format!(
        "[prometheus]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n[sample]\ninterval = \"1s\"\ntimeout = \"1s\"\n{extra_config}"
    ));
    let proc = agent.start();
    Fixture {
        collector,
        agent,
        proc,
        metrics_port,
    }
}

fn metrics(port: u16) -> Option<String> {
    let client = http_client(None);
    runtime().block_on(async move {
        let response = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .ok()?;
        let content_type = response
            .headers()
            .get("content-type")?
            .to_str()
            .ok()?
            .to_owned();
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let body = response.text().await.ok()?;
        (!body.is_empty()).then_some(body)
    })
}

fn samples(f: &Fixture, query: &str, json: bool) -> SampleBatch {
    let client = f.agent.collector_client(&f.collector, "web1");
    let url = format!("https://127.0.0.1:{}/v1/samples{query}", f.agent.port);
    runtime().block_on(async move {
        let accept = if json {
            "application/json"
        } else {
            BATCH_MEDIA_TYPE
        };
        let response = client
            .get(url)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        if json {
            serde_json::from_slice(&body).unwrap()
        } else {
            decode_frame::<SampleBatch>(&body, &Limits::DEFAULT, is_compatible)
                .unwrap()
                .1
        }
    })
}

#[test]
fn agent_metrics_pass_promtool_with_node_exporter_names() {
    let f = fixture();
    let body = wait_for("the agent serves /metrics", || {
        metrics(f.metrics_port).filter(|b| b.contains("node_load1 "))
    });
    for name in [
        "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}",
        "node_memory_MemAvailable_bytes ",
        "node_filesystem_avail_bytes{",
        "node_network_receive_bytes_total{device=",
        "node_boot_time_seconds ",
        "node_scrape_collector_success{collector=\"cpu\"} 1",
        "process_resident_memory_bytes ",
        "muster_agent_buffer_rounds ",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics");
    }

    let Some((_, report)) = promtool_check_metrics(&body, "checks the agent's /metrics") else {
        return;
    };
    let unexpected: Vec<&str> = report
        .iter()
        .map(String::as_str)
        .filter(|line| {
            !ACCEPTED_LINT
                .iter()
                .any(|(prefix, lint)| line.starts_with(prefix) && line.contains(lint))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "promtool findings beyond the accepted ones:\n{}",
        unexpected.join("\n")
    );
}

#[test]
fn samples_are_served_in_both_encodings_and_survive_a_restart() {
    let mut f = fixture();
    let first = wait_for("two rounds are buffered", || {
        let batch = samples(&f, "?after=0", false);
        (batch.rounds.len() >= 2).then_some(batch)
    });
    first.validate().unwrap();
    assert_eq!(first.gap, None);
    assert_eq!(first.next_after, first.last_seq);
    let load = first
        .series
        .iter()
        .find(|s| s.metric == "node_load1")
        .expect("node_load1 defined");
    assert!(first.rounds[0].values.iter().any(|v| v.series == load.id));

    // JSON carries the same rounds.
    let json = samples(&f, &format!("?after=0&max={}", first.rounds.len()), true);
    assert_eq!(json.first_seq, first.first_seq);
    assert_eq!(json.rounds.len(), first.rounds.len());

    // Paging: max=1 from the cursor gives the next round and says there is more.
    let page = samples(&f, &format!("?after={}&max=1", first.first_seq), false);
    assert_eq!(page.first_seq, first.first_seq + 1);
    assert_eq!(page.rounds.len(), 1);

    // Restart: everything buffered is still there, and sequence numbers go on.
    let before = first.last_seq;
    assert!(f.proc.stop().success(), "agent exits 0:\n{}", f.proc.log());
    f.proc = f.agent.start();
    let after = wait_for("new rounds after the restart", || {
        let batch = samples(&f, &format!("?after={before}"), false);
        (!batch.rounds.is_empty()).then_some(batch)
    });
    assert!(
        after.first_seq > before,
        "seq goes on: {} after {before}",
        after.first_seq
    );
    let all = samples(&f, "?after=0", false);
    assert_eq!(
        all.first_seq, first.first_seq,
        "rounds from before the restart are kept"
    );
}

#[test]
fn bad_samples_queries_get_a_json_400() {
    let f = fixture();
    let client = f.agent.collector_client(&f.collector, "web1");
    let url = format!(
        "https://127.0.0.1:{}/v1/samples?after=minus-one",
        f.agent.port
    );
    let (status, body) = runtime().block_on(async move {
        let response = client.get(url).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad query"), "{body}");
    drop(f);
}

#[test]
fn a_cursor_from_another_life_gets_409() {
    let f = fixture();
    let client = f.agent.collector_client(&f.collector, "web1");
    let url = format!(
        "https://127.0.0.1:{}/v1/samples?after=999999999",
        f.agent.port
    );
    let (status, body) = runtime().block_on(async move {
        let response = client.get(url).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("ask again with after=0"), "{body}");
}

#[test]
fn evicted_rounds_are_reported_as_a_gap() {
    // Rounds older than 2 s are evicted: a collector asking from seq 1 after
    // a few rounds must be told what it missed.
    let f = fixture_with("\n[buffer]\nmax_age = \"2s\"\n");
    // Seq 1 must exist before a cursor at 1 is valid (else 409).
    wait_for("the first rounds are buffered", || {
        (samples(&f, "?after=0", false).last_seq >= 2).then_some(())
    });
    let batch = wait_for("the oldest rounds are evicted", || {
        let batch = samples(&f, "?after=1", false);
        batch.gap.is_some().then_some(batch)
    });
    batch.validate().unwrap();
    let gap = batch.gap.unwrap();
    assert_eq!(gap.first_missing, 2);
    assert_eq!(
        gap.last_missing + 1,
        batch.first_seq,
        "the gap ends where the rounds start"
    );
}
