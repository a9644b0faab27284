//! The receivers' shared test kit: a local HTTP server that records requests and answers
//! from a script, fixed notifications, golden bodies, and the conformance checks every
//! kind runs (status → retry decision, no secret in an error).
//!
//! Golden files live in `testdata/` beside this file; `MUSTER_UPDATE_GOLDEN=1` rewrites
//! them from what the receivers send, for the diff to be reviewed.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request as AxumRequest, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{FailureReason, NotifyError, Receiver};
use crate::alert::labels::{Fingerprint, LabelSet};
use crate::alert::model::{Notification, NotifiedAlert, NotifyStatus};

/// 2024-05-01 12:00:00 UTC.
pub const T0_MS: u64 = 1_714_564_800_000;

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
    /// Answer with the request's path and query as the body (to prove it is scrubbed).
    pub echo_path: bool,
    /// Answer only after this long.
    pub delay: Duration,
}

/// A reply with `status` and `body`.
pub fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.to_owned(),
        echo_path: false,
        delay: Duration::ZERO,
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Request {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug)]
struct ServerState {
    default: Reply,
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Request>>,
}

/// A local HTTP server on 127.0.0.1 that runs until the test's runtime ends.
#[derive(Debug, Clone)]
pub struct TestServer {
    base: String,
    state: Arc<ServerState>,
}

impl TestServer {
    /// Starts a server answering `default` when its script is empty.
    pub async fn start(default: Reply) -> Self {
        let state = Arc::new(ServerState {
            default,
            script: Mutex::new(VecDeque::new()),
            seen: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { base, state }
    }

    /// Answers the next requests with `replies`, in order, before the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The server's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.state.seen.lock().unwrap().clear();
    }

    /// The one request received; fails if there were more or none.
    pub fn only_request(&self) -> Request {
        let mut seen = self.requests();
        assert_eq!(seen.len(), 1, "expected exactly one request: {seen:?}");
        seen.remove(0)
    }
}

async fn answer(State(state): State<Arc<ServerState>>, request: AxumRequest) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| state.default.clone());
    state.seen.lock().unwrap().push(Request {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers,
        body,
    });
    tokio::time::sleep(reply.delay).await;
    let body = if reply.echo_path { path } else { reply.body };
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), body).into_response();
    for (name, value) in &reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

/// What a failed send must say.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    reason: FailureReason,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Expect {
    /// A permanent failure for `reason`.
    pub fn permanent(reason: FailureReason) -> Self {
        Self {
            reason,
            retryable: false,
            retry_after: None,
        }
    }

    /// A retryable failure for `reason`, with no wait asked.
    pub fn retry(reason: FailureReason) -> Self {
        Self {
            reason,
            retryable: true,
            retry_after: None,
        }
    }

    /// ... asking for a wait of `after`.
    pub fn after(self, after: Duration) -> Self {
        Self {
            retry_after: Some(after),
            ..self
        }
    }

    /// Fails unless `err` is what was expected.
    pub fn check(&self, err: &NotifyError) {
        assert_eq!(
            (err.reason, err.retryable, err.retry_after),
            (self.reason, self.retryable, self.retry_after),
            "{err}"
        );
    }
}

/// The conformance table: every kind, built by `make` for a server's base URL, must map
/// each status to the shared decision. `ok_body` answers a 2xx (except 204), `error_body`
/// any other status; a 429 also carries `Retry-After: 7` and must ask for 7 s.
pub async fn run_status_table(
    make: impl Fn(&str) -> Receiver,
    ok_body: &str,
    error_body: impl Fn(u16) -> String,
) {
    use FailureReason::*;
    let seven = Duration::from_secs(7);
    let cases = [
        (200, None),
        (202, None),
        (204, None),
        (500, Some(Expect::retry(ServerError))),
        (502, Some(Expect::retry(ServerError))),
        (503, Some(Expect::retry(ServerError))),
        (429, Some(Expect::retry(RateLimited).after(seven))),
        (400, Some(Expect::permanent(RejectedBody))),
        (401, Some(Expect::permanent(AuthError))),
        (403, Some(Expect::permanent(AuthError))),
        (404, Some(Expect::permanent(ClientError))),
    ];
    for (status, expected) in cases {
        let body = match status {
            204 => String::new(),
            200..=299 => ok_body.to_owned(),
            _ => error_body(status),
        };
        let mut answer = reply(status, &body);
        if status == 429 {
            answer.headers.push(("retry-after".into(), "7".into()));
        }
        let server = TestServer::start(answer).await;
        let receiver = make(server.base());
        let result = receiver.send(&two_alerts()).await;
        match (result, expected) {
            (Ok(_), None) => {}
            (Err(err), Some(expected)) => expected.check(&err),
            (other, expected) => panic!(
                "{} on HTTP {status}: got {other:?}, expected {expected:?}",
                receiver.kind().as_str()
            ),
        }
        assert_eq!(
            server.requests().len(),
            1,
            "HTTP {status}: one request, no retry"
        );
    }
}

