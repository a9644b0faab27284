//! Blocks: closed chunks in sled, one record per chunk, keyed so that a time-range read of
//! one series is one range scan.
//!
//! # Layout (tree `tsdb_blocks`, values [`ChunkRecord`], schema 1)
//!
//! Key ([`SeriesTimeKey`], 12 bytes): series id (u32 big endian) · the chunk's **last**
//! timestamp (i64, sign bit flipped, big endian), so byte order is (series, time) order.
//! Value: the chunk's bytes (`chunk.rs` layout, with its own CRC).
//!
//! Chunks of one series never overlap (the head appends in time order and drops anything
//! not after the last sample), so keying by the last timestamp is unique, and the chunks
//! holding samples at or after `start` are exactly the keys from `(series, start)` on; the
//! scan stops at the first chunk that starts after `end`. Chunks are cut at window
//! boundaries, but a shutdown or a backfill may write several chunks for one window: the
//! key needs no window.
//!
//! The rollup tree (`downsample.rs`) uses the same key with the day's start.

use muster_shared::store::{Key, KeyError, Record, Store, Tree};
use serde::{Deserialize, Serialize};

use super::chunk;
use super::error::TsdbError;
use super::index::SeriesId;
use crate::series::Sample;

/// A (series, timestamp) key; see the module doc for its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesTimeKey {
    /// The series.
    pub series: SeriesId,
    /// Milliseconds since the epoch.
    pub ts: i64,
}

impl SeriesTimeKey {
    /// The smallest key of `series`.
    pub fn first(series: SeriesId) -> Self {
        SeriesTimeKey {
            series,
            ts: i64::MIN,
        }
    }

    /// The largest key of `series`.
    pub fn last(series: SeriesId) -> Self {
        SeriesTimeKey {
            series,
            ts: i64::MAX,
        }
    }
}

impl Key for SeriesTimeKey {
    fn to_key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(12);
        key.extend_from_slice(&self.series.to_be_bytes());
        key.extend_from_slice(&((self.ts as u64) ^ (1 << 63)).to_be_bytes());
        key
    }

    fn from_key(bytes: &[u8]) -> Result<Self, KeyError> {
        let bytes: [u8; 12] = bytes.try_into().map_err(|_| KeyError::Length {
            expected: 12,
            found: bytes.len(),
        })?;
        let (series, ts) = bytes.split_at(4);
        let series = u32::from_be_bytes(series.try_into().map_err(|_| KeyError::Invalid {
            reason: "series id",
        })?);
        let ts = u64::from_be_bytes(ts.try_into().map_err(|_| KeyError::Invalid {
            reason: "timestamp",
        })?);
        Ok(SeriesTimeKey {
            series,
            ts: (ts ^ (1 << 63)) as i64,
        })
    }
}

/// A stored chunk (raw or rollup): its bytes with their own frame and CRC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// The chunk in its format's layout.
    pub chunk: Vec<u8>,
}

impl Record for ChunkRecord {
    const SCHEMA: u8 = 1;
}

/// A tree of chunks keyed by (series, timestamp).
pub type ChunkTree = Tree<SeriesTimeKey, ChunkRecord>;

/// Opens a chunk tree.
///
/// # Errors
/// [`TsdbError::Open`].
pub fn open_tree(store: &Store, name: &'static str) -> Result<ChunkTree, TsdbError> {
    store
        .tree(name)
        .map_err(|source| TsdbError::Open { what: name, source })
}

/// The largest series id with a record in `tree`.
///
/// # Errors
/// [`TsdbError::Open`] when the last key cannot be read.
pub fn max_series(tree: &ChunkTree) -> Result<Option<SeriesId>, TsdbError> {
    tree.last()
        .map(|last| last.map(|(key, _)| key.series))
        .map_err(|source| TsdbError::Open {
            what: "last chunk key",
            source,
        })
}

/// The last timestamp stored for `series`: what re-ingested samples must come after.
///
/// # Errors
/// [`TsdbError::ReadBlocks`].
pub fn last_ts(blocks: &ChunkTree, series: SeriesId) -> Result<Option<i64>, TsdbError> {
    let range = SeriesTimeKey::first(series)..=SeriesTimeKey::last(series);
    match blocks.range(range).next_back() {
        None => Ok(None),
        Some(Ok((key, _))) => Ok(Some(key.ts)),
        Some(Err(source)) => Err(TsdbError::ReadBlocks { series, source }),
    }
}

