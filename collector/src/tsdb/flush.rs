//! Flushing: closed chunks become one durable segment, then durable cursors move.
//!
//! A flush with boundary `B` (the start of the window that `now - window_grace` falls in):
//!
//! 1. notes, for each host, the last round durable once windows before `B` are written
//!    (`cursor.rs`), *before* cutting, so every sample of those rounds is in a chunk that
//!    step 2 takes;
//! 2. closes every open chunk whose window ends by `B`, and takes every closed chunk,
//!    leaving them readable in the head;
//! 3. writes them, sorted by (series, time), as one segment file (`segment/writer.rs`:
//!    temporary name, fsync, rename, directory fsync) and adds it to the set readers see;
//! 4. drops them from the head;
//! 5. writes the cursors that moved, in one sled batch, and commits with
//!    [`Store::flush`](muster_shared::store::Store::flush).
//!
//! An error at 3 (a full disk) leaves the chunks in the head and the cursors where they
//! were; the next flush writes them again (a segment that did reach the disk before the
//! error would hold them twice, which reads and merges drop). An error at 5 leaves the
//! cursors behind durable segments, never ahead. A crash anywhere loses only head data,
//! which the agents still hold past the cursors; a crash inside 3 leaves a `.tmp` file
//! that the next open removes.

use std::sync::Arc;

use super::error::TsdbError;
use super::head::ClosedChunk;
use super::ingest::HostState;
use super::segment::{SegmentError, chunk_first_ts};
use super::{Tsdb, lock, window_start};

/// What one flush wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Chunks written.
    pub chunks: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Hosts whose durable cursor moved.
    pub cursors: usize,
}

impl Tsdb {
    /// Writes every chunk whose window ended at least `window_grace` before `now_ms`, then
    /// moves the durable cursors. Call it every interval or so (it is cheap when nothing
    /// closed); it blocks for three fsyncs when something did.
    ///
    /// # Errors
    /// [`TsdbError::Flush`] (segment not written; the head keeps the chunks) and
    /// [`TsdbError::Cursors`] (segment written, cursors not moved). Both are retryable by
    /// the next flush.
    pub fn flush(&self, now_ms: i64) -> Result<FlushStats, TsdbError> {
        let since = now_ms.saturating_sub(self.options.grace_ms);
        self.flush_before(window_start(since, self.options.window_ms))
    }

    /// Writes everything in the head, open chunks included, and moves every cursor to the
    /// last round ingested: for shutdown. Ingest may go on afterwards; the chunks it starts
    /// sit beside the early-closed ones (a window may hold several chunks of a series), and
    /// re-ingested samples are still dropped as duplicates.
    ///
    /// # Errors
    /// As [`Tsdb::flush`].
    pub fn flush_all(&self) -> Result<FlushStats, TsdbError> {
        self.flush_before(i64::MAX)
    }

    fn flush_before(&self, boundary: i64) -> Result<FlushStats, TsdbError> {
        let _one_at_a_time = lock(&self.flush_lock);
        let hosts: Vec<(String, Arc<HostState>)> = self
            .hosts_read()
            .iter()
            .map(|(h, s)| (h.to_string(), Arc::clone(s)))
            .collect();
        let marks: Vec<(String, u64, Arc<HostState>)> = hosts
            .into_iter()
            .filter_map(|(host, state)| {
                let seq = lock(&state.rounds).durable_through(boundary)?;
                Some((host, seq, state))
            })
            .collect();

        let mut taken = Vec::with_capacity(self.head.shard_count());
        let mut chunks: Vec<ClosedChunk> = Vec::new();
        for i in 0..self.head.shard_count() {
            let mut shard = self.head.lock(i);
            shard.close_before(boundary);
            taken.push(shard.pending().len());
            chunks.extend(shard.pending().iter().cloned());
        }

        let bytes = self.write_segment(&mut chunks)?;
        for (i, n) in taken.into_iter().enumerate() {
            if n > 0 {
                self.head.lock(i).drain_pending(n);
            }
        }
        self.counters.add_blocks(chunks.len());

        let proposed = marks.iter().map(|(h, s, _)| (h.clone(), *s)).collect();
        let updates = self.cursors.advancing(proposed);
        if !updates.is_empty() {
            let failed = |source| TsdbError::Cursors {
                hosts: updates.len(),
                source,
            };
            self.faults.check_store("cursors").map_err(failed)?;
            self.cursors.write(&updates).map_err(failed)?;
            self.store.flush().map_err(failed)?;
            self.cursors.committed(&updates);
        }
        for (_, seq, state) in &marks {
            lock(&state.rounds).release(boundary, *seq);
        }
        Ok(FlushStats {
            chunks: chunks.len(),
            bytes,
            cursors: updates.len(),
        })
    }

    /// Writes `chunks` as one segment and adds it to the set; returns their bytes.
    fn write_segment(&self, chunks: &mut [ClosedChunk]) -> Result<usize, TsdbError> {
        if chunks.is_empty() {
            return Ok(0);
        }
        let count = chunks.len();
        let failed = |source| TsdbError::Flush {
            chunks: count,
            source,
        };
        if let Err(source) = self.faults.check("blocks") {
            return Err(failed(SegmentError::Io {
                op: "writing",
                path: self.blocks.dir().to_owned(),
                source,
            }));
        }
        // A shard's pending list is in time order per series; the sort interleaves shards.
        chunks.sort_by_key(|c| (c.series, c.max_ts));
        let mut writer = self.blocks.flush_writer().map_err(failed)?;
        let mut total = 0;
        for c in chunks.iter() {
            let first_ts = chunk_first_ts(&c.bytes).unwrap_or(c.max_ts);
            writer
                .push(c.series, first_ts, c.max_ts, &c.bytes)
                .map_err(failed)?;
            total += c.bytes.len();
        }
        let Some(path) = writer.finish().map_err(failed)? else {
            return Ok(0);
        };
        if let Err(source) = self.blocks.replace(std::slice::from_ref(&path), &[]) {
            // It does not read back: the next flush writes the chunks again.
            let _ = std::fs::remove_file(&path);
            return Err(failed(source));
        }
        Ok(total)
    }
}
