//! Certificates seen by the `http` (https) and `tls` kinds: the rustls client configuration
//! they share, a verifier that records when the presented chain expires, and where trust
//! comes from.
//!
//! The [`RecordingVerifier`] wraps rustls' WebPKI verifier (or, with
//! `insecure_skip_verify`, accepts any chain, still checking the handshake signature). Before
//! verifying it notes the earliest `NotAfter` of the chain the server presented (leaf and
//! intermediates) in a [`ChainExpiry`] the prober reads after its request, so an expired
//! or untrusted certificate still reports its expiry. blackbox_exporter computes the same
//! value over its verified chains, which also hold the root; roots outlive the certificates
//! they sign by years, so the figure is the same in practice.
//!
//! Trust is `ca_file` (PEM) when set, else the system bundle (read once per agent start).
//! Leaves out: client certificates, revocation, certificate pinning.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::ProbeError;

/// Where the system's CA bundle is looked for (Debian/Ubuntu and Alpine, then Fedora/RHEL).
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// The earliest expiry of the last chain a probe's handshakes saw. A probe's runs never
/// overlap, so one slot per probe is enough.
#[derive(Debug, Default)]
pub struct ChainExpiry(Mutex<Option<SystemTime>>);

impl ChainExpiry {
    /// Forgets the previous run's chain.
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The earliest `NotAfter` of the last chain seen since [`Self::clear`].
    pub fn get(&self) -> Option<SystemTime> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, expiry: Option<SystemTime>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = expiry;
    }
}

/// The earliest `NotAfter` among `certs`; certificates that do not parse are skipped.
pub fn earliest_expiry<'a>(
    certs: impl IntoIterator<Item = &'a CertificateDer<'a>>,
) -> Option<SystemTime> {
    certs
        .into_iter()
        .filter_map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            let secs = cert.validity().not_after.timestamp();
            Some(match u64::try_from(secs) {
                Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
                Err(_) => UNIX_EPOCH,
            })
        })
        .min()
}

/// Seconds since the Unix epoch, as the series carry time.
pub fn unix_seconds(at: SystemTime) -> f64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// What a [`RecordingVerifier`] does after recording.
#[derive(Debug)]
enum Verify {
    /// Verify the chain and the name with WebPKI.
    WebPki(Arc<WebPkiServerVerifier>),
    /// `insecure_skip_verify`: accept any chain.
    Skip,
    /// No roots to verify with (an http:// probe on a host without a CA bundle, redirected
    /// to https): refuse every chain.
    Refuse,
}

