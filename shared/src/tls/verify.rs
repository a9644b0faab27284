//! The rustls verifiers: chain to the fleet CA, then role. This is the security core.
//!
//! - [`RoleCheckingClientVerifier`] (server side): rustls's `WebPkiClientVerifier` does the chain,
//!   validity and clientAuth EKU checks; then the client's role must satisfy the listener's
//!   [`PeerPolicy`].
//! - [`RoleCheckingServerVerifier`] (client side): `verify_server_cert_signed_by_trust_anchor`
//!   does the chain, validity and serverAuth EKU checks; the name the client dialled is **not**
//!   checked, because agents move between addresses and a fleet certificate's identity is its
//!   role. The role must satisfy the caller's [`PeerPolicy`].
//! - [`PinnedCaServerVerifier`] (enrollment): the agent has only the CA's fingerprint from its
//!   token. The server must send, among its intermediates, a certificate with that SHA-256; the
//!   leaf must verify to *that* certificate as the only trust anchor and have role `collector`.
//!
//! Handshake signatures are checked with the ring provider's algorithms, TLS 1.3 only. A role
//! or pin failure is `rustls::Error::InvalidCertificate(CertificateError::Other(..))` wrapping a
//! [`TlsError`], so the rejecting side's log says exactly what was wrong; the peer sees a
//! `certificate_unknown` alert.
//!
//! Left out: revocation (CRLs).

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{CaBundle, Fingerprint, PeerPolicy, Role, TlsError, role_of_cert};

/// One of our errors, carried through rustls inside `CertificateError::Other`.
///
/// rustls prints that inner error with `{:?}`, so `Debug` here is the `Display` of the
/// [`TlsError`]: the rejecting side's log then reads "invalid peer certificate: Other(..(peer
/// certificate has role `agent:x`, but only role `collector` is accepted here))".
pub(super) struct Rejection(pub(super) TlsError);

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Wraps one of our errors as a certificate rejection rustls can carry.
fn reject(err: TlsError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Rejection(
        err,
    )))))
}

/// The [`TlsError`] a verifier of this module rejected a certificate with, if `err` is one.
pub(super) fn rejection_of(err: &rustls::Error) -> Option<&TlsError> {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => inner
            .downcast_ref::<Rejection>()
            .map(|rejection| &rejection.0),
        _ => None,
    }
}

/// The role of an already verified end-entity certificate, if `policy` allows it.
fn check_role(end_entity: &CertificateDer<'_>, policy: &PeerPolicy) -> Result<Role, rustls::Error> {
    let role = role_of_cert(end_entity).map_err(reject)?;
    if !policy.allows(&role) {
        return Err(reject(TlsError::PeerRoleRejected {
            role,
            expected: policy.clone(),
        }));
    }
    Ok(role)
}

/// Refuses TLS 1.2 signatures: every config here is TLS 1.3 only, so rustls never asks.
fn refuse_tls12() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::General(
        "TLS 1.2 is disabled: Muster peers speak TLS 1.3 only".to_owned(),
    ))
}

/// The ring provider's signature algorithms.
fn ring_algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// Server side: requires a client certificate chaining to the fleet CA whose role satisfies a
/// [`PeerPolicy`].
pub(super) struct RoleCheckingClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    accept: PeerPolicy,
}

impl RoleCheckingClientVerifier {
    /// A verifier trusting `ca` and accepting roles allowed by `accept`.
    pub(super) fn new(ca: &CaBundle, accept: PeerPolicy) -> Result<Self, TlsError> {
        let inner = WebPkiClientVerifier::builder_with_provider(ca.roots(), super::provider())
            .build()
            .map_err(|source| TlsError::Verifier { source })?;
        Ok(RoleCheckingClientVerifier { inner, accept })
    }
}

impl fmt::Debug for RoleCheckingClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleCheckingClientVerifier")
            .field("accept", &self.accept)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for RoleCheckingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_role(end_entity, &self.accept)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Client side: requires the server's chain to verify to the fleet CA and its role to satisfy a
