//! Slack incoming webhooks, and Mattermost and Rocket.Chat, which take Slack's shape.
//!
//! The body (research §7): `text` is the title, which is also what a phone notification
//! shows; one attachment per alert carries the colour of its state (hex, which all three
//! understand), its heading (naming the host and the container or probe) and its
//! details. Mattermost takes the same keys; Rocket.Chat names the sender's keys `alias`,
//! `emoji` and `avatar`.
//!
//! Limits: Slack cuts messages past 40,000 characters, so at most 20 attachments of 256
//! characters of title and 1,500 of text are sent (the rest is "…and N more alerts"),
//! and the title is cut at 1,024 (Alertmanager's limit for Slack titles). Slack's text
//! escapes `&`, `<` and `>` so alert text cannot make links or mentions.
//!
//! Answers: Slack says `ok` with a 200; an error word (`invalid_payload`,
//! `channel_not_found`, `action_prohibited`) comes with a 4xx and is permanent, through the
//! shared classifier. The override: a 2xx whose body is not `ok` (Slack), or is JSON with
//! `"ok": false` or `"success": false` (Rocket.Chat), did not post anything, so it is a
//! permanent `rejected_body` rather than a success. A 429 carries `Retry-After` in
//! seconds (shared).

use serde_json::{Map, Value, json};

use super::config::ReceiverConfig;
use super::error::{FailureReason, NotifyError, ReceiverError};
use super::http::{HttpSender, Reply, receiver_url};
use super::redact::{SecretUrl, Secrets};
use super::render::{AlertText, Message, Tone};
use super::truncate::Truncator;
use super::{Delivered, Notifier, ReceiverKind, SendFuture};
use crate::alert::model::Notification;

/// Characters of the top-level `text`.
const TEXT_CHARS: usize = 1024;
/// Attachments per message, one per alert.
const MAX_ATTACHMENTS: usize = 20;
/// Characters of an attachment's title.
const TITLE_CHARS: usize = 256;
/// Characters of an attachment's text.
const ATTACHMENT_TEXT_CHARS: usize = 1500;

/// A Slack, Mattermost or Rocket.Chat receiver.
#[derive(Debug)]
pub struct Slack {
    http: HttpSender,
    url: SecretUrl,
    flavor: ReceiverKind,
    channel: Option<String>,
    username: Option<String>,
    icon_emoji: Option<String>,
    icon_url: Option<String>,
}

impl Slack {
    /// The receiver of `config` (kind `slack`, `mattermost` or `rocketchat`).
    ///
    /// # Errors
    /// The URL or TLS setup failed.
    pub fn new(config: &ReceiverConfig) -> Result<Self, ReceiverError> {
        let url = receiver_url(config, None)?;
        let http = HttpSender::new(config, &url, Secrets::default())?;
        Ok(Self {
            http,
            url: SecretUrl::new(url),
            flavor: config.kind,
            channel: config.channel.clone(),
            username: config.username.clone(),
            icon_emoji: config.icon_emoji.clone(),
            icon_url: config.icon_url.clone(),
        })
    }

    /// The JSON body for `n`.
    fn body(&self, n: &Notification, cut: &mut Truncator) -> Value {
        let message = Message::of(n);
        let shown = message.alerts.len().min(MAX_ATTACHMENTS);
        cut.left_out(message.alerts.len() - shown, "attachments");
        let mut text = message.title.clone();
        if let Some(more) = message.more_line(shown) {
            text.push('\n');
            text.push_str(&more);
        }
        let mut body = Map::new();
        let (user_key, emoji_key, icon_key) = match self.flavor {
            ReceiverKind::Rocketchat => ("alias", "emoji", "avatar"),
            _ => ("username", "icon_emoji", "icon_url"),
        };
        for (key, value) in [
            ("channel", &self.channel),
            (user_key, &self.username),
            (emoji_key, &self.icon_emoji),
            (icon_key, &self.icon_url),
        ] {
            if let Some(value) = value {
                body.insert(key.to_owned(), json!(value));
            }
        }
        body.insert(
            "text".to_owned(),
            json!(self.escape(&cut.chars(&text, TEXT_CHARS, "text"))),
        );
        let attachments: Vec<Value> = message.alerts[..shown]
            .iter()
            .map(|alert| self.attachment(alert, cut))
            .collect();
        body.insert("attachments".to_owned(), Value::Array(attachments));
        Value::Object(body)
    }

