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
use crate::query::MemorySource;
use crate::scrape::client::AgentClients;
use crate::scrape::{ScrapeOptions, Scraper};
use crate::tokens::TokenStore;

/// How long shutdown waits for scrape tasks after the API has drained.
const TASK_DEADLINE: Duration = Duration::from_secs(10);

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
    let metrics = Metrics::new().context("cannot register metrics")?;
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
    ));
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
        // The time-series store replaces this empty source when it lands.
        series: Arc::new(MemorySource::new()),
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
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .context("store flush task failed")?
        .context("cannot flush the store")?;
    tracing::info!("collector stopped");
    Ok(())
}