/// [`PeerPolicy`]; ignores the dialled name.
pub(super) struct RoleCheckingServerVerifier {
    roots: Arc<RootCertStore>,
    expect: PeerPolicy,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RoleCheckingServerVerifier {
    /// A verifier trusting `ca` and expecting a server whose role `expect` allows.
    pub(super) fn new(ca: &CaBundle, expect: PeerPolicy) -> Self {
        RoleCheckingServerVerifier {
            roots: ca.roots(),
            expect,
            algorithms: ring_algorithms(),
        }
    }
}

impl fmt::Debug for RoleCheckingServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleCheckingServerVerifier")
            .field("expect", &self.expect)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for RoleCheckingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        // The dialled name is deliberately not checked: see the module docs.
        check_role(end_entity, &self.expect)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Enrollment: trusts only the CA certificate with a pinned fingerprint, which the server must
/// send among its intermediates, and requires role `collector`.
pub(super) struct PinnedCaServerVerifier {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCaServerVerifier {
    /// A verifier pinning the CA certificate whose SHA-256 is `pin`.
    pub(super) fn new(pin: Fingerprint) -> Self {
        PinnedCaServerVerifier {
            pin,
            algorithms: ring_algorithms(),
        }
    }
}

impl fmt::Debug for PinnedCaServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedCaServerVerifier")
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for PinnedCaServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Hash every intermediate (no early exit on a match) so timing says nothing about which
        // one matched.
        let mut pinned = None;
        let mut others = Vec::with_capacity(intermediates.len());
        for cert in intermediates {
            if self.pin.matches_der(cert) {
                pinned.get_or_insert(cert);
            } else {
                others.push(cert.clone());
            }
        }
        let Some(pinned) = pinned else {
            return Err(reject(TlsError::FingerprintMismatch { expected: self.pin }));
        };
        let mut roots = RootCertStore::empty();
        roots.add(pinned.clone().into_owned())?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &others,
            now,
            self.algorithms.all,
        )?;
        check_role(end_entity, &PeerPolicy::Collector)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    //! Direct verifier calls, for what a live handshake can't easily stage (a clock two days
    //! ahead, hand-picked intermediates). The handshake tests live in `config.rs`.

    use std::time::Duration;

    use super::super::testkit::{Fleet, our_error};
    use super::super::{CaBundle, parse_certs};
    use super::*;

