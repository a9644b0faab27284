//! The append-only audit log: who changed what, where, and how it went.
//!
//! Each entry is stored under the next sequence number in the `audit_log` tree and
//! flushed before the change is answered, and also written as a log line with the
//! `audit` target (for a log shipper). Nothing here updates or removes an entry.

use std::collections::BTreeMap;
use std::sync::Mutex;

use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};

/// The tree the log lives in.
const TREE: &str = "audit_log";

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its sequence number, from 1.
    pub seq: u64,
    /// When, in ms since the Unix epoch.
    pub at_unix_ms: u64,
    /// Who: the token's name (or `token ID`).
    pub actor: String,
    /// The token's role.
    pub role: String,
    /// What, as `<resource>.<verb>` (`backup.restore`).
    pub action: String,
    /// Where: the host, or the object acted on.
    pub target: String,
    /// The action's parameters and outcome, by name.
    pub detail: BTreeMap<String, String>,
}

impl Record for AuditEntry {
    const SCHEMA: u8 = 1;
}

/// The audit log over the collector's store.
#[derive(Debug)]
pub struct AuditLog {
    store: Store,
    tree: Tree<u64, AuditEntry>,
    /// Held while a sequence number is taken and written.
    append: Mutex<()>,
}

impl AuditLog {
    /// Opens the `audit_log` tree. Blocking.
    ///
    /// # Errors
    /// A store error naming the tree.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            store: store.clone(),
            tree: store.tree(TREE)?,
            append: Mutex::new(()),
        })
    }

    /// Appends `entry` (its `seq` is assigned here) and flushes: once this returns the
    /// entry survives a crash. Blocking.
    ///
    /// # Errors
    /// A store error; then the entry may be missing.
    pub fn append(&self, mut entry: AuditEntry) -> Result<AuditEntry, StoreError> {
        {
            let _held = self
                .append
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            entry.seq = self.tree.last()?.map_or(1, |(seq, _)| seq + 1);
            self.tree.insert(&entry.seq, &entry)?;
        }
        self.store.flush()?;
        tracing::info!(
            target: "audit",
            seq = entry.seq,
            actor = %entry.actor,
            role = %entry.role,
            action = %entry.action,
            target_object = %entry.target,
            detail = ?entry.detail,
            "audit"
        );
        Ok(entry)
    }

    /// The newest `limit` entries, newest first. Blocking.
    ///
    /// # Errors
    /// A store error.
    pub fn recent(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.tree
            .iter()
            .rev()
            .take(limit)
            .map(|entry| entry.map(|(_, e)| e))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_shared::store::StoreOptions;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            seq: 0,
            at_unix_ms: 1,
            actor: "ops".to_owned(),
            role: "operator".to_owned(),
            action: action.to_owned(),
            target: "web1".to_owned(),
            detail: BTreeMap::new(),
        }
    }

    #[test]
    fn appends_in_sequence_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        {
            let store = Store::open(&path, StoreOptions::collector()).unwrap();
            let log = AuditLog::open(&store).unwrap();
            assert_eq!(log.append(entry("a")).unwrap().seq, 1);
            assert_eq!(log.append(entry("b")).unwrap().seq, 2);
        }
        let store = Store::open(&path, StoreOptions::collector()).unwrap();
        let log = AuditLog::open(&store).unwrap();
        assert_eq!(log.append(entry("c")).unwrap().seq, 3);
        let actions: Vec<String> = log
            .recent(2)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["c", "b"]);
    }
}
