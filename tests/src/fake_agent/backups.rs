//! The fake agent's backup sets and jobs, in memory: `GET /v1/backups`,
//! `GET /v1/backups/{set}/snapshots`, `POST /v1/jobs` and `GET /v1/jobs/{id}` as the
//! protocol (`muster_shared::protocol::{backups, jobs}`) describes them.
//!
//! A job is `running` when created and `succeeded` after [`POLLS_TO_FINISH`] polls, or
//! `failed` if its set is named [`FAILING_SET`]. A repeated idempotency key answers the
//! existing job. A restore whose target is outside [`RESTORE_ROOT`] is refused with 400,
//! as the agent's allowlist does.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use muster_shared::protocol::backups::{BackupRun, BackupSetStatus, SnapshotInfo};
use muster_shared::protocol::error::ErrorBody;
use muster_shared::protocol::jobs::{JobRequest, JobSpec, JobState, JobStatus};

use super::{lock, now_ms};

/// Polls of `GET /v1/jobs/{id}` after which a job ends.
pub const POLLS_TO_FINISH: u32 = 2;
/// A backup set whose jobs fail.
pub const FAILING_SET: &str = "broken";
/// The only folder restores may target (or a folder below it).
pub const RESTORE_ROOT: &str = "/srv/restore";

/// The fake's backup state.
#[derive(Debug, Default)]
pub struct FakeBackups {
    /// The sets `GET /v1/backups` lists.
    pub sets: Vec<BackupSetStatus>,
    /// Snapshots per set, oldest first.
    pub snapshots: Vec<(String, Vec<SnapshotInfo>)>,
    /// Every job created, with its polls so far.
    pub jobs: Vec<(JobRequest, JobStatus, u32)>,
    /// Every `POST /v1/jobs` body received, in order (repeats included).
    pub requests: Vec<JobRequest>,
}

impl FakeBackups {
    /// Sets `etc` (two snapshots, last run ok) and [`FAILING_SET`] (never run).
    pub fn example() -> Self {
        let snapshot = |n: u64| SnapshotInfo {
            id: format!("{n:x}").repeat(64),
            time: format!("2026-12-0{n}T03:00:00Z"),
            host: "fake".to_owned(),
            paths: vec!["/etc".to_owned()],
            tags: Vec::new(),
            files: 100 * n,
            total_bytes: 1_000_000 * n,
            bytes_added: 10_000,
        };
        let now = now_ms();
        Self {
            sets: vec![
                BackupSetStatus {
                    set: "etc".to_owned(),
                    schedule: Some("0 3 * * *".to_owned()),
                    next_run_unix_ms: Some(now + 3_600_000),
                    running: false,
                    last_run: Some(BackupRun {
                        started_unix_ms: now - 60_000,
                        duration_seconds: 4.5,
                        success: true,
                        snapshot: Some(snapshot(2).id),
                        files: 200,
                        total_bytes: 2_000_000,
                        bytes_added: 10_000,
                        errors: 0,
                        message: String::new(),
                        trigger: "schedule".to_owned(),
                    }),
                    last_success_unix_ms: Some(now - 55_500),
                    snapshots: 2,
                    repository_bytes: 1_500_000,
                    dedup_ratio: 1.33,
                },
                BackupSetStatus {
                    set: FAILING_SET.to_owned(),
                    schedule: None,
                    next_run_unix_ms: None,
                    running: false,
                    last_run: None,
                    last_success_unix_ms: None,
                    snapshots: 0,
                    repository_bytes: 0,
                    dedup_ratio: 0.0,
                },
            ],
            snapshots: vec![
                ("etc".to_owned(), vec![snapshot(1), snapshot(2)]),
                (FAILING_SET.to_owned(), Vec::new()),
            ],
            jobs: Vec::new(),
            requests: Vec::new(),
        }
    }
}

type Shared = Arc<Mutex<FakeBackups>>;

/// The backup and job routes over `state`.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/backups", get(sets))
        .route("/v1/backups/{set}/snapshots", get(snapshots))
        .route("/v1/jobs", post(create_job))
        .route("/v1/jobs/{id}", get(job))
        .with_state(state)
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody::new(message))).into_response()
}

async fn sets(State(state): State<Shared>) -> Response {
    Json(lock(&state).sets.clone()).into_response()
}

async fn snapshots(State(state): State<Shared>, Path(set): Path<String>) -> Response {
    match lock(&state).snapshots.iter().find(|(name, _)| *name == set) {
        Some((_, list)) => Json(list.clone()).into_response(),
        None => refuse(StatusCode::NOT_FOUND, format!("unknown backup set {set:?}")),
    }
}

async fn create_job(State(state): State<Shared>, body: axum::body::Bytes) -> Response {
    let request: JobRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("invalid job request: {err}"),
            );
        }
    };
    let mut state = lock(&state);
    state.requests.push(request.clone());
    if let Some((_, existing, _)) = state
        .jobs
        .iter()
        .find(|(r, _, _)| r.idempotency_key == request.idempotency_key)
    {
        return Json(existing.clone()).into_response();
    }
    let set = match &request.spec {
        JobSpec::Backup(s) => &s.set,
        JobSpec::Verify(s) => &s.set,
        JobSpec::Restore(s) => &s.set,
        JobSpec::Deploy(_) | JobSpec::Rollback(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "this agent does not deploy".to_owned(),
            );
        }
    };
    if !state.sets.iter().any(|s| &s.set == set) {
        return refuse(StatusCode::NOT_FOUND, format!("unknown backup set {set:?}"));
    }
    if let JobSpec::Restore(restore) = &request.spec {
        let inside = restore.target_dir == RESTORE_ROOT
            || restore.target_dir.starts_with(&format!("{RESTORE_ROOT}/"));
        if !inside {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "restore target {} is outside the allowed restore paths ({RESTORE_ROOT})",
                    restore.target_dir
                ),
            );
        }
    }
    let now = now_ms();
    let status = JobStatus {
        id: format!("job-{}", state.jobs.len() + 1),
        idempotency_key: request.idempotency_key.clone(),
        state: JobState::Running,
        progress: Some(0.0),
        message: format!("{} started", request.spec.kind()),
        created_at_unix_ms: now,
        started_at_unix_ms: Some(now),
        finished_at_unix_ms: None,
    };
    state.jobs.push((request, status.clone(), 0));
    Json(status).into_response()
}

async fn job(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let mut state = lock(&state);
    let Some((request, status, polls)) = state.jobs.iter_mut().find(|(_, s, _)| s.id == id) else {
        return refuse(StatusCode::NOT_FOUND, format!("unknown job id {id}"));
    };
    if !status.state.is_terminal() {
        *polls += 1;
        status.progress = Some((*polls as f32 / POLLS_TO_FINISH as f32).min(1.0));
        if *polls >= POLLS_TO_FINISH {
            let failing = matches!(&request.spec, JobSpec::Backup(s) if s.set == FAILING_SET);
            status.state = if failing {
                JobState::Failed
            } else {
                JobState::Succeeded
            };
            status.message = if failing {
                "source unreadable".to_owned()
            } else {
                "done".to_owned()
            };
            status.finished_at_unix_ms = Some(now_ms());
        }
    }
    Json(status.clone()).into_response()
}
