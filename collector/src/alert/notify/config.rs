//! One `[[receivers]]` entry: the keys every kind shares, each kind's own keys, defaults,
//! and the cross-field rules ([`problems`]).
//!
//! The entry is one flat table with a `kind`, so a typo is an unknown key reported at
//! `file:line:col`, and a key that exists but does not apply to the kind (a `bot_token`
//! on a Slack receiver) is reported by [`problems`], which lists every problem at once.
//! Secrets (`url`, tokens, passwords) are [`Secret`]s or `*_file` keys, so a `Debug` of the
//! config prints none.
//!
//! Leaves out reading the files named here (done once by `Receiver::build`) and routing:
//! which alerts reach a receiver is the route's business.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use muster_shared::config::{self, Duration, Secret};
use serde::{Deserialize, Serialize};

use super::ReceiverKind;
use crate::alert::quiet::QuietHours;

/// One receiver (`[[receivers]]`).
///
/// ```toml
/// [[receivers]]
/// name = "ops-chat"
/// kind = "slack"            # slack, mattermost, rocketchat, discord, teams, telegram, ntfy,
///                           # webhook, alertmanager
/// url_file = "/etc/muster/slack-webhook-url"
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// The name routes refer to; unique; the `receiver` label of the metrics.
    pub name: String,
    /// Which service.
    pub kind: ReceiverKind,
    /// Where to send, `http` or `https`. Chat webhook URLs hold their secret, so the URL is
    /// a secret: never logged, never in an error. Excludes `url_file`. For `telegram` it is
    /// the Bot API's base (default `https://api.telegram.org`), for `ntfy` the topic's URL
    /// (`https://ntfy.sh/my-topic`), for `alertmanager` its base URL
    /// (`http://alertmanager:9093`; `/api/v2/alerts` is appended).
    #[serde(default)]
    pub url: Option<Secret>,
    /// A file holding `url` (one trailing newline ignored).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Whether to say when alerts resolve. Default true. When false, resolved alerts are
    /// left out and a notification with no firing alert is not sent.
    #[serde(default = "default_send_resolved")]
    pub send_resolved: bool,
    /// Alerts per notification, at most; the rest are counted in `truncatedAlerts` and
    /// "…and N more alerts". Default 0: all (each kind still applies its platform's limits).
    #[serde(default)]
    pub max_alerts: usize,
    /// Limit of one request, connection included. Default `"10s"`.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// PEM file of the CA certificate(s) an `https` service must verify to. Default: the
    /// system's bundle.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A daily window in which this receiver's notifications are held (applied by the
    /// dispatcher, through its `ReceiverPolicy`; see `alert::quiet`). Default none.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,

    /// slack, mattermost, rocketchat: the channel to post to, instead of the webhook's.
    #[serde(default)]
    pub channel: Option<String>,
    /// slack, mattermost, rocketchat (`alias`), discord: the name to post as.
    #[serde(default)]
    pub username: Option<String>,
    /// slack, mattermost, rocketchat (`emoji`): the emoji to post as, `:rotating_light:`.
    #[serde(default)]
    pub icon_emoji: Option<String>,
    /// slack, mattermost, rocketchat (`avatar`), discord (`avatar_url`): the picture to
    /// post as.
    #[serde(default)]
    pub icon_url: Option<String>,

    /// telegram: the bot's token (`123456:ABC-...`). Excludes `bot_token_file`.
    #[serde(default)]
    pub bot_token: Option<Secret>,
    /// telegram: a file holding the bot's token.
    #[serde(default)]
    pub bot_token_file: Option<PathBuf>,
    /// telegram: the chat, a number (`-1001234567890`) or a channel's `@username`.
    #[serde(default)]
    pub chat_id: Option<ChatId>,
    /// telegram: the topic of a forum supergroup.
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    /// telegram: deliver silently. Default false.
    #[serde(default)]
    pub disable_notification: bool,

    /// ntfy: an access token (`tk_...`), sent as `Authorization: Bearer`. Excludes
    /// `token_file`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// ntfy: a file holding the access token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,

    /// webhook, alertmanager: `Authorization: Bearer <token>`. Excludes
    /// `bearer_token_file` and `basic_auth`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// webhook, alertmanager: a file holding the bearer token.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// webhook, alertmanager: HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,

    /// alertmanager: how long a firing alert pushed to Alertmanager stays firing there
    /// without being pushed again (its `endsAt` is the push time plus this). Default
    /// `"4m"`. Routes to this receiver must repeat firing alerts well within it: set their
    /// `repeat_interval` (and `group_interval`) to at most a quarter of it (`"1m"`).
    #[serde(default)]
    pub lease: Option<Duration>,
}

