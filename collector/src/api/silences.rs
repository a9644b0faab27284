//! `/api/v1/silences`: create, list, read, update and expire silences.
//!
//! Viewers list and read; operators create, update and expire. The author of a silence is
//! the calling token's name unless the body names one (a shared automation token acting
//! for a person). Times are RFC 3339 or Unix seconds, as in the query API; a silence
//! without `ends_at` needs a `duration` (`"2h"`). A change is flushed to disk before it is
//! answered.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiJson};
use super::query_params::parse_time;
use super::{ApiState, blocking};
use crate::alert::matcher::Matcher;
use crate::alert::silence::{Silence, SilenceError, SilenceFilter, SilenceSpec, SilenceState};
use crate::hosts::rfc3339;
use crate::tokens::Caller;

/// A silence as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SilenceView {
    /// Its id.
    pub id: String,
    /// Its matchers, as text (`host="web1"`).
    pub matchers: Vec<String>,
    /// When it starts muting, RFC 3339.
    pub starts_at: String,
    /// When it stops, RFC 3339.
    pub ends_at: String,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// `pending`, `active` or `expired`, now.
    pub state: String,
    /// When it was made.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

impl SilenceView {
    fn of(silence: &Silence, now_ms: u64) -> Self {
        Self {
            id: silence.id.clone(),
            matchers: silence.matchers.iter().map(ToString::to_string).collect(),
            starts_at: rfc3339(silence.starts_at_ms),
            ends_at: rfc3339(silence.ends_at_ms),
            created_by: silence.created_by.clone(),
            comment: silence.comment.clone(),
            state: state_name(silence.state(now_ms)).to_owned(),
            created_at: rfc3339(silence.created_at_ms),
            updated_at: rfc3339(silence.updated_at_ms),
        }
    }
}

/// `{"silences": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SilenceList {
    /// The silences, as the store orders them (active first, then pending, then expired).
    pub silences: Vec<SilenceView>,
}

/// The body of a create or update.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    /// Matchers: a list of `name="value"` strings, or one string `{a="1", b=~"2"}`.
    pub matchers: MatcherList,
    /// When it starts; now when absent.
    pub starts_at: Option<String>,
    /// When it ends; or give `duration`.
    pub ends_at: Option<String>,
    /// How long from its start, e.g. `"2h"`; or give `ends_at`.
    pub duration: Option<String>,
    /// Why; required.
    pub comment: String,
    /// Who; the calling token's name when absent.
    pub created_by: Option<String>,
}

/// Matchers as a JSON list of strings or one string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MatcherList {
    /// `["a=\"1\"", "b=~\"2\""]`
    Each(Vec<String>),
    /// `"{a=\"1\", b=~\"2\"}"`
    One(String),
}

/// `?state=active,pending&filter={...}` of a listing.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    /// Comma-separated states; all when absent.
    pub state: Option<String>,
    /// Only silences whose matchers match these labels (`{alertname="X"}`).
    pub filter: Option<String>,
}

/// `GET /api/v1/silences` (viewer).
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SilenceList>, ApiError> {
    let Query(query) =
        query.map_err(|r| ApiError::BadRequest(format!("invalid query: {}", r.body_text())))?;
    let mut filter = SilenceFilter::default();
    if let Some(states) = &query.state {
        for name in states.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            filter.states.push(parse_state(name)?);
        }
    }
    if let Some(text) = &query.filter {
        filter.matchers = Matcher::parse_list(text)
            .map_err(|e| ApiError::BadRequest(format!("invalid filter: {e}")))?;
    }
    let silences = state.alerting()?.silences.clone();
    let now = crate::unix_ms();
    let found = blocking(move || silences.list(&filter, now).map_err(silence_error)).await?;
    Ok(Json(SilenceList {
        silences: found.iter().map(|s| SilenceView::of(s, now)).collect(),
    }))
}

/// `GET /api/v1/silences/{id}` (viewer).
pub async fn get(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<SilenceView>, ApiError> {
    let silences = state.alerting()?.silences.clone();
    let now = crate::unix_ms();
    let shown = id.clone();
    let found = blocking(move || silences.get(&id).map_err(silence_error)).await?;
    let silence = found.ok_or_else(|| ApiError::NotFound(format!("no silence {shown:?}")))?;
    Ok(Json(SilenceView::of(&silence, now)))
}

/// `POST /api/v1/silences` (operator): 201 with the new silence.
pub async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<SilenceBody>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    let now = crate::unix_ms();
    let spec = spec_of(body, &caller, now)?;
    let silences = state.alerting()?.silences.clone();
    let store = state.store.clone();
    let silence = blocking(move || {
        let silence = silences.create(spec, now).map_err(silence_error)?;
        store.flush().map_err(ApiError::internal)?;
        Ok(silence)
    })
    .await?;
    tracing::info!(id = %silence.id, by = %silence.created_by, token = %caller.token_id, "silence created");
    Ok((StatusCode::CREATED, Json(SilenceView::of(&silence, now))))
}

