//! Probes: is a service this host depends on up, seen from this host?
//!
//! Each `[[probe]]` of `agent.toml` is one probe of one kind, named after blackbox_exporter's
//! probers where one exists: [`http`] (method, headers, body, accepted status codes, body
//! pattern, TLS verification, redirects), [`tcp`] (connect, optional send/expect), [`exec`]
//! (a command), [`docker`] (a container's state and health) and [`tls`] (the certificate
//! chain of `host:port`). A probe runs on its own interval with a timeout ([`runner`]); its
//! [`condition`]s are checked against what the run saw; Kubernetes' success and failure
//! thresholds turn runs into a healthy/unhealthy state ([`health`]). Every run is written to
//! the buffer as its own small round, timestamped with the run's start, as
//! blackbox_exporter's series (`probe_success`, `probe_duration_seconds`, ...) labelled
//! `probe` (its name) and `target`, plus Muster's own ([`families`]); the same values are
//! shown on `/metrics` ([`board`]).
//!
//! **Probes never run what the collector sends.** Every probe, the `exec` kind's command and
//! arguments included, comes from `agent.toml` on this host; nothing in the agent's API
//! creates or changes one (DESIGN.md §5: a compromised collector must not own the fleet).
//!
//! The contract is blackbox_exporter's: a [`Prober`] records what it learns in an
//! [`Outcome`] as it goes and says nothing about success or time; the runner owns
//! `probe_success`, `probe_duration_seconds`, the deadline and the thresholds. A run cut
//! short by its timeout still reports what its prober had recorded.
//!
//! Leaves out: ICMP, DNS and gRPC probers, HTTP/2 and HTTP/3 to the target, client
//! certificates towards the target, proxies, and probes defined anywhere but `agent.toml`.

pub mod board;
pub mod certs;
pub mod condition;
pub mod config;
pub mod docker;
pub mod exec;
pub mod families;
pub mod health;
pub mod http;
pub mod report;
pub mod runner;
pub mod tcp;
#[cfg(test)]
mod testkit;
pub mod tls;

use std::borrow::Cow;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use condition::{Condition, Facts};
use config::{Kind, ProbeConfig};

use crate::sample::FamilySpec;

/// The longest failure reason kept, in characters: reasons become a label value.
pub const MAX_REASON_CHARS: usize = 120;

/// One kind of probe. Implementations record into `out` as they go (so a run the runner
/// cuts short at its deadline still tells what it had), fail it with a short, bounded
/// reason, and never retry: the next run is the retry.
pub trait Prober: Send + Sync + 'static {
    /// Takes one run. The runner bounds it with the probe's timeout by dropping the future,
    /// so an implementation must leave nothing behind when dropped at any await (the exec
    /// kind kills its process group).
    fn probe(&self, out: &mut Outcome) -> impl Future<Output = ()> + Send;
}

/// What one run learned: why it failed (if it did), the facts conditions read, and the
/// kind's own series (`probe_http_status_code`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    failure: Option<Cow<'static, str>>,
    /// What the conditions read.
    pub facts: Facts,
    series: Vec<(&'static FamilySpec<'static>, f64)>,
}

impl Outcome {
    /// Sets the kind's series `family` (labelled like every probe series) to `value`,
    /// replacing an earlier value in this run.
    pub fn set(&mut self, family: &'static FamilySpec<'static>, value: f64) {
        match self.series.iter_mut().find(|(f, _)| f.name == family.name) {
            Some(entry) => entry.1 = value,
            None => self.series.push((family, value)),
        }
    }

    /// Fails the run with `reason` unless it already failed (the first reason is the one
    /// that explains). Reasons are cut to [`MAX_REASON_CHARS`]; keep them to a bounded set
    /// ("connection refused", "status 503"): each distinct one is a series.
    pub fn fail(&mut self, reason: impl Into<Cow<'static, str>>) {
        if self.failure.is_none() {
            let mut reason = reason.into();
            if let Some((cut, _)) = reason.char_indices().nth(MAX_REASON_CHARS) {
                reason.to_mut().truncate(cut);
            }
            self.failure = Some(reason);
        }
    }

