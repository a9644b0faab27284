//! `/api/v1/alerts`, `/api/v1/rules` and `/api/v1/notifications`: what alerting knows,
//! and the operator's hands on it.
//!
//! - `GET /api/v1/alerts?state=firing,pending&filter={..}` (viewer): the alerts listed
//!   now (pending, firing, recently resolved) with why each is or is not notified.
//! - `GET /api/v1/alerts/history?since=&until=&filter=&q=&limit=` (viewer): ended episodes,
//!   newest first.
//! - `POST /api/v1/alerts/{fingerprint}/ack` `{"comment": "..", "expires_in": "2h"}`
//!   (operator), `DELETE` the same to take it back.
//! - `GET /api/v1/rules` (viewer): every rule's health and the last reload's outcome;
//!   `POST /api/v1/rules/reload` (operator): reload the rule files now (a malformed file
//!   keeps the rules in force and answers 400 with every error).
//! - `GET /api/v1/notifications?state=pending|dead|all` (viewer): the outbox;
//!   `POST /api/v1/notifications/{id}/retry` and `DELETE /api/v1/notifications/{id}`
//!   (operator) for dead letters.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::query_params::parse_time;
use super::{ApiState, blocking};
use crate::alert::ack::{Ack, AckError};
use crate::alert::eval::RuleStatus;
use crate::alert::history::HistoryQuery;
use crate::alert::labels::{Fingerprint, LabelSet};
use crate::alert::matcher::{Matcher, all_match};
use crate::alert::model::{Alert, AlertState};
use crate::alert::outbox::{EntryFilter, OutboxEntry, OutboxError};
use crate::alert::rules::reload::ReloadStatus;
use crate::hosts::rfc3339;
use crate::tokens::Caller;

/// The most history entries one request returns.
const MAX_HISTORY: usize = 1_000;

/// An alert as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertView {
    /// Its identity (16 hex digits, as Alertmanager shows it).
    pub fingerprint: String,
    /// Its labels.
    pub labels: LabelSet,
    /// Its annotations.
    pub annotations: LabelSet,
    /// `pending`, `firing` or `resolved`.
    pub state: String,
    /// When the condition began to hold, RFC 3339.
    pub active_at: String,
    /// When it fired.
    pub fired_at: Option<String>,
    /// When it resolved.
    pub resolved_at: Option<String>,
    /// The expression's value at the last evaluation that matched.
    pub value: f64,
    /// A link to the rule's expression.
    pub generator_url: String,
    /// Active silences muting it.
    pub silenced_by: Vec<String>,
    /// Firing alerts inhibiting it.
    pub inhibited_by: Vec<String>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
}

impl AlertView {
    fn of(alert: &Alert, marks: Option<crate::alert::dispatch::AlertMarks>) -> Self {
        let marks = marks.unwrap_or_default();
        Self {
            fingerprint: alert.fingerprint().to_string(),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            state: alert.state.as_str().to_owned(),
            active_at: rfc3339(alert.active_at_ms),
            fired_at: alert.fired_at_ms.map(rfc3339),
            resolved_at: alert.resolved_at_ms.map(rfc3339),
            value: alert.value,
            generator_url: alert.generator_url.clone(),
            silenced_by: marks.silenced_by,
            inhibited_by: marks.inhibited_by.iter().map(ToString::to_string).collect(),
            acknowledged_by: marks.acknowledged_by,
        }
    }
}

/// `{"alerts": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertList {
    /// The alerts, sorted by labels (history: newest first).
    pub alerts: Vec<AlertView>,
}

/// `?state=..&filter=..` of the alert listing.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlertsQuery {
    /// Comma-separated states; all when absent.
    pub state: Option<String>,
    /// Matchers every listed alert satisfies, `{a="1"}` or `a="1",b=~"2"`.
    pub filter: Option<String>,
}

/// `GET /api/v1/alerts` (viewer).
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<AlertList>, ApiError> {
    let Query(query) = query.map_err(|r| bad_query(&r))?;
    let alerting = state.alerting()?;
    let states = parse_states(query.state.as_deref())?;
    let matchers = parse_filter(query.filter.as_deref())?;
    let listed: Vec<Alert> = alerting
        .evaluator
        .alerts()
        .into_iter()
        .filter(|a| states.is_empty() || states.contains(&a.state))
        .filter(|a| all_match(&matchers, &a.labels))
        .collect();
    let fingerprints: Vec<Fingerprint> = listed.iter().map(Alert::fingerprint).collect();
    let alerting = alerting.clone();
    // The dispatcher's lock may be held across a round's disk write: off the runtime.
    let marks = blocking(move || Ok(alerting.marks(&fingerprints))).await?;
    let alerts = listed
        .iter()
        .zip(marks)
        .map(|(alert, marks)| AlertView::of(alert, marks))
        .collect();
    Ok(Json(AlertList { alerts }))
}

