//! Durable cursors: for each host, the sequence number up to which every ingested round is
//! in durable blocks. After a crash the collector asks the agent for what comes after it.
//!
//! # The rule
//!
//! A flush with boundary `B` (a window start) writes every chunk whose window ends by `B`,
//! so once it is committed every sample with a timestamp before `B` is durable. A round is
//! durable when its timestamp is before `B`; a cursor may pass a round only when it and
//! every round before it are durable (an agent's clock may step back, so a later round can
//! be older). Each host's rounds are therefore tracked by their running maximum timestamp,
//! which only grows: the rounds up to the last one whose running maximum is before `B` are
//! all durable. Only the window of that maximum matters against a window boundary, so
//! consecutive rounds in one window collapse into one entry: a host holds one entry per
//! window with pending rounds, not one per round.
//!
//! The cursor is written after the blocks' commit, in its own batch and commit, so it is
//! never ahead of durable blocks; if that second write fails or the process dies between the
//! two, the cursor stays behind and re-ingest drops the duplicates.
//!
//! A batch without rounds moves the cursor to its `next_after` (a gap the agent reported,
//! or nothing new) once the rounds before it are durable.
//!
//! # On disk (tree `tsdb_cursors`, schema 1)
//!
//! Key: the host id (UTF-8). Value: [`CursorRecord`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};

use super::error::TsdbError;
use super::{lock, window_start};

/// A host's durable cursor as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorRecord {
    /// The last sequence number whose round, and every one before it, is durable.
    pub seq: u64,
}

impl Record for CursorRecord {
    const SCHEMA: u8 = 1;
}

/// One host's rounds ingested since its cursor, collapsed by window (see the module doc).
#[derive(Debug, Default)]
pub struct PendingRounds {
    /// (window of the running maximum timestamp, last sequence number in it), oldest first.
    entries: VecDeque<(i64, u64)>,
    /// Largest round timestamp seen; `None` before the first.
    running_max: Option<i64>,
}

impl PendingRounds {
    /// Notes a round stored with timestamp `ts`.
    pub fn record(&mut self, seq: u64, ts: i64, window_ms: i64) {
        let max = self.running_max.map_or(ts, |m| m.max(ts));
        self.running_max = Some(max);
        self.push(window_start(max, window_ms), seq);
    }

    /// Notes a sequence number without samples (a batch with no rounds): durable as soon as
    /// the rounds before it are.
    pub fn record_empty(&mut self, seq: u64, window_ms: i64) {
        let window = self
            .running_max
            .map_or(i64::MIN, |m| window_start(m, window_ms));
        self.push(window, seq);
    }

    fn push(&mut self, window: i64, seq: u64) {
        match self.entries.back_mut() {
            Some((w, s)) if *w == window => *s = (*s).max(seq),
            _ => self.entries.push_back((window, seq)),
        }
    }

    /// The last sequence number durable once every chunk of windows before `boundary` is.
    pub fn durable_through(&self, boundary: i64) -> Option<u64> {
        self.entries
            .iter()
            .take_while(|(w, _)| *w < boundary)
            .map(|&(_, s)| s)
            .max()
    }

    /// Forgets the entries a committed cursor at `seq` covers.
    pub fn release(&mut self, boundary: i64, seq: u64) {
        while let Some(&(w, s)) = self.entries.front() {
            if w < boundary && s <= seq {
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }

    /// Entries held (one per window with pending rounds).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The durable cursors: on disk and their in-memory copy.
#[derive(Debug)]
pub struct Cursors {
    tree: Tree<String, CursorRecord>,
    durable: Mutex<HashMap<String, u64>>,
}

impl Cursors {
    /// Loads every host's cursor.
    ///
    /// # Errors
    /// [`TsdbError::Open`].
    pub fn open(store: &Store) -> Result<Cursors, TsdbError> {
        let open = |source| TsdbError::Open {
            what: "durable cursors",
            source,
        };
        let tree = store.tree("tsdb_cursors").map_err(open)?;
        let mut durable = HashMap::new();
        for entry in tree.iter() {
            let (host, record): (String, CursorRecord) = entry.map_err(open)?;
            durable.insert(host, record.seq);
        }
        Ok(Cursors {
            tree,
            durable: Mutex::new(durable),
        })
    }

    /// The durable cursor of `host`; 0 when none.
    pub fn get(&self, host: &str) -> u64 {
        lock(&self.durable).get(host).copied().unwrap_or(0)
    }

    /// Of `proposed`, the cursors that move forward.
    pub fn advancing(&self, proposed: Vec<(String, u64)>) -> Vec<(String, u64)> {
        let durable = lock(&self.durable);
        proposed
            .into_iter()
            .filter(|(host, seq)| durable.get(host).is_none_or(|d| seq > d))
            .collect()
    }

    /// Writes `updates` in one batch (not yet committed: the caller flushes the store).
    ///
    /// # Errors
    /// The store's error; nothing was written.
    pub fn write(&self, updates: &[(String, u64)]) -> Result<(), StoreError> {
        let mut batch = self.tree.batch();
        for (host, seq) in updates {
            batch.insert(host, &CursorRecord { seq: *seq })?;
        }
        self.tree.apply(batch)
    }

    /// Makes committed `updates` visible to [`Cursors::get`].
    pub fn committed(&self, updates: &[(String, u64)]) {
        let mut durable = lock(&self.durable);
        for (host, seq) in updates {
            let entry = durable.entry(host.clone()).or_insert(0);
            *entry = (*entry).max(*seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 100;

    #[test]
    fn rounds_collapse_by_window_and_become_durable_in_order() {
        let mut p = PendingRounds::default();
        for (seq, ts) in [(1, 10), (2, 50), (3, 110), (4, 150), (5, 210)] {
            p.record(seq, ts, W);
        }
        assert_eq!(p.len(), 3);
        assert_eq!(p.durable_through(0), None);
        assert_eq!(p.durable_through(100), Some(2));
        assert_eq!(p.durable_through(200), Some(4));
        p.release(200, 4);
        assert_eq!(p.len(), 1);
        assert_eq!(p.durable_through(300), Some(5));
    }

    #[test]
    fn a_clock_step_back_holds_the_cursor_until_the_later_round_is_durable() {
        let mut p = PendingRounds::default();
        p.record(1, 250, W); // stamped ahead
        p.record(2, 20, W); // the clock stepped back
        // Round 2 is in an old window, but round 1 is not durable before 300.
        assert_eq!(p.durable_through(100), None);
        assert_eq!(p.durable_through(300), Some(2));
    }

    #[test]
    fn an_empty_batch_moves_the_cursor_after_the_rounds_before_it() {
        let mut p = PendingRounds::default();
        p.record_empty(7, W);
        assert_eq!(p.durable_through(i64::MIN + 1), Some(7));
        p.record(8, 150, W);
        p.record_empty(12, W);
        assert_eq!(p.durable_through(100), Some(7));
        assert_eq!(p.durable_through(200), Some(12));
    }
}
