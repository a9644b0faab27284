//! Loading certificates and keys from PEM: a host's own [`Identity`] and the fleet [`CaBundle`].
//!
//! `parse_*`/`from_pem` are pure functions of the PEM text; `load*` read files first, and their
//! errors name the path. Key material never reaches an error or a `Debug` output: key decoding
//! errors carry only where the key came from.
//!
//! Parsing uses `rustls_pki_types::pem::PemObject`; key/certificate consistency is checked the
//! way rustls checks it (`CertifiedKey::keys_match`): the key's SubjectPublicKeyInfo, as the ring
//! provider derives it, must equal the one in the leaf certificate.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::server::ParsedCertificate;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, SubjectPublicKeyInfoDer};

use super::role::role_of_x509;
use super::{Fingerprint, Role, TlsError};

/// Parses every `CERTIFICATE` block in `pem`, in order (leaf first for a chain).
///
/// # Errors
/// [`TlsError::CertificatePem`] for a malformed block, [`TlsError::NoCertificate`] when there is
/// none.
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certs_named(pem, "certificate PEM")
}

/// [`parse_certs`] with `what` (a path or a description) in the errors.
pub(super) fn parse_certs_named(
    pem: &str,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::CertificatePem {
            what: what.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// Parses the first private key (PKCS#8, SEC1 or PKCS#1) in `pem`.
pub(super) fn parse_private_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            what: what.to_owned(),
        },
        // The other PEM errors may quote the key's bytes: drop them.
        _ => TlsError::PrivateKey {
            what: what.to_owned(),
        },
    })
}

/// Encodes DER as PEM (RFC 7468: standard base64, 64-character lines).
pub(super) fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // The alphabet is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Reads a whole file as text, naming the path on failure.
pub(super) fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::ReadFile {
        path: path.to_owned(),
        source,
    })
}

/// The SubjectPublicKeyInfo of a private key, derived with the ring provider.
fn spki_of_key(
    key: PrivateKeyDer<'static>,
    what: &str,
) -> Result<SubjectPublicKeyInfoDer<'static>, TlsError> {
    let unusable = || TlsError::PrivateKey {
        what: what.to_owned(),
    };
    let signing_key = super::provider()
        .key_provider
        .load_private_key(key)
        .map_err(|_| unusable())?;
    signing_key
        .public_key()
        .map(SubjectPublicKeyInfoDer::into_owned)
        .ok_or_else(unusable)
}

/// Whether `cert`'s public key is the public half of `key`.
pub(super) fn leaf_matches_key(
    cert: &CertificateDer<'_>,
    key: PrivateKeyDer<'static>,
    what: &str,
) -> Result<bool, TlsError> {
    let parsed = ParsedCertificate::try_from(cert).map_err(|err| TlsError::CertificateParse {
        what: what.to_owned(),
        reason: err.to_string(),
    })?;
    Ok(spki_of_key(key, what)? == parsed.subject_public_key_info())
}

/// Whether the first certificate in `cert_pem` carries the public key of `key_pem`.
///
/// The agent calls this on the certificate the collector returns for its CSR, to make sure it
/// was issued for the key it holds before writing either to disk.
///
/// # Errors
/// When either PEM is unusable: [`TlsError::NoCertificate`], [`TlsError::CertificatePem`],
/// [`TlsError::CertificateParse`], [`TlsError::NoPrivateKey`], [`TlsError::PrivateKey`].
pub fn cert_matches_key(cert_pem: &str, key_pem: &str) -> Result<bool, TlsError> {
    let certs = parse_certs_named(cert_pem, "certificate PEM")?;
    let key = parse_private_key(key_pem, "private key PEM")?;
    // parse_certs_named never returns an empty list.
    let Some(leaf) = certs.first() else {
        return Ok(false);
    };
    leaf_matches_key(leaf, key, "certificate PEM")
}

/// Converts an X.509 time to a `SystemTime`.
fn system_time(time: x509_parser::time::ASN1Time) -> SystemTime {
    let secs = time.timestamp();
    let offset = Duration::from_secs(secs.unsigned_abs());
    let converted = if secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(offset)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(offset)
    };
    converted.unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A host's own certificate chain (leaf first) and its private key.
