//! The collector's time-series store: what agents send, kept compressed in segment files
//! and served to queries, alerts and `/federate` through [`crate::series::SeriesSource`].
//!
//! It owns the series index, the head (open chunks in memory), the segments (closed chunks
//! in immutable files), durable cursors, retention and downsampling. It leaves out
//! scraping (it is handed batches), query evaluation (it answers selections) and
//! scheduling: the collector calls [`Tsdb::flush`] every interval or so, [`Tsdb::compact`]
//! hourly, and [`Tsdb::flush_all`] at shutdown.
//!
//! ```text
//! SampleBatch ─ingest─▶ head (per-series open chunk, sharded by host)
//!      │ new series        │ window closed (aligned to the epoch), flush
//!      ▼                   │
//!   series.log             │
//!                          ▼
//!              blocks/<seq>.seg (one per flush) ──compact──▶ blocks/day-<date>.seg
//!                          │ then                               │ sealed: roll up
//!                          ▼                                    ▼
//!              tsdb_cursors host → last durable seq     rollups/day-<date>.seg
//! ```
//!
//! The series index lives in its own append-only file, `series.log`, and chunk data in
//! the segment files, both under the directory [`Tsdb::open`] is given; the durable
//! cursors and retention floors live in sled (`shared::store`).
//!
//! - [`chunk`] ([`encoding`], [`bitstream`]): the compressed chunk format;
//!   [`align`]: moving jittered timestamps onto the host's grid.
//! - [`index`]: labels ↔ series ids (the series log), postings, matcher selection.
//! - [`head`]: open chunks and closed ones awaiting a flush.
//! - [`segment`]: the segment files: layout, writer, reader, the set of a folder.
//! - [`block`]: reading a series' raw chunks over a time range.
//! - `ingest.rs`, `flush.rs`, `read.rs`, `compact.rs`: the operations on [`Tsdb`].
//! - [`cursor`]: which rounds are durable, per host.
//! - [`retention`], [`downsample`]: rollups and deletion.
//! - [`config`]: the `[storage]` section.
//!
//! # No write-ahead log
//!
//! The agents' buffers are the WAL (DESIGN.md §2). The store keeps, per host, a durable
//! cursor that never passes a round whose samples are not all in durable segments (a
//! flush fsyncs its segment and its directory before it writes the cursors); after a crash
//! the collector re-pulls from [`Tsdb::durable_cursor`] and re-ingests, and the head drops
//! what the segments already hold. A crash loses at most the head, which the agents still
//! have.
//!
//! # Why segment files, not sled (measured, the ignored tests in `tests/measure.rs`)
//!
//! Closed chunks used to be sled records, one per (series, chunk). sled 0.34 keeps
//! resident memory for the records it has written (spacejam/sled#1093): about 4.2 KB per
//! 230-byte record even after a commit, so at 500,000 series every window's flush added
//! about 2 GB; and its files held about 7 times the live chunk bytes under retention (9 B
//! per kept sample for 1.3 B of chunk data) and never shrank. Segment files hold the
//! chunks plus 4 bytes each and 32 bytes per series per file, and a deleted file's space
//! is free at once.
//!
//! # Limits measured
//!
//! With `cargo test --release -p muster-collector --lib -- --ignored --nocapture <name>`
//! on a shared 2-core VM (`docs/benchmarks.md` has the tables):
//!
//! - Memory per stored chunk: at 500,000 series (1,000 hosts × 500, 10 s, 30-minute
//!   windows; `measure_flush_memory_and_disk` with `MUSTER_TSDB_MEASURE_HOSTS=1000
//!   MUSTER_TSDB_MEASURE_WINDOWS=6`) a flush writes 500,000 chunks in 0.3–0.8 s, and RSS
//!   after flushes 3 to 6 grew 1.6 MB for 2,000,000 chunks: 0.8 B per chunk (sled: about
//!   4.2 KB per record). RSS was 1.09 GB, nearly all head and index. Written as segments,
//!   the old sled measurement's shape (`measure_segment_memory_by_chunks`: 4.8 million
//!   230-byte chunks) adds 5.4 MB in all, the fences (8 bytes per 128 series per
//!   segment) and the first flush's buffers.
//! - Disk: 1.59 B per sample in flush segments (chunk data is 1.32; each chunk adds a
//!   4-byte length, each series a 32-byte entry per segment) and 1.38 B per kept raw
//!   sample once a day is merged (`measure_space_over_retention_cycles`: 1,000 series, 14
//!   days, raw kept 2 days, rollups 4); all files, rollups and sled included, 1.57 B per
//!   kept raw sample, level from the third day on. sled held about 9 B (6.85 × the live
//!   bytes, `measure_sled_amplification_by_record_layout`).
//! - Each segment keeps a file descriptor: about one per flush of the current day, one
//!   per retained raw day and one per rollup day (up to 350 by default), so the
//!   collector needs a `LimitNOFILE` above 1,024 beside its agent connections (the
//!   systemd unit sets it).
//! - A late flush segment for a day already merged (a backfill after midnight) makes the
//!   next compaction rewrite that day's file with it; compaction time was not measured
//!   at 500,000 series (it reads and writes a day's data once, streaming).
//! - Series that stop sending keep their head slot and cache entry (~300 bytes) until a
//!   restart, and their series log entry (about 7 bytes) for good.

