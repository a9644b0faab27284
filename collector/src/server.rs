//! `muster-collector serve`: open the store, load the PKI, start the scrape
//! loop and the API, and stop them in order.
//!
//! Ready (`/health/ready`) means: the store is open and every host enrolled at
//! start has been pulled once. Shutdown: stop accepting, drain API requests,
//! stop the scrape tasks, flush the store.
//!
//! # Store sessions
//!
//! Everything that holds the store (tokens, hosts, the tsdb, the scrape loop,
//! the maintenance task, the API's state) lives for one *store session*. When
//! the store refuses writes although the disk takes them again (sled keeps an
//! I/O error until it is reopened; see [`crate::store_health`]), the
//! maintenance task ends the session: the API drains, the tasks stop, the store
//! closes and opens again, and a new session serves on the same listener
//! (connections wait in its backlog meanwhile). Samples not yet in blocks go
//! with the old head and are pulled again from the durable cursors, as after a
//! crash. The PKI, the metrics, remote write and the listener live for the
//! whole process. Reopens back off from 1 s to 5 minutes while they come
//! quickly one after another.

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

use crate::alert::service::Alerting;
use crate::api::{ApiState, router};
use crate::audit::AuditLog;
use crate::backup::Backups;
use crate::backup::log::BackupLog;
use crate::config::CollectorSettings;
use crate::hosts::HostRegistry;
use crate::maintain::Maintenance;
use crate::metrics::Metrics;
use crate::pki::Pki;
use crate::remote_write::RemoteWrite;
use crate::scrape::client::AgentClients;
use crate::scrape::{ScrapeOptions, Scraper};
use crate::store_health::StoreHealth;
use crate::tokens::TokenStore;
use crate::tsdb::Tsdb;

