//! Reads: [`SeriesSource`] over the head, the raw segments and the rollup segments.
//!
//! A series' samples in a range come from three places, oldest first: rollups below
//! `rolled_up_before` (one sample per 5-minute bucket, see `downsample.rs`), raw segments,
//! and the head. What a read sees is taken in this order:
//!
//! 1. the head: a flush adds its segment to the set *before* dropping the chunks from the
//!    head, so reading the head first and the set after sees every chunk at least once
//!    (a chunk seen twice is merged away by timestamp);
//! 2. the raw segment set, then the floor, then the rollup set: compaction publishes
//!    rollups, then raises the floor, then deletes raw segments, so a read that finds the
//!    old floor holds the raw segments, and one that finds the new floor sees the rollups.
//!
//! The sets are snapshots: files that compaction or retention removes meanwhile stay
//! readable through them.

use std::sync::atomic::Ordering;

use hashbrown::HashMap;

use super::error::TsdbError;
use super::index::SeriesId;
use super::segment::{SegmentList, SeriesReader, error_chain};
use super::{Tsdb, block, downsample};
use crate::series::{Labels, Matcher, Sample, SeriesSamples, SeriesSource, SourceError};

/// What a read sees of the stored data; see the module doc for the order it is taken in.
struct View {
    raw: std::sync::Arc<SegmentList>,
    rolled: i64,
    rollups: std::sync::Arc<SegmentList>,
}

impl Tsdb {
    /// Takes the stored data's view, after the head has been read.
    fn view(&self) -> View {
        let raw = self.blocks.snapshot();
        let rolled = self.floors.rolled_up_before.load(Ordering::Acquire);
        let rollups = self.rollups.snapshot();
        View {
            raw,
            rolled,
            rollups,
        }
    }

