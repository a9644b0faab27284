//! Enrollment CSRs, which arrive from hosts that hold only a one-time token:
//! `CertificateAuthority::sign_csr` on arbitrary input.
//!
//! Each input is tried twice: as the PEM text an enrollment request carries (when it is
//! UTF-8), and as the DER inside a `CERTIFICATE REQUEST` PEM block the target writes, so the
//! fuzzer reaches the DER parser and the signature check without having to produce base64.
//!
//! Properties, beyond "never panics":
//! - a signed certificate is exactly one certificate, issued by the fleet CA and verifying
//!   with its key, carrying the role the collector chose (`agent:web1`), whatever the CSR asked
//!   for;
//! - it certifies the CSR's public key (checked where the target knows the CSR's DER).

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use muster_shared::tls::{CertificateAuthority, Role, parse_certs, role_of_cert};
use x509_parser::prelude::{FromDer, X509Certificate};

const VALIDITY: Duration = Duration::from_secs(3600);

/// One CA for the whole run: generating a key per input would dominate the time.
fn ca() -> &'static CertificateAuthority {
    static CA: OnceLock<CertificateAuthority> = OnceLock::new();
    CA.get_or_init(|| CertificateAuthority::generate("Muster fuzz CA").expect("a CA generates"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_sign(text, None);
    }
    check_sign(&pem_wrap(data), Some(data));
});

fn check_sign(csr_pem: &str, csr_der: Option<&[u8]>) {
    let role = Role::Agent("web1".into());
    let Ok(cert_pem) = ca().sign_csr(csr_pem, &role, &[], VALIDITY) else {
        return;
    };
    let certs = parse_certs(&cert_pem).expect("a signed certificate parses");
    assert_eq!(certs.len(), 1, "{cert_pem}");
    assert_eq!(role_of_cert(&certs[0]).expect("it has a role"), role);

    let (_, cert) = X509Certificate::from_der(&certs[0]).expect("a signed certificate is X.509");
    let (_, ca_cert) = X509Certificate::from_der(ca().cert_der()).expect("the CA is X.509");
    assert_eq!(cert.issuer(), ca_cert.subject());
    cert.verify_signature(Some(ca_cert.public_key()))
        .expect("the certificate verifies with the CA's key");

    if let Some(der) = csr_der {
        let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(der)
            .expect("a CSR that was signed parses");
        assert_eq!(
            cert.public_key().raw,
            csr.certification_request_info.subject_pki.raw,
            "the certificate is for another key than the CSR's"
        );
    }
}

/// `der` as one `CERTIFICATE REQUEST` PEM block, 64 base64 characters per line.
fn pem_wrap(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                b64.push(b'=');
            }
        }
    }
    let mut pem = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
    for line in b64.chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE REQUEST-----\n");
    pem
}
