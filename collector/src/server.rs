//! `muster-collector serve`: open the store, load the PKI, start the scrape
//! loop and the API, and stop them in order.
//!
//! Ready (`/health/ready`) means: the store is open and every host enrolled at
//! start has been pulled once. Shutdown: stop accepting, drain API requests,
//! stop the scrape tasks, flush the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use muster_shared::serve::{ServeOptions, serve as serve_http};
use muster_shared::store::{Store, StoreError, StoreOptions};
use muster_shared::tls::server_config_without_client_auth;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{ApiState, router};
use crate::config::CollectorSettings;
use crate::hosts::HostRegistry;
use crate::metrics::Metrics;
use crate::pki::Pki;
use crate::remote_write::RemoteWrite;
use crate::scrape::client::AgentClients;
use crate::scrape::{ScrapeOptions, Scraper};
use crate::tokens::TokenStore;
use crate::tsdb::Tsdb;

/// How long shutdown waits for scrape tasks after the API has drained.
const TASK_DEADLINE: Duration = Duration::from_secs(10);
/// How often closed chunks are written and durable cursors move.
const FLUSH_EVERY: Duration = Duration::from_secs(30);
/// How often retention and rollups run.
const COMPACT_EVERY: Duration = Duration::from_secs(3600);

/// A started collector.
#[derive(Debug, Clone)]
pub struct Started {
    /// The bound API address (useful with port 0).
    pub api_addr: SocketAddr,
    /// The API's base URL.
    pub url: String,
}

/// Opens the collector's store, explaining a lock held by a running collector.
///
/// # Errors
/// The store error with the data folder named.
pub async fn open_store(settings: &CollectorSettings) -> anyhow::Result<Store> {
    let path = settings.store_path();
    let shown = path.clone();
    let opened = tokio::task::spawn_blocking(move || Store::open(&path, StoreOptions::collector()))
        .await
        .context("store open task failed")?;
    match opened {
        Ok(store) => Ok(store),
        Err(err @ StoreError::Locked { .. }) => Err(err).with_context(|| {
            format!(
                "the store in {} is in use: is a collector already running on this data dir?",
                shown.display()
            )
        }),
        Err(err) => {
            Err(err).with_context(|| format!("cannot open the store in {}", shown.display()))
        }
    }
}

/// Runs the collector until `shutdown` is cancelled. `on_started` is called
/// once the API listener is bound.
///
/// # Errors
/// PKI or store problems at start, or an address that can't be bound.
pub async fn serve(
    settings: CollectorSettings,
    shutdown: CancellationToken,
    on_started: impl FnOnce(&Started),
) -> anyhow::Result<()> {
    let pki = Arc::new(Pki::load(&settings.pki)?);
    let store = open_store(&settings).await?;
    let opened = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let tokens = TokenStore::open(&store).context("cannot load tokens")?;
            let hosts = HostRegistry::open(&store).context("cannot load hosts")?;
            Ok((tokens, hosts))
        })
        .await
        .context("store load task failed")??
    };
    let (tokens, hosts) = (Arc::new(opened.0), Arc::new(opened.1));
    let tsdb = {
        let store = store.clone();
        let options = settings.storage;
        let dir = settings.tsdb_path();
        Arc::new(
            tokio::task::spawn_blocking(move || Tsdb::open(&store, &dir, options))
                .await
                .context("tsdb open task failed")?
                .context("cannot open the time-series store")?,
        )
    };
    let metrics = Metrics::new().context("cannot register metrics")?;
    let remote = if settings.remote_write.is_empty() {
        None
    } else {
        Some(Arc::new(
            RemoteWrite::start(
                &settings.remote_write,
                metrics.registry(),
                shutdown.child_token(),
            )
            .context("cannot start remote write")?,
        ))
    };
    let ready = Arc::new(AtomicBool::new(false));

    let tls = if settings.api_tls {
        Some(
            server_config_without_client_auth(&pki.ca_pem, pki.identity()?)
                .context("cannot build the API's TLS config")?,
        )
    } else {
        None
    };
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let api_addr = listener.local_addr().context("listener has no address")?;

    let tasks = TaskTracker::new();
    let scraper = Arc::new(Scraper::new(
        hosts.clone(),
        AgentClients::new(&pki)?,
        metrics.clone(),
        ScrapeOptions {
            interval: settings.scrape_interval,
            timeout: settings.scrape_timeout,
            concurrency: settings.scrape_concurrency,
        },
        tsdb.clone(),
        remote.clone(),
    ));
    tasks.spawn(maintain(tsdb.clone(), shutdown.child_token()));
    {
        let ready = ready.clone();
        let metrics = metrics.clone();
        tasks.spawn(scraper.run(shutdown.child_token(), move || {
            ready.store(true, Ordering::Release);
            metrics.ready.set(1);
            tracing::info!("first scrape round done; ready");
        }));
    }

    let state = ApiState {
        store: store.clone(),
        pki,
        tokens,
        hosts,
        metrics,
        ready,
        agent_cert_validity: settings.agent_cert_validity,
        series: tsdb.clone(),
    };
    let scheme = if settings.api_tls { "https" } else { "http" };
    let started = Started {
        api_addr,
        url: format!("{scheme}://{api_addr}"),
    };
    tracing::info!(
        url = %started.url,
        data_dir = %settings.data_dir.display(),
        version = muster_shared::version::long_version(),
        "collector started"
    );
    on_started(&started);
    // systemd's "ready" is "serving": /health/ready tells the scrape state.
    muster_shared::serve::notify_ready();
    serve_http(
        listener,
        tls,
        router(state, settings.max_body_bytes),
        shutdown.clone(),
        ServeOptions::default(),
    )
    .await;

    muster_shared::serve::stop_tasks(&shutdown, &tasks, TASK_DEADLINE).await;
    if let Some(remote) = &remote {
        remote.wait().await;
    }
    // Everything pulled goes to blocks, so the cursors move and a restart
    // re-pulls nothing it already has.
    let flushed = {
        let tsdb = tsdb.clone();
        tokio::task::spawn_blocking(move || tsdb.flush_all())
            .await
            .context("tsdb flush task failed")?
    };
    if let Err(err) = flushed {
        tracing::error!(error = %err, "cannot write the head at shutdown; the agents' buffers still hold it");
    }
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .context("store flush task failed")?
        .context("cannot flush the store")?;
    tracing::info!("collector stopped");
    Ok(())
}

/// Writes closed chunks every [`FLUSH_EVERY`] and compacts (retention,
/// rollups) every [`COMPACT_EVERY`] until `shutdown`. A failure (disk full)
/// is logged and retried next time: the head keeps the samples and the
/// cursors do not move, so nothing is lost while the agents buffer.
async fn maintain(tsdb: Arc<Tsdb>, shutdown: CancellationToken) {
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    let mut compact = tokio::time::interval(COMPACT_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    compact.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        let compacting = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = flush.tick() => false,
            _ = compact.tick() => true,
        };
        let tsdb = tsdb.clone();
        let now = i64::try_from(crate::unix_ms()).unwrap_or(i64::MAX);
        let done = tokio::task::spawn_blocking(move || {
            if compacting {
                tsdb.compact(now).map(|_| ())
            } else {
                tsdb.flush(now).map(|_| ())
            }
        })
        .await;
        match done {
            Ok(Ok(())) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("the time-series store writes again");
                }
            }
            Ok(Err(err)) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::error!(error = %err, "cannot write the time-series store; cursors hold until it can");
                }
            }
            Err(err) => tracing::error!(error = %err, "tsdb maintenance task failed"),
        }
    }
}