    /// The samples of each of `ids` (ascending) in `start..=end`, series without any left
    /// out; more than `limit` series with samples is an error.
    fn read_samples(
        &self,
        ids: &[SeriesId],
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<(SeriesId, Vec<Sample>)>, SourceError> {
        let mut head = self.read_head(ids, start, end)?;
        let view = self.view();
        let raw_start = start.max(view.rolled);
        let rollup_end = end.min(view.rolled.saturating_sub(1));
        let mut raw_reader = SeriesReader::new(&self.blocks, &view.raw, raw_start, end);
        let mut rollup_reader = SeriesReader::new(&self.rollups, &view.rollups, start, rollup_end);
        let mut out = Vec::new();
        let mut raw = Vec::new();
        for &id in ids {
            let mut samples = Vec::new();
            downsample::read(&mut rollup_reader, id, start, rollup_end, &mut samples)
                .map_err(source_error)?;
            raw.clear();
            block::read(&mut raw_reader, id, raw_start, end, &mut raw).map_err(source_error)?;
            let in_head = head.remove(&id).unwrap_or_default();
            let from = in_head.partition_point(|s| s.timestamp_ms < raw_start);
            merge_into(&mut samples, &raw, &in_head[from..]);
            if samples.is_empty() {
                continue;
            }
            if out.len() == limit {
                return Err(SourceError::TooManySeries { limit });
            }
            out.push((id, samples));
        }
        Ok(out)
    }

    /// Head samples of `ids` in `start..=end`, by series, one shard lock at a time.
    fn read_head(
        &self,
        ids: &[SeriesId],
        start: i64,
        end: i64,
    ) -> Result<HashMap<SeriesId, Vec<Sample>>, SourceError> {
        let mut by_shard: Vec<Vec<SeriesId>> = vec![Vec::new(); self.head.shard_count()];
        {
            let index = self.index.read();
            for &id in ids {
                let host = index.string(index.host_of(id));
                by_shard[self.head.shard_of_host(host)].push(id);
            }
        }
        let mut out = HashMap::new();
        for (i, shard_ids) in by_shard.iter().enumerate() {
            if shard_ids.is_empty() || start > end {
                continue;
            }
            self.head
                .lock(i)
                .read(shard_ids, start, end, |id, samples| {
                    if !samples.is_empty() {
                        out.insert(id, std::mem::take(samples));
                    }
                })
                .map_err(|e| SourceError::Store(format!("head chunk damaged: {e}")))?;
        }
        Ok(out)
    }

    /// The selected series with their labels, sorted by labels.
    fn select_labelled(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<SeriesSamples>, SourceError> {
        let ids = self.index.read().select(matchers);
        let found = self.read_samples(&ids, start, end, limit)?;
        let index = self.index.read();
        let mut out: Vec<SeriesSamples> = found
            .into_iter()
            .filter_map(|(id, samples)| {
                Some(SeriesSamples {
                    labels: index.labels(id)?,
                    samples,
                })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Ids of the selected series with a sample in range, ascending. Cheaper than reading
    /// them: the head answers for series that are being written, the segments' index
    /// entries for most of the rest.
    fn select_present(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesId>, SourceError> {
        if start > end {
            return Ok(Vec::new());
        }
        let ids = self.index.read().select(matchers);
        let in_head = self.read_head(&ids, start, end)?;
        let view = self.view();
        let raw_start = start.max(view.rolled);
        let rollup_end = end.min(view.rolled.saturating_sub(1));
        let mut raw_reader = SeriesReader::new(&self.blocks, &view.raw, raw_start, end);
        let mut rollup_reader = SeriesReader::new(&self.rollups, &view.rollups, start, rollup_end);
        let mut out = Vec::new();
        let mut rolled_up = Vec::new();
        for id in ids {
            let present = in_head
                .get(&id)
                .is_some_and(|s| s.last().is_some_and(|l| l.timestamp_ms >= raw_start))
                || block::has_sample(&mut raw_reader, id, raw_start, end).map_err(source_error)?
                || (start < view.rolled && {
                    rolled_up.clear();
                    downsample::read(&mut rollup_reader, id, start, rollup_end, &mut rolled_up)
                        .map_err(source_error)?;
                    !rolled_up.is_empty()
                });
            if present {
                out.push(id);
            }
        }
        Ok(out)
    }
}

/// Appends `raw` and `head` (each oldest first, possibly overlapping) to `out`, which
/// holds older samples, dropping repeated timestamps.
fn merge_into(out: &mut Vec<Sample>, raw: &[Sample], head: &[Sample]) {
    let (mut i, mut j) = (0, 0);
    out.reserve(raw.len() + head.len());
    while i < raw.len() || j < head.len() {
        let next = match (raw.get(i), head.get(j)) {
            (Some(a), Some(b)) if a.timestamp_ms < b.timestamp_ms => {
                i += 1;
                *a
            }
            (Some(a), Some(b)) if a.timestamp_ms == b.timestamp_ms => {
                i += 1;
                j += 1;
                *a
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                j += 1;
                *b
            }
            (Some(a), None) => {
                i += 1;
                *a
            }
            (None, None) => break,
        };
        if out
            .last()
            .is_none_or(|last| last.timestamp_ms < next.timestamp_ms)
        {
            out.push(next);
        }
    }
}

fn source_error(err: TsdbError) -> SourceError {
    SourceError::Store(error_chain(&err))
}

impl SeriesSource for Tsdb {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<SeriesSamples>, SourceError> {
        self.select_labelled(matchers, start_ms, end_ms, limit)
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<Labels>, SourceError> {
        let ids = self.select_present(matchers, start_ms, end_ms)?;
        if ids.len() > limit {
            return Err(SourceError::TooManySeries { limit });
        }
        let index = self.index.read();
        let mut out: Vec<Labels> = ids.iter().filter_map(|&id| index.labels(id)).collect();
        out.sort();
        Ok(out)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, SourceError> {
        let ids = self.select_present(matchers, start_ms, end_ms)?;
        Ok(self.index.read().label_names(&ids))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, SourceError> {
        let ids = self.select_present(matchers, start_ms, end_ms)?;
        Ok(self.index.read().label_values(name, &ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_drops_the_overlap_of_a_chunk_seen_twice() {
        let s = |t: i64| Sample {
            timestamp_ms: t,
            value: t as f64,
        };
        let mut out = vec![s(1)];
        merge_into(&mut out, &[s(5), s(6), s(7)], &[s(6), s(7), s(8)]);
        let ts: Vec<i64> = out.iter().map(|s| s.timestamp_ms).collect();
        assert_eq!(ts, [1, 5, 6, 7, 8]);
    }
}
