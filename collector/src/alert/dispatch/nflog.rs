//! The notification log ("nflog", Alertmanager's dedup stage): per receiver and group,
//! what was last sent and when, kept in sled so a restarted collector neither repeats an
//! unchanged group before its `repeat_interval` nor forgets to send a resolved notice.
//!
//! Layout: tree `alert_nflog`, key `receiver NUL group_key` (UTF-8), value [`NflogEntry`]
//! (schema 1). The whole log is held in memory as well (one entry per live group, plus
//! recent ones); writes gather in memory and reach sled in one batch per
//! [`NotificationLog::commit`].
//!
//! Interruption: an entry not yet committed (or committed but not flushed) is lost in a
//! crash, so the group's last notification is sent again after the restart: a duplicate,
//! never a loss, provided the notification itself was made durable (outbox written and
//! flushed) *before* the commit. The dispatcher documents that order.

use std::collections::{BTreeSet, HashMap, HashSet};

use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};

use crate::alert::labels::Fingerprint;

/// The sled tree of the notification log.
pub const TREE: &str = "alert_nflog";

/// How long an entry outlives its group by default: 5 days (Alertmanager's retention).
pub const DEFAULT_RETENTION_MS: u64 = 5 * 24 * 3_600_000;

/// What one receiver was last told about one group (schema 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NflogEntry {
    /// The receiver.
    pub receiver: String,
    /// The group's key.
    pub group_key: String,
    /// The alerts notified as firing, sorted.
    pub firing: Vec<Fingerprint>,
    /// The alerts notified as resolved, sorted.
    pub resolved: Vec<Fingerprint>,
    /// When (ms since the epoch).
    pub sent_at_ms: u64,
}

impl Record for NflogEntry {
    const SCHEMA: u8 = 1;
}

/// The in-memory log with its sled tree.
#[derive(Debug)]
pub struct NotificationLog {
    tree: Tree<String, NflogEntry>,
    entries: HashMap<String, NflogEntry>,
    /// Keys written or removed since the last commit.
    dirty: BTreeSet<String>,
}

fn key(receiver: &str, group_key: &str) -> String {
    format!("{receiver}\u{0}{group_key}")
}

impl NotificationLog {
    /// Opens the `alert_nflog` tree of `store` and reads it whole. An entry that does not
    /// decode is skipped with a warning (its group is then notified as new).
    ///
    /// # Errors
    /// [`StoreError`] when the tree cannot be opened or read.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let mut log = Self {
            tree: store.tree(TREE)?,
            entries: HashMap::new(),
            dirty: BTreeSet::new(),
        };
        log.reload()?;
        Ok(log)
    }

    /// Forgets what is in memory, uncommitted changes included, and reads the tree again.
    ///
    /// # Errors
    /// [`StoreError`] when the tree cannot be read; the log is then empty.
    pub fn reload(&mut self) -> Result<(), StoreError> {
        self.entries.clear();
        self.dirty.clear();
        for entry in self.tree.iter() {
            match entry {
                Ok((k, e)) => {
                    self.entries.insert(k, e);
                }
                Err(err @ StoreError::Backend { .. }) => return Err(err),
                Err(err) => {
                    tracing::warn!(error = %err, "skipping a notification log entry that does not decode")
                }
            }
        }
        Ok(())
    }

    /// The last entry for `receiver` and `group_key`.
    pub fn get(&self, receiver: &str, group_key: &str) -> Option<&NflogEntry> {
        self.entries.get(&key(receiver, group_key))
    }

    /// Records what was just sent (in memory; durable after [`Self::commit`] and a flush).
    pub fn record(&mut self, entry: NflogEntry) {
        let k = key(&entry.receiver, &entry.group_key);
        self.entries.insert(k.clone(), entry);
        self.dirty.insert(k);
    }

    /// Forgets entries sent more than `retention_ms` before `now_ms` whose group is not in
    /// `live` (pairs of receiver and group key).
    pub fn gc(&mut self, now_ms: u64, retention_ms: u64, live: &HashSet<(&str, &str)>) {
        let old: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.sent_at_ms.saturating_add(retention_ms) <= now_ms)
            .filter(|(_, e)| !live.contains(&(e.receiver.as_str(), e.group_key.as_str())))
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            self.entries.remove(&k);
            self.dirty.insert(k);
        }
    }

    /// Writes every change since the last commit in one batch; returns how many keys it
    /// wrote. On error the changes stay pending for the next commit.
    ///
    /// # Errors
    /// [`StoreError`] when the batch cannot be encoded or applied.
    pub fn commit(&mut self) -> Result<usize, StoreError> {
        if self.dirty.is_empty() {
            return Ok(0);
        }
        let mut batch = self.tree.batch();
        for k in &self.dirty {
            match self.entries.get(k) {
                Some(entry) => batch.insert(k, entry)?,
                None => batch.remove(k),
            }
        }
        self.tree.apply(batch)?;
        let written = self.dirty.len();
        self.dirty.clear();
        Ok(written)
    }

    /// Changes not yet committed.
    pub fn pending(&self) -> usize {
        self.dirty.len()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a group flush found to tell, after muting.
#[derive(Debug)]
pub(super) struct Found<'a> {
    pub firing: &'a BTreeSet<Fingerprint>,
    pub resolved: &'a BTreeSet<Fingerprint>,
    pub send_resolved: bool,
    pub repeat_interval_ms: u64,
    /// False when repeats are off (every firing alert is acknowledged).
    pub may_repeat: bool,
}

