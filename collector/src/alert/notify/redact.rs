//! Keeping a receiver's secrets out of every text: [`SecretUrl`] shows a webhook URL as
//! its scheme, host and port only, and [`Secrets::scrub`] replaces any secret that still
//! appears in an error text or an answer's body.
//!
//! Chat services put their secret in the webhook URL's path (Slack, Mattermost,
//! Rocket.Chat, Discord), its query (Teams Workflows' `sig`) or next to it (Telegram's bot
//! token is a path segment, ntfy's topic is its password on public servers), so a
//! receiver's URL is never shown whole anywhere.

use std::fmt;

use url::Url;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";
/// Secrets shorter than this are not scrubbed from texts: they would scrub ordinary words.
const MIN_SECRET_LEN: usize = 4;
/// A path segment this long is taken for a token (webhook ids and keys are 17 to 68
/// characters; `services`, `webhooks`, `hooks` are shorter).
const TOKEN_SEGMENT_LEN: usize = 9;

/// A URL that holds a secret: `Debug` and `Display` show only scheme, host and port.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Url);

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: Url) -> Self {
        Self(url)
    }

    /// The URL itself, for the request only.
    pub fn expose(&self) -> &Url {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// `url` as scheme, host and port, with everything else (user, path, query) replaced by
/// one `<redacted>`: `https://hooks.slack.com/<redacted>`.
pub fn redact_url(url: &Url) -> String {
    let mut text = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        text.push_str(&format!(":{port}"));
    }
    if url.path() != "/"
        || url.query().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        text.push('/');
        text.push_str(REDACTED);
    }
    text
}

/// The secret strings of one receiver, replaced wherever they would appear in a text.
#[derive(Clone, Default)]
pub struct Secrets(Vec<String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} values)", self.0.len())
    }
}

impl Secrets {
    /// Adds one secret.
    pub fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.len() >= MIN_SECRET_LEN && !self.0.iter().any(|s| s == secret) {
            self.0.push(secret.to_owned());
            // Longest first, so a secret containing another is replaced whole.
            self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Adds the secret parts of `url`: the whole URL, its path and query, user and
    /// password, query values, and path segments long enough to be tokens.
    pub fn add_url(&mut self, url: &Url) {
        self.add(url.as_str());
        self.add(url.path());
        if let Some(query) = url.query() {
            self.add(query);
        }
        self.add(url.username());
        if let Some(password) = url.password() {
            self.add(password);
        }
        for (_, value) in url.query_pairs() {
            self.add(&value);
        }
        for segment in url.path_segments().into_iter().flatten() {
            if segment.len() >= TOKEN_SEGMENT_LEN {
                self.add(segment);
                if let Ok(decoded) = percent_decode(segment) {
                    self.add(&decoded);
                }
            }
        }
    }

    /// `text` with every secret replaced by `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.0 {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        text
    }
}

/// A percent-decoded path segment (a token may hold `:` as `%3A`).
fn percent_decode(text: &str) -> Result<String, std::str::Utf8Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    std::str::from_utf8(&out).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn webhook_urls_show_only_their_host() {
        for (text, shown, secrets) in [
            (
                "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBBBB/abcdefghijklmnopqrstuvwx",
                "https://hooks.slack.com/<redacted>",
                &["T0AAAAAAA", "B0BBBBBBBBB", "abcdefghijklmnopqrstuvwx"][..],
            ),
            (
                "https://discord.com/api/webhooks/123456789012345678/tOkEn-_abcdefghijklmnop",
                "https://discord.com/<redacted>",
                &["123456789012345678", "tOkEn-_abcdefghijklmnop"][..],
            ),
            (
                "https://prod-00.westeurope.logic.azure.com:443/workflows/0123abcd/triggers/manual/paths/invoke?api-version=2016-06-01&sig=SiGnAtUrE123",
                "https://prod-00.westeurope.logic.azure.com/<redacted>",
                &["0123abcd", "SiGnAtUrE123"][..],
            ),
            (
                "https://api.telegram.org/bot123456:AAHsecretsecret/sendMessage",
                "https://api.telegram.org/<redacted>",
                &["AAHsecretsecret"][..],
            ),
            (
                "https://user:pw@ntfy.example:8443/alerts-topic-xyz",
                "https://ntfy.example:8443/<redacted>",
                &["user", "alerts-topic-xyz"][..],
            ),
        ] {
            let u = SecretUrl::new(url(text));
            assert_eq!(u.to_string(), shown);
            assert_eq!(format!("{u:?}"), shown);
            for secret in secrets {
                assert!(!shown.contains(secret));
            }
        }
        assert_eq!(
            redact_url(&url("http://127.0.0.1:9093/")),
            "http://127.0.0.1:9093"
        );
    }

    #[test]
    fn scrub_replaces_every_secret_part_of_a_url() {
        let mut secrets = Secrets::default();
        secrets.add_url(&url(
            "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBBBB/abcdefghijklmnopqrstuvwx?token=querysecret",
        ));
        secrets.add("tk_bearer1234");
        secrets.add("ab"); // too short to scrub
        let text = "POST /services/T0AAAAAAA/B0BBBBBBBBB/abcdefghijklmnopqrstuvwx failed; \
                    token abcdefghijklmnopqrstuvwx, querysecret, tk_bearer1234, ab";
        let scrubbed = secrets.scrub(text);
        for secret in [
            "T0AAAAAAA",
            "abcdefghijklmnopqrstuvwx",
            "querysecret",
            "tk_bearer1234",
        ] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
        assert!(scrubbed.ends_with(", ab"), "{scrubbed}");
        assert!(!format!("{secrets:?}").contains("querysecret"));
    }

    #[test]
    fn percent_encoded_tokens_are_scrubbed_decoded_too() {
        let mut secrets = Secrets::default();
        secrets.add_url(&url(
            "https://api.telegram.org/bot123456%3AAAHsecret/sendMessage",
        ));
        assert_eq!(
            secrets.scrub("bot123456:AAHsecret"),
            REDACTED,
            "the decoded form is replaced"
        );
    }
}
