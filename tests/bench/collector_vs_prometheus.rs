//! `collector_vs_prometheus`: the collector against Debian's Prometheus on the same
//! simulated fleet, one after the other in one run, so each has the machine to itself.
//!
//! One load generator process (`muster-loadgen`, tests/src/loadgen/) plays N hosts
//! (`MUSTER_BENCH_HOSTS`, default 1,000) of ~500 series each: node_exporter's host series
//! and cAdvisor's container series, counters rising and gauges moving as real ones do. For
//! Muster it serves each host's agent API over mutual TLS with a certificate from a real
//! enrollment; for Prometheus, each host's `/metrics` with the same series and values.
//! Each store takes in every host every 10 s for `MUSTER_BENCH_SECONDS` (default 300):
//!
//! - CPU seconds per million samples ingested: utime + stime from `/proc/<pid>/stat`
//!   against the store's own counter (`muster_collector_samples_ingested_total`,
//!   `prometheus_tsdb_head_samples_appended_total`), over the run after a warm-up (every
//!   host seen once) and over the whole process life;
//! - peak RSS (`VmHWM`) at the end of the run, and including the final flush;
//! - bytes on disk per sample after a flush: Muster's store after its SIGTERM flush against
//!   the samples it ingested, a Prometheus snapshot against its blocks' sample counts;
//! - the median latency of `rate(node_cpu_seconds_total{host="h0000"}[5m])` over 24 h at a
//!   60 s step, both stores holding host 0's CPU series for the whole day (the load
//!   generator's backlog, pulled by the collector, backfilled into Prometheus with promtool).
//!
//! Run: `cargo build --release -p muster-collector --bin muster-collector && cargo bench -p
//! muster-tests --bench collector_vs_prometheus`. Needs `/usr/bin/prometheus` and
//! `/usr/bin/promtool` (Debian's `prometheus`). Everything listens on 127.0.0.1; every
//! process is stopped by its PID and every temp folder removed, also on failure. Prints
//! lines only; nothing asserts on them. docs/benchmarks.md explains the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;
// A bench's root resolves modules beside it, not in a folder named after it.
#[path = "collector_vs_prometheus/loadgen.rs"]
mod loadgen;
#[path = "collector_vs_prometheus/measure.rs"]
mod measure;
#[path = "collector_vs_prometheus/muster.rs"]
mod muster;
#[path = "collector_vs_prometheus/prometheus.rs"]
mod prometheus;

use std::time::Duration;

use measure::{QueryFigures, Window, ms};

const NAME: &str = "collector_vs_prometheus";
/// The query timed on both stores.
pub const QUERY: &str = "rate(node_cpu_seconds_total{host=\"h0000\"}[5m])";

/// What the run is asked to do (from the environment).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Simulated hosts.
    pub hosts: usize,
    /// From a store's start to the end of its run.
    pub run: Duration,
    /// The start of the run not counted in the steady figures.
    pub warm_up: Duration,
    /// Host 0's backlog, in 10 s rounds (24 h).
    pub backlog_rounds: u64,
    /// Timed runs of the query.
    pub query_runs: usize,
}

/// One store's figures.
#[derive(Debug)]
pub struct Figures {
    /// CPU, samples and memory over the run.
    pub window: Window,
    /// Peak RSS including the flush that makes the disk figure.
    pub hwm_incl_flush: u64,
    /// Bytes on disk after the flush: (file lengths, allocated).
    pub disk: (u64, u64),
    /// Samples those bytes hold.
    pub disk_samples: f64,
    /// How the disk figure was taken.
    pub disk_method: String,
    /// The 24 h `rate()` query.
    pub query: QueryFigures,
    /// Lines for the record.
    pub notes: Vec<String>,
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| common::give_up(&format!("{name}={text:?} is not a whole number"))),
        Err(_) => default,
    }
}

fn main() {
    common::require_release_bins(&["muster-collector"]);
    for tool in [prometheus::PROMETHEUS, prometheus::PROMTOOL] {
        if !std::path::Path::new(tool).is_file() {
            common::give_up(&format!(
                "{tool} is missing: apt-get install -y --no-install-recommends prometheus"
            ));
        }
    }
    let seconds = env_number("MUSTER_BENCH_SECONDS", 300).max(30);
    let settings = Settings {
        hosts: usize::try_from(env_number("MUSTER_BENCH_HOSTS", 1000).max(1)).unwrap_or(1000),
        run: Duration::from_secs(seconds),
        warm_up: Duration::from_secs(20.min(seconds / 3)),
        backlog_rounds: muster_tests::loadgen::ROUNDS_PER_DAY,
        query_runs: 20,
    };
    let only = std::env::var("MUSTER_BENCH_ONLY").unwrap_or_default();
    eprintln!(
        "{NAME}: {} hosts, {} s per store (warm-up {} s), load1 {}",
        settings.hosts,
        seconds,
        settings.warm_up.as_secs(),
        common::load1()
    );
    let muster = (only != "prometheus").then(|| phase("muster", || muster::run(&settings)));
    let prometheus = (only != "muster").then(|| phase("prometheus", || prometheus::run(&settings)));
    match (muster, prometheus) {
        (Some(m), Some(p)) => report(&settings, &m, &p),
        (Some(one), None) | (None, Some(one)) => {
            println!("{NAME} MUSTER_BENCH_ONLY={only}: one store only, no comparison");
            print_notes(&one);
        }
        (None, None) => {}
    }
}

