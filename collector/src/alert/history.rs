//! Alert history: every alert episode that ended, kept for a while so the API can answer
//! "what fired last night on web1?".
//!
//! Owns the sled tree `alert_history`. An entry is written when an alert resolves, keyed by
//! (resolve time, fingerprint) so a listing newest first is a reverse range scan and
//! pruning by age is a forward one. Leaves out the alerts still active: the evaluator holds
//! those. An interrupted write leaves the entry out (it is one insert); nothing else
//! depends on it.

use muster_shared::store::{Key, KeyError, Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};

use super::labels::Fingerprint;
use super::matcher::{Matcher, all_match};
use super::model::{Alert, AlertState};

/// The tree's name.
pub const TREE: &str = "alert_history";

/// How long ended episodes are kept by default: 30 days.
pub const DEFAULT_RETENTION_MS: u64 = 30 * 24 * 3600 * 1000;

/// Where an episode sits: when it resolved, then which alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HistoryKey {
    /// Resolve time, ms since the Unix epoch.
    pub resolved_at_ms: u64,
    /// The alert.
    pub fingerprint: Fingerprint,
}

impl Key for HistoryKey {
    /// 16 bytes: the resolve time then the fingerprint, both big endian, so byte order is
    /// time order.
    fn to_key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(16);
        key.extend_from_slice(&self.resolved_at_ms.to_be_bytes());
        key.extend_from_slice(&self.fingerprint.0.to_be_bytes());
        key
    }

    fn from_key(bytes: &[u8]) -> Result<Self, KeyError> {
        let bytes: [u8; 16] = bytes.try_into().map_err(|_| KeyError::Length {
            expected: 16,
            found: bytes.len(),
        })?;
        let (time, fingerprint) = bytes.split_at(8);
        let word = |half: &[u8]| {
            let mut word = [0u8; 8];
            word.copy_from_slice(half);
            u64::from_be_bytes(word)
        };
        Ok(Self {
            resolved_at_ms: word(time),
            fingerprint: Fingerprint(word(fingerprint)),
        })
    }
}

/// One ended episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The alert as it resolved.
    pub alert: Alert,
}

impl Record for Episode {
    const SCHEMA: u8 = 1;
}

/// What a history search asks for.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Episodes that resolved at or after this time.
    pub since_ms: Option<u64>,
    /// Episodes that resolved at or before this time.
    pub until_ms: Option<u64>,
    /// Labels every returned alert satisfies.
    pub matchers: Vec<Matcher>,
    /// Text found (case-insensitively) in a label or annotation value.
    pub text: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// The history tree.
#[derive(Debug, Clone)]
pub struct AlertHistory {
    tree: Tree<HistoryKey, Episode>,
}

