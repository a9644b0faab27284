//! The HTTP side every receiver kind shares: setting up a client from its config (URL,
//! secrets, TLS roots, timeout), sending one request, classifying the answer with the
//! shared classifier, and keeping secrets out of every error.
//!
//! A receiver's URL is never shown: errors name the receiver by its config name and kind,
//! reqwest's errors lose their URL, and every text goes through the receiver's
//! [`Secrets::scrub`] (`redact.rs`), an answer's body included.
//!
//! Leaves out what to send (each kind) and when to retry (the outbox).

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{self, HeaderMap};
use serde::de::DeserializeOwned;
use url::Url;

use super::ReceiverKind;
use super::config::{ReceiverConfig, parse_url};
use super::error::{FailureReason, NotifyError, ReceiverError, classify_status, parse_retry_after};
use super::redact::Secrets;
use crate::scrape::client::error_chain;

/// Bytes of an answer read at most (enough for any service's error JSON).
const ANSWER_LIMIT: usize = 64 * 1024;
/// Characters of an answer quoted in an error.
const EXCERPT_CHARS: usize = 300;

/// Credentials of a `webhook` or `alertmanager` receiver.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// HTTP basic authentication.
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

impl Auth {
    /// The credentials `config` names (`bearer_token`, `bearer_token_file`, `basic_auth`),
    /// read from their files; each secret is added to `secrets`.
    ///
    /// # Errors
    /// [`ReceiverError::ReadFile`] naming the file.
    pub fn from_config(
        config: &ReceiverConfig,
        secrets: &mut Secrets,
    ) -> Result<Option<Self>, ReceiverError> {
        let token = read_secret(
            config,
            config.bearer_token.as_ref().map(|s| s.expose()),
            config.bearer_token_file.as_deref(),
            "bearer_token_file",
        )?;
        if let Some(token) = token {
            secrets.add(&token);
            return Ok(Some(Auth::Bearer(token)));
        }
        let Some(basic) = &config.basic_auth else {
            return Ok(None);
        };
        let password = read_secret(
            config,
            basic.password.as_ref().map(|s| s.expose()),
            basic.password_file.as_deref(),
            "basic_auth.password_file",
        )?
        .unwrap_or_default();
        secrets.add(&password);
        Ok(Some(Auth::Basic {
            username: basic.username.clone(),
            password,
        }))
    }

    /// `request` with these credentials.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
        }
    }
}

/// A secret given inline or in a file (one trailing newline ignored); `None` when neither.
///
/// # Errors
/// [`ReceiverError::ReadFile`] naming `file_key` and the file.
pub fn read_secret(
    config: &ReceiverConfig,
    inline: Option<&str>,
    file: Option<&Path>,
    file_key: &'static str,
) -> Result<Option<String>, ReceiverError> {
    match (inline, file) {
        (Some(value), _) => Ok(Some(value.to_owned())),
        (None, Some(path)) => muster_shared::config::Secret::from_file(path)
            .map(|s| Some(s.expose().to_owned()))
            .map_err(|_| ReceiverError::ReadFile {
                receiver: config.name.clone(),
                key: file_key,
                path: path.to_owned(),
            }),
        (None, None) => Ok(None),
    }
}

/// The receiver's URL from `url` or `url_file`, or `default` when neither is set.
///
/// # Errors
/// [`ReceiverError::ReadFile`], or [`ReceiverError::Url`] when the text is not an `http(s)`
/// URL (the text is not repeated).
pub fn receiver_url(config: &ReceiverConfig, default: Option<&str>) -> Result<Url, ReceiverError> {
    let text = read_secret(
        config,
        config.url.as_ref().map(|s| s.expose()),
        config.url_file.as_deref(),
        "url_file",
    )?
    .or_else(|| default.map(str::to_owned))
    .ok_or_else(|| ReceiverError::Url {
        receiver: config.name.clone(),
        reason: "no url".to_owned(),
    })?;
    parse_url(&text).map_err(|reason| ReceiverError::Url {
        receiver: config.name.clone(),
        reason: format!("url {reason}"),
    })
}

/// One answer: status, headers, and the body's first 64 KiB.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (its first 64 KiB).
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON of type `T`, `None` when it is not.
    pub fn json<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One receiver's HTTP client: no redirects, a timeout on every request, and errors that
/// name the receiver and hold no secret.
#[derive(Debug)]
pub struct HttpSender {
    client: reqwest::Client,
    receiver: String,
    kind: ReceiverKind,
    timeout: Duration,
    secrets: Secrets,
}

