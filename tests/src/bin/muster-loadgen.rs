//! `muster-loadgen`: a fleet of simulated hosts in one process, for
//! `tests/bench/collector_vs_prometheus.rs` (see `muster_tests::loadgen`).
//!
//! `muster-loadgen agent` binds one mutual-TLS listener per host on 127.0.0.1, enrolls
//! every host with the collector through its API, serves the agent API, and starts its round
//! clock on SIGUSR1. `muster-loadgen metrics` binds one plain-HTTP listener per host, starts
//! the clock at once and serves `/metrics`; `--backfill FILE` writes host 0's backlog as
//! OpenMetrics for promtool. In both, SIGUSR2 freezes the clock (no round after the current
//! one) and SIGTERM stops the process. `manifest.json` in `--out` lists the ports once
//! everything is served; `clock.json` holds the clock's start and freeze.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use muster_shared::serve::{ServeOptions, serve};
use muster_shared::tls::{Identity, PeerPolicy, server_config};
use muster_tests::loadgen::catalogue::host_id;
use muster_tests::loadgen::{Fleet, agent_api, enroll, metrics_api, openmetrics, unix_ms};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Parser)]
#[command(
    name = "muster-loadgen",
    about = "Simulated Muster agents and exporters"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Simulated hosts.
    #[arg(long, default_value_t = 1000)]
    hosts: usize,
    /// Rounds of backlog (CPU series, 10 s apart) before round 0 on host 0.
    #[arg(long, default_value_t = 0)]
    backlog_rounds: u64,
    /// Folder for manifest.json and clock.json.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Serve the agent API (mutual TLS) for hosts enrolled with a collector.
    Agent {
        #[command(flatten)]
        common: Common,
        /// The collector's API base URL (http:// on loopback).
        #[arg(long)]
        collector: String,
        /// File holding an admin API token.
        #[arg(long)]
        admin_token_file: PathBuf,
        /// Enrollments in flight at once.
        #[arg(long, default_value_t = 8)]
        enroll_concurrency: usize,
    },
    /// Serve Prometheus `/metrics` (plain HTTP) for the same hosts.
    Metrics {
        #[command(flatten)]
        common: Common,
        /// Write host 0's backlog here as OpenMetrics, labelled as Prometheus will label it.
        #[arg(long)]
        backfill: Option<PathBuf>,
        /// The `job` label of the Prometheus scrape config (for --backfill).
        #[arg(long, default_value = "loadgen")]
        job: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run(cli)),
        Err(err) => Err(err).context("cannot start the runtime"),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("muster-loadgen: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    raise_fd_limit();
    let common = match &cli.mode {
        Mode::Agent { common, .. } | Mode::Metrics { common, .. } => common,
    };
    std::fs::create_dir_all(&common.out)
        .with_context(|| format!("cannot create {}", common.out.display()))?;
    let started = std::time::Instant::now();
    let fleet = Arc::new(Fleet::new(common.hosts, common.backlog_rounds, unix_ms()));
    let mut listeners = Vec::with_capacity(common.hosts);
    let mut ports = Vec::with_capacity(common.hosts);
    for _ in 0..common.hosts {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind a listener on 127.0.0.1")?;
        ports.push(listener.local_addr().context("listener address")?.port());
        listeners.push(listener);
    }
    eprintln!(
        "muster-loadgen: {} hosts built and bound in {:.1} s",
        common.hosts,
        started.elapsed().as_secs_f64()
    );

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let options = ServeOptions {
        max_connections: 16,
        ..ServeOptions::default()
    };
    let mode = match &cli.mode {
        Mode::Agent {
            collector,
            admin_token_file,
            enroll_concurrency,
            ..
        } => {
            let admin_token = std::fs::read_to_string(admin_token_file)
                .with_context(|| format!("cannot read {}", admin_token_file.display()))?;
            let hosts = ports
                .iter()
                .enumerate()
                .map(|(i, port)| (i, host_id(i), *port))
                .collect();
            let enrolled =
                enroll::enroll_all(collector, admin_token.trim(), hosts, *enroll_concurrency)
                    .await?;
            eprintln!(
                "muster-loadgen: {} hosts enrolled after {:.1} s",
                enrolled.len(),
                started.elapsed().as_secs_f64()
            );
            let mut listeners: Vec<Option<TcpListener>> = listeners.into_iter().map(Some).collect();
            for identity in enrolled {
                let Some(listener) = listeners.get_mut(identity.index).and_then(Option::take)
                else {
                    bail!(
                        "enrollment answered for an unknown host index {}",
                        identity.index
                    );
                };
                let tls = server_config(
                    &identity.ca_pem,
                    Identity::from_pem(&identity.cert_pem, &identity.key_pem)
                        .context("enrolled identity")?,
                    PeerPolicy::Collector,
                )
                .context("TLS config")?;
                let router = agent_api::router(fleet.clone(), identity.index);
                tasks.spawn(serve(
                    listener,
                    Some(tls),
                    router,
                    shutdown.child_token(),
                    options,
                ));
            }
            "agent"
        }
        Mode::Metrics { backfill, job, .. } => {
            let start = fleet.clock.start(unix_ms());
            if let Some(path) = backfill {
                let instance = format!("127.0.0.1:{}", ports.first().copied().unwrap_or(0));
                let labels = [
                    ("host", host_id(0)),
                    ("instance", instance),
                    ("job", job.clone()),
                ];
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(n, v)| (*n, v.as_str())).collect();
                let written = write_backfill(path, &fleet, start, &labels)?;
                eprintln!(
                    "muster-loadgen: wrote {written} backlog samples to {}",
                    path.display()
                );
            }
            write_clock(&common.out, &fleet)?;
            for (i, listener) in listeners.into_iter().enumerate() {
                let router = metrics_api::router(fleet.clone(), i);
                tasks.spawn(serve(
                    listener,
                    None,
                    router,
                    shutdown.child_token(),
                    options,
                ));
            }
            "metrics"
        }
    };
    let manifest = serde_json::json!({
        "mode": mode,
        "hosts": common.hosts,
        "backlog_rounds": common.backlog_rounds,
        "ports": ports,
        "pid": std::process::id(),
    });
    write_atomic(
        &common.out.join("manifest.json"),
        manifest.to_string().as_bytes(),
    )?;
    eprintln!("muster-loadgen: serving {mode} for {} hosts", common.hosts);

    signals(&fleet, &common.out, &shutdown).await?;
    shutdown.cancel();
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(15), tasks.wait()).await;
    let s = &fleet.served;
    eprintln!(
        "muster-loadgen: stopped; batches={} rounds={} values={} scrapes={} errors={}",
        s.batches.load(Ordering::Relaxed),
        s.rounds.load(Ordering::Relaxed),
        s.values.load(Ordering::Relaxed),
        s.scrapes.load(Ordering::Relaxed),
        s.errors.load(Ordering::Relaxed)
    );
    Ok(())
}

