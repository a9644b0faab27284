//! What the benchmarks in `tests/bench/` share: finding the release
//! binaries, an enrolled agent started with extra config, running
//! containers, a keep-alive HTTP scraper, and a process's CPU time and RSS
//! read from `/proc/<pid>`.
//!
//! Leaves out the comparisons themselves: each benchmark file runs Muster and
//! its anchor on the same data and prints its own ratio lines. Nothing here
//! asserts on a figure.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use muster_tests::docker::DockerKit;
use muster_tests::{AgentDir, Collector, CollectorOptions, Proc, free_port};

/// The folder the running benchmark was built into (`target/release`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("benchmark executable path");
    // target/release/deps/<bench>-<hash>
    exe.parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile> folder")
        .to_path_buf()
}

/// Exits with a message naming the build command when a workspace binary
/// this benchmark starts is not built in the benchmark's profile: a bench
/// cannot build another package's binaries itself.
pub fn require_release_bins(names: &[&str]) {
    let dir = profile_dir();
    let missing: Vec<String> = names
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "missing {}: run `cargo build --release --workspace --bins` before `cargo bench -p muster-tests`",
            missing.join(", ")
        );
        std::process::exit(2);
    }
}

/// Exits (status 2) with `reason` when a benchmark's peer is missing.
pub fn give_up(reason: &str) -> ! {
    eprintln!("cannot run: {reason}");
    std::process::exit(2);
}

/// CPU time (user + system) a process has used, in seconds, from fields 14
/// and 15 of `/proc/<pid>/stat` (clock ticks, `sysconf(_SC_CLK_TCK)`, 100 on
/// Linux, so the resolution is 10 ms). Threads included, children not.
pub fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
    // The command name (field 2) may hold spaces; fields resume after its ')'.
    let rest = stat.rsplit_once(')').expect("stat has (comm)").1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields[11].parse().unwrap();
    let stime: u64 = fields[12].parse().unwrap();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100);
    (utime + stime) as f64 / ticks.max(1) as f64
}

/// Resident set size (`VmRSS` in `/proc/<pid>/status`), in bytes.
pub fn rss_bytes(pid: i32) -> u64 {
    status_bytes(pid, "VmRSS:")
}

/// Peak resident memory (`VmHWM`) of `pid` so far, in bytes.
#[allow(dead_code)]
pub fn peak_rss_bytes(pid: i32) -> u64 {
    status_bytes(pid, "VmHWM:")
}

fn status_bytes(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    kib * 1024
}

/// `RssAnon`, `RssFile` (mapped files, mostly the binary's own pages) and
/// `Threads` of `/proc/<pid>/status`, for the record: `"anon=.. file=.. threads=.."`.
pub fn memory_breakdown(pid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let kib = |name: &str| {
        field(name)
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .map_or(0, |k| k * 1024)
    };
    format!(
        "anon={} file={} threads={}",
        kib("RssAnon:"),
        kib("RssFile:"),
        field("Threads:")
    )
}

/// An agent enrolled with a collector started for the purpose, its
/// `[prometheus]` listener on a free loopback port, `extra` TOML appended.
#[derive(Debug)]
pub struct BenchAgent {
    // Fields drop in order: the agent stops before its folder goes.
    /// The running agent.
    pub proc: Proc,
    /// The collector, when kept running (it then pulls the agent's buffer).
    pub collector: Option<Collector>,
    /// The agent's folder and TLS port.
    pub dir: AgentDir,
    /// Its plain-HTTP `/metrics` URL.
    pub metrics_url: String,
}

impl BenchAgent {
    /// Enrolls a new agent as host `bench`, appends `[prometheus]` and
    /// `extra`, and starts it. With `keep_collector` the collector stays up
    /// and pulls the agent every `scrape_interval`; otherwise it is stopped
    /// once the agent is enrolled, so nothing but the benchmark talks to it.
    pub fn start(extra: &str, keep_collector: Option<&'static str>) -> Self {
        let mut collector = Collector::start(CollectorOptions {
            tls: true,
            scrape_interval: keep_collector.unwrap_or("10s"),
        });
        let token = collector.create_token(&["--enroll", "--host", "bench"]);
        let dir = AgentDir::new();
        let out = dir.enroll(&collector.url, &token);
        assert!(
            out.status.success(),
            "enroll: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        dir.append_config(&format!(
            "[prometheus]\nlisten = \"127.0.0.1:{port}\"\n\n{extra}"
        ));
        let collector = match keep_collector {
            Some(_) => Some(collector),
            None => {
                collector.proc.stop();
                None
            }
        };
        let proc = dir.start();
        Self {
            proc,
            collector,
            dir,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        }
    }
}

