//! `GET|POST /federate?match[]=...` (viewer): the latest sample of each series matching any
//! `match[]`, in the Prometheus text format (see [`crate::federate`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::query_params::PromParams;
use super::query_response::PromError;
use crate::federate;
use crate::query::LOOKBACK_DELTA_MS;
use crate::series::SourceError;

/// Series one `/federate` answer may carry; a larger fleet splits its `match[]`.
pub const MAX_SERIES: usize = 2_000_000;

/// `/federate`.
///
/// # Errors
/// `bad_data` without `match[]` or for one that is not a series selector; `execution`
/// past [`MAX_SERIES`]; `internal` when the store fails.
pub async fn federate(
    State(state): State<ApiState>,
    params: PromParams,
) -> Result<Response, PromError> {
    let selectors = params.selectors()?;
    if selectors.is_empty() {
        return Err(PromError::BadData(
            "no match[] parameter provided".to_owned(),
        ));
    }
    let source = Arc::clone(&state.series);
    let now = crate::unix_ms().try_into().unwrap_or(i64::MAX);
    let text = tokio::task::spawn_blocking(move || {
        let mut latest = BTreeMap::new();
        for matchers in &selectors {
            let found = source
                .latest(matchers, now - LOOKBACK_DELTA_MS + 1, now, MAX_SERIES)
                .map_err(|err| match err {
                    SourceError::TooManySeries { limit } => PromError::Execution(format!(
                        "the selection matches more than {limit} series; narrow match[]"
                    )),
                    SourceError::Store(detail) => PromError::Internal(detail),
                })?;
            latest.extend(found);
            if latest.len() > MAX_SERIES {
                return Err(PromError::Execution(format!(
                    "the selection matches more than {MAX_SERIES} series; narrow match[]"
                )));
            }
        }
        Ok(federate::render(&latest))
    })
    .await
    .map_err(|err| PromError::Internal(format!("federate task failed: {err}")))??;
    Ok(([(header::CONTENT_TYPE, federate::CONTENT_TYPE)], text).into_response())
}
