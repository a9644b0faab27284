//! [`RemoteWrite`] end to end against a fake receiver on 127.0.0.1 (axum): headers and body,
//! retries on 5xx, 429 and timeouts, no retry on 400, queue overflow, the shutdown flush, and
//! no secret in labels, errors or logs.
//!
//! Each test runs on a current-thread runtime, so the sender, the fake server and the log
//! capture share one thread.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use super::proto::WriteRequest;
use super::*;
use crate::metrics::Metrics;
use crate::series::{Labels, Sample, SeriesSamples};

/// What the fake answers to one request.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    delay: Duration,
    retry_after: Option<&'static str>,
    body: &'static str,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        delay: Duration::ZERO,
        retry_after: None,
        body: "",
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    request: WriteRequest,
    status: u16,
}

#[derive(Debug, Default)]
struct Receiver {
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Received>>,
}

impl Receiver {
    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    fn accepted(&self) -> Vec<WriteRequest> {
        self.seen()
            .into_iter()
            .filter(|r| r.status < 300)
            .map(|r| r.request)
            .collect()
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = decode_body(&body).expect("a snappy block-format protobuf WriteRequest");
    let answer = receiver
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| reply(204));
    receiver.seen.lock().unwrap().push(Received {
        headers,
        request,
        status: answer.status,
    });
    tokio::time::sleep(answer.delay).await;
    let status = StatusCode::from_u16(answer.status).unwrap();
    let mut response = (status, answer.body).into_response();
    if let Some(value) = answer.retry_after {
        response
            .headers_mut()
            .insert("retry-after", value.parse().unwrap());
    }
    response
}

/// Starts the fake; returns it and its port. It runs until the test's runtime ends.
async fn fake_receiver(script: impl IntoIterator<Item = Reply>) -> (Arc<Receiver>, u16) {
    fake_receiver_with(None, script).await
}

/// [`fake_receiver`], serving TLS with `tls` when given.
async fn fake_receiver_with(
    tls: Option<Arc<rustls::ServerConfig>>,
    script: impl IntoIterator<Item = Reply>,
) -> (Arc<Receiver>, u16) {
    let receiver = Arc::new(Receiver::default());
    receiver.script.lock().unwrap().extend(script);
    let router = axum::Router::new()
        .fallback(receive)
        .with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(muster_shared::serve::serve(
        listener,
        tls,
        router,
        CancellationToken::new(),
        muster_shared::serve::ServeOptions::default(),
    ));
    (receiver, port)
}

fn config(url: &str) -> RemoteWriteConfig {
    let mut config = RemoteWriteConfig::new(url.parse().unwrap());
    config.min_backoff = muster_shared::config::Duration(Duration::from_millis(10));
    config.max_backoff = muster_shared::config::Duration(Duration::from_millis(50));
    config.batch_send_deadline = muster_shared::config::Duration(Duration::from_millis(20));
    config.timeout = muster_shared::config::Duration::from_secs(5);
    config
}

fn series(name: &str, times: std::ops::Range<i64>) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs([("__name__", name), ("host", "web1"), ("cpu", "0")]),
        samples: times
            .map(|t| Sample {
                timestamp_ms: 1_700_000_000_000 + t,
                value: t as f64 + 0.5,
            })
            .collect(),
    }
}

/// The value of one sample of `family` whose labels include every pair of `labels`.
fn metric(metrics: &Metrics, family: &str, labels: &[(&str, &str)]) -> f64 {
    let families = metrics.registry().gather();
    let family = families
        .iter()
        .find(|f| f.name() == family)
        .unwrap_or_else(|| panic!("no family {family}"));
    let found = family.get_metric().iter().find(|m| {
        labels.iter().all(|(name, value)| {
            m.get_label()
                .iter()
                .any(|l| l.name() == *name && l.value() == *value)
        })
    });
    let m = found.unwrap_or_else(|| panic!("no {labels:?} in {family:?}"));
    if family.get_field_type() == prometheus::proto::MetricType::COUNTER {
        m.get_counter().get_value()
    } else {
        m.get_gauge().get_value()
    }
}

/// Waits (real time) until `done` holds, failing after 30 s naming what never happened.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened within 30s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Log lines written while the guard lives, on this thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn stop(remote_write: &RemoteWrite, shutdown: &CancellationToken) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), remote_write.wait())
        .await
        .expect("senders stop within their flush deadline");
}

