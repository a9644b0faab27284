//! Microsoft Teams through a Workflows (Power Automate) webhook, with an Adaptive Card.
//!
//! Office 365 connectors are being retired, and the default "post to a channel when a
//! webhook request is received" flow refuses MessageCards (research §7), so the body is
//! a `message` with one Adaptive Card 1.4 attachment (1.5 fails in some tenants): a title
//! coloured by the worst state, then per alert a container with its heading (naming the
//! host and the container or probe), summary, description and a fact set (host,
//! container or probe, severity, times, acknowledgement), and a button to the collector.
//!
//! Limits: Teams refuses messages past about 28 KB. Texts are cut (summary 500,
//! description 1,000 characters), at most 20 alerts are shown, and while the body is
//! still over 27,000 bytes, alerts are dropped from the end ("…and N more alerts").
//!
//! Answers: a Workflows webhook answers 202 Accepted (shared classifier); whether the
//! flow then posts is not visible to the sender. 429 carries `Retry-After`.

use serde_json::{Value, json};

use super::config::ReceiverConfig;
use super::error::ReceiverError;
use super::http::{HttpSender, receiver_url};
use super::redact::{SecretUrl, Secrets};
use super::render::{AlertText, Message, Tone};
use super::truncate::Truncator;
use super::{Delivered, Notifier, SendFuture};
use crate::alert::model::Notification;

/// Alerts shown, at most.
const MAX_ALERTS: usize = 20;
/// Bytes of the whole body, at most (Teams' limit is about 28 KB).
const BODY_BYTES: usize = 27_000;
/// Characters of the title and of a heading.
const TITLE_CHARS: usize = 256;
/// Characters of a summary.
const SUMMARY_CHARS: usize = 500;
/// Characters of a description.
const DESCRIPTION_CHARS: usize = 1000;
/// Characters of a fact's value.
const FACT_CHARS: usize = 256;

/// A Microsoft Teams receiver.
#[derive(Debug)]
pub struct Teams {
    http: HttpSender,
    url: SecretUrl,
}

impl Teams {
    /// The receiver of `config`.
    ///
    /// # Errors
    /// The URL or TLS setup failed.
    pub fn new(config: &ReceiverConfig) -> Result<Self, ReceiverError> {
        let url = receiver_url(config, None)?;
        let http = HttpSender::new(config, &url, Secrets::default())?;
        Ok(Self {
            http,
            url: SecretUrl::new(url),
        })
    }
}

impl Notifier for Teams {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let mut cut = Truncator::new();
            let body = body(n, &mut cut);
            let reply = self
                .http
                .execute(self.http.post(self.url.expose()).json(&body))
                .await?;
            self.http.check(&reply)?;
            Ok(Delivered {
                truncations: cut.cuts(),
            })
        })
    }
}

/// The JSON body for `n`, at most [`BODY_BYTES`] long.
fn body(n: &Notification, cut: &mut Truncator) -> Value {
    let message = Message::of(n);
    let blocks: Vec<Value> = message
        .alerts
        .iter()
        .take(MAX_ALERTS)
        .map(|alert| container(alert, cut))
        .collect();
    let title = cut.chars(&message.title, TITLE_CHARS, "title");
    let mut shown = blocks.len();
    loop {
        let body = card(&message, &title, &blocks[..shown]);
        let fits = serde_json::to_vec(&body).map_or(true, |bytes| bytes.len() <= BODY_BYTES);
        if fits || shown == 0 {
            cut.left_out(message.alerts.len() - shown, "alerts");
            return body;
        }
        shown -= 1;
    }
}

fn card(message: &Message, title: &str, blocks: &[Value]) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": title,
        "size": "Large",
        "weight": "Bolder",
        "wrap": true,
        "color": color(message.tone()),
    })];
    body.extend(blocks.iter().cloned());
    if let Some(more) = message.more_line(blocks.len()) {
        body.push(json!({"type": "TextBlock", "text": more, "isSubtle": true, "wrap": true}));
    }
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    });
    if let (Some(link), Some(object)) = (&message.link, content.as_object_mut()) {
        object.insert(
            "actions".to_owned(),
            json!([{"type": "Action.OpenUrl", "title": "Open Muster", "url": link}]),
        );
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }],
    })
}

