//! Flushing: closed chunks become durable blocks, then durable cursors move.
//!
//! A flush with boundary `B` (the start of the window that `now - window_grace` falls in):
//!
//! 1. notes, for each host, the last round durable once windows before `B` are written
//!    (`cursor.rs`), *before* cutting, so every sample of those rounds is in a chunk that
//!    step 2 takes;
//! 2. closes every open chunk whose window ends by `B`, and takes every closed chunk,
//!    leaving them readable in the head;
//! 3. writes them to `tsdb_blocks` (batches of at most 32 MiB, so memory stays bounded at a
//!    window's end) and commits with [`Store::flush`](muster_shared::store::Store::flush);
//! 4. drops them from the head;
//! 5. writes the cursors that moved, in their own batch, and commits again.
//!
//! An error at 3 (a full disk) leaves the chunks in the head and the cursors where they
//! were; the next flush writes them again (rewriting a block that did reach the disk is
//! harmless: same key, same bytes). An error at 5 leaves the cursors behind durable
//! blocks, never ahead. A crash anywhere loses only head data, which the agents still
//! hold past the cursors.

use std::sync::Arc;

use super::block::{ChunkRecord, SeriesTimeKey};
use super::error::TsdbError;
use super::head::ClosedChunk;
use super::ingest::HostState;
use super::{Tsdb, lock, window_start};

/// Largest sled batch a flush writes, in chunk bytes.
const BATCH_BYTES: usize = 32 << 20;

/// What one flush wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Chunks written as blocks.
    pub chunks: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Hosts whose durable cursor moved.
    pub cursors: usize,
}

impl Tsdb {
    /// Writes every chunk whose window ended at least `window_grace` before `now_ms`, then
    /// moves the durable cursors. Call it every interval or so (it is cheap when nothing
    /// closed); it blocks for two fsyncs when something did.
    ///
    /// # Errors
    /// [`TsdbError::Flush`] (blocks not committed; the head keeps them) and
    /// [`TsdbError::Cursors`] (blocks committed, cursors not moved). Both are retryable by
    /// the next flush.
    pub fn flush(&self, now_ms: i64) -> Result<FlushStats, TsdbError> {
        let since = now_ms.saturating_sub(self.options.grace_ms);
        self.flush_before(window_start(since, self.options.window_ms))
    }

    /// Writes everything in the head, open chunks included, and moves every cursor to the
    /// last round ingested: for shutdown. Ingest may go on afterwards; the chunks it starts
    /// sit beside the early-closed ones (blocks are keyed by their last timestamp, so a
    /// window may hold several), and re-ingested samples are still dropped as duplicates.
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

        let bytes = self.write_blocks(&chunks)?;
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
            self.faults.check("cursors").map_err(failed)?;
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

    /// Writes `chunks` as blocks and commits them; returns their bytes.
    fn write_blocks(&self, chunks: &[ClosedChunk]) -> Result<usize, TsdbError> {
        if chunks.is_empty() {
            return Ok(0);
        }
        let failed = |step, source| TsdbError::Flush {
            chunks: chunks.len(),
            step,
            source,
        };
        self.faults
            .check("blocks")
            .map_err(|e| failed("writing blocks", e))?;
        let (mut total, mut in_batch) = (0usize, 0usize);
        let mut batch = self.blocks.batch();
        for c in chunks {
            let key = SeriesTimeKey {
                series: c.series,
                ts: c.max_ts,
            };
            let record = ChunkRecord {
                chunk: c.bytes.to_vec(),
            };
            batch
                .insert(&key, &record)
                .map_err(|e| failed("encoding blocks", e))?;
            total += c.bytes.len();
            in_batch += c.bytes.len();
            if in_batch >= BATCH_BYTES {
                let full = std::mem::replace(&mut batch, self.blocks.batch());
                self.blocks
                    .apply(full)
                    .map_err(|e| failed("writing blocks", e))?;
                in_batch = 0;
            }
        }
        self.blocks
            .apply(batch)
            .map_err(|e| failed("writing blocks", e))?;
        self.store
            .flush()
            .map_err(|e| failed("committing blocks", e))?;
        Ok(total)
    }
}
