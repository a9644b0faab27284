//! The CLI's way into a running collector: its own API, with a bearer token, over TLS
//! with the fleet CA (or plain HTTP on loopback when the API is configured so).
//!
//! Owns building the client and turning a refusal into an error that quotes the API's
//! JSON error; leaves out what each command asks.

use std::time::Duration;

use anyhow::{Context, bail};
use muster_shared::tls::{PeerPolicy, client_config};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::CollectorSettings;

/// A client for the API of the collector that `settings` describe.
#[derive(Debug, Clone)]
pub struct ApiClient {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl ApiClient {
    /// A client for `settings`' listener (an unspecified listen address is reached on
    /// loopback), authenticated with `token`.
    ///
    /// # Errors
    /// The CA certificate can't be read, or the client can't be built.
    pub fn new(settings: &CollectorSettings, token: &str) -> anyhow::Result<Self> {
        let mut address = settings.listen;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy();
        // Preconfigured even for plain HTTP: reqwest's rustls backend brings no crypto
        // provider of its own, and building a client without one panics.
        let ca_pem = std::fs::read_to_string(&settings.pki.ca_cert)
            .with_context(|| format!("cannot read {}", settings.pki.ca_cert.display()))?;
        let config = client_config(&ca_pem, None, PeerPolicy::Collector)?;
        builder = builder.tls_backend_preconfigured((*config).clone());
        let scheme = if settings.api_tls { "https" } else { "http" };
        Ok(Self {
            client: builder.build().context("cannot build the HTTP client")?,
            base: format!("{scheme}://{address}"),
            token: token.trim().to_owned(),
        })
    }

    /// `GET path`, the answer decoded from JSON.
    ///
    /// # Errors
    /// Unreachable collector, a refusal (with the API's message), or an answer that is not
    /// the expected JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.client.get(self.url(path))).await
    }

    /// `POST path` with a JSON body, the answer decoded from JSON.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    /// `DELETE path`, the answer decoded from JSON.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.client.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let request = request.bearer_auth(&self.token);
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the running collector at {}", self.base))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .context("cannot read the collector's answer")?;
        if !status.is_success() {
            let message =
                serde_json::from_slice::<muster_shared::protocol::error::ErrorBody>(&bytes)
                    .map_or_else(
                        |_| String::from_utf8_lossy(&bytes).into_owned(),
                        |b| b.error,
                    );
            bail!("the collector refused ({status}): {message}");
        }
        serde_json::from_slice(&bytes).context("the collector's answer is not the expected JSON")
    }
}
