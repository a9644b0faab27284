//! The anchor side: Debian's Prometheus scraping every simulated host's `/metrics` every
//! 10 s, each target labelled `host="h0000"`.. as the collector labels its series.
//!
//! Host 0's 24 h backlog goes in first with `promtool tsdb create-blocks-from openmetrics`
//! (blocks of up to 18 h, Prometheus's largest compaction range at the default 15 d
//! retention, so it does not compact them during the run). After the run a snapshot
//! (`POST /api/v1/admin/tsdb/snapshot`, head included) is the "after flush" figure: its
//! blocks hold every sample, as the collector's store does after its shutdown flush, while
//! the live data folder keeps the head in the WAL for up to 3 h.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use muster_tests::{Proc, free_port};

use super::loadgen::Loadgen;
use super::measure::{self, Http, dir_size, metric_sum, observe, status_bytes};
use super::{Figures, QUERY, Settings};

/// Debian's package installs the binaries here.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
/// Ditto.
pub const PROMTOOL: &str = "/usr/bin/promtool";
const JOB: &str = "loadgen";

pub fn run(settings: &Settings) -> anyhow::Result<Figures> {
    let dir = tempfile::Builder::new()
        .prefix("prometheus-bench-")
        .tempdir()?;
    let data = dir.path().join("data");
    let backfill = dir.path().join("backfill.om");
    let hosts = settings.hosts;
    let loadgen = Loadgen::start(
        "metrics",
        dir.path(),
        &[
            format!("--hosts={hosts}"),
            format!("--backlog-rounds={}", settings.backlog_rounds),
            format!("--backfill={}", backfill.display()),
            format!("--job={JOB}"),
        ],
        Duration::from_secs(120),
    )?;
    let mut notes = Vec::new();
    if settings.backlog_rounds > 0 {
        let t = Instant::now();
        let out = muster_tests::run(
            Command::new(PROMTOOL)
                .args([
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    "--max-block-duration=18h",
                ])
                .arg(&backfill)
                .arg(&data),
        );
        if !out.status.success() {
            bail!(
                "promtool create-blocks-from: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::remove_file(&backfill)?;
        notes.push(format!(
            "prometheus: host 0's backlog backfilled with promtool in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
    }
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, scrape_config(&loadgen.ports))?;

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let http = Http::new(Duration::from_secs(120))?;
    let loadgen_cpu = loadgen.cpu();
    let started = Instant::now();
    let mut proc = Proc::start(
        "prometheus",
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-admin-api"),
        dir.path().join("prometheus.log"),
    );
    let pid = proc.pid();
    http.wait_ok(
        &format!("{url}/-/ready"),
        "prometheus",
        Duration::from_secs(120),
    )?;
    let metrics_url = format!("{url}/metrics");
    let window = observe(
        pid,
        started,
        settings.warm_up,
        settings.run,
        || {
            let (_, body) = http.get(&metrics_url, None)?;
            metric_sum(&body, "prometheus_tsdb_head_samples_appended_total")
                .context("prometheus_tsdb_head_samples_appended_total missing")
        },
        || true,
    )?;
    let loadgen_cpu = loadgen.cpu() - loadgen_cpu;
    notes.push(scrape_health(&http, &url, hosts));
    notes.push(format!(
        "prometheus: load generator used {loadgen_cpu:.1} CPU s during the run"
    ));
    let query = measure::time_range_query(
        &http,
        &url,
        None,
        QUERY,
        settings.query_runs,
        Duration::from_secs(600),
    )
    .context("the 24 h rate() query on Prometheus")?;

    // "After flush": a snapshot writes the head as a block beside the persisted ones.
    let t = Instant::now();
    let (status, body) = http.post(&format!("{url}/api/v1/admin/tsdb/snapshot"), None)?;
    if status != 200 {
        bail!("snapshot answered {status}: {body}");
    }
    let name: serde_json::Value = serde_json::from_str(&body)?;
    let name = name["data"]["name"]
        .as_str()
        .context("snapshot name")?
        .to_owned();
    let snapshot = data.join("snapshots").join(&name);
    let disk = dir_size(&snapshot)?;
    let (samples, head_block) = snapshot_samples(&snapshot)?;
    let hwm_incl_flush = status_bytes(pid, "VmHWM");
    let (wal, _) = dir_size(&data.join("wal"))?;
    let (head_chunks, _) = dir_size(&data.join("chunks_head")).unwrap_or_default();
    notes.push(format!(
        "prometheus: snapshot took {:.1} s; its head block {} bytes for {} samples; live folder's wal {wal} bytes, chunks_head {head_chunks} bytes",
        t.elapsed().as_secs_f64(),
        head_block.0,
        head_block.1
    ));
    proc.stop();
    notes.push(format!("prometheus: {}", loadgen.stop()));
    Ok(Figures {
        window,
        hwm_incl_flush,
        disk,
        disk_samples: samples,
        disk_method: "snapshot (POST /api/v1/admin/tsdb/snapshot, head included): its blocks' bytes, samples from their meta.json"
            .to_owned(),
        query,
        notes,
    })
}

/// One static target per host, labelled with the host's id.
fn scrape_config(ports: &[u16]) -> String {
    let mut yaml = format!(
        "global:\n  scrape_interval: 10s\n  scrape_timeout: 5s\n  evaluation_interval: 1m\n\
         scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n"
    );
    for (i, port) in ports.iter().enumerate() {
        let _ = write!(
            yaml,
            "      - targets: ['127.0.0.1:{port}']\n        labels: {{host: '{}'}}\n",
            muster_tests::loadgen::catalogue::host_id(i)
        );
    }
    yaml
}

/// Samples in a snapshot (sum of its blocks' `stats.numSamples`), and the bytes and samples
/// of the block written from the head (the newest).
fn snapshot_samples(snapshot: &Path) -> anyhow::Result<(f64, (u64, u64))> {
    let mut total = 0.0;
    let mut newest: (i64, u64, u64) = (i64::MIN, 0, 0);
    for entry in std::fs::read_dir(snapshot)? {
        let path = entry?.path();
        let Ok(text) = std::fs::read_to_string(path.join("meta.json")) else {
            continue;
        };
        let meta: serde_json::Value = serde_json::from_str(&text)?;
        let n = meta["stats"]["numSamples"].as_u64().unwrap_or(0);
        total += n as f64;
        let max_time = meta["maxTime"].as_i64().unwrap_or(i64::MIN);
        if max_time > newest.0 {
            newest = (max_time, dir_size(&path)?.0, n);
        }
    }
    Ok((total, (newest.1, newest.2)))
}

/// Targets up, and the mean scrape duration, from Prometheus's own series.
fn scrape_health(http: &Http, url: &str, hosts: usize) -> String {
    let value = |query: &str| -> String {
        http.get(
            &format!("{url}/api/v1/query?query={}", measure::encode(query)),
            None,
        )
        .ok()
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|v| {
            v["data"]["result"][0]["value"][1]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".to_owned())
    };
    format!(
        "prometheus: targets up {}/{hosts}, mean scrape {} s, samples per scrape {}",
        value("count(up==1)"),
        value("avg(scrape_duration_seconds)"),
        value("avg(scrape_samples_scraped)")
    )
}
