//! Compaction of segments, the two passes `retention.rs` runs:
//!
//! - **Merge**: the flush segments of finished days (and the day files those days already
//!   have) are read together, series by series, and each chunk goes to its UTC day's new
//!   segment (`blocks/day-YYYY-MM-DD.seg`, replacing the old one by a rename); then the
//!   inputs are removed. A day's 48 files become one, so a read of a day is one lookup.
//! - **Roll-up**: raw chunks of the days being sealed are decoded, series by series,
//!   rolled up per day (`downsample.rs`) and written to `rollups/day-YYYY-MM-DD.seg`.
//!
//! Both are one streaming pass over their inputs: memory holds one series' chunks at a
//! time, a write buffer per output day and the outputs' index (32 bytes per series), never
//! a whole day. Damaged index blocks, runs and chunks are skipped, logged and counted, so
//! one bad file cannot stall retention; I/O errors stop the pass with the inputs intact.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::chunk;
use super::downsample::{self, day_of};
use super::error::TsdbError;
use super::retention::CompactStats;
use super::segment::{
    Entry, Gathered, GatheredChunk, Level, MergeStep, Segment, SegmentError, SegmentWriter,
    Segments, SeriesMerge,
};
use super::{Tsdb, index::SeriesId};
use crate::series::Sample;

/// One output segment per UTC day, created when its first chunk comes.
struct DayWriters<'a> {
    segments: &'a Segments,
    open: BTreeMap<i64, SegmentWriter>,
}

impl<'a> DayWriters<'a> {
    fn new(segments: &'a Segments) -> Self {
        DayWriters {
            segments,
            open: BTreeMap::new(),
        }
    }

    fn get(&mut self, day: i64) -> Result<&mut SegmentWriter, SegmentError> {
        if !self.open.contains_key(&day) {
            let w = self.segments.day_writer(day)?;
            self.open.insert(day, w);
        }
        self.open.get_mut(&day).ok_or_else(|| SegmentError::Order {
            path: self.segments.dir().to_owned(),
            series: 0,
            reason: "day writer vanished",
        })
    }

    /// Finishes every day's segment: (day, path).
    fn finish(self) -> Result<Vec<(i64, PathBuf)>, SegmentError> {
        let mut out = Vec::with_capacity(self.open.len());
        for (day, w) in self.open {
            if let Some(path) = w.finish()? {
                out.push((day, path));
            }
        }
        Ok(out)
    }
}