/// Starts `n` running busybox `sleep` containers; returns their full ids.
/// They are removed when `kit` drops.
pub fn start_containers(kit: &mut DockerKit, n: usize) -> Vec<String> {
    let started = Instant::now();
    let ids: Vec<String> = (0..n)
        .map(|i| kit.start_sleeper(&format!("b{i}")).0)
        .collect();
    eprintln!(
        "started {n} containers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ids
}

/// Running containers that are not this run's: the agent samples every
/// container of the engine, so others' containers (a test run sharing the
/// machine) change what is measured. The benchmarks print this at start and
/// end; a run with any is not comparable.
pub fn foreign_containers(kit: &DockerKit) -> usize {
    let out = kit.docker(&["ps", "--format", "{{.Names}}"]);
    let prefix = format!("muster-test-{}-", kit.tag);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|name| !name.is_empty() && !name.starts_with(&prefix))
        .count()
}

/// Names of the running test containers of `kit` that have series named
/// `metric` in `body`.
pub fn containers_in(body: &str, metric: &str, kit: &DockerKit) -> usize {
    let prefix = format!("muster-test-{}-", kit.tag);
    samples_of(body, metric)
        .iter()
        .filter(|s| s.label("name").starts_with(&prefix))
        .count()
}

/// A keep-alive HTTP client on a single-threaded runtime, so the client's
/// own work stays on the benchmark's thread.
#[derive(Debug)]
pub struct Scraper {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Scraper {
    /// A new client (10 s timeout per request, no proxy, connections reused).
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self {
            rt,
            client: muster_tests::http_client(None),
        }
    }

    /// One GET of `url`, body read in full: (wall time, body), `None` on any
    /// error or non-2xx status.
    pub fn get(&self, url: &str) -> Option<(Duration, String)> {
        self.rt.block_on(async {
            let started = Instant::now();
            let response = self.client.get(url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let body = response.text().await.ok()?;
            Some((started.elapsed(), body))
        })
    }
}

/// What `scrape_many` measured.
#[derive(Debug)]
pub struct ScrapeRun {
    /// Latency of each successful scrape.
    pub latencies: Vec<Duration>,
    /// Failed scrapes.
    pub failures: usize,
    /// Wall time of the run.
    pub wall: Duration,
    /// CPU seconds the server used during the run.
    pub cpu_seconds: f64,
    /// The last body.
    pub last_body: String,
}

/// `count` sequential scrapes of `url` (stopping early after `limit`),
/// measuring each latency and the CPU time process `pid` uses meanwhile.
pub fn scrape_many(
    scraper: &Scraper,
    url: &str,
    pid: i32,
    count: usize,
    limit: Duration,
) -> ScrapeRun {
    let mut latencies = Vec::with_capacity(count);
    let mut failures = 0;
    let mut last_body = String::new();
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    for _ in 0..count {
        if started.elapsed() > limit {
            eprintln!(
                "time limit {limit:?} reached after {} scrapes",
                latencies.len() + failures
            );
            break;
        }
        match scraper.get(url) {
            Some((latency, body)) => {
                latencies.push(latency);
                last_body = body;
            }
            None => failures += 1,
        }
    }
    let wall = started.elapsed();
    let cpu_seconds = cpu_seconds(pid) - cpu_before;
    ScrapeRun {
        latencies,
        failures,
        wall,
        cpu_seconds,
        last_body,
    }
}

/// The `p`-quantile (0..=1) of `values` by nearest rank; 0 when empty.
pub fn quantile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// `a / b` with three decimals, `inf` when `b` is 0.
pub fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "inf".to_owned()
    } else {
        format!("{:.3}", a / b)
    }
}

/// Series lines of a text exposition (neither comments nor blank lines).
pub fn series_count(body: &str) -> usize {
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// `node_scrape_collector_duration_seconds{collector}` of a scrape, longest
/// first, as `name=ms` pairs (the top `n`).
pub fn slowest_collectors(body: &str, n: usize) -> String {
    let mut durations: Vec<(String, f64)> =
        samples_of(body, "node_scrape_collector_duration_seconds")
            .into_iter()
            .map(|s| (s.label("collector").to_owned(), s.value))
            .collect();
    durations.sort_by(|a, b| b.1.total_cmp(&a.1));
    durations
        .iter()
        .take(n)
        .map(|(c, v)| format!("{c}={:.2}ms", v * 1e3))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The series named `metric` of a text exposition, parsing only its lines
/// (the kit's reader panics on a line it can't read, and the anchor's output
/// is not under test).
pub fn samples_of(body: &str, metric: &str) -> Vec<muster_tests::docker::Sample> {
    let lines: String = body
        .lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    muster_tests::docker::samples(&lines, metric)
}

/// The 1-minute load average, for the record.
pub fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}
