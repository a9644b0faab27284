//! `muster-agent enroll`: obtain this host's certificate from the collector.
//!
//! Sketch: parse the one-time token (it carries the fleet CA's SHA-256);
//! make a key pair and a CSR here, so the private key never leaves the host;
//! connect to the collector with a TLS client that accepts only a chain
//! containing the pinned CA; post the CSR with the token; check the answer
//! (the CA matches the pin, the certificate carries our public key and an
//! `agent:<host>` name); only then write the key, certificate and CA, each
//! mode 0600. A failure at any step writes nothing.
//!
//! Plain `http://` is accepted only for a loopback collector (dev mode); the
//! CA returned is still checked against the pin.

use std::net::IpAddr;
use std::time::Duration;

use muster_shared::files::{WriteError, write_private};
use muster_shared::protocol::PROTOCOL_VERSION;
use muster_shared::protocol::enroll::{EnrollRequest, EnrollResponse};
use muster_shared::protocol::error::ErrorBody;
use muster_shared::tls::{self, Fingerprint, Role, TlsError};
use muster_shared::token::{EnrollToken, TokenError};

use crate::config::AgentSettings;

/// How long the whole enrollment request may take.
const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why enrollment failed. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The token is not an enrollment token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The collector URL is unusable.
    #[error("collector URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An identity already exists and `--force` was not given.
    #[error("{path} already exists; this host is enrolled (pass --force to replace its identity)")]
    AlreadyEnrolled {
        /// The existing certificate or key file.
        path: std::path::PathBuf,
    },
    /// Key, CSR or certificate handling failed.
    #[error("{what}: {source}")]
    Tls {
        /// The step.
        what: &'static str,
        /// The cause.
        source: TlsError,
    },
    /// The collector could not be reached or did not complete TLS with the
    /// pinned CA.
    #[error("cannot reach the collector at {url}: {message}")]
    Connect {
        /// The enrollment URL.
        url: String,
        /// The transport error chain.
        message: String,
    },
    /// The collector refused the request.
    #[error("the collector refused enrollment ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The collector's explanation.
        message: String,
    },
    /// The collector's answer is not acceptable.
    #[error("the collector's answer is not acceptable: {0}")]
    BadAnswer(String),
    /// Writing the identity failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What enrollment produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The host id the collector assigned (from the token).
    pub host_id: String,
    /// The fleet CA's fingerprint.
    pub ca_fingerprint: Fingerprint,
}