pub mod align;
pub mod bitstream;
pub mod block;
pub mod chunk;
pub mod config;
pub mod cursor;
pub mod dictionary;
pub mod downsample;
pub mod encoding;
pub mod error;
pub mod head;
pub mod index;
pub mod retention;
pub mod segment;

mod compact;
mod flush;
mod ingest;
mod read;

#[cfg(test)]
mod synthetic;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use muster_shared::store::{Store, StoreError, Tree};

pub use config::{TsdbConfig, TsdbOptions};
pub use dictionary::Dictionary;
pub use error::TsdbError;
pub use flush::FlushStats;
pub use ingest::{IngestStats, stored_labels};
pub use retention::CompactStats;

use cursor::Cursors;
use head::Head;
use index::Index;
use ingest::{CacheSeeds, HostState};
use retention::{FLOORS_KEY, Floors, FloorsRecord};
use segment::{Kind, Segments};

/// The time-series store. Share it in an `Arc`; every method blocks on memory locks,
/// sled and files, so async code calls it from `spawn_blocking`.
#[derive(Debug)]
pub struct Tsdb {
    store: Store,
    options: TsdbOptions,
    index: Index,
    head: Head,
    blocks: Segments,
    rollups: Segments,
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
    /// Chunks written to segments since the store was opened.
    pub blocks_written: u64,
    /// Samples appended since open.
    pub samples_appended: u64,
    /// Samples dropped as duplicates since open.
    pub samples_duplicate: u64,
    /// Samples dropped as too old or over the series limit since open.
    pub samples_refused: u64,
    /// Raw segment files.
    pub raw_segments: u64,
    /// Their bytes.
    pub raw_bytes: u64,
    /// Raw samples they hold.
    pub raw_samples: u64,
    /// Rollup segment files.
    pub rollup_segments: u64,
    /// Their bytes.
    pub rollup_bytes: u64,
    /// Segments skipped or found damaged since open (each logged).
    pub damaged_segments: u64,
    /// Heap bytes the open segments hold (their fences).
    pub segment_heap_bytes: u64,
    /// Bytes the store's files take on disk: the segment files, the series log and the
    /// whole sled store (cursors and anything else the collector keeps there).
    pub disk_bytes: u64,
}

