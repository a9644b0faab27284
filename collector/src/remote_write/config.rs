//! One `[[remote_write]]` entry of `collector.toml`.
//!
//! Owns the keys, their defaults (Prometheus's queue defaults where it has one) and the
//! cross-field rules ([`RemoteWriteConfig::problems`]). Secrets are [`Secret`]s or `*_file`
//! keys; the URL is a [`RemoteUrl`], so neither prints in a `Debug` of the config.
//!
//! Leaves out: loading files named here (the sender reads them once at start) and the
//! relabelling Prometheus offers (`write_relabel_configs`): everything stored is sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use muster_shared::config::{self, Duration, Secret};
use serde::{Deserialize, Serialize};

use super::url::RemoteUrl;

/// Headers a config may not set: the protocol's own and the ones the auth keys own.
pub const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "content-encoding",
    "content-length",
    "content-type",
    "host",
    "user-agent",
    "x-prometheus-remote-write-version",
];

/// One remote write endpoint (`[[remote_write]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver's write URL, `http` or `https`, e.g.
    /// `http://victoria:8428/api/v1/write`. Credentials in it are allowed and redacted
    /// wherever the URL is shown.
    pub url: RemoteUrl,
    /// The `remote` label of this endpoint's metrics and logs. Default: the URL, redacted.
    /// Must be unique among `[[remote_write]]` entries.
    #[serde(default)]
    pub name: Option<String>,
    /// Limit of one request, connection included. Default `"30s"`.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Samples waiting to be sent, at most. When full, the oldest are dropped and counted
    /// (`result="dropped_queue_full"`). Default 100000; at least `max_samples_per_send`.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Samples per request, at most. Default 2000 (Prometheus's default).
    #[serde(default = "default_max_samples_per_send")]
    pub max_samples_per_send: usize,
    /// A request is sent at the latest this long after its first sample was queued, full or
    /// not. Default `"5s"`.
    #[serde(default = "default_batch_send_deadline")]
    pub batch_send_deadline: Duration,
    /// First delay before retrying a failed request; it doubles up to `max_backoff`, each
    /// delay drawn between half and all of it. Default `"30ms"`.
    #[serde(default = "default_min_backoff")]
    pub min_backoff: Duration,
    /// Longest delay between retries. Default `"5s"`.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// On shutdown, how long the sender keeps sending what is queued before it gives up and
    /// counts the rest as `result="dropped_shutdown"`. Default `"10s"`.
    #[serde(default = "default_flush_deadline")]
    pub flush_deadline: Duration,
    /// `Authorization: Bearer <token>`. Excludes `bearer_token_file` and `basic_auth`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// A file holding the bearer token (one trailing newline is ignored).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Extra request headers (for example `X-Scope-OrgID` for Mimir). Values are treated as
    /// secrets. The protocol's headers and `Authorization` cannot be set here.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// PEM file of the CA certificate(s) that an `https` receiver's certificate must verify
    /// to. Default: the system's bundle (`/etc/ssl/certs/ca-certificates.crt` or
    /// `/etc/pki/tls/certs/ca-bundle.crt`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `basic_auth` of a `[[remote_write]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password. Excludes `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file holding the password (one trailing newline is ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_queue_capacity() -> usize {
    100_000
}
fn default_max_samples_per_send() -> usize {
    2_000
}
fn default_batch_send_deadline() -> Duration {
    Duration::from_secs(5)
}
fn default_min_backoff() -> Duration {
    Duration(std::time::Duration::from_millis(30))
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(5)
}
fn default_flush_deadline() -> Duration {
    Duration::from_secs(10)
}

impl RemoteWriteConfig {
    /// An entry for `url` with every default.
    pub fn new(url: RemoteUrl) -> Self {
        Self {
            url,
            name: None,
            timeout: default_timeout(),
            queue_capacity: default_queue_capacity(),
            max_samples_per_send: default_max_samples_per_send(),
            batch_send_deadline: default_batch_send_deadline(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            flush_deadline: default_flush_deadline(),
            bearer_token: None,
            bearer_token_file: None,
            basic_auth: None,
            headers: BTreeMap::new(),
            ca_file: None,
        }
    }

    /// The `remote` label: `name`, or the URL with its credentials redacted.
    pub fn remote(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.url.redacted())
    }

