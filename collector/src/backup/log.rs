//! The BackupLog: the history of each host's backup sets as the collector saw it.
//!
//! Two kinds of entry, per host and set, in one tree (`backup_log`):
//!
//! - a **job** the collector started (backup, verify, restore): written when it is
//!   started, with who asked, and rewritten with its final [`JobStatus`] when a poll sees it
//!   end;
//! - a **run** the agent reported in [`BackupSetStatus::last_run`], deduplicated by its
//!   `started_unix_ms` (seeing the same run again rewrites the same entry).
//!
//! Keys are `host NUL set NUL time(u64 BE) kind`, so one host+set is a contiguous range in
//! time order. Each host+set keeps its newest `keep` entries; older ones are removed in the
//! same batch that adds a new one.

use muster_shared::protocol::backups::{BackupRun, BackupSetStatus};
use muster_shared::protocol::jobs::{JobSpec, JobStatus};
use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};

/// The tree the log lives in.
const TREE: &str = "backup_log";

/// How many entries each host+set keeps by default.
pub const DEFAULT_KEEP_PER_SET: usize = 500;

/// One entry of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupLogEntry {
    /// The host.
    pub host: String,
    /// The backup set.
    pub set: String,
    /// When it began, in ms since the Unix epoch: the run's start, or the job's creation.
    pub at_unix_ms: u64,
    /// What it is.
    pub event: BackupEvent,
}

/// A job or a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupEvent {
    /// A job the collector started.
    Job(JobRecord),
    /// A run the agent reported.
    Run(BackupRun),
}

/// A job the collector started, as last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// What was asked.
    pub spec: JobSpec,
    /// Who asked (the token's name).
    pub requested_by: String,
    /// The job as last seen (final once its state is terminal).
    pub status: JobStatus,
}

impl Record for BackupLogEntry {
    const SCHEMA: u8 = 1;
}

/// The BackupLog over the collector's store.
#[derive(Debug)]
pub struct BackupLog {
    store: Store,
    tree: Tree<Vec<u8>, BackupLogEntry>,
    keep: usize,
}

impl BackupLog {
    /// Opens the `backup_log` tree, keeping `keep` entries per host and set (at least 1).
    /// Blocking.
    ///
    /// # Errors
    /// A store error naming the tree.
    pub fn open(store: &Store, keep: usize) -> Result<Self, StoreError> {
        Ok(Self {
            store: store.clone(),
            tree: store.tree(TREE)?,
            keep: keep.max(1),
        })
    }

    /// Records a job the collector started (or its newer status), and flushes. Blocking.
    ///
    /// # Errors
    /// A store error.
    pub fn record_job(&self, host: &str, set: &str, job: JobRecord) -> Result<(), StoreError> {
        let at = job.status.created_at_unix_ms;
        let key = entry_key(host, set, at, &format!("j{}", job.status.id));
        self.write(host, set, key, at, BackupEvent::Job(job))?;
        self.store.flush()?;
        Ok(())
    }

    /// Records the last run of each set in `statuses` that is not recorded yet, and
    /// flushes if anything was new. Returns how many were new. Blocking.
    ///
    /// # Errors
    /// A store error.
    pub fn record_runs(
        &self,
        host: &str,
        statuses: &[BackupSetStatus],
    ) -> Result<usize, StoreError> {
        let mut added = 0;
        for status in statuses {
            let Some(run) = &status.last_run else {
                continue;
            };
            if valid_name(&status.set).is_err() {
                continue;
            }
            let key = entry_key(host, &status.set, run.started_unix_ms, "r");
            if self
                .tree
                .get(&key)?
                .as_ref()
                .is_some_and(|e| matches!(&e.event, BackupEvent::Run(r) if r == run))
            {
                continue;
            }
            self.write(
                host,
                &status.set,
                key,
                run.started_unix_ms,
                BackupEvent::Run(run.clone()),
            )?;
            added += 1;
        }
        if added > 0 {
            self.store.flush()?;
        }
        Ok(added)
    }