    /// Replaces whatever failure was recorded (the runner's timeout wins over a prober's
    /// partial reason).
    pub fn fail_instead(&mut self, reason: &'static str) {
        self.failure = Some(Cow::Borrowed(reason));
    }

    /// Why the run failed; `None` when the prober's own checks passed.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The kind's series and their values, in the order first set.
    pub fn series(&self) -> &[(&'static FamilySpec<'static>, f64)] {
        &self.series
    }

    /// The value of the kind's series `name`, if set.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.series
            .iter()
            .find(|(f, _)| f.name == name)
            .map(|(_, v)| *v)
    }
}

/// Every kind's prober, one variant each: the explicit list of kinds.
#[derive(Debug)]
pub enum ProberKind {
    /// `kind = "http"`.
    Http(http::HttpProber),
    /// `kind = "tcp"`.
    Tcp(tcp::TcpProber),
    /// `kind = "exec"`.
    Exec(exec::ExecProber),
    /// `kind = "docker"`.
    Docker(docker::DockerProber),
    /// `kind = "tls"`.
    Tls(tls::TlsProber),
}

impl Prober for ProberKind {
    async fn probe(&self, out: &mut Outcome) {
        match self {
            Self::Http(p) => p.probe(out).await,
            Self::Tcp(p) => p.probe(out).await,
            Self::Exec(p) => p.probe(out).await,
            Self::Docker(p) => p.probe(out).await,
            Self::Tls(p) => p.probe(out).await,
        }
    }
}

/// When a probe runs and how its runs become a state (Kubernetes' probe fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time between the starts of two runs.
    pub interval: Duration,
    /// How long a run may take before it fails with "timeout".
    pub timeout: Duration,
    /// Wait before the first run.
    pub initial_delay: Duration,
    /// Consecutive successes that make an unhealthy probe healthy again.
    pub success_threshold: u32,
    /// Consecutive failures that make a healthy probe unhealthy.
    pub failure_threshold: u32,
}

/// A probe ready to run: its identity, timing, conditions and prober.
#[derive(Debug)]
pub struct Probe<P = ProberKind> {
    /// The `probe` label.
    pub name: String,
    /// The `target` label.
    pub target: String,
    /// When it runs.
    pub timing: Timing,
    /// All must hold for a run to succeed.
    pub conditions: Vec<Condition>,
    /// The kind's prober.
    pub prober: P,
}

/// Why the probes could not be set up (at agent start; the config already passed
/// validation, so these are about files and the TLS stack).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// A `ca_file` could not be read or holds no usable certificate.
    #[error("probe {probe:?}: cannot use ca_file {path}: {reason}")]
    CaFile {
        /// The probe's name.
        probe: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No system CA bundle was found for a probe that verifies certificates.
    #[error(
        "probe {probe:?}: no system CA bundle found (looked in {}); set ca_file or insecure_skip_verify",
        certs::SYSTEM_CA_BUNDLES.join(", ")
    )]
    NoSystemRoots {
        /// The probe's name.
        probe: String,
    },
    /// The probe's settings were refused when building its client (not expected after
    /// validation).
    #[error("probe {probe:?}: {reason}")]
    Setup {
        /// The probe's name.
        probe: String,
        /// What was refused.
        reason: String,
    },
}

