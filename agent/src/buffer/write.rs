//! Appending a round: stage under the state lock, write and commit without it, then
//! publish the round and apply the bounds.

use muster_shared::store::StoreError;

use super::dictionary::SERIES_GRACE_ROUNDS;
use super::record::{META_KEY, MetaRecord, RoundRecord, SeriesRecord};
use super::{Buffer, BufferError, Held, State, Writer, lock};

impl Buffer {
    pub(super) fn append_round(
        &self,
        timestamp_unix_ms: u64,
        values: &[(u32, f64)],
    ) -> Result<u64, BufferError> {
        let mut writer = lock(&self.writer);
        let writer = &mut *writer;

        // Stage: the round's number, its values (known ids, each once), the series to
        // define. The ids it uses count as used by `seq` from now on, so the collection
        // below cannot take them.
        let (seq, mut record, defs, meta) = {
            let mut state = lock(&self.state);
            let seq = state.newest_issued.saturating_add(1);
            writer.seen.clear();
            let mut kept = Vec::with_capacity(values.len());
            for &(id, value) in values {
                if writer.seen.insert(id) && state.dictionary.touch(id, seq) {
                    kept.push((id, value));
                }
            }
            let dropped = (values.len() - kept.len()) as u64;
            state.dropped_values += dropped;
            if dropped > 0 && !writer.dropping {
                tracing::warn!(
                    seq,
                    dropped,
                    "values with an unknown or repeated series id were dropped from the round"
                );
            }
            writer.dropping = dropped > 0;
            let meta = MetaRecord {
                last_seq: seq,
                next_series_id: state.dictionary.next_id(),
            };
            (seq, kept, state.dictionary.pending(), meta)
        };
        let record = RoundRecord::pack(timestamp_unix_ms, &mut record)
            .map_err(|source| BufferError::Encode { seq, source })?;

        self.write_round(seq, &record, &defs, &meta)?;

        // Committed: publish, then bound.
        let (evicted, collected) = {
            let mut state = lock(&self.state);
            state.dictionary.mark_written(defs.len());
            state.newest_issued = seq;
            let bytes = record.stored_len();
            state.held.push_back(Held {
                seq,
                timestamp_unix_ms,
                bytes,
            });
            state.round_bytes += bytes;
            let evicted = self.evict(&mut state, timestamp_unix_ms);
            let floor = state.floor();
            let collected = state.dictionary.collect(floor, seq, SERIES_GRACE_ROUNDS);
            (evicted, collected)
        };
        writer.unremoved_rounds.extend(evicted);
        writer.unremoved_series.extend(collected);
        self.remove_unheld(writer);
        Ok(seq)
    }

    /// Writes the new series, the round and the meta record, then flushes.
    fn write_round(
        &self,
        seq: u64,
        record: &RoundRecord,
        defs: &[(u32, SeriesRecord)],
        meta: &MetaRecord,
    ) -> Result<(), BufferError> {
        let write = |source: StoreError| BufferError::Write { seq, source };
        if !defs.is_empty() {
            let mut batch = self.series.batch();
            for (id, def) in defs {
                batch.insert(&u64::from(*id), def).map_err(write)?;
            }
            self.series.apply(batch).map_err(write)?;
        }
        // Batches rather than `insert`, which decodes the value it replaces (a round left
        // by a failed append, a meta record from another schema) and could fail on it.
        let mut batch = self.rounds.batch();
        batch.insert(&seq, record).map_err(write)?;
        self.rounds.apply(batch).map_err(write)?;
        let mut batch = self.meta.batch();
        batch.insert(&META_KEY.to_owned(), meta).map_err(write)?;
        self.meta.apply(batch).map_err(write)?;
        self.store
            .flush()
            .map_err(|source| BufferError::Commit { seq, source })?;
        Ok(())
    }

    /// Drops the oldest rounds from `state` while one breaks a bound, keeping the newest;
    /// returns their numbers, for removal from the store.
    fn evict(&self, state: &mut State, newest_timestamp_ms: u64) -> Vec<u64> {
        let mut evicted = Vec::new();
        while state.held.len() > 1 {
            let Some(oldest) = state.held.front().copied() else {
                break;
            };
            let too_old =
                newest_timestamp_ms.saturating_sub(oldest.timestamp_unix_ms) > self.max_age_ms;
            let too_big = state.round_bytes + state.dictionary.bytes() > self.max_bytes;
            if !too_old && !too_big {
                break;
            }
            state.held.pop_front();
            state.round_bytes -= oldest.bytes;
            state.evicted_rounds += 1;
            evicted.push(oldest.seq);
        }
        evicted
    }

    /// Removes evicted rounds, then collected series, from the store (one batch each, in
    /// that order, so a crash between them leaves nothing a held round needs missing).
    /// A failure is logged and retried with the next append: readers already skip them.
    fn remove_unheld(&self, writer: &mut Writer) {
        if !writer.unremoved_rounds.is_empty() {
            let mut batch = self.rounds.batch();
            for seq in &writer.unremoved_rounds {
                batch.remove(seq);
            }
            if let Err(err) = self.rounds.apply(batch) {
                tracing::warn!(error = %err, rounds = writer.unremoved_rounds.len(),
                    "cannot remove evicted rounds from the buffer; retrying with the next round");
                return;
            }
            writer.unremoved_rounds.clear();
        }
        if !writer.unremoved_series.is_empty() {
            let mut batch = self.series.batch();
            for id in &writer.unremoved_series {
                batch.remove(&u64::from(*id));
            }
            if let Err(err) = self.series.apply(batch) {
                tracing::warn!(error = %err, series = writer.unremoved_series.len(),
                    "cannot remove unused series from the buffer; retrying with the next round");
                return;
            }
            writer.unremoved_series.clear();
        }
    }
}
