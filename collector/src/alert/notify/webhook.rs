//! The generic JSON webhook: Alertmanager's webhook payload, version 4, exactly, so every
//! receiver written for Alertmanager works unchanged (research §6).
//!
//! `max_alerts` is applied by [`super::Receiver`] before this kind sees the notification,
//! and what it left out is in `truncatedAlerts`. A firing alert's `endsAt` is
//! `0001-01-01T00:00:00Z` (Go's zero time), as Alertmanager sends it. Optional bearer or
//! basic authentication. Answers: the shared classifier.

use serde::Serialize;

use super::config::ReceiverConfig;
use super::error::{FailureReason, ReceiverError};
use super::http::{Auth, HttpSender, receiver_url};
use super::redact::{SecretUrl, Secrets};
use super::render::rfc3339;
use super::{Delivered, Notifier, SendFuture};
use crate::alert::labels::LabelSet;
use crate::alert::model::{Notification, NotifiedAlert};

/// The payload's version.
const VERSION: &str = "4";
/// `endsAt` of an alert that has not ended: Go's zero time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A webhook receiver.
#[derive(Debug)]
pub struct Webhook {
    http: HttpSender,
    url: SecretUrl,
    auth: Option<Auth>,
}

/// Alertmanager's webhook message, version 4 (`notify/webhook/webhook.go`, `Message`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    receiver: &'a str,
    status: &'a str,
    alerts: Vec<PayloadAlert<'a>>,
    group_labels: &'a LabelSet,
    common_labels: LabelSet,
    common_annotations: LabelSet,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    version: &'static str,
    group_key: &'a str,
    truncated_alerts: usize,
}

/// One alert of the payload (Alertmanager's `template.Alert`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PayloadAlert<'a> {
    status: &'a str,
    labels: &'a LabelSet,
    annotations: &'a LabelSet,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: String,
}

impl Webhook {
    /// The receiver of `config`: reads its auth files if set.
    ///
    /// # Errors
    /// A secret file, the URL or TLS setup failed.
    pub fn new(config: &ReceiverConfig) -> Result<Self, ReceiverError> {
        let url = receiver_url(config, None)?;
        let mut secrets = Secrets::default();
        let auth = Auth::from_config(config, &mut secrets)?;
        let http = HttpSender::new(config, &url, secrets)?;
        Ok(Self {
            http,
            url: SecretUrl::new(url),
            auth,
        })
    }
}

impl Notifier for Webhook {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(&payload(n)).map_err(|e| {
                self.http
                    .local_error(FailureReason::RejectedBody, &e.to_string())
            })?;
            let mut request = self
                .http
                .post(self.url.expose())
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

fn payload(n: &Notification) -> Payload<'_> {
    Payload {
        receiver: &n.receiver,
        status: n.status.as_str(),
        alerts: n.alerts.iter().map(payload_alert).collect(),
        group_labels: &n.group_labels,
        common_labels: n.common_labels(),
        common_annotations: n.common_annotations(),
        external_url: &n.external_url,
        version: VERSION,
        group_key: &n.group_key,
        truncated_alerts: n.truncated_alerts,
    }
}

fn payload_alert(alert: &NotifiedAlert) -> PayloadAlert<'_> {
    PayloadAlert {
        status: alert.status.as_str(),
        labels: &alert.labels,
        annotations: &alert.annotations,
        starts_at: rfc3339(alert.starts_at_ms),
        ends_at: alert
            .ends_at_ms
            .map_or_else(|| ZERO_TIME.to_owned(), rfc3339),
        generator_url: &alert.generator_url,
        fingerprint: alert.fingerprint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::testkit::{self, TestServer, reply};
    use crate::alert::notify::{BasicAuth, Receiver, ReceiverKind};
    use muster_shared::config::Secret;

    fn config(url: &str) -> ReceiverConfig {
        let mut config = ReceiverConfig::new("ops-webhook", ReceiverKind::Webhook);
        config.url = Some(Secret::new(url));
        config.bearer_token = Some(Secret::new("webhookBEARER123"));
        config
    }

    fn receiver(url: &str) -> Receiver {
        Receiver::build(&config(url)).unwrap()
    }

    #[tokio::test]
    async fn body_is_alertmanagers_webhook_v4() {
        let server = TestServer::start(reply(200, "")).await;
        receiver(&server.url("/hooks/alerts"))
            .send(&testkit::two_alerts())
            .await
            .unwrap();
        let request = server.only_request();
        assert_eq!(
            request.header("authorization"),
            Some("Bearer webhookBEARER123")
        );
        assert_eq!(request.header("content-type"), Some("application/json"));
        testkit::assert_golden_json("webhook.json", &request.body);
    }

    #[tokio::test]
    async fn resolved_alerts_carry_their_end_and_max_alerts_counts_the_rest() {
        let server = TestServer::start(reply(200, "")).await;
        let mut c = config(&server.url("/hooks/alerts"));
        c.bearer_token = None;
        c.basic_auth = Some(BasicAuth {
            username: "am".into(),
            password: Some(Secret::new("basicPASS")),
            password_file: None,
        });
        c.max_alerts = 1;
        let r = Receiver::build(&c).unwrap();
        let mut n = testkit::two_alerts();
        n.alerts.push(testkit::resolved().alerts.remove(0));
        r.send(&n).await.unwrap();
        let request = server.only_request();
        assert_eq!(
            request.header("authorization"),
            Some("Basic YW06YmFzaWNQQVNT")
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["truncatedAlerts"], 2);
        assert_eq!(body["alerts"].as_array().unwrap().len(), 1);

        server.clear();
        r.send(&testkit::resolved()).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&server.only_request().body).unwrap();
        assert_eq!(body["status"], "resolved");
        assert_eq!(body["alerts"][0]["endsAt"], "2024-05-01T12:10:00Z");
        assert_eq!(body["alerts"][0]["startsAt"], "2024-05-01T11:58:30Z");
    }

    #[tokio::test]
    async fn statuses_classify_as_shared() {
        testkit::run_status_table(
            |url| receiver(&format!("{url}/hooks/alerts")),
            "",
            |status| format!("error {status}"),
        )
        .await;
    }

    #[tokio::test]
    async fn no_secret_reaches_an_error() {
        testkit::run_secret_check(
            |url| receiver(&format!("{url}/hooks/alerts?token=querySECRET99")),
            &["webhookBEARER123", "querySECRET99"],
        )
        .await;
    }
}
