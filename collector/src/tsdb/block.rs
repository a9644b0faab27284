//! Blocks: closed raw chunks in segment files (`segment/`, folder `blocks`), and the reads
//! of one series over a time range.
//!
//! A series' chunks may sit in several segments (one per flush until compaction merges a
//! finished day into one file). [`read`] gathers them oldest first, skips the chunks that
//! end before the range without decoding them (a chunk ends before the next one starts),
//! and stops at the first chunk that starts after it.

use super::chunk;
use super::error::TsdbError;
use super::index::SeriesId;
use super::segment::{GatheredChunk, SegmentError, SeriesReader};
use crate::series::Sample;

fn read_error(series: SeriesId) -> impl Fn(SegmentError) -> TsdbError {
    move |source| TsdbError::ReadSegment { series, source }
}

fn damaged(series: SeriesId, c: &GatheredChunk<'_>) -> impl Fn(chunk::ChunkError) -> TsdbError {
    let path = c.segment.path().to_owned();
    move |source| TsdbError::Chunk {
        series,
        path: path.clone(),
        source,
    }
}

/// Appends to `out` the samples of `series` with `start <= t <= end` that `reader` (made
/// for that range) finds, oldest first, each timestamp once.
///
/// # Errors
/// [`TsdbError::ReadSegment`] on I/O failure or a damaged run, [`TsdbError::Chunk`] for a
/// damaged chunk.
pub fn read(
    reader: &mut SeriesReader<'_>,
    series: SeriesId,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<(), TsdbError> {
    if start > end || reader.find(series).map_err(read_error(series))?.count() == 0 {
        return Ok(());
    }
    let gathered = reader.gather().map_err(read_error(series))?;
    let chunks: Vec<GatheredChunk<'_>> = gathered.chunks().collect();
    let mut after = i64::MIN;
    for (i, c) in chunks.iter().enumerate() {
        if c.first_ts > end {
            break;
        }
        if chunks.get(i + 1).is_some_and(|next| next.first_ts <= start) {
            continue;
        }
        let damaged = damaged(series, c);
        for sample in chunk::decode(c.bytes).map_err(&damaged)? {
            let sample = sample.map_err(&damaged)?;
            if sample.timestamp_ms > end {
                break;
            }
            if sample.timestamp_ms >= start && sample.timestamp_ms > after {
                after = sample.timestamp_ms;
                out.push(sample);
            }
        }
    }
    Ok(())
}

/// Whether `series` has a sample with `start <= t <= end`, for a `reader` made for that
/// range. The index entries answer most calls without reading chunks: a run whose first
/// or last sample is in range has one.
///
/// # Errors
/// As [`read`].
pub fn has_sample(
    reader: &mut SeriesReader<'_>,
    series: SeriesId,
    start: i64,
    end: i64,
) -> Result<bool, TsdbError> {
    if start > end {
        return Ok(false);
    }
    let mut straddling = false;
    for e in reader.find(series).map_err(read_error(series))? {
        if e.first_ts >= start || e.last_ts <= end {
            return Ok(true);
        }
        straddling = true;
    }
    if !straddling {
        return Ok(false);
    }
    // Runs that start before the range and end after it: look inside.
    let gathered = reader.gather().map_err(read_error(series))?;
    let chunks: Vec<GatheredChunk<'_>> = gathered.chunks().collect();
    for (i, c) in chunks.iter().enumerate() {
        if c.first_ts > end {
            break;
        }
        if chunks.get(i + 1).is_some_and(|next| next.first_ts <= start) {
            continue;
        }
        let damaged = damaged(series, c);
        for sample in chunk::decode(c.bytes).map_err(&damaged)? {
            let t = sample.map_err(&damaged)?.timestamp_ms;
            if t >= start {
                return Ok(t <= end);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::chunk::ChunkWriter;
    use crate::tsdb::segment::{Kind, Segments};

    /// A chunk every 10 ms from `from` to `from + 90`.
    fn chunk_from(from: i64) -> (i64, i64, Vec<u8>) {
        let mut w = ChunkWriter::new();
        for t in (from..from + 100).step_by(10) {
            w.push(t, t as f64).unwrap();
        }
        (from, w.last_ts().unwrap(), w.finish().unwrap())
    }

    #[test]
    fn range_reads_span_segments_stop_early_and_keep_each_chunk_once() {
        let dir = tempfile::tempdir().unwrap();
        let set = Segments::open(dir.path(), Kind::Raw).unwrap();
        // Series 7: [0..=90] in the first segment, [100..=190] in the second, which also
        // holds the first chunk again (an interrupted merge); series 8 one chunk.
        let mut paths = Vec::new();
        for chunks in [vec![(7, 0), (8, 0)], vec![(7, 0), (7, 100)]] {
            let mut w = set.flush_writer().unwrap();
            for (series, from) in chunks {
                let (first, last, bytes) = chunk_from(from);
                w.push(series, first, last, &bytes).unwrap();
            }
            paths.push(w.finish().unwrap().unwrap());
        }
        set.replace(&paths, &[]).unwrap();
        let list = set.snapshot();
        let read_range = |series, start, end| {
            let mut reader = SeriesReader::new(&set, &list, start, end);
            let mut out = Vec::new();
            read(&mut reader, series, start, end, &mut out).unwrap();
            out.iter().map(|s| s.timestamp_ms).collect::<Vec<_>>()
        };
        assert_eq!(read_range(7, 85, 115), [90, 100, 110]);
        assert_eq!(read_range(7, i64::MIN, i64::MAX).len(), 20);
        assert_eq!(read_range(8, 0, 5), [0]);
        assert!(read_range(9, i64::MIN, i64::MAX).is_empty());
        let present = |series, start, end| {
            let mut reader = SeriesReader::new(&set, &list, start, end);
            has_sample(&mut reader, series, start, end).unwrap()
        };
        assert!(present(7, 95, 100));
        assert!(!present(7, 91, 95));
        assert!(!present(7, 101, 109));
        assert!(present(7, 105, 115));
        assert!(!present(7, 191, 500));
        assert!(!present(8, 91, 500));
    }
}
