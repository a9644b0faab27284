//! The agent's HTTP API, served over mutual TLS to the collector.
//!
//! Routes: `GET /v1/info` (who this agent is; JSON, or the binary codec when
//! the caller accepts [`BATCH_MEDIA_TYPE`]), `GET /v1/samples?after=SEQ&max=N`
//! (buffered rounds; the binary codec, or JSON when the caller accepts
//! `application/json`), `GET /v1/samples/urgent?after=SEQ&timeout_ms=N` (waits for
//! a round to pull at once; see [`crate::urgent`]), `GET /metrics` (the latest round in the Prometheus
//! text format), `GET /health/live`, `GET /health/ready`. The TLS layer
//! already refuses any client that is not the fleet's collector; `/v1/*` and
//! `/metrics` check the peer's role again (the backup and job routes are in [`backups`]) so a listener misconfigured without
//! client auth still serves nothing. [`metrics_router`] serves `/metrics`
//! alone, for the optional plain-HTTP Prometheus listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use muster_shared::codec;
use muster_shared::protocol::error::ErrorBody;
use muster_shared::protocol::info::AgentInfo;
use muster_shared::protocol::samples::{
    DICTIONARY_HEADER, DictionaryAnswer, MAX_URGENT_WAIT_MS, SampleBatch, SamplesQuery,
    UrgentAnswer, UrgentQuery,
};
use muster_shared::protocol::{BATCH_MEDIA_TYPE, PROTOCOL_VERSION};
use muster_shared::serve::PeerInfo;
use muster_shared::tls::Role;
use serde::Serialize;

mod backups;

use crate::buffer::{Buffer, BufferError};
use crate::sample::exposition::{CONTENT_TYPE as METRICS_CONTENT_TYPE, Exposition};
use crate::urgent::UrgentRounds;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AgentState {
    /// This agent's identity, fixed for the process's life.
    pub info: Arc<AgentInfo>,
    /// Set once the store is open and the listener is up.
    pub ready: Arc<AtomicBool>,
    /// The sample buffer `/v1/samples` reads.
    pub buffer: Arc<Buffer>,
    /// The latest round's text format.
    pub exposition: Arc<Exposition>,
    /// Rounds to pull at once, for `/v1/samples/urgent`.
    pub urgent: Arc<UrgentRounds>,
    /// The backup sets, when `agent.toml` has any.
    pub backups: Option<Arc<crate::backup::sets::BackupSets>>,
    /// Jobs the collector asked for.
    pub jobs: Option<Arc<crate::jobs::Jobs>>,
}

/// Builds the router; tests call it without a socket.
pub fn router(state: AgentState) -> Router {
    let collector_only = Router::new()
        .route("/v1/info", get(info))
        .route("/v1/samples", get(samples))
        .route("/v1/samples/urgent", get(urgent))
        .route("/metrics", get(metrics))
        .route("/v1/backups", get(backups::list))
        .route("/v1/backups/{set}/snapshots", get(backups::snapshots))
        .route("/v1/jobs", axum::routing::post(backups::submit))
        .route("/v1/jobs/{id}", get(backups::job))
        .route_layer(middleware::from_fn(require_collector));
    let router = Router::new()
        .merge(collector_only)
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .fallback(not_found)
        .with_state(state);
    muster_shared::telemetry::with_request_tracing(router)
}

async fn require_collector(request: Request, next: Next) -> Response {
    let role = request
        .extensions()
        .get::<PeerInfo>()
        .and_then(|peer| peer.role.clone());
    if role == Some(Role::Collector) {
        next.run(request).await
    } else {
        error(
            StatusCode::FORBIDDEN,
            "only the fleet's collector may call this route",
        )
    }
}

/// `/metrics` alone, for the plain-HTTP Prometheus listener.
pub fn metrics_router(exposition: Arc<Exposition>) -> Router {
    let router = Router::new()
        .route(
            "/metrics",
            get(move || {
                let exposition = exposition.clone();
                async move { metrics_response(&exposition) }
            }),
        )
        .fallback(not_found);
    muster_shared::telemetry::with_request_tracing(router)
}

async fn info(State(state): State<AgentState>, headers: HeaderMap) -> Response {
    negotiate(&headers, state.info.as_ref())
}

async fn metrics(State(state): State<AgentState>) -> Response {
    metrics_response(&state.exposition)
}

fn metrics_response(exposition: &Exposition) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        exposition.latest(),
    )
        .into_response()
}

/// 400 for a query string that does not parse, saying what was expected.
fn bad_query(rejection: &axum::extract::rejection::QueryRejection, expected: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        &format!("bad query: {}; expected {expected}", rejection.body_text()),
    )
}

