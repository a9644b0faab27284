//! The collector's HTTP API.
//!
//! Public: `/health`, `/health/live`, `/health/ready`, `/version`, `/metrics`,
//! and `POST /api/v1/enroll` (authenticated by the one-time token in its
//! body). Everything else under `/api/v1` needs a bearer token of a minimum
//! role, enforced by the route group's middleware (see [`auth`]). The
//! Prometheus-compatible query endpoints ([`query`]) are in the viewer group.
//!
//! Layer order, outermost first: request id and span (so every log line of a
//! request carries its id), request metrics, body limit, then routing.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod enroll;
pub mod error;
pub mod federate;
pub mod hosts;
pub mod query;
pub mod query_params;
pub mod query_response;
pub mod silences;
pub mod system;
pub mod tokens;

#[cfg(test)]
mod backups_tests;
#[cfg(test)]
mod federate_tests;
#[cfg(test)]
mod query_tests;
#[cfg(test)]
pub(crate) mod test_kit;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use muster_shared::store::Store;

use crate::hosts::HostRegistry;
use crate::metrics::Metrics;
use crate::pki::Pki;
use crate::tokens::TokenStore;
use error::ApiError;

/// What the handlers share; cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The collector's store.
    pub store: Store,
    /// Fleet CA and collector certificate.
    pub pki: Arc<Pki>,
    /// API and enrollment tokens.
    pub tokens: Arc<TokenStore>,
    /// Enrolled hosts and their status.
    pub hosts: Arc<HostRegistry>,
    /// Own metrics.
    pub metrics: Metrics,
    /// Set once the store is open and the first scrape round is done.
    pub ready: Arc<AtomicBool>,
    /// Lifetime of agent certificates signed at enrollment.
    pub agent_cert_validity: std::time::Duration,
    /// Stored series, for the query API.
    pub series: Arc<dyn crate::series::SeriesSource>,
    /// Whether the store takes writes, for the health answers.
    pub store_health: Arc<crate::store_health::StoreHealth>,
    /// The alerting pipeline; `None` only in tests of other routes.
    pub alerting: Option<Arc<crate::alert::service::Alerting>>,
    /// Agents' backups and the BackupLog.
    pub backups: Arc<crate::backup::Backups>,
    /// The audit log.
    pub audit: Arc<crate::audit::AuditLog>,
}

impl ApiState {
    /// The alerting pipeline, or 503 when this collector runs without one.
    pub fn alerting(&self) -> Result<&Arc<crate::alert::service::Alerting>, ApiError> {
        self.alerting
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable("alerting is not running".to_owned()))
    }
}

/// Builds the router; tests call it without a socket.
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    let viewer = Router::new()
        .route("/api/v1/hosts", get(hosts::list))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/series", get(query::series).post(query::series))
        .route(
            "/api/v1/labels",
            get(query::label_names).post(query::label_names),
        )
        .route("/api/v1/label/{name}/values", get(query::label_values))
        .route(
            "/federate",
            get(federate::federate).post(federate::federate),
        )
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/history", get(alerts::history))
        .route("/api/v1/rules", get(alerts::rules))
        .route("/api/v1/notifications", get(alerts::notifications))
        .route("/api/v1/silences", get(silences::list))
        .route("/api/v1/silences/{id}", get(silences::get))
        .route("/api/v1/hosts/{id}/backups", get(backups::list))
        .route("/api/v1/hosts/{id}/backups/history", get(backups::history))
        .route(
            "/api/v1/hosts/{id}/backups/{set}/snapshots",
            get(backups::snapshots),
        )
        .route("/api/v1/hosts/{id}/jobs/{job_id}", get(backups::job))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_viewer,
        ));
    let operator = Router::new()
        .route(
            "/api/v1/alerts/{fingerprint}/ack",
            post(alerts::acknowledge).delete(alerts::unacknowledge),
        )
        .route("/api/v1/rules/reload", post(alerts::reload))
        .route(
            "/api/v1/notifications/{id}/retry",
            post(alerts::retry_notification),
        )
        .route(
            "/api/v1/notifications/{id}",
            delete(alerts::delete_notification),
        )
        .route("/api/v1/silences", post(silences::create))
        .route(
            "/api/v1/silences/{id}",
            post(silences::update).delete(silences::expire),
        )
        .route("/api/v1/hosts/{id}/backups", post(backups::run))
        .route("/api/v1/hosts/{id}/restores", post(backups::restore))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_operator,
        ));
    let admin = Router::new()
        .route("/api/v1/tokens", post(tokens::create_api))
        .route("/api/v1/enroll-tokens", post(tokens::create_enroll))
        .route("/api/v1/audit", get(audit::list))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ));
    let public = Router::new()
        .route("/health", get(system::health))
        .route("/health/live", get(system::live))
        .route("/health/ready", get(system::ready))
        .route("/version", get(system::version))
        .route("/metrics", get(system::metrics))
        .route("/api/v1/enroll", post(enroll::enroll));

    let router = Router::new()
        .merge(public)
        .merge(viewer)
        .merge(operator)
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .with_state(state);
    muster_shared::telemetry::with_request_tracing(router)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Counts every request by method, matched route and status code.
async fn count_request(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .http_requests
        .with_label_values(&[method.as_str(), route.as_str(), response.status().as_str()])
        .inc();
    response.into_response()
}

/// Runs blocking store work off the async workers, mapping failures to 500.
async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
}
