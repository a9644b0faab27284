//! Acknowledgements: someone said "I am on it" for one alert, by fingerprint.
//!
//! It owns [`Ack`] and [`AckStore`] over the sled tree `alert_acks` (key: the alert's
//! fingerprint as a big-endian u64; value: the [`Ack`] record). An ack covers one episode
//! of one alert: it ends when the alert resolves, leaves the evaluator's list, or starts a
//! new episode (its `active_at_ms` is after the ack), and when its optional expiry passes;
//! [`AckStore::current`] drops such acks as it reads them. A new episode needs a new ack.
//!
//! What an ack does is the dispatcher's: an acknowledged alert carries `acknowledged_by` in
//! notifications, is not escalated, and a group whose firing alerts are all acknowledged
//! gets no repeat notifications (changes, such as a new alert or a resolution, are still
//! sent). The API that creates and removes acks is built on this store.

use std::collections::HashMap;

use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};

use super::labels::Fingerprint;
use super::model::{Alert, AlertState};

/// The sled tree of acknowledgements.
pub const TREE: &str = "alert_acks";

/// Longest `by` or `comment`, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

/// One acknowledgement, as stored (schema 1) and shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The acknowledged alert.
    pub fingerprint: Fingerprint,
    /// Who acknowledged it.
    pub by: String,
    /// Why, or what they are doing; may be empty.
    pub comment: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// When it lapses on its own (ms since the epoch); `None`: when the alert resolves.
    pub expires_at_ms: Option<u64>,
}

impl Record for Ack {
    const SCHEMA: u8 = 1;
}

impl Ack {
    /// Whether it still holds at `now_ms` for `alert`, the alert's current state: not
    /// expired, the alert not resolved, and the same episode (the alert became active at
    /// or before the ack).
    pub fn covers(&self, alert: &Alert, now_ms: u64) -> bool {
        alert.fingerprint() == self.fingerprint
            && alert.state != AlertState::Resolved
            && alert.active_at_ms <= self.at_ms
            && self.expires_at_ms.is_none_or(|e| now_ms < e)
    }
}

/// Why an acknowledgement operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// The request breaks the rules; every problem is listed (400).
    #[error("invalid acknowledgement: {}", problems.join("; "))]
    Invalid {
        /// What is wrong.
        problems: Vec<String>,
    },
    /// The alert has resolved: there is nothing to acknowledge (409).
    #[error("alert {fingerprint} has resolved")]
    Resolved {
        /// The alert.
        fingerprint: Fingerprint,
    },
    /// The store failed (500).
    #[error("acknowledgement store failed")]
    Store(#[from] StoreError),
}

/// The acknowledgements in the store. Cheap to clone; the API and the dispatcher hold
/// clones of the same tree. Every method blocks on sled (call from `spawn_blocking`).
#[derive(Debug, Clone)]
pub struct AckStore {
    tree: Tree<u64, Ack>,
}

