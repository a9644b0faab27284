//! `/api/v1/hosts/{id}/backups`, `/restores` and `/jobs`: a host's backup sets live from its
//! agent, their snapshots and history, and backup and restore jobs.
//!
//! Viewers read; operators start jobs. Starting a job answers 202 with the agent's job
//! status and the URL to poll. Every job started (or refused by the agent) is written to
//! the audit log with who asked, what and where. An agent that cannot be reached answers
//! 502, one without the `backups` capability 503; the agent's own refusals keep their
//! class (404 unknown set or job, 400 a target outside its allowlist).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use muster_shared::protocol::backups::{BackupSetStatus, SnapshotInfo};
use muster_shared::protocol::jobs::{BackupSpec, JobSpec, JobStatus};
use muster_shared::telemetry::REQUEST_ID_HEADER;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiJson};
use super::{ApiState, blocking};
use crate::audit::AuditEntry;
use crate::backup::log::{BackupLogEntry, valid_name};
use crate::backup::{BackupError, idempotency_key, restore_spec};
use crate::tokens::Caller;

/// `{"sets": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetList {
    /// The agent's backup sets as it reports them now.
    pub sets: Vec<BackupSetStatus>,
}

/// `{"snapshots": [...]}`, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotList {
    /// The snapshots.
    pub snapshots: Vec<SnapshotInfo>,
}

/// `{"entries": [...]}`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryList {
    /// BackupLog entries.
    pub entries: Vec<BackupLogEntry>,
}

/// A started job: its status and where to poll it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartedJob {
    /// The agent's job status.
    pub job: JobStatus,
    /// `GET` this path for the job's progress.
    pub url: String,
}

/// `POST /api/v1/hosts/{id}/backups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    /// The backup set.
    pub set: String,
    /// Sent to the agent as is; a new one is made when absent.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `POST /api/v1/hosts/{id}/restores`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// The backup set.
    pub set: String,
    /// A snapshot id (8 to 64 hex digits) or `latest`.
    pub snapshot: String,
    /// Absolute folder on the host to restore into.
    pub target_dir: String,
    /// Only this path of the snapshot.
    #[serde(default)]
    pub sub_path: Option<String>,
    /// Sent to the agent as is; a new one is made when absent.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `?set=&limit=` of the history.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistoryQuery {
    /// Only this set.
    pub set: Option<String>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

impl From<BackupError> for ApiError {
    fn from(err: BackupError) -> Self {
        let message = err.to_string();
        match err {
            BackupError::UnknownHost { .. } => ApiError::NotFound(message),
            BackupError::Unreachable { .. } | BackupError::BadAnswer { .. } => {
                ApiError::BadGateway(message)
            }
            BackupError::Unsupported { .. } => ApiError::Unavailable(message),
            BackupError::Refused { status, .. } => match status {
                404 => ApiError::NotFound(message),
                409 => ApiError::Conflict(message),
                400..=499 => ApiError::BadRequest(message),
                _ => ApiError::BadGateway(message),
            },
            BackupError::Store(source) => ApiError::internal(format!(
                "{message}: {}",
                crate::scrape::client::error_chain(&source)
            )),
            BackupError::Task { .. } => ApiError::internal(message),
        }
    }
}

/// `GET /api/v1/hosts/{id}/backups` (viewer).
pub async fn list(
    State(state): State<ApiState>,
    Path(host): Path<String>,
    headers: HeaderMap,
) -> Result<Json<SetList>, ApiError> {
    let sets = state.backups.sets(&host, &request_id(&headers)).await?;
    Ok(Json(SetList { sets }))
}