    /// This entry with its file paths resolved against the config file's folder.
    pub fn with_paths_resolved(mut self, config_path: &Path) -> Self {
        let resolve = |p: &mut Option<PathBuf>| {
            if let Some(path) = p {
                *path = config::resolve_path(config_path, path);
            }
        };
        resolve(&mut self.bearer_token_file);
        resolve(&mut self.ca_file);
        if let Some(auth) = &mut self.basic_auth {
            resolve(&mut auth.password_file);
        }
        self
    }

    /// Every cross-field rule this entry breaks, each naming its key as
    /// `remote_write[<index>].<key>`. Empty when the entry is valid.
    pub fn problems(&self, index: usize) -> Vec<String> {
        let key = |k: &str| format!("remote_write[{index}].{k}");
        let mut problems = Vec::new();
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            problems.push(format!("{} must not be empty", key("name")));
        }
        if self.timeout.get().is_zero() {
            problems.push(format!("{} must be above zero", key("timeout")));
        }
        if self.max_samples_per_send == 0 {
            problems.push(format!(
                "{} must be at least 1",
                key("max_samples_per_send")
            ));
        }
        if self.queue_capacity < self.max_samples_per_send {
            problems.push(format!(
                "{} must be at least max_samples_per_send ({})",
                key("queue_capacity"),
                self.max_samples_per_send
            ));
        }
        if self.batch_send_deadline.get().is_zero() {
            problems.push(format!("{} must be above zero", key("batch_send_deadline")));
        }
        if self.min_backoff.get().is_zero() || self.min_backoff > self.max_backoff {
            problems.push(format!(
                "{} must be above zero and at most {}",
                key("min_backoff"),
                key("max_backoff")
            ));
        }
        let auth_kinds = [
            self.bearer_token.is_some(),
            self.bearer_token_file.is_some(),
            self.basic_auth.is_some(),
        ];
        if auth_kinds.iter().filter(|set| **set).count() > 1 {
            problems.push(format!(
                "{}, {} and {} exclude each other",
                key("bearer_token"),
                key("bearer_token_file"),
                key("basic_auth")
            ));
        }
        if self.url.has_credentials() && auth_kinds.iter().any(|set| *set) {
            problems.push(format!(
                "{} carries credentials; remove them or the auth keys",
                key("url")
            ));
        }
        if let Some(auth) = &self.basic_auth {
            if auth.password.is_some() == auth.password_file.is_some() {
                problems.push(format!(
                    "{} needs exactly one of password and password_file",
                    key("basic_auth")
                ));
            }
            if auth.username.contains(':') {
                problems.push(format!(
                    "{} must not contain ':'",
                    key("basic_auth.username")
                ));
            }
        }
        for name in self.headers.keys() {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                problems.push(format!(
                    "{} cannot set {name:?}: the sender sets it",
                    key("headers")
                ));
            } else if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(format!("{}: {name:?} is not a header name", key("headers")));
            }
        }
        if self.ca_file.is_some() && !self.url.is_https() {
            problems.push(format!("{} needs an https url", key("ca_file")));
        }
        problems
    }
}