impl AckStore {
    /// Opens the `alert_acks` tree of `store`.
    ///
    /// # Errors
    /// [`StoreError`] when the tree cannot be opened.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
        })
    }

    /// Acknowledges `alert` (pending or firing) at `now_ms`, replacing an earlier ack of
    /// it; `expires_at_ms`, if given, must be after now.
    ///
    /// # Errors
    /// [`AckError::Invalid`] (empty `by`, texts over [`MAX_TEXT_BYTES`], an expiry not in
    /// the future), [`AckError::Resolved`], [`AckError::Store`].
    pub fn acknowledge(
        &self,
        alert: &Alert,
        by: &str,
        comment: &str,
        expires_at_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<Ack, AckError> {
        let mut problems = Vec::new();
        if by.trim().is_empty() {
            problems.push("by must not be empty".to_owned());
        }
        if by.len() > MAX_TEXT_BYTES || comment.len() > MAX_TEXT_BYTES {
            problems.push(format!("by and comment are at most {MAX_TEXT_BYTES} bytes"));
        }
        if expires_at_ms.is_some_and(|e| e <= now_ms) {
            problems.push("expires_at must be in the future".to_owned());
        }
        if !problems.is_empty() {
            return Err(AckError::Invalid { problems });
        }
        let fingerprint = alert.fingerprint();
        if alert.state == AlertState::Resolved {
            return Err(AckError::Resolved { fingerprint });
        }
        let ack = Ack {
            fingerprint,
            by: by.trim().to_owned(),
            comment: comment.to_owned(),
            at_ms: now_ms,
            expires_at_ms,
        };
        self.tree.insert(&fingerprint.0, &ack)?;
        Ok(ack)
    }

    /// The stored ack of `fingerprint`, current or not.
    ///
    /// # Errors
    /// [`AckError::Store`].
    pub fn get(&self, fingerprint: Fingerprint) -> Result<Option<Ack>, AckError> {
        Ok(self.tree.get(&fingerprint.0)?)
    }

    /// Every stored ack, by fingerprint (some may have lapsed since the dispatcher's last
    /// pass). A record that does not decode is skipped with a warning.
    ///
    /// # Errors
    /// [`AckError::Store`] when the tree cannot be read.
    pub fn list(&self) -> Result<Vec<Ack>, AckError> {
        let mut all = Vec::new();
        for entry in self.tree.iter() {
            match entry {
                Ok((_, ack)) => all.push(ack),
                Err(err @ StoreError::Backend { .. }) => return Err(err.into()),
                Err(err) => {
                    tracing::warn!(error = %err, "skipping an acknowledgement that does not decode")
                }
            }
        }
        Ok(all)
    }

    /// Removes the ack of `fingerprint` (un-acknowledge); returns it if there was one.
    ///
    /// # Errors
    /// [`AckError::Store`].
    pub fn remove(&self, fingerprint: Fingerprint) -> Result<Option<Ack>, AckError> {
        Ok(self.tree.remove(&fingerprint.0)?)
    }

    /// The acks that hold at `now_ms` for `alerts` (the evaluator's whole current list),
    /// by fingerprint; every other stored ack (lapsed, alert resolved, gone or in a new
    /// episode) is removed. Each removal is a compare-and-swap, so an ack written
    /// meanwhile (a new episode acknowledged through the API) is kept.
    ///
    /// # Errors
    /// [`AckError::Store`].
    pub fn current(
        &self,
        alerts: &[Alert],
        now_ms: u64,
    ) -> Result<HashMap<Fingerprint, Ack>, AckError> {
        let by_fp: HashMap<Fingerprint, &Alert> =
            alerts.iter().map(|a| (a.fingerprint(), a)).collect();
        let mut current = HashMap::new();
        for ack in self.list()? {
            match by_fp.get(&ack.fingerprint) {
                Some(alert) if ack.covers(alert, now_ms) => {
                    current.insert(ack.fingerprint, ack);
                }
                _ => {
                    let swap = self
                        .tree
                        .compare_and_swap(&ack.fingerprint.0, Some(&ack), None)?;
                    if swap.is_err() {
                        // Someone wrote a newer ack meanwhile: it stays, for the next pass.
                        tracing::debug!(fingerprint = %ack.fingerprint, "acknowledgement replaced while pruning");
                    }
                }
            }
        }
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use muster_shared::store::StoreOptions;

    use super::*;
    use crate::alert::labels::LabelSet;

    fn alert(host: &str, state: AlertState, active_at_ms: u64) -> Alert {
        Alert {
            labels: LabelSet::from([
                ("alertname".to_owned(), "DiskFull".to_owned()),
                ("host".to_owned(), host.to_owned()),
            ]),
            annotations: LabelSet::new(),
            state,
            active_at_ms,
            fired_at_ms: Some(active_at_ms),
            resolved_at_ms: (state == AlertState::Resolved).then_some(active_at_ms + 1),
            value: 1.0,
            last_active_ms: active_at_ms,
            generator_url: String::new(),
        }
    }

    #[test]
    fn an_ack_lasts_one_episode_or_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
        let acks = AckStore::open(&store).unwrap();
        let hosts = ["expires", "resolves", "gone", "new-episode", "stays"];
        for host in hosts {
            let expiry = (host == "expires").then_some(500);
            acks.acknowledge(&alert(host, AlertState::Firing, 10), "ana", "", expiry, 100)
                .unwrap();
        }
        let cases = [
            (
                "expires",
                Some(alert("expires", AlertState::Firing, 10)),
                false,
            ),
            (
                "resolves",
                Some(alert("resolves", AlertState::Resolved, 10)),
                false,
            ),
            ("gone", None, false),
            (
                "new-episode",
                Some(alert("new-episode", AlertState::Firing, 200)),
                false,
            ),
            ("stays", Some(alert("stays", AlertState::Firing, 10)), true),
        ];
        let now: Vec<Alert> = cases.iter().filter_map(|(_, a, _)| a.clone()).collect();
        let current = acks.current(&now, 500).unwrap();
        for (host, alert, kept) in cases {
            let fp = alert.map_or_else(
                || self::alert(host, AlertState::Firing, 10).fingerprint(),
                |a| a.fingerprint(),
            );
            assert_eq!(current.contains_key(&fp), kept, "{host}");
            assert_eq!(acks.get(fp).unwrap().is_some(), kept, "{host} stored");
        }
        assert_eq!(current.values().next().map(|a| a.by.as_str()), Some("ana"));
    }

    #[test]
    fn acknowledge_refuses_bad_requests() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
        let acks = AckStore::open(&store).unwrap();
        let firing = alert("web1", AlertState::Firing, 10);
        assert!(matches!(
            acks.acknowledge(&firing, " ", "", Some(100), 100),
            Err(AckError::Invalid { problems }) if problems.len() == 2
        ));
        assert!(matches!(
            acks.acknowledge(
                &alert("web1", AlertState::Resolved, 10),
                "ana",
                "",
                None,
                100
            ),
            Err(AckError::Resolved { .. })
        ));
        let ack = acks
            .acknowledge(&firing, "ana", "on it", None, 100)
            .unwrap();
        assert_eq!(acks.list().unwrap(), std::slice::from_ref(&ack));
        assert_eq!(acks.remove(firing.fingerprint()).unwrap(), Some(ack));
        assert!(acks.list().unwrap().is_empty());
    }
}
