//! `POST /v1/jobs` and `GET /v1/jobs/{id}` on the agent: work the collector asks for.
//!
//! The collector sends a [`JobRequest`] with an idempotency key; a retried request with the
//! same key returns the existing job's [`JobStatus`] and never runs the job twice. The
//! collector then polls the status (pull keeps working when the agent cannot reach the
//! collector).
//!
//! JSON shapes (enums are externally tagged, snake_case):
//! `{"idempotency_key":"deploy-42-web1","spec":{"deploy":{"service":"api","image":"ghcr.io/acme/api","tag":"1.4.2"}}}`
//! and `{"id":"...","idempotency_key":"...","state":"running","progress":0.5,...}`.
//!
//! A job kind or state added later is a [`super::PROTOCOL_VERSION`] bump: bincode cannot
//! skip an unknown variant.

use serde::{Deserialize, Serialize};

/// Longest accepted [`JobRequest::idempotency_key`], in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

/// A request to run one job on an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRequest {
    /// Chosen by the collector, unique per intended job (for example
    /// `deploy-<rollout id>-<host>`), 1 to [`MAX_IDEMPOTENCY_KEY_BYTES`] bytes. A request
    /// repeating a key the agent has seen returns that job instead of starting another.
    pub idempotency_key: String,
    /// What to do.
    pub spec: JobSpec,
}

/// What a job does; one variant per job kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobSpec {
    /// Replace a service's container with a new image tag.
    Deploy(DeploySpec),
    /// Put a service back on the image it ran before the last deploy (or a given tag).
    Rollback(RollbackSpec),
    /// Take a backup of a configured backup set now.
    Backup(BackupSpec),
    /// Check a backup set's repository.
    Verify(VerifySpec),
    /// Restore a snapshot, or part of it, into a directory.
    Restore(RestoreSpec),
}

impl JobSpec {
    /// The job kind as a stable snake_case name, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Deploy(_) => "deploy",
            JobSpec::Rollback(_) => "rollback",
            JobSpec::Backup(_) => "backup",
            JobSpec::Verify(_) => "verify",
            JobSpec::Restore(_) => "restore",
        }
    }
}

/// Deploy `image:tag` as the container(s) of `service` on the agent's Docker engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploySpec {
    /// The service name as the agent's deploy config knows it; the agent refuses a service
    /// outside its allowlist.
    pub service: String,
    /// The image reference without tag (`ghcr.io/acme/api`).
    pub image: String,
    /// The tag to run (`1.4.2`); a digest (`sha256:...`) is accepted too.
    pub tag: String,
}

/// Roll `service` back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackSpec {
    /// The service name, as in [`DeploySpec::service`].
    pub service: String,
    /// The tag to return to; `None` means the one that ran before the last deploy.
    pub to_tag: Option<String>,
}

/// Back up one backup set now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSpec {
    /// The backup set's name in the agent's config.
    pub set: String,
}

/// Verify a backup set's repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifySpec {
    /// The backup set's name in the agent's config.
    pub set: String,
    /// Also read and hash every pack (slow, reads the whole repository); otherwise only the
    /// index and snapshot structure are checked.
    pub read_data: bool,
}

/// Restore a snapshot, or one path inside it, into a directory on the agent's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSpec {
    /// The backup set's name in the agent's config.
    pub set: String,
    /// The snapshot id (hex, full or a unique prefix of at least 8 characters).
    pub snapshot_id: String,
    /// Absolute path of the directory to restore into; created if missing. The agent refuses
    /// a relative path.
    pub target_dir: String,
    /// A path inside the snapshot to restore alone (relative, `/`-separated, no `..`);
    /// `None` restores the whole snapshot.
    pub sub_path: Option<String>,
}

/// Where a job is in its life. `Queued` → `Running` → one of the terminal states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted, not started (another job holds the resource it needs).
    Queued,
    /// Started and not finished.
    Running,
    /// Finished and did what it was asked.
    Succeeded,
    /// Finished without doing what it was asked; [`JobStatus::message`] says why.
    Failed,
    /// Stopped before finishing, on request or because the agent shut down.
    Cancelled,
}

impl JobState {
    /// Whether the job has finished (it will not change state again).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// The state of one job, answered by `POST /v1/jobs` and `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The agent-assigned job id, used in `GET /v1/jobs/{id}`.
    pub id: String,
    /// The [`JobRequest::idempotency_key`] the job was created with.
    pub idempotency_key: String,
    /// Where the job is.
    pub state: JobState,
    /// Fraction done, `0.0..=1.0`, when the job can tell (a backup knows its bytes; a
    /// deploy step does not).
    pub progress: Option<f32>,
    /// The current step while running, the outcome or the failure reason once finished;
    /// empty when there is nothing to say.
    pub message: String,
    /// When the agent accepted the job, in milliseconds since the Unix epoch (UTC).
    pub created_at_unix_ms: u64,
    /// When the job started running, in milliseconds since the Unix epoch.
    pub started_at_unix_ms: Option<u64>,
    /// When the job reached a terminal state, in milliseconds since the Unix epoch.
    pub finished_at_unix_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn specs() -> Vec<JobSpec> {
        vec![
            JobSpec::Deploy(DeploySpec {
                service: "api".to_owned(),
                image: "ghcr.io/acme/api".to_owned(),
                tag: "1.4.2".to_owned(),
            }),
            JobSpec::Rollback(RollbackSpec {
                service: "api".to_owned(),
                to_tag: None,
            }),
            JobSpec::Backup(BackupSpec {
                set: "postgres".to_owned(),
            }),
            JobSpec::Verify(VerifySpec {
                set: "postgres".to_owned(),
                read_data: true,
            }),
            JobSpec::Restore(RestoreSpec {
                set: "postgres".to_owned(),
                snapshot_id: "4f2a9c1e".to_owned(),
                target_dir: "/srv/restore".to_owned(),
                sub_path: Some("var/lib/postgresql".to_owned()),
            }),
        ]
    }

    #[test]
    fn json_shape_of_request_is_externally_tagged_snake_case() {
        let req = JobRequest {
            idempotency_key: "deploy-42-web1".to_owned(),
            spec: specs().remove(0),
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({
                "idempotency_key": "deploy-42-web1",
                "spec": {"deploy": {"service": "api", "image": "ghcr.io/acme/api", "tag": "1.4.2"}},
            })
        );
        assert_eq!(
            serde_json::to_value(JobState::Succeeded).unwrap(),
            serde_json::json!("succeeded")
        );
    }

    #[test]
    fn codec_round_trip_of_every_spec_and_status() {
        for spec in specs() {
            let req = JobRequest {
                idempotency_key: format!("k-{}", spec.kind()),
                spec,
            };
            let bytes = codec::encode_value(&req).unwrap();
            assert_eq!(
                codec::decode_value::<JobRequest>(&bytes, 1 << 20).unwrap(),
                req
            );
        }
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            let status = JobStatus {
                id: "j1".to_owned(),
                idempotency_key: "k".to_owned(),
                state,
                progress: Some(0.25),
                message: "uploading packs".to_owned(),
                created_at_unix_ms: 1,
                started_at_unix_ms: Some(2),
                finished_at_unix_ms: state.is_terminal().then_some(3),
            };
            let bytes = codec::encode_value(&status).unwrap();
            assert_eq!(
                codec::decode_value::<JobStatus>(&bytes, 1 << 20).unwrap(),
                status
            );
        }
    }
}
