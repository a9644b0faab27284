//! `agent_vs_node_exporter`: the agent's plain-HTTP `/metrics` against
//! Debian's `prometheus-node-exporter` (default collectors) on the same host
//! with 20 running containers, in one run: 1,000 sequential keep-alive
//! scrapes of each, then per-scrape latency (p50, p99), RSS after the
//! scrapes, CPU seconds the server used meanwhile, and the series count.
//!
//! Not a like-for-like comparison, and the output says so: node_exporter
//! collects on every scrape, while the agent serves a text rendered once per
//! sampling round (default every 10 s). So the agent is measured twice, at
//! the default `interval = "10s"` and at `"1s"`, and besides the CPU it used
//! during its scrapes the benchmark reports its background sampling rate
//! (CPU seconds per second, measured idle afterwards) and its total CPU over
//! node_exporter's wall time: serving 1,000 scrapes plus sampling for as long
//! as node_exporter took to answer them. The agent also covers the 20
//! containers (cAdvisor's series), which node_exporter does not.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p
//! muster-tests --bench agent_vs_node_exporter`. Needs Docker, Debian's
//! `busybox-static` and `prometheus-node-exporter`. Prints lines only;
//! nothing asserts on them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    BenchAgent, ScrapeRun, Scraper, containers_in, cpu_seconds, memory_breakdown, ms, quantile,
    ratio, rss_bytes, samples_of, scrape_many, series_count, slowest_collectors,
};
use muster_tests::docker::DockerKit;
use muster_tests::{Proc, free_port};

const NAME: &str = "agent_vs_node_exporter";
/// Debian's package installs the binary under this name.
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const CONTAINERS: usize = 20;
const SCRAPES: usize = 1000;
/// Upper bound on one exporter's 1,000 scrapes.
const SCRAPE_LIMIT: Duration = Duration::from_secs(300);
const WARM_UP_SCRAPES: usize = 10;

/// One exporter's figures.
struct Figures {
    run: ScrapeRun,
    rss: u64,
    series: usize,
    /// RSS before the 1,000 scrapes and after.
    memory: String,
}

impl Figures {
    fn p(&self, q: f64) -> Duration {
        quantile(&self.run.latencies, q)
    }
}

fn main() {
    common::require_release_bins(&["muster-agent", "muster-collector"]);
    if !Path::new(NODE_EXPORTER).is_file() {
        common::give_up(&format!(
            "{NODE_EXPORTER} is missing: apt-get install -y --no-install-recommends prometheus-node-exporter"
        ));
    }
    let Some(mut kit) = DockerKit::new("agent_vs_node_exporter needs running containers") else {
        common::give_up("no Docker engine or no /bin/busybox (busybox-static)");
    };
    common::start_containers(&mut kit, CONTAINERS);
    let foreign_at_start = common::foreign_containers(&kit);
    eprintln!("{NAME}: load1 at start {}", common::load1());
    let scraper = Scraper::new();

    println!(
        "{NAME} fairness: not like for like. node_exporter collects on every scrape; muster serves a \
         text rendered once per sampling round (interval 10s by default, also run at 1s), so its \
         per-scrape CPU excludes sampling; cpu_seconds_same_wall_time adds the agent's background \
         sampling over node_exporter's wall time. Muster also covers the {CONTAINERS} containers."
    );

    let ne = measure_node_exporter(&scraper);
    eprintln!(
        "{NAME}: node_exporter 1000 scrapes in {:.2} s ({} failed); {}; slowest collectors: {}",
        ne.run.wall.as_secs_f64(),
        ne.run.failures,
        ne.memory,
        slowest_collectors(&ne.run.last_body, 6)
    );

    for (label, extra, interval) in [
        ("10s", "", Duration::from_secs(10)),
        (
            "1s",
            "[sample]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
            Duration::from_secs(1),
        ),
    ] {
        measure_agent(&scraper, &kit, &ne, label, extra, interval);
    }
    println!(
        "{NAME} other_containers start={foreign_at_start} end={} (running containers not this run's; \
         any makes the run not comparable)",
        common::foreign_containers(&kit)
    );
    // `kit` drops here: the containers and the image are removed.
}

