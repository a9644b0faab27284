//! Test fixtures shared by the `tls` unit tests: a throwaway fleet CA, issued identities, CSR
//! tampering and a check that no key material leaked into a string.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateSigningRequestDer, PrivateKeyDer};

use super::{CertificateAuthority, Identity, IssuedCert, Role, TlsError};

/// One day, the validity of every test leaf.
pub(super) const DAY: Duration = Duration::from_secs(86_400);

/// A throwaway fleet: one CA.
pub(super) struct Fleet {
    pub(super) ca: CertificateAuthority,
}

impl Fleet {
    /// A fleet whose CA has a name no other test fleet has.
    pub(super) fn new() -> Fleet {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Fleet::named(&format!(
            "Muster test CA {}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// A fleet whose CA is called `name`.
    pub(super) fn named(name: &str) -> Fleet {
        Fleet {
            ca: CertificateAuthority::generate(name).unwrap(),
        }
    }

    /// A leaf for `role` valid one day, with `127.0.0.1` as an extra SAN.
    pub(super) fn issue(&self, role: &Role) -> IssuedCert {
        self.ca.issue(role, &["127.0.0.1".to_owned()], DAY).unwrap()
    }

    /// An [`Identity`] for `role`.
    pub(super) fn identity(&self, role: &Role) -> Identity {
        let issued = self.issue(role);
        Identity::from_pem(&issued.cert_pem, &issued.key_pem).unwrap()
    }

    /// The CA certificate PEM.
    pub(super) fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }
}

/// The [`TlsError`] inside a certificate rejection, if it is one of ours.
pub(super) fn our_error(err: &rustls::Error) -> Option<&TlsError> {
    TlsError::peer_rejection(err)
}

/// Fails when `shown` holds a line of `key_pem`'s base64 body or the hex of its private
/// scalar (for the ECDSA P-256 PKCS#8 keys this module makes).
pub(super) fn assert_no_key_material(shown: &str, key_pem: &str) {
    for line in key_pem.lines().filter(|line| !line.starts_with("-----")) {
        assert!(
            !shown.contains(line),
            "key line {line:?} leaked into {shown:?}"
        );
    }
    let der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let der = der.secret_der();
    // ECPrivateKey: version INTEGER 1, then privateKey OCTET STRING of 32 bytes.
    let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
    let at = der
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("an ECDSA P-256 PKCS#8 key")
        + marker.len();
    let scalar = hex::encode(&der[at..at + 32]);
    assert!(
        !shown.to_lowercase().contains(&scalar),
        "private scalar leaked into {shown:?}"
    );
}

/// Re-encodes `csr_pem` with one byte of the signed part changed: the last character of the
/// subject's Common Name (`agent:web1` becomes `agent:web2`), so the structure still parses but
/// the signature no longer matches.
pub(super) fn tamper_csr(csr_pem: &str) -> String {
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).unwrap();
    let mut bytes = der.as_ref().to_vec();
    let at = bytes
        .windows(10)
        .position(|w| w == b"agent:web1")
        .expect("the CSR names agent:web1");
    bytes[at + 9] = b'2';
    super::identity::pem_encode("CERTIFICATE REQUEST", &bytes)
}

/// Parses a leaf PEM and hands its x509-parser view to `check`.
pub(super) fn inspect(
    cert_pem: &str,
    check: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>),
) {
    let der = super::parse_certs(cert_pem).unwrap().remove(0);
    let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
    check(&x509);
}

pub(super) fn sans_of(x509: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let san = x509.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => format!("dns:{dns}"),
            x509_parser::extensions::GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
            other => format!("other:{other:?}"),
        })
        .collect()
}