/// A failing send's error, and the receiver's `Debug`, hold none of `secrets`: a server
/// answering 500 with the request's path as its body, and an address nobody listens on.
pub async fn run_secret_check(make: impl Fn(&str) -> Receiver, secrets: &[&str]) {
    let server = TestServer::start(Reply {
        echo_path: true,
        ..reply(500, "")
    })
    .await;
    let receiver = make(server.base());
    let echoed = receiver.send(&two_alerts()).await.unwrap_err();
    assert!(echoed.retryable, "{echoed}");
    assert!(
        echoed.message.contains("<redacted>"),
        "the echo is shown scrubbed: {echoed}"
    );
    // Nothing listens on port 1: a connection error, which reqwest would show with its URL.
    let unreachable = make("http://127.0.0.1:1");
    let refused = unreachable.send(&two_alerts()).await.unwrap_err();
    assert_eq!(refused.reason, FailureReason::Network, "{refused}");
    let shown = format!("{echoed}\n{echoed:?}\n{refused}\n{receiver:?}\n{unreachable:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn alert(
    status: NotifyStatus,
    label_pairs: &[(&str, &str)],
    annotation_pairs: &[(&str, &str)],
    starts_at_ms: u64,
    ends_at_ms: Option<u64>,
) -> NotifiedAlert {
    let labels = labels(label_pairs);
    NotifiedAlert {
        status,
        fingerprint: Fingerprint::of(&labels),
        generator_url: format!(
            "http://muster.example:9464/alerts/rules/{}",
            labels.get("alertname").map_or("", String::as_str)
        ),
        labels,
        annotations: self::labels(annotation_pairs),
        starts_at_ms,
        ends_at_ms,
        acknowledged_by: None,
    }
}

/// The fixed notification of the golden tests: two firing alerts on host web1, a
/// ContainerUnhealthy for container api (warning) and a HostDown (critical), grouped by
/// host.
pub fn two_alerts() -> Notification {
    Notification {
        receiver: "ops-chat".to_owned(),
        group_key: "{}:{host=\"web1\"}".to_owned(),
        group_labels: labels(&[("host", "web1")]),
        status: NotifyStatus::Firing,
        alerts: vec![
            alert(
                NotifyStatus::Firing,
                &[
                    ("alertname", "ContainerUnhealthy"),
                    ("container", "api"),
                    ("host", "web1"),
                    ("severity", "warning"),
                ],
                &[
                    ("summary", "Container api on web1 is unhealthy"),
                    ("description", "Its health check failed 3 times in a row."),
                ],
                T0_MS,
                None,
            ),
            alert(
                NotifyStatus::Firing,
                &[
                    ("alertname", "HostDown"),
                    ("host", "web1"),
                    ("severity", "critical"),
                ],
                &[
                    ("summary", "Host web1 is down"),
                    (
                        "description",
                        "The agent on web1 has not answered for 2 minutes.",
                    ),
                ],
                T0_MS - 90_000,
                None,
            ),
        ],
        truncated_alerts: 0,
        external_url: "http://muster.example:9464".to_owned(),
        created_at_ms: T0_MS + 60_000,
        escalation_level: 0,
    }
}

/// One resolved HostDown on web1, grouped by alertname and host.
pub fn resolved() -> Notification {
    Notification {
        group_key: "{}:{alertname=\"HostDown\",host=\"web1\"}".to_owned(),
        group_labels: labels(&[("alertname", "HostDown"), ("host", "web1")]),
        status: NotifyStatus::Resolved,
        alerts: vec![alert(
            NotifyStatus::Resolved,
            &[
                ("alertname", "HostDown"),
                ("host", "web1"),
                ("severity", "critical"),
            ],
            &[("summary", "Host web1 is down")],
            T0_MS - 90_000,
            Some(T0_MS + 600_000),
        )],
        ..two_alerts()
    }
}

/// `count` firing alerts on hosts `web0`... with descriptions of `text_len` characters
/// (multi-byte, to catch byte/char confusion).
pub fn many_alerts(count: usize, text_len: usize) -> Notification {
    let description: String = "é".repeat(text_len);
    let alerts = (0..count)
        .map(|i| {
            let host = format!("web{i}");
            alert(
                NotifyStatus::Firing,
                &[
                    ("alertname", "DiskFull"),
                    ("host", &host),
                    ("severity", "warning"),
                ],
                &[
                    ("summary", &format!("Disk full on {host}")),
                    ("description", &description),
                ],
                T0_MS,
                None,
            )
        })
        .collect();
    Notification {
        group_key: "{}:{alertname=\"DiskFull\"}".to_owned(),
        group_labels: labels(&[("alertname", "DiskFull")]),
        alerts,
        ..two_alerts()
    }
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/alert/notify/testdata")
        .join(name)
}

/// Fails unless `body` is the JSON in `testdata/<name>` (compared as JSON values, shown
/// as a line diff of both pretty-printed). `MUSTER_UPDATE_GOLDEN=1` rewrites the file.
pub fn assert_golden_json(name: &str, body: &[u8]) {
    let actual: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{name}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    let pretty = serde_json::to_string_pretty(&actual).unwrap() + "\n";
    let path = golden_path(name);
    if std::env::var_os("MUSTER_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with MUSTER_UPDATE_GOLDEN=1", path.display()));
    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
    if expected != actual {
        let expected = serde_json::to_string_pretty(&expected).unwrap() + "\n";
        panic!(
            "{name} differs (- golden, + sent):\n{}",
            line_diff(&expected, &pretty)
        );
    }
}

/// Fails unless `text` is `testdata/<name>` exactly; `MUSTER_UPDATE_GOLDEN=1` rewrites it.
pub fn assert_golden_text(name: &str, text: &str) {
    let path = golden_path(name);
    if std::env::var_os("MUSTER_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with MUSTER_UPDATE_GOLDEN=1", path.display()));
    if expected != text {
        panic!(
            "{name} differs (- golden, + sent):\n{}",
            line_diff(&expected, text)
        );
    }
}

/// A unified-style diff of two texts by lines (longest common subsequence).
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}