/// `POST /api/v1/silences/{id}` (operator): an update; answers the silence as it now is,
/// which has a new id when the change had to replace it (Alertmanager's rule).
pub async fn update(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SilenceBody>,
) -> Result<Json<SilenceView>, ApiError> {
    let now = crate::unix_ms();
    let spec = spec_of(body, &caller, now)?;
    let silences = state.alerting()?.silences.clone();
    let store = state.store.clone();
    let silence = blocking(move || {
        let silence = silences.update(&id, spec, now).map_err(silence_error)?;
        store.flush().map_err(ApiError::internal)?;
        Ok(silence)
    })
    .await?;
    tracing::info!(id = %silence.id, token = %caller.token_id, "silence updated");
    Ok(Json(SilenceView::of(&silence, now)))
}

/// `DELETE /api/v1/silences/{id}` (operator): expires it now; answers it expired.
pub async fn expire(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<SilenceView>, ApiError> {
    let now = crate::unix_ms();
    let silences = state.alerting()?.silences.clone();
    let store = state.store.clone();
    let silence = blocking(move || {
        let silence = silences.expire(&id, now).map_err(silence_error)?;
        store.flush().map_err(ApiError::internal)?;
        Ok(silence)
    })
    .await?;
    tracing::info!(id = %silence.id, token = %caller.token_id, "silence expired");
    Ok(Json(SilenceView::of(&silence, now)))
}

fn spec_of(body: SilenceBody, caller: &Caller, now_ms: u64) -> Result<SilenceSpec, ApiError> {
    let matchers = match &body.matchers {
        MatcherList::One(text) => Matcher::parse_list(text),
        MatcherList::Each(items) => items.iter().map(|m| Matcher::parse(m)).collect(),
    }
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let time = |name: &str, text: &str| -> Result<u64, ApiError> {
        parse_time(text)
            .ok()
            .and_then(|ms| u64::try_from(ms).ok())
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "invalid {name} {text:?}: expected RFC 3339 or Unix seconds"
                ))
            })
    };
    let starts_at_ms = body
        .starts_at
        .as_deref()
        .map(|t| time("starts_at", t))
        .transpose()?;
    let ends_at_ms = match (&body.ends_at, &body.duration) {
        (Some(end), None) => time("ends_at", end)?,
        (None, Some(duration)) => {
            let length = humantime::parse_duration(duration)
                .map_err(|e| ApiError::BadRequest(format!("invalid duration {duration:?}: {e}")))?;
            let length = u64::try_from(length.as_millis()).unwrap_or(u64::MAX);
            starts_at_ms.unwrap_or(now_ms).saturating_add(length)
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of ends_at and duration".to_owned(),
            ));
        }
    };
    Ok(SilenceSpec {
        matchers,
        starts_at_ms,
        ends_at_ms,
        created_by: body.created_by.unwrap_or_else(|| caller.author()),
        comment: body.comment,
    })
}

fn parse_state(name: &str) -> Result<SilenceState, ApiError> {
    match name {
        "pending" => Ok(SilenceState::Pending),
        "active" => Ok(SilenceState::Active),
        "expired" => Ok(SilenceState::Expired),
        other => Err(ApiError::BadRequest(format!(
            "invalid state {other:?}: expected pending, active or expired"
        ))),
    }
}

fn state_name(state: SilenceState) -> &'static str {
    match state {
        SilenceState::Pending => "pending",
        SilenceState::Active => "active",
        SilenceState::Expired => "expired",
    }
}

fn silence_error(err: SilenceError) -> ApiError {
    match err {
        SilenceError::Invalid { .. } => ApiError::BadRequest(err.to_string()),
        SilenceError::NotFound { .. } => ApiError::NotFound(err.to_string()),
        SilenceError::Expired { .. } => ApiError::Conflict(err.to_string()),
        other => ApiError::internal(other),
    }
}
