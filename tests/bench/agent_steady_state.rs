//! `agent_steady_state`: the agent's memory and CPU over a long run with 50
//! running containers, as deployed: default sampling (every 10 s) and a
//! collector pulling its buffer every 10 s over mutual TLS.
//!
//! Records the agent's RSS (`VmRSS`) every 10 s and its CPU seconds
//! (utime + stime) for `MUSTER_BENCH_SECONDS` seconds (default 600), from
//! one interval after the first round that saw every container: that round
//! writes the whole series dictionary and the collector's first pull copies
//! it, a one-off warm-up whose RSS and the run's peak (`VmHWM`) are printed
//! beside the steady-state figures. The targets are
//! absolute (RSS < 20 MiB, CPU < 0.5 % of one core): there is no anchor
//! tool here, since node_exporter does nothing between scrapes.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p
//! muster-tests --bench agent_steady_state` (`MUSTER_BENCH_SECONDS=60` for
//! a short run). For what-if runs, `MUSTER_BENCH_AGENT_TOML` is appended to
//! the agent's config (e.g. `[buffer]` bounds); it is printed with the
//! result. Needs Docker and Debian's `busybox-static`. Prints lines
//! only; nothing asserts on them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::{BenchAgent, Scraper, containers_in, cpu_seconds, rss_bytes};
use muster_tests::docker::DockerKit;

const NAME: &str = "agent_steady_state";
const CONTAINERS: usize = 50;
const EVERY: Duration = Duration::from_secs(10);
const TARGET_RSS: u64 = 20 * 1024 * 1024;

fn main() {
    common::require_release_bins(&["muster-agent", "muster-collector"]);
    let seconds: u64 = match std::env::var("MUSTER_BENCH_SECONDS") {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            common::give_up(&format!(
                "MUSTER_BENCH_SECONDS={v:?} is not a number of seconds"
            ))
        }),
        Err(_) => 600,
    };
    let Some(mut kit) = DockerKit::new("agent_steady_state needs running containers") else {
        common::give_up("no Docker engine or no /bin/busybox (busybox-static)");
    };
    common::start_containers(&mut kit, CONTAINERS);
    let foreign_at_start = common::foreign_containers(&kit);
    eprintln!("{NAME}: load1 at start {}", common::load1());

    let extra = std::env::var("MUSTER_BENCH_AGENT_TOML").unwrap_or_default();
    if !extra.is_empty() {
        eprintln!("{NAME}: agent config appended: {extra:?}");
    }
    let mut agent = BenchAgent::start(&extra, Some("10s"));
    let pid = agent.proc.pid();
    let scraper = Scraper::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = agent.proc.exited() {
            panic!("the agent exited with {status}:\n{}", agent.proc.log());
        }
        let seen = scraper.get(&agent.metrics_url).map_or(0, |(_, body)| {
            containers_in(&body, "container_cpu_usage_seconds_total", &kit)
        });
        if seen == CONTAINERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never reported the {CONTAINERS} containers (saw {seen})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let rss_warmup = rss_bytes(pid);
    std::thread::sleep(EVERY);
    let started = Instant::now();
    let cpu_start = cpu_seconds(pid);
    let rss_start = rss_bytes(pid);
    let mut rss_max = rss_start;
    let mut foreign_max = foreign_at_start;
    let mut rss_end = rss_start;
    let checks = seconds.div_ceil(EVERY.as_secs()).max(1);
    for i in 1..=checks {
        let next = EVERY * u32::try_from(i).unwrap();
        let wait = (next.min(Duration::from_secs(seconds))).saturating_sub(started.elapsed());
        std::thread::sleep(wait);
        if let Some(status) = agent.proc.exited() {
            panic!("the agent exited with {status}:\n{}", agent.proc.log());
        }
        rss_end = rss_bytes(pid);
        rss_max = rss_max.max(rss_end);
        foreign_max = foreign_max.max(common::foreign_containers(&kit));
        if i % 6 == 0 {
            eprintln!(
                "{NAME}: {:>4.0} s rss {} cpu {:.2} s",
                started.elapsed().as_secs_f64(),
                rss_end,
                cpu_seconds(pid) - cpu_start
            );
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_start;
    let cpu_percent = cpu / wall * 100.0;

    // Diagnostics after the measured window.
    let body = scraper
        .get(&agent.metrics_url)
        .map(|(_, b)| b)
        .unwrap_or_default();
    let pulled = agent.collector.as_ref().is_some_and(|c| {
        c.hosts()
            .as_array()
            .is_some_and(|hosts| hosts.iter().any(|h| h["status"] == "up"))
    });
    eprintln!(
        "{NAME}: warm-up (first full round, first pull): rss {rss_warmup}; peak over the whole run (VmHWM) {}",
        common::peak_rss_bytes(pid)
    );
    eprintln!(
        "{NAME}: over {wall:.0} s: rss start {rss_start}, end {}; cpu {cpu:.2} s; collector sees the agent up: {pulled}; \
         series {}; slowest samplers: {}",
        common::memory_breakdown(pid),
        common::series_count(&body),
        common::slowest_collectors(&body, 6)
    );
    println!(
        "{NAME} rss_max_bytes={rss_max} rss_end_bytes={rss_end} cpu_percent_of_one_core={cpu_percent:.3} \
         seconds={wall:.0} containers={CONTAINERS}{} (targets: rss < 20 MiB, cpu < 0.5%; rss_max/target={:.3})",
        if extra.is_empty() {
            String::new()
        } else {
            format!(" extra_config={extra:?}")
        },
        rss_max as f64 / TARGET_RSS as f64
    );
    println!(
        "{NAME} other_containers start={foreign_at_start} max={foreign_max} (running containers not this \
         run's, checked every 10 s; any makes the run not comparable)"
    );
    agent.proc.stop();
    // `agent` (and its collector) then `kit` drop here: processes stopped,
    // containers and the image removed.
}
