//! The pull loop: one task per enrolled agent, a shared limit on pulls in
//! flight.
//!
//! Sketch: a supervisor lists the enrolled hosts (at start, on every
//! enrollment, and once per interval), starts a task for each new host and
//! cancels the task of a host that left or moved. Each host task pulls at
//! once (so the first round finishes quickly and the collector can report
//! ready), then at a stable per-host offset within the interval, so a large
//! fleet is spread over the interval instead of pulled in one burst. A slow or
//! dead agent holds only its own task and one permit for at most the timeout.
//!
//! A pull asks `GET /v1/info` (identity, version) when the host was not up,
//! then `GET /v1/samples` after the host's cursor, in bounded batches while
//! the agent says it has more (catching up after an outage), storing each
//! batch in the tsdb before asking for the next. The cursor starts from the
//! tsdb's *durable* cursor: after a crash the collector asks again for
//! everything not yet in blocks, and the tsdb drops what it already holds.
//! Gap markers (rounds the agent's buffer lost) are counted per host.
//!
//! Between pulls, a host whose agent has probes keeps one long poll open
//! (`/v1/samples/urgent`, no permit held): when a probe's health changes the
//! agent answers at once and the host is pulled then, outside its slot, and
//! rule evaluation is told ([`Scraper::notify_urgent_pulls`]).
//!
//! A batch that does not decode or breaks the protocol's rules is refused: nothing of it is
//! stored, the cursor stays, the host is down with the reason as its `last_error`, and the
//! same cursor is asked again next interval. A batch the store fails to write (a full disk)
//! pauses every host's pulls until the store writes again ([`crate::store_health`]); the
//! agents keep buffering meanwhile.

pub mod client;
mod pull;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::hosts::{HostRecord, HostRegistry};
use crate::metrics::Metrics;
use crate::remote_write::RemoteWrite;
use crate::store_health::StoreHealth;
use crate::tsdb::Tsdb;
use client::{AgentClient, AgentClients, ScrapeError};
use pull::Outcome;

/// Rounds asked for per request at most.
const ROUNDS_PER_PULL: u32 = 500;
/// Requests per host per interval at most while catching up, so one host's
/// backlog holds its permit for a bounded time.
const PULLS_PER_TICK: usize = 20;

/// Scrape timing and limits.
#[derive(Debug, Clone, Copy)]
pub struct ScrapeOptions {
    /// Time between pulls of one agent.
    pub interval: Duration,
    /// Limit of one pull.
    pub timeout: Duration,
    /// Pulls in flight at most.
    pub concurrency: usize,
}

/// The pull loop and what it needs.
#[derive(Debug)]
pub struct Scraper {
    hosts: Arc<HostRegistry>,
    clients: AgentClients,
    metrics: Metrics,
    options: ScrapeOptions,
    permits: Arc<Semaphore>,
    tsdb: Arc<Tsdb>,
    remote: Option<Arc<RemoteWrite>>,
    store_health: Arc<StoreHealth>,
    /// Hosts enrolled at the last listing, for the down gauge.
    known: AtomicUsize,
    /// Told after every pull an urgent round started (rule evaluation listens).
    urgent_pulled: Option<Arc<Notify>>,
}

/// What ended a host's wait between pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// Its slot in the interval came.
    Scheduled,
    /// The agent holds an urgent round.
    Urgent,
}

impl Scraper {
    /// A scraper over `hosts`, storing into `tsdb` while `store_health` says it writes.
    pub fn new(
        hosts: Arc<HostRegistry>,
        clients: AgentClients,
        metrics: Metrics,
        options: ScrapeOptions,
        tsdb: Arc<Tsdb>,
        remote: Option<Arc<RemoteWrite>>,
        store_health: Arc<StoreHealth>,
    ) -> Self {
        Self {
            tsdb,
            remote,
            store_health,
            permits: Arc::new(Semaphore::new(options.concurrency.max(1))),
            known: AtomicUsize::new(0),
            urgent_pulled: None,
            hosts,
            clients,
            metrics,
            options,
        }
    }

    /// Tells `notify` after each pull that an agent's urgent round started, so rules
    /// see a probe's change without waiting for their next interval.
    #[must_use]
    pub fn notify_urgent_pulls(mut self, notify: Arc<Notify>) -> Self {
        self.urgent_pulled = Some(notify);
        self
    }