impl AlertHistory {
    /// Opens the tree. Blocking.
    ///
    /// # Errors
    /// A store error naming the tree.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
        })
    }

    /// Records the resolved alerts among `alerts` that are not recorded yet. Blocking; the
    /// caller flushes the store at its commit point.
    ///
    /// # Errors
    /// A store error.
    pub fn record_resolved<'a>(
        &self,
        alerts: impl IntoIterator<Item = &'a Alert>,
    ) -> Result<usize, StoreError> {
        let mut batch = self.tree.batch();
        for alert in alerts {
            let (AlertState::Resolved, Some(resolved_at_ms)) = (alert.state, alert.resolved_at_ms)
            else {
                continue;
            };
            let key = HistoryKey {
                resolved_at_ms,
                fingerprint: alert.fingerprint(),
            };
            if !self.tree.contains_key(&key)? {
                batch.insert(
                    &key,
                    &Episode {
                        alert: alert.clone(),
                    },
                )?;
            }
        }
        let written = batch.len();
        if written > 0 {
            self.tree.apply(batch)?;
        }
        Ok(written)
    }

    /// Episodes matching `query`, newest first. Blocking.
    ///
    /// # Errors
    /// A store error.
    pub fn search(&self, query: &HistoryQuery) -> Result<Vec<Alert>, StoreError> {
        let low = HistoryKey {
            resolved_at_ms: query.since_ms.unwrap_or(0),
            fingerprint: Fingerprint(0),
        };
        let high = HistoryKey {
            resolved_at_ms: query.until_ms.unwrap_or(u64::MAX),
            fingerprint: Fingerprint(u64::MAX),
        };
        let needle = query.text.as_deref().map(str::to_lowercase);
        let mut found = Vec::new();
        for entry in self.tree.range(low..=high).rev() {
            if found.len() >= query.limit {
                break;
            }
            let (_, episode) = entry?;
            let alert = episode.alert;
            if !all_match(&query.matchers, &alert.labels) {
                continue;
            }
            if let Some(needle) = &needle {
                let hit = alert
                    .labels
                    .values()
                    .chain(alert.annotations.values())
                    .any(|v| v.to_lowercase().contains(needle.as_str()));
                if !hit {
                    continue;
                }
            }
            found.push(alert);
        }
        Ok(found)
    }

    /// Removes episodes that resolved before `cutoff_ms`; returns how many. Blocking.
    ///
    /// # Errors
    /// A store error.
    pub fn prune(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let high = HistoryKey {
            resolved_at_ms: cutoff_ms,
            fingerprint: Fingerprint(0),
        };
        let mut batch = self.tree.batch();
        for entry in self.tree.range(..high) {
            let (key, _) = entry?;
            batch.remove(&key);
        }
        let removed = batch.len();
        if removed > 0 {
            self.tree.apply(batch)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use muster_shared::store::StoreOptions;

    use super::*;
    use crate::alert::labels::LabelSet;

    fn resolved(host: &str, at: u64) -> Alert {
        Alert {
            labels: LabelSet::from([
                ("alertname".to_owned(), "HostDown".to_owned()),
                ("host".to_owned(), host.to_owned()),
            ]),
            annotations: LabelSet::from([("summary".to_owned(), format!("{host} is down"))]),
            state: AlertState::Resolved,
            active_at_ms: at - 100,
            fired_at_ms: Some(at - 50),
            resolved_at_ms: Some(at),
            value: 0.0,
            last_active_ms: at - 10,
            generator_url: String::new(),
        }
    }

    #[test]
    fn keeps_each_episode_once_and_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), StoreOptions::collector()).unwrap();
        let history = AlertHistory::open(&store).unwrap();
        let mut firing = resolved("web3", 5_000);
        firing.state = AlertState::Firing;
        let alerts = [resolved("web1", 1_000), resolved("web2", 2_000), firing];
        assert_eq!(history.record_resolved(&alerts).unwrap(), 2);
        // The evaluator keeps resolved alerts for a while: seen again, not written again.
        assert_eq!(history.record_resolved(&alerts).unwrap(), 0);

        let all = HistoryQuery {
            limit: 10,
            ..HistoryQuery::default()
        };
        let hosts: Vec<_> = history
            .search(&all)
            .unwrap()
            .iter()
            .map(|a| a.labels["host"].clone())
            .collect();
        assert_eq!(hosts, ["web2", "web1"], "newest first");

        let by_text = HistoryQuery {
            text: Some("WEB1 IS".to_owned()),
            ..all.clone()
        };
        assert_eq!(history.search(&by_text).unwrap().len(), 1);
        let by_matcher = HistoryQuery {
            matchers: Matcher::parse_list(r#"host=~"web[12]""#).unwrap(),
            since_ms: Some(1_500),
            ..all.clone()
        };
        assert_eq!(history.search(&by_matcher).unwrap().len(), 1);

        assert_eq!(history.prune(1_500).unwrap(), 1);
        assert_eq!(history.search(&all).unwrap().len(), 1);
    }

    #[test]
    fn keys_sort_by_time() {
        let a = HistoryKey {
            resolved_at_ms: 1,
            fingerprint: Fingerprint(u64::MAX),
        };
        let b = HistoryKey {
            resolved_at_ms: 2,
            fingerprint: Fingerprint(0),
        };
        assert!(a.to_key() < b.to_key());
        assert_eq!(HistoryKey::from_key(&b.to_key()).unwrap(), b);
        assert!(HistoryKey::from_key(&[1, 2, 3]).is_err());
    }
}
