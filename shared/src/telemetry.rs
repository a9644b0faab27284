//! Tracing setup and per-request spans, for both binaries.
//!
//! Owns: the subscriber (human lines or JSON lines, a RUST_LOG-style filter
//! read from `MUSTER_LOG` or `RUST_LOG`), and the HTTP layers that give every
//! API request an `x-request-id` (kept when the caller sent one, so the id
//! crosses collector and agent) and a span carrying it, the method and the
//! matched route, so every log line of a request names its request id.
//!
//! Leaves out: metrics (each binary registers its own).

use std::str::FromStr;
use std::time::Duration;

use axum::Router;
use axum::extract::MatchedPath;
use http::{HeaderName, Request, Response};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{Span, field};
use tracing_subscriber::EnvFilter;

/// The header carrying the correlation id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One readable line per event, coloured on a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?}: use human or json")),
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter in `MUSTER_LOG`/`RUST_LOG` does not parse.
    #[error("invalid log filter {filter:?}: {message}")]
    Filter {
        /// The filter text.
        filter: String,
        /// The parser's message.
        message: String,
    },
    /// A global subscriber was already installed.
    #[error("tracing was already initialised")]
    AlreadySet,
}

/// Installs the global subscriber, writing to stderr.
///
/// The filter comes from `MUSTER_LOG`, else `RUST_LOG`, else `default_filter`
/// (e.g. `"info"`).
///
/// # Errors
/// [`TelemetryError::Filter`] for a filter that does not parse.
pub fn init(format: LogFormat, default_filter: &str) -> Result<(), TelemetryError> {
    let filter_text = std::env::var("MUSTER_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_filter.to_owned());
    let filter = EnvFilter::try_new(&filter_text).map_err(|err| TelemetryError::Filter {
        filter: filter_text.clone(),
        message: err.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadySet)
}

/// Adds request ids and request spans to every route of `router`.
///
/// Order matters: the id is set outermost so the span sees it, and is copied
/// to the response innermost-out so callers can quote it in a bug report.
pub fn with_request_tracing<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    router
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(make_request_span)
                .on_request(())
                .on_response(on_response)
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
}

fn make_request_span<B>(request: &Request<B>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        request_id = %request_id,
        status = field::Empty,
    )
}

fn on_response<B>(response: &Response<B>, latency: Duration, span: &Span) {
    span.record("status", response.status().as_u16());
    tracing::debug!(
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request finished"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_parses_known_names_only() {
        assert_eq!("human".parse::<LogFormat>(), Ok(LogFormat::Human));
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!(
            "xml"
                .parse::<LogFormat>()
                .unwrap_err()
                .contains("human or json")
        );
    }

    #[tokio::test]
    async fn request_id_is_set_and_echoed() {
        use tower::ServiceExt;
        let router =
            with_request_tracing(Router::new().route("/", axum::routing::get(|| async { "ok" })));
        let response = router
            .clone()
            .oneshot(Request::get("/").body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let id = response
            .headers()
            .get(REQUEST_ID_HEADER)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(id.len(), 36, "a uuid: {id}");

        let response = router
            .oneshot(
                Request::get("/")
                    .header(REQUEST_ID_HEADER, "abc-123")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            response.headers().get(REQUEST_ID_HEADER).unwrap(),
            "abc-123"
        );
    }
}
