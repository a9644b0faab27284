//! Whether the collector's store takes writes: recorded by what writes to it (the
//! maintenance task's flushes, the scrape loop's ingests), read by the scrape loop, which
//! pauses while the store does not, and by the API, which says why.
//!
//! A full disk (or any other I/O error) makes a flush or an index write fail. Pulling on
//! would only grow the head with samples that cannot reach the disk, samples the agents'
//! buffers hold anyway (DESIGN.md §2), so the scrape loop stops pulling until the store
//! writes again (backpressure). Durable cursors stay where they were throughout: the tsdb
//! moves them only after a committed flush. Each host then shows the reason as its
//! `last_error`, `/health` and `/health/ready` carry it in a `store` field, and
//! `muster_collector_store_writable` is 0.
//!
//! # Recovery
//!
//! While failing, every maintenance tick (`maintenance.flush_interval`) retries the flush,
//! and a flush that writes something ends the failure. Otherwise [`probe`] looks further:
//!
//! 1. It writes and syncs [`PROBE_BYTES`] in a file in the data folder. If that fails, the
//!    disk is still full (or read-only): nothing more is tried until the next tick.
//! 2. If the disk takes it, a small record written and flushed through the store itself
//!    tells whether the store recovered ([`Probe::Writable`]: scraping resumes, and the next
//!    flush writes what the head held) or still refuses ([`Probe::NeedsReopen`]). sled keeps
//!    the first I/O error its log writer meets and fails every later write with it until
//!    the database is opened again, so the server then closes the store and opens it again
//!    in-process (`server.rs`); the head is dropped and re-pulled from the durable cursors,
//!    like after a crash.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};

use crate::metrics::StoreMetrics;

/// Bytes the data-folder probe writes: enough that a store write of a few chunks is
/// likely to fit once it succeeds.
pub const PROBE_BYTES: usize = 1 << 20;
/// The data-folder probe's file, removed after each probe.
pub const PROBE_FILE: &str = ".write-probe";

/// Why the store does not take writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreFailure {
    /// The failed write and its causes, e.g. `flushing 12 chunks: committing blocks: ...:
    /// No space left on device (os error 28)`.
    pub error: String,
    /// When it started failing, RFC 3339 (UTC).
    pub since: String,
}

/// The store's write health, shared by the server, the scrape loop and the API.
#[derive(Debug)]
pub struct StoreHealth {
    failure: Mutex<Option<StoreFailure>>,
    metrics: StoreMetrics,
}

impl StoreHealth {
    /// Writable, until told otherwise.
    pub fn new(metrics: StoreMetrics) -> Self {
        metrics.writable.set(1);
        Self {
            failure: Mutex::new(None),
            metrics,
        }
    }

    /// Why the store does not take writes; `None` while it does.
    pub fn failure(&self) -> Option<StoreFailure> {
        self.lock().clone()
    }

    /// Records a failed write: counts it, and logs when the store starts failing or fails
    /// in a new way.
    pub fn write_failed(&self, error: &str) {
        self.metrics.write_failures.inc();
        self.metrics.writable.set(0);
        let mut failure = self.lock();
        match failure.as_mut() {
            None => {
                tracing::error!(error = %error,
                    "the store cannot write; scraping paused until it can (the agents keep buffering)");
                *failure = Some(StoreFailure {
                    error: error.to_owned(),
                    since: crate::hosts::rfc3339(crate::unix_ms()),
                });
            }
            Some(current) if current.error != error => {
                tracing::error!(error = %error, "the store still cannot write");
                error.clone_into(&mut current.error);
            }
            Some(_) => {}
        }
    }

    /// Records a write that reached the disk; logs the recovery.
    pub fn write_succeeded(&self) {
        self.metrics.writable.set(1);
        if let Some(failure) = self.lock().take() {
            tracing::info!(failing_since = %failure.since, "the store writes again; scraping resumes");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<StoreFailure>> {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What [`probe`] found about a store that failed to write.
#[derive(Debug)]
pub enum Probe {
    /// The data folder refuses a write: the disk is still full (or read-only).
    DiskRefuses(std::io::Error),
    /// The store takes writes again.
    Writable,
    /// The disk takes writes but the store refuses them: it must be opened again.
    NeedsReopen(StoreError),
}

/// A record of the probe tree (`store_probe`, schema 1): when the last probe wrote.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct ProbeRecord {
    written_at_unix_ms: u64,
}

impl Record for ProbeRecord {
    const SCHEMA: u8 = 1;
}

/// Tells whether a store that failed to write can write again (see the module doc).
/// Blocking: two fsyncs.
pub fn probe(data_dir: &Path, store: &Store) -> Probe {
    if let Err(err) = probe_folder(data_dir) {
        return Probe::DiskRefuses(err);
    }
    let written = (|| {
        let tree: Tree<String, ProbeRecord> = store.tree("store_probe")?;
        tree.insert(
            &"last".to_owned(),
            &ProbeRecord {
                written_at_unix_ms: crate::unix_ms(),
            },
        )?;
        store.flush()
    })();
    match written {
        Ok(_) => Probe::Writable,
        Err(err) => Probe::NeedsReopen(err),
    }
}

/// Writes, syncs and removes [`PROBE_FILE`] of [`PROBE_BYTES`] in `folder`.
fn probe_folder(folder: &Path) -> std::io::Result<()> {
    let path = folder.join(PROBE_FILE);
    let written = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    })();
    // Remove it even after a partial write, so the probe never holds the space it found.
    let removed = std::fs::remove_file(&path);
    written?;
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_shared::store::StoreOptions;

    fn health() -> StoreHealth {
        StoreHealth::new(crate::metrics::Metrics::new().unwrap().store)
    }

    #[test]
    fn a_failure_holds_until_a_write_succeeds() {
        let health = health();
        assert_eq!(health.failure(), None);
        health.write_failed("flushing 3 chunks: no space left");
        health.write_failed("flushing 3 chunks: no space left");
        let failure = health.failure().unwrap();
        assert_eq!(failure.error, "flushing 3 chunks: no space left");
        assert_eq!(health.metrics.write_failures.get(), 2);
        assert_eq!(health.metrics.writable.get(), 0);

        health.write_failed("persisting durable cursors: no space left");
        let changed = health.failure().unwrap();
        assert_eq!(changed.error, "persisting durable cursors: no space left");
        assert_eq!(changed.since, failure.since, "still the same outage");

        health.write_succeeded();
        assert_eq!(health.failure(), None);
        assert_eq!(health.metrics.writable.get(), 1);
    }

    #[test]
    fn a_writable_folder_and_store_probe_writable_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), StoreOptions::collector()).unwrap();
        assert!(matches!(probe(dir.path(), &store), Probe::Writable));
        assert!(!dir.path().join(PROBE_FILE).exists());
    }

    #[test]
    fn a_folder_that_refuses_writes_is_reported_as_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), StoreOptions::collector()).unwrap();
        // A probe path that cannot be created: its folder is a file.
        let not_a_folder = dir.path().join("file");
        std::fs::write(&not_a_folder, b"x").unwrap();
        assert!(matches!(
            probe(&not_a_folder, &store),
            Probe::DiskRefuses(_)
        ));
    }
}