/// SIGUSR1 starts the clock, SIGUSR2 freezes it; returns on SIGTERM or SIGINT.
async fn signals(fleet: &Fleet, out: &Path, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let mut usr1 = signal(SignalKind::user_defined1()).context("SIGUSR1 handler")?;
    let mut usr2 = signal(SignalKind::user_defined2()).context("SIGUSR2 handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    loop {
        tokio::select! {
            _ = usr1.recv() => {
                let start = fleet.clock.start(unix_ms());
                eprintln!("muster-loadgen: clock started at {start}");
            }
            _ = usr2.recv() => {
                let frozen = fleet.clock.freeze(unix_ms());
                eprintln!("muster-loadgen: clock frozen at round {frozen:?}");
            }
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            () = shutdown.cancelled() => return Ok(()),
        }
        write_clock(out, fleet)?;
    }
}

fn write_clock(out: &Path, fleet: &Fleet) -> anyhow::Result<()> {
    let now = unix_ms();
    let clock = serde_json::json!({
        "start_ms": fleet.clock.start_ms(),
        "newest_round": fleet.clock.newest_round(now),
        "frozen_round": fleet.clock.frozen_round(),
        "written_ms": now,
    });
    write_atomic(&out.join("clock.json"), clock.to_string().as_bytes())
}

fn write_backfill(
    path: &Path,
    fleet: &Fleet,
    start: u64,
    labels: &[(&str, &str)],
) -> anyhow::Result<u64> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let written = openmetrics::write_backlog(&mut out, fleet, start, labels)
        .and_then(|n| out.flush().map(|()| n))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(written)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))?;
    Ok(())
}

/// One listener and up to a few connections per host: raise the soft open-files limit to
/// the hard one, as Go programs (Prometheus) do at start.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err()
    {
        eprintln!("muster-loadgen: cannot raise the open-files limit from {soft}");
    }
}