/// Appends to `out` the samples of `series` with `start <= t <= end` stored in `blocks`,
/// oldest first.
///
/// # Errors
/// [`TsdbError::ReadBlocks`] on I/O failure, [`TsdbError::Chunk`] for a damaged chunk.
pub fn read(
    blocks: &ChunkTree,
    series: SeriesId,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<(), TsdbError> {
    if start > end {
        return Ok(());
    }
    let from = SeriesTimeKey { series, ts: start };
    for entry in blocks.range(from..=SeriesTimeKey::last(series)) {
        let (key, record) = entry.map_err(|source| TsdbError::ReadBlocks { series, source })?;
        let damaged = |source| TsdbError::Chunk {
            series,
            max_ts: key.ts,
            source,
        };
        let mut samples = chunk::decode(&record.chunk).map_err(damaged)?.peekable();
        if let Some(Ok(first)) = samples.peek()
            && first.timestamp_ms > end
        {
            break;
        }
        for sample in samples {
            let sample = sample.map_err(damaged)?;
            if sample.timestamp_ms > end {
                break;
            }
            if sample.timestamp_ms >= start {
                out.push(sample);
            }
        }
    }
    Ok(())
}

/// Whether `blocks` hold a sample of `series` with `start <= t <= end`.
///
/// # Errors
/// As [`read`].
pub fn has_sample(
    blocks: &ChunkTree,
    series: SeriesId,
    start: i64,
    end: i64,
) -> Result<bool, TsdbError> {
    if start > end {
        return Ok(false);
    }
    let from = SeriesTimeKey { series, ts: start };
    let Some(entry) = blocks.range(from..=SeriesTimeKey::last(series)).next() else {
        return Ok(false);
    };
    let (key, record) = entry.map_err(|source| TsdbError::ReadBlocks { series, source })?;
    let damaged = |source| TsdbError::Chunk {
        series,
        max_ts: key.ts,
        source,
    };
    // The first chunk ending at or after `start` holds the first sample at or after it.
    for sample in chunk::decode(&record.chunk).map_err(damaged)? {
        let t = sample.map_err(damaged)?.timestamp_ms;
        if t >= start {
            return Ok(t <= end);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::chunk::ChunkWriter;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn key_order_is_series_then_time(a in any::<(u32, i64)>(), b in any::<(u32, i64)>()) {
            let (ka, kb) = (
                SeriesTimeKey { series: a.0, ts: a.1 },
                SeriesTimeKey { series: b.0, ts: b.1 },
            );
            prop_assert_eq!(ka.cmp(&kb), ka.to_key().cmp(&kb.to_key()));
            prop_assert_eq!(SeriesTimeKey::from_key(&ka.to_key()).unwrap(), ka);
        }
    }

    #[test]
    fn range_reads_span_chunks_and_stop_early() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::tsdb::tests::open_store(dir.path());
        let blocks = open_tree(&store, "tsdb_blocks").unwrap();
        // Series 7: chunks [0..=90] and [100..=190] (every 10 ms); series 8 one chunk.
        for (series, from) in [(7, 0), (7, 100), (8, 0)] {
            let mut w = ChunkWriter::new();
            for t in (from..from + 100).step_by(10) {
                w.push(t, t as f64).unwrap();
            }
            let key = SeriesTimeKey {
                series,
                ts: w.last_ts().unwrap(),
            };
            let chunk = w.finish().unwrap();
            blocks.insert(&key, &ChunkRecord { chunk }).unwrap();
        }
        let mut out = Vec::new();
        read(&blocks, 7, 85, 115, &mut out).unwrap();
        let ts: Vec<i64> = out.iter().map(|s| s.timestamp_ms).collect();
        assert_eq!(ts, [90, 100, 110]);
        assert_eq!(last_ts(&blocks, 7).unwrap(), Some(190));
        assert_eq!(last_ts(&blocks, 9).unwrap(), None);
        assert_eq!(max_series(&blocks).unwrap(), Some(8));
        assert!(has_sample(&blocks, 7, 95, 100).unwrap());
        assert!(!has_sample(&blocks, 7, 91, 99).unwrap());
        assert!(!has_sample(&blocks, 7, 191, 500).unwrap());
    }
}
