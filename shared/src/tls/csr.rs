//! Certificate signing requests: the agent's half of enrollment, and the checks the collector
//! runs on what arrives.
//!
//! The agent makes its key pair and CSR locally ([`generate_csr`]); only the CSR travels, so the
//! private key never leaves the host. The collector trusts exactly one thing in a CSR, the
//! public key, and only after the CSR's self-signature verifies with it (proof that the sender
//! holds the private key). Subject, SANs and requested extensions are never read: the collector
//! decides the identity from the enrollment token (research/deploy-tls-systemd-reference.md §4,
//! Puppet's autosign problem). Parsing is x509-parser's `X509CertificationRequest` rather than
//! rcgen's `CertificateSigningRequestParams::from_pem`, because the latter rejects CSRs carrying
//! any extension it does not model, and we want to ignore those, not fail on them.

use std::fmt;

use rcgen::{CertificateParams, KeyPair, PublicKeyData, SubjectPublicKeyInfo};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::FromDer;

use super::{Role, TlsError, leaf};

/// The largest CSR PEM [`super::CertificateAuthority::sign_csr`] accepts, in bytes. A P-256
/// CSR is under 1 KiB; the limit keeps a hostile enrollment request from costing much.
pub const MAX_CSR_PEM_BYTES: usize = 16 * 1024;

/// A CSR and the private key it was made with, both PEM.
///
/// `Debug` prints the CSR and `<redacted>` for the key.
#[derive(Clone)]
pub struct CsrWithKey {
    /// The `CERTIFICATE REQUEST` PEM to send to the collector.
    pub csr_pem: String,
    /// The PKCS#8 `PRIVATE KEY` PEM. Secret: store it with mode 0600 and never send it.
    pub key_pem: String,
}

impl fmt::Debug for CsrWithKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrWithKey")
            .field("csr_pem", &self.csr_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Makes a fresh ECDSA P-256 key pair and a CSR for `role`, signed with it.
///
/// The CSR's subject is the role and its SAN the role's natural name, for the operator's
/// benefit; the collector ignores both. CPU-bound (a key generation): call it from
/// `spawn_blocking` in async code.
///
/// # Errors
/// [`TlsError::InvalidRole`] for an agent role with an invalid host; [`TlsError::Rcgen`] if key
/// generation or signing fails.
pub fn generate_csr(role: &Role) -> Result<CsrWithKey, TlsError> {
    role.validate()?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| {
        TlsError::Rcgen {
            what: "generate a key pair",
            source,
        }
    })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = leaf::common_name(&role.to_string());
    params.subject_alt_names = leaf::subject_alt_names(role, &[])?;
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|source| TlsError::Rcgen {
            what: "sign the CSR",
            source,
        })?;
    Ok(CsrWithKey {
        csr_pem: csr,
        key_pem: key.serialize_pem(),
    })
}

/// The public key of a CSR whose self-signature verifies, and which is ECDSA P-256.
///
/// # Errors
/// [`TlsError::CsrTooLarge`], [`TlsError::CsrParse`], [`TlsError::CsrSignature`],
/// [`TlsError::CsrKeyAlgorithm`].
pub(super) fn verified_public_key(csr_pem: &str) -> Result<SubjectPublicKeyInfo, TlsError> {
    if csr_pem.len() > MAX_CSR_PEM_BYTES {
        return Err(TlsError::CsrTooLarge {
            len: csr_pem.len(),
            limit: MAX_CSR_PEM_BYTES,
        });
    }
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).map_err(|err| {
        TlsError::CsrParse {
            reason: format!("no usable CERTIFICATE REQUEST PEM block: {err}"),
        }
    })?;
    let (rest, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|err| TlsError::CsrParse {
                reason: err.to_string(),
            })?;
    if !rest.is_empty() {
        return Err(TlsError::CsrParse {
            reason: format!("{} trailing bytes after the request", rest.len()),
        });
    }
    csr.verify_signature().map_err(|_| TlsError::CsrSignature)?;
    let spki = SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
        .map_err(|_| TlsError::CsrKeyAlgorithm)?;
    // An uncompressed P-256 point: 0x04, then 32 bytes of x and 32 of y.
    let point = spki.der_bytes();
    if spki.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256
        || point.len() != 65
        || point.first() != Some(&0x04)
    {
        return Err(TlsError::CsrKeyAlgorithm);
    }
    Ok(spki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_csr_verifies_and_carries_the_keys_public_half() {
        let csr = generate_csr(&Role::Agent("web1".into())).unwrap();
        let spki = verified_public_key(&csr.csr_pem).unwrap();
        let key = KeyPair::from_pem(&csr.key_pem).unwrap();
        assert_eq!(spki.der_bytes(), key.der_bytes());
    }

    #[test]
    fn refuses_oversized_and_garbage_csrs() {
        let big = "A".repeat(MAX_CSR_PEM_BYTES + 1);
        assert!(matches!(
            verified_public_key(&big).unwrap_err(),
            TlsError::CsrTooLarge { len, limit: MAX_CSR_PEM_BYTES } if len == MAX_CSR_PEM_BYTES + 1
        ));
        assert!(matches!(
            verified_public_key("hello").unwrap_err(),
            TlsError::CsrParse { .. }
        ));
        let not_der =
            "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n-----END CERTIFICATE REQUEST-----\n";
        assert!(matches!(
            verified_public_key(not_der).unwrap_err(),
            TlsError::CsrParse { .. }
        ));
    }

    #[test]
    fn refuses_a_csr_for_a_non_p256_key() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        assert!(matches!(
            verified_public_key(&csr).unwrap_err(),
            TlsError::CsrKeyAlgorithm
        ));
    }

    #[test]
    fn csr_debug_redacts_the_key() {
        let csr = generate_csr(&Role::Collector).unwrap();
        let shown = format!("{csr:?}");
        assert!(shown.contains("<redacted>"));
        super::super::testkit::assert_no_key_material(&shown, &csr.key_pem);
    }
}
