//! ntfy (`POST https://ntfy.sh/TOPIC`): the body is the message, the rest are headers.
//!
//! Headers (research §7): `Title` (the notification's title), `Priority` (`5` urgent when
//! a critical alert fires, `4` high for other firing alerts, `2` low for information,
//! `3` default once resolved), `Tags` (an emoji shortcode ntfy shows before the title),
//! `Click` (the collector's page), and `Authorization: Bearer` with `token`. A header
//! value that is not printable ASCII is sent RFC 2047-encoded (`=?UTF-8?B?...?=`), which
//! ntfy decodes.
//!
//! The body is plain text: one block per alert, its heading naming the host and the
//! container or probe, then its details. Limits: ntfy's default message limit is 4,096
//! bytes (a longer one becomes an attachment, or is refused when attachments are off), so
//! each text is cut first (summary 512, description 1,024 characters), then whole blocks
//! are added while they fit in 4,096 bytes; the title is cut at 256 characters.
//!
//! Answers: the shared classifier (ntfy says 429 when a visitor's request or message
//! limit is reached, 413 for a message too large, 401/403 for a refused token).

use super::config::ReceiverConfig;
use super::error::ReceiverError;
use super::http::{HttpSender, read_secret, receiver_url};
use super::redact::{SecretUrl, Secrets};
use super::render::{Message, Tone};
use super::truncate::Truncator;
use super::{Delivered, Notifier, SendFuture};
use crate::alert::model::Notification;

/// Bytes of the body.
const BODY_BYTES: usize = 4096;
/// Characters of the title.
const TITLE_CHARS: usize = 256;
/// Characters of a heading.
const HEADING_CHARS: usize = 256;
/// Characters of a summary.
const SUMMARY_CHARS: usize = 512;
/// Characters of a description.
const DESCRIPTION_CHARS: usize = 1024;
/// Bytes kept free for the closing "…and N more alerts" line.
const MORE_LINE_BYTES: usize = 40;

/// An ntfy receiver.
#[derive(Debug)]
pub struct Ntfy {
    http: HttpSender,
    /// The topic's URL; on a public server the topic is the password.
    url: SecretUrl,
    token: Option<muster_shared::config::Secret>,
}

/// One request's parts.
#[derive(Debug, PartialEq, Eq)]
struct Publish {
    title: String,
    priority: &'static str,
    tags: &'static str,
    click: Option<String>,
    body: String,
}

impl Ntfy {
    /// The receiver of `config`: reads `token_file` if set.
    ///
    /// # Errors
    /// The token file, URL or TLS setup failed.
    pub fn new(config: &ReceiverConfig) -> Result<Self, ReceiverError> {
        let token = read_secret(
            config,
            config.token.as_ref().map(|s| s.expose()),
            config.token_file.as_deref(),
            "token_file",
        )?;
        let url = receiver_url(config, None)?;
        let mut secrets = Secrets::default();
        if let Some(token) = &token {
            secrets.add(token);
        }
        let http = HttpSender::new(config, &url, secrets)?;
        Ok(Self {
            http,
            url: SecretUrl::new(url),
            token: token.map(muster_shared::config::Secret::new),
        })
    }
}

impl Notifier for Ntfy {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let mut cut = Truncator::new();
            let publish = publish(&Message::of(n), &mut cut);
            let mut request = self
                .http
                .post(self.url.expose())
                .header("Title", header_value(&publish.title))
                .header("Priority", publish.priority)
                .header("Tags", publish.tags)
                .header("Content-Type", "text/plain; charset=utf-8");
            if let Some(click) = &publish.click {
                request = request.header("Click", header_value(click));
            }
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose());
            }
            let reply = self.http.execute(request.body(publish.body)).await?;
            self.http.check(&reply)?;
            Ok(Delivered {
                truncations: cut.cuts(),
            })
        })
    }
}

/// The title, headers and body for `message`.
fn publish(message: &Message, cut: &mut Truncator) -> Publish {
    let (priority, tags) = match message.tone() {
        Tone::Critical => ("5", "rotating_light"),
        Tone::Warning => ("4", "warning"),
        Tone::Info => ("2", "information_source"),
        Tone::Resolved => ("3", "white_check_mark"),
    };
    let mut body = String::new();
    let mut shown = 0;
    for alert in &message.alerts {
        let mut block = format!(
            "[{}] {}",
            alert.state_word(),
            cut.chars(&alert.heading(), HEADING_CHARS, "heading")
        );
        let mut add = |text: &str| {
            block.push('\n');
            block.push_str(text);
        };
        if let Some(summary) = &alert.summary {
            add(&cut.chars(summary, SUMMARY_CHARS, "summary"));
        }
        if let Some(description) = &alert.description {
            add(&cut.chars(description, DESCRIPTION_CHARS, "description"));
        }
        add(&alert.times());
        if let Some(who) = &alert.acknowledged_by {
            add(&format!("Acknowledged by {who}"));
        }
        let separator = if body.is_empty() { 0 } else { 2 };
        let last = shown + 1 == message.alerts.len() && message.left_out == 0;
        let room = if last {
            BODY_BYTES
        } else {
            BODY_BYTES - MORE_LINE_BYTES
        };
        if body.len() + separator + block.len() > room {
            break;
        }
        if separator > 0 {
            body.push_str("\n\n");
        }
        body.push_str(&block);
        shown += 1;
    }
    cut.left_out(message.alerts.len() - shown, "alerts");
    if let Some(more) = message.more_line(shown) {
        if !body.is_empty() {
            body.push_str("\n\n");
        }
        body.push_str(&more);
    }
    Publish {
        title: cut.chars(&message.title, TITLE_CHARS, "title"),
        priority,
        tags,
        click: message.link.clone(),
        body,
    }
}