/// `GET /api/v1/hosts/{id}/backups/{set}/snapshots` (viewer).
pub async fn snapshots(
    State(state): State<ApiState>,
    Path((host, set)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<SnapshotList>, ApiError> {
    valid_name(&set).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let snapshots = state
        .backups
        .snapshots(&host, &set, &request_id(&headers))
        .await?;
    Ok(Json(SnapshotList { snapshots }))
}

/// `GET /api/v1/hosts/{id}/backups/history?set=&limit=` (viewer).
pub async fn history(
    State(state): State<ApiState>,
    Path(host): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HistoryList>, ApiError> {
    let Query(query) =
        query.map_err(|r| ApiError::BadRequest(format!("invalid query: {}", r.body_text())))?;
    if let Some(set) = &query.set {
        valid_name(set).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 1000".to_owned()));
    }
    let entries = state.backups.history(&host, query.set, limit).await?;
    Ok(Json(HistoryList { entries }))
}

/// `POST /api/v1/hosts/{id}/backups` (operator): runs a set now.
pub async fn run(
    State(state): State<ApiState>,
    Path(host): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<BackupBody>,
) -> Result<(StatusCode, Json<StartedJob>), ApiError> {
    valid_name(&body.set).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let key = idempotency_key(body.idempotency_key, "backup", &host)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let spec = JobSpec::Backup(BackupSpec {
        set: body.set.clone(),
    });
    let detail = BTreeMap::from([
        ("set".to_owned(), body.set),
        ("idempotency_key".to_owned(), key.clone()),
    ]);
    let job = JobStart {
        action: "backup.run",
        detail,
        spec,
        key,
    };
    start(&state, &host, &caller, job, &headers).await
}

/// `POST /api/v1/hosts/{id}/restores` (operator): restores a snapshot into a folder of the
/// host; audit logged.
pub async fn restore(
    State(state): State<ApiState>,
    Path(host): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RestoreBody>,
) -> Result<(StatusCode, Json<StartedJob>), ApiError> {
    valid_name(&body.set).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let key = idempotency_key(body.idempotency_key, "restore", &host)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Checked before `latest` is resolved, so a bad path never costs a call to the agent.
    let probe = if body.snapshot == "latest" {
        "00000000"
    } else {
        &body.snapshot
    };
    restore_spec(&body.set, probe, &body.target_dir, body.sub_path.as_deref())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let snapshot = if body.snapshot == "latest" {
        let listed = state
            .backups
            .snapshots(&host, &body.set, &request_id(&headers))
            .await?;
        listed.last().map(|s| s.id.clone()).ok_or_else(|| {
            ApiError::NotFound(format!(
                "backup set {} of host {host} has no snapshot",
                body.set
            ))
        })?
    } else {
        body.snapshot
    };
    let spec = restore_spec(
        &body.set,
        &snapshot,
        &body.target_dir,
        body.sub_path.as_deref(),
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut detail = BTreeMap::from([
        ("set".to_owned(), spec.set.clone()),
        ("snapshot".to_owned(), spec.snapshot_id.clone()),
        ("target_dir".to_owned(), spec.target_dir.clone()),
        ("idempotency_key".to_owned(), key.clone()),
    ]);
    if let Some(sub) = &spec.sub_path {
        detail.insert("sub_path".to_owned(), sub.clone());
    }
    let spec = JobSpec::Restore(spec);
    let job = JobStart {
        action: "backup.restore",
        detail,
        spec,
        key,
    };
    start(&state, &host, &caller, job, &headers).await
}

/// `GET /api/v1/hosts/{id}/jobs/{job_id}` (viewer).
pub async fn job(
    State(state): State<ApiState>,
    Path((host, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<JobStatus>, ApiError> {
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!("invalid job id {id:?}")));
    }
    Ok(Json(
        state.backups.job(&host, &id, &request_id(&headers)).await?,
    ))
}

/// A job to start and how to audit it.
struct JobStart {
    /// The audit action (`backup.restore`).
    action: &'static str,
    /// The audit detail; the outcome is added.
    detail: BTreeMap<String, String>,
    /// What the agent is to do.
    spec: JobSpec,
    /// The idempotency key.
    key: String,
}

/// Starts `job` on `host` and audits it, refused or not.
async fn start(
    state: &ApiState,
    host: &str,
    caller: &Caller,
    job: JobStart,
    headers: &HeaderMap,
) -> Result<(StatusCode, Json<StartedJob>), ApiError> {
    let JobStart {
        action,
        mut detail,
        spec,
        key,
    } = job;
    let started = state
        .backups
        .start(host, spec, key, &caller.author(), &request_id(headers))
        .await;
    match &started {
        Ok(job) => {
            detail.insert("job_id".to_owned(), job.id.clone());
            detail.insert("outcome".to_owned(), "started".to_owned());
        }
        Err(err) => {
            detail.insert("outcome".to_owned(), format!("failed: {err}"));
        }
    }
    let entry = AuditEntry {
        seq: 0,
        at_unix_ms: crate::unix_ms(),
        actor: caller.author(),
        role: caller.role.to_string(),
        action: action.to_owned(),
        target: host.to_owned(),
        detail,
    };
    let audit = state.audit.clone();
    blocking(move || audit.append(entry).map_err(ApiError::internal)).await?;
    let job = started?;
    let url = format!(
        "/api/v1/hosts/{}/jobs/{}",
        crate::backup::client::path_segment(host),
        crate::backup::client::path_segment(&job.id)
    );
    Ok((StatusCode::ACCEPTED, Json(StartedJob { job, url })))
}

/// The request's id (set by the tracing layer), passed on to the agent.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}