/// Whether the receiver must hear of the group now (Alertmanager's `DedupStage.needsUpdate`):
/// a firing alert it was not told of; every alert resolved after it was told of some
/// firing (sent even without `send_resolved`, to clear the log); a resolved alert it was
/// not told of, with `send_resolved`; or `repeat_interval` passed since the last send.
pub(super) fn needs_update(entry: Option<&NflogEntry>, found: &Found<'_>, now_ms: u64) -> bool {
    let Some(entry) = entry else {
        return !found.firing.is_empty();
    };
    if !found
        .firing
        .iter()
        .all(|fp| entry.firing.binary_search(fp).is_ok())
    {
        return true;
    }
    if found.firing.is_empty() {
        return !entry.firing.is_empty();
    }
    if found.send_resolved
        && !found
            .resolved
            .iter()
            .all(|fp| entry.resolved.binary_search(fp).is_ok())
    {
        return true;
    }
    found.may_repeat && entry.sent_at_ms.saturating_add(found.repeat_interval_ms) <= now_ms
}

#[cfg(test)]
mod tests {
    use muster_shared::store::StoreOptions;

    use super::*;

    fn set(fps: &[u64]) -> BTreeSet<Fingerprint> {
        fps.iter().map(|f| Fingerprint(*f)).collect()
    }

    fn entry(firing: &[u64], resolved: &[u64], at: u64) -> NflogEntry {
        NflogEntry {
            receiver: "r".to_owned(),
            group_key: "{}:{}".to_owned(),
            firing: firing.iter().map(|f| Fingerprint(*f)).collect(),
            resolved: resolved.iter().map(|f| Fingerprint(*f)).collect(),
            sent_at_ms: at,
        }
    }

    /// Name, last entry, firing, resolved, send_resolved, may_repeat, now, expected.
    type Case = (
        &'static str,
        Option<NflogEntry>,
        &'static [u64],
        &'static [u64],
        bool,
        bool,
        u64,
        bool,
    );

    #[test]
    fn dedups_like_alertmanager() {
        let cases: [Case; 11] = [
            ("never sent, firing", None, &[1], &[], true, true, 0, true),
            (
                "never sent, only resolved",
                None,
                &[],
                &[1],
                true,
                true,
                0,
                false,
            ),
            (
                "a new firing alert",
                Some(entry(&[1], &[], 0)),
                &[1, 2],
                &[],
                true,
                true,
                10,
                true,
            ),
            (
                "fewer firing",
                Some(entry(&[1, 2], &[], 0)),
                &[1],
                &[],
                false,
                true,
                10,
                false,
            ),
            (
                "all resolved",
                Some(entry(&[1], &[], 0)),
                &[],
                &[1],
                false,
                true,
                10,
                true,
            ),
            (
                "all resolved, told before",
                Some(entry(&[], &[1], 0)),
                &[],
                &[1],
                true,
                true,
                10,
                false,
            ),
            (
                "a new resolved",
                Some(entry(&[1, 2], &[], 0)),
                &[1],
                &[2],
                true,
                true,
                10,
                true,
            ),
            (
                "a new resolved, not wanted",
                Some(entry(&[1, 2], &[], 0)),
                &[1],
                &[2],
                false,
                true,
                10,
                false,
            ),
            (
                "repeat due",
                Some(entry(&[1], &[], 0)),
                &[1],
                &[],
                true,
                true,
                100,
                true,
            ),
            (
                "repeat not due",
                Some(entry(&[1], &[], 0)),
                &[1],
                &[],
                true,
                true,
                99,
                false,
            ),
            (
                "repeat due, all acknowledged",
                Some(entry(&[1], &[], 0)),
                &[1],
                &[],
                true,
                false,
                100,
                false,
            ),
        ];
        for (name, entry, firing, resolved, send_resolved, may_repeat, now, expected) in cases {
            let (firing, resolved) = (set(firing), set(resolved));
            let found = Found {
                firing: &firing,
                resolved: &resolved,
                send_resolved,
                repeat_interval_ms: 100,
                may_repeat,
            };
            assert_eq!(
                needs_update(entry.as_ref(), &found, now),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn entries_survive_a_reopen_and_gc_spares_live_groups() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
        let mut log = NotificationLog::open(&store).unwrap();
        log.record(entry(&[1], &[], 0));
        let mut other = entry(&[2], &[], 0);
        other.receiver = "s".to_owned();
        log.record(other.clone());
        assert_eq!(
            (log.pending(), log.commit().unwrap(), log.pending()),
            (2, 2, 0)
        );
        let live = HashSet::from([("s", "{}:{}")]);
        log.gc(DEFAULT_RETENTION_MS, DEFAULT_RETENTION_MS, &live);
        assert_eq!(log.commit().unwrap(), 1);
        store.flush().unwrap();
        drop(log);
        let log = NotificationLog::open(&store).unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log.get("s", "{}:{}"), Some(&other));
        assert_eq!(log.get("r", "{}:{}"), None);
    }
}
