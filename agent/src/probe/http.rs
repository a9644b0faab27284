//! The `http` kind: one HTTP(S) request, its status, body and certificate.
//!
//! Like blackbox_exporter's `http` prober: the request (method, headers, body) goes over a
//! fresh connection each run (no pooling, so every run proves a connection can be made, and
//! every https run sees the certificate), HTTP/1.1, no proxy, redirects followed up to a
//! limit. The run fails when no answer comes, when the final status is not accepted
//! (`valid_status_codes`, default any 2xx, as blackbox_exporter), or when the body does not
//! match `body_pattern` (`fail_if_body_not_matches_regexp`). At most [`MAX_BODY_BYTES`] of
//! the body are read.
//!
//! Series: `probe_http_status_code` (0 without an answer), `probe_http_content_length`
//! (the `Content-Length` header, -1 without one), `probe_http_redirects`, `probe_http_ssl`,
//! `probe_ssl_earliest_cert_expiry` (when the final request went over TLS, or a handshake
//! failed on the certificate), `probe_failed_due_to_regex` (with a `body_pattern`).
//!
//! Leaves out: HTTP/2, proxies, compression, client certificates, per-phase timings
//! (`probe_http_duration_seconds{phase}`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use muster_shared::config::Secret;
use reqwest::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};

use super::certs::{self, ChainExpiry, RootsCache, Trust};
use super::condition::Placeholder;
use super::config::{ProbeConfig, TextPattern};
use super::families::{
    FAILED_DUE_TO_REGEX, HTTP_CONTENT_LENGTH, HTTP_REDIRECTS, HTTP_SSL, HTTP_STATUS_CODE,
    SSL_EARLIEST_CERT_EXPIRY,
};
use super::{Outcome, ProbeError, Prober, reason_of};

/// The most of a body read (and matched) per run.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The most redirects `max_redirects` may allow.
pub const REDIRECTS_LIMIT: u32 = 100;

/// `[probe.http]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    /// The request method. Default `"GET"`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers. Values are kept secret (`Authorization`): never logged or shown.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// The request body. Default none.
    #[serde(default)]
    pub body: Option<String>,
    /// Accepted final status codes. Default (empty): any 2xx, as blackbox_exporter. With
    /// `follow_redirects = false`, list the 3xx you expect.
    #[serde(default)]
    pub valid_status_codes: Vec<u16>,
    /// The run fails unless the body (its first MiB) matches this regular expression
    /// (unanchored).
    #[serde(default)]
    pub body_pattern: Option<TextPattern>,
    /// Accept any certificate (still reporting its expiry). Default `false`.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Trust the CA certificates in this PEM file instead of the system's. Relative to the
    /// config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Follow redirects. Default `true`.
    #[serde(default = "default_follow_redirects")]
    pub follow_redirects: bool,
    /// The most redirects followed; past it the last redirect is the answer. Default 10;
    /// at most 100.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
}

fn default_method() -> String {
    "GET".to_owned()
}
fn default_follow_redirects() -> bool {
    true
}
fn default_max_redirects() -> u32 {
    10
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            method: default_method(),
            headers: BTreeMap::new(),
            body: None,
            valid_status_codes: Vec::new(),
            body_pattern: None,
            insecure_skip_verify: false,
            ca_file: None,
            follow_redirects: default_follow_redirects(),
            max_redirects: default_max_redirects(),
        }
    }
}

impl HttpOptions {
    /// Adds this table's problems to `out`, each prefixed with `who`. Header values are
    /// never shown.
    pub fn problems(&self, who: &str, out: &mut Vec<String>) {
        if Method::from_bytes(self.method.as_bytes()).is_err() {
            out.push(format!(
                "{who}: method {:?} is not an HTTP method",
                self.method
            ));
        }
        for (name, value) in &self.headers {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                out.push(format!("{who}: header name {name:?} is not valid"));
            } else if HeaderValue::from_str(value.expose()).is_err() {
                out.push(format!(
                    "{who}: the value of header {name:?} holds characters a header cannot"
                ));
            }
        }
        for code in &self.valid_status_codes {
            if !(100..=599).contains(code) {
                out.push(format!(
                    "{who}: valid_status_codes: {code} is not an HTTP status (100-599)"
                ));
            }
        }
        if self.max_redirects > REDIRECTS_LIMIT {
            out.push(format!(
                "{who}: max_redirects must be at most {REDIRECTS_LIMIT}"
            ));
        }
    }
}

/// Adds the problems of an http probe's `target` to `out`.
pub fn target_problems(target: &str, who: &str, out: &mut Vec<String>) {
    match Url::parse(target) {
        Err(err) => out.push(format!("{who}: target {target:?} is not a URL: {err}")),
        Ok(url) => {
            if !matches!(url.scheme(), "http" | "https") {
                out.push(format!(
                    "{who}: target {target:?} must be an http:// or https:// URL"
                ));
            }
            if !url.username().is_empty() || url.password().is_some() {
                // The target is a label on every series: a password there would be stored
                // and shown everywhere.
                out.push(format!(
                    "{who}: target must not hold credentials (they would be a label); send them in [probe.http] headers"
                ));
            }
        }
    }
}

/// An http probe, built once: its client keeps the TLS setup and the redirect policy.
#[derive(Debug)]
pub struct HttpProber {
    client: reqwest::Client,
    url: Url,
    method: Method,
    headers: HeaderMap,
    body: Option<Bytes>,
    valid_status_codes: Vec<u16>,
    body_pattern: Option<regex::Regex>,
    keep_body: bool,
    expiry: Arc<ChainExpiry>,
    redirects: Arc<AtomicU32>,
}

