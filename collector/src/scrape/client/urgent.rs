//! `GET /v1/samples/urgent`: the long poll the scrape loop keeps open between pulls to an
//! agent that has probes ([`muster_shared::protocol::samples::UrgentQuery`]).

use std::net::SocketAddr;
use std::time::Duration;

use muster_shared::protocol::samples::UrgentAnswer;

use super::{AgentClient, ScrapeError, URGENT_WAIT_MAX};

impl AgentClient {
    /// `GET /v1/samples/urgent?after=..&timeout_ms=..`: waits up to `wait` (at most
    /// [`URGENT_WAIT_MAX`]) for a round after `after` that the agent marked urgent; returns
    /// its sequence number, or 0 when none came.
    ///
    /// # Errors
    /// A [`ScrapeError`]; [`ScrapeError::Status`] 404 from an agent without the route.
    pub async fn urgent(
        &self,
        address: SocketAddr,
        after: u64,
        wait: Duration,
    ) -> Result<u64, ScrapeError> {
        let wait = wait.min(URGENT_WAIT_MAX);
        let url = format!(
            "https://{address}/v1/samples/urgent?after={after}&timeout_ms={}",
            wait.as_millis()
        );
        let limit = wait.saturating_add(self.timeout);
        let call = async {
            let response = self
                .urgent_http
                .get(&url)
                .send()
                .await
                .map_err(|e| self.transport(&e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(ScrapeError::Status(status.as_u16()));
            }
            let body = response.bytes().await.map_err(|e| self.transport(&e))?;
            serde_json::from_slice::<UrgentAnswer>(&body)
                .map(|answer| answer.urgent_seq)
                .map_err(|e| ScrapeError::BadBatch(format!("urgent answer: {e}")))
        };
        tokio::time::timeout(limit, call)
            .await
            .map_err(|_| ScrapeError::Timeout(limit))?
    }
}