fn measure_node_exporter(scraper: &Scraper) -> Figures {
    let version = Command::new(NODE_EXPORTER).arg("--version").output();
    if let Ok(out) = version {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        eprintln!("{NAME}: {}", text.lines().next().unwrap_or(""));
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut proc = Proc::start(
        "node_exporter",
        Command::new(NODE_EXPORTER).arg(format!("--web.listen-address=127.0.0.1:{port}")),
        tmp.path().join("node_exporter.log"),
    );
    muster_tests::wait_for("node_exporter answers /metrics", || {
        if let Some(status) = proc.exited() {
            panic!("node_exporter exited with {status}:\n{}", proc.log());
        }
        scraper.get(&url)
    });
    for _ in 0..WARM_UP_SCRAPES {
        let _ = scraper.get(&url);
    }
    let rss_before = rss_bytes(proc.pid());
    let run = scrape_many(scraper, &url, proc.pid(), SCRAPES, SCRAPE_LIMIT);
    let rss = rss_bytes(proc.pid());
    let memory = format!(
        "rss before scrapes {rss_before}, after {}",
        memory_breakdown(proc.pid())
    );
    let series = series_count(&run.last_body);
    proc.stop();
    Figures {
        run,
        rss,
        series,
        memory,
    }
}

fn measure_agent(
    scraper: &Scraper,
    kit: &DockerKit,
    ne: &Figures,
    label: &str,
    extra: &str,
    interval: Duration,
) {
    let mut agent = BenchAgent::start(extra, None);
    let url = agent.metrics_url.clone();
    let pid = agent.proc.pid();

    // A round that has seen every container (the inventory fills after start).
    let deadline = Instant::now() + interval * 3 + Duration::from_secs(30);
    loop {
        if let Some(status) = agent.proc.exited() {
            panic!("the agent exited with {status}:\n{}", agent.proc.log());
        }
        let seen = scraper.get(&url).map_or(0, |(_, body)| {
            containers_in(&body, "container_cpu_usage_seconds_total", kit)
        });
        if seen == CONTAINERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent's /metrics never showed the {CONTAINERS} containers (saw {seen})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..WARM_UP_SCRAPES {
        let _ = scraper.get(&url);
    }
    let rss_before = rss_bytes(pid);
    let run = scrape_many(scraper, &url, pid, SCRAPES, SCRAPE_LIMIT);
    let rss = rss_bytes(pid);
    let body = run.last_body.clone();
    let muster = Figures {
        series: series_count(&body),
        run,
        rss,
        memory: format!(
            "rss before scrapes {rss_before}, after {}",
            memory_breakdown(pid)
        ),
    };

    // Background sampling, nothing scraping: several rounds' worth.
    let idle = (interval * 6).max(Duration::from_secs(20));
    let cpu_before = cpu_seconds(pid);
    let idle_started = Instant::now();
    std::thread::sleep(idle);
    let background_rate = (cpu_seconds(pid) - cpu_before) / idle_started.elapsed().as_secs_f64();

    let wall = muster.run.wall.as_secs_f64();
    let serving_only = (muster.run.cpu_seconds - background_rate * wall).max(0.0);
    let ne_wall = ne.run.wall.as_secs_f64();
    let same_wall = serving_only + background_rate * ne_wall;
    let container_series = body
        .lines()
        .filter(|l| l.starts_with("container_") || l.starts_with("muster_container_"))
        .count();
    let process_rss = samples_of(&body, "process_resident_memory_bytes")
        .first()
        .map_or(0.0, |s| s.value);

    let per_1000 =
        |run: &ScrapeRun| run.cpu_seconds * SCRAPES as f64 / run.latencies.len().max(1) as f64;
    let tag = format!("sampling={label}");
    println!(
        "{NAME} rss_bytes muster={} node_exporter={} ratio={} {tag} (target <= 1)",
        muster.rss,
        ne.rss,
        ratio(muster.rss as f64, ne.rss as f64)
    );
    println!(
        "{NAME} cpu_seconds_per_1000_scrapes muster={:.2} node_exporter={:.2} ratio={} {tag} (target <= 0.5; \
         muster's over its {wall:.2} s of scrapes, sampling rounds in them included)",
        per_1000(&muster.run),
        per_1000(&ne.run),
        ratio(per_1000(&muster.run), per_1000(&ne.run))
    );
    println!(
        "{NAME} cpu_seconds_per_1000_scrapes_serving_only muster={serving_only:.2} node_exporter={:.2} ratio={} {tag} \
         (muster's less its background rate x {wall:.2} s)",
        per_1000(&ne.run),
        ratio(serving_only, per_1000(&ne.run))
    );
    println!(
        "{NAME} cpu_seconds_same_wall_time muster={same_wall:.2} node_exporter={:.2} ratio={} {tag} \
         (muster: serving 1000 scrapes + background sampling at {background_rate:.4} cpu-s/s over node_exporter's {ne_wall:.2} s)",
        ne.run.cpu_seconds,
        ratio(same_wall, ne.run.cpu_seconds)
    );
    println!(
        "{NAME} latency_p50_ms muster={} node_exporter={} ratio={} {tag}",
        ms(muster.p(0.5)),
        ms(ne.p(0.5)),
        ratio(muster.p(0.5).as_secs_f64(), ne.p(0.5).as_secs_f64())
    );
    println!(
        "{NAME} latency_p99_ms muster={} node_exporter={} ratio={} {tag} (target <= 1)",
        ms(muster.p(0.99)),
        ms(ne.p(0.99)),
        ratio(muster.p(0.99).as_secs_f64(), ne.p(0.99).as_secs_f64())
    );
    println!(
        "{NAME} series muster={} node_exporter={} ratio={} {tag} (muster's include {container_series} series of the {CONTAINERS} containers)",
        muster.series,
        ne.series,
        ratio(muster.series as f64, ne.series as f64)
    );
    eprintln!(
        "{NAME}: muster {tag}: 1000 scrapes in {wall:.2} s ({} failed), background {background_rate:.4} cpu-s/s \
         over {:.0} s idle; {}; process_resident_memory_bytes {process_rss:.0}, body {} bytes; slowest samplers: {}",
        muster.run.failures,
        idle.as_secs_f64(),
        muster.memory,
        body.len(),
        slowest_collectors(&body, 6)
    );
    agent.proc.stop();
}
