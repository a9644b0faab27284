//! The head: each series' open chunk in memory, and the closed chunks waiting for a flush.
//!
//! Series live in shards, one `Mutex` each; all series of a host are in the shard its host
//! id hashes to, so ingesting a round takes one lock, and hosts ingesting in parallel
//! rarely meet. A series is a slot in its shard's vector (about 120 bytes plus its chunk's
//! bit stream, 1–2 bytes per sample), found by the ingest cache without hashing.
//!
//! Appends are in time order per series. A sample not after the series' last timestamp
//! (plus the alignment tolerance, see `align.rs`) is a duplicate: that is what a re-pull after
//! a crash delivers, and dropping it makes re-ingest harmless. The last timestamp of a
//! series new to the head comes from its last block, so duplicates of flushed samples are
//! dropped too.
//!
//! A chunk is cut when a sample falls in a later window (windows are aligned to the epoch,
//! so all series cut together), when it is full, or when a flush closes windows that ended.
//! Closed chunks wait in their shard's `pending` list, readable, until a flush has made
//! them durable and drains them: a reader never misses a chunk that is being written.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hashbrown::HashMap;

use super::chunk::{self, ChunkError, ChunkWriter, PushError};
use super::index::SeriesId;
use crate::series::Sample;

/// Shards of the head; a power of two above the cores of a collector host.
pub const SHARDS: usize = 64;

/// A closed chunk waiting for a flush.
#[derive(Debug, Clone)]
pub struct ClosedChunk {
    /// Its series.
    pub series: SeriesId,
    /// Its last timestamp: the block key.
    pub max_ts: i64,
    /// Its bytes (`chunk.rs` layout); shared with a flush in progress.
    pub bytes: Arc<[u8]>,
}

/// What became of an appended sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Append {
    /// Stored.
    Added,
    /// Not after the series' last sample: dropped.
    Duplicate,
    /// Older than the store accepts (already rolled up): dropped.
    TooOld,
}

#[derive(Debug)]
struct SeriesHead {
    id: SeriesId,
    /// The last timestamp appended or flushed; `i64::MIN` for none.
    last_ts: i64,
    /// End of the open chunk's window (exclusive); meaningless while the chunk is empty.
    window_end: i64,
    chunk: ChunkWriter,
}

/// One shard: its series and its closed chunks.
#[derive(Debug, Default)]
pub struct HeadShard {
    series: Vec<SeriesHead>,
    slots: HashMap<SeriesId, u32>,
    pending: Vec<ClosedChunk>,
}

/// The whole head.
#[derive(Debug)]
pub struct Head {
    shards: Box<[Mutex<HeadShard>]>,
    window_ms: i64,
}

/// Samples and heap bytes held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadUsage {
    /// Series with a slot.
    pub series: usize,
    /// Samples in open and closed chunks.
    pub samples: usize,
    /// Estimated bytes.
    pub bytes: usize,
}

impl Head {
    /// An empty head cutting chunks every `window_ms`.
    pub fn new(window_ms: i64) -> Self {
        Head {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            window_ms,
        }
    }

