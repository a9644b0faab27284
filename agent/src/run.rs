//! `muster-agent run`: load the identity, open the store, serve until told
//! to stop.
//!
//! The agent's identity is its certificate: the host id is read from the
//! certificate's `agent:<host>` name, so it cannot drift from what the
//! collector enrolled. Sampling and the configured probes start with the
//! server: their rounds go to the buffer, which `/v1/samples` serves, and to
//! `/metrics`. Shutdown (the caller cancels the token) stops accepting, drains
//! requests, stops the sampling loop and the probes, then flushes the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use muster_shared::protocol::PROTOCOL_VERSION;
use muster_shared::protocol::info::{
    AgentInfo, CAP_BACKUPS, CAP_JOBS, CAP_PROBES, CAP_SAMPLES, CAP_URGENT,
};
use muster_shared::serve::{ServeOptions, serve};
use muster_shared::store::{Store, StoreOptions};
use muster_shared::tls::{Identity, PeerPolicy, Role, server_config};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{AgentState, metrics_router, router};
use crate::backup::sets::BackupSets;
use crate::backup::sets::series::BackupSampler;
use crate::buffer::Buffer;
use crate::config::AgentSettings;
use crate::jobs::Jobs;
use crate::probe::board::ProbeBoard;
use crate::sample::Sampler;
use crate::sample::buffer_sink::BufferSink;
use crate::sample::exposition::Exposition;
use crate::sample::process::ProcessSampler;
use crate::sample::scheduler::{ScheduleOptions, Scheduler};
use crate::sample::{container, host};
use crate::urgent::UrgentRounds;

/// How long shutdown waits for sampling and the metrics listener.
const TASK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// A started agent: where it listens and who it is.
#[derive(Debug)]
pub struct Started {
    /// The bound address (useful with port 0).
    pub local_addr: std::net::SocketAddr,
    /// The host id from the certificate.
    pub host_id: String,
    /// The plain-HTTP `/metrics` listener, when configured.
    pub prometheus_addr: Option<std::net::SocketAddr>,
}

/// Runs the agent until `shutdown` is cancelled. `on_started` is called once
/// the listener is bound and the agent is ready.
///
/// # Errors
/// Missing or invalid certificate files (with a hint to enroll), a store that
/// can't be opened (e.g. another agent uses the same data dir), or an address
/// that can't be bound.
pub async fn run(
    settings: AgentSettings,
    shutdown: CancellationToken,
    on_started: impl FnOnce(&Started),
) -> anyhow::Result<()> {
    let identity = Identity::load(&settings.cert_path, &settings.key_path).with_context(|| {
        format!(
            "cannot load the agent certificate; run `muster-agent enroll --config {}` first",
            settings.config_path.display()
        )
    })?;
    let host_id = match identity.role() {
        Ok(Role::Agent(host)) => host,
        Ok(other) => bail!(
            "{}: certificate is for role `{other}`, not an agent",
            settings.cert_path.display()
        ),
        Err(err) => {
            return Err(err).with_context(|| {
                format!("{}: certificate has no role", settings.cert_path.display())
            });
        }
    };
    let ca_pem = std::fs::read_to_string(&settings.ca_path)
        .with_context(|| format!("cannot read fleet CA {}", settings.ca_path.display()))?;
    let tls = server_config(&ca_pem, identity, PeerPolicy::Collector).with_context(|| {
        format!(
            "cannot build TLS config from {}",
            settings.ca_path.display()
        )
    })?;

    let store_path = settings.store_path();
    let store =
        tokio::task::spawn_blocking(move || Store::open(&store_path, StoreOptions::agent()))
            .await
            .context("store open task failed")?
            .with_context(|| {
                format!(
                    "cannot open the agent store in {}",
                    settings.data_dir.display()
                )
            })?;
    let buffer = {
        let store = store.clone();
        let config = settings.buffer.clone();
        tokio::task::spawn_blocking(move || Buffer::open(&store, &config))
            .await
            .context("buffer open task failed")?
            .context("cannot open the sample buffer")?
    };
    let buffer = Arc::new(buffer);

    let tasks = TaskTracker::new();
    let exposition = Arc::new(Exposition::new());
    let mut samplers = build_samplers(&settings, &shutdown, &tasks).await;
    let backups = if settings.backups.is_empty() {
        None
    } else {
        let sets = BackupSets::open(
            settings.backups.clone(),
            &settings.data_dir,
            settings.sample.paths.docker_socket.clone(),
            &store,
        )
        .context("cannot open the backup run book")?;
        samplers.push(Box::new(BackupSampler::new(sets.clone())));
        sets.start_schedules(&shutdown, &tasks);
        let names: Vec<&str> = settings.backups.iter().map(|s| s.name.as_str()).collect();
        tracing::info!(sets = ?names, "backups");
        Some(sets)
    };
    let jobs = Jobs::open(&store, backups.clone(), tasks.clone(), shutdown.clone())
        .context("cannot open the job records")?;
    let names: Vec<&str> = samplers.iter().map(|s| s.name()).collect();
    tracing::info!(samplers = ?names, interval = %settings.sample.interval, "sampling");
    let probes = {
        let configs = settings.probes.clone();
        let socket = settings.sample.paths.docker_socket.clone();
        tokio::task::spawn_blocking(move || crate::probe::build(&configs, &socket))
            .await
            .context("probe setup task failed")?
            .context("cannot set up the probes")?
    };
    let sink = Arc::new(BufferSink(buffer.clone()));
    let mut scheduler = Scheduler::new(
        samplers,
        sink.clone(),
        exposition.clone(),
        ScheduleOptions {
            interval: settings.sample.interval.get(),
            timeout: settings.sample.timeout.get(),
        },
    );
    let urgent = Arc::new(UrgentRounds::new());
    {
        // Long polls end with the agent: graceful shutdown waits for open requests.
        let urgent = urgent.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            stop.cancelled().await;
            urgent.close();
        });
    }
    let mut capabilities = vec![CAP_SAMPLES.to_owned()];
    if backups.is_some() {
        capabilities.extend([CAP_BACKUPS.to_owned(), CAP_JOBS.to_owned()]);
    }
    if !probes.is_empty() {
        let names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
        tracing::info!(probes = ?names, "probing");
        let board = Arc::new(ProbeBoard::new());
        scheduler = scheduler.with_extra(board.clone());
        crate::probe::runner::start(probes, sink, board, urgent.clone(), &shutdown, &tasks);
        // Only agents with probes have urgent rounds; the collector then keeps a long
        // poll open to them (one more connection each).
        capabilities.extend([CAP_PROBES.to_owned(), CAP_URGENT.to_owned()]);
    }
    tasks.spawn(scheduler.run(shutdown.child_token()));

    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let local_addr = listener.local_addr().context("listener has no address")?;
    let prometheus_addr = match settings.prometheus_listen {
        Some(addr) => {
            let plain = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for [prometheus]"))?;
            let bound = plain.local_addr().context("listener has no address")?;
            tasks.spawn(serve(
                plain,
                None,
                metrics_router(exposition.clone()),
                shutdown.clone(),
                ServeOptions::default(),
            ));
            Some(bound)
        }
        None => None,
    };

    let ready = Arc::new(AtomicBool::new(false));
    let state = AgentState {
        info: Arc::new(AgentInfo {
            host_id: host_id.clone(),
            agent_version: muster_shared::version::VERSION.to_owned(),
            protocol_version: PROTOCOL_VERSION,
            capabilities,
            started_at_unix_ms: crate::unix_ms(),
        }),
        ready: ready.clone(),
        buffer: buffer.clone(),
        exposition,
        urgent,
        backups,
        jobs: Some(jobs),
    };
    let server = serve(
        listener,
        Some(tls),
        router(state),
        shutdown.clone(),
        ServeOptions::default(),
    );
    ready.store(true, Ordering::Release);
    tracing::info!(
        host = %host_id,
        listen = %local_addr,
        prometheus = ?prometheus_addr,
        version = muster_shared::version::long_version(),
        "agent started"
    );
    on_started(&Started {
        local_addr,
        host_id: host_id.clone(),
        prometheus_addr,
    });
    muster_shared::serve::notify_ready();
    server.await;
    muster_shared::serve::stop_tasks(&shutdown, &tasks, TASK_DEADLINE).await;
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .context("store flush task failed")?
        .context("cannot flush the agent store")?;
    tracing::info!(host = %host_id, "agent stopped");
    Ok(())
}

