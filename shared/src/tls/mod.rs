//! The fleet's own PKI and the rustls configurations both binaries use.
//!
//! Agent and collector talk mutual TLS 1.3 only, with certificates from the fleet's CA
//! (DESIGN.md §5). Identity is the **role** in the certificate subject's Common Name:
//! `collector`, or `agent:<host>`. A peer is accepted when its chain verifies to the fleet CA
//! *and* its role is the one the caller expects; the DNS name or IP address that was dialled is
//! ignored, because agents move between addresses and the fleet CA only issues certificates
//! whose role the collector decided (from an enrollment token), so the role is the identity.
//!
//! Parts, one per file (private modules; everything public is re-exported here):
//! - `role.rs`: [`Role`], [`PeerPolicy`], reading the role out of a certificate
//!   ([`role_of_cert`], [`peer_role`]).
//! - `fingerprint.rs`: [`Fingerprint`], the SHA-256 of a certificate's DER, as pinned in
//!   enrollment tokens.
//! - `ca.rs`: [`CertificateAuthority`]: creating and reloading the fleet CA, issuing leaf
//!   certificates ([`IssuedCert`]) and signing agents' CSRs with an identity the collector chose.
//! - `leaf.rs`: the profile of every leaf certificate (subject, SANs, EKUs, validity, serial).
//! - `csr.rs`: [`generate_csr`] (agent side: the private key never leaves the host) and the CSR
//!   checks [`CertificateAuthority::sign_csr`] relies on.
//! - `identity.rs`: loading PEM: [`Identity`] (chain + key), [`CaBundle`], [`parse_certs`],
//!   [`cert_matches_key`].
//! - `verify.rs`: the rustls verifiers that check chain *and* role, and the enrollment verifier
//!   that trusts only a pinned CA fingerprint.
//! - `config.rs`: the `ServerConfig`/`ClientConfig` builders callers use ([`server_config`],
//!   [`server_config_without_client_auth`], [`client_config`], [`pinned_client_config`]).
//!
//! Left out: revocation (CRLs; DESIGN.md §2 "a revoked host is refused at the handshake" comes
//! with rotation), certificate rotation and hot-swapping, the enrollment HTTP exchange itself,
//! and storing keys with tight file modes (the callers write the files).
//!
//! The whole flow, from CA to configs:
//!
//! ```
//! use std::time::Duration;
//! use muster_shared::tls::{self, CertificateAuthority, Identity, PeerPolicy, Role};
//!
//! const DAY: Duration = Duration::from_secs(86_400);
//! let ca = CertificateAuthority::generate("Muster fleet CA")?;
//! let web1 = Role::agent("web1")?;
//!
//! // Enrollment: the agent makes a key and CSR; the collector signs it with the role from
//! // the token; the agent checks the certificate is for its key.
//! let csr = tls::generate_csr(&web1)?;
//! let cert_pem = ca.sign_csr(&csr.csr_pem, &web1, &["10.0.0.5".to_owned()], 90 * DAY)?;
//! assert!(tls::cert_matches_key(&cert_pem, &csr.key_pem)?);
//!
//! // The agent's API accepts only the collector; the collector calling web1 expects web1.
//! let agent_identity = Identity::from_pem(&cert_pem, &csr.key_pem)?;
//! let _agent_api = tls::server_config(ca.cert_pem(), agent_identity, PeerPolicy::Collector)?;
//! let collector = ca.issue(&Role::Collector, &[], 365 * DAY)?;
//! let collector_identity = Identity::from_pem(&collector.cert_pem, &collector.key_pem)?;
//! let _to_web1 = tls::client_config(
//!     ca.cert_pem(),
//!     Some(collector_identity),
//!     PeerPolicy::Agent("web1".to_owned()),
//! )?;
//! // Before enrollment the agent knows only the CA fingerprint from its token.
//! let _enroll = tls::pinned_client_config(ca.fingerprint())?;
//! # Ok::<(), tls::TlsError>(())
//! ```
//!
//! Every config is built with the ring provider explicitly, never the process-default provider,
//! so no binary has to remember to install one.

mod ca;
mod config;
mod csr;
mod fingerprint;
mod identity;
mod leaf;
mod role;
mod verify;

#[cfg(test)]
mod handshake_tests;
#[cfg(test)]
mod testkit;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;

pub use ca::{CertificateAuthority, IssuedCert};
pub use config::{
    client_config, pinned_client_config, server_config, server_config_without_client_auth,
};
pub use csr::{CsrWithKey, MAX_CSR_PEM_BYTES, generate_csr};
pub use fingerprint::Fingerprint;
pub use identity::{CaBundle, Identity, cert_matches_key, load_ca, parse_certs};
pub use role::{PeerPolicy, Role, peer_role, role_of_cert};

