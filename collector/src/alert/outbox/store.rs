//! What the outbox stores, and the in-memory index of it.
//!
//! Tree `alert_outbox` (through `muster_shared::store`): key = the entry's id, a `u64`
//! big endian (so iteration is id order, oldest first); value = an [`OutboxEntry`]
//! record (schema byte, then bincode). Ids grow monotonically; the next one is restored
//! from the last key at open. A delivered entry is removed, so the tree holds only
//! entries waiting for delivery (`pending`) and dead letters (`dead`).
//!
//! The [`Index`] mirrors the tree in memory (ids by receiver for pending entries, dead
//! letters with their time), so a worker finds its next entry without scanning, and the
//! entry gauge is a count. It is built from the tree at open; afterwards every write to
//! the tree is followed by the same change to the index, under the outbox's writer lock
//! (before the flush, so a failed flush leaves them agreeing).

use std::collections::{BTreeMap, BTreeSet};

use muster_shared::store::{Record, StoreError, Tree};
use serde::{Deserialize, Serialize};

use crate::alert::model::Notification;
use crate::alert::notify::FailureReason;

/// The sled tree of the outbox.
pub const TREE: &str = "alert_outbox";

/// Where an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    /// Waiting for (another) attempt.
    Pending,
    /// Given up: a permanent failure, failures for longer than `dead_letter_after`, or an
    /// unknown receiver. Kept for `dead_letter_retention`, until retried or deleted.
    Dead,
}

impl EntryState {
    /// `pending` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Pending => "pending",
            EntryState::Dead => "dead",
        }
    }
}

/// One notification in the outbox. Times are ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Its id: the order of delivery to its receiver.
    pub id: u64,
    /// What to deliver, to `notification.receiver`. `notification.group_key` is stable
    /// across the notifications of a group, so a receiver can deduplicate redeliveries.
    pub notification: Notification,
    /// Pending or dead.
    pub state: EntryState,
    /// Attempts so far.
    pub attempts: u32,
    /// When it entered the queue (enqueued, or put back by `retry_dead`).
    pub queued_at_ms: u64,
    /// When it was first attempted.
    pub first_attempt_ms: Option<u64>,
    /// When it was last attempted.
    pub last_attempt_ms: Option<u64>,
    /// Not attempted before this.
    pub next_attempt_ms: u64,
    /// The last failure's text (no secret in it).
    pub last_error: Option<String>,
    /// The last failure's reason.
    pub last_reason: Option<FailureReason>,
    /// When it became a dead letter.
    pub dead_at_ms: Option<u64>,
}

impl Record for OutboxEntry {
    const SCHEMA: u8 = 1;
}

impl OutboxEntry {
    /// A new pending entry, due at once.
    pub fn pending(id: u64, notification: Notification, now_ms: u64) -> Self {
        Self {
            id,
            notification,
            state: EntryState::Pending,
            attempts: 0,
            queued_at_ms: now_ms,
            first_attempt_ms: None,
            last_attempt_ms: None,
            next_attempt_ms: now_ms,
            last_error: None,
            last_reason: None,
            dead_at_ms: None,
        }
    }

    /// This entry as a dead letter since `now_ms`, for `reason`.
    pub fn into_dead(mut self, reason: FailureReason, error: String, now_ms: u64) -> Self {
        self.state = EntryState::Dead;
        self.last_reason = Some(reason);
        self.last_error = Some(error);
        self.dead_at_ms = Some(now_ms);
        self
    }

    /// The receiver it is for.
    pub fn receiver(&self) -> &str {
        &self.notification.receiver
    }
}

/// Which entries [`super::Outbox::list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryFilter {
    /// Waiting for delivery.
    Pending,
    /// Dead letters.
    Dead,
    /// Both.
    All,
}

impl EntryFilter {
    /// Whether `entry` passes.
    pub fn matches(self, entry: &OutboxEntry) -> bool {
        match self {
            EntryFilter::Pending => entry.state == EntryState::Pending,
            EntryFilter::Dead => entry.state == EntryState::Dead,
            EntryFilter::All => true,
        }
    }
}

