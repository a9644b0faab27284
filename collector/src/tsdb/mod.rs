//! The collector's time-series store: what agents send, kept compressed in sled and
//! served to queries, alerts and `/federate` through [`crate::series::SeriesSource`].
//!
//! It owns the series index, the head (open chunks in memory), the blocks (closed chunks in
//! sled), durable cursors, retention and downsampling. It leaves out scraping (it is handed
//! batches), query evaluation (it answers selections) and scheduling: the collector calls
//! [`Tsdb::flush`] every interval or so, [`Tsdb::compact`] hourly, and [`Tsdb::flush_all`]
//! at shutdown.
//!
//! ```text
//! SampleBatch ─ingest─▶ head (per-series open chunk, sharded by host)
//!                          │ window closed (aligned to the epoch), flush
//!                          ▼
//!                 tsdb_blocks (series, last ts) → chunk ──compact──▶ tsdb_rollups (series, day)
//!                          │ then
//!                          ▼
//!                 tsdb_cursors host → last durable seq
//! ```
//!
//! - [`chunk`] ([`encoding`], [`bitstream`]): the compressed chunk format;
//!   [`align`]: moving jittered timestamps onto the host's grid.
//! - [`index`]: labels ↔ series ids, postings, matcher selection.
//! - [`head`]: open chunks and closed ones awaiting a flush.
//! - [`block`]: closed chunks in sled, one range scan per series read.
//! - `ingest.rs`, `flush.rs`, `read.rs`: the operations on [`Tsdb`].
//! - [`cursor`]: which rounds are durable, per host.
//! - [`retention`], [`downsample`]: rollups and deletion.
//! - [`config`]: the `[storage]` section.
//!
//! # No write-ahead log
//!
//! The agents' buffers are the WAL (DESIGN.md §2). The store keeps, per host, a durable
//! cursor that never passes a round whose samples are not all in committed blocks; after a
//! crash the collector re-pulls from [`Tsdb::durable_cursor`] and re-ingests, and the head
//! drops what the blocks already hold. A crash loses at most the head, which the agents
//! still have.
//!
//! # Limits measured (the ignored tests in `tests/measure.rs` print them)
//!
//! - sled 0.34 keeps resident memory for the records it has written (spacejam/sled#1093):
//!   about 4 KB per 230-byte block record even after a commit, so at 500,000 series every
//!   window's flush would add about 2 GB. Its files hold about 7 times the live chunk
//!   bytes at steady state under retention (it reuses freed segments, never shrinks).
//!   Both are sled's, behind `shared::store`; the layout here does not depend on them.
//! - A read that races a compaction moving a day from raw to rollups may miss that day's
//!   raw samples for its duration (the floor is read once per query).
//! - Series that stop sending keep their head slot and cache entry (~300 bytes) until a
//!   restart, and their index record for good.

pub mod align;
pub mod bitstream;
pub mod block;
pub mod chunk;
pub mod config;
pub mod cursor;
pub mod downsample;
pub mod encoding;
pub mod error;
pub mod head;
pub mod index;
pub mod retention;
pub mod segment;

mod flush;
mod ingest;
mod read;

#[cfg(test)]
mod synthetic;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use muster_shared::store::{Store, StoreError, Tree};

pub use config::{TsdbConfig, TsdbOptions};
pub use error::TsdbError;
pub use flush::FlushStats;
pub use ingest::{IngestStats, stored_labels};
pub use retention::CompactStats;

use block::ChunkTree;
use cursor::Cursors;
use head::Head;
use index::Index;
use ingest::{CacheSeeds, HostState};
use retention::{FLOORS_KEY, Floors, FloorsRecord};

/// The time-series store. Share it in an `Arc`; every method blocks on memory locks and
/// sled, so async code calls it from `spawn_blocking`.
#[derive(Debug)]
pub struct Tsdb {
    store: Store,
    options: TsdbOptions,
    index: Index,
    head: Head,
    blocks: ChunkTree,
    rollups: ChunkTree,
    meta: Tree<String, FloorsRecord>,
    cursors: Cursors,
    floors: Floors,
    hosts: RwLock<HashMap<Box<str>, Arc<HostState>>>,
    cache_seeds: CacheSeeds,
    flush_lock: Mutex<()>,
    compact_lock: Mutex<()>,
    counters: Counters,
    faults: Faults,
}

/// Figures for the collector's own metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TsdbStats {
    /// Series in the index.
    pub series: u64,
    /// Series with an open chunk or history in the head.
    pub head_series: u64,
    /// Samples in the head (not yet in blocks).
    pub head_samples: u64,
    /// Estimated bytes of the head.
    pub head_bytes: u64,
    /// Estimated bytes of the in-memory index.
    pub index_bytes: u64,
    /// Blocks written since the store was opened.
    pub blocks_written: u64,
    /// Samples appended since open.
    pub samples_appended: u64,
    /// Samples dropped as duplicates since open.
    pub samples_duplicate: u64,
    /// Samples dropped as too old or over the series limit since open.
    pub samples_refused: u64,
    /// Bytes the store's files take on disk (the whole sled store, not just the tsdb's
    /// trees).
    pub disk_bytes: u64,
}