/// The problems of every entry, and names (`remote` labels) used twice.
pub fn problems(configs: &[RemoteWriteConfig]) -> Vec<String> {
    let mut problems: Vec<String> = configs
        .iter()
        .enumerate()
        .flat_map(|(index, c)| c.problems(index))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for (index, c) in configs.iter().enumerate() {
        if !seen.insert(c.remote()) {
            problems.push(format!(
                "remote_write[{index}] has the same name as an earlier entry ({}); set a unique name",
                c.remote()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        remote_write: Vec<RemoteWriteConfig>,
    }

    fn parse(text: &str) -> Result<Vec<RemoteWriteConfig>, config::ConfigError> {
        config::parse::<File>(text, Path::new("collector.toml")).map(|f| f.remote_write)
    }

    #[test]
    fn defaults_follow_prometheus() {
        let c =
            &parse("[[remote_write]]\nurl = \"http://127.0.0.1:8428/api/v1/write\"\n").unwrap()[0];
        assert_eq!(c.timeout.get(), std::time::Duration::from_secs(30));
        assert_eq!(c.max_samples_per_send, 2_000);
        assert_eq!(c.queue_capacity, 100_000);
        assert_eq!(
            c.batch_send_deadline.get(),
            std::time::Duration::from_secs(5)
        );
        assert_eq!(c.min_backoff.get(), std::time::Duration::from_millis(30));
        assert_eq!(c.max_backoff.get(), std::time::Duration::from_secs(5));
        assert_eq!(c.remote(), "http://127.0.0.1:8428/api/v1/write");
        assert!(c.problems(0).is_empty());
    }

    #[test]
    fn bad_url_names_file_line_col() {
        let err = parse("[[remote_write]]\nurl = \"ftp://x/\"\n").unwrap_err();
        assert!(err.to_string().starts_with("collector.toml:2:7:"), "{err}");
        let err = parse("[[remote_write]]\nurl = \"http://x/\"\nurll = 1\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `urll`"), "{err}");
    }

    #[test]
    fn every_problem_is_reported() {
        let configs = parse(
            r#"
[[remote_write]]
url = "http://u:p@a/w"
bearer_token = "t"
max_samples_per_send = 10
queue_capacity = 5
min_backoff = "10s"
ca_file = "/ca.pem"
headers = { "Content-Type" = "text/plain", "X-Scope-OrgID" = "tenant" }
basic_auth = { username = "a:b" }
[[remote_write]]
url = "http://other:user@a/w"
"#,
        )
        .unwrap();
        let text = problems(&configs).join("\n");
        for expected in [
            "remote_write[0].queue_capacity",
            "remote_write[0].min_backoff",
            "exclude each other",
            "remote_write[0].url carries credentials",
            "exactly one of password and password_file",
            "basic_auth.username",
            "cannot set \"Content-Type\"",
            "ca_file needs an https url",
            // Two URLs differing only in credentials redact to the same label.
            "remote_write[1] has the same name",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
        assert!(!text.contains("X-Scope-OrgID"), "{text}");
    }

    #[test]
    fn debug_shows_no_secret() {
        let configs = parse(
            r#"
[[remote_write]]
url = "https://user:urlpass@a/w?key=querysecret"
[[remote_write]]
url = "https://b/w"
bearer_token = "tokensecret"
headers = { "X-Api-Key" = "headersecret" }
[[remote_write]]
url = "https://c/w"
basic_auth = { username = "u", password = "basicsecret" }
"#,
        )
        .unwrap();
        let shown = format!("{configs:?}");
        for secret in [
            "urlpass",
            "querysecret",
            "tokensecret",
            "headersecret",
            "basicsecret",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn relative_files_resolve_against_the_config() {
        let c = parse(
            "[[remote_write]]\nurl = \"https://a/w\"\nca_file = \"ca.pem\"\nbearer_token_file = \"/abs/token\"\n",
        )
        .unwrap()
        .remove(0)
        .with_paths_resolved(Path::new("/etc/muster/collector.toml"));
        assert_eq!(c.ca_file.unwrap(), Path::new("/etc/muster/ca.pem"));
        assert_eq!(c.bearer_token_file.unwrap(), Path::new("/abs/token"));
    }

    #[test]
    fn the_example_config_block_parses_and_is_valid() {
        // config/collector.example.toml shows [[remote_write]] commented out; uncommented, it
        // must load and pass every rule.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/collector.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let block: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# [[remote_write]]"))
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(block.starts_with("[[remote_write]]"), "{block}");
        let parsed: crate::config::CollectorConfig = config::parse(&block, &path).unwrap();
        assert_eq!(parsed.remote_write.len(), 1);
        assert!(problems(&parsed.remote_write).is_empty());
    }
}
