//! `GET|POST /federate?match[]=...` (viewer): the latest sample of each series matching any
//! `match[]`, in the Prometheus text format (see [`crate::federate`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::query::run_blocking;
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
    let selectors = params.required_selectors()?;
    let source = Arc::clone(&state.series);
    let now = crate::unix_ms().try_into().unwrap_or(i64::MAX);
    let text = run_blocking(move || {
        let mut latest = BTreeMap::new();
        for matchers in &selectors {
            latest.extend(source.latest(matchers, now - LOOKBACK_DELTA_MS + 1, now, MAX_SERIES)?);
            if latest.len() > MAX_SERIES {
                return Err(SourceError::TooManySeries { limit: MAX_SERIES });
            }
        }
        Ok(federate::render(&latest))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, federate::CONTENT_TYPE)], text).into_response())
}
