//! Alertmanager as a receiver: alerts pushed through its API v2 (`POST
//! {url}/api/v2/alerts`; API v1 was removed in 0.27), so an existing Alertmanager setup
//! (routes, silences, its own receivers, a cluster) takes over from here.
//!
//! The body (research §6) is a JSON array of `{labels, annotations, startsAt, endsAt,
//! generatorURL}`, one per alert. Alertmanager identifies an alert by its labels and
//! resolves it at `endsAt`, so:
//! - a firing alert gets `endsAt` = the push time + `lease` (default 4 minutes), a lease
//!   that every later push of the same alert renews (Prometheus does the same with
//!   4 × its resend delay);
//! - a resolved alert gets its resolve time, which ends it at once.
//!
//! The outbox delivers what the dispatcher gave it; re-pushing firing alerts before their
//! lease lapses is the dispatcher's repeat. Routes to this receiver must therefore use a
//! `repeat_interval` (and `group_interval`) of at most a quarter of the lease — `1m` with
//! the default lease — or Alertmanager resolves alerts that still fire.
//!
//! Empty label values are left out (an empty label is no label). Answers: the shared
//! classifier (400 for alerts Alertmanager refuses, with its reason in the body).

use std::time::Duration;

use serde::Serialize;

use super::config::ReceiverConfig;
use super::error::{FailureReason, ReceiverError};
use super::http::{Auth, HttpSender, receiver_url};
use super::redact::{SecretUrl, Secrets};
use super::render::rfc3339;
use super::{Delivered, Notifier, SendFuture};
use crate::alert::labels::LabelSet;
use crate::alert::model::{Notification, NotifyStatus};

/// An Alertmanager receiver.
#[derive(Debug)]
pub struct Alertmanager {
    http: HttpSender,
    /// `{url}/api/v2/alerts`.
    alerts_url: SecretUrl,
    auth: Option<Auth>,
    lease: Duration,
    /// The clock for `endsAt` of firing alerts (ms since the epoch).
    now_ms: fn() -> u64,
}

/// One alert of API v2's `postableAlerts`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: LabelSet,
    annotations: LabelSet,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    generator_url: String,
}

impl Alertmanager {
    /// The receiver of `config`: reads its auth files if set.
    ///
    /// # Errors
    /// A secret file, the URL or TLS setup failed.
    pub fn new(config: &ReceiverConfig) -> Result<Self, ReceiverError> {
        let base = receiver_url(config, None)?;
        let alerts_url = base
            .join(&format!(
                "{}/api/v2/alerts",
                base.path().trim_end_matches('/')
            ))
            .map_err(|_| ReceiverError::Url {
                receiver: config.name.clone(),
                reason: "url does not take the /api/v2/alerts path".to_owned(),
            })?;
        let mut secrets = Secrets::default();
        let auth = Auth::from_config(config, &mut secrets)?;
        let http = HttpSender::new(config, &alerts_url, secrets)?;
        Ok(Self {
            http,
            alerts_url: SecretUrl::new(alerts_url),
            auth,
            lease: config.lease(),
            now_ms: crate::unix_ms,
        })
    }

    fn body(&self, n: &Notification) -> Vec<PostableAlert> {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let now = (self.now_ms)();
        n.alerts
            .iter()
            .map(|alert| {
                let ends_at_ms = match (alert.status, alert.ends_at_ms) {
                    (NotifyStatus::Firing, _) => now.saturating_add(lease_ms),
                    (NotifyStatus::Resolved, Some(end)) => end,
                    (NotifyStatus::Resolved, None) => now,
                };
                PostableAlert {
                    labels: non_empty(&alert.labels),
                    annotations: non_empty(&alert.annotations),
                    starts_at: rfc3339(alert.starts_at_ms),
                    ends_at: rfc3339(ends_at_ms),
                    generator_url: alert.generator_url.clone(),
                }
            })
            .collect()
    }
}

impl Notifier for Alertmanager {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(&self.body(n)).map_err(|e| {
                self.http
                    .local_error(FailureReason::RejectedBody, &e.to_string())
            })?;
            let mut request = self
                .http
                .post(self.alerts_url.expose())
                .header("Content-Type", "application/json")
                .body(body);
            if let Some(auth) = &self.auth {
                request = auth.apply(request);
            }
            let reply = self.http.execute(request).await?;
            self.http.check(&reply)?;
            Ok(Delivered::default())
        })
    }
}

fn non_empty(set: &LabelSet) -> LabelSet {
    set.iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::testkit::{self, T0_MS, TestServer, reply};
    use crate::alert::notify::{Receiver, ReceiverKind};
    use muster_shared::config::Secret;

    fn config(url: &str) -> ReceiverConfig {
        let mut config = ReceiverConfig::new("alertmanager", ReceiverKind::Alertmanager);
        config.url = Some(Secret::new(url));
        config
    }

    /// The kind with a fixed clock: two minutes after T0.
    fn fixed(url: &str) -> Alertmanager {
        let mut am = Alertmanager::new(&config(url)).unwrap();
        am.now_ms = || T0_MS + 120_000;
        am
    }

    #[tokio::test]
    async fn body_is_api_v2_postable_alerts() {
        let server = TestServer::start(reply(200, "")).await;
        fixed(&server.url("/prefix/"))
            .send(&testkit::two_alerts())
            .await
            .unwrap();
        let request = server.only_request();
        assert_eq!(request.path, "/prefix/api/v2/alerts");
        assert_eq!(request.header("content-type"), Some("application/json"));
        // Firing: endsAt = 12:02:00 + the 4 minute lease.
        testkit::assert_golden_json("alertmanager.json", &request.body);
    }

    #[tokio::test]
    async fn resolved_alerts_end_at_their_resolve_time() {
        let server = TestServer::start(reply(200, "")).await;
        fixed(server.base())
            .send(&testkit::resolved())
            .await
            .unwrap();
        let request = server.only_request();
        assert_eq!(request.path, "/api/v2/alerts");
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body[0]["endsAt"], "2024-05-01T12:10:00Z");
        assert_eq!(body[0]["labels"]["alertname"], "HostDown");
    }

    #[test]
    fn lease_is_configurable() {
        let mut c = config("http://am:9093");
        c.lease = Some(muster_shared::config::Duration::from_secs(600));
        let mut am = Alertmanager::new(&c).unwrap();
        am.now_ms = || T0_MS;
        let body = am.body(&testkit::two_alerts());
        assert!(body.iter().all(|a| a.ends_at == "2024-05-01T12:10:00Z"));
    }

    #[tokio::test]
    async fn statuses_classify_as_shared() {
        testkit::run_status_table(
            |url| Receiver::build(&config(url)).unwrap(),
            "",
            |status| format!("\"error {status}\""),
        )
        .await;
    }

    #[tokio::test]
    async fn no_secret_reaches_an_error() {
        testkit::run_secret_check(
            |url| {
                let mut c = config(url);
                c.basic_auth = Some(crate::alert::notify::BasicAuth {
                    username: "muster".into(),
                    password: Some(Secret::new("amPASSWORD77")),
                    password_file: None,
                });
                Receiver::build(&c).unwrap()
            },
            &["amPASSWORD77"],
        )
        .await;
    }
}
