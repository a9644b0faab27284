//! `GET /v1/backups`, `GET /v1/backups/{set}/snapshots`, `POST /v1/jobs`,
//! `GET /v1/jobs/{id}`: the agent's backup sets and the jobs the collector asks for (JSON).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muster_shared::protocol::jobs::JobRequest;

use super::{AgentState, error};
use crate::jobs::JobError;

/// Every backup set's status (an empty list on an agent without sets).
pub async fn list(State(state): State<AgentState>) -> Response {
    let statuses = state
        .backups
        .as_ref()
        .map(|b| b.statuses())
        .unwrap_or_default();
    Json(statuses).into_response()
}

/// A set's snapshots, oldest first.
pub async fn snapshots(State(state): State<AgentState>, Path(set): Path<String>) -> Response {
    let Some(backups) = state.backups.clone() else {
        return error(StatusCode::NOT_FOUND, &format!("no backup set {set:?}"));
    };
    let listed =
        tokio::task::spawn_blocking(move || backups.snapshots(&set).map(|r| (set, r))).await;
    match listed {
        Ok(Some((_, Ok(list)))) => Json(list).into_response(),
        Ok(Some((set, Err(e)))) => {
            tracing::warn!(set, error = %e, "cannot list snapshots");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot list the set's snapshots",
            )
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such backup set"),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "listing failed"),
    }
}

/// Accepts a job (or answers the job its idempotency key already created).
pub async fn submit(
    State(state): State<AgentState>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(b) => b,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("bad job request: {}", rejection.body_text()),
            );
        }
    };
    let Some(jobs) = state.jobs.clone() else {
        return error(StatusCode::NOT_FOUND, "this agent runs no jobs");
    };
    match tokio::task::spawn_blocking(move || jobs.submit(request)).await {
        Ok(Ok(status)) => Json(status).into_response(),
        Ok(Err(JobError::Invalid(why))) => error(StatusCode::BAD_REQUEST, &why),
        Ok(Err(JobError::Store(e))) => {
            tracing::warn!(error = %e, "cannot record a job");
            error(StatusCode::INTERNAL_SERVER_ERROR, "cannot record the job")
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "job submission failed"),
    }
}

/// A job's status.
pub async fn job(State(state): State<AgentState>, Path(id): Path<String>) -> Response {
    let Some(jobs) = state.jobs.clone() else {
        return error(StatusCode::NOT_FOUND, "this agent runs no jobs");
    };
    match tokio::task::spawn_blocking(move || jobs.get(&id)).await {
        Ok(Ok(Some(status))) => Json(status).into_response(),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "no such job"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read a job");
            error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the job")
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "job lookup failed"),
    }
}
