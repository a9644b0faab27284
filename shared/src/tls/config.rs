//! The rustls configurations the binaries use: TLS 1.3 only, ring provider, ALPN `h2` then
//! `http/1.1`.
//!
//! | Config | Who | Peer check |
//! |---|---|---|
//! | [`server_config`] | agent API (`Collector`), collector's agent-facing listener (`AnyAgent`) | client cert required, chain to fleet CA, role per policy |
//! | [`server_config_without_client_auth`] | collector's public API and enrollment listener | none (bearer tokens / enrollment tokens) |
//! | [`client_config`] | collector → agent (`Agent(host)`), agent → collector (`Collector`) | chain to fleet CA, role per policy, dialled name ignored |
//! | [`pinned_client_config`] | agent enrolling | CA fingerprint pin from the token, role `collector` |
//!
//! Servers send their chain followed by the fleet CA certificate(s), so an enrolling agent that
//! only knows the CA's fingerprint finds the certificate to pin. The configs are immutable; to
//! rotate a certificate or trust a new CA, build a new one and swap the `Arc`.

use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, ServerConfig};

use super::verify::{
    PinnedCaServerVerifier, RoleCheckingClientVerifier, RoleCheckingServerVerifier,
};
use super::{CaBundle, Fingerprint, Identity, PeerPolicy, TlsError};

/// A mutual-TLS server config: clients must present a certificate that chains to the fleet CA
/// in `ca_pem` and whose role `accept` allows, or the handshake fails.
///
/// `identity` is the server's own chain and key; the CA certificate(s) from `ca_pem` are sent
/// after it. Handlers read the client's role with [`super::peer_role`].
///
/// # Errors
/// Those of [`CaBundle::from_pem`], [`TlsError::Verifier`], and [`TlsError::Rustls`] if rustls
/// refuses the key.
pub fn server_config(
    ca_pem: &str,
    identity: Identity,
    accept: PeerPolicy,
) -> Result<Arc<ServerConfig>, TlsError> {
    let ca = CaBundle::from_pem(ca_pem)?;
    let verifier = RoleCheckingClientVerifier::new(&ca, accept)?;
    build_server(&ca, identity, Some(Arc::new(verifier)))
}

/// A server config that asks for no client certificate: the collector's public API (browsers
/// and curl authenticate with bearer tokens) and its enrollment listener.
///
/// Sends `identity`'s chain followed by the CA certificate(s) from `ca_pem`.
///
/// # Errors
/// Those of [`CaBundle::from_pem`] and [`TlsError::Rustls`].
pub fn server_config_without_client_auth(
    ca_pem: &str,
    identity: Identity,
) -> Result<Arc<ServerConfig>, TlsError> {
    let ca = CaBundle::from_pem(ca_pem)?;
    build_server(&ca, identity, None)
}

fn build_server(
    ca: &CaBundle,
    identity: Identity,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let rustls_err = |source| TlsError::Rustls {
        what: "server config",
        source,
    };
    let (mut chain, key) = identity.into_parts();
    for ca_cert in ca.certs() {
        if !chain.contains(ca_cert) {
            chain.push(ca_cert.clone());
        }
    }
    let builder = ServerConfig::builder_with_provider(super::provider())
        .with_protocol_versions(super::PROTOCOL_VERSIONS)
        .map_err(rustls_err)?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(rustls_err)?;
    config.alpn_protocols = super::alpn_protocols();
    Ok(Arc::new(config))
}

/// A client config for talking to a fleet peer: the server's chain must verify to the fleet CA
/// in `ca_pem` (validity time and serverAuth included) and its role must satisfy `expect`. The
/// name or address dialled is ignored.
///
/// `identity` is the client certificate to present (`None` for no client auth).
///
/// # Errors
/// Those of [`CaBundle::from_pem`] and [`TlsError::Rustls`].
pub fn client_config(
    ca_pem: &str,
    identity: Option<Identity>,
    expect: PeerPolicy,
) -> Result<Arc<ClientConfig>, TlsError> {
    let ca = CaBundle::from_pem(ca_pem)?;
    build_client(
        Arc::new(RoleCheckingServerVerifier::new(&ca, expect)),
        identity,
    )
}

/// A client config for enrollment, when the agent knows only the CA's fingerprint (from its
/// token): the server must send a certificate with that SHA-256 among its intermediates, its
/// leaf must verify to that certificate and have role `collector`. No client certificate.
///
/// A handshake with a server that doesn't present the pinned certificate fails with
/// [`TlsError::FingerprintMismatch`] (get it with [`TlsError::peer_rejection`]).
///
/// # Errors
/// [`TlsError::Rustls`] (not expected with the built-in provider).
pub fn pinned_client_config(ca_fingerprint: Fingerprint) -> Result<Arc<ClientConfig>, TlsError> {
    build_client(Arc::new(PinnedCaServerVerifier::new(ca_fingerprint)), None)
}

fn build_client(
    verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    identity: Option<Identity>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let rustls_err = |source| TlsError::Rustls {
        what: "client config",
        source,
    };
    let builder = ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(super::PROTOCOL_VERSIONS)
        .map_err(rustls_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(identity) => {
            let (chain, key) = identity.into_parts();
            builder
                .with_client_auth_cert(chain, key)
                .map_err(rustls_err)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = super::alpn_protocols();
    Ok(Arc::new(config))
}
