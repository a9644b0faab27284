//! Retention: raw data older than `retention` is rolled up (`downsample.rs`) and deleted;
//! rollups older than `rollup_retention` are deleted; finished days' flush segments are
//! merged into one file per day (`compact.rs`). [`Tsdb::compact`] runs it; the collector
//! calls it periodically (hourly is plenty: it works a day at a time).
//!
//! Deleting is unlinking whole segment files whose newest sample is older than the
//! cutoff, so expired data frees its disk space at once (a reader still holding a deleted
//! file reads on until it lets go).
//!
//! # Floors (tree `tsdb_meta`, key `floors`, [`FloorsRecord`], schema 1)
//!
//! - `sealed_before`: ingest drops samples older than this (counted as too old), so the raw
//!   data below it is final and a rollup computed from it never needs redoing.
//! - `rolled_up_before`: rollups exist for all raw data below this; reads below it use the
//!   rollups, reads above it the raw data.
//!
//! Both are UTC midnights and only move forward; `rolled_up_before <= sealed_before`.
//!
//! # Steps, and what an interruption leaves
//!
//! 1. Seal: raise `sealed_before` to the day `now - retention` falls in and persist it.
//! 2. Flush the head if step 4 has work, so no raw data below the seal stays in memory.
//! 3. Merge the flush segments of finished days into day segments (`compact.rs`).
//!    Interrupted: the flush segments are still there, beside a day file that may already
//!    hold their chunks; reads and the next merge keep each chunk once.
//! 4. Roll up every day below `sealed_before` (and within rollup retention) that has raw
//!    data and no rollup segment yet into that day's rollup segment. A rollup segment is
//!    written only after sealing, so one that exists is complete. Interrupted: the next
//!    run writes the missing days.
//! 5. Raise and persist `rolled_up_before`.
//! 6. Delete raw segments wholly below `rolled_up_before`.
//! 7. Delete rollup segments wholly before `now - rollup_retention`.
//!
//! Every step is idempotent; running `compact` again after any failure or crash finishes
//! the job.

use std::sync::atomic::{AtomicI64, Ordering};

use muster_shared::store::Record;
use serde::{Deserialize, Serialize};

use super::downsample::day_of;
use super::error::TsdbError;
use super::segment::Segments;
use super::{Tsdb, lock, window_start};

/// Key of the floors record in `tsdb_meta`.
pub const FLOORS_KEY: &str = "floors";

/// The persisted floors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloorsRecord {
    /// Ingest drops samples older than this, ms.
    pub sealed_before: i64,
    /// Reads below this use rollups, ms.
    pub rolled_up_before: i64,
}

impl Record for FloorsRecord {
    const SCHEMA: u8 = 1;
}

/// The floors in memory.
#[derive(Debug)]
pub(super) struct Floors {
    pub sealed_before: AtomicI64,
    pub rolled_up_before: AtomicI64,
}

impl Floors {
    pub(super) fn new(record: Option<FloorsRecord>) -> Self {
        let r = record.unwrap_or(FloorsRecord {
            sealed_before: i64::MIN,
            rolled_up_before: i64::MIN,
        });
        Floors {
            sealed_before: AtomicI64::new(r.sealed_before),
            rolled_up_before: AtomicI64::new(r.rolled_up_before),
        }
    }

    pub(super) fn record(&self) -> FloorsRecord {
        FloorsRecord {
            sealed_before: self.sealed_before.load(Ordering::Acquire),
            rolled_up_before: self.rolled_up_before.load(Ordering::Acquire),
        }
    }
}

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Day segments written by merging flush segments.
    pub days_merged: usize,
    /// Flush segments merged into day segments (and removed).
    pub segments_merged: usize,
    /// Rollup chunks written (one per series per day).
    pub rollups_written: usize,
    /// Raw segment files deleted as expired.
    pub blocks_deleted: usize,
    /// Rollup segment files deleted as expired.
    pub rollups_deleted: usize,
    /// Bytes of the expired files deleted.
    pub bytes_freed: u64,
    /// Damaged chunks or runs skipped (logged).
    pub damaged_chunks: usize,
}

impl Tsdb {
    /// Applies retention as of `now_ms` (see the module doc). Blocks on disk I/O for as
    /// long as it takes (a day's merge reads and writes that day's raw data once: minutes
    /// for a large fleet); run it from a blocking task, not more than one at a time (a
    /// second call waits).
    ///
    /// # Errors
    /// [`TsdbError::Compact`], [`TsdbError::CompactSegments`], or a flush's error; call
    /// again later to resume.
    pub fn compact(&self, now_ms: i64) -> Result<CompactStats, TsdbError> {
        let _one_at_a_time = lock(&self.compact_lock);
        let mut stats = CompactStats::default();
        let cutoff = day_of(now_ms.saturating_sub(self.options.retention_ms));
        if cutoff > self.floors.sealed_before.load(Ordering::Acquire) {
            self.floors.sealed_before.store(cutoff, Ordering::Release);
            self.write_floors("sealing")?;
        }
        let sealed = self.floors.sealed_before.load(Ordering::Acquire);
        let rolling = self.floors.rolled_up_before.load(Ordering::Acquire) < sealed;
        if rolling {
            // Whatever the head still holds below the seal goes to segments first (also
            // when an earlier run sealed but failed here).
            self.flush(now_ms)?;
        }
        let flushed_before = window_start(
            now_ms.saturating_sub(self.options.grace_ms),
            self.options.window_ms,
        );
        self.merge_days(day_of(flushed_before), &mut stats)?;
        let oldest = day_of(now_ms.saturating_sub(self.options.rollup_retention_ms));
        if rolling {
            self.roll_up_days(oldest, sealed, &mut stats)?;
            self.floors
                .rolled_up_before
                .store(sealed, Ordering::Release);
            self.write_floors("raising the rollup floor")?;
        }
        let rolled = self.floors.rolled_up_before.load(Ordering::Acquire);
        let (n, bytes) = self.delete_before(&self.blocks, rolled)?;
        stats.blocks_deleted += n;
        stats.bytes_freed += bytes;
        let (n, bytes) = self.delete_before(&self.rollups, oldest)?;
        stats.rollups_deleted += n;
        stats.bytes_freed += bytes;
        Ok(stats)
    }

    fn write_floors(&self, step: &'static str) -> Result<(), TsdbError> {
        let failed = |source| TsdbError::Compact { step, source };
        self.meta
            .insert(&FLOORS_KEY.to_owned(), &self.floors.record())
            .map_err(failed)?;
        self.store.flush().map_err(failed)?;
        Ok(())
    }

    /// Deletes the segments of `segments` whose newest sample is before `before`; returns
    /// how many and their bytes.
    fn delete_before(&self, segments: &Segments, before: i64) -> Result<(usize, u64), TsdbError> {
        let expired: Vec<_> = segments
            .snapshot()
            .iter()
            .filter(|s| s.trailer().max_ts < before)
            .cloned()
            .collect();
        if expired.is_empty() {
            return Ok((0, 0));
        }
        let failed = |source| TsdbError::CompactSegments {
            step: "deleting expired segments",
            source,
        };
        if let Err(source) = self.faults.check("delete") {
            return Err(failed(super::segment::SegmentError::Io {
                op: "removing",
                path: segments.dir().to_owned(),
                source,
            }));
        }
        let freed = segments.replace(&[], &expired).map_err(failed)?;
        Ok((expired.len(), freed))
    }
}
