//! What each set's runs did: the latest in memory for status and series, the last
//! [`KEPT_RUNS`] per set in the agent's store (so a restarted agent still knows its last
//! success, and the collector's BackupOverdue rule does not fire on a restart).

use std::collections::HashMap;
use std::sync::Mutex;

use muster_shared::protocol::backups::BackupRun;
use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};

/// Runs kept per set.
pub const KEPT_RUNS: usize = 100;

/// A run as stored, with the repository's figures after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run.
    pub run: BackupRun,
    /// Snapshots in the repository after it.
    pub snapshots: u64,
    /// Bytes of the repository's packs after it.
    pub repository_bytes: u64,
}

impl Record for RunRecord {
    const SCHEMA: u8 = 1;
}

/// Latest and last-successful run of each set.
#[derive(Debug, Clone, Default)]
pub struct SetState {
    /// The latest run.
    pub last: Option<RunRecord>,
    /// When the latest successful run finished (ms since the epoch).
    pub last_success_unix_ms: Option<u64>,
}

/// The runs of every set.
#[derive(Debug)]
pub struct RunBook {
    tree: Tree<Vec<u8>, RunRecord>,
    latest: Mutex<HashMap<String, SetState>>,
}

fn key(set: &str, started_ms: u64) -> Vec<u8> {
    let mut k = set.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&started_ms.to_be_bytes());
    k
}

impl RunBook {
    /// Opens the book in `store` and loads each set's latest state.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let tree: Tree<Vec<u8>, RunRecord> = store.tree("backup_runs")?;
        let mut latest: HashMap<String, SetState> = HashMap::new();
        for item in tree.iter() {
            let (k, rec) = item?;
            let Some(end) = k.iter().position(|&b| b == 0) else {
                continue;
            };
            let set = String::from_utf8_lossy(&k[..end]).into_owned();
            let state = latest.entry(set).or_default();
            if rec.run.success {
                let done = rec.run.started_unix_ms + (rec.run.duration_seconds * 1000.0) as u64;
                state.last_success_unix_ms =
                    Some(state.last_success_unix_ms.map_or(done, |d| d.max(done)));
            }
            // Keys sort by start time within a set: the last one read is the latest.
            state.last = Some(rec);
        }
        Ok(RunBook {
            tree,
            latest: Mutex::new(latest),
        })
    }

    /// Records a finished run of `set` and trims old ones.
    pub fn record(&self, set: &str, rec: RunRecord) -> Result<(), StoreError> {
        self.tree.insert(&key(set, rec.run.started_unix_ms), &rec)?;
        let mut prefix = set.as_bytes().to_vec();
        prefix.push(0);
        let keys: Vec<Vec<u8>> = self
            .tree
            .scan_prefix(&prefix)
            .filter_map(Result::ok)
            .map(|(k, _)| k)
            .collect();
        if keys.len() > KEPT_RUNS {
            let mut batch = self.tree.batch();
            for k in &keys[..keys.len() - KEPT_RUNS] {
                batch.remove(k);
            }
            self.tree.apply(batch)?;
        }
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let state = latest.entry(set.to_string()).or_default();
        if rec.run.success {
            state.last_success_unix_ms =
                Some(rec.run.started_unix_ms + (rec.run.duration_seconds * 1000.0) as u64);
        }
        state.last = Some(rec);
        Ok(())
    }

    /// The state of `set`.
    pub fn state(&self, set: &str) -> SetState {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(set)
            .cloned()
            .unwrap_or_default()
    }

    /// The stored runs of `set`, oldest first.
    pub fn runs(&self, set: &str) -> Vec<RunRecord> {
        let mut prefix = set.as_bytes().to_vec();
        prefix.push(0);
        self.tree
            .scan_prefix(&prefix)
            .filter_map(Result::ok)
            .map(|(_, v)| v)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(started: u64, success: bool) -> RunRecord {
        RunRecord {
            run: BackupRun {
                started_unix_ms: started,
                duration_seconds: 1.0,
                success,
                snapshot: None,
                files: 0,
                total_bytes: 0,
                bytes_added: 0,
                errors: 0,
                message: String::new(),
                trigger: "schedule".into(),
            },
            snapshots: 0,
            repository_bytes: 0,
        }
    }

    #[test]
    fn latest_and_last_success_survive_a_reopen_and_old_runs_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), muster_shared::store::StoreOptions::agent()).unwrap();
        let book = RunBook::open(&store).unwrap();
        for i in 0..(KEPT_RUNS as u64 + 5) {
            book.record("db", run(1000 + i, i != KEPT_RUNS as u64 + 4))
                .unwrap();
        }
        book.record("etc", run(5, true)).unwrap();
        assert_eq!(book.runs("db").len(), KEPT_RUNS);
        drop(book);
        let book = RunBook::open(&store).unwrap();
        let db = book.state("db");
        assert!(!db.last.unwrap().run.success);
        assert_eq!(
            db.last_success_unix_ms,
            Some(1000 + KEPT_RUNS as u64 + 3 + 1000)
        );
        assert!(book.state("etc").last.unwrap().run.success);
        assert!(book.state("none").last.is_none());
    }
}
