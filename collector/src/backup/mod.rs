//! Backups seen from the centre: each host's backup sets live from its agent, runs,
//! verifies and restores started as agent jobs, and the [`log::BackupLog`] history.
//!
//! - [`client`] — the agent's `GET /v1/backups`, `/v1/backups/{set}/snapshots`,
//!   `POST /v1/jobs` and `GET /v1/jobs/{id}`, over the scrape path's mTLS client.
//! - [`log`] — the BackupLog: jobs the collector started and runs the agents reported.
//! - [`poll`] — reading every agent's sets now and then, so scheduled runs are recorded.
//!
//! [`Backups`] ties them to the enrolled hosts; the API ([`crate::api::backups`]) and so
//! the CLI go through it. The `muster_backup_*` series need nothing here: the agent emits
//! them with its samples and the built-in rules `BackupOverdue` and `BackupFailed` read
//! them from the tsdb.

pub mod client;
pub mod log;
pub mod poll;
mod spec;

pub use spec::{SpecError, idempotency_key, restore_spec};

use std::sync::Arc;
use std::time::Duration;

use muster_shared::protocol::backups::{BackupSetStatus, SnapshotInfo};
use muster_shared::protocol::jobs::{JobRequest, JobSpec, JobStatus};
use muster_shared::store::StoreError;

use crate::hosts::HostRegistry;
use crate::scrape::client::AgentClients;
use client::AgentBackups;
use log::{BackupLog, BackupLogEntry, JobRecord};