#[tokio::test]
async fn server_error_then_ok_is_retried_and_delivered_once() {
    let (receiver, port) = fake_receiver([reply(500), reply(200)]).await;
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config(&url)], metrics.registry(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("node_load1", 0..3), series("node_load5", 0..2)]);
    until("the retried batch is accepted", || {
        receiver.accepted().len() == 1
    })
    .await;
    stop(&rw, &shutdown).await;

    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "one failure, one success, nothing more");
    assert_eq!(seen[0].request, seen[1].request);
    let request = &seen[1].request;
    assert_eq!(request.timeseries.len(), 2);
    let labels: Vec<(&str, &str)> = request.timeseries[0]
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        labels,
        [("__name__", "node_load1"), ("cpu", "0"), ("host", "web1")]
    );
    let points: Vec<(i64, f64)> = request.timeseries[0]
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value))
        .collect();
    assert_eq!(
        points,
        [
            (1_700_000_000_000, 0.5),
            (1_700_000_000_001, 1.5),
            (1_700_000_000_002, 2.5)
        ]
    );
    let headers = &seen[1].headers;
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
    assert_eq!(
        headers["user-agent"],
        format!("muster-collector/{}", muster_shared::version::VERSION).as_str()
    );
    assert!(!headers.contains_key("authorization"));

    let remote = [("remote", url.as_str())];
    let sent = [("remote", url.as_str()), ("result", "sent")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_samples_total",
            &sent
        ),
        5.0
    );
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_retries_total",
            &remote
        ),
        1.0
    );
    let server_errors = [("remote", url.as_str()), ("reason", "server_error")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_failures_total",
            &server_errors
        ),
        1.0
    );
    assert!(
        metric(
            &metrics,
            "muster_collector_remote_write_last_success_timestamp_seconds",
            &remote
        ) > 1e9
    );
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_queue_samples",
            &remote
        ),
        0.0
    );
    assert!(
        metrics
            .render()
            .contains("muster_collector_remote_write_send_duration_seconds_count")
    );
}

#[tokio::test]
async fn rate_limited_with_retry_after_is_retried() {
    let limited = Reply {
        retry_after: Some("1"),
        ..reply(429)
    };
    let (receiver, port) = fake_receiver([limited]).await;
    let mut config = config(&format!("http://127.0.0.1:{port}/api/v1/write"));
    config.name = Some("vm".to_owned());
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], metrics.registry(), shutdown.clone()).unwrap();
    assert_eq!(rw.remotes(), ["vm"]);
    let started = tokio::time::Instant::now();
    rw.enqueue(&[series("up", 0..1)]);
    until("the batch is accepted after the 429", || {
        receiver.accepted().len() == 1
    })
    .await;
    // The backoff alone (10-50 ms) would have retried far sooner than Retry-After's second.
    assert!(started.elapsed() >= Duration::from_secs(1));
    stop(&rw, &shutdown).await;
    let limited = [("remote", "vm"), ("reason", "rate_limited")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_failures_total",
            &limited
        ),
        1.0
    );
    assert_eq!(receiver.seen().len(), 2);
}

#[tokio::test]
async fn client_error_is_not_retried_but_counted_and_logged_once() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let refused = Reply {
        body: "out of order sample for series up{host=\"web1\"}",
        ..reply(400)
    };
    let (receiver, port) = fake_receiver([refused.clone(), refused]).await;
    let mut config = config(&format!("http://127.0.0.1:{port}/api/v1/write"));
    config.name = Some("vm".to_owned());
    config.max_samples_per_send = 2;
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], metrics.registry(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("up", 0..6)]);
    until("three batches answered", || receiver.seen().len() == 3).await;
    stop(&rw, &shutdown).await;

    assert_eq!(
        receiver.seen().len(),
        3,
        "a refused batch is never sent again"
    );
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        accepted[0].timeseries[0].samples[0].timestamp,
        1_700_000_000_004
    );
    let rejected = [("remote", "vm"), ("result", "dropped_rejected")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_samples_total",
            &rejected
        ),
        4.0
    );
    let retries = [("remote", "vm")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_retries_total",
            &retries
        ),
        0.0
    );
    let text = logs.text();
    let refusals: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("remote write batch refused"))
        .collect();
    assert_eq!(
        refusals.len(),
        1,
        "the same refusal is logged once:\n{text}"
    );
    assert!(refusals[0].contains("HTTP 400"), "{text}");
    assert!(refusals[0].contains("out of order sample"), "{text}");
}

