//! Bearer-token authentication and role checks for `/api/*`.
//!
//! Each route group is wrapped by the middleware of its minimum role, so a
//! handler can't forget the check. No token or an unknown one is 401; a known
//! token whose role is too low is 403. The caller is put in the request's
//! extensions for handlers and the audit log.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use crate::tokens::{ApiRole, Caller};

/// Middleware: requires at least `viewer`.
pub async fn require_viewer(state: State<ApiState>, request: Request, next: Next) -> Response {
    require(state, request, next, ApiRole::Viewer).await
}

/// Middleware: requires at least `operator`.
pub async fn require_operator(state: State<ApiState>, request: Request, next: Next) -> Response {
    require(state, request, next, ApiRole::Operator).await
}

/// Middleware: requires `admin`.
pub async fn require_admin(state: State<ApiState>, request: Request, next: Next) -> Response {
    require(state, request, next, ApiRole::Admin).await
}

async fn require(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
    min: ApiRole,
) -> Response {
    match authorize(&state, &request, min) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

fn authorize(state: &ApiState, request: &Request, min: ApiRole) -> Result<Caller, ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>`".to_owned(),
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header is not `Bearer <token>`".to_owned())
        })?;
    let caller = state
        .tokens
        .authenticate(token)
        .ok_or_else(|| ApiError::Unauthorized("token not recognised".to_owned()))?;
    if caller.role < min {
        return Err(ApiError::Forbidden(format!(
            "this route needs the {min} role; the token has {}",
            caller.role
        )));
    }
    Ok(caller)
}
