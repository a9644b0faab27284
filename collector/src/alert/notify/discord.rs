//! Discord webhooks (`https://discord.com/api/webhooks/ID/TOKEN`).
//!
//! The body (research §7): `content` is the title; one embed per alert, coloured by its
//! state, titled by its heading (naming the host and the container or probe), described
//! by its summary and description, with fields for host, container or probe, severity,
//! times and acknowledgement. `allowed_mentions` is empty so alert text can never ping
//! `@everyone`.
//!
//! Limits: content 2,000 characters; 10 embeds; an embed's title 256 and description
//! 4,096; 25 fields of name 256 and value 1,024; 6,000 characters across all embeds.
//! Past 10 alerts the content ends "…and N more alerts". When the embeds would pass 6,000,
//! their descriptions share what is left after titles and fields; should even that not
//! fit, embeds are dropped from the end.
//!
//! Rate limits: Discord announces them per webhook in headers. After an answer with
//! `X-RateLimit-Remaining: 0`, the next send to this webhook waits
//! `X-RateLimit-Reset-After` seconds. A 429's JSON `retry_after` (float seconds; a 2022
//! report had it in milliseconds, so it is clamped) is preferred to its `Retry-After`
//! header, and also holds the next send.

use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::config::ReceiverConfig;
use super::error::{FailureReason, NotifyError, ReceiverError, retry_after_seconds};
use super::http::{HttpSender, Reply, receiver_url};
use super::redact::{SecretUrl, Secrets};
use super::render::{AlertText, Message, Tone, rfc3339};
use super::truncate::Truncator;
use super::{Delivered, Notifier, SendFuture};
use crate::alert::model::Notification;

/// Characters of `content`.
const CONTENT_CHARS: usize = 2000;
/// Embeds per message.
const MAX_EMBEDS: usize = 10;
/// Characters of an embed's title.
const TITLE_CHARS: usize = 256;
/// Characters of an embed's description.
const DESCRIPTION_CHARS: usize = 4096;
/// Characters of a field's value (Discord allows 1,024; ours are short facts).
const FIELD_VALUE_CHARS: usize = 1024;
/// Characters across every embed's title, description, field names and values.
const EMBEDS_TOTAL_CHARS: usize = 6000;

/// A Discord receiver.
#[derive(Debug)]
pub struct Discord {
    http: HttpSender,
    url: SecretUrl,
    username: Option<String>,
    avatar_url: Option<String>,
    /// No send before this instant: the webhook's bucket is empty.
    hold_until: Mutex<Option<Instant>>,
}

/// A 429's body.
#[derive(Debug, Deserialize)]
struct RateLimited {
    retry_after: Option<f64>,
    #[serde(default)]
    global: bool,
}

/// One embed while it is being fitted.
#[derive(Debug)]
struct Embed {
    title: String,
    description: String,
    color: u32,
    url: Option<String>,
    timestamp: String,
    fields: Vec<(&'static str, String)>,
}

impl Embed {
    /// Characters that count towards [`EMBEDS_TOTAL_CHARS`], description excluded.
    fn fixed_chars(&self) -> usize {
        self.title.chars().count()
            + self
                .fields
                .iter()
                .map(|(name, value)| name.chars().count() + value.chars().count())
                .sum::<usize>()
    }

    fn to_json(&self) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value, "inline": true}))
            .collect();
        let mut embed = json!({
            "title": self.title,
            "description": self.description,
            "color": self.color,
            "timestamp": self.timestamp,
            "fields": fields,
        });
        if let (Some(url), Some(object)) = (&self.url, embed.as_object_mut()) {
            object.insert("url".to_owned(), json!(url));
        }
        embed
    }
}