impl HttpSender {
    /// The client of `config`'s receiver sending to `url`; every secret in `url` joins
    /// `secrets`. Reads `ca_file` or the system's CA bundle for `https` (blocking, once).
    ///
    /// # Errors
    /// [`ReceiverError::Tls`] or [`ReceiverError::Client`].
    pub fn new(
        config: &ReceiverConfig,
        url: &Url,
        mut secrets: Secrets,
    ) -> Result<Self, ReceiverError> {
        secrets.add_url(url);
        let tls =
            crate::remote_write::client_tls(config.ca_file.as_deref(), url.scheme() == "https")
                .map_err(|source| ReceiverError::Tls {
                    receiver: config.name.clone(),
                    source,
                })?;
        let timeout = config.timeout.get();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(crate::remote_write::user_agent())
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ReceiverError::Client {
                receiver: config.name.clone(),
                reason: secrets.scrub(&error_chain(&e.without_url())),
            })?;
        Ok(Self {
            client,
            receiver: config.name.clone(),
            kind: config.kind,
            timeout,
            secrets,
        })
    }

    /// A `POST` to `url`, to be completed by the kind and given to [`Self::execute`].
    pub fn post(&self, url: &Url) -> reqwest::RequestBuilder {
        self.client.post(url.clone())
    }

    /// Sends `request` once and reads the answer, whatever its status, within the
    /// receiver's timeout.
    ///
    /// # Errors
    /// A retryable [`NotifyError`]: [`FailureReason::Timeout`] or
    /// [`FailureReason::Network`] (connection, DNS, TLS).
    pub async fn execute(&self, request: reqwest::RequestBuilder) -> Result<Reply, NotifyError> {
        let exchange = async {
            let response = request.send().await.map_err(|e| self.transport_error(e))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = read_limited(response).await;
            Ok(Reply {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(self.timeout_error()))
    }

    /// The shared classifier applied to `reply`: `Ok` for 2xx; else an error with the
    /// status's reason, `Retry-After` when given, and an excerpt of the body.
    ///
    /// # Errors
    /// The [`NotifyError`] for a non-2xx status.
    pub fn check(&self, reply: &Reply) -> Result<(), NotifyError> {
        let Some((reason, retryable)) = classify_status(reply.status) else {
            return Ok(());
        };
        let retry_after = if retryable {
            reply
                .header(header::RETRY_AFTER.as_str())
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
        } else {
            None
        };
        Err(self.status_error(
            reply,
            reason,
            retryable,
            retry_after,
            &self.excerpt(&reply.body),
        ))
    }

    /// An error about `reply` with a reason, retry decision and detail chosen by the kind
    /// (where its service differs from the shared classifier). `detail` is scrubbed.
    pub fn status_error(
        &self,
        reply: &Reply,
        reason: FailureReason,
        retryable: bool,
        retry_after: Option<Duration>,
        detail: &str,
    ) -> NotifyError {
        let message = self.secrets.scrub(&format!(
            "{} receiver {:?}: answered HTTP {}: {detail}",
            self.kind.as_str(),
            self.receiver,
            reply.status
        ));
        NotifyError {
            reason,
            retryable,
            retry_after: retry_after.filter(|_| retryable),
            message,
        }
    }

    /// An error found before or without a request (a body that cannot be built).
    pub fn local_error(&self, reason: FailureReason, detail: &str) -> NotifyError {
        NotifyError::permanent(
            reason,
            self.secrets.scrub(&format!(
                "{} receiver {:?}: {detail}",
                self.kind.as_str(),
                self.receiver
            )),
        )
    }

    /// The body's start as text, scrubbed, for an error (`(empty body)` when empty).
    pub fn excerpt(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            return "(empty body)".to_owned();
        }
        let mut excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
        if excerpt.len() < text.len() {
            excerpt.push('…');
        }
        self.secrets.scrub(&excerpt.replace(['\n', '\r'], " "))
    }

    fn transport_error(&self, err: reqwest::Error) -> NotifyError {
        if err.is_timeout() {
            return self.timeout_error();
        }
        let builder = err.is_builder();
        let text = self.secrets.scrub(&format!(
            "{} receiver {:?}: {}",
            self.kind.as_str(),
            self.receiver,
            error_chain(&err.without_url())
        ));
        if builder {
            // The request itself could not be made (a header value HTTP cannot carry):
            // sending it again would fail the same way.
            return NotifyError::permanent(FailureReason::RejectedBody, text);
        }
        NotifyError::retryable(FailureReason::Network, text, None)
    }

    fn timeout_error(&self) -> NotifyError {
        NotifyError::retryable(
            FailureReason::Timeout,
            format!(
                "{} receiver {:?}: no answer within {:?}",
                self.kind.as_str(),
                self.receiver,
                self.timeout
            ),
            None,
        )
    }
}

async fn read_limited(mut response: reqwest::Response) -> Bytes {
    let mut body: Vec<u8> = Vec::new();
    while body.len() < ANSWER_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(ANSWER_LIMIT);
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alert::notify::testkit::{self, Expect, TestServer, reply};

    fn sender(url: &Url, timeout: Duration) -> HttpSender {
        let mut config = ReceiverConfig::new("hook", ReceiverKind::Webhook);
        config.timeout = muster_shared::config::Duration(timeout);
        HttpSender::new(&config, url, Secrets::default()).unwrap()
    }

    #[tokio::test]
    async fn a_slow_answer_is_a_retryable_timeout() {
        let server = TestServer::start(testkit::Reply {
            delay: Duration::from_secs(2),
            ..reply(200, "")
        })
        .await;
        let url = Url::parse(&server.url("/hook")).unwrap();
        let http = sender(&url, Duration::from_millis(100));
        let err = http.execute(http.post(&url)).await.unwrap_err();
        Expect::retry(FailureReason::Timeout).check(&err);
        assert!(err.message.contains("no answer within 100ms"), "{err}");
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_made_is_permanent() {
        let url = Url::parse("http://127.0.0.1:1/hook").unwrap();
        let http = sender(&url, Duration::from_secs(1));
        let err = http
            .execute(http.post(&url).header("Title", "line\nbreak"))
            .await
            .unwrap_err();
        Expect::permanent(FailureReason::RejectedBody).check(&err);
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        let url = Url::parse("http://127.0.0.1:1/hook").unwrap();
        let http = sender(&url, Duration::from_secs(1));
        assert_eq!(http.excerpt(b"  \n"), "(empty body)");
        assert_eq!(http.excerpt(b"bad\r\nthing"), "bad  thing");
        let long = "x".repeat(1000);
        let excerpt = http.excerpt(long.as_bytes());
        assert_eq!(excerpt.chars().count(), EXCERPT_CHARS + 1);
        assert!(excerpt.ends_with('…'));
    }
}