    /// Runs until `shutdown`; calls `on_first_round` once every host enrolled
    /// at start has been pulled once (at once when there are none).
    pub async fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
        on_first_round: impl FnOnce() + Send + 'static,
    ) {
        let tasks = TaskTracker::new();
        let mut running: HashMap<String, (HostRecord, CancellationToken)> = HashMap::new();
        let mut on_first_round = Some(on_first_round);

        loop {
            let listed = {
                let hosts = self.hosts.clone();
                tokio::task::spawn_blocking(move || hosts.list()).await
            };
            match listed {
                Ok(Ok(hosts)) => {
                    let mut first_round = Vec::new();
                    self.reconcile(
                        &hosts,
                        &mut running,
                        &tasks,
                        &shutdown,
                        &mut first_round,
                        on_first_round.is_some(),
                    );
                    if let Some(done) = on_first_round.take() {
                        tasks.spawn(async move {
                            for receiver in first_round {
                                // A dropped sender (task cancelled) counts as done.
                                let _ = receiver.await;
                            }
                            done();
                        });
                    }
                    self.known.store(hosts.len(), Ordering::Relaxed);
                    self.update_gauges();
                }
                Ok(Err(err)) => tracing::error!(error = %err, "cannot list enrolled hosts"),
                Err(err) => tracing::error!(error = %err, "host listing task failed"),
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = self.hosts.changed() => {}
                () = tokio::time::sleep(self.options.interval) => {}
            }
        }
        for (_, (_, cancel)) in running.drain() {
            cancel.cancel();
        }
        tasks.close();
        tasks.wait().await;
    }

    /// Starts tasks for new or moved hosts, stops those of hosts gone.
    fn reconcile(
        self: &Arc<Self>,
        hosts: &[HostRecord],
        running: &mut HashMap<String, (HostRecord, CancellationToken)>,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
        first_round: &mut Vec<oneshot::Receiver<()>>,
        track_first_round: bool,
    ) {
        running.retain(|id, (record, cancel)| {
            let keep = hosts.iter().any(|h| h == record);
            if !keep {
                tracing::info!(host = %id, "host left or moved; stopping its scrape task");
                cancel.cancel();
                // Absent if it was never scraped.
                let _ = self
                    .metrics
                    .host_scrape_duration
                    .remove_label_values(&[id.as_str()]);
            }
            keep
        });
        self.hosts
            .retain_status(|id| hosts.iter().any(|h| h.id == id));
        for host in hosts {
            if running.contains_key(&host.id) {
                continue;
            }
            let cancel = shutdown.child_token();
            let (sender, receiver) = oneshot::channel();
            if track_first_round {
                first_round.push(receiver);
            }
            running.insert(host.id.clone(), (host.clone(), cancel.clone()));
            let span = tracing::info_span!("scrape", host = %host.id);
            tasks.spawn(
                self.clone()
                    .host_loop(host.clone(), cancel, sender)
                    .instrument(span),
            );
        }
    }

    async fn host_loop(
        self: Arc<Self>,
        host: HostRecord,
        cancel: CancellationToken,
        first: oneshot::Sender<()>,
    ) {
        let mut first = Some(first);
        let mut client: Option<AgentClient> = None;
        let offset = stable_offset(&host.id, self.options.interval);
        let mut next = Instant::now();
        let mut previous: Option<Result<(), String>> = None;
        // Rounds asked per request; fewer after a timeout (see `pull`).
        let mut rounds = ROUNDS_PER_PULL;
        // Cleared when the agent turns out not to serve urgent waits after all.
        let mut urgent_served = true;
        // The newest urgent round that woke this loop: the next wait asks for a newer one,
        // so a pull that cannot move the cursor (a paused store) never spins the loop.
        let mut urgent_seen = 0;
        loop {
            let wake = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(next) => Wake::Scheduled,
                seq = self.wait_urgent(&host, client.as_ref(), next, urgent_seen, &mut urgent_served) => {
                    urgent_seen = seq;
                    Wake::Urgent
                }
            };
            let outcome = match &client {
                Some(c) => self.scrape_once(&host, c, &mut rounds, &cancel).await,
                None => match self.clients.client_for(&host.id, self.options.timeout) {
                    Ok(c) => {
                        let outcome = self.scrape_once(&host, &c, &mut rounds, &cancel).await;
                        client = Some(c);
                        outcome
                    }
                    Err(err) => Some(Outcome::Pulled(Err(err.to_string()))),
                },
            };
            let Some(outcome) = outcome else { return };
            if let Outcome::Pulled(result) = outcome {
                self.record(&host, &result, previous.as_ref());
                previous = Some(result);
            }
            if wake == Wake::Urgent {
                if let Some(notify) = &self.urgent_pulled {
                    notify.notify_one();
                }
                // The regular slot stays where it was.
                continue;
            }
            if let Some(first) = first.take() {
                let _ = first.send(());
                // After the first pull, fall into this host's slot.
                next = Instant::now() + offset;
            } else {
                next += self.options.interval;
                let now = Instant::now();
                if next < now {
                    next = now + self.options.interval;
                }
            }
        }
    }

    /// Returns the sequence of an urgent round newer than both what was pulled and
    /// `seen`, once `host`'s agent holds one; never, while there is nothing to wait for
    /// (no client yet, host down, an agent without urgent rounds, or `until` too close), so
    /// the scheduled pull wins.
    async fn wait_urgent(
        &self,
        host: &HostRecord,
        client: Option<&AgentClient>,
        until: Instant,
        seen: u64,
        served: &mut bool,
    ) -> u64 {
        // Below this, the scheduled pull is as quick as an urgent one.
        const SHORTEST_WAIT: Duration = Duration::from_millis(50);
        let status = self.hosts.status(&host.id);
        let wait = until.saturating_duration_since(Instant::now());
        if let Some(client) = client
            && status.up
            && status.urgent
            && *served
            && wait >= SHORTEST_WAIT
        {
            let after = status.cursor.max(seen);
            match client.urgent(host.address, after, wait).await {
                Ok(seq) if seq > after => {
                    tracing::debug!(host = %host.id, seq, "urgent round; pulling now");
                    return seq;
                }
                Ok(_) => {}
                Err(ScrapeError::Status(404)) => *served = false,
                // The scheduled pull will tell whether the agent is down.
                Err(err) => tracing::debug!(host = %host.id, error = %err, "urgent wait failed"),
            }
        }
        std::future::pending::<u64>().await
    }

    fn update_gauges(&self) {
        let up = self.hosts.up_count();
        let down = self.known.load(Ordering::Relaxed).saturating_sub(up);
        self.metrics.hosts.with_label_values(&["up"]).set(gauge(up));
        self.metrics
            .hosts
            .with_label_values(&["down"])
            .set(gauge(down));
    }

    /// Counts every outcome; logs only when it changes.
    fn record(
        &self,
        host: &HostRecord,
        outcome: &Result<(), String>,
        previous: Option<&Result<(), String>>,
    ) {
        let label = if outcome.is_ok() {
            "success"
        } else {
            "failure"
        };
        self.metrics.scrapes.with_label_values(&[label]).inc();
        if previous == Some(outcome) {
            return;
        }
        match outcome {
            Ok(()) => tracing::info!(host = %host.id, address = %host.address, "host up"),
            Err(err) => {
                tracing::warn!(host = %host.id, address = %host.address, error = %err, "host down")
            }
        }
    }
}

/// A per-host offset in `[0, interval)`, stable across restarts.
fn stable_offset(host: &str, interval: Duration) -> Duration {
    // FNV-1a: std's hasher is randomly seeded per process.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    host.hash(&mut hasher);
    let nanos = u64::try_from(interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_nanos(hasher.finish() % nanos)
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let interval = Duration::from_secs(10);
        let a = stable_offset("web1", interval);
        assert_eq!(a, stable_offset("web1", interval));
        assert!(a < interval);
        let spread: std::collections::HashSet<_> = (0..100)
            .map(|i| stable_offset(&format!("host{i}"), interval).as_secs())
            .collect();
        assert!(
            spread.len() >= 8,
            "offsets spread over the interval: {spread:?}"
        );
    }
}