/// `?since=..&until=..&filter=..&q=..&limit=..` of the history search.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistoryParams {
    /// Episodes that resolved at or after this time (RFC 3339 or Unix seconds).
    pub since: Option<String>,
    /// Episodes that resolved at or before this time.
    pub until: Option<String>,
    /// Matchers on the labels.
    pub filter: Option<String>,
    /// Text in a label or annotation value, any case.
    pub q: Option<String>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// `GET /api/v1/alerts/history` (viewer).
pub async fn history(
    State(state): State<ApiState>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<AlertList>, ApiError> {
    let Query(params) = params.map_err(|r| bad_query(&r))?;
    let time = |name: &str, value: Option<&str>| -> Result<Option<u64>, ApiError> {
        value
            .map(|text| {
                parse_time(text)
                    .ok()
                    .and_then(|ms| u64::try_from(ms).ok())
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "invalid {name} {text:?}: expected RFC 3339 or Unix seconds"
                        ))
                    })
            })
            .transpose()
    };
    let query = HistoryQuery {
        since_ms: time("since", params.since.as_deref())?,
        until_ms: time("until", params.until.as_deref())?,
        matchers: parse_filter(params.filter.as_deref())?,
        text: params.q.filter(|q| !q.is_empty()),
        limit: params.limit.unwrap_or(100).clamp(1, MAX_HISTORY),
    };
    let history = state.alerting()?.history.clone();
    let found = blocking(move || history.search(&query).map_err(ApiError::internal)).await?;
    Ok(Json(AlertList {
        alerts: found.iter().map(|a| AlertView::of(a, None)).collect(),
    }))
}

/// The body of an acknowledgement.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Why, or what is being done.
    #[serde(default)]
    pub comment: String,
    /// It lapses after this long (`"2h"`); otherwise it lasts until the alert resolves.
    pub expires_in: Option<String>,
}

/// An acknowledgement as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AckView {
    /// The alert.
    pub fingerprint: String,
    /// Who.
    pub by: String,
    /// Why.
    pub comment: String,
    /// When, RFC 3339.
    pub at: String,
    /// When it lapses, if it does.
    pub expires_at: Option<String>,
}

impl AckView {
    fn of(ack: &Ack) -> Self {
        Self {
            fingerprint: ack.fingerprint.to_string(),
            by: ack.by.clone(),
            comment: ack.comment.clone(),
            at: rfc3339(ack.at_ms),
            expires_at: ack.expires_at_ms.map(rfc3339),
        }
    }
}

/// `POST /api/v1/alerts/{fingerprint}/ack` (operator): the caller's token name is the
/// author. An acknowledged alert is not escalated, and its group is not repeated while
/// every firing alert in it is acknowledged.
pub async fn acknowledge(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(fingerprint): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<AckView>, ApiError> {
    // The body is optional: no comment, no expiry.
    let body: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let alerting = state.alerting()?.clone();
    let fingerprint = parse_fingerprint(&fingerprint)?;
    let alert = alerting
        .evaluator
        .alerts()
        .into_iter()
        .find(|a| a.fingerprint() == fingerprint)
        .ok_or_else(|| ApiError::NotFound(format!("no alert {fingerprint} is listed now")))?;
    let now = crate::unix_ms();
    let expires_at_ms = body
        .expires_in
        .as_deref()
        .map(|text| {
            humantime::parse_duration(text)
                .map(|d| now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
                .map_err(|e| ApiError::BadRequest(format!("invalid expires_in {text:?}: {e}")))
        })
        .transpose()?;
    let acks = alerting.acks.clone();
    let store = state.store.clone();
    let by = caller.author();
    let ack = blocking(move || {
        let ack = acks
            .acknowledge(&alert, &by, &body.comment, expires_at_ms, now)
            .map_err(ack_error)?;
        store.flush().map_err(ApiError::internal)?;
        Ok(ack)
    })
    .await?;
    alerting.evaluate_soon();
    tracing::info!(fingerprint = %fingerprint, by = %ack.by, token = %caller.token_id, "alert acknowledged");
    Ok(Json(AckView::of(&ack)))
}

/// `DELETE /api/v1/alerts/{fingerprint}/ack` (operator): answers the removed one.
pub async fn unacknowledge(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(fingerprint): Path<String>,
) -> Result<Json<AckView>, ApiError> {
    let alerting = state.alerting()?.clone();
    let fingerprint = parse_fingerprint(&fingerprint)?;
    let acks = alerting.acks.clone();
    let store = state.store.clone();
    let removed = blocking(move || {
        let removed = acks.remove(fingerprint).map_err(ack_error)?;
        store.flush().map_err(ApiError::internal)?;
        Ok(removed)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("alert {fingerprint} is not acknowledged")))?;
    alerting.evaluate_soon();
    tracing::info!(fingerprint = %fingerprint, token = %caller.token_id, "acknowledgement removed");
    Ok(Json(AckView::of(&removed)))
}

/// `{"rules": [...], "reload": {...}}`.
#[derive(Debug, Clone, Serialize)]
pub struct RulesView {
    /// Every rule in force, with its health.
    pub rules: Vec<RuleStatus>,
    /// The last load or reload: when a file is malformed, `ok` is false and `errors` say
    /// where (`file:line:col`), while the previous rules stay in force.
    pub reload: ReloadStatus,
}

/// `GET /api/v1/rules` (viewer).
pub async fn rules(State(state): State<ApiState>) -> Result<Json<RulesView>, ApiError> {
    let alerting = state.alerting()?;
    Ok(Json(RulesView {
        rules: alerting.evaluator.rule_states(),
        reload: alerting.rules.last_reload(),
    }))
}

/// `POST /api/v1/rules/reload` (operator): the new status; 400 with every error when a
/// file is malformed (the rules in force stay).
pub async fn reload(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ReloadStatus>, ApiError> {
    let alerting = state.alerting()?.clone();
    tracing::info!(token = %caller.token_id, "reloading alert rules");
    match alerting.rules.reload_async().await {
        Ok(_) => {
            alerting.evaluate_soon();
            Ok(Json(alerting.rules.last_reload()))
        }
        Err(errors) => Err(ApiError::BadRequest(format!(
            "the rules in force are kept: {errors}"
        ))),
    }
}

/// `{"notifications": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationList {
    /// Outbox entries in id order.
    pub notifications: Vec<OutboxEntry>,
}

/// `?state=pending|dead|all`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NotificationsQuery {
    /// Which entries; all by default.
    pub state: Option<String>,
}

/// `GET /api/v1/notifications` (viewer).
pub async fn notifications(
    State(state): State<ApiState>,
    query: Result<Query<NotificationsQuery>, QueryRejection>,
) -> Result<Json<NotificationList>, ApiError> {
    let Query(query) = query.map_err(|r| bad_query(&r))?;
    let filter = match query.state.as_deref() {
        None | Some("all") => EntryFilter::All,
        Some("pending") => EntryFilter::Pending,
        Some("dead") => EntryFilter::Dead,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid state {other:?}: expected pending, dead or all"
            )));
        }
    };
    let Some(outbox) = state.alerting()?.outbox.clone() else {
        return Ok(Json(NotificationList {
            notifications: Vec::new(),
        }));
    };
    let entries = blocking(move || outbox.list(filter).map_err(outbox_error)).await?;
    Ok(Json(NotificationList {
        notifications: entries,
    }))
}