impl Discord {
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
            username: config.username.clone(),
            avatar_url: config.icon_url.clone(),
            hold_until: Mutex::new(None),
        })
    }

    /// The JSON body for `n`.
    fn body(&self, n: &Notification, cut: &mut Truncator) -> Value {
        let message = Message::of(n);
        let mut embeds: Vec<Embed> = message
            .alerts
            .iter()
            .take(MAX_EMBEDS)
            .map(|alert| embed(alert, cut))
            .collect();
        fit_total(&mut embeds, cut);
        cut.left_out(message.alerts.len() - embeds.len(), "embeds");
        let mut content = message.title.clone();
        if let Some(more) = message.more_line(embeds.len()) {
            content.push('\n');
            content.push_str(&more);
        }
        let mut body = json!({
            "content": cut.chars(&content, CONTENT_CHARS, "content"),
            "embeds": embeds.iter().map(Embed::to_json).collect::<Vec<_>>(),
            "allowed_mentions": {"parse": []},
        });
        if let Some(object) = body.as_object_mut() {
            if let Some(username) = &self.username {
                object.insert("username".to_owned(), json!(username));
            }
            if let Some(avatar) = &self.avatar_url {
                object.insert("avatar_url".to_owned(), json!(avatar));
            }
        }
        body
    }

    /// The instant the next send may start, if the webhook's bucket is empty.
    fn held_until(&self) -> Option<Instant> {
        *self
            .hold_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn hold(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut hold = self
            .hold_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if hold.is_none_or(|at| at < until) {
            *hold = Some(until);
        }
    }

    /// Records the bucket's state from `reply`'s headers, then classifies it.
    fn check(&self, reply: &Reply) -> Result<(), NotifyError> {
        if reply.header("x-ratelimit-remaining").map(str::trim) == Some("0")
            && let Some(wait) = reply
                .header("x-ratelimit-reset-after")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .and_then(retry_after_seconds)
        {
            self.hold(wait);
        }
        let Err(err) = self.http.check(reply) else {
            return Ok(());
        };
        if reply.status != 429 {
            return Err(err);
        }
        // Discord's JSON `retry_after` is more precise than its header; prefer it.
        let limited = reply.json::<RateLimited>();
        let wait = limited
            .as_ref()
            .and_then(|l| l.retry_after)
            .and_then(retry_after_seconds)
            .or(err.retry_after);
        if let Some(wait) = wait {
            self.hold(wait);
        }
        let scope = if limited.is_some_and(|l| l.global) {
            "global rate limit"
        } else {
            "rate limited"
        };
        Err(self.http.status_error(
            reply,
            FailureReason::RateLimited,
            true,
            wait,
            &format!("{scope}: {}", self.http.excerpt(&reply.body)),
        ))
    }
}

