//! The inventory task: talks to the Docker engine through bollard over the
//! local unix socket and keeps the shared [`Inventory`] current.
//!
//! A *session* connects (negotiating the API version down to the engine's),
//! lists every container and inspects each, replaces the inventory, then
//! follows the events stream (container start, die, stop, destroy, rename,
//! health_status, restart, pause, unpause, create): on an event it inspects
//! that one container, or forgets it on `destroy`. Nothing polls. The events
//! subscription starts from just before the list (`since`), so no change
//! between the two is missed. While connected it also answers the sampler's
//! stats requests ([`super::stats`]).
//!
//! A session ends when a call fails, the stream errors or ends, or the
//! engine stops answering a ping after [`IDLE_PING`] of silence; the task
//! marks the inventory disconnected (keeping the containers: with
//! live-restore they still run) and reconnects with exponential backoff and
//! jitter, forever, so an engine that appears later is picked up. Failures
//! are counted every time and logged when the error changes. Cancelling the
//! shutdown token stops it at any await; the inventory is only ever replaced
//! whole or changed one container at a time, so nothing is left half-written.
//!
//! Every call has a timeout ([`REQUEST_TIMEOUT`]); the events stream is a long
//! poll and has none, which is why the idle ping exists.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as DockerError;
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use bollard::{API_DEFAULT_VERSION, Docker};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::inventory::{Container, Inventory, container_from_inspect};
use super::stats::{self, StatsCache};

/// Timeout of every request to the engine (connect, version, list, inspect, ping).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Silence on the events stream after which the engine is pinged.
pub const IDLE_PING: Duration = Duration::from_secs(60);

/// Inspects and stats calls in flight at once.
const CONCURRENCY: usize = 4;

/// First and longest reconnect delay.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The events the inventory follows (`health_status` also matches
/// `health_status: healthy`, moby#25798).
const EVENTS: [&str; 10] = [
    "create",
    "start",
    "restart",
    "die",
    "stop",
    "destroy",
    "rename",
    "pause",
    "unpause",
    "health_status",
];

/// The inventory task's state; [`Engine::run`] is the task.
#[derive(Debug)]
pub struct Engine {
    /// The engine's unix socket.
    pub socket: PathBuf,
    /// Shared with the sampler.
    pub inventory: Arc<RwLock<Inventory>>,
    /// Stats requests and answers, shared with the sampler.
    pub stats: Arc<StatsCache>,
    /// Stops the task.
    pub shutdown: CancellationToken,
}

