//! One HTTP request to a remote write endpoint, and what its outcome means for a retry.
//!
//! Owns: the reqwest client (rustls with the ring provider; roots from `ca_file` or the
//! system's PEM bundle), the protocol's headers and auth, the timeout, and turning every
//! failure into a [`SendError`] that says whether a retry can help. Error texts never hold
//! a secret: reqwest's errors lose their URL, the URL is shown redacted, and any secret
//! value that still appears is replaced.
//!
//! Leaves out: when to retry and how long to wait (the sender).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::RemoteWriteError;
use super::config::RemoteWriteConfig;
use super::encode;
use super::url::REDACTED;
use crate::scrape::client::error_chain;

/// How much of a refusing receiver's body goes into the error.
const BODY_EXCERPT_BYTES: usize = 512;
/// Where the system's CA bundle is looked for when `ca_file` is not set (Debian/Ubuntu and
/// Alpine, then Fedora/RHEL).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Why one request failed. The text names the endpoint by its `remote` label and never
/// holds a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The receiver answered with a status other than 2xx.
    #[error("{remote}: answered HTTP {status}: {body}")]
    Status {
        /// The endpoint's `remote` label.
        remote: String,
        /// The HTTP status.
        status: u16,
        /// The first bytes of the answer's body, lossily decoded.
        body: String,
        /// The delay asked for by `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Connection, TLS or transport failure.
    #[error("{remote}: {reason}")]
    Network {
        /// The endpoint's `remote` label.
        remote: String,
        /// The error chain, without URL or secret.
        reason: String,
    },
    /// No complete answer within the configured timeout.
    #[error("{remote}: no answer within {after:?}")]
    Timeout {
        /// The endpoint's `remote` label.
        remote: String,
        /// The timeout.
        after: Duration,
    },
}

impl SendError {
    /// Whether sending the same batch again can succeed: 5xx, 429, network and timeout
    /// failures yes; any other status no (the remote write spec forbids retrying them).
    pub fn retryable(&self) -> bool {
        match self {
            SendError::Status { status, .. } => status_is_retryable(*status),
            SendError::Network { .. } | SendError::Timeout { .. } => true,
        }
    }

    /// A short reason for the failures counter's `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            SendError::Status { status: 429, .. } => "rate_limited",
            SendError::Status { status, .. } if *status >= 500 => "server_error",
            SendError::Status { .. } => "client_error",
            SendError::Network { .. } => "network",
            SendError::Timeout { .. } => "timeout",
        }
    }

    /// The delay the receiver asked for with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The shared classifier: 5xx and 429 are worth a retry, every other non-2xx is not.