/// How long shutdown waits for scrape tasks after the API has drained.
const TASK_DEADLINE: Duration = Duration::from_secs(10);
/// The pause before a reopen that follows another one closely, doubled each time.
const REOPEN_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest pause before a reopen.
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A session that lasted this long ends a run of quick reopens.
const REOPEN_CALM: Duration = Duration::from_secs(600);
/// How long a reopen waits for the closed session to let go of the store's lock.
const REOPEN_LOCK_WAIT: Duration = Duration::from_secs(30);

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
/// PKI or store problems at start, or an address that can't be bound; a store
/// that cannot be opened again after a reopen.
pub async fn serve(
    settings: CollectorSettings,
    shutdown: CancellationToken,
    on_started: impl FnOnce(&Started),
) -> anyhow::Result<()> {
    let pki = Arc::new(Pki::load(&settings.pki)?);
    let mut opened = open_session(&settings).await?;
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
    // Kept here for the whole process; each store session serves on a copy.
    let listener = listener
        .into_std()
        .context("cannot take the API listener")?;

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
    let rules = {
        let config = settings.alerting.clone();
        let config_path = settings
            .config_path
            .clone()
            .unwrap_or_else(|| settings.data_dir.join("collector.toml"));
        let external_url = link_base(&started.url, api_addr);
        Arc::new(
            tokio::task::spawn_blocking(move || {
                Alerting::load_rules(&config, &config_path, &external_url)
            })
            .await
            .context("rule loading task failed")??,
        )
    };
    on_started(&started);
    // systemd's "ready" is "serving": /health/ready tells the scrape state.
    muster_shared::serve::notify_ready();

    let shared = Shared {
        rules,
        api_url: link_base(&started.url, api_addr),
        clients: AgentClients::new(&pki)?,
        pki,
        health: Arc::new(StoreHealth::new(metrics.store.clone())),
        metrics,
        remote: remote.clone(),
        tls,
    };
    let mut quick_reopens = 0u32;
    loop {
        let session_listener = listener
            .try_clone()
            .and_then(TcpListener::from_std)
            .context("cannot share the API listener")?;
        let began = tokio::time::Instant::now();
        let ended = run_session(&settings, &shared, opened, session_listener, &shutdown).await?;
        if ended == Ended::Shutdown || shutdown.is_cancelled() {
            break;
        }
        quick_reopens = if began.elapsed() >= REOPEN_CALM {
            0
        } else {
            quick_reopens.saturating_add(1)
        };
        if quick_reopens > 1 {
            // One local store: no jitter needed, nothing else retries with us.
            let pause = REOPEN_BACKOFF_MIN
                .saturating_mul(1 << (quick_reopens - 2).min(16))
                .min(REOPEN_BACKOFF_MAX);
            tracing::info!(pause = ?pause, "reopens come quickly; pausing before the next");
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        opened = reopen_session(&settings).await?;
        shared.metrics.store.reopened();
        tracing::info!(
            "the store was opened again; the head is pulled again from the durable cursors"
        );
    }
    if let Some(remote) = &remote {
        remote.wait().await;
    }
    tracing::info!("collector stopped");
    Ok(())
}

/// What lives for the whole process, shared by every store session.
struct Shared {
    /// The API's URL, the base of alert links when `alerting.external_url` is unset.
    api_url: String,
    /// The alert rules in force: loaded once, kept across store sessions.
    rules: Arc<crate::alert::rules::reload::LoadedRules>,
    pki: Arc<Pki>,
    clients: AgentClients,
    metrics: Metrics,
    health: Arc<StoreHealth>,
    remote: Option<Arc<RemoteWrite>>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// The store and what is read from it at the start of a session.
struct Opened {
    store: Store,
    tokens: Arc<TokenStore>,
    hosts: Arc<HostRegistry>,
    tsdb: Arc<Tsdb>,
}

/// How a store session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The collector is stopping.
    Shutdown,
    /// The store must be closed and opened again.
    Reopen,
}

/// Opens the store, the tokens, the hosts and the tsdb.
async fn open_session(settings: &CollectorSettings) -> anyhow::Result<Opened> {
    let store = open_store(settings).await?;
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
    Ok(Opened {
        store,
        tokens: Arc::new(opened.0),
        hosts: Arc::new(opened.1),
        tsdb,
    })
}

/// [`open_session`] after a session closed: a task of the old session may still
/// hold the store for a moment (a blocking ingest finishing), so a lock is
/// waited out.
async fn reopen_session(settings: &CollectorSettings) -> anyhow::Result<Opened> {
    let deadline = tokio::time::Instant::now() + REOPEN_LOCK_WAIT;
    loop {
        match open_session(settings).await {
            Err(err)
                if tokio::time::Instant::now() < deadline
                    && err
                        .chain()
                        .any(|e| matches!(e.downcast_ref(), Some(StoreError::Locked { .. }))) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other.context("cannot open the store again"),
        }
    }
}

/// Serves the API and runs the scrape loop and the maintenance task over one
/// opened store until shutdown or until the maintenance task asks for a reopen;
/// then stops them, writes the head if the store lets it, and closes the store.
async fn run_session(
    settings: &CollectorSettings,
    shared: &Shared,
    opened: Opened,
    listener: TcpListener,
    shutdown: &CancellationToken,
) -> anyhow::Result<Ended> {
    let Opened {
        store,
        tokens,
        hosts,
        tsdb,
    } = opened;
    let session = shutdown.child_token();
    let reopen = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    shared.metrics.ready.set(0);

    let alerting = {
        let config = settings.alerting.clone();
        let rules = shared.rules.clone();
        let external_url = shared.api_url.clone();
        let store = store.clone();
        let source: Arc<dyn crate::series::SeriesSource> = tsdb.clone();
        let registry = shared.metrics.new_session_registry();
        Arc::new(
            tokio::task::spawn_blocking(move || {
                Alerting::open(&config, rules, &external_url, &store, source, &registry)
            })
            .await
            .context("alerting open task failed")?
            .context("cannot start alerting")?,
        )
    };

    let tasks = TaskTracker::new();
    alerting.start(&tasks, &session);
    tasks.spawn(reload_rules_on_hangup(alerting.clone(), session.clone()));
    let scraper = Arc::new(
        Scraper::new(
            hosts.clone(),
            shared.clients.clone(),
            shared.metrics.clone(),
            ScrapeOptions {
                interval: settings.scrape_interval,
                timeout: settings.scrape_timeout,
                concurrency: settings.scrape_concurrency,
            },
            tsdb.clone(),
            shared.remote.clone(),
            shared.health.clone(),
        )
        .notify_urgent_pulls(alerting.wake_handle()),
    );
    let maintenance = Maintenance {
        tsdb: tsdb.clone(),
        store: store.clone(),
        data_dir: settings.data_dir.clone(),
        health: shared.health.clone(),
        metrics: shared.metrics.store.clone(),
        flush_every: settings.flush_interval,
        reopen: reopen.clone(),
    };
    tasks.spawn(maintenance.run(session.clone()));
    {
        let ready = ready.clone();
        let metrics = shared.metrics.clone();
        tasks.spawn(scraper.run(session.child_token(), move || {
            ready.store(true, Ordering::Release);
            metrics.ready.set(1);
            tracing::info!("first scrape round done; ready");
        }));
    }

    let (backups, audit) = {
        let (store, clients, hosts) = (store.clone(), shared.clients.clone(), hosts.clone());
        let (keep, timeout) = (settings.backup_history_per_set, settings.backup_timeout);
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let log = BackupLog::open(&store, keep).context("cannot open the backup log")?;
            let audit = AuditLog::open(&store).context("cannot open the audit log")?;
            let backups = Backups::new(clients, hosts, Arc::new(log), timeout);
            Ok((Arc::new(backups), Arc::new(audit)))
        })
        .await
        .context("backup log open task failed")??
    };
    tasks.spawn(crate::backup::poll::record_runs(
        backups.clone(),
        settings.backup_poll_interval,
        session.clone(),
    ));
    let state = ApiState {
        backups,
        audit,
        store: store.clone(),
        pki: shared.pki.clone(),
        tokens,
        hosts,
        metrics: shared.metrics.clone(),
        ready,
        agent_cert_validity: settings.agent_cert_validity,
        series: tsdb.clone(),
        store_health: shared.health.clone(),
        alerting: Some(alerting),
    };
    serve_http(
        listener,
        shared.tls.clone(),
        router(state, settings.max_body_bytes),
        session.clone(),
        ServeOptions::default(),
    )
    .await;

    let reopening = reopen.load(Ordering::Acquire) && !shutdown.is_cancelled();
    if reopening {
        // Not stop_tasks: that tells systemd the service is stopping.
        session.cancel();
        tasks.close();
        if tokio::time::timeout(TASK_DEADLINE, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(left = tasks.len(), "session tasks did not stop in time");
        }
    } else {
        muster_shared::serve::stop_tasks(&session, &tasks, TASK_DEADLINE).await;
    }
    // Everything pulled goes to blocks, so the cursors move and a restart
    // re-pulls nothing it already has.
    let flushed = {
        let tsdb = tsdb.clone();
        tokio::task::spawn_blocking(move || tsdb.flush_all())
            .await
            .context("tsdb flush task failed")?
    };
    match flushed {
        Ok(_) => {}
        Err(err) if reopening => {
            tracing::warn!(error = %err, "the head is dropped with the old store; it is pulled again from the agents");
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot write the head at shutdown; the agents' buffers still hold it");
        }
    }
    let committed = tokio::task::spawn_blocking(move || store.flush())
        .await
        .context("store flush task failed")?;
    match committed {
        Ok(_) => {}
        Err(err) if reopening => {
            tracing::debug!(error = %err, "the old store does not flush");
        }
        Err(err) => return Err(err).context("cannot flush the store"),
    }
    Ok(if reopening {
        Ended::Reopen
    } else {
        Ended::Shutdown
    })
}

/// Reloads the alert rule files on SIGHUP until the session ends; a malformed file keeps
/// the rules in force (the reload logs why, and `/api/v1/rules` shows it).
async fn reload_rules_on_hangup(alerting: Arc<Alerting>, session: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGHUP; rule files reload on their interval only");
            return;
        }
    };
    loop {
        tokio::select! {
            biased;
            () = session.cancelled() => return,
            received = hangups.recv() => {
                if received.is_none() {
                    return;
                }
                tracing::info!("SIGHUP: reloading alert rules");
                // The reload logs its outcome; a failure keeps the rules in force.
                let _ = alerting.rules.reload_async().await;
            }
        }
    }
}

/// The base of links in notifications: the API's URL, with this host's name in place of an
/// unspecified listen address (`0.0.0.0` is no address to follow).
fn link_base(url: &str, addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        url.replacen(&addr.ip().to_string(), &crate::pki::local_hostname(), 1)
    } else {
        url.to_owned()
    }
}