/// Records the presented chain's expiry, then verifies it (or not).
#[derive(Debug)]
pub struct RecordingVerifier {
    verify: Verify,
    expiry: Arc<ChainExpiry>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.expiry.set(earliest_expiry(
            std::iter::once(end_entity).chain(intermediates),
        ));
        match &self.verify {
            Verify::WebPki(inner) => {
                inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            Verify::Skip => Ok(ServerCertVerified::assertion()),
            Verify::Refuse => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The system bundle, read at most once per [`super::build`].
#[derive(Debug, Default)]
pub struct RootsCache {
    system: Option<Arc<RootCertStore>>,
}

impl RootsCache {
    fn system(&mut self, probe: &str) -> Result<Arc<RootCertStore>, ProbeError> {
        if let Some(roots) = &self.system {
            return Ok(roots.clone());
        }
        let (path, pem) = SYSTEM_CA_BUNDLES
            .iter()
            .find_map(|p| {
                std::fs::read_to_string(p)
                    .ok()
                    .map(|pem| (PathBuf::from(p), pem))
            })
            .ok_or_else(|| ProbeError::NoSystemRoots {
                probe: probe.to_owned(),
            })?;
        let certs = muster_shared::tls::parse_certs(&pem).map_err(|e| ProbeError::CaFile {
            probe: probe.to_owned(),
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(ProbeError::CaFile {
                probe: probe.to_owned(),
                path,
                reason: "no usable certificate".to_owned(),
            });
        }
        let roots = Arc::new(roots);
        self.system = Some(roots.clone());
        Ok(roots)
    }
}

/// How a probe trusts the certificates it is shown.
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    /// Skip verification (still record the expiry).
    pub insecure_skip_verify: bool,
    /// Trust only these roots (PEM) instead of the system's.
    pub ca_file: Option<&'a Path>,
    /// Whether a missing system bundle is an error (https and tls targets) or means that
    /// every certificate is refused (http targets, which meet TLS only through a redirect).
    pub roots_required: bool,
}

/// A client config with a [`RecordingVerifier`] writing to `expiry`, for `probe`. No ALPN:
/// callers set what they speak.
///
/// # Errors
/// [`ProbeError::CaFile`], [`ProbeError::NoSystemRoots`], [`ProbeError::Setup`].
pub fn client_config(
    probe: &str,
    trust: Trust<'_>,
    roots: &mut RootsCache,
    expiry: Arc<ChainExpiry>,
) -> Result<rustls::ClientConfig, ProbeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let setup = |reason: String| ProbeError::Setup {
        probe: probe.to_owned(),
        reason,
    };
    let roots = match (trust.insecure_skip_verify, trust.ca_file) {
        (true, _) => None,
        (false, Some(path)) => Some(Arc::new(read_roots(probe, path)?)),
        (false, None) => match roots.system(probe) {
            Ok(roots) => Some(roots),
            Err(ProbeError::NoSystemRoots { .. }) if !trust.roots_required => None,
            Err(err) => return Err(err),
        },
    };
    let verify = match roots {
        _ if trust.insecure_skip_verify => Verify::Skip,
        Some(roots) => Verify::WebPki(
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| setup(e.to_string()))?,
        ),
        None => Verify::Refuse,
    };
    let verifier = RecordingVerifier {
        verify,
        expiry,
        provider: provider.clone(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

fn read_roots(probe: &str, path: &Path) -> Result<RootCertStore, ProbeError> {
    let err = |reason: String| ProbeError::CaFile {
        probe: probe.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let certs = muster_shared::tls::parse_certs(&pem).map_err(|e| err(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no certificate in the file".to_owned()));
    }
    Ok(roots)
}

/// Test certificates with chosen expiry dates (rcgen).
#[cfg(test)]
pub(crate) mod testkit {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::pem::PemObject;

    /// A CA and a leaf for `127.0.0.1` and `localhost` it signed, with the given expiry
    /// dates (year, month, day).
    pub struct TestChain {
        /// The CA certificate, PEM.
        pub ca_pem: String,
        /// Leaf then CA, PEM.
        pub chain_pem: String,
        /// The leaf's key, PEM.
        pub key_pem: String,
    }

    pub fn chain(ca_not_after: (i32, u8, u8), leaf_not_after: (i32, u8, u8)) -> TestChain {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // A name of its own: a verifier looks issuers up by name.
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("probe test CA {}", NEXT.fetch_add(1, Ordering::Relaxed)),
        );
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        ca_params.not_after = rcgen::date_time_ymd(ca_not_after.0, ca_not_after.1, ca_not_after.2);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        leaf_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf_params.not_after =
            rcgen::date_time_ymd(leaf_not_after.0, leaf_not_after.1, leaf_not_after.2);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        TestChain {
            ca_pem: ca_cert.pem(),
            chain_pem: format!("{}{}", leaf.pem(), ca_cert.pem()),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    /// Unix seconds of midnight UTC on a date.
    pub fn unix(date: (i32, u8, u8)) -> f64 {
        rcgen::date_time_ymd(date.0, date.1, date.2).unix_timestamp() as f64
    }

    /// A TLS server config presenting `chain`.
    pub fn server_config(chain: &TestChain) -> std::sync::Arc<rustls::ServerConfig> {
        let certs = muster_shared::tls::parse_certs(&chain.chain_pem).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(chain.key_pem.as_bytes()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        std::sync::Arc::new(config)
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::{chain, unix};
    use super::*;

    #[test]
    fn the_earliest_expiry_of_a_chain_is_its_soonest_not_after() {
        let c = chain((2031, 5, 1), (2030, 2, 3));
        let certs = muster_shared::tls::parse_certs(&c.chain_pem).unwrap();
        let earliest = earliest_expiry(&certs).unwrap();
        assert_eq!(unix_seconds(earliest), unix((2030, 2, 3)));
        // A CA expiring first counts too.
        let c = chain((2029, 1, 1), (2030, 2, 3));
        let certs = muster_shared::tls::parse_certs(&c.chain_pem).unwrap();
        assert_eq!(
            unix_seconds(earliest_expiry(&certs).unwrap()),
            unix((2029, 1, 1))
        );
        assert_eq!(
            earliest_expiry(&[CertificateDer::from(vec![1, 2, 3])]),
            None
        );
    }

    #[test]
    fn a_missing_or_empty_ca_file_names_the_probe_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        for path in [dir.path().join("absent.pem"), empty] {
            let trust = Trust {
                insecure_skip_verify: false,
                ca_file: Some(&path),
                roots_required: true,
            };
            let err = client_config("api", trust, &mut RootsCache::default(), Arc::default())
                .unwrap_err();
            let shown = err.to_string();
            assert!(
                shown.starts_with("probe \"api\": cannot use ca_file"),
                "{shown}"
            );
            assert!(shown.contains(&path.display().to_string()), "{shown}");
        }
    }
}
