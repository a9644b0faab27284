//! How a send fails: [`NotifyError`] with its [`FailureReason`] and whether a retry can
//! help, the one status classifier every receiver shares ([`classify_status`]), and the
//! `Retry-After` forms the services use.
//!
//! Owns classification only. Receivers build their errors through `http::HttpSender`, which
//! names the receiver and scrubs secrets; the outbox decides when to retry.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::remote_write::ClientTlsError;

/// The longest wait a service can ask for that is honoured; a longer one (or Discord's
/// value in milliseconds, reported in 2022) is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Why a send failed; the `reason` label of `muster_collector_notifications_failed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The service refused the request with a 4xx that is not about auth or the body
    /// (404 for a deleted webhook, 410 for an archived channel).
    ClientError,
    /// The service failed (5xx).
    ServerError,
    /// The credentials were refused (401, 403, Telegram's "bot was blocked").
    AuthError,
    /// The service asked us to slow down (429).
    RateLimited,
    /// No complete answer within the receiver's `timeout`.
    Timeout,
    /// Connection, DNS or TLS failure.
    Network,
    /// The service refused the message itself (400, 413, 422, or a 2xx whose body says
    /// it failed, like Slack's non-`ok` or Telegram's `"ok": false`).
    RejectedBody,
    /// The outbox holds a notification for a receiver name that is not configured (never
    /// returned by a receiver).
    UnknownReceiver,
}

impl FailureReason {
    /// Every reason, for creating label values at zero.
    pub const ALL: [FailureReason; 8] = [
        FailureReason::ClientError,
        FailureReason::ServerError,
        FailureReason::AuthError,
        FailureReason::RateLimited,
        FailureReason::Timeout,
        FailureReason::Network,
        FailureReason::RejectedBody,
        FailureReason::UnknownReceiver,
    ];

    /// The label value: `client_error`, `server_error`, `auth_error`, `rate_limited`,
    /// `timeout`, `network`, `rejected_body` or `unknown_receiver`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ClientError => "client_error",
            FailureReason::ServerError => "server_error",
            FailureReason::AuthError => "auth_error",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::Timeout => "timeout",
            FailureReason::Network => "network",
            FailureReason::RejectedBody => "rejected_body",
            FailureReason::UnknownReceiver => "unknown_receiver",
        }
    }
}

/// One failed send. The message names the receiver and kind and never holds a secret
/// (URL, token, password): receivers build it through the scrubbing HTTP helper.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotifyError {
    /// Why, for the failure counter.
    pub reason: FailureReason,
    /// Whether sending the same notification again can succeed.
    pub retryable: bool,
    /// The least wait the service asked for (429's `Retry-After`, Discord's and
    /// Telegram's `retry_after`), at most [`MAX_RETRY_AFTER`].
    pub retry_after: Option<Duration>,
    /// What happened, for logs and the outbox's `last_error`.
    pub message: String,
}

impl NotifyError {
    /// A failure a retry cannot fix.
    pub fn permanent(reason: FailureReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            retryable: false,
            retry_after: None,
            message: message.into(),
        }
    }

    /// A failure worth retrying, no sooner than `retry_after` if given.
    pub fn retryable(
        reason: FailureReason,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            reason,
            retryable: true,
            retry_after,
            message: message.into(),
        }
    }
}

/// The shared classifier of an HTTP status: `None` for 2xx (delivered), else the reason
/// and whether a retry can help. 5xx and 429 are retried; every other status is
/// permanent (401/403 `auth_error`; 400, 413, 422 `rejected_body`; the rest, 3xx
/// included since redirects are not followed, `client_error`). Network failures and
/// timeouts, which have no status, are retried by the HTTP helper.
pub fn classify_status(status: u16) -> Option<(FailureReason, bool)> {
    match status {
        200..=299 => None,
        429 => Some((FailureReason::RateLimited, true)),
        500..=599 => Some((FailureReason::ServerError, true)),
        401 | 403 => Some((FailureReason::AuthError, false)),
        400 | 413 | 422 => Some((FailureReason::RejectedBody, false)),
        _ => Some((FailureReason::ClientError, false)),
    }
}

/// A `Retry-After` header value: delay-seconds (a decimal fraction is accepted too) or an
/// HTTP-date (RFC 9110 §10.2.3), measured from `now`. A date in the past is zero; a
/// longer wait than [`MAX_RETRY_AFTER`] is cut to it; anything else is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return retry_after_seconds(seconds);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or_default()
            .min(MAX_RETRY_AFTER),
    )
}

/// A wait given as (fractional) seconds in a JSON body (Discord's and Telegram's
/// `retry_after`), cut to [`MAX_RETRY_AFTER`]; `None` for a negative or non-finite value.
pub fn retry_after_seconds(seconds: f64) -> Option<Duration> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        seconds.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

/// Why a receiver could not be built from its config. Texts name the receiver and never
/// hold a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiverError {
    /// Config rules failed; every problem is listed, each naming its key.
    #[error("invalid receivers config: {}", problems.join("; "))]
    Invalid {
        /// Each problem.
        problems: Vec<String>,
    },
    /// A `*_file` key's file could not be read.
    #[error("receiver {receiver:?}: cannot read {key} {}", path.display())]
    ReadFile {
        /// The receiver's name.
        receiver: String,
        /// The key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The URL read from `url_file` is not a usable URL.
    #[error("receiver {receiver:?}: {reason}")]
    Url {
        /// The receiver's name.
        receiver: String,
        /// What is wrong (the URL itself is not repeated).
        reason: String,
    },
    /// The TLS roots could not be loaded.
    #[error("receiver {receiver:?}: {source}")]
    Tls {
        /// The receiver's name.
        receiver: String,
        /// What failed.
        #[source]
        source: ClientTlsError,
    },
    /// The HTTP client could not be built.
    #[error("receiver {receiver:?}: cannot build the HTTP client: {reason}")]
    Client {
        /// The receiver's name.
        receiver: String,
        /// What failed.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        use FailureReason::*;
        for (status, expected) in [
            (200, None),
            (202, None),
            (204, None),
            (500, Some((ServerError, true))),
            (502, Some((ServerError, true))),
            (503, Some((ServerError, true))),
            (429, Some((RateLimited, true))),
            (400, Some((RejectedBody, false))),
            (413, Some((RejectedBody, false))),
            (401, Some((AuthError, false))),
            (403, Some((AuthError, false))),
            (404, Some((ClientError, false))),
            (410, Some((ClientError, false))),
            (301, Some((ClientError, false))),
        ] {
            assert_eq!(classify_status(status), expected, "{status}");
        }
    }

    #[test]
    fn parses_retry_after_as_seconds_or_date_and_clamps() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(120))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        // Discord's float seconds, and a value in milliseconds by mistake.
        assert_eq!(retry_after_seconds(0.25), Some(Duration::from_millis(250)));
        assert_eq!(retry_after_seconds(64_000.0), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after_seconds(f64::NAN), None);
    }

    #[test]
    fn reasons_have_distinct_labels() {
        let labels: std::collections::BTreeSet<&str> =
            FailureReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), FailureReason::ALL.len());
    }
}
