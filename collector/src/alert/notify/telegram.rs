//! Telegram through the Bot API (`POST {url}/bot{token}/sendMessage`).
//!
//! The body (research §7): `chat_id`, `text` in HTML (`parse_mode: "HTML"`, which needs
//! only `<`, `>` and `&` escaped), optional `message_thread_id` and
//! `disable_notification`, and link previews off. The text is the bold title, then per
//! alert its heading (naming the host and the container or probe) in bold, linked to the
//! rule, and its details.
//!
//! Limits: a message is 1 to 4,096 characters, which Telegram counts in UTF-16 code
//! units after parsing the HTML; the source is measured, which is never shorter. Each
//! text is cut first (heading 256, summary 512, description 1,024), then whole alert
//! blocks are added while they fit, the rest summed up as "…and N more alerts".
//!
//! Answers: `{"ok":false,"error_code":N,"description":"..."}` with the status; the
//! description goes into the error. A 429's wait is in `parameters.retry_after`
//! (preferred to a `Retry-After` header). The override: a 2xx with `"ok": false` did not
//! post, so it is a permanent `rejected_body`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::config::{ChatId, ReceiverConfig};
use super::error::{FailureReason, NotifyError, ReceiverError, retry_after_seconds};
use super::http::{HttpSender, Reply, read_secret, receiver_url};
use super::redact::{SecretUrl, Secrets};
use super::render::{AlertText, Message};
use super::truncate::{Truncator, utf16_len};
use super::{Delivered, Notifier, SendFuture};
use crate::alert::model::Notification;

/// The Bot API's default base URL.
const DEFAULT_API: &str = "https://api.telegram.org";
/// UTF-16 units of `text`.
const TEXT_UNITS: usize = 4096;
/// Characters of the title and of a heading.
const HEADING_CHARS: usize = 256;
/// Characters of a summary.
const SUMMARY_CHARS: usize = 512;
/// Characters of a description.
const DESCRIPTION_CHARS: usize = 1024;
/// Units kept free for the closing "…and N more alerts" line.
const MORE_LINE_UNITS: usize = 40;

/// A Telegram receiver.
#[derive(Debug)]
pub struct Telegram {
    http: HttpSender,
    /// `{url}/bot{token}/sendMessage`: holds the token.
    send_message: SecretUrl,
    chat_id: Value,
    message_thread_id: Option<i64>,
    disable_notification: bool,
}

/// The Bot API's answer.
#[derive(Debug, Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Debug, Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<f64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

impl Telegram {
    /// The receiver of `config`: reads `bot_token_file` if set.
    ///
    /// # Errors
    /// The token file, URL or TLS setup failed.
    pub fn new(config: &ReceiverConfig) -> Result<Self, ReceiverError> {
        let token = read_secret(
            config,
            config.bot_token.as_ref().map(|s| s.expose()),
            config.bot_token_file.as_deref(),
            "bot_token_file",
        )?
        .unwrap_or_default();
        let base = receiver_url(config, Some(DEFAULT_API))?;
        let mut secrets = Secrets::default();
        secrets.add(&token);
        let url = base
            .join(&format!(
                "{}/bot{token}/sendMessage",
                base.path().trim_end_matches('/')
            ))
            .map_err(|_| ReceiverError::Url {
                receiver: config.name.clone(),
                reason: "url and bot_token do not make a valid URL".to_owned(),
            })?;
        let http = HttpSender::new(config, &url, secrets)?;
        let chat_id = match &config.chat_id {
            Some(ChatId::Id(id)) => json!(id),
            Some(ChatId::Name(name)) => json!(name),
            None => Value::Null,
        };
        Ok(Self {
            http,
            send_message: SecretUrl::new(url),
            chat_id,
            message_thread_id: config.message_thread_id,
            disable_notification: config.disable_notification,
        })
    }