impl HttpProber {
    /// Builds the probe's client. `roots` shares the system bundle between probes.
    ///
    /// # Errors
    /// [`ProbeError`] for an unusable `ca_file`, a missing system bundle (https targets
    /// that verify), or settings the HTTP stack refuses.
    pub fn new(config: &ProbeConfig, roots: &mut RootsCache) -> Result<Self, ProbeError> {
        let options = config.http.clone().unwrap_or_default();
        let setup = |reason: String| ProbeError::Setup {
            probe: config.name.clone(),
            reason,
        };
        let url = Url::parse(&config.target).map_err(|e| setup(format!("target: {e}")))?;
        let method = Method::from_bytes(options.method.as_bytes())
            .map_err(|_| setup(format!("method {:?}", options.method)))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &options.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| setup(format!("header name {name:?}")))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| setup(format!("the value of header {name:?}")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }

        let expiry = Arc::new(ChainExpiry::default());
        let trust = Trust {
            insecure_skip_verify: options.insecure_skip_verify,
            ca_file: options.ca_file.as_deref(),
            roots_required: url.scheme() == "https",
        };
        let mut tls = certs::client_config(&config.name, trust, roots, expiry.clone())?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];

        let redirects = Arc::new(AtomicU32::new(0));
        let policy = if options.follow_redirects {
            let counter = redirects.clone();
            let max = options.max_redirects as usize;
            reqwest::redirect::Policy::custom(move |attempt| {
                // `previous` holds every URL requested so far: the nth redirect sees n.
                let n = attempt.previous().len();
                if n > max {
                    attempt.stop()
                } else {
                    counter.store(u32::try_from(n).unwrap_or(u32::MAX), Ordering::Relaxed);
                    attempt.follow()
                }
            })
        } else {
            reqwest::redirect::Policy::none()
        };
        let timeout = config.timeout.get();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("muster-agent/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(0)
            .http1_only()
            .no_proxy()
            .redirect(policy)
            .build()
            .map_err(|e| setup(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            url,
            method,
            headers,
            body: options.body.map(Bytes::from),
            valid_status_codes: options.valid_status_codes,
            body_pattern: options.body_pattern.map(|p| p.regex().clone()),
            keep_body: config
                .conditions
                .iter()
                .any(|c| c.placeholder() == Placeholder::Body),
            expiry,
            redirects,
        })
    }

    fn status_accepted(&self, status: u16) -> bool {
        if self.valid_status_codes.is_empty() {
            (200..=299).contains(&status)
        } else {
            self.valid_status_codes.contains(&status)
        }
    }

    fn record_expiry(&self, out: &mut Outcome) {
        if let Some(expiry) = self.expiry.get() {
            out.set(&SSL_EARLIEST_CERT_EXPIRY, certs::unix_seconds(expiry));
            out.facts.cert_expiry = Some(expiry);
        }
    }
}

impl Prober for HttpProber {
    async fn probe(&self, out: &mut Outcome) {
        out.set(&HTTP_STATUS_CODE, 0.0);
        out.set(&HTTP_CONTENT_LENGTH, 0.0);
        out.set(&HTTP_REDIRECTS, 0.0);
        out.set(&HTTP_SSL, 0.0);
        if self.body_pattern.is_some() {
            out.set(&FAILED_DUE_TO_REGEX, 0.0);
        }
        out.facts.connected = Some(false);
        self.expiry.clear();
        self.redirects.store(0, Ordering::Relaxed);

        let mut request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                // A handshake refused for its certificate still tells when it expires.
                self.record_expiry(out);
                out.fail(request_reason(&err));
                return;
            }
        };
        out.facts.connected = Some(true);
        let status = response.status().as_u16();
        out.set(&HTTP_STATUS_CODE, f64::from(status));
        out.facts.status = Some(status);
        out.set(
            &HTTP_REDIRECTS,
            f64::from(self.redirects.load(Ordering::Relaxed)),
        );
        if response.url().scheme() == "https" {
            out.set(&HTTP_SSL, 1.0);
            self.record_expiry(out);
        }
        let content_length = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        out.set(
            &HTTP_CONTENT_LENGTH,
            content_length.map_or(-1.0, |n| n as f64),
        );
        if !self.status_accepted(status) {
            out.fail(format!("status {status}"));
        }

        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY_BYTES - body.len();
                    body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or(&chunk));
                    if body.len() >= MAX_BODY_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    out.fail(request_reason(&err));
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&body);
        if let Some(pattern) = &self.body_pattern {
            let matched = pattern.is_match(&text);
            out.set(&FAILED_DUE_TO_REGEX, if matched { 0.0 } else { 1.0 });
            if !matched {
                out.fail("body did not match body_pattern");
            }
        }
        if self.keep_body {
            out.facts.body = Some(text.into_owned());
        }
    }
}

/// The bounded reason for a failed request.
fn request_reason(err: &reqwest::Error) -> Cow<'static, str> {
    if err.is_timeout() {
        return Cow::Borrowed("timeout");
    }
    let fallback = if err.is_connect() {
        "connection failed"
    } else if err.is_redirect() {
        "redirect failed"
    } else if err.is_body() || err.is_decode() {
        "reading the answer failed"
    } else {
        "request failed"
    };
    reason_of(err, fallback)
}

#[cfg(test)]
mod tests;