#[tokio::test]
async fn slow_server_times_out_and_is_retried() {
    let slow = Reply {
        delay: Duration::from_secs(5),
        ..reply(200)
    };
    let (receiver, port) = fake_receiver([slow]).await;
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let mut config = config(&url);
    config.timeout = muster_shared::config::Duration(Duration::from_millis(200));
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], metrics.registry(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("up", 0..2)]);
    until("a second attempt after the timeout", || {
        receiver.seen().len() >= 2
    })
    .await;
    stop(&rw, &shutdown).await;
    let timeouts = [("remote", url.as_str()), ("reason", "timeout")];
    assert!(
        metric(
            &metrics,
            "muster_collector_remote_write_failures_total",
            &timeouts
        ) >= 1.0
    );
    let sent = [("remote", url.as_str()), ("result", "sent")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_samples_total",
            &sent
        ),
        2.0
    );
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_counts_them() {
    let (receiver, port) = fake_receiver([]).await;
    let mut config = config(&format!("http://127.0.0.1:{port}/api/v1/write"));
    config.name = Some("vm".to_owned());
    config.queue_capacity = 10;
    config.max_samples_per_send = 10;
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], metrics.registry(), shutdown.clone()).unwrap();
    // No await between the pushes: the sender cannot take anything in between.
    rw.enqueue(&[series("a", 0..8)]);
    rw.enqueue(&[series("b", 0..8)]);
    let queued = [("remote", "vm")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_queue_samples",
            &queued
        ),
        10.0
    );
    stop(&rw, &shutdown).await;
    let dropped = [("remote", "vm"), ("result", "dropped_queue_full")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_samples_total",
            &dropped
        ),
        6.0
    );
    let accepted = receiver.accepted();
    let kept: Vec<(String, i64)> = accepted
        .iter()
        .flat_map(|r| &r.timeseries)
        .flat_map(|s| {
            let name = s.labels[0].value.clone();
            s.samples
                .iter()
                .map(move |p| (name.clone(), p.timestamp - 1_700_000_000_000))
        })
        .collect();
    let expected: Vec<(String, i64)> = (6..8)
        .map(|t| ("a".to_owned(), t))
        .chain((0..8).map(|t| ("b".to_owned(), t)))
        .collect();
    assert_eq!(kept, expected, "the newest ten are sent at shutdown");
}

#[tokio::test]
async fn credentials_never_reach_labels_errors_or_logs() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let (receiver, port) = fake_receiver([Reply {
        body: "internal error",
        ..reply(503)
    }])
    .await;
    let with_credentials =
        format!("http://alice:hunter2@127.0.0.1:{port}/api/v1/write?api_key=querysecret");
    // Nothing listens on port 1: connection refused, an error that reqwest would show
    // with its URL.
    let refused = "http://bob:pa55word@127.0.0.1:1/api/v1/write?token=urltoken";
    let mut bearer = config(&format!("http://127.0.0.1:{port}/api/v1/write"));
    bearer.name = Some("bearer".to_owned());
    bearer.bearer_token = Some(muster_shared::config::Secret::new("tokensecret"));
    bearer.headers.insert(
        "X-Scope-OrgID".to_owned(),
        muster_shared::config::Secret::new("tenantsecret"),
    );
    let mut configs = [config(&with_credentials), config(refused), bearer];
    for c in &mut configs {
        // The unreachable endpoint retries until this deadline once stopped.
        c.flush_deadline = muster_shared::config::Duration(Duration::from_millis(200));
    }
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&configs, metrics.registry(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("up", 0..1)]);
    until("both reachable endpoints accept", || {
        receiver.accepted().len() == 2
    })
    .await;
    until("the unreachable endpoint failed twice", || {
        logs.text().contains("remote write failed") && {
            let families = metrics.registry().gather();
            families
                .iter()
                .find(|f| f.name() == "muster_collector_remote_write_retries_total")
                .is_some_and(|f| {
                    f.get_metric()
                        .iter()
                        .any(|m| m.get_counter().get_value() >= 2.0)
                })
        }
    })
    .await;
    stop(&rw, &shutdown).await;

    // The receiver got the credentials as headers.
    let seen = receiver.seen();
    let auth: Vec<String> = seen
        .iter()
        .filter_map(|r| r.headers.get("authorization"))
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        auth.contains(&"Basic YWxpY2U6aHVudGVyMg==".to_owned()),
        "{auth:?}"
    );
    assert!(auth.contains(&"Bearer tokensecret".to_owned()), "{auth:?}");
    assert!(seen.iter().any(|r| {
        r.headers
            .get("x-scope-orgid")
            .is_some_and(|v| v == "tenantsecret")
    }));

    // ...and nothing else ever shows them.
    let shown = format!(
        "{}\n{}\n{:?}\n{:?}",
        logs.text(),
        metrics.render(),
        rw.remotes(),
        configs
    );
    for secret in [
        "alice",
        "hunter2",
        "querysecret",
        "bob",
        "pa55word",
        "urltoken",
        "tokensecret",
        "tenantsecret",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
    assert!(
        shown.contains(&format!(
            "http://<redacted>@127.0.0.1:{port}/api/v1/write?api_key=<redacted>"
        )),
        "{shown}"
    );

    // A config error names the endpoint without its secret.
    let mut bad = config(refused);
    bad.bearer_token = Some(muster_shared::config::Secret::new("tokensecret"));
    let err = RemoteWrite::start(
        &[bad],
        &prometheus::Registry::new(),
        CancellationToken::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("carries credentials"), "{err}");
    for secret in ["bob", "pa55word", "urltoken", "tokensecret"] {
        assert!(!err.contains(secret), "{secret} leaked: {err}");
    }
}

