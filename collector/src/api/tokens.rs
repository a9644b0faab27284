//! Token creation through the API (admin), for when the collector is running
//! and the CLI cannot open its store.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiJson};
use super::{ApiState, blocking};
use crate::tokens::{ApiRole, Caller, TokenStoreError};

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// `viewer`, `operator` or `admin`.
    pub role: ApiRole,
    /// A label for listings and the audit log.
    #[serde(default)]
    pub name: String,
}

/// Answer of `POST /api/v1/tokens`: the token, shown this once.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedApiToken {
    /// The token.
    pub token: String,
    /// Its role.
    pub role: ApiRole,
    /// Its label.
    pub name: String,
}

/// Body of `POST /api/v1/enroll-tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollToken {
    /// The host name the agent's certificate will carry.
    pub host: String,
    /// Validity, e.g. `"1h"`. Default 1 hour.
    #[serde(default)]
    pub ttl: Option<muster_shared::config::Duration>,
}

/// Answer of `POST /api/v1/enroll-tokens`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedEnrollToken {
    /// The one-time token.
    pub token: String,
    /// The host it enrolls.
    pub host: String,
    /// Expiry, RFC 3339.
    pub expires_at: String,
}

/// Creates an API token (admin).
pub async fn create_api(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateApiToken>,
) -> Result<Json<CreatedApiToken>, ApiError> {
    let tokens = state.tokens.clone();
    let name = body.name.clone();
    let token = blocking(move || {
        tokens
            .create_api(body.role, &name, crate::unix_ms())
            .map_err(token_error)
    })
    .await?;
    tracing::info!(by = %caller.name, by_token = %caller.token_id, role = %body.role, name = %body.name, "API token created");
    Ok(Json(CreatedApiToken {
        token: token.expose().to_owned(),
        role: body.role,
        name: body.name,
    }))
}

/// Creates a one-time enrollment token (admin).
pub async fn create_enroll(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateEnrollToken>,
) -> Result<Json<CreatedEnrollToken>, ApiError> {
    let ttl = body
        .ttl
        .map_or(std::time::Duration::from_secs(3600), |d| d.get());
    let tokens = state.tokens.clone();
    let ca = state.pki.ca_fingerprint();
    let host = body.host.clone();
    let now = crate::unix_ms();
    let token = blocking(move || {
        tokens
            .create_enroll(&host, ttl, ca, now)
            .map_err(token_error)
    })
    .await?;
    tracing::info!(by = %caller.name, by_token = %caller.token_id, host = %body.host, "enrollment token created");
    let expires = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    Ok(Json(CreatedEnrollToken {
        token: token.expose(),
        host: body.host,
        expires_at: crate::hosts::rfc3339(expires),
    }))
}

fn token_error(err: TokenStoreError) -> ApiError {
    match err {
        TokenStoreError::Invalid(message) => ApiError::BadRequest(message),
        other => ApiError::internal(other),
    }
}