/// Adds `series`' runs from `hits` to `gathered`, skipping damaged runs (counted).
fn gather(
    owner: &Segments,
    inputs: &[Arc<Segment>],
    hits: &[(usize, Entry)],
    keep: impl Fn(i64) -> bool + Copy,
    gathered: &mut Gathered,
    stats: &mut CompactStats,
) -> Result<(), SegmentError> {
    gathered.clear();
    for (i, e) in hits {
        match gathered.add(&inputs[*i], e, keep) {
            Ok(()) => {}
            Err(err) if err.is_damage() => {
                owner.note_damage(&inputs[*i], &err);
                stats.damaged_chunks += 1;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// The samples of a raw chunk, or `None` (logged, counted) when it is damaged.
fn decode_chunk(
    series: SeriesId,
    c: &GatheredChunk<'_>,
    stats: &mut CompactStats,
) -> Option<Vec<Sample>> {
    let decoded = chunk::decode(c.bytes).and_then(|it| it.collect::<Result<Vec<Sample>, _>>());
    checked(series, c, decoded, stats)
}

/// The last timestamp of a raw chunk (decoding it whole, which checks it), or `None`
/// (logged, counted) when it is damaged.
fn last_ts(series: SeriesId, c: &GatheredChunk<'_>, stats: &mut CompactStats) -> Option<i64> {
    let decoded = chunk::decode(c.bytes).and_then(|mut it| match it.by_ref().last() {
        Some(Ok(last)) => Ok(last.timestamp_ms),
        Some(Err(e)) => Err(e),
        None => Err(chunk::ChunkError::Truncated),
    });
    checked(series, c, decoded, stats)
}

fn checked<T>(
    series: SeriesId,
    c: &GatheredChunk<'_>,
    decoded: Result<T, chunk::ChunkError>,
    stats: &mut CompactStats,
) -> Option<T> {
    match decoded {
        Ok(v) => Some(v),
        Err(error) => {
            stats.damaged_chunks += 1;
            tracing::warn!(
                series,
                path = %c.segment.path().display(),
                error = %error,
                "skipping a damaged chunk in compaction"
            );
            None
        }
    }
}

fn merge_error(step: &'static str) -> impl Fn(SegmentError) -> TsdbError {
    move |source| TsdbError::CompactSegments { step, source }
}

impl Tsdb {
    /// Merges the flush segments whose newest sample is before `finished` (a UTC
    /// midnight: the days before it are flushed) into one segment per day.
    pub(super) fn merge_days(
        &self,
        finished: i64,
        stats: &mut CompactStats,
    ) -> Result<(), TsdbError> {
        let list = self.blocks.snapshot();
        let flushes: Vec<Arc<Segment>> = list
            .iter()
            .filter(|s| s.trailer().level == Level::Flush && s.trailer().max_ts < finished)
            .cloned()
            .collect();
        if flushes.is_empty() {
            return Ok(());
        }
        let touched = |day: i64| {
            flushes
                .iter()
                .any(|s| (day_of(s.trailer().min_ts)..=day_of(s.trailer().max_ts)).contains(&day))
        };
        let old_days: Vec<Arc<Segment>> = list
            .iter()
            .filter(|s| s.trailer().level == Level::Day && touched(s.trailer().day))
            .cloned()
            .collect();
        let inputs: Vec<Arc<Segment>> = flushes.iter().chain(&old_days).cloned().collect();
        let failed = merge_error("merging a day's segments");

        let mut writers = DayWriters::new(&self.blocks);
        let mut merge = SeriesMerge::new(&self.blocks, &inputs);
        let mut gathered = Gathered::default();
        while let Some(MergeStep { series, hits }) = merge.next_series().map_err(&failed)? {
            gather(&self.blocks, &inputs, &hits, |_| true, &mut gathered, stats)
                .map_err(&failed)?;
            for c in gathered.chunks() {
                let Some(last) = last_ts(series, &c, stats) else {
                    continue;
                };
                writers
                    .get(day_of(c.first_ts))
                    .and_then(|w| w.push(series, c.first_ts, last, c.bytes))
                    .map_err(&failed)?;
            }
        }
        let written = writers.finish().map_err(&failed)?;
        let rewritten: HashSet<i64> = written.iter().map(|(day, _)| *day).collect();
        let retired: Vec<Arc<Segment>> = flushes
            .iter()
            .chain(
                old_days
                    .iter()
                    .filter(|s| rewritten.contains(&s.trailer().day)),
            )
            .cloned()
            .collect();
        let paths: Vec<PathBuf> = written.into_iter().map(|(_, p)| p).collect();
        self.blocks.replace(&paths, &retired).map_err(&failed)?;
        stats.days_merged += paths.len();
        stats.segments_merged += flushes.len();
        tracing::info!(
            days = paths.len(),
            segments = flushes.len(),
            "merged finished days' flush segments"
        );
        Ok(())
    }

    /// Rolls up the raw data of every day in `from..before` that has no rollup segment.
    pub(super) fn roll_up_days(
        &self,
        from: i64,
        before: i64,
        stats: &mut CompactStats,
    ) -> Result<(), TsdbError> {
        let done: HashSet<i64> = self
            .rollups
            .snapshot()
            .iter()
            .filter(|s| s.trailer().level == Level::Day)
            .map(|s| s.trailer().day)
            .collect();
        let wanted = |ts: i64| {
            let day = day_of(ts);
            day >= from && day < before && !done.contains(&day)
        };
        let inputs: Vec<Arc<Segment>> = self
            .blocks
            .snapshot()
            .iter()
            .filter(|s| s.trailer().min_ts < before && s.trailer().max_ts >= from)
            .cloned()
            .collect();
        if inputs.is_empty() {
            return Ok(());
        }
        let failed = merge_error("rolling up");

        let mut writers = DayWriters::new(&self.rollups);
        let mut merge = SeriesMerge::new(&self.blocks, &inputs);
        let mut gathered = Gathered::default();
        let mut samples: Vec<Sample> = Vec::new();
        while let Some(MergeStep { series, hits }) = merge.next_series().map_err(&failed)? {
            gather(&self.blocks, &inputs, &hits, wanted, &mut gathered, stats).map_err(&failed)?;
            samples.clear();
            for c in gathered.chunks() {
                for s in decode_chunk(series, &c, stats).unwrap_or_default() {
                    if samples
                        .last()
                        .is_none_or(|l| l.timestamp_ms < s.timestamp_ms)
                    {
                        samples.push(s);
                    }
                }
            }
            for day in samples.chunk_by(|a, b| day_of(a.timestamp_ms) == day_of(b.timestamp_ms)) {
                let buckets = downsample::roll_up(day);
                let (Some(first), Some(last), Some(bytes)) = (
                    buckets.first(),
                    buckets.last(),
                    downsample::encode(&buckets),
                ) else {
                    continue;
                };
                writers
                    .get(day_of(first.last_ts))
                    .and_then(|w| w.push(series, first.last_ts, last.last_ts, &bytes))
                    .map_err(&failed)?;
                stats.rollups_written += 1;
            }
        }
        let paths: Vec<PathBuf> = writers
            .finish()
            .map_err(&failed)?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        self.rollups.replace(&paths, &[]).map_err(&failed)?;
        if !paths.is_empty() {
            tracing::info!(days = paths.len(), "rolled up sealed days");
        }
        Ok(())
    }
}
