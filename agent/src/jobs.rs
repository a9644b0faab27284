//! Jobs the collector asks for (`POST /v1/jobs`): backup, verify and restore of the agent's
//! own backup sets. Each job is recorded in the agent's store before it starts; a request
//! repeating an idempotency key gets the existing job, never a second run. Jobs that were
//! queued or running when the agent stopped are marked failed when it starts again: their
//! outcome is unknown, and the collector decides whether to ask again.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use muster_shared::protocol::jobs::{
    JobRequest, JobSpec, JobState, JobStatus, MAX_IDEMPOTENCY_KEY_BYTES,
};
use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backup::sets::BackupSets;

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JobRecord {
    status: JobStatus,
    spec: JobSpec,
}

impl Record for JobRecord {
    const SCHEMA: u8 = 1;
}

/// The job id an idempotency key created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KeyRecord(String);

impl Record for KeyRecord {
    const SCHEMA: u8 = 1;
}

/// A job request that was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The request is malformed or names something this agent does not have.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The agent's jobs.
#[derive(Debug)]
pub struct Jobs {
    jobs: Tree<String, JobRecord>,
    keys: Tree<String, KeyRecord>,
    backups: Option<Arc<BackupSets>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Jobs {
    /// Opens the job records in `store`, failing those a previous run left unfinished.
    pub fn open(
        store: &Store,
        backups: Option<Arc<BackupSets>>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, StoreError> {
        let jobs: Tree<String, JobRecord> = store.tree("jobs")?;
        let keys = store.tree("job_keys")?;
        let mut batch = jobs.batch();
        for item in jobs.iter() {
            let (id, mut rec) = item?;
            if !rec.status.state.is_terminal() {
                rec.status.state = JobState::Failed;
                rec.status.message =
                    "the agent stopped during the job; its outcome is unknown".into();
                rec.status.finished_at_unix_ms = Some(crate::unix_ms());
                batch.insert(&id, &rec)?;
            }
        }
        jobs.apply(batch)?;
        Ok(Arc::new(Jobs {
            jobs,
            keys,
            backups,
            tasks,
            shutdown,
        }))
    }

    fn check(&self, spec: &JobSpec) -> Result<(), JobError> {
        let set = match spec {
            JobSpec::Backup(s) => &s.set,
            JobSpec::Verify(s) => &s.set,
            JobSpec::Restore(s) => {
                if !s.target_dir.starts_with('/') {
                    return Err(JobError::Invalid(format!(
                        "target_dir {:?} must be absolute",
                        s.target_dir
                    )));
                }
                // Refused at once (the restore itself checks again): the caller learns now.
                if let Some(set) = self.backups.as_ref().and_then(|b| b.set(&s.set))
                    && !set.may_restore_into(std::path::Path::new(&s.target_dir))
                {
                    return Err(JobError::Invalid(format!(
                        "{} is not an allowed restore target of backup set {:?} \
                         (restore_targets in agent.toml)",
                        s.target_dir, s.set
                    )));
                }
                &s.set
            }
            JobSpec::Deploy(_) | JobSpec::Rollback(_) => {
                return Err(JobError::Invalid(
                    "this agent does not run deploys yet".into(),
                ));
            }
        };
        match &self.backups {
            Some(b) if b.set(set).is_some() => Ok(()),
            _ => Err(JobError::Invalid(format!(
                "no backup set {set:?} in this agent's config"
            ))),
        }
    }

    /// Accepts a job, or returns the job already created with the same key.
    pub fn submit(self: &Arc<Self>, request: JobRequest) -> Result<JobStatus, JobError> {
        let key = request.idempotency_key;
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
            return Err(JobError::Invalid(format!(
                "idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes"
            )));
        }
        if let Some(KeyRecord(id)) = self.keys.get(&key)?
            && let Some(rec) = self.jobs.get(&id)?
        {
            return Ok(rec.status);
        }
        self.check(&request.spec)?;
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).map_err(|e| JobError::Invalid(format!("no randomness: {e}")))?;
        let id = format!("{:016x}-{}", crate::unix_ms(), hex::encode(raw));
        let status = JobStatus {
            id: id.clone(),
            idempotency_key: key.clone(),
            state: JobState::Queued,
            progress: None,
            message: String::new(),
            created_at_unix_ms: crate::unix_ms(),
            started_at_unix_ms: None,
            finished_at_unix_ms: None,
        };
        let rec = JobRecord {
            status: status.clone(),
            spec: request.spec,
        };
        // Claim the key first: a concurrent retry with the same key finds it taken.
        if self
            .keys
            .compare_and_swap(&key, None, Some(&KeyRecord(id.clone())))?
            .is_err()
            && let Some(KeyRecord(existing)) = self.keys.get(&key)?
            && let Some(rec) = self.jobs.get(&existing)?
        {
            return Ok(rec.status);
        }
        self.jobs.insert(&id, &rec)?;
        let me = self.clone();
        self.tasks.spawn(async move { me.execute(rec).await });
        Ok(status)
    }

