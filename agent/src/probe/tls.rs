//! The `tls` kind: a TLS handshake with `host:port`, for the certificate chain it presents.
//!
//! The run connects (as the `tcp` kind), then handshakes with the name `server_name` (default:
//! the target's host), verifying the chain unless `insecure_skip_verify`. It reports
//! `probe_ssl_earliest_cert_expiry` whenever a chain was presented, also when verification
//! refused it, so an expired certificate shows when it expired. Alert on what is left with a
//! condition (`[CERT_EXPIRY] > 14d`) or on the collector
//! (`probe_ssl_earliest_cert_expiry - time() < 14 * 86400`).
//!
//! Leaves out: STARTTLS, client certificates, the chain's other certificates' series
//! (`probe_ssl_last_chain_info`), the negotiated version.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use super::certs::{self, ChainExpiry, RootsCache, Trust};
use super::config::{ProbeConfig, split_host_port};
use super::families::SSL_EARLIEST_CERT_EXPIRY;
use super::tcp::connect;
use super::{Outcome, ProbeError, Prober, reason_of};

/// `[probe.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsOptions {
    /// The name sent (SNI) and verified. Default: the target's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any certificate (still reporting its expiry). Default `false`.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Trust the CA certificates in this PEM file instead of the system's. Relative to the
    /// config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl TlsOptions {
    /// Adds this table's problems to `out`, each prefixed with `who`.
    pub fn problems(&self, who: &str, out: &mut Vec<String>) {
        if let Some(name) = &self.server_name
            && ServerName::try_from(name.as_str()).is_err()
        {
            out.push(format!(
                "{who}: server_name {name:?} is not a DNS name or IP address"
            ));
        }
    }
}

/// A tls probe.
pub struct TlsProber {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    expiry: Arc<ChainExpiry>,
}

impl std::fmt::Debug for TlsProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsProber")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsProber {
    /// The probe of `config`; `roots` shares the system bundle between probes.
    ///
    /// # Errors
    /// [`ProbeError`] for an unusable `ca_file`, a missing system bundle (when verifying),
    /// or a target or server name the TLS stack refuses (validation catches those first).
    pub fn new(config: &ProbeConfig, roots: &mut RootsCache) -> Result<Self, ProbeError> {
        let setup = |reason: String| ProbeError::Setup {
            probe: config.name.clone(),
            reason,
        };
        let options = config.tls.clone().unwrap_or_default();
        let (host, port) = split_host_port(&config.target).map_err(setup)?;
        let name = options.server_name.clone().unwrap_or_else(|| host.clone());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| setup(format!("server name {name:?}")))?;
        let expiry = Arc::new(ChainExpiry::default());
        let trust = Trust {
            insecure_skip_verify: options.insecure_skip_verify,
            ca_file: options.ca_file.as_deref(),
            roots_required: true,
        };
        let config = certs::client_config(&config.name, trust, roots, expiry.clone())?;
        Ok(Self {
            host,
            port,
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
            expiry,
        })
    }
}

impl Prober for TlsProber {
    async fn probe(&self, out: &mut Outcome) {
        out.facts.connected = Some(false);
        self.expiry.clear();
        let stream = match connect(&self.host, self.port).await {
            Ok(stream) => stream,
            Err(reason) => return out.fail(reason),
        };
        out.facts.connected = Some(true);
        let result = self
            .connector
            .connect(self.server_name.clone(), stream)
            .await;
        if let Some(expiry) = self.expiry.get() {
            out.set(&SSL_EARLIEST_CERT_EXPIRY, certs::unix_seconds(expiry));
            out.facts.cert_expiry = Some(expiry);
        }
        match result {
            Ok(mut stream) => {
                let _ = stream.shutdown().await;
            }
            Err(err) => out.fail(reason_of(&err, "tls: handshake failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::certs::testkit::{chain, server_config, unix};
    use crate::probe::config::Kind;
    use crate::probe::testkit::{closed_port, tls_server};

    async fn run(target: &str, options: TlsOptions) -> Outcome {
        let mut config = ProbeConfig::new("cert", Kind::Tls, target);
        config.tls = Some(options);
        let prober = TlsProber::new(&config, &mut RootsCache::default()).unwrap();
        let mut out = Outcome::default();
        prober.probe(&mut out).await;
        out
    }

    #[tokio::test]
    async fn reports_the_earliest_expiry_of_a_trusted_chain() {
        let dir = tempfile::tempdir().unwrap();
        let certs = chain((2029, 7, 1), (2030, 2, 3));
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &certs.ca_pem).unwrap();
        let server = tls_server(server_config(&certs)).await;

        let trusted = TlsOptions {
            ca_file: Some(ca_file.clone()),
            ..TlsOptions::default()
        };
        let out = run(&server.addr.to_string(), trusted).await;
        assert_eq!(out.failure(), None);
        assert_eq!(
            out.value("probe_ssl_earliest_cert_expiry"),
            Some(unix((2029, 7, 1)))
        );
        assert_eq!(out.facts.connected, Some(true));

        // By name: the leaf is for localhost too.
        let named = TlsOptions {
            ca_file: Some(ca_file.clone()),
            server_name: Some("localhost".to_owned()),
            ..TlsOptions::default()
        };
        assert_eq!(run(&server.addr.to_string(), named).await.failure(), None);
        let wrong_name = TlsOptions {
            ca_file: Some(ca_file),
            server_name: Some("example.org".to_owned()),
            ..TlsOptions::default()
        };
        let out = run(&server.addr.to_string(), wrong_name).await;
        assert_eq!(
            out.failure(),
            Some("tls: certificate not valid for the name")
        );
        assert_eq!(
            out.value("probe_ssl_earliest_cert_expiry"),
            Some(unix((2029, 7, 1)))
        );
    }

    #[tokio::test]
    async fn an_expired_certificate_fails_but_tells_when_it_expired() {
        let dir = tempfile::tempdir().unwrap();
        let certs = chain((2031, 1, 1), (2021, 3, 4));
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &certs.ca_pem).unwrap();
        let server = tls_server(server_config(&certs)).await;
        let out = run(
            &server.addr.to_string(),
            TlsOptions {
                ca_file: Some(ca_file.clone()),
                ..TlsOptions::default()
            },
        )
        .await;
        assert_eq!(out.failure(), Some("tls: certificate expired"));
        assert_eq!(
            out.value("probe_ssl_earliest_cert_expiry"),
            Some(unix((2021, 3, 4)))
        );

        let insecure = TlsOptions {
            ca_file: Some(ca_file),
            insecure_skip_verify: true,
            ..TlsOptions::default()
        };
        assert_eq!(
            run(&server.addr.to_string(), insecure).await.failure(),
            None
        );
    }

    #[tokio::test]
    async fn a_refused_connection_reports_no_expiry() {
        let addr = closed_port().await;
        let out = run(
            &addr.to_string(),
            TlsOptions {
                insecure_skip_verify: true,
                ..TlsOptions::default()
            },
        )
        .await;
        assert_eq!(out.failure(), Some("connection refused"));
        assert!(out.series().is_empty());
        assert_eq!(out.facts.connected, Some(false));
    }

    #[test]
    fn a_bad_server_name_is_a_problem() {
        let mut out = Vec::new();
        TlsOptions {
            server_name: Some("not a name".to_owned()),
            ..TlsOptions::default()
        }
        .problems("probe \"cert\"", &mut out);
        assert_eq!(
            out,
            vec!["probe \"cert\": server_name \"not a name\" is not a DNS name or IP address"]
        );
    }
}