/// `POST /api/v1/notifications/{id}/retry` (operator): a dead letter is queued again.
pub async fn retry_notification(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<OutboxEntry>, ApiError> {
    let id = parse_id(&id)?;
    let outbox = outbox_of(&state)?;
    let entry = blocking(move || outbox.retry_dead(id).map_err(outbox_error)).await?;
    tracing::info!(id, token = %caller.token_id, "dead letter queued again");
    Ok(Json(entry))
}

/// `DELETE /api/v1/notifications/{id}` (operator): drops an entry, delivered or not.
pub async fn delete_notification(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let outbox = outbox_of(&state)?;
    let deleted = blocking(move || outbox.delete(id).map_err(outbox_error)).await?;
    if !deleted {
        return Err(ApiError::NotFound(format!("no notification {id}")));
    }
    tracing::info!(id, token = %caller.token_id, "notification deleted");
    Ok(Json(serde_json::json!({ "deleted": id })))
}

fn outbox_of(state: &ApiState) -> Result<std::sync::Arc<crate::alert::outbox::Outbox>, ApiError> {
    state
        .alerting()?
        .outbox
        .clone()
        .ok_or_else(|| ApiError::NotFound("no receivers are configured".to_owned()))
}

fn parse_states(text: Option<&str>) -> Result<Vec<AlertState>, ApiError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| match name {
            "pending" => Ok(AlertState::Pending),
            "firing" => Ok(AlertState::Firing),
            "resolved" => Ok(AlertState::Resolved),
            other => Err(ApiError::BadRequest(format!(
                "invalid state {other:?}: expected pending, firing or resolved"
            ))),
        })
        .collect()
}

fn parse_filter(text: Option<&str>) -> Result<Vec<Matcher>, ApiError> {
    text.map_or(Ok(Vec::new()), |text| {
        Matcher::parse_list(text).map_err(|e| ApiError::BadRequest(format!("invalid filter: {e}")))
    })
}

fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid notification id {text:?}")))
}

/// A query string that does not parse, as our JSON error.
fn bad_query(rejection: &QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid query: {}", rejection.body_text()))
}

fn parse_fingerprint(text: &str) -> Result<Fingerprint, ApiError> {
    Fingerprint::parse(text).map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid fingerprint {text:?}: expected 16 hex digits"
        ))
    })
}

fn ack_error(err: AckError) -> ApiError {
    match err {
        AckError::Invalid { .. } => ApiError::BadRequest(err.to_string()),
        AckError::Resolved { .. } => ApiError::Conflict(err.to_string()),
        other => ApiError::internal(other),
    }
}

fn outbox_error(err: OutboxError) -> ApiError {
    match err {
        OutboxError::NotFound { .. } => ApiError::NotFound(err.to_string()),
        OutboxError::NotDead { .. } | OutboxError::UnknownReceiver { .. } => {
            ApiError::Conflict(err.to_string())
        }
        other => ApiError::internal(other),
    }
}