    fn attachment(&self, alert: &AlertText, cut: &mut Truncator) -> Value {
        let title = cut.chars(&alert.heading(), TITLE_CHARS, "attachment title");
        let text = cut.chars(
            &alert.details().join("\n"),
            ATTACHMENT_TEXT_CHARS,
            "attachment text",
        );
        let mut attachment = json!({
            "color": color(alert.tone()),
            "fallback": self.escape(&format!("[{}] {title}", alert.state_word())),
            "title": self.escape(&title),
            "text": self.escape(&text),
        });
        if let (Some(link), Some(object)) = (&alert.link, attachment.as_object_mut()) {
            object.insert("title_link".to_owned(), json!(link));
        }
        attachment
    }

    /// Slack's three escapes; Mattermost and Rocket.Chat render Markdown, not Slack's
    /// entities, so their text goes as it is.
    fn escape(&self, text: &str) -> String {
        if self.flavor == ReceiverKind::Slack {
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        } else {
            text.to_owned()
        }
    }

    /// The shared classifier, then the 2xx body check (see the module doc).
    fn check(&self, reply: &Reply) -> Result<(), NotifyError> {
        self.http.check(reply)?;
        let text = String::from_utf8_lossy(&reply.body);
        let text = text.trim();
        let refused = match reply.json::<Value>() {
            Some(json) => {
                json.get("ok") == Some(&Value::Bool(false))
                    || json.get("success") == Some(&Value::Bool(false))
            }
            None => self.flavor == ReceiverKind::Slack && !text.is_empty() && text != "ok",
        };
        if refused {
            return Err(self.http.status_error(
                reply,
                FailureReason::RejectedBody,
                false,
                None,
                &format!("not posted: {}", self.http.excerpt(&reply.body)),
            ));
        }
        Ok(())
    }
}

impl Notifier for Slack {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let mut cut = Truncator::new();
            let body = self.body(n, &mut cut);
            let reply = self
                .http
                .execute(self.http.post(self.url.expose()).json(&body))
                .await?;
            self.check(&reply)?;
            Ok(Delivered {
                truncations: cut.cuts(),
            })
        })
    }
}