    fn body(&self, n: &Notification, cut: &mut Truncator) -> Value {
        let mut body = json!({
            "chat_id": self.chat_id,
            "text": text(&Message::of(n), cut),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(object) = body.as_object_mut() {
            if let Some(thread) = self.message_thread_id {
                object.insert("message_thread_id".to_owned(), json!(thread));
            }
            if self.disable_notification {
                object.insert("disable_notification".to_owned(), json!(true));
            }
        }
        body
    }

    /// The shared classifier, with Telegram's own retry_after and description, and its
    /// `"ok": false` on a 2xx.
    fn check(&self, reply: &Reply) -> Result<(), NotifyError> {
        let answer = reply.json::<Answer>();
        let detail = |answer: &Option<Answer>| match answer {
            Some(Answer {
                description: Some(description),
                parameters,
                ..
            }) => match parameters.as_ref().and_then(|p| p.migrate_to_chat_id) {
                Some(id) => format!("{description} (the group is now chat_id {id})"),
                None => description.clone(),
            },
            _ => self.http.excerpt(&reply.body),
        };
        match self.http.check(reply) {
            Ok(()) if answer.as_ref().is_some_and(|a| !a.ok) => Err(self.http.status_error(
                reply,
                FailureReason::RejectedBody,
                false,
                None,
                &detail(&answer),
            )),
            Ok(()) => Ok(()),
            Err(err) => {
                let wait = answer
                    .as_ref()
                    .and_then(|a| a.parameters.as_ref())
                    .and_then(|p| p.retry_after)
                    .and_then(retry_after_seconds)
                    .or(err.retry_after);
                Err(self.http.status_error(
                    reply,
                    err.reason,
                    err.retryable,
                    wait,
                    &detail(&answer),
                ))
            }
        }
    }
}

impl Notifier for Telegram {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let mut cut = Truncator::new();
            let body = self.body(n, &mut cut);
            let reply = self
                .http
                .execute(self.http.post(self.send_message.expose()).json(&body))
                .await?;
            self.check(&reply)?;
            Ok(Delivered {
                truncations: cut.cuts(),
            })
        })
    }
}

/// The HTML text: whole alert blocks while they fit [`TEXT_UNITS`].
fn text(message: &Message, cut: &mut Truncator) -> String {
    let mut text = format!(
        "<b>{}</b>",
        escape(&cut.chars(&message.title, HEADING_CHARS, "title"))
    );
    let mut shown = 0;
    for alert in &message.alerts {
        let block = block(alert, cut);
        let used = utf16_len(&text) + 2 + utf16_len(&block);
        let last = shown + 1 == message.alerts.len() && message.left_out == 0;
        let room = if last {
            TEXT_UNITS
        } else {
            TEXT_UNITS - MORE_LINE_UNITS
        };
        if used > room {
            break;
        }
        text.push_str("\n\n");
        text.push_str(&block);
        shown += 1;
    }
    cut.left_out(message.alerts.len() - shown, "alerts");
    if let Some(more) = message.more_line(shown) {
        text.push_str("\n\n");
        text.push_str(&escape(&more));
    }
    text
}

fn block(alert: &AlertText, cut: &mut Truncator) -> String {
    let heading = escape(&cut.chars(
        &format!("[{}] {}", alert.state_word(), alert.heading()),
        HEADING_CHARS,
        "heading",
    ));
    let mut lines = vec![match &alert.link {
        Some(link) => format!(
            "<b><a href=\"{}\">{heading}</a></b>",
            escape_attribute(link)
        ),
        None => format!("<b>{heading}</b>"),
    }];
    if let Some(summary) = &alert.summary {
        lines.push(escape(&cut.chars(summary, SUMMARY_CHARS, "summary")));
    }
    if let Some(description) = &alert.description {
        lines.push(escape(&cut.chars(
            description,
            DESCRIPTION_CHARS,
            "description",
        )));
    }
    lines.push(escape(&alert.times()));
    if let Some(who) = &alert.acknowledged_by {
        lines.push(escape(&format!("Acknowledged by {who}")));
    }
    lines.join("\n")
}