impl Tsdb {
    /// Opens the store's trees in `store` (created if missing), and under `dir` (the
    /// collector's `<data_dir>/tsdb`; created if missing) the segment files and the index's
    /// series log, which is created from the index an earlier build kept in sled if there
    /// is one. Takes a second or so per million series. Segments a crash left unfinished
    /// are removed; damaged ones are skipped and logged (see [`segment`]); a torn end of
    /// the series log is cut off (see [`index`]).
    /// Chunks left in the sled trees of earlier builds (`tsdb_blocks`, `tsdb_rollups`) are
    /// ignored and the trees dropped, with one warning.
    ///
    /// # Errors
    /// [`TsdbError::Open`], [`TsdbError::OpenSegments`], [`TsdbError::OpenIndex`].
    pub fn open(store: &Store, dir: &Path, options: TsdbOptions) -> Result<Tsdb, TsdbError> {
        drop_sled_chunk_trees(store)?;
        let open_segments = |kind, name| {
            Segments::open(&dir.join(name), kind)
                .map_err(|source| TsdbError::OpenSegments { source })
        };
        let blocks = open_segments(Kind::Raw, "blocks")?;
        let rollups = open_segments(Kind::Rollup, "rollups")?;
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
        // Ids only the segments know (their series record lost in a crash) stay taken.
        let known = blocks
            .max_series()
            .max(rollups.max_series())
            .map_or(1, |id| id.saturating_add(1));
        Ok(Tsdb {
            store: store.clone(),
            options,
            index: Index::open(store, dir, known)?,
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
    /// [`TsdbError::Open`] when the sled store's size cannot be read.
    pub fn stats(&self) -> Result<TsdbStats, TsdbError> {
        let usage = self.head.usage();
        let (series, index_bytes) = {
            let index = self.index.read();
            (index.len() as u64, index.heap_bytes() as u64)
        };
        let sled_bytes = self
            .store
            .size_on_disk()
            .map_err(|source| TsdbError::Open {
                what: "store size",
                source,
            })?;
        let raw = self.blocks.snapshot().usage();
        let rollups = self.rollups.snapshot().usage();
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
            raw_segments: raw.files,
            raw_bytes: raw.bytes,
            raw_samples: raw.samples,
            rollup_segments: rollups.files,
            rollup_bytes: rollups.bytes,
            damaged_segments: self.blocks.damaged() + self.rollups.damaged(),
            segment_heap_bytes: raw.heap_bytes + rollups.heap_bytes,
            disk_bytes: sled_bytes + self.index.disk_bytes() + raw.bytes + rollups.bytes,
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

/// Failures a test can inject at named steps (`blocks`, `cursors`, `delete`); none
/// outside tests.
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

    /// An injected "disk full" at `step`, as an I/O error.
    #[inline]
    fn check(&self, step: &'static str) -> std::io::Result<()> {
        #[cfg(test)]
        if lock(&self.armed).contains(&step) {
            return Err(std::io::Error::other(format!("no space left at {step}")));
        }
        let _ = step;
        Ok(())
    }

    /// [`Faults::check`] as the store's error.
    fn check_store(&self, step: &'static str) -> Result<(), StoreError> {
        self.check(step).map_err(|source| StoreError::Store {
            path: "<test>".into(),
            op: "injected fault",
            source: Box::new(source),
        })
    }
}

/// Drops the sled trees that held chunks before segment files did, warning once if they
/// still held any (never released: nothing is migrated).
fn drop_sled_chunk_trees(store: &Store) -> Result<(), TsdbError> {
    let mut dropped = false;
    for tree in ["tsdb_blocks", "tsdb_rollups"] {
        let records = store
            .drop_tree(tree)
            .map_err(|source| TsdbError::Open { what: tree, source })?;
        if let Some(records) = records {
            dropped = true;
            if records > 0 {
                tracing::warn!(
                    tree,
                    records,
                    "ignoring chunks an earlier build kept in sled; dropping the tree"
                );
            }
        }
    }
    if dropped {
        store.flush().map_err(|source| TsdbError::Open {
            what: "dropping old chunk trees",
            source,
        })?;
    }
    Ok(())
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
