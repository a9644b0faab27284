//! `GET /api/v1/audit?limit=`: the newest audit log entries, newest first (admin).

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::{ApiState, blocking};
use crate::audit::AuditEntry;

/// `?limit=` (default 100, at most 1,000).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditQuery {
    /// At most this many.
    pub limit: Option<usize>,
}

/// `{"entries": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditList {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

/// Lists the newest entries (admin).
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    let Query(query) =
        query.map_err(|r| ApiError::BadRequest(format!("invalid query: {}", r.body_text())))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 1000".to_owned()));
    }
    let audit = state.audit.clone();
    let entries = blocking(move || audit.recent(limit).map_err(ApiError::internal)).await?;
    Ok(Json(AuditList { entries }))
}