/// The tree's entries in memory: pending ids per receiver, dead letters by id.
#[derive(Debug, Default)]
pub struct Index {
    pending: BTreeMap<String, BTreeSet<u64>>,
    dead: BTreeMap<u64, u64>,
}

impl Index {
    /// Reads every entry of `tree` (blocking); also returns the highest id seen.
    ///
    /// # Errors
    /// A [`StoreError`] reading or decoding the tree.
    pub fn load(tree: &Tree<u64, OutboxEntry>) -> Result<(Self, u64), StoreError> {
        let mut index = Self::default();
        let mut last = 0;
        for item in tree.iter() {
            let (id, entry) = item?;
            last = last.max(id);
            index.insert(&entry);
        }
        Ok((index, last))
    }

    /// Adds (or moves) `entry` by its state.
    pub fn insert(&mut self, entry: &OutboxEntry) {
        self.remove(entry.id, entry.receiver());
        match entry.state {
            EntryState::Pending => {
                self.pending
                    .entry(entry.receiver().to_owned())
                    .or_default()
                    .insert(entry.id);
            }
            EntryState::Dead => {
                self.dead.insert(entry.id, entry.dead_at_ms.unwrap_or(0));
            }
        }
    }

    /// Forgets entry `id` of `receiver`.
    pub fn remove(&mut self, id: u64, receiver: &str) {
        if let Some(ids) = self.pending.get_mut(receiver) {
            ids.remove(&id);
            if ids.is_empty() {
                self.pending.remove(receiver);
            }
        }
        self.dead.remove(&id);
    }

    /// The oldest pending id of `receiver`.
    pub fn head(&self, receiver: &str) -> Option<u64> {
        self.pending.get(receiver)?.first().copied()
    }

    /// Receivers with pending entries.
    pub fn receivers(&self) -> impl Iterator<Item = &str> {
        self.pending.keys().map(String::as_str)
    }

    /// Pending ids of `receiver`, oldest first.
    pub fn pending_of(&self, receiver: &str) -> Vec<u64> {
        self.pending
            .get(receiver)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Dead letters that died before `before_ms`.
    pub fn dead_before(&self, before_ms: u64) -> Vec<u64> {
        self.dead
            .iter()
            .filter(|(_, at)| **at < before_ms)
            .map(|(id, _)| *id)
            .collect()
    }

    /// How many entries are pending and dead.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.pending.values().map(BTreeSet::len).sum(),
            self.dead.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::testkit;

    fn entry(id: u64, receiver: &str) -> OutboxEntry {
        let mut n = testkit::two_alerts();
        n.receiver = receiver.to_owned();
        OutboxEntry::pending(id, n, 1_000)
    }

    #[test]
    fn index_orders_pending_ids_per_receiver_and_moves_dead_letters() {
        let mut index = Index::default();
        for (id, receiver) in [(5, "a"), (2, "a"), (3, "b")] {
            index.insert(&entry(id, receiver));
        }
        assert_eq!(index.head("a"), Some(2));
        assert_eq!(index.head("b"), Some(3));
        assert_eq!(index.counts(), (3, 0));
        index.insert(&entry(2, "a").into_dead(FailureReason::ClientError, "x".into(), 7));
        assert_eq!(index.head("a"), Some(5));
        assert_eq!(index.counts(), (2, 1));
        assert_eq!(index.dead_before(8), vec![2]);
        assert!(index.dead_before(7).is_empty());
        index.remove(3, "b");
        assert_eq!(index.receivers().collect::<Vec<_>>(), ["a"]);
        assert_eq!(index.pending_of("a"), vec![5]);
    }

    #[test]
    fn entries_round_trip_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = muster_shared::store::Store::open(
            dir.path(),
            muster_shared::store::StoreOptions::agent(),
        )
        .unwrap();
        let tree = store.tree::<u64, OutboxEntry>(TREE).unwrap();
        let dead = entry(9, "b").into_dead(FailureReason::RejectedBody, "400".into(), 5);
        tree.insert(&1, &entry(1, "a")).unwrap();
        tree.insert(&9, &dead).unwrap();
        assert_eq!(tree.get(&9).unwrap(), Some(dead));
        let (index, last) = Index::load(&tree).unwrap();
        assert_eq!(last, 9);
        assert_eq!(index.counts(), (1, 1));
    }
}
