//! Receivers: one notification, sent once, to one chat service, webhook or Alertmanager.
//!
//! The contract is one method, [`Notifier::send`]: send this notification once and say
//! whether it arrived, or why not and whether a retry can help ([`NotifyError`]). Each
//! kind ([`ReceiverKind`]) is one file that knows its service: its message shape and
//! limits, its rate limits and how it says "slow down", and where it differs from the
//! shared status classifier. A [`Receiver`] is a configured kind: it applies the keys
//! every kind shares (`send_resolved`, `max_alerts`) before its kind sees the
//! notification. [`build_all`] makes them from `[[receivers]]`.
//!
//! Parts, one per file:
//! - `config.rs`: [`ReceiverConfig`], the `[[receivers]]` keys and their rules.
//! - `error.rs`: [`NotifyError`], [`FailureReason`], the shared classifier, `Retry-After`.
//! - `http.rs`: the client every kind uses; `redact.rs`: keeping secrets out of texts.
//! - `render.rs`: the title and per-alert text every chat kind lays out.
//! - `truncate.rs`: cutting text to a platform's limits.
//! - `slack.rs` (also Mattermost and Rocket.Chat), `discord.rs`, `teams.rs`,
//!   `telegram.rs`, `ntfy.rs`, `webhook.rs` (Alertmanager's webhook v4), `alertmanager.rs`
//!   (Alertmanager's API v2).
//!
//! Leaves out retries, backoff, ordering and durability (the outbox), and deciding what to
//! send (the dispatcher).

pub mod config;
pub mod error;
pub mod render;
pub mod truncate;

mod alertmanager;
mod discord;
mod http;
mod ntfy;
mod redact;
mod slack;
mod teams;
mod telegram;
mod webhook;

#[cfg(test)]
pub(crate) mod testkit;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub use config::{BasicAuth, ChatId, ReceiverConfig};
pub use error::{FailureReason, NotifyError, ReceiverError};
pub use redact::{SecretUrl, redact_url};

use crate::alert::model::{Notification, NotifyStatus};

/// The future [`Notifier::send`] returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Delivered, NotifyError>> + Send + 'a>>;

/// Sends notifications to one service. Implemented by each kind; tests implement it with
/// fakes.
pub trait Notifier: Send + Sync + fmt::Debug {
    /// Sends `n` once. Never retries: a failure says whether a retry can help.
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a>;
}

/// What a successful send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivered {
    /// Texts cut, or alerts left out, to fit the platform's limits.
    pub truncations: u32,
}

/// The outcome of [`Receiver::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The service took it.
    Delivered(Delivered),
    /// Nothing to send: only resolved alerts, and `send_resolved = false`.
    Skipped,
}

/// The kinds of receiver; `kind` in `[[receivers]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    /// Slack incoming webhook.
    Slack,
    /// Mattermost incoming webhook (Slack's shape).
    Mattermost,
    /// Rocket.Chat incoming webhook (Slack's shape, its own names for the sender).
    Rocketchat,
    /// Discord webhook.
    Discord,
    /// Microsoft Teams Workflows webhook, with an Adaptive Card.
    Teams,
    /// Telegram Bot API `sendMessage`.
    Telegram,
    /// ntfy topic.
    Ntfy,
    /// Generic JSON webhook, Alertmanager's webhook payload version 4.
    Webhook,
    /// Alertmanager's API v2 (`POST /api/v2/alerts`).
    Alertmanager,
}

impl ReceiverKind {
    /// Every kind.
    pub const ALL: [ReceiverKind; 9] = [
        ReceiverKind::Slack,
        ReceiverKind::Mattermost,
        ReceiverKind::Rocketchat,
        ReceiverKind::Discord,
        ReceiverKind::Teams,
        ReceiverKind::Telegram,
        ReceiverKind::Ntfy,
        ReceiverKind::Webhook,
        ReceiverKind::Alertmanager,
    ];

    /// Its name in config and in the `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Slack => "slack",
            ReceiverKind::Mattermost => "mattermost",
            ReceiverKind::Rocketchat => "rocketchat",
            ReceiverKind::Discord => "discord",
            ReceiverKind::Teams => "teams",
            ReceiverKind::Telegram => "telegram",
            ReceiverKind::Ntfy => "ntfy",
            ReceiverKind::Webhook => "webhook",
            ReceiverKind::Alertmanager => "alertmanager",
        }
    }
}

/// A configured receiver: a kind's [`Notifier`] with the keys every kind shares.
#[derive(Debug)]
pub struct Receiver {
    name: String,
    kind: ReceiverKind,
    send_resolved: bool,
    max_alerts: usize,
    notifier: Box<dyn Notifier>,
}

impl Receiver {
    /// The receiver `config` describes. Reads its `*_file` keys and TLS roots (blocking
    /// file I/O, once).
    ///
    /// # Errors
    /// [`ReceiverError::Invalid`] listing every problem of the entry; the others name the
    /// file or setting at fault.
    pub fn build(config: &ReceiverConfig) -> Result<Self, ReceiverError> {
        let problems = config.problems(&format!("receivers[{:?}]", config.name));
        if !problems.is_empty() {
            return Err(ReceiverError::Invalid { problems });
        }
        let notifier: Box<dyn Notifier> = match config.kind {
            ReceiverKind::Slack | ReceiverKind::Mattermost | ReceiverKind::Rocketchat => {
                Box::new(slack::Slack::new(config)?)
            }
            ReceiverKind::Discord => Box::new(discord::Discord::new(config)?),
            ReceiverKind::Teams => Box::new(teams::Teams::new(config)?),
            ReceiverKind::Telegram => Box::new(telegram::Telegram::new(config)?),
            ReceiverKind::Ntfy => Box::new(ntfy::Ntfy::new(config)?),
            ReceiverKind::Webhook => Box::new(webhook::Webhook::new(config)?),
            ReceiverKind::Alertmanager => Box::new(alertmanager::Alertmanager::new(config)?),
        };
        Ok(Self::new(config, notifier))
    }