/// Why a backup operation failed. Each variant names its host.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// No host of that id is enrolled.
    #[error("no enrolled host {host:?}")]
    UnknownHost {
        /// The id asked for.
        host: String,
    },
    /// The agent could not be reached, or did not answer in time.
    #[error("agent {host} is unreachable: {reason}")]
    Unreachable {
        /// The host.
        host: String,
        /// The transport error, one line.
        reason: String,
    },
    /// The agent's `/v1/info` does not list a capability the call needs.
    #[error(
        "agent {host} does not serve {capability} (its /v1/info does not list the capability; is it older, or are backups off?)"
    )]
    Unsupported {
        /// The host.
        host: String,
        /// The missing `CAP_*`.
        capability: &'static str,
    },
    /// The agent answered with an error status.
    #[error("agent {host} refused (HTTP {status}): {message}")]
    Refused {
        /// The host.
        host: String,
        /// Its status.
        status: u16,
        /// Its `{"error"}` message.
        message: String,
    },
    /// The agent's answer is not the JSON the protocol defines.
    #[error("agent {host} sent {what} that cannot be read: {reason}")]
    BadAnswer {
        /// The host.
        host: String,
        /// What was expected.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// The BackupLog or the host list could not be read or written.
    #[error("backup log")]
    Store(#[from] StoreError),
    /// A blocking task of the store work died.
    #[error("a store task for host {host} failed: {reason}")]
    Task {
        /// The host.
        host: String,
        /// The join error.
        reason: String,
    },
}

/// The collector's backup view: the agents' backup APIs and the BackupLog.
#[derive(Debug)]
pub struct Backups {
    clients: AgentClients,
    pub(crate) hosts: Arc<HostRegistry>,
    log: Arc<BackupLog>,
    timeout: Duration,
}

impl Backups {
    /// Over `hosts`, reaching agents with `clients` within `timeout` per call.
    pub fn new(
        clients: AgentClients,
        hosts: Arc<HostRegistry>,
        log: Arc<BackupLog>,
        timeout: Duration,
    ) -> Self {
        Self {
            clients,
            hosts,
            log,
            timeout,
        }
    }

    /// The BackupLog.
    pub fn log(&self) -> &Arc<BackupLog> {
        &self.log
    }

    /// The backup API of `host`'s agent.
    async fn agent(&self, host: &str) -> Result<AgentBackups, BackupError> {
        let hosts = self.hosts.clone();
        let listed = tokio::task::spawn_blocking(move || hosts.list())
            .await
            .map_err(|e| BackupError::Task {
                host: host.to_owned(),
                reason: e.to_string(),
            })??;
        let record =
            listed
                .into_iter()
                .find(|h| h.id == host)
                .ok_or_else(|| BackupError::UnknownHost {
                    host: host.to_owned(),
                })?;
        let client = self
            .clients
            .client_for(&record.id, self.timeout)
            .map_err(|e| BackupError::Unreachable {
                host: host.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(AgentBackups {
            host: record.id,
            address: record.address,
            client,
        })
    }

    /// `host`'s backup sets, live; their last runs are recorded in the BackupLog.
    ///
    /// # Errors
    /// A [`BackupError`].
    pub async fn sets(
        &self,
        host: &str,
        request_id: &str,
    ) -> Result<Vec<BackupSetStatus>, BackupError> {
        let sets = self.agent(host).await?.sets(request_id).await?;
        let (log, owned_host, seen) = (self.log.clone(), host.to_owned(), sets.clone());
        blocking(host, move || {
            log.record_runs(&owned_host, &seen)
                .map_err(BackupError::from)
        })
        .await?;
        Ok(sets)
    }

    /// The snapshots of `host`'s set `set`, oldest first.
    ///
    /// # Errors
    /// A [`BackupError`].
    pub async fn snapshots(
        &self,
        host: &str,
        set: &str,
        request_id: &str,
    ) -> Result<Vec<SnapshotInfo>, BackupError> {
        self.agent(host).await?.snapshots(set, request_id).await
    }

    /// Starts `spec` on `host` under `key`, and records the job in the BackupLog as
    /// requested by `by`.
    ///
    /// # Errors
    /// A [`BackupError`].
    pub async fn start(
        &self,
        host: &str,
        spec: JobSpec,
        key: String,
        by: &str,
        request_id: &str,
    ) -> Result<JobStatus, BackupError> {
        let agent = self.agent(host).await?;
        let request = JobRequest {
            idempotency_key: key,
            spec: spec.clone(),
        };
        let status = agent.start(&request, request_id).await?;
        let set = spec_set(&spec).to_owned();
        let record = JobRecord {
            spec,
            requested_by: by.to_owned(),
            status: status.clone(),
        };
        let (log, owned_host) = (self.log.clone(), host.to_owned());
        blocking(host, move || {
            log.record_job(&owned_host, &set, record)
                .map_err(BackupError::from)
        })
        .await?;
        Ok(status)
    }

    /// Job `id` on `host`, live; a finished job the collector started gets its final
    /// status in the BackupLog.
    ///
    /// # Errors
    /// A [`BackupError`].
    pub async fn job(
        &self,
        host: &str,
        id: &str,
        request_id: &str,
    ) -> Result<JobStatus, BackupError> {
        let status = self.agent(host).await?.job(id, request_id).await?;
        if status.state.is_terminal() {
            let (log, owned_host, seen) = (self.log.clone(), host.to_owned(), status.clone());
            blocking(host, move || {
                log.update_job(&owned_host, &seen)
                    .map_err(BackupError::from)
            })
            .await?;
        }
        Ok(status)
    }

    /// The newest `limit` BackupLog entries of `host` (of `set`), newest first.
    ///
    /// # Errors
    /// [`BackupError::UnknownHost`] or a store error.
    pub async fn history(
        &self,
        host: &str,
        set: Option<String>,
        limit: usize,
    ) -> Result<Vec<BackupLogEntry>, BackupError> {
        let (log, hosts, owned_host) = (self.log.clone(), self.hosts.clone(), host.to_owned());
        blocking(host, move || {
            if !hosts.list()?.iter().any(|h| h.id == owned_host) {
                return Err(BackupError::UnknownHost { host: owned_host });
            }
            Ok(log.history(&owned_host, set.as_deref(), limit)?)
        })
        .await
    }
}

/// The backup set a job spec is about (empty for deploys, which the log does not hold).
fn spec_set(spec: &JobSpec) -> &str {
    match spec {
        JobSpec::Backup(s) => &s.set,
        JobSpec::Verify(s) => &s.set,
        JobSpec::Restore(s) => &s.set,
        JobSpec::Deploy(_) | JobSpec::Rollback(_) => "",
    }
}

/// Runs store work off the async workers.
async fn blocking<T, F>(host: &str, work: F) -> Result<T, BackupError>
where
    F: FnOnce() -> Result<T, BackupError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BackupError::Task {
            host: host.to_owned(),
            reason: e.to_string(),
        })?
}
