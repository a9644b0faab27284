//! The outbox's settings: backoff, when to give up, how long dead letters are kept.

use muster_shared::config::Duration;
use serde::{Deserialize, Serialize};

/// The outbox's settings (`[outbox]` or wherever the lead mounts it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The first retry's ceiling: a failed entry waits a random time up to this, then up
    /// to twice as long after each further failure. Default `"1s"`.
    #[serde(default = "default_min_backoff")]
    pub min_backoff: Duration,
    /// The longest wait between attempts. Default `"5m"`.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// Give up on an entry whose attempts have failed this long after it was queued (or
    /// after the collector started, if later): it becomes a dead letter. Default `"24h"`.
    #[serde(default = "default_dead_letter_after")]
    pub dead_letter_after: Duration,
    /// How long dead letters are kept before they are dropped. Default `"7d"`.
    #[serde(default = "default_dead_letter_retention")]
    pub dead_letter_retention: Duration,
}

fn default_min_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}
fn default_dead_letter_after() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_dead_letter_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            dead_letter_after: default_dead_letter_after(),
            dead_letter_retention: default_dead_letter_retention(),
        }
    }
}

impl OutboxConfig {
    /// Every rule broken, each naming its key as `<prefix>.<key>`. Empty when valid.
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.min_backoff.get().is_zero() || self.min_backoff > self.max_backoff {
            problems.push(format!(
                "{prefix}.min_backoff must be above zero and at most {prefix}.max_backoff"
            ));
        }
        if self.dead_letter_after.get().is_zero() {
            problems.push(format!("{prefix}.dead_letter_after must be above zero"));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_rules() {
        let c = OutboxConfig::default();
        assert_eq!(c.min_backoff.get(), std::time::Duration::from_secs(1));
        assert_eq!(c.max_backoff.get(), std::time::Duration::from_secs(300));
        assert_eq!(
            c.dead_letter_after.get(),
            std::time::Duration::from_secs(86_400)
        );
        assert_eq!(
            c.dead_letter_retention.get(),
            std::time::Duration::from_secs(604_800)
        );
        assert!(c.problems("outbox").is_empty());
        let bad = OutboxConfig {
            min_backoff: muster_shared::config::Duration::from_secs(600),
            dead_letter_after: muster_shared::config::Duration::from_secs(0),
            ..c
        };
        let problems = bad.problems("alerting.outbox").join("\n");
        assert!(
            problems.contains("alerting.outbox.min_backoff"),
            "{problems}"
        );
        assert!(
            problems.contains("alerting.outbox.dead_letter_after"),
            "{problems}"
        );
        let parse = |text: &str| {
            muster_shared::config::parse::<OutboxConfig>(text, std::path::Path::new("c.toml"))
        };
        let parsed = parse("max_backoff = \"10m\"").unwrap();
        assert_eq!(
            parsed.max_backoff.get(),
            std::time::Duration::from_secs(600)
        );
        let err = parse("max_backof = \"10m\"").unwrap_err().to_string();
        assert!(err.starts_with("c.toml:1:1"), "{err}");
    }
}
