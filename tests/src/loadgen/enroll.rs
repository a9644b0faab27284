//! Enrolling the simulated hosts the way agents enroll: a one-time token per host from the
//! collector's admin API (`POST /api/v1/enroll-tokens`, what `muster-collector token create
//! --enroll` calls on a running collector), a fresh key pair and CSR, then `POST
//! /api/v1/enroll` with the host's listen port, so the collector's hosts registry records
//! `127.0.0.1:<port>` and from then on pulls it. The answer is checked as
//! `muster-agent enroll` checks it: the certificate carries our key and names
//! `agent:<host>`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use muster_shared::protocol::PROTOCOL_VERSION;
use muster_shared::protocol::enroll::{EnrollRequest, EnrollResponse};
use muster_shared::tls::{Role, cert_matches_key, generate_csr, parse_certs, role_of_cert};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// A host's identity as enrollment left it.
#[derive(Clone)]
pub struct Enrolled {
    /// Index of the host in the fleet.
    pub index: usize,
    /// Its certificate, PEM (`agent:<host>`, signed by the fleet CA).
    pub cert_pem: String,
    /// Its private key, PEM. Secret: kept in memory only.
    pub key_pem: String,
    /// The fleet CA, PEM.
    pub ca_pem: String,
}

impl std::fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolled")
            .field("index", &self.index)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct CreatedEnrollToken {
    token: String,
}

/// Enrolls every `(index, host id, listen port)` in `hosts` with the collector at `api`
/// (plain `http://` on loopback), `concurrency` at a time. Fails on the first refusal.
///
/// # Errors
/// A refusal or transport failure, naming the host.
pub async fn enroll_all(
    api: &str,
    admin_token: &str,
    hosts: Vec<(usize, String, u16)>,
    concurrency: usize,
) -> anyhow::Result<Vec<Enrolled>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .context("cannot build the HTTP client")?;
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (index, host, port) in hosts {
        let (client, permits) = (client.clone(), permits.clone());
        let (api, admin_token) = (api.to_owned(), admin_token.to_owned());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            enroll_one(&client, &api, &admin_token, index, &host, port)
                .await
                .with_context(|| format!("enrolling {host}"))
        });
    }
    let mut enrolled = Vec::with_capacity(tasks.len());
    while let Some(done) = tasks.join_next().await {
        enrolled.push(done.context("enrollment task failed")??);
    }
    enrolled.sort_by_key(|e| e.index);
    Ok(enrolled)
}

async fn enroll_one(
    client: &reqwest::Client,
    api: &str,
    admin_token: &str,
    index: usize,
    host: &str,
    listen_port: u16,
) -> anyhow::Result<Enrolled> {
    let response = client
        .post(format!("{api}/api/v1/enroll-tokens"))
        .bearer_auth(admin_token)
        .json(&serde_json::json!({ "host": host }))
        .send()
        .await
        .context("POST /api/v1/enroll-tokens")?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "token creation answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    let token: CreatedEnrollToken = response.json().await.context("token answer")?;

    // The collector names the host; the CSR's own subject is ignored (agent/src/enroll.rs).
    let csr = tokio::task::spawn_blocking(|| generate_csr(&Role::Agent("enrolling".to_owned())))
        .await
        .context("key generation task failed")?
        .context("cannot make a key pair and CSR")?;
    let request = EnrollRequest {
        token: token.token,
        csr_pem: csr.csr_pem.clone(),
        listen_port,
        agent_version: format!("{}-loadgen", muster_shared::version::VERSION),
        protocol_version: PROTOCOL_VERSION,
    };
    let response = client
        .post(format!("{api}/api/v1/enroll"))
        .json(&request)
        .send()
        .await
        .context("POST /api/v1/enroll")?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "enrollment answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    let answer: EnrollResponse = response.json().await.context("enrollment answer")?;
    if !cert_matches_key(&answer.cert_pem, &csr.key_pem).context("certificate")? {
        bail!("the certificate does not carry our key");
    }
    let role = parse_certs(&answer.cert_pem)
        .context("certificate")?
        .first()
        .map(role_of_cert)
        .transpose()
        .context("certificate role")?;
    if role != Some(Role::Agent(host.to_owned())) || answer.host_id != host {
        bail!("the certificate is not for agent:{host}");
    }
    Ok(Enrolled {
        index,
        cert_pem: answer.cert_pem,
        key_pem: csr.key_pem,
        ca_pem: answer.ca_pem,
    })
}
