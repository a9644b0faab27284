//! The collector's reliability (issue 4). The agent's buffer is the write-ahead
//! log, so whatever happens to the collector, every round an agent holds ends up
//! stored exactly once: after a SIGKILL of the collector, across an agent's
//! restart, and through a full disk. A bad batch from an agent changes nothing
//! and the host recovers when the agent answers correctly again.
//!
//! "Stored exactly" is checked series by series, comparing the timestamps in the
//! agent's buffer (`/v1/samples` in JSON) with what a range query returns, so
//! the collectors here store timestamps as sent (`timestamp_tolerance = "0s"`).

use std::path::PathBuf;
use std::time::Duration;

use muster_tests::fake_agent::{Answer, FakeAgent, GOOD_METRIC, REFUSED_METRIC};
use muster_tests::timeline::{AgentHistory, AgentReader, collector_timelines, differences};
use muster_tests::tmpfs::Tmpfs;
use muster_tests::{
    AgentDir, Collector, CollectorConfig, CollectorOptions, Proc, wait_for, wait_within,
};
use nix::sys::signal::Signal;

/// A flush (with the store's figures in `/metrics`) every second, and exact timestamps;
/// `[storage]` last, so a test can add to it.
const EXACT_AND_FLUSHED: &str =
    "[maintenance]\nflush_interval = \"1s\"\n[storage]\ntimestamp_tolerance = \"0s\"\n";

/// A collector pulling every second, storing exact timestamps, flushing every
/// second; `storage` adds keys to `[storage]`.
fn start_collector(storage: &str, data_dir: Option<PathBuf>) -> Collector {
    Collector::start_with(
        CollectorOptions {
            tls: true,
            scrape_interval: "1s",
        },
        &CollectorConfig {
            data_dir,
            sections: format!("{EXACT_AND_FLUSHED}{storage}"),
        },
    )
}

/// An agent sampling every second, enrolled with `collector` as `host`, running.
/// Host samplers only, and not every one: a hundred-odd series keep the
/// comparisons of every sample quick; containers and processes would add
/// thousands.
fn start_agent(collector: &Collector, host: &str) -> (AgentDir, Proc) {
    let agent = collector.enroll_agent(
        host,
        "[sample]\ninterval = \"1s\"\ntimeout = \"1s\"\nsamplers = [\"cpu\", \"stat\", \"loadavg\", \"meminfo\", \"filefd\", \"time\", \"uname\"]\n",
    );
    let proc = agent.start();
    (agent, proc)
}

/// The host's cursor in the hosts list.
fn cursor(collector: &Collector, host: &str) -> u64 {
    collector.host(host)["cursor"].as_u64().unwrap()
}

fn now_ms() -> i64 {
    i64::try_from(muster_collector::unix_ms()).unwrap()
}

/// Waits until the agent holds `n` rounds after `seq`; returns its newest.
fn wait_for_rounds(reader: &AgentReader, seq: u64, n: u64) -> u64 {
    // The agent samples every second; a loaded machine may make it slower.
    wait_within(
        Duration::from_secs(n * 3 + 30),
        &format!("the agent holds {n} rounds after seq {seq}"),
        || Some(reader.last_seq(seq)).filter(|last| *last >= seq + n),
    )
}