impl Notifier for Discord {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            if let Some(until) = self.held_until() {
                tokio::time::sleep_until(until).await;
            }
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

fn embed(alert: &AlertText, cut: &mut Truncator) -> Embed {
    let fields = alert.facts();
    let fields = fields
        .into_iter()
        .map(|(name, value)| (name, cut.chars(&value, FIELD_VALUE_CHARS, "field value")))
        .collect();
    let description: Vec<&str> = alert
        .summary
        .iter()
        .chain(alert.description.iter())
        .map(String::as_str)
        .collect();
    Embed {
        title: cut.chars(
            &format!("[{}] {}", alert.state_word(), alert.heading()),
            TITLE_CHARS,
            "embed title",
        ),
        description: cut.chars(
            &description.join("\n"),
            DESCRIPTION_CHARS,
            "embed description",
        ),
        color: color(alert.tone()),
        url: alert.link.clone(),
        timestamp: rfc3339(alert.starts_at_ms),
        fields,
    }
}

/// Cuts descriptions, then drops embeds from the end, until all fit
/// [`EMBEDS_TOTAL_CHARS`].
fn fit_total(embeds: &mut Vec<Embed>, cut: &mut Truncator) {
    let total = |embeds: &[Embed]| -> usize {
        embeds
            .iter()
            .map(|e| e.fixed_chars() + e.description.chars().count())
            .sum()
    };
    if total(embeds) <= EMBEDS_TOTAL_CHARS {
        return;
    }
    let fixed: usize = embeds.iter().map(Embed::fixed_chars).sum();
    if fixed < EMBEDS_TOTAL_CHARS && !embeds.is_empty() {
        let share = (EMBEDS_TOTAL_CHARS - fixed) / embeds.len();
        for e in embeds.iter_mut() {
            e.description = cut.chars(&e.description, share, "embed description (total)");
        }
    }
    while total(embeds) > EMBEDS_TOTAL_CHARS && embeds.pop().is_some() {}
}

/// Slack's palette as Discord's integer colours.
fn color(tone: Tone) -> u32 {
    match tone {
        Tone::Critical => 0xA3_02_00,
        Tone::Warning => 0xDA_A0_38,
        Tone::Info => 0x43_9F_E0,
        Tone::Resolved => 0x2E_B8_86,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::testkit::{self, Expect, TestServer, reply};
    use crate::alert::notify::{Receiver, ReceiverKind};

    const PATH: &str = "/api/webhooks/123456789012345678/tOkEn-_abcdefghijklmnop";

    fn config(url: &str) -> ReceiverConfig {
        let mut config = ReceiverConfig::new("ops-discord", ReceiverKind::Discord);
        config.url = Some(muster_shared::config::Secret::new(url));
        config.username = Some("Muster".into());
        config
    }

    fn receiver(url: &str) -> Receiver {
        Receiver::build(&config(url)).unwrap()
    }

    #[tokio::test]
    async fn body_is_exact() {
        let server = TestServer::start(reply(204, "")).await;
        receiver(&server.url(PATH))
            .send(&testkit::two_alerts())
            .await
            .unwrap();
        let request = server.only_request();
        assert_eq!(request.path, PATH);
        testkit::assert_golden_json("discord.json", &request.body);
    }

    #[tokio::test]
    async fn statuses_classify_as_shared() {
        testkit::run_status_table(
            |url| receiver(&format!("{url}{PATH}")),
            r#"{"id":"1"}"#,
            |status| match status {
                429 => {
                    r#"{"message":"You are being rate limited.","retry_after":7.0,"global":false}"#
                        .to_owned()
                }
                _ => format!(r#"{{"message":"error {status}","code":0}}"#),
            },
        )
        .await;
    }

    #[tokio::test]
    async fn no_secret_reaches_an_error() {
        testkit::run_secret_check(
            |url| receiver(&format!("{url}{PATH}")),
            &["123456789012345678", "tOkEn-_abcdefghijklmnop"],
        )
        .await;
    }

    #[tokio::test]
    async fn embeds_fit_every_limit() {
        let server = TestServer::start(reply(204, "")).await;
        receiver(&server.url(PATH))
            .send(&testkit::many_alerts(14, 5_000))
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&server.only_request().body).unwrap();
        let embeds = body["embeds"].as_array().unwrap();
        assert!(!embeds.is_empty() && embeds.len() <= MAX_EMBEDS);
        let mut total = 0;
        for e in embeds {
            let chars = |v: &Value| v.as_str().unwrap().chars().count();
            assert!(chars(&e["title"]) <= TITLE_CHARS);
            assert!(chars(&e["description"]) <= DESCRIPTION_CHARS);
            total += chars(&e["title"]) + chars(&e["description"]);
            for f in e["fields"].as_array().unwrap() {
                total += chars(&f["name"]) + chars(&f["value"]);
            }
        }
        assert!(total <= EMBEDS_TOTAL_CHARS, "{total}");
        let content = body["content"].as_str().unwrap();
        assert!(content.chars().count() <= CONTENT_CHARS);
        assert!(
            content.ends_with(&format!("…and {} more alerts", 14 - embeds.len())),
            "{content}"
        );
    }

    #[tokio::test]
    async fn rate_limit_prefers_the_json_retry_after_and_holds_the_webhook() {
        let server = TestServer::start(testkit::Reply {
            headers: vec![("retry-after".into(), "3".into())],
            ..reply(
                429,
                r#"{"message":"You are being rate limited.","retry_after":2.5,"global":true}"#,
            )
        })
        .await;
        let discord = Discord::new(&config(&server.url(PATH))).unwrap();
        let before = Instant::now();
        let err = discord.send(&testkit::two_alerts()).await.unwrap_err();
        Expect::retry(FailureReason::RateLimited)
            .after(Duration::from_millis(2500))
            .check(&err);
        assert!(err.message.contains("global rate limit"), "{err}");
        let held = discord.held_until().unwrap();
        assert!(held >= before + Duration::from_millis(2500), "{held:?}");
    }

    #[tokio::test]
    async fn an_empty_bucket_holds_the_next_send() {
        let server = TestServer::start(testkit::Reply {
            headers: vec![
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-reset-after".into(), "1.5".into()),
            ],
            ..reply(204, "")
        })
        .await;
        let discord = Discord::new(&config(&server.url(PATH))).unwrap();
        let before = Instant::now();
        discord.send(&testkit::two_alerts()).await.unwrap();
        let held = discord.held_until().unwrap();
        assert!(held >= before + Duration::from_millis(1500), "{held:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_send_waits_for_the_bucket() {
        // Paused clock: the hold must be slept through before any request is made, so the
        // send is only attempted once the clock has reached it.
        let discord = Discord::new(&config("http://127.0.0.1:1/api/webhooks/1/x")).unwrap();
        discord.hold(Duration::from_secs(30));
        let started = Instant::now();
        let _ = discord.send(&testkit::two_alerts()).await;
        assert!(Instant::now() >= started + Duration::from_secs(30));
    }
}
