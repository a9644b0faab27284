//! Enrollment: sign an agent's CSR against a one-time token.
//!
//! Order matters. The token is checked, then the CSR is signed (a bad CSR
//! leaves the token usable), then the token is consumed with a
//! compare-and-swap (of two racing requests only one gets a certificate), then
//! the host is recorded and the store flushed before the certificate is
//! returned. A crash between the swap and the flush may leave the token used
//! with no host recorded; the agent never got a certificate then, and the
//! operator issues a new token.

use std::net::SocketAddr;
use std::time::Duration;

use muster_shared::protocol::enroll::{EnrollRequest, EnrollResponse};
use muster_shared::store::{Store, StoreError};
use muster_shared::tls::{Fingerprint, Role, TlsError};
use muster_shared::token::{EnrollToken, TokenError};

use crate::hosts::{HostRecord, HostRegistry};
use crate::pki::Pki;
use crate::tokens::{EnrollRefusal, TokenStore, TokenStoreError};

/// Why an enrollment was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The token does not parse.
    #[error(transparent)]
    Malformed(#[from] TokenError),
    /// The token names another CA than ours.
    #[error("this enrollment token was made for another fleet CA")]
    WrongCa,
    /// The token is unknown, expired or used.
    #[error(transparent)]
    Refused(#[from] EnrollRefusal),
    /// The CSR is unusable.
    #[error("invalid certificate signing request: {0}")]
    Csr(TlsError),
    /// The agent speaks a protocol version we can't.
    #[error("agent protocol version {agent} is not compatible with the collector's {ours}")]
    Protocol {
        /// The agent's version.
        agent: u16,
        /// Ours.
        ours: u16,
    },
    /// The store failed.
    #[error("store failure: {0}")]
    Store(String),
}

impl From<StoreError> for EnrollError {
    fn from(err: StoreError) -> Self {
        Self::Store(err.to_string())
    }
}

impl From<TokenStoreError> for EnrollError {
    fn from(err: TokenStoreError) -> Self {
        Self::Store(err.to_string())
    }
}

/// What enrollment needs.
#[derive(Debug, Clone, Copy)]
pub struct Enroller<'a> {
    /// The fleet CA and its PEM.
    pub pki: &'a Pki,
    /// Token storage.
    pub tokens: &'a TokenStore,
    /// Host records.
    pub hosts: &'a HostRegistry,
    /// The store, flushed at the commit point.
    pub store: &'a Store,
    /// Lifetime of the agent certificate.
    pub validity: Duration,
}

impl Enroller<'_> {
    /// Runs one enrollment. `remote` is the agent's TCP address; its IP and
    /// the request's `listen_port` make the address the collector pulls from.
    /// Blocking (signing and store).
    ///
    /// # Errors
    /// An [`EnrollError`]; on any error no host is recorded.
    pub fn enroll(
        &self,
        request: &EnrollRequest,
        remote: SocketAddr,
        now_ms: u64,
    ) -> Result<EnrollResponse, EnrollError> {
        let token = EnrollToken::parse(&request.token)?;
        if token.ca_fingerprint() != self.pki.ca_fingerprint() {
            return Err(EnrollError::WrongCa);
        }
        if !muster_shared::protocol::is_compatible(request.protocol_version) {
            return Err(EnrollError::Protocol {
                agent: request.protocol_version,
                ours: muster_shared::protocol::PROTOCOL_VERSION,
            });
        }
        let hash = token.hash();
        let record = self.tokens.check_enroll(&hash, now_ms)??;
        let role = Role::Agent(record.host.clone());
        let sans = vec![remote.ip().to_string()];
        let cert_pem = self
            .pki
            .ca
            .sign_csr(&request.csr_pem, &role, &sans, self.validity)
            .map_err(EnrollError::Csr)?;
        let fingerprint = muster_shared::tls::parse_certs(&cert_pem)
            .ok()
            .and_then(|certs| certs.first().map(|der| Fingerprint::of_der(der.as_ref())))
            .map(|fp| fp.to_string())
            .unwrap_or_default();

        self.tokens.consume_enroll(&hash, now_ms)??;
        self.hosts.record(&HostRecord {
            id: record.host.clone(),
            address: SocketAddr::new(remote.ip(), request.listen_port),
            cert_fingerprint: fingerprint,
            enrolled_at_unix_ms: now_ms,
        })?;
        self.store.flush()?;
        self.hosts.notify_changed();
        Ok(EnrollResponse {
            host_id: record.host,
            cert_pem,
            ca_pem: self.pki.ca_pem.clone(),
        })
    }
}