/// Everything that can go wrong in [`crate::tls`].
///
/// Each variant names what failed with its subject (a path, a role, a value). No variant ever
/// carries private-key material: key parsing errors name the source, never the bytes.
/// During a handshake, the verifiers carry [`TlsError::PeerRoleRejected`],
/// [`TlsError::NoRole`] and [`TlsError::FingerprintMismatch`] inside
/// `rustls::CertificateError::Other`; [`TlsError::peer_rejection`] gets them back out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate, key or CA file could not be read.
    #[error("cannot read {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM input held no `CERTIFICATE` block.
    #[error("no certificate found in {what}")]
    NoCertificate {
        /// Where we looked (a path or a description such as "CA PEM").
        what: String,
    },
    /// A PEM input had a malformed `CERTIFICATE` block.
    #[error("malformed certificate PEM in {what}")]
    CertificatePem {
        /// Where we looked.
        what: String,
        /// The PEM error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate's DER could not be parsed as X.509.
    #[error("cannot parse the certificate in {what}: {reason}")]
    CertificateParse {
        /// Which certificate.
        what: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A PEM input held no private key block.
    #[error("no private key found in {what}")]
    NoPrivateKey {
        /// Where we looked.
        what: String,
    },
    /// A private key could not be decoded or is of an unsupported kind. Deliberately carries no
    /// source: the underlying errors may quote bytes of the key.
    #[error("unusable private key in {what} (expected a PEM PKCS#8, SEC1 or PKCS#1 key)")]
    PrivateKey {
        /// Where the key came from.
        what: String,
    },
    /// A certificate does not carry the public key of the private key it is paired with.
    #[error("the certificate in {what} does not match its private key")]
    KeyMismatch {
        /// Which certificate/key pair.
        what: String,
    },
    /// A certificate that should be a CA lacks the CA basic constraint.
    #[error("the certificate in {what} is not a CA certificate")]
    NotCa {
        /// Which certificate.
        what: String,
    },
    /// A string is not a valid role.
    #[error(
        "invalid role {value:?}: expected `collector` or `agent:<host>` with host matching \
         [A-Za-z0-9][A-Za-z0-9._-]{{0,62}}"
    )]
    InvalidRole {
        /// The rejected string.
        value: String,
    },
    /// A certificate's subject carries no usable role.
    #[error("certificate subject {subject:?} carries no role: {reason}")]
    NoRole {
        /// The certificate's subject, as printed by x509-parser.
        subject: String,
        /// Why no role was found.
        reason: String,
    },
    /// A subject alternative name is neither an IP address nor a plausible DNS name.
    #[error("invalid subject alternative name {value:?}: expected an IP address or a DNS name")]
    InvalidSan {
        /// The rejected entry.
        value: String,
    },
    /// A CA name is empty or too long.
    #[error("invalid CA name {value:?}: expected 1 to 64 printable characters")]
    InvalidCaName {
        /// The rejected name.
        value: String,
    },
    /// A requested validity is zero or too far in the future to encode.
    #[error("invalid certificate validity {validity:?}")]
    InvalidValidity {
        /// The requested validity.
        validity: Duration,
    },
    /// A CSR is larger than [`MAX_CSR_PEM_BYTES`].
    #[error("CSR is {len} bytes, more than the limit of {limit} bytes")]
    CsrTooLarge {
        /// Its size in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A CSR could not be decoded.
    #[error("malformed CSR: {reason}")]
    CsrParse {
        /// What was wrong.
        reason: String,
    },
    /// A CSR's self-signature does not verify with the public key it carries.
    #[error("CSR signature does not verify: the request was altered or not signed by its key")]
    CsrSignature,
    /// A CSR's public key is not ECDSA P-256.
    #[error("CSR public key is not ECDSA P-256")]
    CsrKeyAlgorithm,
    /// rcgen failed to build a key, CSR or certificate.
    #[error("cannot {what}")]
    Rcgen {
        /// What we were doing ("generate a key pair", "sign the certificate").
        what: &'static str,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// rustls refused a configuration.
    #[error("cannot build the TLS {what}")]
    Rustls {
        /// Which configuration ("server config", "client config").
        what: &'static str,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built from the CA bundle.
    #[error("cannot build the client certificate verifier")]
    Verifier {
        /// The rustls error.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// A fingerprint string is malformed.
    #[error(
        "invalid certificate fingerprint {value:?}: {reason} (expected 64 hex digits, \
         optionally as 32 colon-separated pairs)"
    )]
    FingerprintFormat {
        /// The rejected string (truncated to 100 characters).
        value: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// A peer's certificate verified to the fleet CA, but its role is not the expected one.
    #[error("peer certificate has role `{role}`, but only {expected} is accepted here")]
    PeerRoleRejected {
        /// The peer's role.
        role: Role,
        /// What was expected.
        expected: PeerPolicy,
    },
    /// During enrollment, no certificate the server sent has the pinned CA fingerprint.
    #[error(
        "the CA fingerprint did not match: the server presented no certificate with SHA-256 \
         {expected} (wrong collector, or a wrong or stale token)"
    )]
    FingerprintMismatch {
        /// The pinned fingerprint from the token.
        expected: Fingerprint,
    },
}

impl TlsError {
    /// The reason one of this module's verifiers rejected a peer during a handshake, if `err`
    /// is such a rejection: [`TlsError::PeerRoleRejected`], [`TlsError::NoRole`] or
    /// [`TlsError::FingerprintMismatch`]. Chain, validity and signature failures are rustls's
    /// own `CertificateError`s and give `None`.
    ///
    /// tokio-rustls reports handshake failures as `std::io::Error`; get the `rustls::Error`
    /// with `io_err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>())`.
    pub fn peer_rejection(err: &rustls::Error) -> Option<&TlsError> {
        verify::rejection_of(err)
    }
}

/// The ring provider, always passed explicitly so the process default never matters.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 only: both ends are ours, so there is no older peer to accommodate.
const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// ALPN identifiers every config offers: HTTP/2 first, then HTTP/1.1 (`shared::serve` speaks
/// both).
fn alpn_protocols() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// Shortens an untrusted string before it goes into an error, so a huge input can't make a huge
/// log line.
fn truncate_for_error(value: &str) -> String {
    const MAX: usize = 100;
    match value.char_indices().nth(MAX) {
        Some((idx, _)) => format!("{}…", &value[..idx]),
        None => value.to_owned(),
    }
}