    /// A receiver named and set up by `config` that sends through `notifier` (a fake, in
    /// tests).
    pub fn new(config: &ReceiverConfig, notifier: Box<dyn Notifier>) -> Self {
        Self {
            name: config.name.clone(),
            kind: config.kind,
            send_resolved: config.send_resolved,
            max_alerts: config.max_alerts,
            notifier,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind.
    pub fn kind(&self) -> ReceiverKind {
        self.kind
    }

    /// `n` as this receiver sends it: without resolved alerts unless `send_resolved`,
    /// and at most `max_alerts` alerts (the rest added to `truncated_alerts`). `None` when
    /// nothing is left to send. Applying it twice changes nothing more.
    pub fn prepare<'a>(&self, n: &'a Notification) -> Option<Cow<'a, Notification>> {
        let mut n = Cow::Borrowed(n);
        if !self.send_resolved && n.resolved_count() > 0 {
            let owned = n.to_mut();
            owned.alerts.retain(|a| a.status == NotifyStatus::Firing);
            if owned.alerts.is_empty() {
                return None;
            }
            owned.status = NotifyStatus::Firing;
        }
        if self.max_alerts > 0 && n.alerts.len() > self.max_alerts {
            let owned = n.to_mut();
            owned.truncated_alerts += owned.alerts.len() - self.max_alerts;
            owned.alerts.truncate(self.max_alerts);
        }
        Some(n)
    }

    /// Prepares `n` ([`Self::prepare`]) and sends it once.
    ///
    /// # Errors
    /// The kind's [`NotifyError`].
    pub async fn send(&self, n: &Notification) -> Result<Sent, NotifyError> {
        match self.prepare(n) {
            None => Ok(Sent::Skipped),
            Some(prepared) => self.notifier.send(&prepared).await.map(Sent::Delivered),
        }
    }
}

/// Every receiver of `configs`, in order. Checks all entries first (names unique, keys per
/// kind; problems name keys as `receivers[<index>].<key>`: check with
/// [`config::problems`] at load for the file's own prefix), then builds each.
///
/// # Errors
/// [`ReceiverError::Invalid`] listing every problem of every entry, or the first entry
/// that could not be built.
pub fn build_all(configs: &[ReceiverConfig]) -> Result<Vec<Receiver>, ReceiverError> {
    let problems = config::problems("receivers", configs);
    if !problems.is_empty() {
        return Err(ReceiverError::Invalid { problems });
    }
    configs.iter().map(Receiver::build).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Nothing;

    impl Notifier for Nothing {
        fn send<'a>(&'a self, _: &'a Notification) -> SendFuture<'a> {
            Box::pin(async { Ok(Delivered::default()) })
        }
    }

    fn receiver(send_resolved: bool, max_alerts: usize) -> Receiver {
        let mut config = ReceiverConfig::new("r", ReceiverKind::Webhook);
        config.send_resolved = send_resolved;
        config.max_alerts = max_alerts;
        Receiver::new(&config, Box::new(Nothing))
    }

    #[test]
    fn send_resolved_false_drops_resolved_alerts_and_empty_notifications() {
        let r = receiver(false, 0);
        assert!(r.prepare(&testkit::resolved()).is_none());
        let mut mixed = testkit::two_alerts();
        mixed.alerts[1].status = NotifyStatus::Resolved;
        let prepared = r.prepare(&mixed).unwrap();
        assert_eq!(prepared.alerts.len(), 1);
        assert_eq!(prepared.status, NotifyStatus::Firing);
        let n = testkit::two_alerts();
        assert!(matches!(
            receiver(true, 0).prepare(&n),
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn max_alerts_counts_what_it_leaves_out_once() {
        let r = receiver(true, 1);
        let mut n = testkit::two_alerts();
        n.truncated_alerts = 3;
        let once = r.prepare(&n).unwrap().into_owned();
        assert_eq!((once.alerts.len(), once.truncated_alerts), (1, 4));
        let twice = r.prepare(&once).unwrap();
        assert_eq!((twice.alerts.len(), twice.truncated_alerts), (1, 4));
    }

    #[tokio::test]
    async fn skipped_notifications_are_not_sent() {
        assert_eq!(
            receiver(false, 0).send(&testkit::resolved()).await,
            Ok(Sent::Skipped)
        );
        assert_eq!(
            receiver(true, 0).send(&testkit::resolved()).await,
            Ok(Sent::Delivered(Delivered::default()))
        );
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for kind in ReceiverKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ReceiverKind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn build_all_reports_every_problem() {
        let mut a = ReceiverConfig::new("a", ReceiverKind::Slack);
        a.bot_token = Some(muster_shared::config::Secret::new("x"));
        let b = ReceiverConfig::new("a", ReceiverKind::Discord);
        let err = build_all(&[a, b]).unwrap_err().to_string();
        assert!(
            err.contains("receivers[0].bot_token does not apply"),
            "{err}"
        );
        assert!(
            err.contains("receivers[1].url (or url_file) is required"),
            "{err}"
        );
        assert!(err.contains("used by an earlier receiver"), "{err}");
    }
}