/// The enabled samplers, in a fixed order: host samplers, the agent's own
/// process, containers.
async fn build_samplers(
    settings: &AgentSettings,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Vec<Box<dyn Sampler>> {
    let sample = &settings.sample;
    let enabled = |name: &str| sample.enabled(name);
    let mut samplers = host::samplers(
        &sample.paths,
        &sample.filesystem,
        &sample.diskstats,
        &sample.netdev,
        &enabled,
    );
    if sample.enabled("process") {
        samplers.push(Box::new(ProcessSampler::new(&sample.paths)));
    }
    if sample.enabled("container")
        && let Some(containers) = container::start(
            &sample.paths,
            &sample.container,
            shutdown.child_token(),
            tasks,
        )
        .await
    {
        samplers.push(containers);
    }
    samplers
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use muster_shared::tls::CertificateAuthority;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The body of `GET /metrics` on the plain listener.
    async fn metrics(addr: std::net::SocketAddr) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_configured_agent_runs_its_probes() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("probe run test CA").unwrap();
        let agent = ca
            .issue(
                &Role::agent("web1").unwrap(),
                &[],
                Duration::from_secs(86_400),
            )
            .unwrap();
        std::fs::create_dir(dir.path().join("pki")).unwrap();
        std::fs::write(dir.path().join("pki/ca.crt"), ca.cert_pem()).unwrap();
        std::fs::write(dir.path().join("pki/agent.crt"), &agent.cert_pem).unwrap();
        std::fs::write(dir.path().join("pki/agent.key"), &agent.key_pem).unwrap();
        let db = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = format!(
            "listen = \"127.0.0.1:0\"\n\
             [sample]\ninterval = \"1s\"\ntimeout = \"500ms\"\nsamplers = [\"loadavg\"]\n\
             [prometheus]\nlisten = \"127.0.0.1:0\"\n\
             [[probe]]\nname = \"db\"\nkind = \"tcp\"\ntarget = \"{}\"\ninterval = \"1s\"\n",
            db.local_addr().unwrap()
        );
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, config).unwrap();
        let settings = AgentSettings::load(&path).unwrap();

        let shutdown = CancellationToken::new();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let agent = tokio::spawn(run(settings, shutdown.clone(), move |s| {
            let _ = started_tx.send(s.prometheus_addr);
        }));
        let addr = started_rx.await.unwrap().unwrap();
        let wanted = "probe_success{probe=\"db\",target=\"";
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let text = loop {
            let text = metrics(addr).await;
            if text.contains(wanted) {
                break text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no probe series on /metrics:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(text.contains("muster_probe_healthy{probe=\"db\""), "{text}");
        shutdown.cancel();
        agent.await.unwrap().unwrap();
    }
}