impl Tsdb {
    /// Opens the store's trees in `store` (created if missing) and loads the index.
    /// Takes a second or so per million series.
    ///
    /// # Errors
    /// [`TsdbError::Open`].
    pub fn open(store: &Store, options: TsdbOptions) -> Result<Tsdb, TsdbError> {
        let blocks = block::open_tree(store, "tsdb_blocks")?;
        let rollups = block::open_tree(store, "tsdb_rollups")?;
        let meta: Tree<String, FloorsRecord> =
            store.tree("tsdb_meta").map_err(|source| TsdbError::Open {
                what: "tsdb_meta",
                source,
            })?;
        let floors = meta
            .get(&FLOORS_KEY.to_owned())
            .map_err(|source| TsdbError::Open {
                what: "floors",
                source,
            })?;
        // Ids only the blocks know (their series record lost in a crash) stay taken.
        let known = block::max_series(&blocks)?
            .max(block::max_series(&rollups)?)
            .map_or(1, |id| id.saturating_add(1));
        Ok(Tsdb {
            store: store.clone(),
            options,
            index: Index::open(store, known)?,
            head: Head::new(options.window_ms),
            blocks,
            rollups,
            meta,
            cursors: Cursors::open(store)?,
            floors: Floors::new(floors),
            hosts: RwLock::default(),
            cache_seeds: CacheSeeds::default(),
            flush_lock: Mutex::default(),
            compact_lock: Mutex::default(),
            counters: Counters::default(),
            faults: Faults::default(),
        })
    }

    /// The last round of `host` whose samples are all durable: ask the agent for what
    /// comes after it. 0 when nothing of the host is durable.
    pub fn durable_cursor(&self, host: &str) -> u64 {
        self.cursors.get(host)
    }

    /// Current figures; walks the head (a millisecond per 100,000 series or so).
    ///
    /// # Errors
    /// None today besides the store's size: [`TsdbError::Open`] when it cannot be read.
    pub fn stats(&self) -> Result<TsdbStats, TsdbError> {
        let usage = self.head.usage();
        let (series, index_bytes) = {
            let index = self.index.read();
            (index.len() as u64, index.heap_bytes() as u64)
        };
        let disk_bytes = self
            .store
            .size_on_disk()
            .map_err(|source| TsdbError::Open {
                what: "store size",
                source,
            })?;
        let c = &self.counters;
        Ok(TsdbStats {
            series,
            head_series: usage.series as u64,
            head_samples: usage.samples as u64,
            head_bytes: usage.bytes as u64,
            index_bytes,
            blocks_written: c.blocks.load(Ordering::Relaxed),
            samples_appended: c.appended.load(Ordering::Relaxed),
            samples_duplicate: c.duplicates.load(Ordering::Relaxed),
            samples_refused: c.refused.load(Ordering::Relaxed),
            disk_bytes,
        })
    }

    fn hosts_read(&self) -> RwLockReadGuard<'_, HashMap<Box<str>, Arc<HostState>>> {
        self.hosts.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counters since open.
#[derive(Debug, Default)]
struct Counters {
    blocks: AtomicU64,
    appended: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
}

impl Counters {
    fn add_ingest(&self, s: &IngestStats) {
        self.appended.fetch_add(s.appended, Ordering::Relaxed);
        self.duplicates.fetch_add(s.duplicates, Ordering::Relaxed);
        self.refused
            .fetch_add(s.too_old + s.over_limit, Ordering::Relaxed);
    }

    fn add_blocks(&self, n: usize) {
        self.blocks.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Failures a test can inject at named steps (`blocks`, `cursors`); none outside tests.
#[derive(Debug, Default)]
struct Faults {
    #[cfg(test)]
    armed: Mutex<Vec<&'static str>>,
}

impl Faults {
    #[cfg(test)]
    fn arm(&self, step: &'static str) {
        lock(&self.armed).push(step);
    }

    #[cfg(test)]
    fn disarm(&self) {
        lock(&self.armed).clear();
    }

    #[inline]
    fn check(&self, step: &'static str) -> Result<(), StoreError> {
        #[cfg(test)]
        if lock(&self.armed).contains(&step) {
            return Err(StoreError::Store {
                path: "<test>".into(),
                op: "injected fault",
                source: Box::new(std::io::Error::other(format!("no space left at {step}"))),
            });
        }
        let _ = step;
        Ok(())
    }
}

/// Locks `m`, using the data of a poisoned lock as is: every mutation under the store's
/// locks leaves its data consistent at each step.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The start of the `window_ms` window holding `ts`, aligned to the epoch.
fn window_start(ts: i64, window_ms: i64) -> i64 {
    ts.div_euclid(window_ms).saturating_mul(window_ms)
}
