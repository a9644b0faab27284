//! `GET /api/v1/hosts`: enrolled hosts with their status.

use axum::Json;
use axum::extract::State;

use super::error::ApiError;
use super::{ApiState, blocking};
use crate::hosts::HostView;

/// Lists every enrolled host (viewer).
pub async fn list(State(state): State<ApiState>) -> Result<Json<Vec<HostView>>, ApiError> {
    let hosts = state.hosts.clone();
    let views = blocking(move || hosts.views().map_err(ApiError::internal)).await?;
    Ok(Json(views))
}
