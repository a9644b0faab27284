//! The store's periodic work: a flush every `maintenance.flush_interval` (closed chunks
//! become blocks, durable cursors move), compaction (retention, rollups) every hour, and
//! the tsdb's figures for `/metrics` after each flush.
//!
//! Each flush also records whether the store writes ([`StoreHealth`]); while it does not,
//! the tick probes it ([`store_health::probe`]) and, when the disk takes writes but the
//! store still refuses them, asks the server to reopen the store by cancelling the store
//! session with [`Maintenance::reopen`] set. A failed flush loses nothing: the head keeps
//! its chunks, the cursors stay, and the next tick writes them again.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use muster_shared::store::Store;
use tokio_util::sync::CancellationToken;

use crate::metrics::StoreMetrics;
use crate::scrape::client::error_chain;
use crate::store_health::{self, Probe, StoreHealth};
use crate::tsdb::Tsdb;

/// How often retention and rollups run.
const COMPACT_EVERY: Duration = Duration::from_secs(3600);

/// What the maintenance task works on, for one store session.
#[derive(Debug, Clone)]
pub struct Maintenance {
    /// The time-series store.
    pub tsdb: Arc<Tsdb>,
    /// The store under it, for the write probe.
    pub store: Store,
    /// The data folder, for the disk probe.
    pub data_dir: PathBuf,
    /// Where flush outcomes are recorded.
    pub health: Arc<StoreHealth>,
    /// Where the tsdb's figures go.
    pub metrics: StoreMetrics,
    /// Time between flushes.
    pub flush_every: Duration,
    /// Set before the session is cancelled when the store must be opened again.
    pub reopen: Arc<AtomicBool>,
}

impl Maintenance {
    /// Flushes every `flush_every` and compacts every hour until `session` is cancelled,
    /// by shutdown or by this task asking for a reopen.
    pub async fn run(self, session: CancellationToken) {
        let mut flush = tokio::time::interval(self.flush_every);
        let mut compact = tokio::time::interval(COMPACT_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        compact.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let compacting = tokio::select! {
                biased;
                () = session.cancelled() => return,
                _ = flush.tick() => false,
                _ = compact.tick() => true,
            };
            let now = i64::try_from(crate::unix_ms()).unwrap_or(i64::MAX);
            let this = self.clone();
            let done = tokio::task::spawn_blocking(move || {
                if compacting {
                    this.compact(now);
                    false
                } else {
                    this.flush(now)
                }
            })
            .await;
            match done {
                Ok(true) => {
                    self.reopen.store(true, Ordering::Release);
                    session.cancel();
                    return;
                }
                Ok(false) => {}
                Err(err) => tracing::error!(error = %err, "tsdb maintenance task failed"),
            }
        }
    }

    /// One flush tick; whether the store must be opened again. Blocking.
    fn flush(&self, now_ms: i64) -> bool {
        match self.tsdb.flush(now_ms) {
            Ok(stats) if stats.chunks > 0 || stats.cursors > 0 => self.health.write_succeeded(),
            // Nothing to write proves nothing either way.
            Ok(_) => {}
            Err(err) => self.health.write_failed(&error_chain(&err)),
        }
        let mut reopen = false;
        if self.health.failure().is_some() {
            match store_health::probe(&self.data_dir, &self.store) {
                Probe::DiskRefuses(err) => {
                    tracing::debug!(error = %err, "the data folder still refuses writes");
                }
                Probe::Writable => self.health.write_succeeded(),
                Probe::NeedsReopen(err) => {
                    tracing::warn!(error = %error_chain(&err),
                        "the disk takes writes again but the store still refuses them; reopening the store");
                    reopen = true;
                }
            }
        }
        match self.tsdb.stats() {
            Ok(stats) => self.metrics.observe(&stats),
            Err(err) => {
                tracing::debug!(error = %error_chain(&err), "cannot read the tsdb's figures")
            }
        }
        reopen
    }

    /// Retention and rollups; a failure is logged and tried again next hour. Blocking.
    fn compact(&self, now_ms: i64) {
        if let Err(err) = self.tsdb.compact(now_ms) {
            tracing::error!(error = %error_chain(&err), "compaction failed; it resumes at the next run");
        }
    }
}