///
/// Construction checks that the leaf parses and carries the key's public key, so a config built
/// from an `Identity` never fails at the first handshake for that reason. `Debug` prints the
/// leaf's fingerprint and validity, never the key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Identity {
    /// Builds an identity from PEM text. `cert_pem` may hold a chain, leaf first; `key_pem` holds
    /// the leaf's private key (PKCS#8, SEC1 or PKCS#1).
    ///
    /// # Errors
    /// [`TlsError::NoCertificate`], [`TlsError::CertificatePem`], [`TlsError::CertificateParse`],
    /// [`TlsError::NoPrivateKey`], [`TlsError::PrivateKey`], or [`TlsError::KeyMismatch`] when
    /// the leaf was not issued for this key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Identity, TlsError> {
        Identity::from_pem_named(cert_pem, "certificate PEM", key_pem, "private key PEM")
    }

    /// Reads and builds an identity from two PEM files. Blocking file I/O: call it from
    /// `spawn_blocking` in async code.
    ///
    /// # Errors
    /// As [`Identity::from_pem`], plus [`TlsError::ReadFile`]; every error names the file.
    pub fn load(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Identity, TlsError> {
        let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
        let cert_pem = read_text(cert_path)?;
        let key_pem = read_text(key_path)?;
        Identity::from_pem_named(
            &cert_pem,
            &cert_path.display().to_string(),
            &key_pem,
            &key_path.display().to_string(),
        )
    }

    fn from_pem_named(
        cert_pem: &str,
        cert_what: &str,
        key_pem: &str,
        key_what: &str,
    ) -> Result<Identity, TlsError> {
        let chain = parse_certs_named(cert_pem, cert_what)?;
        let key = parse_private_key(key_pem, key_what)?;
        let Some(leaf) = chain.first() else {
            return Err(TlsError::NoCertificate {
                what: cert_what.to_owned(),
            });
        };
        let (_, x509) = x509_parser::parse_x509_certificate(leaf).map_err(|err| {
            TlsError::CertificateParse {
                what: cert_what.to_owned(),
                reason: err.to_string(),
            }
        })?;
        let validity = x509.validity();
        let (not_before, not_after) = (
            system_time(validity.not_before),
            system_time(validity.not_after),
        );
        if !leaf_matches_key(leaf, key.clone_key(), key_what)? {
            return Err(TlsError::KeyMismatch {
                what: format!("{cert_what} (key from {key_what})"),
            });
        }
        Ok(Identity {
            chain,
            key,
            not_before,
            not_after,
        })
    }

    /// The role in the leaf certificate.
    ///
    /// # Errors
    /// [`TlsError::NoRole`] when the leaf's Common Name is not a role.
    pub fn role(&self) -> Result<Role, TlsError> {
        let leaf = self.leaf();
        let (_, x509) = x509_parser::parse_x509_certificate(leaf).map_err(|err| {
            TlsError::CertificateParse {
                what: "the identity certificate".to_owned(),
                reason: err.to_string(),
            }
        })?;
        role_of_x509(&x509)
    }

    /// When the leaf certificate becomes valid.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// When the leaf certificate expires; rotation renews well before this.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The fingerprint of the leaf certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(self.leaf())
    }

    fn leaf(&self) -> &CertificateDer<'static> {
        // Construction refuses an empty chain.
        &self.chain[0]
    }

    /// The chain and key, for the config builders.
    pub(super) fn into_parts(self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (self.chain, self.key)
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            not_before: self.not_before,
            not_after: self.not_after,
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("leaf_fingerprint", &self.fingerprint())
            .field("chain_len", &self.chain.len())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The fleet CA certificate(s) a peer's chain must verify to.
///
/// Usually one certificate; during a CA rollover, old and new.
#[derive(Clone)]
pub struct CaBundle {
    certs: Vec<CertificateDer<'static>>,
    roots: Arc<RootCertStore>,
}

impl CaBundle {
    /// Parses one or more CA certificates from PEM.
    ///
    /// # Errors
    /// [`TlsError::NoCertificate`], [`TlsError::CertificatePem`], [`TlsError::CertificateParse`],
    /// or [`TlsError::NotCa`] when a certificate lacks the CA basic constraint (a leaf is never
    /// a trust anchor here).
    pub fn from_pem(pem: &str) -> Result<CaBundle, TlsError> {
        CaBundle::from_pem_named(pem, "CA PEM")
    }

    pub(super) fn from_pem_named(pem: &str, what: &str) -> Result<CaBundle, TlsError> {
        let certs = parse_certs_named(pem, what)?;
        let mut roots = RootCertStore::empty();
        for (index, cert) in certs.iter().enumerate() {
            let which = || format!("{what} (certificate {})", index + 1);
            let (_, x509) = x509_parser::parse_x509_certificate(cert).map_err(|err| {
                TlsError::CertificateParse {
                    what: which(),
                    reason: err.to_string(),
                }
            })?;
            if !x509.is_ca() {
                return Err(TlsError::NotCa { what: which() });
            }
            roots
                .add(cert.clone())
                .map_err(|err| TlsError::CertificateParse {
                    what: which(),
                    reason: err.to_string(),
                })?;
        }
        Ok(CaBundle {
            certs,
            roots: Arc::new(roots),
        })
    }

    /// The CA certificates, in file order.
    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// The trust anchors for rustls verifiers.
    pub fn roots(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.roots)
    }

    /// The fingerprint of each CA certificate, in file order.
    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        self.certs
            .iter()
            .map(|cert| Fingerprint::of_der(cert))
            .collect()
    }
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle")
            .field("fingerprints", &self.fingerprints())
            .finish()
    }
}

