//! A remote write endpoint's URL, and its redacted form for labels, logs and errors.
//!
//! A URL may carry credentials (`https://user:pass@host/...`) or a token in its query
//! (`?api_key=...`). [`RemoteUrl`]'s `Debug` and `Display` print [`redact_url`]'s form, so
//! neither can leak through a log line or an error; only the HTTP client calls
//! [`RemoteUrl::expose`].

use std::fmt;

use reqwest::Url;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What replaces a credential or a query value.
pub const REDACTED: &str = "<redacted>";

/// An `http` or `https` URL with a host, checked when the config is parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteUrl(Url);

impl RemoteUrl {
    /// The URL itself, credentials included: for the HTTP client only, never to log.
    pub fn expose(&self) -> &Url {
        &self.0
    }

    /// The URL with its user, password and query values replaced by `<redacted>`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }

    /// Whether the URL carries a user or password.
    pub fn has_credentials(&self) -> bool {
        !self.0.username().is_empty() || self.0.password().is_some()
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }
}

impl TryFrom<String> for RemoteUrl {
    type Error = String;

    /// Parses and checks the URL. The error never repeats the input, which may hold a secret.
    fn try_from(text: String) -> Result<Self, Self::Error> {
        let url =
            Url::parse(text.trim()).map_err(|err| format!("invalid remote write url: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "remote write url must be http or https, not {:?}",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("remote write url has no host".to_owned());
        }
        Ok(Self(url))
    }
}

impl std::str::FromStr for RemoteUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::try_from(text.to_owned())
    }
}

impl fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteUrl({})", self.redacted())
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for RemoteUrl {
    /// The full URL: serialising is how environment overrides re-check a config, so the
    /// value must survive the round trip. Only `Debug` and `Display` redact.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for RemoteUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::try_from(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// `url` with its user and password replaced by one `<redacted>` and every query value by
/// `<redacted>` (names kept), e.g. `https://<redacted>@host/api/v1/write?key=<redacted>`.
/// The fragment is dropped: it never reaches a server.
pub fn redact_url(url: &Url) -> String {
    let mut text = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        text.push_str(REDACTED);
        text.push('@');
    }
    if let Some(host) = url.host_str() {
        text.push_str(host);
    }
    if let Some(port) = url.port() {
        text.push_str(&format!(":{port}"));
    }
    text.push_str(url.path());
    if url.query().is_some() {
        let names: Vec<String> = url
            .query_pairs()
            .map(|(name, _)| format!("{name}={REDACTED}"))
            .collect();
        text.push('?');
        text.push_str(&names.join("&"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> RemoteUrl {
        text.parse().unwrap()
    }

    #[test]
    fn redacts_user_password_and_query_values() {
        let u = url("https://alice:hunter2@vm.example:8428/api/v1/write?api_key=s3cret&x=1#frag");
        let shown = u.to_string();
        assert_eq!(
            shown,
            "https://<redacted>@vm.example:8428/api/v1/write?api_key=<redacted>&x=<redacted>"
        );
        for secret in ["alice", "hunter2", "s3cret", "frag"] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(!format!("{u:?}").contains(secret), "{u:?}");
        }
        assert!(u.has_credentials());
    }

    #[test]
    fn plain_url_is_shown_unchanged() {
        let u = url("http://127.0.0.1:8428/api/v1/write");
        assert_eq!(u.to_string(), "http://127.0.0.1:8428/api/v1/write");
        assert!(!u.has_credentials());
        assert!(!u.is_https());
    }

    #[test]
    fn token_only_user_is_redacted() {
        let u = url("https://glc_TOKEN@prometheus.example/api/prom/push");
        assert_eq!(
            u.to_string(),
            "https://<redacted>@prometheus.example/api/prom/push"
        );
    }

    #[test]
    fn refuses_other_schemes_without_echoing_the_input() {
        let err = "ftp://user:pw@host/x".parse::<RemoteUrl>().unwrap_err();
        assert!(err.contains("http or https"), "{err}");
        assert!(!err.contains("pw"), "{err}");
        let err = "not a url with secret".parse::<RemoteUrl>().unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn serialises_the_full_url_for_overrides() {
        let u = url("https://a:b@h/p");
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(json, "\"https://a:b@h/p\"");
        let back: RemoteUrl = serde_json::from_str(&json).unwrap();
        assert_eq!(back, u);
    }
}
