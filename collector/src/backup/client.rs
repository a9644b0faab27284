//! Calls to one agent's backup and job endpoints, over the scrape path's mTLS client
//! ([`crate::scrape::client`]), in JSON.
//!
//! Every call first asks `GET /v1/info` for the capabilities it needs, so an agent
//! without backups gets a clear "does not serve backups" instead of a bare 404. A job
//! request that fails in transport is sent once more with the same idempotency key: the
//! agent answers the existing job instead of starting another.

use std::net::SocketAddr;

use muster_shared::protocol::backups::{BackupSetStatus, SnapshotInfo};
use muster_shared::protocol::error::ErrorBody;
use muster_shared::protocol::info::{CAP_BACKUPS, CAP_JOBS};
use muster_shared::protocol::jobs::{JobRequest, JobStatus};
use serde::de::DeserializeOwned;

use super::BackupError;
use crate::scrape::client::json::JsonAnswer;
use crate::scrape::client::{AgentClient, ScrapeError, error_chain};

/// One agent's backup API.
#[derive(Debug, Clone)]
pub struct AgentBackups {
    /// The host.
    pub host: String,
    /// Where its agent listens.
    pub address: SocketAddr,
    /// The mTLS client bound to it.
    pub client: AgentClient,
}

impl AgentBackups {
    /// Checks that the agent lists every capability in `needed`.
    ///
    /// # Errors
    /// [`BackupError::Unreachable`] or [`BackupError::Unsupported`].
    pub async fn require(
        &self,
        needed: &[&'static str],
        request_id: &str,
    ) -> Result<(), BackupError> {
        let info = self
            .client
            .info(self.address, request_id)
            .await
            .map_err(|e| self.unreachable(&e))?;
        match needed.iter().find(|cap| !info.has_capability(cap)) {
            Some(missing) => Err(BackupError::Unsupported {
                host: self.host.clone(),
                capability: missing,
            }),
            None => Ok(()),
        }
    }

    /// `GET /v1/backups`.
    ///
    /// # Errors
    /// A [`BackupError`] saying what failed.
    pub async fn sets(&self, request_id: &str) -> Result<Vec<BackupSetStatus>, BackupError> {
        self.require(&[CAP_BACKUPS], request_id).await?;
        self.get("/v1/backups", "backup sets", request_id).await
    }

    /// `GET /v1/backups/{set}/snapshots`, oldest first.
    ///
    /// # Errors
    /// A [`BackupError`]; an unknown set is [`BackupError::Refused`] with 404.
    pub async fn snapshots(
        &self,
        set: &str,
        request_id: &str,
    ) -> Result<Vec<SnapshotInfo>, BackupError> {
        self.require(&[CAP_BACKUPS], request_id).await?;
        let path = format!("/v1/backups/{}/snapshots", path_segment(set));
        self.get(&path, "snapshots", request_id).await
    }

    /// `POST /v1/jobs`, sent again once with the same key after a transport failure.
    ///
    /// # Errors
    /// A [`BackupError`]; a refusal (a restore target outside the agent's allowlist) is
    /// [`BackupError::Refused`] with the agent's message.
    pub async fn start(
        &self,
        request: &JobRequest,
        request_id: &str,
    ) -> Result<JobStatus, BackupError> {
        self.require(&[CAP_JOBS, CAP_BACKUPS], request_id).await?;
        let body = serde_json::to_vec(request).map_err(|e| BackupError::BadAnswer {
            host: self.host.clone(),
            what: "job request",
            reason: e.to_string(),
        })?;
        let first = self
            .client
            .call_json(self.address, "/v1/jobs", Some(body.clone()), request_id)
            .await;
        let answer = match first {
            Ok(answer) => answer,
            Err(ScrapeError::Transport(_) | ScrapeError::Timeout(_)) => {
                tracing::info!(host = %self.host, key = %request.idempotency_key, "job request failed in transport; sending it again with the same key");
                self.client
                    .call_json(self.address, "/v1/jobs", Some(body), request_id)
                    .await
                    .map_err(|e| self.unreachable(&e))?
            }
            Err(other) => return Err(self.unreachable(&other)),
        };
        self.decode(&answer, "job status")
    }

    /// `GET /v1/jobs/{id}`.
    ///
    /// # Errors
    /// A [`BackupError`]; an unknown job is [`BackupError::Refused`] with 404.
    pub async fn job(&self, id: &str, request_id: &str) -> Result<JobStatus, BackupError> {
        self.require(&[CAP_JOBS], request_id).await?;
        let path = format!("/v1/jobs/{}", path_segment(id));
        self.get(&path, "job status", request_id).await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        what: &'static str,
        request_id: &str,
    ) -> Result<T, BackupError> {
        let answer = self
            .client
            .call_json(self.address, path, None, request_id)
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.decode(&answer, what)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        answer: &JsonAnswer,
        what: &'static str,
    ) -> Result<T, BackupError> {
        if !(200..300).contains(&answer.status) {
            let message = serde_json::from_slice::<ErrorBody>(&answer.body)
                .map_or_else(|_| format!("HTTP {}", answer.status), |body| body.error);
            return Err(BackupError::Refused {
                host: self.host.clone(),
                status: answer.status,
                message,
            });
        }
        serde_json::from_slice(&answer.body).map_err(|e| BackupError::BadAnswer {
            host: self.host.clone(),
            what,
            reason: e.to_string(),
        })
    }

    fn unreachable(&self, err: &ScrapeError) -> BackupError {
        match err {
            ScrapeError::BadBatch(reason) => BackupError::BadAnswer {
                host: self.host.clone(),
                what: "an answer",
                reason: reason.clone(),
            },
            other => BackupError::Unreachable {
                host: self.host.clone(),
                reason: error_chain(other),
            },
        }
    }
}

/// `text` as one URL path segment: every byte outside RFC 3986's unreserved set is
/// percent-encoded.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::path_segment;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("etc"), "etc");
        assert_eq!(path_segment("a b/c?%"), "a%20b%2Fc%3F%25");
        assert_eq!(path_segment("é"), "%C3%A9");
    }
}