fn phase(name: &str, run: impl FnOnce() -> anyhow::Result<Figures>) -> Figures {
    eprintln!("{NAME}: {name} phase, load1 {}", common::load1());
    match run() {
        Ok(figures) => {
            eprintln!("{NAME}: {name} phase done, load1 {}", common::load1());
            figures
        }
        Err(err) => {
            // Temp folders and processes are dropped on the way out (guards).
            eprintln!("{NAME}: {name} phase failed: {err:#}");
            std::process::exit(1);
        }
    }
}

fn print_notes(f: &Figures) {
    for note in &f.notes {
        println!("{NAME} note {note}");
    }
    let rss: Vec<String> = f
        .window
        .rss
        .iter()
        .map(|(s, b)| format!("{s}s={:.1}MB", *b as f64 / 1e6))
        .collect();
    println!("{NAME} note rss over the run: {}", rss.join(" "));
    println!(
        "{NAME} note samples: whole run {:.0} in {:.0} s, steady {:.0} in {:.0} s; cpu whole {:.2} s, steady {:.2} s",
        f.window.samples_end,
        f.window.whole_secs,
        f.window.samples_end - f.window.samples_start,
        f.window.steady_secs,
        f.window.cpu_end,
        f.window.cpu_end - f.window.cpu_start
    );
}

fn verdict(ratio: f64, target: f64) -> &'static str {
    if !ratio.is_finite() {
        "no figure"
    } else if ratio <= target {
        "met"
    } else {
        "missed"
    }
}

fn line(
    what: &str,
    muster: f64,
    prometheus: f64,
    precision: usize,
    target: Option<f64>,
    note: &str,
) {
    let ratio = muster / prometheus;
    let target = target.map_or(String::new(), |t| {
        format!(" target<={t} {}", verdict(ratio, t))
    });
    println!(
        "{NAME} {what} muster={muster:.precision$} prometheus={prometheus:.precision$} ratio={ratio:.3}{target}{note}"
    );
}

fn report(settings: &Settings, m: &Figures, p: &Figures) {
    println!(
        "{NAME} fairness: {} hosts x ~500 series, every 10 s, {} s each, one after the other; the load generator is a \
         separate process. Muster pulls bincode+zstd batches over mutual TLS; Prometheus parses text over plain HTTP \
         (uncompressed) and also stores 5 series of its own per target (up, scrape_*). Both hold host 0's 24 h CPU backlog \
         ({} samples): Muster ingested it at start (in its whole-run figures, not its steady ones); Prometheus got it as \
         promtool blocks. Disk: Muster's store after its shutdown flush; Prometheus's snapshot (blocks only; its live WAL is \
         listed in the notes).",
        settings.hosts,
        settings.run.as_secs(),
        settings.backlog_rounds * muster_tests::loadgen::catalogue::CPU_SERIES as u64,
    );
    let (mw, pw) = (&m.window, &p.window);
    line(
        "cpu_seconds_per_million_samples",
        mw.cpu_per_million_steady(),
        pw.cpu_per_million_steady(),
        3,
        Some(0.5),
        " (after the warm-up)",
    );
    line(
        "cpu_seconds_per_million_samples_whole_run",
        mw.cpu_per_million_whole(),
        pw.cpu_per_million_whole(),
        3,
        None,
        " (from process start, startup and backlog included)",
    );
    line(
        "peak_rss_bytes",
        mw.hwm as f64,
        pw.hwm as f64,
        0,
        Some(0.5),
        " (VmHWM at the end of the run)",
    );
    line(
        "peak_rss_bytes_incl_flush",
        m.hwm_incl_flush as f64,
        p.hwm_incl_flush as f64,
        0,
        None,
        " (muster: through its SIGTERM flush; prometheus: after its snapshot)",
    );
    line(
        "disk_bytes_per_sample",
        m.disk.0 as f64 / m.disk_samples,
        p.disk.0 as f64 / p.disk_samples,
        3,
        Some(1.0),
        &format!(
            " (muster {} bytes / {:.0} samples; prometheus {} bytes / {:.0} samples)",
            m.disk.0, m.disk_samples, p.disk.0, p.disk_samples
        ),
    );
    line(
        "disk_allocated_bytes_per_sample",
        m.disk.1 as f64 / m.disk_samples,
        p.disk.1 as f64 / p.disk_samples,
        3,
        None,
        " (blocks allocated, st_blocks)",
    );
    let (mq, pq) = (&m.query, &p.query);
    line(
        "query_rate_24h_median_ms",
        mq.median.as_secs_f64() * 1e3,
        pq.median.as_secs_f64() * 1e3,
        2,
        None,
        &format!(
            " (runs {}/{}; muster min {} max {}, prometheus min {} max {})",
            mq.runs,
            pq.runs,
            ms(mq.min),
            ms(mq.max),
            ms(pq.min),
            ms(pq.max)
        ),
    );
    println!(
        "{NAME} query_answer muster: series={} points={} sum_of_mean_rates={:.4} bytes={}; prometheus: series={} points={} sum_of_mean_rates={:.4} bytes={}",
        mq.series,
        mq.points,
        mq.mean_rate_sum,
        mq.bytes,
        pq.series,
        pq.points,
        pq.mean_rate_sum,
        pq.bytes
    );
    println!("{NAME} disk_method muster: {}", m.disk_method);
    println!("{NAME} disk_method prometheus: {}", p.disk_method);
    print_notes(m);
    print_notes(p);
}