pub fn status_is_retryable(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// Sends one encoded body; the sender's seam, so its tests can use a fake.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Sends `body` once.
    fn send(&self, body: Bytes) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// The HTTP client of one endpoint.
#[derive(Debug)]
pub(crate) struct HttpTransport {
    http: reqwest::Client,
    url: Url,
    remote: String,
    headers: HeaderMap,
    /// `basic_auth`'s user and password; reqwest marks the header sensitive.
    basic: Option<(String, String)>,
    timeout: Duration,
    /// Every secret value, replaced in error texts should one ever appear there.
    secrets: Vec<String>,
}

impl HttpTransport {
    /// The client for `config`. Reads `ca_file` (or the system bundle for `https`) and the
    /// `*_file` secrets: blocking file I/O, once, at start.
    ///
    /// # Errors
    /// [`RemoteWriteError`] naming the endpoint and the file or header at fault.
    pub fn new(config: &RemoteWriteConfig, remote: &str) -> Result<Self, RemoteWriteError> {
        let url = config.url.expose().clone();
        let mut secrets: Vec<String> = Vec::new();
        if !url.username().is_empty() {
            secrets.push(url.username().to_owned());
        }
        secrets.extend(url.password().map(str::to_owned));
        secrets.extend(url.query_pairs().map(|(_, v)| v.into_owned()));

        let mut headers = HeaderMap::new();
        let header_err = |name: &str| RemoteWriteError::Header {
            remote: remote.to_owned(),
            name: name.to_owned(),
        };
        for (name, value) in &config.headers {
            let header_name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| header_err(name))?;
            let mut header_value =
                HeaderValue::from_str(value.expose()).map_err(|_| header_err(name))?;
            header_value.set_sensitive(true);
            headers.insert(header_name, header_value);
            secrets.push(value.expose().to_owned());
        }
        let token = match (&config.bearer_token, &config.bearer_token_file) {
            (Some(token), _) => Some(token.expose().to_owned()),
            (None, Some(path)) => Some(read_secret(path, remote, "bearer_token_file")?),
            (None, None) => None,
        };
        if let Some(token) = token {
            headers.insert(
                header::AUTHORIZATION,
                sensitive(&format!("Bearer {token}")).map_err(|_| header_err("bearer_token"))?,
            );
            secrets.push(token);
        }
        let mut basic = None;
        if let Some(auth) = &config.basic_auth {
            let password = match (&auth.password, &auth.password_file) {
                (Some(password), _) => password.expose().to_owned(),
                (None, Some(path)) => read_secret(path, remote, "basic_auth.password_file")?,
                (None, None) => String::new(),
            };
            secrets.push(password.clone());
            basic = Some((auth.username.clone(), password));
        }
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encode::CONTENT_ENCODING),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encode::CONTENT_TYPE),
        );
        headers.insert(
            HeaderName::from_static(encode::VERSION_HEADER),
            HeaderValue::from_static(encode::VERSION),
        );

        let tls = tls_config(config, remote)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(encode::user_agent())
            .timeout(config.timeout.get())
            .connect_timeout(config.timeout.get())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RemoteWriteError::Client {
                remote: remote.to_owned(),
                reason: error_chain(&e.without_url()),
            })?;
        Ok(Self {
            http,
            url,
            remote: remote.to_owned(),
            headers,
            basic,
            timeout: config.timeout.get(),
            // Very short values would scrub ordinary words out of error texts.
            secrets: secrets.into_iter().filter(|s| s.len() >= 3).collect(),
        })
    }

    async fn post(&self, body: Bytes) -> Result<(), SendError> {
        let mut request = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone());
        if let Some((username, password)) = &self.basic {
            request = request.basic_auth(username, Some(password));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status.is_success() {
            // Receivers' bodies carry nothing for us; reading it lets the connection be reused.
            let _ = response.bytes().await;
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = read_excerpt(response).await;
        Err(SendError::Status {
            remote: self.remote.clone(),
            status: status.as_u16(),
            body: self.scrub(&body),
            retry_after,
        })
    }

    fn transport_error(&self, err: reqwest::Error) -> SendError {
        if err.is_timeout() {
            return SendError::Timeout {
                remote: self.remote.clone(),
                after: self.timeout,
            };
        }
        SendError::Network {
            remote: self.remote.clone(),
            reason: self.scrub(&error_chain(&err.without_url())),
        }
    }

    /// `text` with every known secret replaced.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        text
    }
}

