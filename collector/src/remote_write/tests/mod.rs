//! [`RemoteWrite`] end to end against a fake receiver on 127.0.0.1 (axum): headers and body,
//! retries on 5xx, 429 and timeouts, no retry on 400, queue overflow, the shutdown flush, and
//! no secret in labels, errors or logs.
//!
//! Each test runs on a current-thread runtime, so the sender, the fake server and the log
//! capture share one thread. This file is the kit; the tests are in `delivery.rs`
//! (retries, refusals, timeouts, the queue), `secrets.rs` and `tls.rs`.

mod delivery;
mod secrets;
mod tls;

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