#[tokio::test]
async fn a_send_error_text_holds_no_secret() {
    let config = config("http://bob:pa55word@127.0.0.1:1/w?token=urltoken");
    let transport = client::HttpTransport::new(&config, &config.remote()).unwrap();
    let body = encode::encode_body(&WriteRequest::default()).unwrap();
    let err = client::Transport::send(&transport, body).await.unwrap_err();
    assert!(err.retryable(), "{err}");
    assert_eq!(err.reason(), "network");
    let text = format!("{err} {err:?}");
    for secret in ["bob", "pa55word", "urltoken"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(
        text.contains("http://<redacted>@127.0.0.1:1/w?token=<redacted>"),
        "{text}"
    );
}

#[tokio::test]
async fn https_with_a_ca_file_verifies_the_receiver() {
    use muster_shared::tls::{CertificateAuthority, Identity, Role};
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let leaf = ca
        .issue(
            &Role::Collector,
            &["127.0.0.1".to_owned()],
            Duration::from_secs(3600),
        )
        .unwrap();
    let identity = Identity::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap();
    let tls =
        muster_shared::tls::server_config_without_client_auth(ca.cert_pem(), identity).unwrap();
    let (receiver, port) = fake_receiver_with(Some(tls), []).await;

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let mut config = config(&format!("https://127.0.0.1:{port}/api/v1/write"));
    config.ca_file = Some(ca_file.clone());
    let err = RemoteWrite::start(
        std::slice::from_ref(&config),
        &prometheus::Registry::new(),
        CancellationToken::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(&ca_file.display().to_string()),
        "a missing ca_file is named: {err}"
    );

    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], &prometheus::Registry::new(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("up", 0..2)]);
    until("the https receiver accepts", || {
        receiver.accepted().len() == 1
    })
    .await;
    stop(&rw, &shutdown).await;
}

#[tokio::test]
async fn https_refuses_a_receiver_outside_the_ca_file() {
    use muster_shared::tls::{CertificateAuthority, Identity, Role};
    let (ca, other) = (
        CertificateAuthority::generate("test CA").unwrap(),
        CertificateAuthority::generate("someone else").unwrap(),
    );
    let leaf = other
        .issue(
            &Role::Collector,
            &["127.0.0.1".to_owned()],
            Duration::from_secs(3600),
        )
        .unwrap();
    let identity = Identity::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap();
    let tls =
        muster_shared::tls::server_config_without_client_auth(other.cert_pem(), identity).unwrap();
    let (receiver, port) = fake_receiver_with(Some(tls), []).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let mut config = config(&format!("https://127.0.0.1:{port}/api/v1/write"));
    config.ca_file = Some(ca_file);
    config.name = Some("tls".to_owned());
    config.flush_deadline = muster_shared::config::Duration(Duration::from_millis(100));
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], metrics.registry(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("up", 0..2)]);
    let network = [("remote", "tls"), ("reason", "network")];
    until("the handshake fails", || {
        metric(
            &metrics,
            "muster_collector_remote_write_failures_total",
            &network,
        ) >= 1.0
    })
    .await;
    stop(&rw, &shutdown).await;
    assert!(receiver.seen().is_empty());
}