/// Telegram's HTML escapes: `<`, `>`, `&`.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An attribute value: the three escapes and `"`.
fn escape_attribute(text: &str) -> String {
    escape(text).replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::testkit::{self, Expect, TestServer, reply};
    use crate::alert::notify::{Receiver, ReceiverKind};

    const TOKEN: &str = "123456789:AAHsecretTOKENvalue_xyz";

    fn config(url: &str) -> ReceiverConfig {
        let mut config = ReceiverConfig::new("ops-telegram", ReceiverKind::Telegram);
        config.url = Some(muster_shared::config::Secret::new(url));
        config.bot_token = Some(muster_shared::config::Secret::new(TOKEN));
        config.chat_id = Some(ChatId::Id(-1_001_234_567_890));
        config.message_thread_id = Some(42);
        config
    }

    fn receiver(url: &str) -> Receiver {
        Receiver::build(&config(url)).unwrap()
    }

    #[tokio::test]
    async fn body_is_exact() {
        let server = TestServer::start(reply(200, r#"{"ok":true,"result":{}}"#)).await;
        receiver(server.base())
            .send(&testkit::two_alerts())
            .await
            .unwrap();
        let request = server.only_request();
        assert_eq!(request.path, format!("/bot{TOKEN}/sendMessage"));
        testkit::assert_golden_json("telegram.json", &request.body);
    }

    #[tokio::test]
    async fn statuses_classify_as_shared() {
        testkit::run_status_table(
            receiver,
            r#"{"ok":true,"result":{}}"#,
            |status| match status {
                429 => r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#.to_owned(),
                _ => format!(r#"{{"ok":false,"error_code":{status},"description":"error {status}"}}"#),
            },
        )
        .await;
    }

    #[tokio::test]
    async fn no_secret_reaches_an_error() {
        testkit::run_secret_check(receiver, &[TOKEN, "AAHsecretTOKENvalue_xyz"]).await;
    }

    #[tokio::test]
    async fn errors_carry_telegrams_description_and_wait() {
        let server = TestServer::start(reply(
            429,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 35","parameters":{"retry_after":35}}"#,
        ))
        .await;
        let err = receiver(server.base())
            .send(&testkit::two_alerts())
            .await
            .unwrap_err();
        Expect::retry(FailureReason::RateLimited)
            .after(std::time::Duration::from_secs(35))
            .check(&err);
        assert!(
            err.message.contains("Too Many Requests: retry after 35"),
            "{err}"
        );

        let server = TestServer::start(reply(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1009}}"#,
        ))
        .await;
        let err = receiver(server.base())
            .send(&testkit::two_alerts())
            .await
            .unwrap_err();
        assert!(!err.retryable);
        assert!(err.message.contains("now chat_id -1009"), "{err}");

        let server = TestServer::start(reply(200, r#"{"ok":false,"description":"odd"}"#)).await;
        let err = receiver(server.base())
            .send(&testkit::two_alerts())
            .await
            .unwrap_err();
        Expect::permanent(FailureReason::RejectedBody).check(&err);
    }

    #[test]
    fn text_fits_4096_utf16_units() {
        let mut cut = Truncator::new();
        let message = Message::of(&testkit::many_alerts(20, 2_000));
        let text = text(&message, &mut cut);
        assert!(utf16_len(&text) <= TEXT_UNITS, "{}", utf16_len(&text));
        let shown = text.matches("[warning] DiskFull").count();
        assert!(shown >= 1);
        assert!(
            text.ends_with(&format!("…and {} more alerts", 20 - shown)),
            "{text}"
        );
        assert!(cut.cuts() > 0);
    }

    #[test]
    fn html_is_escaped() {
        let mut n = testkit::two_alerts();
        n.alerts[0]
            .annotations
            .insert("summary".into(), "<script> & \"x\"".into());
        n.alerts[0].generator_url = "http://muster/x?a=1&b=\"2\"".into();
        let text = text(&Message::of(&n), &mut Truncator::new());
        assert!(text.contains("&lt;script&gt; &amp; \"x\""), "{text}");
        assert!(
            text.contains("href=\"http://muster/x?a=1&amp;b=%222%22\""),
            "{text}"
        );
    }
}