    /// The shard of `host`'s series: FNV-1a of its id, so any caller finds it from the
    /// `host` label alone.
    pub fn shard_of_host(&self, host: &str) -> usize {
        let hash = host.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        (hash % self.shards.len() as u64) as usize
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Locks shard `i`. A panic elsewhere while holding it leaves consistent data (every
    /// mutation is a push or an in-place append), so a poisoned lock is used as is.
    pub fn lock(&self, i: usize) -> MutexGuard<'_, HeadShard> {
        self.shards[i % self.shards.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The chunk window.
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// Usage summed over shards (locks each in turn).
    pub fn usage(&self) -> HeadUsage {
        let mut total = HeadUsage::default();
        for i in 0..self.shards.len() {
            let u = self.lock(i).usage();
            total.series += u.series;
            total.samples += u.samples;
            total.bytes += u.bytes;
        }
        total
    }
}

impl HeadShard {
    /// The slot of series `id`, if it has one.
    pub fn slot(&self, id: SeriesId) -> Option<u32> {
        self.slots.get(&id).copied()
    }

    /// The slot of series `id`, created with `last_ts` (the last durable timestamp) if new.
    pub fn add(&mut self, id: SeriesId, last_ts: Option<i64>) -> u32 {
        if let Some(slot) = self.slot(id) {
            return slot;
        }
        let slot = self.series.len() as u32;
        self.series.push(SeriesHead {
            id,
            last_ts: last_ts.unwrap_or(i64::MIN),
            window_end: i64::MIN,
            chunk: ChunkWriter::new(),
        });
        self.slots.insert(id, slot);
        slot
    }

    /// Appends a sample to the series in `slot`. `tolerance_ms` widens the duplicate test;
    /// `floor` is the oldest timestamp accepted.
    #[inline]
    pub fn append(
        &mut self,
        slot: u32,
        ts: i64,
        value: f64,
        window_ms: i64,
        tolerance_ms: i64,
        floor: i64,
    ) -> Append {
        let Some(s) = self.series.get_mut(slot as usize) else {
            return Append::Duplicate;
        };
        if ts <= s.last_ts.saturating_add(tolerance_ms) {
            return Append::Duplicate;
        }
        if ts < floor {
            return Append::TooOld;
        }
        if !s.chunk.is_empty() && ts >= s.window_end {
            close(s, &mut self.pending);
        }
        if s.chunk.is_empty() {
            s.window_end = ts
                .div_euclid(window_ms)
                .saturating_mul(window_ms)
                .saturating_add(window_ms);
        }
        if let Err(PushError::Full) = s.chunk.push(ts, value) {
            close(s, &mut self.pending);
            // An empty chunk takes any timestamp.
            let _ = s.chunk.push(ts, value);
        }
        s.last_ts = ts;
        Append::Added
    }

    /// Closes every open chunk whose window ends at or before `boundary`.
    pub fn close_before(&mut self, boundary: i64) {
        for s in &mut self.series {
            if !s.chunk.is_empty() && s.window_end <= boundary {
                close(s, &mut self.pending);
            }
        }
    }

    /// Closes every open chunk.
    pub fn close_all(&mut self) {
        self.close_before(i64::MAX);
    }

    /// The closed chunks waiting for a flush, oldest first per series.
    pub fn pending(&self) -> &[ClosedChunk] {
        &self.pending
    }

    /// Forgets the first `n` closed chunks, once they are durable.
    pub fn drain_pending(&mut self, n: usize) {
        self.pending.drain(..n.min(self.pending.len()));
    }

    /// For each of `ids` held here, calls `each(id, samples)` with its samples in
    /// `start..=end` (closed chunks, then the open one; oldest first).
    ///
    /// # Errors
    /// A [`ChunkError`] if a chunk does not decode (a bug: they never left memory).
    pub fn read(
        &self,
        ids: &[SeriesId],
        start: i64,
        end: i64,
        mut each: impl FnMut(SeriesId, &mut Vec<Sample>),
    ) -> Result<(), ChunkError> {
        let mut closed: HashMap<SeriesId, Vec<usize>> = HashMap::new();
        if !self.pending.is_empty() {
            for (i, c) in self.pending.iter().enumerate() {
                closed.entry(c.series).or_default().push(i);
            }
        }
        let mut out = Vec::new();
        for &id in ids {
            let Some(slot) = self.slot(id) else { continue };
            out.clear();
            for &i in closed.get(&id).map_or(&[][..], |v| &v[..]) {
                collect(chunk::decode(&self.pending[i].bytes)?, start, end, &mut out)?;
            }
            collect(
                self.series[slot as usize].chunk.iter(),
                start,
                end,
                &mut out,
            )?;
            each(id, &mut out);
        }
        Ok(())
    }

    fn usage(&self) -> HeadUsage {
        let mut u = HeadUsage {
            series: self.series.len(),
            samples: 0,
            bytes: self.series.capacity() * std::mem::size_of::<SeriesHead>()
                + self.slots.capacity() * 9
                + self.pending.capacity() * std::mem::size_of::<ClosedChunk>(),
        };
        for s in &self.series {
            u.samples += s.chunk.len();
            u.bytes += s.chunk.heap_bytes();
        }
        for c in &self.pending {
            u.samples += c
                .bytes
                .get(..2)
                .map_or(0, |n| usize::from(u16::from_le_bytes([n[0], n[1]])));
            u.bytes += c.bytes.len() + 16;
        }
        u
    }
}

fn close(s: &mut SeriesHead, pending: &mut Vec<ClosedChunk>) {
    if let (Some(bytes), Some(max_ts)) = (s.chunk.finish(), s.chunk.last_ts()) {
        pending.push(ClosedChunk {
            series: s.id,
            max_ts,
            bytes: bytes.into(),
        });
    }
    s.chunk.clear();
}

fn collect<'a>(
    samples: impl Iterator<Item = Result<Sample, ChunkError>> + 'a,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<(), ChunkError> {
    for sample in samples {
        let sample = sample?;
        if sample.timestamp_ms > end {
            break;
        }
        if sample.timestamp_ms >= start {
            out.push(sample);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 1_000;

    fn read_all(shard: &HeadShard, id: SeriesId) -> Vec<i64> {
        let mut got = Vec::new();
        shard
            .read(&[id], i64::MIN, i64::MAX, |_, s| {
                got.extend(s.iter().map(|s| s.timestamp_ms))
            })
            .unwrap();
        got
    }

    #[test]
    fn duplicates_and_old_samples_are_dropped() {
        let mut shard = HeadShard::default();
        let slot = shard.add(1, Some(100));
        assert_eq!(shard.append(slot, 100, 1.0, W, 0, 0), Append::Duplicate);
        assert_eq!(shard.append(slot, 101, 1.0, W, 0, 0), Append::Added);
        assert_eq!(shard.append(slot, 101, 2.0, W, 0, 0), Append::Duplicate);
        assert_eq!(shard.append(slot, 103, 2.0, W, 2, 0), Append::Duplicate);
        assert_eq!(shard.append(slot, 104, 2.0, W, 2, 0), Append::Added);
        let other = shard.add(2, None);
        assert_eq!(shard.append(other, 5, 2.0, W, 0, 10), Append::TooOld);
        assert_eq!(read_all(&shard, 1), [101, 104]);
    }

    #[test]
    fn chunks_are_cut_at_window_boundaries_and_stay_readable() {
        let mut shard = HeadShard::default();
        let slot = shard.add(1, None);
        for t in [10, 500, 999, 1_000, 1_500, 2_100] {
            assert_eq!(
                shard.append(slot, t, t as f64, W, 0, i64::MIN),
                Append::Added
            );
        }
        // Windows [0, 1000) and [1000, 2000) closed by later samples.
        let maxes: Vec<i64> = shard.pending().iter().map(|c| c.max_ts).collect();
        assert_eq!(maxes, [999, 1_500]);
        assert_eq!(read_all(&shard, 1), [10, 500, 999, 1_000, 1_500, 2_100]);
        shard.close_before(2_000);
        assert_eq!(
            shard.pending().len(),
            2,
            "the open window is not closed yet"
        );
        shard.close_before(3_000);
        assert_eq!(shard.pending().len(), 3);
        shard.drain_pending(2);
        assert_eq!(read_all(&shard, 1), [2_100]);
        assert_eq!(shard.usage().samples, 1);
    }
}
