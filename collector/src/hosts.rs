//! Enrolled hosts: who they are (durable) and how they are doing (in memory).
//!
//! A host's record (id, address, certificate fingerprint) is written at
//! enrollment and survives restarts. Its status (up/down, last scrape, last
//! error, agent version) is rebuilt by the scrape loop after a restart, so it
//! is kept in memory only. Enrollment wakes the scrape loop through
//! [`HostRegistry::changed`] so a new host is pulled without waiting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// A host as enrolled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The host id (the `agent:<id>` name in its certificate).
    pub id: String,
    /// Where its agent listens, `ip:port`.
    pub address: SocketAddr,
    /// SHA-256 of the certificate signed at enrollment (hex).
    pub cert_fingerprint: String,
    /// When it enrolled.
    pub enrolled_at_unix_ms: u64,
}

impl Record for HostRecord {
    const SCHEMA: u8 = 1;
}

/// How a host is doing, from the last scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStatus {
    /// The last scrape succeeded.
    pub up: bool,
    /// When the last scrape finished.
    pub last_scrape_unix_ms: Option<u64>,
    /// The last failure, kept until a success.
    pub last_error: Option<String>,
    /// The agent's version from its last `/v1/info`.
    pub agent_version: Option<String>,
    /// The agent serves `/v1/samples/urgent` (it has probes), from its last `/v1/info`.
    pub urgent: bool,
    /// The last sequence pulled from the agent's buffer into the store.
    pub cursor: u64,
    /// Samples stored from this host since the collector started.
    pub samples_ingested: u64,
    /// Rounds the agent dropped before they were pulled (gap markers), since start.
    pub gap_rounds: u64,
    /// The last gap: `seq A..=B at <time>`.
    pub last_gap: Option<String>,
}

/// A host with its status, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostView {
    /// Host id.
    pub id: String,
    /// Agent address, `ip:port`.
    pub address: String,
    /// `up` or `down`.
    pub status: &'static str,
    /// Last scrape time, RFC 3339 (UTC), or null before the first.
    pub last_scrape: Option<String>,
    /// Last error, or null.
    pub last_error: Option<String>,
    /// Agent version, or null before the first successful scrape.
    pub agent_version: Option<String>,
    /// Enrollment time, RFC 3339 (UTC).
    pub enrolled_at: String,
    /// The last sequence pulled from the agent's buffer into the store.
    pub cursor: u64,
    /// Samples stored from this host since the collector started.
    pub samples_ingested: u64,
    /// Rounds lost in the agent's buffer before they were pulled, since start.
    pub gap_rounds: u64,
    /// The last such gap, or null.
    pub last_gap: Option<String>,
}

/// Enrolled hosts and their status.
#[derive(Debug)]
pub struct HostRegistry {
    tree: Tree<String, HostRecord>,
    status: Mutex<HashMap<String, HostStatus>>,
    changed: Notify,
}

impl HostRegistry {
    /// Opens the `hosts` tree. Blocking.
    ///
    /// # Errors
    /// A store error naming the tree.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree("hosts")?,
            status: Mutex::new(HashMap::new()),
            changed: Notify::new(),
        })
    }

    /// Records (or replaces) a host; the caller flushes. Blocking.
    ///
    /// # Errors
    /// A store error.
    pub fn record(&self, host: &HostRecord) -> Result<(), StoreError> {
        self.tree.insert(&host.id, host)?;
        Ok(())
    }

    /// Wakes whoever waits on [`Self::changed`] (the scrape loop).
    pub fn notify_changed(&self) {
        // One waiter (the scrape loop); notify_one keeps a permit if it is busy.
        self.changed.notify_one();
    }

    /// Resolves after the next [`Self::notify_changed`].
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Every enrolled host, by id. Blocking.
    ///
    /// # Errors
    /// A store error.
    pub fn list(&self) -> Result<Vec<HostRecord>, StoreError> {
        self.tree
            .iter()
            .map(|entry| entry.map(|(_, host)| host))
            .collect()
    }

    /// Records a scrape's outcome.
    pub fn set_status(&self, host: &str, status: HostStatus) {
        self.lock().insert(host.to_owned(), status);
    }

    /// Forgets the status of hosts no longer enrolled.
    pub fn retain_status(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|host, _| keep(host));
    }

    /// The status of one host (default: down, never scraped).
    pub fn status(&self, host: &str) -> HostStatus {
        self.lock().get(host).cloned().unwrap_or_default()
    }

    /// How many hosts' last scrape succeeded.
    pub fn up_count(&self) -> usize {
        self.lock().values().filter(|s| s.up).count()
    }

    /// Every host with its status, as the API shows them. Blocking.
    ///
    /// # Errors
    /// A store error.
    pub fn views(&self) -> Result<Vec<HostView>, StoreError> {
        let hosts = self.list()?;
        let status = self.lock();
        Ok(hosts
            .into_iter()
            .map(|host| {
                let s = status.get(&host.id).cloned().unwrap_or_default();
                HostView {
                    address: host.address.to_string(),
                    status: if s.up { "up" } else { "down" },
                    last_scrape: s.last_scrape_unix_ms.map(rfc3339),
                    last_error: s.last_error,
                    agent_version: s.agent_version,
                    enrolled_at: rfc3339(host.enrolled_at_unix_ms),
                    cursor: s.cursor,
                    samples_ingested: s.samples_ingested,
                    gap_rounds: s.gap_rounds,
                    last_gap: s.last_gap,
                    id: host.id,
                }
            })
            .collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HostStatus>> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC with millisecond precision.
pub fn rfc3339(unix_ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_shared::store::StoreOptions;

    #[test]
    fn views_join_records_and_status() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), StoreOptions::collector()).unwrap();
        let hosts = HostRegistry::open(&store).unwrap();
        for (id, port) in [("web2", 2), ("web1", 1)] {
            hosts
                .record(&HostRecord {
                    id: id.into(),
                    address: SocketAddr::from(([10, 0, 0, 1], port)),
                    cert_fingerprint: "00".into(),
                    enrolled_at_unix_ms: 0,
                })
                .unwrap();
        }
        hosts.set_status(
            "web1",
            HostStatus {
                up: true,
                last_scrape_unix_ms: Some(1_700_000_000_123),
                last_error: None,
                agent_version: Some("0.1.0".into()),
                ..HostStatus::default()
            },
        );
        let views = hosts.views().unwrap();
        assert_eq!(views.len(), 2);
        assert_eq!(views[0].id, "web1", "sorted by id");
        assert_eq!(views[0].status, "up");
        assert_eq!(
            views[0].last_scrape.as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(views[1].status, "down");
        assert_eq!(views[1].last_scrape, None);
        assert_eq!(hosts.up_count(), 1);
    }
}
