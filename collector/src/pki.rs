//! The fleet CA and the collector's own certificate, as files.
//!
//! `ca init` creates both once; `serve` loads them. The CA key is read only to
//! sign enrollments. The collector's certificate serves the API (when TLS is
//! on) and is the client certificate the agents accept (role `collector`).

use std::path::Path;
use std::time::Duration;

use muster_shared::files::{WriteError, write_private};
use muster_shared::tls::{CertificateAuthority, Fingerprint, Identity, Role, TlsError};

use crate::config::PkiPaths;

/// Lifetime of the collector's own certificate.
const COLLECTOR_CERT_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);

/// Why the PKI could not be created or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// `ca init` found an existing CA and will not replace it.
    #[error(
        "{path} already exists; the fleet CA is created once (remove it by hand to start a new fleet)"
    )]
    Exists {
        /// The existing file.
        path: std::path::PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}; run `muster-collector ca init` first")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Certificate handling failed.
    #[error("{what}: {source}")]
    Tls {
        /// What was being done.
        what: String,
        /// The cause.
        source: TlsError,
    },
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The loaded PKI.
#[derive(Debug)]
pub struct Pki {
    /// The fleet CA, able to sign.
    pub ca: CertificateAuthority,
    /// The CA certificate (PEM), handed to agents at enrollment.
    pub ca_pem: String,
    /// The collector's certificate (PEM).
    pub cert_pem: String,
    /// The collector's key (PEM). Never logged.
    key_pem: String,
}

impl Pki {
    /// Loads the CA and the collector's certificate from `paths`.
    ///
    /// # Errors
    /// [`PkiError::Read`] with a hint to run `ca init`, or [`PkiError::Tls`].
    pub fn load(paths: &PkiPaths) -> Result<Self, PkiError> {
        let ca_pem = read(&paths.ca_cert)?;
        let ca_key = read(&paths.ca_key)?;
        let cert_pem = read(&paths.cert)?;
        let key_pem = read(&paths.key)?;
        let ca =
            CertificateAuthority::from_pem(&ca_pem, &ca_key).map_err(|source| PkiError::Tls {
                what: format!("cannot load the fleet CA from {}", paths.ca_cert.display()),
                source,
            })?;
        let pki = Self {
            ca,
            ca_pem,
            cert_pem,
            key_pem,
        };
        let identity = pki.identity()?;
        match identity.role() {
            Ok(Role::Collector) => Ok(pki),
            Ok(other) => Err(PkiError::Tls {
                what: format!(
                    "{} is for role `{other}`, not the collector",
                    paths.cert.display()
                ),
                source: TlsError::InvalidRole {
                    value: other.to_string(),
                },
            }),
            Err(source) => Err(PkiError::Tls {
                what: format!("{} has no role", paths.cert.display()),
                source,
            }),
        }
    }

    /// The collector's identity, for a TLS server or client config.
    ///
    /// # Errors
    /// [`PkiError::Tls`] if the PEM files do not parse.
    pub fn identity(&self) -> Result<Identity, PkiError> {
        Identity::from_pem(&self.cert_pem, &self.key_pem).map_err(|source| PkiError::Tls {
            what: "cannot load the collector certificate".to_owned(),
            source,
        })
    }

    /// The collector's key (PEM), for building TLS clients. Never log it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA's fingerprint, carried in enrollment tokens.
    pub fn ca_fingerprint(&self) -> Fingerprint {
        self.ca.fingerprint()
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Creates the fleet CA and the collector's certificate. Refuses to replace
/// an existing CA. `sans` are extra names/IPs for the collector certificate;
/// the host name, `localhost`, 127.0.0.1 and ::1 are always included.
///
/// # Errors
/// [`PkiError::Exists`] when a CA is there; nothing is written on any error.
pub fn init(paths: &PkiPaths, sans: &[String]) -> Result<Fingerprint, PkiError> {
    for path in [&paths.ca_cert, &paths.ca_key] {
        if path.exists() {
            return Err(PkiError::Exists { path: path.clone() });
        }
    }
    let ca = CertificateAuthority::generate("Muster fleet CA").map_err(|source| PkiError::Tls {
        what: "cannot create the fleet CA".to_owned(),
        source,
    })?;
    let mut names = vec![
        local_hostname(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(sans.iter().cloned());
    names.dedup();
    let issued = ca
        .issue(&Role::Collector, &names, COLLECTOR_CERT_VALIDITY)
        .map_err(|source| PkiError::Tls {
            what: "cannot issue the collector certificate".to_owned(),
            source,
        })?;
    // Key files first; the CA certificate last, since its presence is what
    // marks the PKI as created.
    write_private(&paths.ca_key, ca.key_pem().as_bytes())?;
    write_private(&paths.key, issued.key_pem.as_bytes())?;
    write_private(&paths.cert, issued.cert_pem.as_bytes())?;
    write_private(&paths.ca_cert, ca.cert_pem().as_bytes())?;
    Ok(ca.fingerprint())
}

/// This machine's host name, or `localhost`.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| Role::parse(&format!("agent:{h}")).is_ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_load_round_trips_and_refuses_a_second_init() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::under(dir.path());
        let fp = init(&paths, &["collector.example".to_owned()]).unwrap();
        let pki = Pki::load(&paths).unwrap();
        assert_eq!(pki.ca_fingerprint(), fp);
        assert!(matches!(init(&paths, &[]), Err(PkiError::Exists { .. })));
    }

    #[test]
    fn load_without_init_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let err = Pki::load(&PkiPaths::under(dir.path())).unwrap_err();
        assert!(
            err.to_string()
                .contains("run `muster-collector ca init` first"),
            "{err}"
        );
    }
}
