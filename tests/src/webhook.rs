//! A webhook receiver for alerting tests and the alert latency benchmark: it records every
//! request (path, headers, body, arrival time) and can go away and come back on the same
//! port, so "receiver down for 60 s" is a real outage (connections refused), not a status.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio_util::sync::CancellationToken;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// The method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: SystemTime,
}

impl Received {
    /// The body as JSON (panics when it is not: a test's expectation).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body of {} is not JSON ({e}): {}",
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Log {
    received: Vec<Received>,
    /// The status answered; 200 by default.
    status: u16,
}

/// A running receiver on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct WebhookSink {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    rt: tokio::runtime::Runtime,
    serving: Option<CancellationToken>,
}

impl WebhookSink {
    /// Starts on a free loopback port, answering 200.
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut sink = Self {
            addr,
            log: Arc::new(Mutex::new(Log {
                received: Vec::new(),
                status: 200,
            })),
            rt,
            serving: None,
        };
        sink.serve(listener);
        sink
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `status` from now on (e.g. 503 to fail sends while accepting them).
    pub fn answer(&self, status: u16) {
        lock(&self.log).status = status;
    }

    /// Stops listening: connections are refused until [`WebhookSink::resume`].
    pub fn pause(&mut self) {
        if let Some(stop) = self.serving.take() {
            stop.cancel();
        }
        // The listener is dropped with the server task; wait until the port refuses.
        crate::wait_for("the paused webhook port to refuse connections", || {
            std::net::TcpStream::connect(self.addr)
                .is_err()
                .then_some(())
        });
    }

    /// Listens again on the same port.
    pub fn resume(&mut self) {
        let listener = crate::wait_for("the webhook port to be free again", || {
            std::net::TcpListener::bind(self.addr).ok()
        });
        self.serve(listener);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.log).received.clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        lock(&self.log).received.len()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        lock(&self.log).received.clear();
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let stop = CancellationToken::new();
        let router = Router::new().fallback(record).with_state(self.log.clone());
        let cancelled = stop.clone();
        self.rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { cancelled.cancelled().await })
                .await;
        });
        self.serving = Some(stop);
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        if let Some(stop) = self.serving.take() {
            stop.cancel();
        }
    }
}

async fn record(
    State(log): State<Arc<Mutex<Log>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut log = lock(&log);
    log.received.push(Received {
        method: method.to_string(),
        path: uri.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
        at: SystemTime::now(),
    });
    StatusCode::from_u16(log.status).unwrap_or(StatusCode::OK)
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
