//! Retention: raw blocks older than `retention` are rolled up (`downsample.rs`) and
//! deleted; rollups older than `rollup_retention` are deleted. [`Tsdb::compact`] runs it;
//! the collector calls it periodically (hourly is plenty: it works a day at a time).
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
//! 2. Flush the head, so no raw data below the seal stays in memory; then roll up every
//!    raw block below `sealed_before`, a group of series at a time, one rollup record per
//!    series per day, and commit. Interrupted: the next run computes the
//!    same records again from the same raw blocks (they are deleted only after step 3).
//! 3. Raise and persist `rolled_up_before`.
//! 4. Delete raw blocks below `rolled_up_before`, a group of series per batch (all of a
//!    series' old blocks in one batch, so a series never has half a day left).
//! 5. Delete rollups of days before `now - rollup_retention`.
//!
//! Every step is idempotent; running `compact` again after any failure or crash finishes
//! the job.

use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};

use muster_shared::store::{Record, StoreError};
use serde::{Deserialize, Serialize};

use super::block::{ChunkRecord, SeriesTimeKey};
use super::chunk;
use super::downsample::{self, day_of};
use super::error::TsdbError;
use super::index::SeriesId;
use super::{Tsdb, lock};
use crate::series::Sample;

/// Series per compaction batch: bounds memory (a group's raw data for the days rolled up).
const GROUP: u32 = 256;
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

/// The floors in memory, plus how far deletion got since the process started.
#[derive(Debug)]
pub(super) struct Floors {
    pub sealed_before: AtomicI64,
    pub rolled_up_before: AtomicI64,
    raw_deleted_before: AtomicI64,
    rollups_deleted_before: AtomicI64,
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
            raw_deleted_before: AtomicI64::new(i64::MIN),
            rollups_deleted_before: AtomicI64::new(i64::MIN),
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
    /// Rollup records written (one per series per day).
    pub rollups_written: usize,
    /// Raw blocks deleted.
    pub blocks_deleted: usize,
    /// Rollup records deleted.
    pub rollups_deleted: usize,
    /// Damaged raw chunks skipped (logged).
    pub damaged_chunks: usize,
}

impl Tsdb {
    /// Applies retention as of `now_ms` (see the module doc). Blocks on sled for as long
    /// as it takes (seconds for a fleet's day); run it from a blocking task, not more than
    /// one at a time (a second call waits).
    ///
    /// # Errors
    /// [`TsdbError::Compact`], or a flush's error; call again later to resume.
    pub fn compact(&self, now_ms: i64) -> Result<CompactStats, TsdbError> {
        let _one_at_a_time = lock(&self.compact_lock);
        let mut stats = CompactStats::default();
        let cutoff = day_of(now_ms.saturating_sub(self.options.retention_ms));
        if cutoff > self.floors.sealed_before.load(Ordering::Acquire) {
            self.floors.sealed_before.store(cutoff, Ordering::Release);
            self.write_floors("sealing")?;
        }
        let sealed = self.floors.sealed_before.load(Ordering::Acquire);
        if self.floors.rolled_up_before.load(Ordering::Acquire) < sealed {
            // Whatever the head still holds below the seal goes to the blocks first (also
            // when an earlier run sealed but failed here).
            self.flush(now_ms)?;
            for group in self.id_groups() {
                self.roll_up_group(group, sealed, &mut stats)?;
            }
            self.floors
                .rolled_up_before
                .store(sealed, Ordering::Release);
            self.write_floors("raising the rollup floor")?;
        }
        let rolled = self.floors.rolled_up_before.load(Ordering::Acquire);
        if self.floors.raw_deleted_before.load(Ordering::Acquire) < rolled {
            for group in self.id_groups() {
                stats.blocks_deleted += self.delete_below(&self.blocks, group, rolled)?;
            }
            self.floors
                .raw_deleted_before
                .store(rolled, Ordering::Release);
        }
        let oldest = day_of(now_ms.saturating_sub(self.options.rollup_retention_ms));
        if self.floors.rollups_deleted_before.load(Ordering::Acquire) < oldest {
            for group in self.id_groups() {
                stats.rollups_deleted += self.delete_below(&self.rollups, group, oldest)?;
            }
            self.floors
                .rollups_deleted_before
                .store(oldest, Ordering::Release);
        }
        Ok(stats)
    }

    fn id_groups(&self) -> impl Iterator<Item = Range<SeriesId>> {
        let end = self.index.next_id();
        (1..end)
            .step_by(GROUP as usize)
            .map(move |start| start..start.saturating_add(GROUP).min(end))
    }

    fn write_floors(&self, step: &'static str) -> Result<(), TsdbError> {
        let failed = |source| TsdbError::Compact { step, source };
        self.meta
            .insert(&FLOORS_KEY.to_owned(), &self.floors.record())
            .map_err(failed)?;
        self.store.flush().map_err(failed)?;
        Ok(())
    }

    /// Writes the rollups of the raw blocks below `before` of the series in `group`.
    fn roll_up_group(
        &self,
        group: Range<SeriesId>,
        before: i64,
        stats: &mut CompactStats,
    ) -> Result<(), TsdbError> {
        let failed = |source| TsdbError::Compact {
            step: "rolling up",
            source,
        };
        let mut batch = self.rollups.batch();
        let mut samples: Vec<Sample> = Vec::new();
        for series in group {
            samples.clear();
            let range = SeriesTimeKey::first(series)..SeriesTimeKey { series, ts: before };
            for entry in self.blocks.range(range) {
                let (key, record) = entry.map_err(failed)?;
                let decoded: Result<Vec<Sample>, _> = match chunk::decode(&record.chunk) {
                    Ok(iter) => iter.collect(),
                    Err(e) => Err(e),
                };
                match decoded {
                    Ok(s) => samples.extend(s),
                    Err(error) => {
                        stats.damaged_chunks += 1;
                        tracing::warn!(series, max_ts = key.ts, %error, "skipping a damaged chunk in roll-up");
                    }
                }
            }
            for day in samples.chunk_by(|a, b| day_of(a.timestamp_ms) == day_of(b.timestamp_ms)) {
                let Some(first) = day.first() else { continue };
                let Some(chunk) = downsample::encode(&downsample::roll_up(day)) else {
                    continue;
                };
                let key = SeriesTimeKey {
                    series,
                    ts: day_of(first.timestamp_ms),
                };
                batch.insert(&key, &ChunkRecord { chunk }).map_err(failed)?;
                stats.rollups_written += 1;
            }
        }
        if !batch.is_empty() {
            self.faults.check("roll-up").map_err(failed)?;
            self.rollups.apply(batch).map_err(failed)?;
            self.store.flush().map_err(failed)?;
        }
        Ok(())
    }

    /// Deletes the records of `tree` keyed before `before` for the series in `group`.
    fn delete_below(
        &self,
        tree: &super::block::ChunkTree,
        group: Range<SeriesId>,
        before: i64,
    ) -> Result<usize, TsdbError> {
        let failed = |source: StoreError| TsdbError::Compact {
            step: "deleting expired records",
            source,
        };
        let mut batch = tree.batch();
        for series in group {
            let range = SeriesTimeKey::first(series)..SeriesTimeKey { series, ts: before };
            for entry in tree.range(range) {
                let (key, _) = entry.map_err(failed)?;
                batch.remove(&key);
            }
        }
        let n = batch.len();
        if n > 0 {
            self.faults.check("delete").map_err(failed)?;
            tree.apply(batch).map_err(failed)?;
            self.store.flush().map_err(failed)?;
        }
        Ok(n)
    }
}