/// Waits until the collector has pulled every round in `history`, then asserts
/// that it stores exactly those samples for `host`, series by series.
fn assert_stores_exactly(collector: &Collector, host: &str, history: &AgentHistory) {
    wait_for(
        &format!(
            "{host}'s cursor reaches the agent's seq {}",
            history.last_seq
        ),
        || (cursor(collector, host) >= history.last_seq).then_some(()),
    );
    let (from, to) = history.span();
    let stored = collector_timelines(collector, host, from, to);
    let problems = differences(history, &stored);
    assert!(
        problems.is_empty(),
        "{host}: the collector's samples differ from the agent's ({} series, {} rounds); {} problems:\n{}",
        history.series.len(),
        history.rounds.len(),
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// [`assert_stores_exactly`] for every round the agent holds now.
fn assert_stores_exactly_the_agents_rounds(
    collector: &Collector,
    reader: &AgentReader,
    host: &str,
) -> AgentHistory {
    let history = reader.history();
    assert_stores_exactly(collector, host, &history);
    history
}

#[test]
fn a_collector_killed_with_sigkill_loses_no_sample() {
    let mut collector = start_collector("", None);
    let (agent, _agent_proc) = start_agent(&collector, "web1");
    let reader = AgentReader::new(&agent, &collector, "web1");
    wait_for("web1's first rounds are pulled", || {
        (cursor(&collector, "web1") >= 3).then_some(())
    });

    let killed_ms = now_ms();
    collector.kill();
    // Down while the agent samples 15 more rounds (about 15 s).
    let at_kill = reader.last_seq(0);
    wait_for_rounds(&reader, at_kill, 15);
    let restarted_ms = now_ms();
    collector.start_again();

    let history = assert_stores_exactly_the_agents_rounds(&collector, &reader, "web1");
    let while_down = history
        .rounds
        .iter()
        .filter(|ts| (killed_ms..restarted_ms).contains(*ts))
        .count();
    assert!(
        while_down >= 14,
        "the rounds sampled while the collector was down are among those compared: {while_down}"
    );
}

#[test]
fn an_agent_killed_and_restarted_leaves_a_gap_only_while_it_was_down() {
    let collector = start_collector("", None);
    let (agent, mut agent_proc) = start_agent(&collector, "web1");
    let reader = AgentReader::new(&agent, &collector, "web1");
    wait_for("web1's first rounds are pulled", || {
        (cursor(&collector, "web1") >= 3).then_some(())
    });

    let killed_ms = now_ms();
    agent_proc.signal(Signal::SIGKILL);
    wait_for("the agent dies of SIGKILL", || agent_proc.exited());
    wait_for("the collector sees web1 down", || {
        (collector.host("web1")["status"] == "down").then_some(())
    });
    // Down for three more failed pulls.
    let failures = |c: &Collector| {
        let (_, body) = c.get("/metrics", None).unwrap();
        muster_tests::docker::samples(&body, "muster_collector_scrapes_total")
            .into_iter()
            .find(|s| s.label("result") == "failure")
            .map_or(0.0, |s| s.value)
    };
    let failed = failures(&collector);
    wait_for("three pulls of the dead agent fail", || {
        (failures(&collector) >= failed + 3.0).then_some(())
    });
    let restarted_ms = now_ms();
    let _agent_proc = agent.start();
    let at_restart = reader.last_seq(0);
    wait_for_rounds(&reader, at_restart, 5);

    let history = assert_stores_exactly_the_agents_rounds(&collector, &reader, "web1");
    let before = history.rounds.iter().filter(|ts| **ts < killed_ms).count();
    let during = history
        .rounds
        .iter()
        .filter(|ts| (killed_ms..restarted_ms).contains(*ts))
        .count();
    let after = history
        .rounds
        .iter()
        .filter(|ts| **ts >= restarted_ms)
        .count();
    assert_eq!(during, 0, "the agent sampled nothing while it was down");
    assert!(
        before >= 3 && after >= 5,
        "rounds on both sides of the gap: {before} before, {after} after"
    );
    assert_eq!(
        collector.host("web1")["status"],
        "up",
        "{}",
        collector.host("web1")
    );
}

#[test]
fn a_bad_batch_is_refused_changes_nothing_and_the_host_recovers() {
    let collector = start_collector("", None);
    let fake = FakeAgent::start(&collector, "fake1");
    fake.add_rounds(5);
    wait_for("fake1's rounds are pulled", || {
        let host = collector.host("fake1");
        (host["status"] == "up" && host["cursor"] == 5).then_some(())
    });
    // fake1's one series, and the collector's `up`, `scrape_duration_seconds` and
    // `scrape_samples_scraped` for it.
    wait_for(
        "the store counts fake1's one series and the pull's three",
        || (collector.metric("muster_collector_tsdb_series") == Some(4.0)).then_some(()),
    );

    for (answer, expected) in [
        (Answer::Truncated, "frame truncated"),
        (Answer::Garbled, "zstd decompression failed"),
        (Answer::Invalid, "undefined series id 8"),
        (Answer::Unstorable, "after the year 9999"),
    ] {
        let held = fake.last_seq();
        let refused = collector
            .metric("muster_collector_batches_refused_total")
            .unwrap();
        fake.answer(answer);
        let asked_before = fake.cursors_asked().len();
        // Good rounds after the cursor, served inside the bad batches.
        fake.add_rounds(3);

        wait_for(&format!("{answer:?}: two batches are refused"), || {
            let now = collector.metric("muster_collector_batches_refused_total")?;
            (now >= refused + 2.0).then_some(())
        });
        let host = collector.host("fake1");
        assert_eq!(host["status"], "down", "{answer:?}: {host}");
        let error = host["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains(expected),
            "{answer:?}: last_error names the refusal ({expected}): {host}"
        );
        assert_eq!(host["cursor"], held, "{answer:?}: the cursor stays: {host}");
        assert_eq!(
            up(&collector, "fake1"),
            "0",
            "{answer:?}: the refused pull is stored as up == 0"
        );
        let asked = fake.cursors_asked();
        assert!(
            asked[asked_before..].iter().all(|after| *after == held),
            "{answer:?}: every pull since asks after {held} again: {:?}",
            &asked[asked_before..]
        );
        let refused_series = collector.query(REFUSED_METRIC, None);
        assert_eq!(
            refused_series["data"]["result"],
            serde_json::json!([]),
            "{answer:?}: nothing of the refused batch is stored"
        );
        let (_, names) = collector
            .get(
                "/api/v1/label/__name__/values",
                Some(&collector.admin_token),
            )
            .unwrap();
        assert!(!names.contains(REFUSED_METRIC), "{answer:?}: {names}");
        assert_eq!(
            good_timestamps(&collector, "fake1"),
            fake.timestamps()[..usize::try_from(held).unwrap()],
            "{answer:?}: only the rounds before the cursor are stored"
        );
        assert!(
            collector.proc.log().contains("batch refused"),
            "{answer:?}: the refusal is logged"
        );

        fake.answer(Answer::Correct);
        wait_for(&format!("{answer:?}: fake1 recovers"), || {
            let host = collector.host("fake1");
            (host["status"] == "up"
                && host["last_error"].is_null()
                && host["cursor"] == fake.last_seq())
            .then_some(())
        });
        assert_eq!(
            good_timestamps(&collector, "fake1"),
            fake.timestamps(),
            "{answer:?}: the good rounds are stored once the agent answers correctly"
        );
        assert_eq!(up(&collector, "fake1"), "1", "{answer:?}: up again");
    }
    wait_for("a flush after the last refusal", || {
        (collector.metric("muster_collector_tsdb_head_samples")? >= 17.0).then_some(())
    });
    assert_eq!(
        collector.metric("muster_collector_tsdb_series"),
        Some(4.0),
        "no refused batch added a series to the index"
    );
}

/// A host whose agent cannot send a large batch within the scrape timeout
/// (a backlog after an outage, a slow host) still catches up: the collector
/// asks for fewer rounds after a timeout instead of failing the same way
/// every interval.
#[test]
fn a_host_too_slow_for_large_batches_still_catches_up() {
    let collector = start_collector("", None);
    let fake = FakeAgent::start(&collector, "slow1");
    // Requests for more than 40 rounds take longer than the 1 s timeout.
    fake.slow_above(40, Duration::from_secs(3));
    fake.add_rounds(300);
    wait_for("slow1 catches up with its 300 rounds", || {
        (cursor(&collector, "slow1") == 300).then_some(())
    });
    assert_eq!(good_timestamps(&collector, "slow1"), fake.timestamps());
    assert!(
        collector.proc.log().contains("asking for fewer rounds"),
        "the smaller batches are logged:\n{}",
        collector.proc.log()
    );
    let host = collector.host("slow1");
    assert_eq!(host["status"], "up", "{host}");
}

/// The timestamps stored of a fake agent's good series.
/// The latest `up` of `host`, as the query API gives it.
fn up(collector: &Collector, host: &str) -> String {
    let answer = collector.query(&format!("up{{host=\"{host}\"}}"), None);
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or_else(|| panic!("up of {host}: {answer}"))
        .to_owned()
}

fn good_timestamps(collector: &Collector, host: &str) -> Vec<i64> {
    let answer = collector.query(&format!("{GOOD_METRIC}{{host=\"{host}\"}}[1h]"), None);
    answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|series| series["values"].as_array().unwrap().clone())
        .map(|point| (point[0].as_f64().unwrap() * 1000.0).round() as i64)
        .collect()
}

/// A chunk window's end, after which a flush writes blocks: the first write a
/// full disk can refuse (the head is in memory until then).
const WINDOW_MS: i64 = 5 * 60 * 1000;
/// Series of the bulk host: enough that a window's blocks (about 2 KB per series
/// of 300 noisy samples) outgrow the free space in the store's current log
/// segment, so the flush needs the disk.
const BULK_SERIES: u32 = 600;

/// A full data dir. The head lives in memory, so the first write to meet the
/// full disk is the flush after the current 5-minute chunk window ends: the
/// test waits for that (up to 5 minutes). A real agent (`web1`) and a fake one
/// sampling a large host (`bulk1`, so the flush is large) are pulled.
#[test]
fn a_full_disk_pauses_scraping_says_why_and_resumes_when_space_returns() {
    let Some(tmpfs) = Tmpfs::mount("32m", "fills the collector's data dir") else {
        return;
    };
    let mut collector = start_collector(
        "chunk_window = \"5m\"\nwindow_grace = \"1s\"\n",
        Some(tmpfs.path().join("data")),
    );
    let (agent, _agent_proc) = start_agent(&collector, "web1");
    let reader = AgentReader::new(&agent, &collector, "web1");
    let bulk = FakeAgent::start(&collector, "bulk1");
    bulk.sample_every_second(BULK_SERIES);
    wait_for("web1's and bulk1's first rounds are pulled", || {
        (cursor(&collector, "web1") >= 3 && cursor(&collector, "bulk1") >= 3).then_some(())
    });

    let (filler, bytes) = tmpfs.fill("filler");
    assert!(bytes > 0, "the filler took the free space");
    let window_end = (now_ms() / WINDOW_MS + 1) * WINDOW_MS;
    let limit = Duration::from_millis(u64::try_from(window_end - now_ms()).unwrap())
        + Duration::from_secs(60);
    let failure = wait_within(
        limit,
        "the collector reports the store cannot write",
        || {
            let (_, body) = collector.get("/health", None).ok()?;
            let health: serde_json::Value = serde_json::from_str(&body).ok()?;
            (health["store"]["writable"] == false).then_some(health["store"].clone())
        },
    );
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "/health names the cause: {failure}"
    );
    let (status, ready) = collector.get("/health/ready", None).unwrap();
    assert_eq!(status, 200, "queries still work, so still ready: {ready}");
    assert!(ready.contains("\"writable\":false"), "{ready}");
    assert!(
        collector.proc.log().contains("the store cannot write"),
        "the failure is logged:\n{}",
        collector.proc.log()
    );
    assert_eq!(
        collector.metric("muster_collector_store_writable"),
        Some(0.0)
    );
    for host in ["web1", "bulk1"] {
        let shown = wait_for(&format!("{host} shows why it is not pulled"), || {
            let shown = collector.host(host);
            shown["last_error"]
                .as_str()?
                .contains("not pulling: the store cannot write")
                .then_some(shown)
        });
        assert_eq!(shown["status"], "up", "the agent is fine: {shown}");
    }

    // Paused: while the agents sample on, the cursors and the head stay.
    let paused = (cursor(&collector, "web1"), cursor(&collector, "bulk1"));
    let head = collector
        .metric("muster_collector_tsdb_head_samples")
        .unwrap();
    let sampled = (reader.last_seq(paused.0), bulk.last_seq());
    wait_for_rounds(&reader, sampled.0, 5);
    wait_for("bulk1 samples 5 more rounds", || {
        (bulk.last_seq() >= sampled.1 + 5).then_some(())
    });
    assert_eq!(
        (cursor(&collector, "web1"), cursor(&collector, "bulk1")),
        paused,
        "no pull while the store cannot write"
    );
    assert_eq!(
        collector.metric("muster_collector_tsdb_head_samples"),
        Some(head),
        "the head does not grow while flushes fail"
    );
    let answer = collector.query("count_over_time(node_load1[1h])", None);
    assert_eq!(answer["status"], "success", "queries still work: {answer}");

    std::fs::remove_file(&filler).unwrap();
    wait_for("the store writes again once space returns", || {
        (collector.metric("muster_collector_store_writable")? == 1.0).then_some(())
    });
    assert_stores_exactly_the_agents_rounds(&collector, &reader, "web1");
    assert_stores_exactly(&collector, "bulk1", &bulk.history());
    for host in ["web1", "bulk1"] {
        let shown = collector.host(host);
        assert!(shown["last_error"].is_null(), "{shown}");
    }

    // What the store holds after the outage survives a restart intact.
    collector.restart();
    assert_stores_exactly_the_agents_rounds(&collector, &reader, "web1");
    assert_stores_exactly(&collector, "bulk1", &bulk.history());
    // Each run logs to its own file; the first run's has the recovery.
    let first_run = std::fs::read_to_string(collector.dir.path().join("collector.log")).unwrap();
    assert!(
        first_run.contains("the store writes again"),
        "the recovery is logged:\n{first_run}"
    );
}