impl Transport for HttpTransport {
    async fn send(&self, body: Bytes) -> Result<(), SendError> {
        tokio::time::timeout(self.timeout, self.post(body))
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Timeout {
                    remote: self.remote.clone(),
                    after: self.timeout,
                })
            })
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, header::InvalidHeaderValue> {
    let mut value = HeaderValue::from_str(value)?;
    value.set_sensitive(true);
    Ok(value)
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

async fn read_excerpt(mut response: reqwest::Response) -> String {
    let mut bytes: Vec<u8> = Vec::new();
    while bytes.len() < BODY_EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let truncated = bytes.len() > BODY_EXCERPT_BYTES;
    bytes.truncate(BODY_EXCERPT_BYTES);
    let mut text = String::from_utf8_lossy(&bytes).trim().to_owned();
    if truncated {
        text.push_str("...");
    }
    if text.is_empty() {
        "(empty body)".clone_into(&mut text);
    }
    text
}

fn read_secret(path: &Path, remote: &str, what: &'static str) -> Result<String, RemoteWriteError> {
    muster_shared::config::Secret::from_file(path)
        .map(|s| s.expose().to_owned())
        .map_err(|_| RemoteWriteError::ReadFile {
            remote: remote.to_owned(),
            what,
            path: path.to_owned(),
        })
}

/// rustls with the ring provider; roots from `ca_file`, else (for `https`) the system
/// bundle. A plain `http` endpoint gets an empty root store: it never handshakes.
fn tls_config(
    config: &RemoteWriteConfig,
    remote: &str,
) -> Result<rustls::ClientConfig, RemoteWriteError> {
    client_tls(config.ca_file.as_deref(), config.url.is_https()).map_err(|err| match err {
        ClientTlsError::CaFile { path, reason } => RemoteWriteError::CaFile {
            remote: remote.to_owned(),
            path,
            reason,
        },
        ClientTlsError::NoSystemRoots => RemoteWriteError::NoSystemRoots {
            remote: remote.to_owned(),
        },
        ClientTlsError::Provider { reason } => RemoteWriteError::Client {
            remote: remote.to_owned(),
            reason,
        },
    })
}

/// Why [`client_tls`] could not build a TLS client configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientTlsError {
    /// The CA file (or the system bundle) could not be read or parsed.
    #[error("CA certificates {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// `https` without a CA file, and no system CA bundle found.
    #[error(
        "no ca_file given and no system CA bundle found \
         (/etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt)"
    )]
    NoSystemRoots,
    /// rustls refused the protocol versions (does not happen with the ring provider).
    #[error("{reason}")]
    Provider {
        /// What failed.
        reason: String,
    },
}

/// The TLS configuration of an outgoing HTTP client (remote write, alert receivers):
/// rustls with the ring provider, ALPN h2 and http/1.1, roots from `ca_file` (PEM) when
/// given, else for `https` the system's bundle (`/etc/ssl/certs/ca-certificates.crt` or
/// `/etc/pki/tls/certs/ca-bundle.crt`). Without `ca_file` and `https`, the root store is
/// empty: a plain `http` client never handshakes. Reads files: blocking I/O, once at start.
///
/// # Errors
/// [`ClientTlsError`] naming the file at fault, or the missing system bundle.
pub fn client_tls(
    ca_file: Option<&Path>,
    https: bool,
) -> Result<rustls::ClientConfig, ClientTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let ca_err = |path: &Path, reason: String| ClientTlsError::CaFile {
        path: path.to_owned(),
        reason,
    };
    if let Some(path) = ca_file {
        let pem = std::fs::read_to_string(path).map_err(|e| ca_err(path, e.to_string()))?;
        let certs =
            muster_shared::tls::parse_certs(&pem).map_err(|e| ca_err(path, e.to_string()))?;
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(path, e.to_string()))?;
        }
    } else if https {
        let (path, pem) = SYSTEM_CA_BUNDLES
            .iter()
            .find_map(|p| {
                std::fs::read_to_string(p)
                    .ok()
                    .map(|pem| (PathBuf::from(p), pem))
            })
            .ok_or(ClientTlsError::NoSystemRoots)?;
        let certs =
            muster_shared::tls::parse_certs(&pem).map_err(|e| ca_err(&path, e.to_string()))?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(ca_err(&path, "no usable certificate".to_owned()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientTlsError::Provider {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        for (status, retry) in [
            (500, true),
            (502, true),
            (503, true),
            (429, true),
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (409, false),
            (413, false),
            (301, false),
        ] {
            assert_eq!(status_is_retryable(status), retry, "{status}");
        }
        let err = SendError::Timeout {
            remote: "r".into(),
            after: Duration::from_secs(1),
        };
        assert!(err.retryable());
        assert_eq!(err.reason(), "timeout");
    }

    #[test]
    fn parses_retry_after_in_both_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let past = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(past, Some(Duration::ZERO));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let delay = parse_retry_after(&soon).unwrap();
        assert!(delay > Duration::from_secs(100) && delay <= Duration::from_secs(120));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