    /// Rewrites the entry of job `status.id` of `host` with `status`, if the collector
    /// started that job and still holds its entry; flushes. Returns whether it did.
    /// Blocking.
    ///
    /// # Errors
    /// A store error.
    pub fn update_job(&self, host: &str, status: &JobStatus) -> Result<bool, StoreError> {
        let suffix = format!("j{}", status.id);
        let mut prefix = host.as_bytes().to_vec();
        prefix.push(0);
        for entry in self.tree.scan_prefix(&prefix).rev() {
            let (key, mut found) = entry?;
            if !key.ends_with(suffix.as_bytes()) {
                continue;
            }
            let BackupEvent::Job(job) = &mut found.event else {
                continue;
            };
            if job.status.id != status.id {
                continue;
            }
            if job.status == *status {
                return Ok(true);
            }
            job.status = status.clone();
            self.tree.insert(&key, &found)?;
            self.store.flush()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The newest `limit` entries of `host` (of one `set`, or of all), newest first.
    /// Blocking.
    ///
    /// # Errors
    /// A store error.
    pub fn history(
        &self,
        host: &str,
        set: Option<&str>,
        limit: usize,
    ) -> Result<Vec<BackupLogEntry>, StoreError> {
        let mut prefix = host.as_bytes().to_vec();
        prefix.push(0);
        if let Some(set) = set {
            prefix.extend_from_slice(set.as_bytes());
            prefix.push(0);
        }
        let mut entries = self
            .tree
            .scan_prefix(&prefix)
            .map(|entry| entry.map(|(_, e)| e))
            .collect::<Result<Vec<_>, _>>()?;
        // Across sets, key order is by set first: sort by time.
        entries.sort_by_key(|e| std::cmp::Reverse(e.at_unix_ms));
        entries.truncate(limit);
        Ok(entries)
    }

    /// Writes one entry and drops the oldest of its host+set beyond `keep`, in one batch.
    fn write(
        &self,
        host: &str,
        set: &str,
        key: Vec<u8>,
        at: u64,
        event: BackupEvent,
    ) -> Result<(), StoreError> {
        let entry = BackupLogEntry {
            host: host.to_owned(),
            set: set.to_owned(),
            at_unix_ms: at,
            event,
        };
        let prefix = set_prefix(host, set);
        let mut keys = Vec::new();
        for item in self.tree.scan_prefix(&prefix) {
            let (k, _) = item?;
            keys.push(k);
        }
        let mut batch = self.tree.batch();
        batch.insert(&key, &entry)?;
        if !keys.contains(&key) {
            keys.push(key);
            keys.sort();
        }
        let excess = keys.len().saturating_sub(self.keep);
        for old in keys.iter().take(excess) {
            batch.remove(old);
        }
        self.tree.apply(batch)
    }
}

/// Why a host or set name can't be a BackupLog key part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("the backup set name is empty")]
    Empty,
    /// Too long.
    #[error("the backup set name is longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
    /// Holds a control character or `/`.
    #[error("the backup set name {0:?} holds a control character or `/`")]
    Character(String),
}

/// Longest set name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Checks a set name: 1 to [`MAX_NAME_BYTES`] bytes, no control character (the log's
/// separator is NUL) and no `/` (it is a path segment of the agent's API).
///
/// # Errors
/// A [`NameError`] saying which rule it breaks.
pub fn valid_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err(NameError::Character(name.to_owned()));
    }
    Ok(())
}

fn set_prefix(host: &str, set: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(host.len() + set.len() + 2);
    key.extend_from_slice(host.as_bytes());
    key.push(0);
    key.extend_from_slice(set.as_bytes());
    key.push(0);
    key
}

fn entry_key(host: &str, set: &str, at: u64, kind: &str) -> Vec<u8> {
    let mut key = set_prefix(host, set);
    key.extend_from_slice(&at.to_be_bytes());
    key.extend_from_slice(kind.as_bytes());
    key
}

#[cfg(test)]
mod tests;