/// Reads the fleet CA bundle from a PEM file. Blocking file I/O.
///
/// # Errors
/// [`TlsError::ReadFile`], or those of [`CaBundle::from_pem`], naming the path.
pub fn load_ca(path: impl AsRef<Path>) -> Result<CaBundle, TlsError> {
    let path = path.as_ref();
    let pem = read_text(path)?;
    CaBundle::from_pem_named(&pem, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Fleet;
    use super::*;

    #[test]
    fn identity_loads_from_files_and_reports_role_and_validity() {
        let fleet = Fleet::new();
        let issued = fleet.issue(&Role::Agent("web1".into()));
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, &issued.cert_pem).unwrap();
        std::fs::write(&key_path, &issued.key_pem).unwrap();

        let identity = Identity::load(&cert_path, &key_path).unwrap();
        assert_eq!(identity.role().unwrap(), Role::Agent("web1".into()));
        let lifetime = identity
            .not_after()
            .duration_since(identity.not_before())
            .unwrap();
        // One day of validity plus the five minutes of backdating.
        assert_eq!(lifetime, Duration::from_secs(86_400 + 300));
        assert!(identity.not_after() > SystemTime::now());
    }

    #[test]
    fn load_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = Identity::load(&missing, &missing).unwrap_err();
        assert!(matches!(err, TlsError::ReadFile { ref path, .. } if *path == missing));
        assert!(err.to_string().contains("nope.pem"), "{err}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = load_ca(&empty).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }));
        assert!(err.to_string().contains("empty.pem"), "{err}");
    }

    #[test]
    fn identity_refuses_a_key_that_is_not_the_certs() {
        let fleet = Fleet::new();
        let a = fleet.issue(&Role::Agent("a".into()));
        let b = fleet.issue(&Role::Agent("b".into()));
        let err = Identity::from_pem(&a.cert_pem, &b.key_pem).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert!(!cert_matches_key(&a.cert_pem, &b.key_pem).unwrap());
        assert!(cert_matches_key(&a.cert_pem, &a.key_pem).unwrap());
    }

    #[test]
    fn pem_errors_are_specific() {
        assert!(matches!(
            parse_certs("no pem here").unwrap_err(),
            TlsError::NoCertificate { .. }
        ));
        let fleet = Fleet::new();
        let issued = fleet.issue(&Role::Collector);
        // A certificate where the key should be.
        let err = Identity::from_pem(&issued.cert_pem, &issued.cert_pem).unwrap_err();
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
        // A broken key block: the error must not echo it.
        let broken =
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw@@\n-----END PRIVATE KEY-----\n";
        let err = Identity::from_pem(&issued.cert_pem, broken).unwrap_err();
        assert!(matches!(err, TlsError::PrivateKey { .. }), "{err}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
    }

    #[test]
    fn ca_bundle_refuses_a_leaf_and_holds_every_ca() {
        let fleet = Fleet::new();
        let leaf = fleet.issue(&Role::Collector);
        let err = CaBundle::from_pem(&leaf.cert_pem).unwrap_err();
        assert!(matches!(err, TlsError::NotCa { .. }), "{err}");

        let other = Fleet::new();
        let both = format!("{}{}", fleet.ca.cert_pem(), other.ca.cert_pem());
        let bundle = CaBundle::from_pem(&both).unwrap();
        assert_eq!(bundle.certs().len(), 2);
        assert_eq!(bundle.roots().len(), 2);
        assert_eq!(
            bundle.fingerprints(),
            vec![fleet.ca.fingerprint(), other.ca.fingerprint()]
        );
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let fleet = Fleet::new();
        let issued = fleet.issue(&Role::Collector);
        let identity = Identity::from_pem(&issued.cert_pem, &issued.key_pem).unwrap();
        let shown = format!("{identity:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        super::super::testkit::assert_no_key_material(&shown, &issued.key_pem);
    }

    #[test]
    fn pem_encode_round_trips() {
        for len in 0..10 {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let pem = pem_encode("CERTIFICATE REQUEST", &der);
            let back =
                rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes());
            if len == 0 {
                continue;
            }
            assert_eq!(back.unwrap().as_ref(), &der[..]);
        }
    }
}