    /// A job's status.
    pub fn get(&self, id: &str) -> Result<Option<JobStatus>, StoreError> {
        Ok(self.jobs.get(&id.to_string())?.map(|r| r.status))
    }

    fn save(&self, rec: &JobRecord) {
        if let Err(e) = self.jobs.insert(&rec.status.id, rec) {
            tracing::warn!(job = %rec.status.id, error = %e, "cannot record job state");
        }
    }

    async fn execute(self: Arc<Self>, mut rec: JobRecord) {
        rec.status.state = JobState::Running;
        rec.status.started_at_unix_ms = Some(crate::unix_ms());
        self.save(&rec);
        let cancel = Arc::new(AtomicBool::new(false));
        let result = match (&rec.spec, &self.backups) {
            (JobSpec::Backup(s), Some(b)) => b.run(&s.set, "job", cancel.clone()).await.map(|r| {
                format!(
                    "snapshot {} saved: {} files, {} bytes added",
                    r.run
                        .snapshot
                        .as_deref()
                        .map_or("", |s| &s[..8.min(s.len())]),
                    r.run.files,
                    r.run.bytes_added
                )
            }),
            (JobSpec::Verify(s), Some(b)) => b.verify(&s.set, s.read_data).await,
            (JobSpec::Restore(s), Some(b)) => {
                b.restore(
                    &s.set,
                    s.snapshot_id.clone(),
                    std::path::PathBuf::from(&s.target_dir),
                    s.sub_path.clone(),
                    cancel.clone(),
                )
                .await
            }
            _ => Err("this agent cannot run this job".into()),
        };
        let cancelled = self.shutdown.is_cancelled();
        rec.status.finished_at_unix_ms = Some(crate::unix_ms());
        match result {
            Ok(message) => {
                rec.status.state = JobState::Succeeded;
                rec.status.progress = Some(1.0);
                rec.status.message = message;
            }
            Err(message) => {
                rec.status.state = if cancelled {
                    JobState::Cancelled
                } else {
                    JobState::Failed
                };
                rec.status.message = message;
            }
        }
        tracing::info!(job = %rec.status.id, kind = rec.spec.kind(), state = ?rec.status.state, message = %rec.status.message, "job finished");
        self.save(&rec);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use muster_shared::protocol::jobs::{BackupSpec, RestoreSpec, VerifySpec};
    use muster_shared::store::StoreOptions;

    use super::*;
    use crate::backup::sets::config::BackupSetConfig;
    use crate::sample::{Sampler, SeriesTable};

    fn set(name: &str, src: &std::path::Path, root: &std::path::Path) -> BackupSetConfig {
        let text = format!(
            "name = {name:?}\npaths = [{:?}]\nrestore_targets = [{:?}]\nkeep = {{ keep_last = 2 }}",
            src.display().to_string(),
            root.join("allowed").display().to_string()
        );
        let mut s: BackupSetConfig = toml::from_str(&text).unwrap();
        s.resolve(&root.join("agent.toml"), &root.join("data"));
        s
    }

    async fn wait(jobs: &Jobs, id: &str) -> JobStatus {
        for _ in 0..600 {
            let s = jobs.get(id).unwrap().unwrap();
            if s.state.is_terminal() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} never finished");
    }

    fn request(key: &str, spec: JobSpec) -> JobRequest {
        JobRequest {
            idempotency_key: key.into(),
            spec,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_restore_and_verify_jobs_run_once_per_key_within_the_allowlist() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("file"), b"precious").unwrap();
        let store = Store::open(&dir.path().join("store"), StoreOptions::agent()).unwrap();
        let sets = BackupSets::open(
            vec![set("etc", &src, dir.path())],
            &dir.path().join("data"),
            "/nonexistent.sock".into(),
            &store,
        )
        .unwrap();
        let tasks = TaskTracker::new();
        let jobs = Jobs::open(
            &store,
            Some(sets.clone()),
            tasks.clone(),
            CancellationToken::new(),
        )
        .unwrap();

        let backup = || JobSpec::Backup(BackupSpec { set: "etc".into() });
        let first = jobs.submit(request("k1", backup())).unwrap();
        let again = jobs.submit(request("k1", backup())).unwrap();
        assert_eq!(first.id, again.id, "a repeated key is the same job");
        let done = wait(&jobs, &first.id).await;
        assert_eq!(done.state, JobState::Succeeded, "{}", done.message);
        assert_eq!(sets.book().runs("etc").len(), 1, "the job ran once");

        // Three more runs; keep_last = 2 forgets the older ones.
        for k in ["k2", "k3", "k4"] {
            let s = jobs.submit(request(k, backup())).unwrap();
            assert_eq!(wait(&jobs, &s.id).await.state, JobState::Succeeded);
        }
        let status = &sets.statuses()[0];
        assert_eq!(status.snapshots, 2);
        assert!(status.last_success_unix_ms.is_some());
        let mut table = SeriesTable::new();
        crate::backup::sets::series::BackupSampler::new(sets.clone())
            .sample(&mut table)
            .unwrap();
        let mut text = String::new();
        crate::sample::exposition::render(&[&table], &mut text);
        assert!(
            text.contains("muster_backup_last_run_success{backup=\"etc\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("muster_backup_snapshots{backup=\"etc\"} 2"),
            "{text}"
        );

        let snap = sets.snapshots("etc").unwrap().unwrap().pop().unwrap().id;
        let restore = |key: &str, target: std::path::PathBuf| {
            request(
                key,
                JobSpec::Restore(RestoreSpec {
                    set: "etc".into(),
                    snapshot_id: snap.clone(),
                    target_dir: target.display().to_string(),
                    sub_path: None,
                }),
            )
        };
        let outside = jobs.submit(restore("r1", dir.path().join("elsewhere")));
        assert!(
            matches!(&outside, Err(JobError::Invalid(why)) if why.contains("not an allowed restore target")),
            "{outside:?}"
        );
        assert!(!dir.path().join("elsewhere").exists());
        let inside = jobs
            .submit(restore("r2", dir.path().join("allowed/x")))
            .unwrap();
        assert_eq!(wait(&jobs, &inside.id).await.state, JobState::Succeeded);
        let back = dir
            .path()
            .join("allowed/x")
            .join(src.strip_prefix("/").unwrap())
            .join("file");
        assert_eq!(std::fs::read(back).unwrap(), b"precious");

        let verify = jobs
            .submit(request(
                "v1",
                JobSpec::Verify(VerifySpec {
                    set: "etc".into(),
                    read_data: true,
                }),
            ))
            .unwrap();
        assert_eq!(wait(&jobs, &verify.id).await.state, JobState::Succeeded);

        assert!(matches!(
            jobs.submit(request(
                "u1",
                JobSpec::Backup(BackupSpec { set: "nope".into() })
            )),
            Err(JobError::Invalid(_))
        ));
        assert!(matches!(
            jobs.submit(request("", backup())),
            Err(JobError::Invalid(_))
        ));
        tasks.close();
        tasks.wait().await;
    }
}