/// `basic_auth` of a receiver.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name (no `:`).
    pub username: String,
    /// The password. Excludes `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// A Telegram chat: a numeric id or a public channel's `@username`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    /// A user (positive), group or supergroup (negative).
    Id(i64),
    /// `@channelusername`.
    Name(String),
}

/// The default `lease` of an `alertmanager` receiver: 4 × a 1 minute repeat, as Prometheus
/// leases its own pushes (research §6).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(240);

fn default_send_resolved() -> bool {
    true
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Keys that only some kinds take, and which.
const KIND_KEYS: &[(&str, &[ReceiverKind])] = {
    use ReceiverKind::*;
    &[
        ("channel", &[Slack, Mattermost, Rocketchat]),
        ("username", &[Slack, Mattermost, Rocketchat, Discord]),
        ("icon_emoji", &[Slack, Mattermost, Rocketchat]),
        ("icon_url", &[Slack, Mattermost, Rocketchat, Discord]),
        ("bot_token", &[Telegram]),
        ("bot_token_file", &[Telegram]),
        ("chat_id", &[Telegram]),
        ("message_thread_id", &[Telegram]),
        ("disable_notification", &[Telegram]),
        ("token", &[Ntfy]),
        ("token_file", &[Ntfy]),
        ("bearer_token", &[Webhook, Alertmanager]),
        ("bearer_token_file", &[Webhook, Alertmanager]),
        ("basic_auth", &[Webhook, Alertmanager]),
        ("lease", &[Alertmanager]),
    ]
};

impl ReceiverConfig {
    /// A receiver `name` of `kind` with every default and no URL.
    pub fn new(name: impl Into<String>, kind: ReceiverKind) -> Self {
        Self {
            name: name.into(),
            kind,
            url: None,
            url_file: None,
            send_resolved: default_send_resolved(),
            max_alerts: 0,
            timeout: default_timeout(),
            ca_file: None,
            quiet_hours: None,
            channel: None,
            username: None,
            icon_emoji: None,
            icon_url: None,
            bot_token: None,
            bot_token_file: None,
            chat_id: None,
            message_thread_id: None,
            disable_notification: false,
            token: None,
            token_file: None,
            bearer_token: None,
            bearer_token_file: None,
            basic_auth: None,
            lease: None,
        }
    }

    /// This entry with its file paths resolved against the config file's folder.
    pub fn with_paths_resolved(mut self, config_path: &Path) -> Self {
        let resolve = |p: &mut Option<PathBuf>| {
            if let Some(path) = p {
                *path = config::resolve_path(config_path, path);
            }
        };
        resolve(&mut self.url_file);
        resolve(&mut self.ca_file);
        resolve(&mut self.bot_token_file);
        resolve(&mut self.token_file);
        resolve(&mut self.bearer_token_file);
        if let Some(auth) = &mut self.basic_auth {
            resolve(&mut auth.password_file);
        }
        self
    }

    /// The `lease` of an `alertmanager` receiver, [`DEFAULT_LEASE`] when unset.
    pub fn lease(&self) -> std::time::Duration {
        self.lease.unwrap_or(DEFAULT_LEASE).get()
    }

    /// The kind-specific keys set in this entry, by name.
    fn set_keys(&self) -> Vec<&'static str> {
        let set = [
            ("channel", self.channel.is_some()),
            ("username", self.username.is_some()),
            ("icon_emoji", self.icon_emoji.is_some()),
            ("icon_url", self.icon_url.is_some()),
            ("bot_token", self.bot_token.is_some()),
            ("bot_token_file", self.bot_token_file.is_some()),
            ("chat_id", self.chat_id.is_some()),
            ("message_thread_id", self.message_thread_id.is_some()),
            ("disable_notification", self.disable_notification),
            ("token", self.token.is_some()),
            ("token_file", self.token_file.is_some()),
            ("bearer_token", self.bearer_token.is_some()),
            ("bearer_token_file", self.bearer_token_file.is_some()),
            ("basic_auth", self.basic_auth.is_some()),
            ("lease", self.lease.is_some()),
        ];
        set.into_iter()
            .filter(|(_, is_set)| *is_set)
            .map(|(key, _)| key)
            .collect()
    }

    /// Every rule this entry breaks, each naming its key as `<at>.<key>` (`at` is where the
    /// entry is, e.g. `alerting.receivers[2]`). Empty when the entry is valid. Never
    /// repeats a secret.
    pub fn problems(&self, at: &str) -> Vec<String> {
        let key = |k: &str| format!("{at}.{k}");
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push(format!("{} must not be empty", key("name")));
        }
        for set in self.set_keys() {
            let applies = KIND_KEYS
                .iter()
                .find(|(k, _)| *k == set)
                .is_some_and(|(_, kinds)| kinds.contains(&self.kind));
            if !applies {
                problems.push(format!(
                    "{} does not apply to kind {:?}",
                    key(set),
                    self.kind.as_str()
                ));
            }
        }
        let url_required = !matches!(self.kind, ReceiverKind::Telegram);
        match (&self.url, &self.url_file) {
            (Some(_), Some(_)) => problems.push(format!(
                "{} and {} exclude each other",
                key("url"),
                key("url_file")
            )),
            (None, None) if url_required => problems.push(format!(
                "{} (or url_file) is required for kind {:?}",
                key("url"),
                self.kind.as_str()
            )),
            (Some(url), None) => {
                if let Err(reason) = parse_url(url.expose()) {
                    problems.push(format!("{}: {reason}", key("url")));
                } else if self.ca_file.is_some() && !url.expose().trim().starts_with("https:") {
                    problems.push(format!("{} needs an https url", key("ca_file")));
                }
            }
            _ => {}
        }
        if self.timeout.get().is_zero() {
            problems.push(format!("{} must be above zero", key("timeout")));
        }
        if let Some(quiet) = &self.quiet_hours {
            problems.extend(quiet.problems(&key("quiet_hours")));
        }
        match self.kind {
            ReceiverKind::Telegram => {
                if self.bot_token.is_some() == self.bot_token_file.is_some() {
                    problems.push(format!(
                        "{at} needs exactly one of bot_token and bot_token_file"
                    ));
                }
                match &self.chat_id {
                    None => problems.push(format!(
                        "{} is required for kind \"telegram\"",
                        key("chat_id")
                    )),
                    Some(ChatId::Name(name)) if !name.starts_with('@') || name.len() < 2 => {
                        problems.push(format!(
                            "{} must be a number or a channel's @username",
                            key("chat_id")
                        ));
                    }
                    Some(_) => {}
                }
            }
            ReceiverKind::Ntfy if self.token.is_some() && self.token_file.is_some() => {
                problems.push(format!(
                    "{} and {} exclude each other",
                    key("token"),
                    key("token_file")
                ));
            }
            ReceiverKind::Alertmanager => {
                if self.max_alerts != 0 {
                    problems.push(format!(
                        "{} must be 0 for kind \"alertmanager\": every alert must reach it",
                        key("max_alerts")
                    ));
                }
                if self
                    .lease
                    .is_some_and(|l| l.get() < std::time::Duration::from_secs(1))
                {
                    problems.push(format!("{} must be at least 1s", key("lease")));
                }
            }
            _ => {}
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
        problems
    }
}

/// The problems of every entry of the list at `prefix` (e.g. `alerting.receivers`), and
/// names used twice.
pub fn problems(prefix: &str, configs: &[ReceiverConfig]) -> Vec<String> {
    let mut problems: Vec<String> = configs
        .iter()
        .enumerate()
        .flat_map(|(index, c)| c.problems(&format!("{prefix}[{index}]")))
        .collect();
    let mut seen = BTreeSet::new();
    for (index, c) in configs.iter().enumerate() {
        if !seen.insert(c.name.as_str()) {
            problems.push(format!(
                "{prefix}[{index}].name {:?} is used by an earlier receiver; names must be unique",
                c.name
            ));
        }
    }
    problems
}

/// Parses a receiver URL: `http` or `https` with a host. The error never repeats the
/// input (a webhook URL is a secret).
pub fn parse_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|err| format!("not a valid URL ({err})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must be http or https, not {:?}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