/// Enrolls with the collector at `collector_url` using `token_text`, writing
/// the identity to the paths in `settings`.
///
/// # Errors
/// An [`EnrollError`] naming the failing step; nothing is written then.
pub async fn enroll(
    settings: &AgentSettings,
    collector_url: &str,
    token_text: &str,
    force: bool,
) -> Result<Enrolled, EnrollError> {
    let token = EnrollToken::parse(token_text)?;
    let url = enroll_url(collector_url)?;
    if !force {
        for path in [&settings.cert_path, &settings.key_path] {
            if path.exists() {
                return Err(EnrollError::AlreadyEnrolled { path: path.clone() });
            }
        }
    }

    // The collector decides the name; the CSR's subject is ignored by it.
    let placeholder = Role::Agent("enrolling".to_owned());
    let csr = tokio::task::spawn_blocking(move || tls::generate_csr(&placeholder))
        .await
        .map_err(|e| EnrollError::BadAnswer(format!("key generation task failed: {e}")))?
        .map_err(|source| EnrollError::Tls {
            what: "cannot make a key pair and CSR",
            source,
        })?;

    let client = client_for(&url, token.ca_fingerprint())?;
    let request = EnrollRequest {
        token: token.expose(),
        csr_pem: csr.csr_pem.clone(),
        listen_port: settings.listen.port(),
        agent_version: muster_shared::version::VERSION.to_owned(),
        protocol_version: PROTOCOL_VERSION,
    };
    let response = client
        .post(url.as_str())
        .json(&request)
        .send()
        .await
        .map_err(|err| EnrollError::Connect {
            url: url.clone(),
            message: error_chain(&err),
        })?;
    let status = response.status();
    let body = response.bytes().await.map_err(|err| EnrollError::Connect {
        url: url.clone(),
        message: error_chain(&err),
    })?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
        return Err(EnrollError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    let answer: EnrollResponse = serde_json::from_slice(&body)
        .map_err(|e| EnrollError::BadAnswer(format!("not an enrollment response: {e}")))?;
    check_answer(&answer, &token, &csr.key_pem)?;

    // Key first: a certificate is useless without it, the reverse is harmless.
    write_private(&settings.key_path, csr.key_pem.as_bytes())?;
    write_private(&settings.cert_path, answer.cert_pem.as_bytes())?;
    write_private(&settings.ca_path, answer.ca_pem.as_bytes())?;
    Ok(Enrolled {
        host_id: answer.host_id,
        ca_fingerprint: token.ca_fingerprint(),
    })
}

/// Checks the collector's answer against the pin and our own key.
fn check_answer(
    answer: &EnrollResponse,
    token: &EnrollToken,
    key_pem: &str,
) -> Result<(), EnrollError> {
    let ca = tls::parse_certs(&answer.ca_pem)
        .map_err(|e| EnrollError::BadAnswer(format!("CA certificate: {e}")))?;
    let ca_fp = ca
        .first()
        .map(|der| Fingerprint::of_der(der.as_ref()))
        .ok_or_else(|| EnrollError::BadAnswer("no CA certificate".to_owned()))?;
    if ca_fp != token.ca_fingerprint() {
        return Err(EnrollError::BadAnswer(format!(
            "CA fingerprint {ca_fp} does not match the token's {}",
            token.ca_fingerprint()
        )));
    }
    let matches = tls::cert_matches_key(&answer.cert_pem, key_pem)
        .map_err(|e| EnrollError::BadAnswer(format!("certificate: {e}")))?;
    if !matches {
        return Err(EnrollError::BadAnswer(
            "the certificate does not carry this host's public key".to_owned(),
        ));
    }
    let cert = tls::parse_certs(&answer.cert_pem)
        .map_err(|e| EnrollError::BadAnswer(format!("certificate: {e}")))?;
    let role = cert
        .first()
        .map(tls::role_of_cert)
        .transpose()
        .map_err(|e| EnrollError::BadAnswer(format!("certificate: {e}")))?;
    if role != Some(Role::Agent(answer.host_id.clone())) {
        return Err(EnrollError::BadAnswer(format!(
            "the certificate is not for agent:{}",
            answer.host_id
        )));
    }
    Ok(())
}

/// `URL/api/v1/enroll`, refusing plain HTTP except on loopback.
fn enroll_url(collector_url: &str) -> Result<String, EnrollError> {
    let bad = |reason| EnrollError::Url {
        url: collector_url.to_owned(),
        reason,
    };
    let parsed = reqwest::Url::parse(collector_url).map_err(|_| bad("not a URL"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(&parsed) => {}
        "http" => {
            return Err(bad(
                "plain http is allowed only for a loopback collector; use https",
            ));
        }
        _ => return Err(bad("the scheme must be https")),
    }
    let base = collector_url.trim_end_matches('/');
    Ok(format!("{base}/api/v1/enroll"))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn client_for(url: &str, pin: Fingerprint) -> Result<reqwest::Client, EnrollError> {
    let builder = reqwest::Client::builder()
        .timeout(ENROLL_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .no_proxy();
    // Even for a plain-http loopback URL the client gets the pinned config,
    // so no redirect can lead it to an unpinned TLS peer.
    let config = tls::pinned_client_config(pin).map_err(|source| EnrollError::Tls {
        what: "cannot build the pinned TLS client",
        source,
    })?;
    builder
        .tls_backend_preconfigured((*config).clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|err| EnrollError::Connect {
            url: url.to_owned(),
            message: error_chain(&err),
        })
}

/// An error and its causes on one line, e.g. to show why TLS failed.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        assert_eq!(
            enroll_url("http://127.0.0.1:7070/").unwrap(),
            "http://127.0.0.1:7070/api/v1/enroll"
        );
        assert!(enroll_url("http://localhost:7070").is_ok());
        assert!(enroll_url("http://[::1]:7070").is_ok());
        assert!(enroll_url("https://collector.example:7070").is_ok());
        let err = enroll_url("http://10.0.0.5:7070").unwrap_err();
        assert!(
            err.to_string().contains("only for a loopback collector"),
            "{err}"
        );
        assert!(enroll_url("ftp://x").is_err());
        assert!(enroll_url("not a url").is_err());
    }
}