    fn leaf(fleet: &Fleet, role: &Role) -> CertificateDer<'static> {
        parse_certs(&fleet.issue(role).cert_pem).unwrap().remove(0)
    }

    fn name() -> ServerName<'static> {
        ServerName::try_from("somewhere.else.example").unwrap()
    }

    fn in_days(days: u64) -> UnixTime {
        UnixTime::since_unix_epoch(
            UnixTime::now()
                .as_secs()
                .checked_add(days * 86_400)
                .map(Duration::from_secs)
                .unwrap(),
        )
    }

    #[test]
    fn server_verifier_checks_validity_time() {
        let fleet = Fleet::new();
        let bundle = CaBundle::from_pem(fleet.ca_pem()).unwrap();
        let verifier = RoleCheckingServerVerifier::new(&bundle, PeerPolicy::Collector);
        let cert = leaf(&fleet, &Role::Collector);
        verifier
            .verify_server_cert(&cert, &[], &name(), &[], UnixTime::now())
            .unwrap();
        let err = verifier
            .verify_server_cert(&cert, &[], &name(), &[], in_days(2))
            .unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn client_verifier_checks_validity_time_and_role() {
        let fleet = Fleet::new();
        let bundle = CaBundle::from_pem(fleet.ca_pem()).unwrap();
        let verifier = RoleCheckingClientVerifier::new(&bundle, PeerPolicy::AnyAgent).unwrap();
        assert!(verifier.client_auth_mandatory());
        let agent = leaf(&fleet, &Role::Agent("web1".into()));
        verifier
            .verify_client_cert(&agent, &[], UnixTime::now())
            .unwrap();
        let err = verifier
            .verify_client_cert(&agent, &[], in_days(2))
            .unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            ),
            "{err:?}"
        );
        let collector = leaf(&fleet, &Role::Collector);
        let err = verifier
            .verify_client_cert(&collector, &[], UnixTime::now())
            .unwrap_err();
        assert!(
            matches!(
                our_error(&err),
                Some(TlsError::PeerRoleRejected {
                    role: Role::Collector,
                    expected: PeerPolicy::AnyAgent
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn pinned_verifier_needs_the_pinned_cert_among_intermediates() {
        let fleet = Fleet::new();
        let verifier = PinnedCaServerVerifier::new(fleet.ca.fingerprint());
        let cert = leaf(&fleet, &Role::Collector);
        let ca = fleet.ca.cert_der().clone();
        verifier
            .verify_server_cert(&cert, &[ca], &name(), &[], UnixTime::now())
            .unwrap();
        // Without the CA certificate in the chain there is nothing to match the pin.
        let err = verifier
            .verify_server_cert(&cert, &[], &name(), &[], UnixTime::now())
            .unwrap_err();
        assert!(
            matches!(our_error(&err), Some(TlsError::FingerprintMismatch { .. })),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("fingerprint did not match"),
            "{err}"
        );
    }

    #[test]
    fn pinned_verifier_refuses_a_leaf_not_issued_by_the_pinned_ca() {
        // An impostor sends the real (public) CA certificate next to its own leaf.
        let fleet = Fleet::new();
        let impostor = Fleet::new();
        let verifier = PinnedCaServerVerifier::new(fleet.ca.fingerprint());
        let cert = leaf(&impostor, &Role::Collector);
        let intermediates = [impostor.ca.cert_der().clone(), fleet.ca.cert_der().clone()];
        let err = verifier
            .verify_server_cert(&cert, &intermediates, &name(), &[], UnixTime::now())
            .unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            ),
            "{err:?}"
        );
    }

    #[test]
    fn pinned_verifier_requires_the_collector_role() {
        let fleet = Fleet::new();
        let verifier = PinnedCaServerVerifier::new(fleet.ca.fingerprint());
        let cert = leaf(&fleet, &Role::Agent("web1".into()));
        let err = verifier
            .verify_server_cert(
                &cert,
                &[fleet.ca.cert_der().clone()],
                &name(),
                &[],
                UnixTime::now(),
            )
            .unwrap_err();
        assert!(
            matches!(
                our_error(&err),
                Some(TlsError::PeerRoleRejected {
                    expected: PeerPolicy::Collector,
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn verifier_refuses_a_fleet_cert_without_a_role() {
        // A certificate the fleet CA signed whose CN is not a role must not pass as anyone.
        let fleet = Fleet::new();
        let bundle = CaBundle::from_pem(fleet.ca_pem()).unwrap();
        let verifier = RoleCheckingServerVerifier::new(&bundle, PeerPolicy::AnyAgent);
        let csr = super::super::generate_csr(&Role::Collector).unwrap();
        // sign_csr always writes a role, so build the odd cert from the CA PEM via rcgen.
        let key = rcgen::KeyPair::from_pem(&fleet.ca.key_pem()).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(fleet.ca_pem(), key).unwrap();
        let leaf_key = rcgen::KeyPair::from_pem(&csr.key_pem).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x".to_owned()]).unwrap();
        params.distinguished_name = super::super::leaf::common_name("admin");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let not_before = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
        params.not_before = not_before;
        params.not_after = not_before + time::Duration::days(1);
        let cert = params.signed_by(&leaf_key, &issuer).unwrap();
        let err = verifier
            .verify_server_cert(cert.der(), &[], &name(), &[], UnixTime::now())
            .unwrap_err();
        assert!(
            matches!(our_error(&err), Some(TlsError::NoRole { .. })),
            "{err:?}"
        );
    }
}
