//! `POST /api/v1/enroll`: an agent trades a one-time token and a CSR for its
//! certificate. Public: the token in the body is the credential.

use axum::extract::State;
use axum::{Extension, Json};
use muster_shared::protocol::enroll::{EnrollRequest, EnrollResponse};
use muster_shared::serve::PeerInfo;

use super::error::{ApiError, ApiJson};
use super::{ApiState, blocking};
use crate::enroll::{EnrollError, Enroller};

/// Signs the agent's CSR once per token and records the host.
pub async fn enroll(
    State(state): State<ApiState>,
    Extension(peer): Extension<PeerInfo>,
    ApiJson(request): ApiJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let metrics = state.metrics.clone();
    let remote = peer.remote;
    let result = blocking(move || {
        let enroller = Enroller {
            pki: &state.pki,
            tokens: &state.tokens,
            hosts: &state.hosts,
            store: &state.store,
            validity: state.agent_cert_validity,
        };
        Ok(enroller.enroll(&request, remote, crate::unix_ms()))
    })
    .await?;
    match result {
        Ok(response) => {
            metrics.enrollments.with_label_values(&["success"]).inc();
            tracing::info!(host = %response.host_id, %remote, "host enrolled");
            Ok(Json(response))
        }
        Err(err) => {
            let (label, api_error) = match err {
                EnrollError::Store(detail) => ("error", ApiError::Internal(detail)),
                EnrollError::Refused(refusal) => {
                    ("refused", ApiError::Unauthorized(refusal.to_string()))
                }
                other => ("refused", ApiError::BadRequest(other.to_string())),
            };
            metrics.enrollments.with_label_values(&[label]).inc();
            tracing::info!(%remote, error = %api_error, "enrollment refused");
            Err(api_error)
        }
    }
}
