//! The Muster side: a collector (release binary) pulling every simulated host's agent API
//! every 10 s.
//!
//! The hosts are enrolled first, through the API of a collector started for that, which is
//! then stopped; the measured collector is a fresh process on the same data folder, so its
//! CPU and memory are ingestion only, as after a restart in production. The load
//! generator's clock starts just before it, so host 0's 24 h backlog is waiting at its first
//! pull. At the end the clock is frozen, the collector drains what is left, and SIGTERM
//! makes it write everything (head included) to its store before the folder is measured.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use muster_tests::{Proc, bin, free_port};
use nix::sys::signal::Signal;

use super::loadgen::Loadgen;
use super::measure::{self, Http, dir_size, metric_sum, metric_with_label, observe, status_bytes};
use super::{Figures, QUERY, Settings};

pub fn run(settings: &Settings) -> anyhow::Result<Figures> {
    let dir = tempfile::Builder::new().prefix("muster-bench-").tempdir()?;
    let port = free_port();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:{port}\"\ntls = false\n\
             [scrape]\ninterval = \"10s\"\ntimeout = \"5s\"\n"
        ),
    )?;
    let config_arg = config.to_str().context("temp path is not UTF-8")?;
    cli(&["ca", "init", "--config", config_arg])?;
    let admin = cli(&[
        "token", "create", "--config", config_arg, "--role", "admin", "--name", "bench",
    ])?;
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, &admin)?;
    let url = format!("http://127.0.0.1:{port}");
    let http = Http::new(Duration::from_secs(120))?;

    // Enrollment, through a collector that is stopped afterwards.
    let mut enrolling = start(&config, dir.path(), "collector-enroll.log");
    http.wait_ok(
        &format!("{url}/health/live"),
        "the collector",
        Duration::from_secs(60),
    )?;
    let hosts = settings.hosts;
    let loadgen = Loadgen::start(
        "agent",
        dir.path(),
        &[
            format!("--hosts={hosts}"),
            format!("--backlog-rounds={}", settings.backlog_rounds),
            format!("--collector={url}"),
            format!("--admin-token-file={}", token_file.display()),
        ],
        Duration::from_secs(120 + hosts as u64),
    )?;
    let enrolled = host_cursors(&http, &url, &admin)?.len();
    if enrolled != hosts {
        bail!("the collector lists {enrolled} hosts, not {hosts}");
    }
    let status = enrolling.stop();
    if !status.success() {
        bail!(
            "the enrolling collector exited with {status}:\n{}",
            enrolling.log()
        );
    }

    // The measured collector.
    loadgen.start_clock()?;
    let loadgen_cpu = loadgen.cpu();
    let started = Instant::now();
    let started_unix = unix_secs();
    let mut proc = start(&config, dir.path(), "collector.log");
    let pid = proc.pid();
    http.wait_ok(
        &format!("{url}/health/live"),
        "the collector",
        Duration::from_secs(60),
    )?;
    let metrics_url = format!("{url}/metrics");
    let mut ready_after = None;
    let window = observe(
        pid,
        started,
        settings.warm_up,
        settings.run,
        || {
            counter(
                &http,
                &metrics_url,
                "muster_collector_samples_ingested_total",
            )
        },
        || {
            // Ready: every host pulled once (host 0's backlog included).
            if ready_after.is_none()
                && matches!(http.get(&format!("{url}/health/ready"), None), Ok((200, _)))
            {
                ready_after = Some(started.elapsed());
            }
            ready_after.is_some()
        },
    )?;
    let loadgen_cpu = loadgen.cpu() - loadgen_cpu;
    let window_flush = window_flush_note(started_unix, unix_secs());
    let query = measure::time_range_query(
        &http,
        &url,
        Some(&admin),
        QUERY,
        settings.query_runs,
        Duration::from_secs(600),
    )
    .context("the 24 h rate() query on the collector")?;

    // Drain: no new rounds, every host pulled up to the last one.
    let frozen = loadgen.freeze()?;
    let drained = wait_drained(&http, &url, &admin, settings, frozen)?;
    let (_, body) = http.get(&metrics_url, None)?;
    let samples = metric_sum(&body, "muster_collector_samples_ingested_total").unwrap_or(0.0);
    let mut notes = vec![
        format!(
            "muster: ready (all {hosts} hosts pulled once, host 0's backlog included) after {:.1} s",
            ready_after.unwrap_or_default().as_secs_f64()
        ),
        format!(
            "muster: scrapes ok={} failed={}, mean pull {:.1} ms, batches refused {}, dictionaries elided {}, duplicates {}, gap rounds {}; drained in {:.1} s",
            metric_with_label(&body, "muster_collector_scrapes_total", "success").unwrap_or(0.0),
            metric_with_label(&body, "muster_collector_scrapes_total", "failure").unwrap_or(0.0),
            mean_ms(&body, "muster_collector_scrape_duration_seconds"),
            metric_sum(&body, "muster_collector_batches_refused_total").unwrap_or(0.0),
            metric_sum(&body, "muster_collector_dictionaries_elided_total").unwrap_or(0.0),
            metric_sum(&body, "muster_collector_samples_duplicate_total").unwrap_or(0.0),
            metric_sum(&body, "muster_collector_gap_rounds_total").unwrap_or(0.0),
            drained.as_secs_f64()
        ),
        format!("muster: load generator used {loadgen_cpu:.1} CPU s during the run"),
        window_flush,
    ];

    // SIGTERM: the collector writes its head to the store; watch its memory meanwhile.
    let (hwm_incl_flush, stopped_in) = stop_watching_memory(&mut proc)?;
    notes.push(format!(
        "muster: SIGTERM to exit (final flush of the head) took {:.1} s",
        stopped_in.as_secs_f64()
    ));
    // sled (cursors), and under data/tsdb the series log (the index) and the segment
    // files (chunks).
    let (store, tsdb) = (dir.path().join("data/store"), dir.path().join("data/tsdb"));
    let (sled_bytes, segment_bytes) = (dir_size(&store)?, dir_size(&tsdb)?);
    let disk = (
        sled_bytes.0 + segment_bytes.0,
        sled_bytes.1 + segment_bytes.1,
    );
    notes.push(format!(
        "muster: store {} bytes ({}), tsdb (series log, segments) {} bytes ({})",
        sled_bytes.0,
        largest_files(&store, 4),
        segment_bytes.0,
        largest_files(&tsdb, 4)
    ));
    notes.extend(log_problems(&proc.log()));
    notes.push(format!("muster: {}", loadgen.stop()));
    Ok(Figures {
        window,
        hwm_incl_flush,
        disk,
        disk_samples: samples,
        disk_method:
            "data/store (sled) + data/tsdb (series log, segments) after SIGTERM (the collector writes its whole head at shutdown)"
                .to_owned(),
        query,
        notes,
    })
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a 30-minute chunk window that was open at the start closed and was written
/// (window end + 2 min grace, flushes every 30 s) before the end of the run: that flush
/// writes one block record per series and is the collector's periodic memory and CPU peak,
/// which a run may or may not contain depending on the time of day it starts.
fn window_flush_note(start: u64, end: u64) -> String {
    let boundary = (start / 1800 + 1) * 1800;
    if boundary + 120 + 30 <= end {
        format!(
            "muster: a 30-min chunk window closed at {} s into the run and was flushed during it",
            boundary - start
        )
    } else {
        "muster: no 30-min chunk window of live data closed during the run (its flush is not in these figures)"
            .to_owned()
    }
}