impl Engine {
    /// Runs sessions until shutdown, reconnecting with backoff.
    pub async fn run(self) {
        let mut failures = Failures::default();
        let mut backoff = Backoff::default();
        loop {
            let ended = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                err = self.session(&mut failures, &mut backoff) => err,
            };
            write(&self.inventory, |inv| inv.set_connected(false));
            failures.record(&ended);
            let delay = backoff.next_delay();
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One connection: returns why it ended.
    async fn session(&self, failures: &mut Failures, backoff: &mut Backoff) -> String {
        let docker = match connect(&self.socket).await {
            Ok(d) => d,
            Err(err) => return err,
        };
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs().saturating_sub(1));
        let containers = match list_all(&docker).await {
            Ok(c) => c,
            Err(err) => return err,
        };
        let count = containers.len();
        write(&self.inventory, |inv| {
            inv.replace(containers);
            inv.set_connected(true);
        });
        failures.connected(count);
        backoff.reset();

        let options = EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(
                [
                    ("type".to_owned(), vec!["container".to_owned()]),
                    (
                        "event".to_owned(),
                        EVENTS.iter().map(|e| (*e).to_owned()).collect(),
                    ),
                ]
                .into_iter()
                .collect(),
            ),
        };
        let mut events = docker.events(Some(options));
        loop {
            tokio::select! {
                next = tokio::time::timeout(IDLE_PING, events.next()) => match next {
                    Err(_) => {
                        if let Err(err) = call(docker.ping()).await {
                            return format!("ping after {IDLE_PING:?} without events: {err}");
                        }
                    }
                    Ok(None) => return "events stream ended".to_owned(),
                    Ok(Some(Err(err))) => return format!("events stream: {err}"),
                    Ok(Some(Ok(event))) => {
                        let action = event.action.as_deref().unwrap_or_default();
                        let id = event.actor.as_ref().and_then(|a| a.id.as_deref()).unwrap_or_default();
                        if let Err(err) = self.apply(&docker, action, id).await {
                            return err;
                        }
                    }
                },
                ids = self.stats.wanted() => self.fetch_stats(&docker, ids).await,
            }
        }
    }

    /// Applies one container event.
    async fn apply(&self, docker: &Docker, action: &str, id: &str) -> Result<(), String> {
        let action = action.split(':').next().unwrap_or_default().trim();
        if id.is_empty() || !EVENTS.contains(&action) {
            return Ok(());
        }
        tracing::debug!(container = %id, action, "container event");
        if action == "destroy" {
            write(&self.inventory, |inv| inv.remove(id));
            return Ok(());
        }
        match inspect(docker, id).await {
            Ok(Some(c)) => write(&self.inventory, |inv| inv.upsert(c)),
            Ok(None) => write(&self.inventory, |inv| inv.remove(id)),
            Err(err) => return Err(err),
        }
        Ok(())
    }

    /// Fetches stats of the wanted containers, a few at a time.
    async fn fetch_stats(&self, docker: &Docker, ids: Vec<String>) {
        let results: Vec<_> = futures_util::stream::iter(ids)
            .map(|id| async move {
                let result = stats::fetch(docker, &id).await;
                (id, result)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (id, result) in results {
            match result {
                Ok(usage) => self.stats.store(&id, usage),
                Err(err) => {
                    tracing::debug!(container = %id, error = %err, "container stats failed")
                }
            }
        }
    }
}

/// Whether an engine answers on `socket` (connect + ping, with timeouts).
///
/// # Errors
/// Why not, as text naming the socket.
pub async fn ping(socket: &Path) -> Result<(), String> {
    let docker = connect(socket).await?;
    call(docker.ping())
        .await
        .map(drop)
        .map_err(|err| format!("{}: {err}", socket.display()))
}

/// Connects and negotiates the API version (bollard's default is newer than
/// many engines accept; one-shot stats need ≥ 1.41). Also used by the
/// `docker` probe kind.
///
/// # Errors
/// Why not, as text naming the socket.
pub async fn connect(socket: &Path) -> Result<Docker, String> {
    let path = socket
        .to_str()
        .ok_or_else(|| format!("socket path {} is not UTF-8", socket.display()))?;
    let docker = Docker::connect_with_unix(path, REQUEST_TIMEOUT.as_secs(), API_DEFAULT_VERSION)
        .map_err(|err| format!("{}: {err}", socket.display()))?;
    call(docker.negotiate_version())
        .await
        .map_err(|err| format!("{}: {err}", socket.display()))
}

/// Lists every container (running or not) and inspects each.
async fn list_all(docker: &Docker) -> Result<Vec<Container>, String> {
    let options = ListContainersOptions {
        all: true,
        ..ListContainersOptions::default()
    };
    let summaries = call(docker.list_containers(Some(options)))
        .await
        .map_err(|err| format!("listing containers: {err}"))?;
    let ids = summaries.into_iter().filter_map(|s| s.id);
    let inspected: Vec<Result<Option<Container>, String>> = futures_util::stream::iter(ids)
        .map(|id| async move { inspect(docker, &id).await })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    inspected
        .into_iter()
        .filter_map(Result::transpose)
        .collect()
}

/// Inspects one container; `Ok(None)` when it no longer exists.
async fn inspect(docker: &Docker, id: &str) -> Result<Option<Container>, String> {
    match call(docker.inspect_container(id, Some(InspectContainerOptions::default()))).await {
        Ok(raw) => Ok(container_from_inspect(&raw)),
        Err(CallError::Docker(DockerError::DockerResponseServerError {
            status_code: 404, ..
        })) => Ok(None),
        Err(err) => Err(format!("inspecting container {id}: {err}")),
    }
}

/// A failed call: the engine's error or our timeout.
#[derive(Debug)]
enum CallError {
    Docker(DockerError),
    Timeout,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Docker(err) => write!(f, "{err}"),
            Self::Timeout => write!(f, "no answer within {REQUEST_TIMEOUT:?}"),
        }
    }
}

/// Runs one engine call with [`REQUEST_TIMEOUT`] (bollard's own timeout
/// covers only the response head, not the body).
async fn call<T>(fut: impl Future<Output = Result<T, DockerError>>) -> Result<T, CallError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(result) => result.map_err(CallError::Docker),
        Err(_) => Err(CallError::Timeout),
    }
}

/// Changes the inventory under a short write lock.
fn write(inventory: &RwLock<Inventory>, change: impl FnOnce(&mut Inventory)) {
    // Poisoning only means a panic elsewhere mid-change of plain data.
    let mut guard = inventory
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    change(&mut guard);
}

/// Counts connection failures and logs when the error changes.
#[derive(Debug, Default)]
struct Failures {
    last: Option<String>,
    attempts: u64,
    ever_connected: bool,
}

impl Failures {
    fn record(&mut self, error: &str) {
        self.attempts += 1;
        if self.last.as_deref() == Some(error) {
            return;
        }
        if self.ever_connected {
            tracing::warn!(
                error,
                attempts = self.attempts,
                "Docker engine unreachable; reconnecting"
            );
        } else {
            // The one info line ("no Docker engine; host metrics only") was
            // logged at start; an absent engine is not news every minute.
            tracing::debug!(
                error,
                attempts = self.attempts,
                "Docker engine still unreachable"
            );
        }
        self.last = Some(error.to_owned());
    }

    fn connected(&mut self, containers: usize) {
        tracing::info!(
            containers,
            failed_attempts = self.attempts,
            "Docker engine connected"
        );
        self.last = None;
        self.attempts = 0;
        self.ever_connected = true;
    }
}

/// Exponential backoff with jitter: each delay is drawn from
/// `[d/2, d]`, `d` doubling from [`BACKOFF_MIN`] to [`BACKOFF_MAX`].
#[derive(Debug, Default)]
struct Backoff {
    step: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let ceiling = BACKOFF_MIN
            .saturating_mul(1 << self.step.min(16))
            .min(BACKOFF_MAX);
        self.step = self.step.saturating_add(1);
        let half = ceiling / 2;
        let jitter = u32::try_from(random() % 1000).unwrap_or(0);
        half + half.mul_f64(f64::from(jitter) / 1000.0)
    }

    fn reset(&mut self) {
        self.step = 0;
    }
}

/// A random number from the standard library's per-process hash keys.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into()),
    );
    h.finish()
}

#[cfg(test)]
mod tests;