/// Slack's `danger`, `warning` and `good`, and a blue for information, as hex.
fn color(tone: Tone) -> &'static str {
    match tone {
        Tone::Critical => "#A30200",
        Tone::Warning => "#DAA038",
        Tone::Info => "#439FE0",
        Tone::Resolved => "#2EB886",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::Receiver;
    use crate::alert::notify::testkit::{self, Expect, TestServer, reply};

    fn receiver(kind: ReceiverKind, url: &str) -> Receiver {
        let mut config = ReceiverConfig::new("ops-chat", kind);
        config.url = Some(muster_shared::config::Secret::new(url));
        if kind != ReceiverKind::Slack {
            config.username = Some("muster".into());
            config.icon_emoji = Some(":rotating_light:".into());
        } else {
            config.channel = Some("#ops".into());
        }
        Receiver::build(&config).unwrap()
    }

    const PATH: &str = "/services/T0AAAAAAA/B0BBBBBBBBB/abcdefghijklmnopqrstuvwx";

    #[tokio::test]
    async fn slack_body_is_exact() {
        let server = TestServer::start(reply(200, "ok")).await;
        let r = receiver(ReceiverKind::Slack, &server.url(PATH));
        r.send(&testkit::two_alerts()).await.unwrap();
        let request = server.only_request();
        assert_eq!(request.path, PATH);
        assert_eq!(request.header("content-type"), Some("application/json"));
        testkit::assert_golden_json("slack.json", &request.body);
    }

    #[tokio::test]
    async fn mattermost_and_rocketchat_bodies_are_exact() {
        for (kind, golden) in [
            (ReceiverKind::Mattermost, "mattermost.json"),
            (ReceiverKind::Rocketchat, "rocketchat.json"),
        ] {
            let server = TestServer::start(reply(200, "")).await;
            let r = receiver(kind, &server.url("/hooks/xxxxxxxxxxxxxxxxxxxxxxxxxx"));
            r.send(&testkit::two_alerts()).await.unwrap();
            testkit::assert_golden_json(golden, &server.only_request().body);
        }
    }

    #[tokio::test]
    async fn slack_escapes_its_control_characters() {
        let server = TestServer::start(reply(200, "ok")).await;
        let r = receiver(ReceiverKind::Slack, &server.url(PATH));
        let mut n = testkit::two_alerts();
        n.alerts[0]
            .annotations
            .insert("summary".into(), "<!channel> a & b".into());
        r.send(&n).await.unwrap();
        let body: Value = serde_json::from_slice(&server.only_request().body).unwrap();
        let text = body["attachments"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("&lt;!channel&gt; a &amp; b"), "{text}");
    }

    #[tokio::test]
    async fn statuses_classify_as_shared() {
        for kind in [
            ReceiverKind::Slack,
            ReceiverKind::Mattermost,
            ReceiverKind::Rocketchat,
        ] {
            testkit::run_status_table(
                |url| receiver(kind, &format!("{url}{PATH}")),
                "ok",
                |status| format!("error {status}"),
            )
            .await;
        }
    }

    #[tokio::test]
    async fn a_2xx_that_is_not_ok_is_a_permanent_refusal() {
        for (kind, body) in [
            (ReceiverKind::Slack, "invalid_token"),
            (
                ReceiverKind::Slack,
                r#"{"ok":false,"error":"channel_not_found"}"#,
            ),
            (
                ReceiverKind::Rocketchat,
                r#"{"success":false,"error":"invalid"}"#,
            ),
        ] {
            let server = TestServer::start(reply(200, body)).await;
            let err = receiver(kind, &server.url(PATH))
                .send(&testkit::two_alerts())
                .await
                .unwrap_err();
            Expect::permanent(FailureReason::RejectedBody).check(&err);
        }
        let server = TestServer::start(reply(200, r#"{"success":true}"#)).await;
        receiver(ReceiverKind::Rocketchat, &server.url(PATH))
            .send(&testkit::two_alerts())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn no_secret_reaches_an_error() {
        testkit::run_secret_check(
            |url| receiver(ReceiverKind::Slack, &format!("{url}{PATH}")),
            &["T0AAAAAAA", "B0BBBBBBBBB", "abcdefghijklmnopqrstuvwx"],
        )
        .await;
    }

    #[tokio::test]
    async fn many_alerts_fit_slacks_limits() {
        let server = TestServer::start(reply(200, "ok")).await;
        let r = receiver(ReceiverKind::Slack, &server.url(PATH));
        let n = testkit::many_alerts(30, 5_000);
        let sent = r.send(&n).await.unwrap();
        assert!(matches!(sent, crate::alert::notify::Sent::Delivered(d) if d.truncations > 0));
        let body: Value = serde_json::from_slice(&server.only_request().body).unwrap();
        let attachments = body["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), MAX_ATTACHMENTS);
        for a in attachments {
            assert!(a["text"].as_str().unwrap().chars().count() <= ATTACHMENT_TEXT_CHARS);
            assert!(a["title"].as_str().unwrap().chars().count() <= TITLE_CHARS);
        }
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .ends_with("…and 10 more alerts"),
            "{}",
            body["text"]
        );
    }

    #[tokio::test]
    async fn rate_limit_asks_for_its_retry_after() {
        let server = TestServer::start(testkit::Reply {
            headers: vec![("retry-after".into(), "30".into())],
            ..reply(429, "rate_limited")
        })
        .await;
        let err = receiver(ReceiverKind::Slack, &server.url(PATH))
            .send(&testkit::two_alerts())
            .await
            .unwrap_err();
        Expect::retry(FailureReason::RateLimited)
            .after(std::time::Duration::from_secs(30))
            .check(&err);
    }
}