fn start(config: &Path, dir: &Path, log: &str) -> Proc {
    Proc::start(
        "muster-collector",
        Command::new(bin("muster-collector"))
            .arg("serve")
            .arg("--config")
            .arg(config),
        dir.join(log),
    )
}

/// Runs the collector's CLI; its stdout, trimmed.
fn cli(args: &[&str]) -> anyhow::Result<String> {
    let out = muster_tests::collector_cli(args);
    if !out.status.success() {
        bail!(
            "muster-collector {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn counter(http: &Http, url: &str, name: &str) -> anyhow::Result<f64> {
    let (_, body) = http.get(url, None)?;
    metric_sum(&body, name).with_context(|| format!("{name} missing from {url}"))
}

fn mean_ms(body: &str, histogram: &str) -> f64 {
    let sum = metric_sum(body, &format!("{histogram}_sum")).unwrap_or(0.0);
    let count = metric_sum(body, &format!("{histogram}_count")).unwrap_or(0.0);
    if count > 0.0 { sum / count * 1e3 } else { 0.0 }
}

/// Each enrolled host's id and cursor, from `GET /api/v1/hosts`.
fn host_cursors(http: &Http, url: &str, token: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let (status, body) = http.get(&format!("{url}/api/v1/hosts"), Some(token))?;
    if status != 200 {
        bail!("GET /api/v1/hosts answered {status}: {body}");
    }
    let hosts: serde_json::Value = serde_json::from_str(&body)?;
    Ok(hosts
        .as_array()
        .context("hosts list")?
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap_or_default().to_owned(),
                h["cursor"].as_u64().unwrap_or(0),
            )
        })
        .collect())
}

