//! The profile every leaf certificate gets, whether [`super::CertificateAuthority::issue`] makes
//! its key or [`super::CertificateAuthority::sign_csr`] takes it from a CSR.
//!
//! Subject CN = role; SANs: the caller's (IP if it parses as one, else DNS) plus a DNS SAN with
//! the role's natural name, so generic tools can verify; EKU serverAuth *and* clientAuth
//! (agents and the collector are each both servers and clients); key usage digitalSignature;
//! not a CA; a random 128-bit serial; valid from five minutes ago (clock skew between hosts,
//! research/deploy-tls-systemd-reference.md §4) until the requested validity from now.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use time::OffsetDateTime;

use super::{Role, TlsError};

/// How far `not_before` is backdated, so a peer whose clock runs a little behind still accepts
/// a fresh certificate.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// The longest DNS name in a SAN.
const MAX_DNS_NAME_LEN: usize = 253;

/// A fresh ECDSA P-256 key pair.
pub(super) fn generate_key() -> Result<KeyPair, TlsError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| TlsError::Rcgen {
        what: "generate a key pair",
        source,
    })
}

/// A subject holding only a UTF8String Common Name.
pub(super) fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, DnValue::Utf8String(name.to_owned()));
    dn
}

/// The SANs of a leaf for `role`: each of `sans` (IP if it parses as one, else DNS), then the
/// role's natural name as a DNS SAN unless already present.
pub(super) fn subject_alt_names(role: &Role, sans: &[String]) -> Result<Vec<SanType>, TlsError> {
    let natural = role.natural_name();
    let mut out = Vec::with_capacity(sans.len() + 1);
    let mut has_natural = false;
    for value in sans {
        if let Ok(ip) = value.parse::<IpAddr>() {
            out.push(SanType::IpAddress(ip));
            continue;
        }
        let valid = !value.is_empty()
            && value.len() <= MAX_DNS_NAME_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'));
        let name = valid
            .then(|| value.as_str().try_into().ok())
            .flatten()
            .ok_or_else(|| TlsError::InvalidSan {
                value: super::truncate_for_error(value),
            })?;
        has_natural |= value.eq_ignore_ascii_case(natural);
        out.push(SanType::DnsName(name));
    }
    if !has_natural {
        let name = natural.try_into().map_err(|_| TlsError::InvalidSan {
            value: natural.to_owned(),
        })?;
        out.push(SanType::DnsName(name));
    }
    Ok(out)
}

/// Everything a leaf certificate carries except its key.
pub(super) fn leaf_params(
    role: &Role,
    sans: &[String],
    validity: Duration,
) -> Result<CertificateParams, TlsError> {
    role.validate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(&role.to_string());
    params.subject_alt_names = subject_alt_names(role, sans)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    (params.not_before, params.not_after) = validity_window(validity)?;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// `(now - CLOCK_SKEW, now + validity)`.
pub(super) fn validity_window(
    validity: Duration,
) -> Result<(OffsetDateTime, OffsetDateTime), TlsError> {
    let invalid = || TlsError::InvalidValidity { validity };
    if validity.is_zero() {
        return Err(invalid());
    }
    let now = OffsetDateTime::now_utc();
    // Whole seconds: X.509 times have no fractions, and rounding keeps not_after - not_before
    // exact.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let span = time::Duration::try_from(validity).map_err(|_| invalid())?;
    let skew = time::Duration::try_from(CLOCK_SKEW).map_err(|_| invalid())?;
    let not_before = now.checked_sub(skew).ok_or_else(invalid)?;
    let not_after = now.checked_add(span).ok_or_else(invalid)?;
    Ok((not_before, not_after))
}

/// A random positive 128-bit serial (RFC 5280 §4.1.2.2 allows up to 20 octets). The top bit is
/// cleared so the DER INTEGER stays positive, the next one set so it always takes 16 octets.
pub(super) fn random_serial() -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TlsError::Rcgen {
            what: "draw a random serial number",
            source: rcgen::Error::RingUnspecified,
        })?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use super::super::CertificateAuthority;
    use super::super::role_of_cert;
    use super::super::testkit::{inspect, sans_of};
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn issued_leaf_carries_role_sans_ekus_and_validity() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let sans = vec![
            "10.0.0.5".to_owned(),
            "web1.example.org".to_owned(),
            "::1".to_owned(),
        ];
        let issued = ca.issue(&Role::Agent("web1".into()), &sans, DAY).unwrap();
        let der = super::super::parse_certs(&issued.cert_pem)
            .unwrap()
            .remove(0);
        assert_eq!(role_of_cert(&der).unwrap(), Role::Agent("web1".into()));
        inspect(&issued.cert_pem, |x509| {
            assert_eq!(
                sans_of(x509),
                [
                    "ip:[10, 0, 0, 5]",
                    "dns:web1.example.org",
                    "ip:[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]",
                    "dns:web1"
                ]
            );
            let eku = x509.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && eku.client_auth);
            assert!(!x509.is_ca());
            let validity = x509.validity();
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let before = validity.not_before.timestamp();
            let after = validity.not_after.timestamp();
            assert!(
                (now - 301..=now - 299).contains(&before),
                "{before} vs {now}"
            );
            assert_eq!(after - before, 86_400 + 300);
            // 16 random octets, positive.
            assert_eq!(x509.raw_serial().len(), 16);
        });
        // Two certificates never share a serial.
        let again = ca.issue(&Role::Agent("web1".into()), &sans, DAY).unwrap();
        inspect(&issued.cert_pem, |a| {
            inspect(&again.cert_pem, |b| {
                assert_ne!(a.raw_serial(), b.raw_serial())
            })
        });
    }

    #[test]
    fn natural_name_san_is_not_duplicated() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let issued = ca
            .issue(&Role::Collector, &["collector".to_owned()], DAY)
            .unwrap();
        inspect(&issued.cert_pem, |x509| {
            assert_eq!(sans_of(x509), ["dns:collector"])
        });
    }

    #[test]
    fn issue_rejects_bad_input() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let bad_role = Role::Agent("../etc".into());
        assert!(matches!(
            ca.issue(&bad_role, &[], DAY).unwrap_err(),
            TlsError::InvalidRole { .. }
        ));
        for san in ["", "a b", "évil", "x/y"] {
            assert!(matches!(
                ca.issue(&Role::Collector, &[san.to_owned()], DAY)
                    .unwrap_err(),
                TlsError::InvalidSan { .. }
            ));
        }
        assert!(matches!(
            ca.issue(&Role::Collector, &[], Duration::ZERO).unwrap_err(),
            TlsError::InvalidValidity { .. }
        ));
        assert!(matches!(
            ca.issue(&Role::Collector, &[], Duration::from_secs(u64::MAX))
                .unwrap_err(),
            TlsError::InvalidValidity { .. }
        ));
    }
}