/// `GET /v1/samples/urgent`: waits for an urgent round after the cursor (JSON).
async fn urgent(
    State(state): State<AgentState>,
    query: Result<Query<UrgentQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return bad_query(&rejection, "?after=SEQ&timeout_ms=N"),
    };
    let timeout = std::time::Duration::from_millis(query.timeout_ms.min(MAX_URGENT_WAIT_MS));
    let urgent_seq = state.urgent.wait_after(query.after, timeout).await;
    Json(UrgentAnswer { urgent_seq }).into_response()
}

/// `GET /v1/samples`: binary by default, JSON when asked for.
async fn samples(
    State(state): State<AgentState>,
    headers: HeaderMap,
    query: Result<Query<SamplesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return bad_query(&rejection, "?after=SEQ&max=N"),
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    let held = headers
        .get(DICTIONARY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let buffer = state.buffer.clone();
    // Read and encode off the runtime, then give the batch's transient memory
    // back: a first pull copies the whole series dictionary, and glibc would
    // otherwise keep those pages for good.
    let answered = tokio::task::spawn_blocking(move || {
        let answer = buffer.read(&query).map(|batch| {
            if wants_json {
                Json(&batch).into_response()
            } else {
                encode_batch(batch, held.as_deref())
            }
        });
        crate::memory::release_free();
        answer
    })
    .await;
    match answered {
        Ok(Ok(response)) => response,
        Ok(Err(err @ BufferError::CursorAhead { .. })) => {
            error(StatusCode::CONFLICT, &err.to_string())
        }
        Ok(Err(err)) => {
            tracing::error!(error = %err, "cannot read the sample buffer");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the sample buffer",
            )
        }
        Err(err) => {
            tracing::error!(error = %err, "buffer read task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// A batch in the binary codec with its dictionary's digest, the dictionary left out when
/// the collector holds it already (`protocol::samples`, "Dictionary elision").
fn encode_batch(mut batch: SampleBatch, held: Option<&str>) -> Response {
    let Ok(answer) = DictionaryAnswer::for_batch(&batch.series, held) else {
        // Unreachable for a batch the codec encodes; answer without naming it.
        return encode_binary(&batch);
    };
    if answer.elide {
        batch.series = Vec::new();
    }
    let mut response = encode_binary(&batch);
    if response.status().is_success() {
        answer.set_headers(response.headers_mut());
    }
    response
}

async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "live" }))
}

async fn ready(State(state): State<AgentState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "starting" })),
        )
            .into_response()
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route")
}

/// Answers in the binary codec when the caller accepts it, JSON otherwise.
fn negotiate<T: Serialize>(headers: &HeaderMap, value: &T) -> Response {
    let wants_binary = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(BATCH_MEDIA_TYPE));
    if !wants_binary {
        return Json(value).into_response();
    }
    encode_binary(value)
}

