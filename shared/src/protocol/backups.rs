//! `GET /v1/backups` and `GET /v1/backups/{set}/snapshots` on the agent: the state of its
//! backup sets, for the collector's backup view (JSON; an agent listing the
//! [`super::info::CAP_BACKUPS`] capability serves them). Runs, verifies and restores are
//! [`super::jobs`].

use serde::{Deserialize, Serialize};

/// One backup set as the agent's config defines it and as its last runs left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupSetStatus {
    /// The set's name (`[[backup]] name`).
    pub set: String,
    /// Its schedule as written (`"0 3 * * *"`, `"every 6h"`), if it has one.
    pub schedule: Option<String>,
    /// When the next scheduled run is due, in ms since the Unix epoch.
    pub next_run_unix_ms: Option<u64>,
    /// Whether a run is in progress now.
    pub running: bool,
    /// The last run, successful or not.
    pub last_run: Option<BackupRun>,
    /// When the last successful run finished, in ms since the Unix epoch.
    pub last_success_unix_ms: Option<u64>,
    /// Snapshots in the set's repository.
    pub snapshots: u64,
    /// Bytes the repository's packs take on disk.
    pub repository_bytes: u64,
    /// Bytes of all files in the latest snapshot divided by `repository_bytes` (how much
    /// deduplication and compression save); 0 when there is nothing yet.
    pub dedup_ratio: f64,
}

/// One run of a backup set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRun {
    /// When it started, in ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// How long it took, in seconds.
    pub duration_seconds: f64,
    /// Whether it wrote a snapshot.
    pub success: bool,
    /// The snapshot it wrote.
    pub snapshot: Option<String>,
    /// Files in the snapshot.
    pub files: u64,
    /// Bytes of all files in the snapshot.
    pub total_bytes: u64,
    /// Bytes it added to the repository (after dedup and compression).
    pub bytes_added: u64,
    /// Entries it could not read (the snapshot leaves them out).
    pub errors: u64,
    /// Why it failed, or what it skipped; empty when there is nothing to say.
    pub message: String,
    /// What started it: `schedule`, `job` (the collector) or `cli`.
    pub trigger: String,
}

/// One snapshot, as `GET /v1/backups/{set}/snapshots` lists it (oldest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its id, 64 hex digits.
    pub id: String,
    /// When it was taken (RFC 3339).
    pub time: String,
    /// The host it was taken on.
    pub host: String,
    /// Its sources.
    pub paths: Vec<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Files in it.
    pub files: u64,
    /// Bytes of all files in it.
    pub total_bytes: u64,
    /// Bytes its run added to the repository.
    pub bytes_added: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_json() {
        let s = BackupSetStatus {
            set: "etc".into(),
            schedule: Some("0 3 * * *".into()),
            next_run_unix_ms: Some(1),
            running: false,
            last_run: Some(BackupRun {
                started_unix_ms: 1,
                duration_seconds: 2.5,
                success: true,
                snapshot: Some("ab".repeat(32)),
                files: 3,
                total_bytes: 4,
                bytes_added: 5,
                errors: 0,
                message: String::new(),
                trigger: "schedule".into(),
            }),
            last_success_unix_ms: Some(3),
            snapshots: 1,
            repository_bytes: 10,
            dedup_ratio: 0.4,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<BackupSetStatus>(&json).unwrap(), s);
    }
}