/// Builds every configured probe. `docker_socket` is the engine socket the `docker` kind
/// talks to (`[sample.paths] docker_socket`). Reads `ca_file`s and, for https and tls probes
/// that verify without one, the system CA bundle (once).
///
/// # Errors
/// A [`ProbeError`] naming the probe.
pub fn build(configs: &[ProbeConfig], docker_socket: &Path) -> Result<Vec<Probe>, ProbeError> {
    let mut roots = certs::RootsCache::default();
    configs
        .iter()
        .map(|config| {
            let prober = match config.kind {
                Kind::Http => ProberKind::Http(http::HttpProber::new(config, &mut roots)?),
                Kind::Tcp => ProberKind::Tcp(tcp::TcpProber::new(config)?),
                Kind::Exec => ProberKind::Exec(exec::ExecProber::new(config)),
                Kind::Docker => {
                    ProberKind::Docker(docker::DockerProber::new(docker_socket, &config.target))
                }
                Kind::Tls => ProberKind::Tls(tls::TlsProber::new(config, &mut roots)?),
            };
            Ok(Probe {
                name: config.name.clone(),
                target: config.target.clone(),
                timing: config.timing(),
                conditions: config.conditions.clone(),
                prober,
            })
        })
        .collect()
}

/// A short, bounded reason for a failed connection or request, from the first error in
/// `err`'s chain that says something specific (an I/O error kind, a TLS error), else `fallback`.
pub fn reason_of(
    err: &(dyn std::error::Error + 'static),
    fallback: &'static str,
) -> Cow<'static, str> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return tls_reason(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(reason) = io_reason(io.kind()) {
                return Cow::Borrowed(reason);
            }
            // An I/O error's `source` skips the error it wraps (a TLS error, another I/O
            // error); look at that one.
            if let Some(inner) = io.get_ref() {
                current = Some(inner);
                continue;
            }
        }
        if e.to_string().starts_with("dns error") {
            return Cow::Borrowed("dns lookup failed");
        }
        current = e.source();
    }
    Cow::Borrowed(fallback)
}

/// The reason for an I/O error kind that names a network condition.
pub fn io_reason(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::TimedOut => "timeout",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::AddrNotAvailable => "address not available",
        K::UnexpectedEof => "connection closed early",
        K::BrokenPipe => "connection closed early",
        _ => return None,
    })
}

/// The reason for a TLS failure: which certificate problem, or the alert the peer sent.
fn tls_reason(err: &rustls::Error) -> Cow<'static, str> {
    use rustls::CertificateError as C;
    Cow::Borrowed(match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::Expired | C::ExpiredContext { .. } => "tls: certificate expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "tls: certificate not yet valid",
            C::UnknownIssuer => "tls: certificate signed by an unknown authority",
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "tls: certificate not valid for the name"
            }
            C::Revoked => "tls: certificate revoked",
            C::BadSignature => "tls: bad certificate signature",
            _ => "tls: invalid certificate",
        },
        rustls::Error::AlertReceived(_) => "tls: the server refused the handshake",
        _ => "tls: handshake failed",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Kind as SeriesKind;

    const A: FamilySpec<'static> = FamilySpec {
        name: "a",
        help: "A.",
        kind: SeriesKind::Gauge,
        labels: &[],
    };

    #[test]
    fn the_first_failure_explains_and_reasons_are_bounded() {
        let mut out = Outcome::default();
        assert_eq!(out.failure(), None);
        out.fail("connection refused");
        out.fail("status 503");
        assert_eq!(out.failure(), Some("connection refused"));
        out.fail_instead("timeout");
        assert_eq!(out.failure(), Some("timeout"));

        let mut long = Outcome::default();
        long.fail("é".repeat(500));
        assert_eq!(
            long.failure().map(|r| r.chars().count()),
            Some(MAX_REASON_CHARS)
        );
    }

    #[test]
    fn series_are_set_once_and_replaced() {
        let mut out = Outcome::default();
        out.set(&A, 1.0);
        out.set(&A, 2.0);
        assert_eq!(out.series().len(), 1);
        assert_eq!(out.value("a"), Some(2.0));
    }

    #[test]
    fn reasons_come_from_the_error_chain() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(reason_of(&refused, "x"), "connection refused");
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        assert_eq!(reason_of(&tls, "x"), "tls: certificate expired");
        let nested = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert_eq!(
            reason_of(&nested, "x"),
            "tls: certificate signed by an unknown authority"
        );
        let other = std::io::Error::other("something odd");
        assert_eq!(reason_of(&other, "request failed"), "request failed");
    }
}