fn encode_binary<T: Serialize>(value: &T) -> Response {
    match codec::encode_frame(value, PROTOCOL_VERSION, 3) {
        Ok(frame) => ([(header::CONTENT_TYPE, BATCH_MEDIA_TYPE)], frame).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot encode response");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.to_owned(),
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use muster_shared::protocol::samples::{DICTIONARY_ELIDED_HEADER, dictionary_digest};
    use tower::ServiceExt;

    fn state(ready: bool) -> AgentState {
        // The store's folder is leaked for the test's life: the buffer keeps it open.
        let dir = tempfile::tempdir().unwrap().keep();
        let store = muster_shared::store::Store::open(
            &dir.join("store"),
            muster_shared::store::StoreOptions::agent(),
        )
        .unwrap();
        let buffer =
            Arc::new(Buffer::open(&store, &crate::buffer::BufferConfig::default()).unwrap());
        AgentState {
            buffer,
            exposition: Arc::new(Exposition::new()),
            info: Arc::new(AgentInfo {
                host_id: "web1".into(),
                agent_version: "0.1.0".into(),
                protocol_version: PROTOCOL_VERSION,
                capabilities: vec![],
                started_at_unix_ms: 1,
            }),
            ready: Arc::new(AtomicBool::new(ready)),
            urgent: Arc::new(UrgentRounds::new()),
            backups: None,
            jobs: None,
        }
    }

    fn request(path: &str, role: Option<Role>, accept: Option<&str>) -> axum::http::Request<Body> {
        let mut builder = axum::http::Request::get(path);
        if let Some(accept) = accept {
            builder = builder.header(header::ACCEPT, accept);
        }
        let mut request = builder.body(Body::empty()).unwrap();
        request.extensions_mut().insert(PeerInfo {
            remote: "127.0.0.1:1".parse().unwrap(),
            role,
        });
        request
    }

    #[tokio::test]
    async fn info_answers_json_and_binary_to_the_collector() {
        let app = router(state(true));
        let res = app
            .clone()
            .oneshot(request("/v1/info", Some(Role::Collector), None))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["host_id"], "web1");

        let res = app
            .oneshot(request(
                "/v1/info",
                Some(Role::Collector),
                Some(BATCH_MEDIA_TYPE),
            ))
            .await
            .unwrap();
        assert_eq!(res.headers()[header::CONTENT_TYPE], BATCH_MEDIA_TYPE);
        let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let (_, info): (u16, AgentInfo) = codec::decode_frame(
            &body,
            &codec::Limits::DEFAULT,
            muster_shared::protocol::is_compatible,
        )
        .unwrap();
        assert_eq!(info.host_id, "web1");
    }

    /// `GET /v1/samples` with an optional held dictionary digest: (elided?, digest, batch).
    async fn pull(app: &Router, after: u64, held: Option<&str>) -> (bool, String, SampleBatch) {
        let mut req = request(
            &format!("/v1/samples?after={after}"),
            Some(Role::Collector),
            Some(BATCH_MEDIA_TYPE),
        );
        if let Some(held) = held {
            req.headers_mut().insert(
                DICTIONARY_HEADER,
                header::HeaderValue::from_str(held).unwrap(),
            );
        }
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let elided = res.headers().get(DICTIONARY_ELIDED_HEADER).is_some();
        let digest = res.headers()[DICTIONARY_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let (_, batch): (u16, SampleBatch) = codec::decode_frame(
            &body,
            &codec::Limits::DEFAULT,
            muster_shared::protocol::is_compatible,
        )
        .unwrap();
        (elided, digest, batch)
    }

    #[tokio::test]
    async fn urgent_answers_the_newest_marked_round_or_zero() {
        let state = state(true);
        let urgent = state.urgent.clone();
        let app = router(state);
        let ask = |path: &str| {
            let app = app.clone();
            let req = request(path, Some(Role::Collector), None);
            async move {
                let res = app.oneshot(req).await.unwrap();
                let status = res.status();
                let body = to_bytes(res.into_body(), 1 << 16).await.unwrap();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        assert_eq!(
            ask("/v1/samples/urgent?after=0&timeout_ms=1").await,
            (StatusCode::OK, r#"{"urgent_seq":0}"#.to_owned())
        );
        urgent.mark(3);
        assert_eq!(
            ask("/v1/samples/urgent?after=2&timeout_ms=60000").await,
            (StatusCode::OK, r#"{"urgent_seq":3}"#.to_owned())
        );
        let (status, body) = ask("/v1/samples/urgent?after=x").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let res = app
            .clone()
            .oneshot(request(
                "/v1/samples/urgent?after=0&timeout_ms=1",
                Some(Role::Agent("x".into())),
                None,
            ))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn samples_leave_out_a_dictionary_the_collector_holds() {
        let state = state(true);
        let buffer = state.buffer.clone();
        let load = buffer.intern("node_load1", &[]);
        let disk = buffer.intern("node_disk_io_now", &[("device", "sda")]);
        buffer.append(1_000, &[(load, 0.5), (disk, 1.0)]).unwrap();
        buffer.append(2_000, &[(load, 0.6), (disk, 2.0)]).unwrap();
        let app = router(state);

        let (elided, digest, first) = pull(&app, 0, None).await;
        assert!(!elided);
        assert_eq!(first.series.len(), 2);
        assert_eq!(digest, dictionary_digest(&first.series).unwrap());

        // The same dictionary: left out, the ids as before.
        let (elided, again, second) = pull(&app, 1, Some(&digest)).await;
        assert!(elided);
        assert_eq!(again, digest);
        assert!(second.series.is_empty());
        let ids: Vec<u32> = first.series.iter().map(|d| d.id).collect();
        second.validate_elided(&ids).unwrap();
        assert_eq!(second.rounds[0].values.len(), 2);

        // A stale or unknown digest gets the dictionary.
        let (elided, _, third) = pull(&app, 1, Some("0123")).await;
        assert!(!elided);
        assert_eq!(third.series.len(), 2);

        // A new series changes the dictionary: sent whole, under a new digest.
        let new = buffer.intern("node_load5", &[]);
        buffer.append(3_000, &[(load, 0.7), (new, 0.1)]).unwrap();
        let (elided, changed, fourth) = pull(&app, 2, Some(&digest)).await;
        assert!(!elided);
        assert_ne!(changed, digest);
        assert_eq!(fourth.series.len(), 2);
    }

    #[tokio::test]
    async fn info_refuses_a_peer_that_is_not_the_collector() {
        let app = router(state(true));
        for role in [None, Some(Role::Agent("web2".into()))] {
            let res = app
                .clone()
                .oneshot(request("/v1/info", role, None))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
        }
    }

    #[tokio::test]
    async fn readiness_follows_the_flag() {
        let res = router(state(false))
            .oneshot(request("/health/ready", None, None))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let res = router(state(true))
            .oneshot(request("/health/ready", None, None))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = router(state(false))
            .oneshot(request("/health/live", None, None))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_routes_get_a_json_404() {
        let res = router(state(true))
            .oneshot(request("/nope", None, None))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("no such route"));
    }
}