/// Waits (at most 60 s) until every host's cursor is at the frozen clock's last round.
fn wait_drained(
    http: &Http,
    url: &str,
    token: &str,
    settings: &Settings,
    frozen: i64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let last = u64::try_from(frozen + 1).unwrap_or(0);
    loop {
        let behind = host_cursors(http, url, token)?
            .iter()
            .filter(|(id, cursor)| {
                let backlog = if id == "h0000" {
                    settings.backlog_rounds
                } else {
                    0
                };
                *cursor < last + backlog
            })
            .count();
        if behind == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(60) {
            eprintln!(
                "collector_vs_prometheus: {behind} hosts still behind the last round after 60 s"
            );
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// SIGTERM, then `VmHWM` every 50 ms until the process exits (SIGKILL after 10 minutes):
/// the peak including the shutdown flush, and how long the exit took.
fn stop_watching_memory(proc: &mut Proc) -> anyhow::Result<(u64, Duration)> {
    let pid = proc.pid();
    let mut hwm = status_bytes(pid, "VmHWM");
    let started = Instant::now();
    proc.signal(Signal::SIGTERM);
    loop {
        if let Some(status) = proc.exited() {
            if !status.success() {
                bail!(
                    "the collector exited with {status} on SIGTERM:\n{}",
                    proc.log()
                );
            }
            return Ok((hwm, started.elapsed()));
        }
        hwm = hwm.max(status_bytes(pid, "VmHWM"));
        if started.elapsed() > Duration::from_secs(600) {
            proc.signal(Signal::SIGKILL);
            bail!("the collector did not exit within 10 minutes of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `n` largest files under `dir`, `path=bytes`, largest first.
fn largest_files(dir: &Path, n: usize) -> String {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&path) {
            stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        } else if let Ok(meta) = std::fs::metadata(&path) {
            let name = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            files.push((meta.len(), name));
        }
    }
    files.sort_unstable_by(|a, b| b.cmp(a));
    let shown: Vec<String> = files
        .iter()
        .take(n)
        .map(|(len, name)| format!("{name}={len}"))
        .collect();
    format!("{} files; {}", files.len(), shown.join(" "))
}

/// The collector's WARN and ERROR lines, counted, the first three quoted.
fn log_problems(log: &str) -> Vec<String> {
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    let mut notes = vec![format!(
        "muster: collector log has {} WARN/ERROR lines",
        problems.len()
    )];
    notes.extend(problems.iter().take(3).map(|l| format!("muster:   {l}")));
    notes
}
