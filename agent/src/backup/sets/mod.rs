//! Backup sets: `[[backup]]` in `agent.toml`, run on their schedules, on the collector's
//! jobs, and reported as status and series.
//!
//! Runs of one set never overlap (a lock per set; the repository's own lock also keeps out
//! the CLI on the host). Each run is blocking work on its own thread (`spawn_blocking`): the
//! archiver starts its own workers. The outcome of every run is kept in the agent's store
//! ([`status::RunBook`]) and shown as `muster_backup_*` series ([`series::BackupSampler`]).

pub mod config;
pub mod run;
pub mod series;
pub mod status;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use muster_shared::protocol::backups::{BackupRun, BackupSetStatus, SnapshotInfo};
use muster_shared::store::{Store, StoreError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::config::BackupSetConfig;
use self::status::{RunBook, RunRecord};
use crate::backup::snapshot;

/// The agent's backup sets.
#[derive(Debug)]
pub struct BackupSets {
    sets: Vec<BackupSetConfig>,
    cache_dir: PathBuf,
    docker_socket: PathBuf,
    book: RunBook,
    locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    running: Mutex<HashMap<String, u64>>,
    next_runs: Mutex<HashMap<String, u64>>,
}

impl BackupSets {
    /// The sets (resolved), their run book in `store`, their catalogs under
    /// `data_dir/backup-cache`.
    pub fn open(
        sets: Vec<BackupSetConfig>,
        data_dir: &Path,
        docker_socket: PathBuf,
        store: &Store,
    ) -> Result<Arc<Self>, StoreError> {
        let locks = sets
            .iter()
            .map(|s| (s.name.clone(), Arc::new(tokio::sync::Mutex::new(()))))
            .collect();
        Ok(Arc::new(BackupSets {
            sets,
            cache_dir: data_dir.join("backup-cache"),
            docker_socket,
            book: RunBook::open(store)?,
            locks,
            running: Mutex::new(HashMap::new()),
            next_runs: Mutex::new(HashMap::new()),
        }))
    }

    /// Whether there are no sets.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// The set named `name`.
    pub fn set(&self, name: &str) -> Option<&BackupSetConfig> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// The sets.
    pub fn sets(&self) -> &[BackupSetConfig] {
        &self.sets
    }

    /// The run book.
    pub fn book(&self) -> &RunBook {
        &self.book
    }

    async fn volume_paths(&self, set: &BackupSetConfig) -> Result<Vec<PathBuf>, String> {
        if set.docker_volumes.is_empty() {
            return Ok(Vec::new());
        }
        let docker = bollard::Docker::connect_with_unix(
            &self.docker_socket.to_string_lossy(),
            30,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| format!("docker at {}: {e}", self.docker_socket.display()))?;
        let mut out = Vec::new();
        for name in &set.docker_volumes {
            let volume = docker
                .inspect_volume(name)
                .await
                .map_err(|e| format!("docker volume {name}: {e}"))?;
            out.push(PathBuf::from(volume.mountpoint));
        }
        Ok(out)
    }

    /// Runs a backup of `name` now (waiting for a run in progress to end); `trigger` says
    /// who asked. Returns the run's record (a failed run is recorded too).
    pub async fn run(
        self: &Arc<Self>,
        name: &str,
        trigger: &str,
        cancel: Arc<AtomicBool>,
    ) -> Result<RunRecord, String> {
        let set = self
            .set(name)
            .cloned()
            .ok_or_else(|| format!("no backup set {name:?}"))?;
        let lock = self.locks.get(name).cloned().ok_or("no lock")?;
        let _held = lock.lock().await;
        let started = crate::unix_ms();
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), started);
        let clock = std::time::Instant::now();
        let outcome = match self.volume_paths(&set).await {
            Ok(volumes) => {
                let (me, set2) = (self.clone(), set.clone());
                tokio::task::spawn_blocking(move || {
                    run::backup(&set2, volumes, &me.cache_dir, &cancel)
                })
                .await
                .unwrap_or_else(|e| Err(format!("backup task failed: {e}")))
            }
            Err(e) => Err(e),
        };
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let prior = self.book.state(name).last;
        let record = match &outcome {
            Ok(o) => RunRecord {
                run: BackupRun {
                    started_unix_ms: started,
                    duration_seconds: clock.elapsed().as_secs_f64(),
                    success: true,
                    snapshot: Some(o.snapshot.clone()),
                    files: o.summary.files,
                    total_bytes: o.summary.total_bytes,
                    bytes_added: o.summary.bytes_added,
                    errors: o.summary.errors,
                    message: o.notes.join("; "),
                    trigger: trigger.to_string(),
                },
                snapshots: o.snapshots,
                repository_bytes: o.repository_bytes,
            },
            Err(e) => RunRecord {
                run: BackupRun {
                    started_unix_ms: started,
                    duration_seconds: clock.elapsed().as_secs_f64(),
                    success: false,
                    snapshot: None,
                    files: 0,
                    total_bytes: 0,
                    bytes_added: 0,
                    errors: 0,
                    message: e.clone(),
                    trigger: trigger.to_string(),
                },
                snapshots: prior.as_ref().map_or(0, |p| p.snapshots),
                repository_bytes: prior.as_ref().map_or(0, |p| p.repository_bytes),
            },
        };
        let book_rec = record.clone();
        let me = self.clone();
        let name_owned = name.to_string();
        let stored =
            tokio::task::spawn_blocking(move || me.book.record(&name_owned, book_rec)).await;
        match stored {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(set = name, error = %e, "cannot record the backup run"),
            Err(e) => tracing::warn!(set = name, error = %e, "backup run record task failed"),
        }
        match outcome {
            Ok(_) => {
                tracing::info!(set = name, trigger, snapshot = ?record.run.snapshot, seconds = record.run.duration_seconds, "backup done");
                Ok(record)
            }
            Err(e) => {
                tracing::warn!(set = name, trigger, error = %e, "backup failed");
                Err(e)
            }
        }
    }

    /// Verifies `name`'s repository.
    pub async fn verify(self: &Arc<Self>, name: &str, read_data: bool) -> Result<String, String> {
        let set = self
            .set(name)
            .cloned()
            .ok_or_else(|| format!("no backup set {name:?}"))?;
        tokio::task::spawn_blocking(move || run::verify(&set, read_data))
            .await
            .unwrap_or_else(|e| Err(format!("verify task failed: {e}")))
    }

    /// Restores a snapshot of `name` into `target` (checked against its restore targets).
    pub async fn restore(
        self: &Arc<Self>,
        name: &str,
        snapshot_ref: String,
        target: PathBuf,
        sub_path: Option<String>,
        cancel: Arc<AtomicBool>,
    ) -> Result<String, String> {
        let set = self
            .set(name)
            .cloned()
            .ok_or_else(|| format!("no backup set {name:?}"))?;
        tokio::task::spawn_blocking(move || {
            run::restore(&set, &snapshot_ref, &target, sub_path.as_deref(), &cancel)
        })
        .await
        .unwrap_or_else(|e| Err(format!("restore task failed: {e}")))
    }

    /// Every set's status.
    pub fn statuses(&self) -> Vec<BackupSetStatus> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let next = self
            .next_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.sets
            .iter()
            .map(|s| {
                let state = self.book.state(&s.name);
                let (snapshots, repository_bytes) = state
                    .last
                    .as_ref()
                    .map_or((0, 0), |r| (r.snapshots, r.repository_bytes));
                let total = state.last.as_ref().map_or(0, |r| r.run.total_bytes);
                BackupSetStatus {
                    set: s.name.clone(),
                    schedule: s.schedule.as_ref().map(ToString::to_string),
                    next_run_unix_ms: next.get(&s.name).copied(),
                    running: running.contains_key(&s.name),
                    last_run: state.last.map(|r| r.run),
                    last_success_unix_ms: state.last_success_unix_ms,
                    snapshots,
                    repository_bytes,
                    dedup_ratio: if repository_bytes > 0 {
                        total as f64 / repository_bytes as f64
                    } else {
                        0.0
                    },
                }
            })
            .collect()
    }

    /// The snapshots of `name`, oldest first (`None`: no such set).
    pub fn snapshots(&self, name: &str) -> Option<Result<Vec<SnapshotInfo>, String>> {
        let set = self.set(name)?;
        let cipher = match set.master_key(false) {
            Ok(k) => k.map(|k| k.cipher()),
            Err(e) => return Some(Err(e)),
        };
        Some(
            snapshot::list_in(&set.repository(), cipher.as_ref())
                .map(|all| {
                    all.into_iter()
                        .map(|e| SnapshotInfo {
                            id: e.id,
                            time: e.snapshot.time.to_rfc3339(),
                            host: e.snapshot.host,
                            paths: e.snapshot.paths,
                            tags: e.snapshot.tags,
                            files: e.snapshot.summary.files,
                            total_bytes: e.snapshot.summary.total_bytes,
                            bytes_added: e.snapshot.summary.bytes_added,
                        })
                        .collect()
                })
                .map_err(|e| e.to_string()),
        )
    }

    /// Starts one task per scheduled set.
    pub fn start_schedules(self: &Arc<Self>, shutdown: &CancellationToken, tasks: &TaskTracker) {
        for set in &self.sets {
            let Some(schedule) = set.schedule.clone() else {
                continue;
            };
            let (me, name, stop) = (self.clone(), set.name.clone(), shutdown.child_token());
            tasks.spawn(async move {
                loop {
                    let now = chrono::Local::now().fixed_offset();
                    let last = me.book.state(&name).last.and_then(|r| {
                        chrono::DateTime::from_timestamp_millis(
                            i64::try_from(r.run.started_unix_ms).unwrap_or(0),
                        )
                        .map(|t| t.with_timezone(now.offset()))
                    });
                    let next = schedule.next_run(last, now);
                    let wait = (next - now).to_std().unwrap_or_default();
                    me.next_runs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(
                            name.clone(),
                            u64::try_from(next.timestamp_millis()).unwrap_or(0),
                        );
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    let cancel = Arc::new(AtomicBool::new(false));
                    let run = me.run(&name, "schedule", cancel.clone());
                    tokio::pin!(run);
                    tokio::select! {
                        _ = &mut run => {}
                        () = stop.cancelled() => {
                            // Finish what is running (its packs stay usable), then stop.
                            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                            let _ = run.await;
                            return;
                        }
                    }
                }
            });
        }
    }
}