fn container(alert: &AlertText, cut: &mut Truncator) -> Value {
    let heading = format!("[{}] {}", alert.state_word(), alert.heading());
    let mut items = vec![json!({
        "type": "TextBlock",
        "text": cut.chars(&heading, TITLE_CHARS, "heading"),
        "weight": "Bolder",
        "wrap": true,
        "color": color(alert.tone()),
    })];
    if let Some(summary) = &alert.summary {
        items.push(json!({
            "type": "TextBlock",
            "text": cut.chars(summary, SUMMARY_CHARS, "summary"),
            "wrap": true,
        }));
    }
    if let Some(description) = &alert.description {
        items.push(json!({
            "type": "TextBlock",
            "text": cut.chars(description, DESCRIPTION_CHARS, "description"),
            "wrap": true,
            "isSubtle": true,
        }));
    }
    let facts = alert.facts();
    let facts: Vec<Value> = facts
        .into_iter()
        .map(|(title, value)| {
            let value = cut.chars(&value, FACT_CHARS, "fact");
            json!({"title": title, "value": value})
        })
        .collect();
    items.push(json!({"type": "FactSet", "facts": facts}));
    json!({"type": "Container", "separator": true, "items": items})
}

/// Adaptive Card text colours.
fn color(tone: Tone) -> &'static str {
    match tone {
        Tone::Critical => "Attention",
        Tone::Warning => "Warning",
        Tone::Info => "Accent",
        Tone::Resolved => "Good",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::testkit::{self, Expect, TestServer, reply};
    use crate::alert::notify::{FailureReason, Receiver, ReceiverKind};

    const PATH: &str = "/workflows/0123abcd4567ef/triggers/manual/paths/invoke\
                        ?api-version=2016-06-01&sig=SiGnAtUrE123";

    fn receiver(url: &str) -> Receiver {
        let mut config = ReceiverConfig::new("ops-teams", ReceiverKind::Teams);
        config.url = Some(muster_shared::config::Secret::new(url));
        Receiver::build(&config).unwrap()
    }

    #[tokio::test]
    async fn body_is_exact() {
        let server = TestServer::start(reply(202, "")).await;
        receiver(&server.url(PATH))
            .send(&testkit::two_alerts())
            .await
            .unwrap();
        let request = server.only_request();
        assert_eq!(request.path, PATH);
        testkit::assert_golden_json("teams.json", &request.body);
    }

    #[tokio::test]
    async fn statuses_classify_as_shared() {
        testkit::run_status_table(
            |url| receiver(&format!("{url}{PATH}")),
            "",
            |status| format!(r#"{{"error":{{"code":"E{status}","message":"failed"}}}}"#),
        )
        .await;
    }

    #[tokio::test]
    async fn no_secret_reaches_an_error() {
        testkit::run_secret_check(
            |url| receiver(&format!("{url}{PATH}")),
            &["0123abcd4567ef", "SiGnAtUrE123"],
        )
        .await;
    }

    #[test]
    fn big_groups_fit_the_size_limit() {
        let mut cut = Truncator::new();
        let n = testkit::many_alerts(40, 3_000);
        let body = body(&n, &mut cut);
        let bytes = serde_json::to_vec(&body).unwrap();
        assert!(bytes.len() <= BODY_BYTES, "{}", bytes.len());
        assert!(cut.cuts() > 0);
        let blocks = body["attachments"][0]["content"]["body"]
            .as_array()
            .unwrap();
        let containers = blocks.iter().filter(|b| b["type"] == "Container").count();
        assert!((1..=MAX_ALERTS).contains(&containers));
        let last = blocks.last().unwrap()["text"].as_str().unwrap();
        assert_eq!(last, format!("…and {} more alerts", 40 - containers));
    }

    #[tokio::test]
    async fn rate_limit_asks_for_its_retry_after() {
        let server = TestServer::start(testkit::Reply {
            headers: vec![("retry-after".into(), "12".into())],
            ..reply(429, "")
        })
        .await;
        let err = receiver(&server.url(PATH))
            .send(&testkit::two_alerts())
            .await
            .unwrap_err();
        Expect::retry(FailureReason::RateLimited)
            .after(std::time::Duration::from_secs(12))
            .check(&err);
    }
}