/// `text` as it can travel in a header: as it is when printable ASCII, else RFC 2047's
/// encoded word (`=?UTF-8?B?<base64>?=`), which ntfy decodes.
fn header_value(text: &str) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", base64(text.as_bytes()))
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = usize::try_from((n >> (18 - 6 * i)) & 0x3f).unwrap_or(0);
                out.push(char::from(ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::testkit::{self, Expect, TestServer, reply};
    use crate::alert::notify::{FailureReason, Receiver, ReceiverKind};

    const TOPIC: &str = "/muster-alerts-k3y9z2";
    const TOKEN: &str = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2";

    fn receiver(url: &str) -> Receiver {
        let mut config = ReceiverConfig::new("ops-phone", ReceiverKind::Ntfy);
        config.url = Some(muster_shared::config::Secret::new(url));
        config.token = Some(muster_shared::config::Secret::new(TOKEN));
        Receiver::build(&config).unwrap()
    }

    #[tokio::test]
    async fn request_is_exact() {
        let server = TestServer::start(reply(200, r#"{"id":"x","event":"message"}"#)).await;
        receiver(&server.url(TOPIC))
            .send(&testkit::two_alerts())
            .await
            .unwrap();
        let request = server.only_request();
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", TOPIC)
        );
        for (name, value) in [
            ("title", "[FIRING:2] ContainerUnhealthy, HostDown web1"),
            ("priority", "5"),
            ("tags", "rotating_light"),
            ("click", "http://muster.example:9464/"),
            ("authorization", &format!("Bearer {TOKEN}")),
            ("content-type", "text/plain; charset=utf-8"),
        ] {
            assert_eq!(request.header(name), Some(value), "{name}");
        }
        testkit::assert_golden_text("ntfy.txt", &String::from_utf8_lossy(&request.body));
    }

    #[tokio::test]
    async fn resolved_is_default_priority() {
        let server = TestServer::start(reply(200, "{}")).await;
        receiver(&server.url(TOPIC))
            .send(&testkit::resolved())
            .await
            .unwrap();
        let request = server.only_request();
        assert_eq!(request.header("priority"), Some("3"));
        assert_eq!(request.header("tags"), Some("white_check_mark"));
        assert_eq!(request.header("title"), Some("[RESOLVED] HostDown web1"));
    }

    #[tokio::test]
    async fn statuses_classify_as_shared() {
        testkit::run_status_table(
            |url| receiver(&format!("{url}{TOPIC}")),
            "{}",
            |status| format!(r#"{{"code":{status}00,"http":{status},"error":"failed"}}"#),
        )
        .await;
    }

    #[tokio::test]
    async fn no_secret_reaches_an_error() {
        testkit::run_secret_check(
            |url| receiver(&format!("{url}{TOPIC}")),
            &["muster-alerts-k3y9z2", TOKEN],
        )
        .await;
    }

    #[test]
    fn body_fits_4096_bytes() {
        let mut cut = Truncator::new();
        let message = Message::of(&testkit::many_alerts(10, 1_000));
        let publish = publish(&message, &mut cut);
        assert!(publish.body.len() <= BODY_BYTES, "{}", publish.body.len());
        let shown = publish.body.matches("[warning] DiskFull").count();
        assert!(shown >= 1);
        assert!(
            publish
                .body
                .ends_with(&format!("…and {} more alerts", 10 - shown))
        );
        assert!(cut.cuts() > 0);
    }

    #[test]
    fn non_ascii_headers_are_encoded_words() {
        assert_eq!(header_value("plain title"), "plain title");
        assert_eq!(
            header_value("Disk — full"),
            "=?UTF-8?B?RGlzayDigJQgZnVsbA==?="
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[tokio::test]
    async fn rate_limit_asks_for_its_retry_after() {
        let server = TestServer::start(testkit::Reply {
            headers: vec![("retry-after".into(), "5".into())],
            ..reply(
                429,
                r#"{"code":42901,"http":429,"error":"limit reached: too many requests"}"#,
            )
        })
        .await;
        let err = receiver(&server.url(TOPIC))
            .send(&testkit::two_alerts())
            .await
            .unwrap_err();
        Expect::retry(FailureReason::RateLimited)
            .after(std::time::Duration::from_secs(5))
            .check(&err);
    }
}
