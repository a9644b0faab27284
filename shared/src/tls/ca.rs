//! The fleet certificate authority: creating it, reloading it from disk, and issuing leaf
//! certificates (with a fresh key, or for a CSR's key).
//!
//! One self-signed ECDSA P-256 root, path length 0, valid ten years, kept by the collector.
//! What a leaf carries is `leaf.rs`'s business.
//!
//! Left out: intermediates, CRLs and the serial → host record (the collector's enrollment keeps
//! that).

use std::fmt;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::CertificateDer;

use super::identity::{parse_certs_named, parse_private_key};
use super::leaf::{common_name, generate_key, leaf_params, random_serial, validity_window};
use super::{Fingerprint, Role, TlsError, csr};

/// The longest CA name accepted.
const MAX_CA_NAME_CHARS: usize = 64;

/// A freshly issued leaf certificate and its private key, both PEM.
///
/// `Debug` prints the certificate and `<redacted>` for the key.
#[derive(Clone)]
pub struct IssuedCert {
    /// The leaf certificate (`CERTIFICATE` PEM, one block).
    pub cert_pem: String,
    /// The leaf's PKCS#8 `PRIVATE KEY` PEM. Secret: store it with mode 0600.
    pub key_pem: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The fleet CA: its certificate and signing key.
///
/// `Debug` prints the certificate's fingerprint, never the key.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl CertificateAuthority {
    /// How long a generated CA certificate is valid: ten years (3650 days).
    pub const VALIDITY: Duration = Duration::from_secs(3650 * 24 * 60 * 60);

