//! Alert state on disk, so pending and firing alerts survive a collector restart: a
//! pending alert keeps counting towards its `for`, a firing one is not announced again as
//! new, a resolved one is still reported.
//!
//! One sled tree, [`TREE`], through [`muster_shared::store`]. Each evaluation writes one
//! [`TreeBatch`]: the alerts that changed in a way a restart must know, removals of the
//! alerts no longer tracked, and the evaluation's time. The caller flushes ([`Store::flush`]
//! is the commit point); a crash before that loses at most the evaluations since the last
//! flush, and the batch is whole or absent, so the tree is always one evaluation's state.
//!
//! What is "changed enough to write": state, start, fire and resolve times, or the last
//! active time having moved a minute ([`ACTIVE_REFRESH_MS`]). Values and annotations are
//! not written on their own: the first evaluation after a restart renews them, and writing
//! them would mean a write (and a flush) every evaluation for every active alert. The cost
//! is that after a restart `keep_firing_for` may count from up to a minute earlier.

use muster_shared::store::{Record, Store, StoreError, Tree, TreeBatch};
use serde::{Deserialize, Serialize};

use crate::alert::labels::Fingerprint;
use crate::alert::model::Alert;

/// The tree's name.
pub const TREE: &str = "alert_state";

/// How far the last active time may run ahead of the stored one before it is written.
pub const ACTIVE_REFRESH_MS: u64 = 60_000;

/// The key of the evaluation mark; every alert key is longer.
const MARK_KEY: &str = "";

/// One value of [`TREE`] (schema 1, bincode). Keys: `""` for the mark, `RULE/FINGERPRINT`
/// (16 hex digits) for an alert; rule names have no `/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StateRecord {
    /// An alert of a rule.
    Alert {
        /// The rule's name.
        rule: String,
        /// The alert as of the evaluation that wrote it.
        alert: Alert,
    },
    /// The last evaluation's time, ms since the Unix epoch: where downtime starts.
    Mark {
        /// When it ran.
        last_eval_ms: u64,
    },
}

impl Record for StateRecord {
    const SCHEMA: u8 = 1;
}

/// What a restart finds.
#[derive(Debug, Default)]
pub struct Restored {
    /// `(rule, alert)` pairs, in key order.
    pub alerts: Vec<(String, Alert)>,
    /// The last evaluation before the stop.
    pub last_eval_ms: Option<u64>,
    /// Records that could not be decoded (skipped, and logged).
    pub unreadable: usize,
}

/// Alert state in the collector's store.
#[derive(Debug, Clone)]
pub struct AlertStore {
    tree: Tree<String, StateRecord>,
}

impl AlertStore {
    /// Opens the tree in `store`.
    ///
    /// # Errors
    /// [`StoreError`] when the tree can't be opened.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
        })
    }

    /// Everything stored. A record that does not decode (a damaged value, another schema)
    /// is skipped and logged rather than stopping alerting; a later write replaces it.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails reading.
    pub fn restore(&self) -> Result<Restored, StoreError> {
        let mut restored = Restored::default();
        for entry in self.tree.iter() {
            match entry {
                Ok((_, StateRecord::Alert { rule, alert })) => restored.alerts.push((rule, alert)),
                Ok((_, StateRecord::Mark { last_eval_ms })) => {
                    restored.last_eval_ms = Some(last_eval_ms);
                }
                Err(err @ StoreError::Backend { .. }) => return Err(err),
                Err(err) => {
                    tracing::warn!(error = %err, "skipping an unreadable alert state record");
                    restored.unreadable += 1;
                }
            }
        }
        Ok(restored)
    }

    /// Writes one evaluation: `alerts` (rule, alert) to store, keys to remove, and the
    /// evaluation's time, in one batch.
    ///
    /// # Errors
    /// [`StoreError`]; then nothing of the batch was written.
    pub fn write(
        &self,
        alerts: &[(&str, &Alert)],
        removed: &[String],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let mut batch: TreeBatch<String, StateRecord> = self.tree.batch();
        for (rule, alert) in alerts {
            let record = StateRecord::Alert {
                rule: (*rule).to_owned(),
                alert: (*alert).clone(),
            };
            batch.insert(&key(rule, alert.fingerprint()), &record)?;
        }
        for k in removed {
            batch.remove(k);
        }
        batch.insert(
            &MARK_KEY.to_owned(),
            &StateRecord::Mark {
                last_eval_ms: now_ms,
            },
        )?;
        self.tree.apply(batch)
    }
}

/// The key of rule `rule`'s alert `fingerprint`.
pub fn key(rule: &str, fingerprint: Fingerprint) -> String {
    format!("{rule}/{fingerprint}")
}

/// Whether `current` differs from what was last written (`None`: nothing yet) in a way a
/// restart must know (see the module doc).
pub fn needs_write(written: Option<&Alert>, current: &Alert) -> bool {
    let Some(written) = written else {
        return true;
    };
    written.state != current.state
        || written.active_at_ms != current.active_at_ms
        || written.fired_at_ms != current.fired_at_ms
        || written.resolved_at_ms != current.resolved_at_ms
        || written.labels != current.labels
        || current
            .last_active_ms
            .saturating_sub(written.last_active_ms)
            >= ACTIVE_REFRESH_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::labels::LabelSet;
    use crate::alert::model::AlertState;
    use muster_shared::store::StoreOptions;

    fn alert(host: &str) -> Alert {
        Alert {
            labels: LabelSet::from([
                ("alertname".to_owned(), "HostDown".to_owned()),
                ("host".to_owned(), host.to_owned()),
            ]),
            annotations: LabelSet::new(),
            state: AlertState::Pending,
            active_at_ms: 1_000,
            fired_at_ms: None,
            resolved_at_ms: None,
            value: 0.0,
            last_active_ms: 1_000,
            generator_url: String::new(),
        }
    }

    #[test]
    fn writes_restore_with_the_mark_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let a = alert("a");
        let b = alert("b");
        {
            let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
            let alerts = AlertStore::open(&store).unwrap();
            alerts
                .write(&[("HostDown", &a), ("HostDown", &b)], &[], 5_000)
                .unwrap();
            let gone = key("HostDown", b.fingerprint());
            alerts.write(&[], &[gone], 10_000).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
        let restored = AlertStore::open(&store).unwrap().restore().unwrap();
        assert_eq!(restored.alerts, [("HostDown".to_owned(), a)]);
        assert_eq!(restored.last_eval_ms, Some(10_000));
        assert_eq!(restored.unreadable, 0);
    }

    #[test]
    fn only_what_a_restart_needs_is_written() {
        let a = alert("a");
        assert!(needs_write(None, &a));
        let mut moved = a.clone();
        moved.value = 5.0;
        moved
            .annotations
            .insert("summary".to_owned(), "x".to_owned());
        moved.last_active_ms += ACTIVE_REFRESH_MS - 1;
        assert!(
            !needs_write(Some(&a), &moved),
            "value and annotations alone"
        );
        moved.last_active_ms += 1;
        assert!(needs_write(Some(&a), &moved), "a minute of activity");
        let mut fired = a.clone();
        fired.state = AlertState::Firing;
        fired.fired_at_ms = Some(2_000);
        assert!(needs_write(Some(&a), &fired));
    }

    #[test]
    fn keys_are_rule_and_fingerprint() {
        assert_eq!(
            key("HostDown", Fingerprint(0xab)),
            "HostDown/00000000000000ab"
        );
        assert!(MARK_KEY < "A", "the mark sorts first");
    }
}
