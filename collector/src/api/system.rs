//! Health, version and metrics: unauthenticated, for load balancers,
//! systemd and Prometheus.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiState;

/// `GET /health`: 200 while the process serves; says whether it is ready and
/// whether the store takes writes.
pub async fn health(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "ready": state.ready.load(Ordering::Acquire),
        "store": store(&state),
    }))
}

/// `{"writable": true}`, or `{"writable": false, "error", "since"}` while the
/// store refuses writes and scraping is paused. Queries still work meanwhile,
/// so this does not make the collector unready.
fn store(state: &ApiState) -> serde_json::Value {
    match state.store_health.failure() {
        None => json!({ "writable": true }),
        Some(failure) => json!({
            "writable": false,
            "error": failure.error,
            "since": failure.since,
        }),
    }
}

/// `GET /health/live`: 200 while the process serves.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "live" }))
}

/// `GET /health/ready`: 200 once the store is open and the first scrape round
/// is done, 503 before; the body also tells whether the store takes writes.
pub async fn ready(State(state): State<ApiState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        Json(json!({ "status": "ready", "store": store(&state) })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "starting", "store": store(&state) })),
        )
            .into_response()
    }
}

/// `GET /version`: semver and the git commit of the build.
pub async fn version() -> Json<serde_json::Value> {
    Json(json!({
        "version": muster_shared::version::VERSION,
        "commit": muster_shared::version::GIT_COMMIT,
    }))
}

/// `GET /metrics`: the collector's own metrics in Prometheus text format.
pub async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        state.metrics.render(),
    )
        .into_response()
}