    /// Creates a new CA named `name` (the subject Common Name): ECDSA P-256, CA basic
    /// constraint with path length 0, key usage keyCertSign + cRLSign, valid for
    /// [`Self::VALIDITY`] from five minutes ago. CPU-bound (a key generation).
    ///
    /// # Errors
    /// [`TlsError::InvalidCaName`] when `name` is empty, longer than 64 characters or holds a
    /// control character; [`TlsError::Rcgen`] if key generation or signing fails.
    pub fn generate(name: &str) -> Result<CertificateAuthority, TlsError> {
        if name.trim().is_empty()
            || name.chars().count() > MAX_CA_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(TlsError::InvalidCaName {
                value: super::truncate_for_error(name),
            });
        }
        let key = generate_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        (params.not_before, params.not_after) = validity_window(Self::VALIDITY)?;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(|source| TlsError::Rcgen {
            what: "self-sign the CA certificate",
            source,
        })?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Reloads a CA from its certificate and key PEM (as written from [`Self::cert_pem`] and
    /// [`Self::key_pem`]).
    ///
    /// # Errors
    /// [`TlsError::NoCertificate`] / [`TlsError::CertificatePem`] /
    /// [`TlsError::CertificateParse`] for the certificate (which must be exactly one),
    /// [`TlsError::NotCa`] when it is not a CA, [`TlsError::NoPrivateKey`] /
    /// [`TlsError::PrivateKey`] for a key that is missing or not PKCS#8, and
    /// [`TlsError::KeyMismatch`] when the key is not the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CertificateAuthority, TlsError> {
        const CERT_WHAT: &str = "CA certificate PEM";
        const KEY_WHAT: &str = "CA key PEM";
        let mut certs = parse_certs_named(cert_pem, CERT_WHAT)?;
        let cert_der = match (certs.pop(), certs.is_empty()) {
            (Some(cert), true) => cert,
            _ => {
                return Err(TlsError::CertificateParse {
                    what: CERT_WHAT.to_owned(),
                    reason: "expected exactly one certificate".to_owned(),
                });
            }
        };
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der).map_err(|err| {
            TlsError::CertificateParse {
                what: CERT_WHAT.to_owned(),
                reason: err.to_string(),
            }
        })?;
        if !x509.is_ca() {
            return Err(TlsError::NotCa {
                what: CERT_WHAT.to_owned(),
            });
        }
        let key_der = parse_private_key(key_pem, KEY_WHAT)?;
        let key = KeyPair::try_from(&key_der).map_err(|_| TlsError::PrivateKey {
            what: KEY_WHAT.to_owned(),
        })?;
        if !super::identity::leaf_matches_key(&cert_der, key_der, KEY_WHAT)? {
            return Err(TlsError::KeyMismatch {
                what: format!("{CERT_WHAT} (key from {KEY_WHAT})"),
            });
        }
        let issuer =
            Issuer::from_ca_cert_der(&cert_der, key).map_err(|source| TlsError::Rcgen {
                what: "use the CA certificate as an issuer",
                source,
            })?;
        Ok(CertificateAuthority {
            issuer,
            cert_pem: super::identity::pem_encode("CERTIFICATE", &cert_der),
            cert_der,
        })
    }

    /// The CA certificate, PEM. Public: agents and the collector trust it.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's PKCS#8 private key, PEM. Secret: write it with mode 0600, never log it.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate's SHA-256 fingerprint, as pinned in enrollment tokens.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.cert_der)
    }

    /// Issues a certificate for `role` with a fresh ECDSA P-256 key.
    ///
    /// `sans`: each entry becomes an IP SAN if it parses as an IP address, else a DNS SAN; the
    /// role's natural name (`collector` or the agent's host) is always added. Valid from five
    /// minutes ago until `validity` from now. CPU-bound (a key generation).
    ///
    /// # Errors
    /// [`TlsError::InvalidRole`], [`TlsError::InvalidSan`] (an empty entry, one over 253
    /// characters, or one with a character outside `[A-Za-z0-9.*_-]`),
    /// [`TlsError::InvalidValidity`] (zero, or past year 9999), [`TlsError::Rcgen`].
    pub fn issue(
        &self,
        role: &Role,
        sans: &[String],
        validity: Duration,
    ) -> Result<IssuedCert, TlsError> {
        let params = leaf_params(role, sans, validity)?;
        let key = generate_key()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| TlsError::Rcgen {
                what: "sign the certificate",
                source,
            })?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs an agent's CSR: returns a certificate PEM for the CSR's public key, with `role`,
    /// `sans` and `validity` exactly as [`Self::issue`] would write them.
    ///
    /// The CSR must be at most [`super::MAX_CSR_PEM_BYTES`], its self-signature must verify and
    /// its key must be ECDSA P-256. Everything else it asks for (subject, SANs, extensions) is
    /// ignored: the collector decides the identity from the enrollment token.
    ///
    /// # Errors
    /// [`TlsError::CsrTooLarge`], [`TlsError::CsrParse`], [`TlsError::CsrSignature`],
    /// [`TlsError::CsrKeyAlgorithm`], and those of [`Self::issue`].
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        role: &Role,
        sans: &[String],
        validity: Duration,
    ) -> Result<String, TlsError> {
        let public_key = csr::verified_public_key(csr_pem)?;
        let params = leaf_params(role, sans, validity)?;
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|source| TlsError::Rcgen {
                what: "sign the certificate",
                source,
            })?;
        Ok(cert.pem())
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &self.fingerprint())
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Fleet, assert_no_key_material, inspect, sans_of, tamper_csr};
    use super::super::{generate_csr, role_of_cert};
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn generated_ca_has_ca_constraints_and_ten_years() {
        let ca = CertificateAuthority::generate("Muster fleet CA").unwrap();
        inspect(ca.cert_pem(), |x509| {
            let bc = x509.basic_constraints().unwrap().unwrap().value;
            assert!(bc.ca);
            assert_eq!(bc.path_len_constraint, Some(0));
            let ku = x509.key_usage().unwrap().unwrap().value;
            assert!(ku.key_cert_sign() && ku.crl_sign());
            let validity = x509.validity();
            let secs = validity.not_after.timestamp() - validity.not_before.timestamp();
            assert_eq!(secs as u64, CertificateAuthority::VALIDITY.as_secs() + 300);
            assert_eq!(
                x509.subject()
                    .iter_common_name()
                    .next()
                    .unwrap()
                    .as_str()
                    .unwrap(),
                "Muster fleet CA"
            );
        });
        assert_eq!(ca.fingerprint(), Fingerprint::of_der(ca.cert_der()));
    }

    #[test]
    fn rejects_bad_ca_names() {
        for name in ["", "  ", "a\nb", &"x".repeat(65)] {
            assert!(matches!(
                CertificateAuthority::generate(name).unwrap_err(),
                TlsError::InvalidCaName { .. }
            ));
        }
    }

    #[test]
    fn sign_csr_ignores_the_requested_identity() {
        let fleet = Fleet::new();
        // The agent asks to be the collector, with extra SANs.
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params =
            CertificateParams::new(vec!["collector".to_owned(), "evil.example".to_owned()])
                .unwrap();
        params.distinguished_name = common_name("collector");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let csr_pem = params.serialize_request(&key).unwrap().pem().unwrap();

        let cert_pem = fleet
            .ca
            .sign_csr(
                &csr_pem,
                &Role::Agent("web1".into()),
                &["10.0.0.7".to_owned()],
                DAY,
            )
            .unwrap();
        let der = super::super::parse_certs(&cert_pem).unwrap().remove(0);
        assert_eq!(role_of_cert(&der).unwrap(), Role::Agent("web1".into()));
        inspect(&cert_pem, |x509| {
            assert_eq!(sans_of(x509), ["ip:[10, 0, 0, 7]", "dns:web1"]);
            assert!(!x509.is_ca());
            let eku = x509.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && eku.client_auth);
        });
        // The certificate is for the CSR's key, so the agent's check passes.
        assert!(super::super::cert_matches_key(&cert_pem, &key.serialize_pem()).unwrap());
    }

    #[test]
    fn sign_csr_from_generate_csr_round_trips_into_an_identity() {
        let fleet = Fleet::new();
        let role = Role::Agent("web1".into());
        let csr = generate_csr(&role).unwrap();
        let cert_pem = fleet.ca.sign_csr(&csr.csr_pem, &role, &[], DAY).unwrap();
        assert!(super::super::cert_matches_key(&cert_pem, &csr.key_pem).unwrap());
        let identity = super::super::Identity::from_pem(&cert_pem, &csr.key_pem).unwrap();
        assert_eq!(identity.role().unwrap(), role);
    }

    #[test]
    fn sign_csr_refuses_a_tampered_csr() {
        let fleet = Fleet::new();
        let csr = generate_csr(&Role::Agent("web1".into())).unwrap();
        let tampered = tamper_csr(&csr.csr_pem);
        let err = fleet
            .ca
            .sign_csr(&tampered, &Role::Agent("web1".into()), &[], DAY)
            .unwrap_err();
        assert!(matches!(err, TlsError::CsrSignature), "{err}");
    }

    #[test]
    fn sign_csr_refuses_more_than_16_kib() {
        let fleet = Fleet::new();
        let csr = generate_csr(&Role::Agent("web1".into())).unwrap();
        // A valid CSR padded with comment lines past the limit.
        let padded = format!("{}{}", "# padding\n".repeat(1700), csr.csr_pem);
        let err = fleet
            .ca
            .sign_csr(&padded, &Role::Agent("web1".into()), &[], DAY)
            .unwrap_err();
        assert!(
            matches!(err, TlsError::CsrTooLarge { limit: 16_384, .. }),
            "{err}"
        );
    }

    #[test]
    fn ca_round_trips_through_pem_and_still_issues_verifiable_certs() {
        let original = CertificateAuthority::generate("round trip CA").unwrap();
        let reloaded =
            CertificateAuthority::from_pem(original.cert_pem(), &original.key_pem()).unwrap();
        assert_eq!(reloaded.fingerprint(), original.fingerprint());
        assert_eq!(reloaded.cert_der(), original.cert_der());
        assert_eq!(reloaded.cert_pem(), original.cert_pem());
        // Text around the PEM block is dropped.
        let noisy = format!("# fleet CA\n{}\n\n", original.cert_pem());
        let reloaded = CertificateAuthority::from_pem(&noisy, &original.key_pem()).unwrap();
        assert_eq!(reloaded.cert_pem(), original.cert_pem());

        let issued = reloaded.issue(&Role::Collector, &[], DAY).unwrap();
        let leaf = super::super::parse_certs(&issued.cert_pem)
            .unwrap()
            .remove(0);
        let bundle = super::super::CaBundle::from_pem(original.cert_pem()).unwrap();
        let parsed = rustls::server::ParsedCertificate::try_from(&leaf).unwrap();
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &bundle.roots(),
            &[],
            rustls_pki_types::UnixTime::now(),
            super::super::provider()
                .signature_verification_algorithms
                .all,
        )
        .unwrap();
    }

    #[test]
    fn from_pem_refuses_mismatched_or_non_ca_input() {
        let a = CertificateAuthority::generate("a").unwrap();
        let b = CertificateAuthority::generate("b").unwrap();
        assert!(matches!(
            CertificateAuthority::from_pem(a.cert_pem(), &b.key_pem()).unwrap_err(),
            TlsError::KeyMismatch { .. }
        ));
        let leaf = a.issue(&Role::Collector, &[], DAY).unwrap();
        assert!(matches!(
            CertificateAuthority::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap_err(),
            TlsError::NotCa { .. }
        ));
        assert!(matches!(
            CertificateAuthority::from_pem(a.cert_pem(), "").unwrap_err(),
            TlsError::NoPrivateKey { .. }
        ));
    }

    #[test]
    fn debug_output_never_shows_keys() {
        let ca = CertificateAuthority::generate("debug CA").unwrap();
        let shown = format!("{ca:?}");
        assert!(shown.contains("<redacted>"));
        assert_no_key_material(&shown, &ca.key_pem());
        let issued = ca.issue(&Role::Collector, &[], DAY).unwrap();
        let shown = format!("{issued:?}");
        assert!(shown.contains("<redacted>"));
        assert_no_key_material(&shown, &issued.key_pem);
    }
}
