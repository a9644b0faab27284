//! JSON calls to an agent beside the binary pulls: the backup and job endpoints
//! ([`crate::backup`]). Transport failures are [`ScrapeError`]s like a pull's; the status
//! and body of any answer go back to the caller, which knows what each status means.

use std::net::SocketAddr;

use muster_shared::telemetry::REQUEST_ID_HEADER;

use super::{AgentClient, ScrapeError};

/// Largest JSON answer read from an agent, in bytes (a long snapshot list fits).
pub const MAX_JSON_ANSWER_BYTES: usize = 8 << 20;

/// An agent's answer to a JSON call: its status and body, whatever the status.
#[derive(Debug, Clone)]
pub struct JsonAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The body (at most [`MAX_JSON_ANSWER_BYTES`]).
    pub body: bytes::Bytes,
}

impl AgentClient {
    /// `GET https://{address}{path}` or, with `body`, `POST` of that JSON, asking for
    /// JSON, within the client's timeout.
    ///
    /// # Errors
    /// [`ScrapeError::Transport`] or [`ScrapeError::Timeout`]; an answer larger than
    /// [`MAX_JSON_ANSWER_BYTES`] is [`ScrapeError::BadBatch`].
    pub async fn call_json(
        &self,
        address: SocketAddr,
        path: &str,
        body: Option<Vec<u8>>,
        request_id: &str,
    ) -> Result<JsonAnswer, ScrapeError> {
        let url = format!("https://{address}{path}");
        let call = async {
            let request = match body {
                Some(body) => self
                    .http
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body),
                None => self.http.get(&url),
            };
            let mut response = request
                .header(reqwest::header::ACCEPT, "application/json")
                .header(REQUEST_ID_HEADER, request_id)
                .send()
                .await
                .map_err(|e| self.transport(&e))?;
            let status = response.status().as_u16();
            let too_large = || {
                ScrapeError::BadBatch(format!("answer larger than {MAX_JSON_ANSWER_BYTES} bytes"))
            };
            if response
                .content_length()
                .is_some_and(|len| len > MAX_JSON_ANSWER_BYTES as u64)
            {
                return Err(too_large());
            }
            // Read chunk by chunk, so an answer without a length can't grow past the limit.
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
                if body.len() + chunk.len() > MAX_JSON_ANSWER_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            let body = body.freeze();
            Ok(JsonAnswer { status, body })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ScrapeError::Timeout(self.timeout))?
    }
}
