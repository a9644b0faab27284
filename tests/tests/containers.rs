//! The container sampler against the real Docker engine, through the
//! agent's plain-HTTP Prometheus endpoint: running containers appear with
//! cAdvisor's names and labels, and a stopped one loses its usage series
//! while its state turns to `exited`.

use std::time::{Duration, Instant};

use muster_tests::docker::{DockerKit, Sample, TEST_LABEL, samples};
use muster_tests::{
    AgentDir, Collector, CollectorOptions, free_port, http_client, runtime, wait_for,
};

/// The agent's sampling interval in this test.
const INTERVAL: Duration = Duration::from_secs(1);

/// Polls `check` until it returns `Some`, failing after `within` (plus a
/// little scheduling slack on a busy 2-core machine) with what never happened.
fn wait_within<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within + Duration::from_secs(3);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "never happened within {within:?} (+3s slack): {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn of_container<'a>(series: &'a [Sample], name: &str) -> Option<&'a Sample> {
    series.iter().find(|s| s.label("name") == name)
}

#[test]
fn containers_appear_with_cadvisor_labels_and_a_stopped_one_leaves() {
    let Some(mut kit) = DockerKit::new("the container sampler's end-to-end test") else {
        return;
    };
    let started: Vec<(String, String)> =
        (0..3).map(|i| kit.start_sleeper(&i.to_string())).collect();

    let collector = Collector::start(CollectorOptions::default());
    let token = collector.create_token(&["--enroll", "--host", "containers"]);
    let agent = AgentDir::new();
    let out = agent.enroll(&collector.url, &token);
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let config = std::fs::read_to_string(agent.config()).unwrap();
    std::fs::write(
        agent.config(),
        format!(
            "{config}\n[prometheus]\nlisten = \"127.0.0.1:{port}\"\n\n[sample]\ninterval = \"1s\"\ntimeout = \"1s\"\nsamplers = [\"container\"]\n\n[sample.container]\nlabel_allowlist = [\"{TEST_LABEL}\"]\n"
        ),
    )
    .unwrap();
    let mut proc = agent.start();

    let rt = runtime();
    let client = http_client(None);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let metrics = || -> Option<String> {
        rt.block_on(async {
            let response = client.get(&url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.text().await.ok()
        })
    };
    let first = wait_for("the agent serves /metrics", || {
        if let Some(status) = proc.exited() {
            panic!("agent exited with {status}:\n{}", proc.log());
        }
        metrics()
    });
    drop(first);

    // The inventory lists every container at connect: by the first passes
    // that see it, all three are there.
    wait_within(
        2 * INTERVAL,
        "three containers' cpu and memory series",
        || {
            let body = metrics()?;
            let cpu = samples(&body, "container_cpu_usage_seconds_total");
            let memory = samples(&body, "container_memory_usage_bytes");
            for (id, name) in &started {
                for series in [&cpu, &memory] {
                    let s = of_container(series, name)?;
                    assert_eq!(s.label("image"), kit.image, "{s:?}");
                    assert!(
                        s.label("id").starts_with('/') && s.label("id").contains(id.as_str()),
                        "id is the cgroup path of {id}: {s:?}"
                    );
                    assert_eq!(s.label("container_label_muster_test"), kit.tag, "{s:?}");
                }
            }
            Some(())
        },
    );

    let (stopped_id, stopped) = &started[0];
    kit.stop(stopped_id);
    wait_within(
        2 * INTERVAL,
        "the stopped container's usage series go and its state is exited",
        || {
            let body = metrics()?;
            let usage_gone = of_container(
                &samples(&body, "container_cpu_usage_seconds_total"),
                stopped,
            )
            .is_none()
                && of_container(&samples(&body, "container_memory_usage_bytes"), stopped).is_none();
            let exited = samples(&body, "muster_container_state").iter().any(|s| {
                s.label("name") == stopped && s.label("state") == "exited" && s.value == 1.0
            });
            (usage_gone && exited).then_some(())
        },
    );
    // The others keep being reported.
    let body = metrics().unwrap();
    for (_, name) in &started[1..] {
        assert!(
            of_container(&samples(&body, "container_cpu_usage_seconds_total"), name).is_some(),
            "{name} still reported:\n{body}"
        );
    }
    let status = proc.stop();
    assert!(
        status.success(),
        "agent exits 0 on SIGTERM:\n{}",
        proc.log()
    );
    // `kit` drops here: containers and image removed, also on a failure above.
}
