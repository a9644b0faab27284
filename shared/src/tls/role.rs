//! Roles: who a certificate says its holder is, and which roles a listener or a caller accepts.
//!
//! The role is the whole subject Common Name of a fleet certificate: `collector`, or
//! `agent:<host>` with host `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`. The collector writes it when it
//! signs (from the enrollment token, never from the CSR), so after the chain verifies to the fleet
//! CA the role is trustworthy. SANs are not used for identity: they hold whatever names generic
//! tools dial, and they change when hosts move.
//!
//! Roles compare exactly, case included: `agent:Web1` and `agent:web1` are different hosts.
//! Certificates with zero or several Common Names carry no role (several would make the
//! identity depend on which one a reader picks).

use std::fmt;
use std::str::FromStr;

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;

use super::TlsError;

/// The Common Name of the collector's certificate.
const COLLECTOR: &str = "collector";
/// The prefix of an agent's Common Name; the host follows.
const AGENT_PREFIX: &str = "agent:";
/// The longest host name a role may carry.
const MAX_HOST_LEN: usize = 63;

/// Who the holder of a fleet certificate is.
///
/// Build one with [`Role::parse`] or [`Role::agent`], which validate the host. A `Role::Agent`
/// built directly is re-validated by everything that writes it into a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The collector (Common Name `collector`).
    Collector,
    /// The agent on one host (Common Name `agent:<host>`).
    Agent(String),
}

impl Role {
    /// Parses `collector` or `agent:<host>`.
    ///
    /// # Errors
    /// [`TlsError::InvalidRole`] for anything else, including an empty host, a host with a
    /// character outside `[A-Za-z0-9._-]`, one starting with `.`, `_` or `-`, or one longer than
    /// 63 characters.
    ///
    /// ```
    /// use muster_shared::tls::Role;
    /// assert_eq!(Role::parse("agent:web1").unwrap(), Role::Agent("web1".into()));
    /// assert!(Role::parse("agent:../x").is_err());
    /// ```
    pub fn parse(value: &str) -> Result<Role, TlsError> {
        if value == COLLECTOR {
            return Ok(Role::Collector);
        }
        match value.strip_prefix(AGENT_PREFIX) {
            Some(host) if is_valid_host(host) => Ok(Role::Agent(host.to_owned())),
            _ => Err(invalid_role(value)),
        }
    }

    /// The role of the agent on `host`.
    ///
    /// # Errors
    /// [`TlsError::InvalidRole`] when `host` is not `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`.
    pub fn agent(host: impl Into<String>) -> Result<Role, TlsError> {
        let role = Role::Agent(host.into());
        role.validate()?;
        Ok(role)
    }

    /// Checks a role that may have been built directly as `Role::Agent(..)`.
    ///
    /// # Errors
    /// [`TlsError::InvalidRole`] when the agent's host is invalid.
    pub fn validate(&self) -> Result<(), TlsError> {
        match self {
            Role::Collector => Ok(()),
            Role::Agent(host) if is_valid_host(host) => Ok(()),
            Role::Agent(_) => Err(invalid_role(&self.to_string())),
        }
    }

    /// The agent's host, or `None` for the collector.
    pub fn host(&self) -> Option<&str> {
        match self {
            Role::Collector => None,
            Role::Agent(host) => Some(host),
        }
    }

    /// The DNS name every certificate of this role also carries as a SAN, so generic tools
    /// (curl, openssl) can verify it: `collector`, or the agent's host.
    pub fn natural_name(&self) -> &str {
        match self {
            Role::Collector => COLLECTOR,
            Role::Agent(host) => host,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Collector => f.write_str(COLLECTOR),
            Role::Agent(host) => write!(f, "{AGENT_PREFIX}{host}"),
        }
    }
}

impl FromStr for Role {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s)
    }
}

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`.
fn is_valid_host(host: &str) -> bool {
    let bytes = host.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    bytes.len() <= MAX_HOST_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn invalid_role(value: &str) -> TlsError {
    TlsError::InvalidRole {
        value: super::truncate_for_error(value),
    }
}

/// Which peer roles a listener or a caller accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerPolicy {
    /// Only `collector` (an agent's API, an agent calling the collector).
    Collector,
    /// Any `agent:<host>` (the collector's agent-facing listener; the handler maps the host).
    AnyAgent,
    /// Exactly `agent:<host>` (the collector calling one agent).
    Agent(String),
}

impl PeerPolicy {
    /// Whether `role` satisfies this policy. Host names compare exactly.
    pub fn allows(&self, role: &Role) -> bool {
        match (self, role) {
            (PeerPolicy::Collector, Role::Collector) => true,
            (PeerPolicy::AnyAgent, Role::Agent(_)) => true,
            (PeerPolicy::Agent(want), Role::Agent(host)) => want == host,
            _ => false,
        }
    }
}

impl fmt::Display for PeerPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerPolicy::Collector => write!(f, "role `{COLLECTOR}`"),
            PeerPolicy::AnyAgent => write!(f, "an `{AGENT_PREFIX}<host>` role"),
            PeerPolicy::Agent(host) => write!(f, "role `{AGENT_PREFIX}{host}`"),
        }
    }
}

/// Reads the role out of a certificate's subject Common Name.
///
/// This does **not** verify the certificate; the handshake verifiers call it only after the
/// chain verified.
///
/// # Errors
/// [`TlsError::CertificateParse`] when the DER is not X.509; [`TlsError::NoRole`] when the
/// subject has no Common Name, several, or one that is not a role.
pub fn role_of_cert(cert: &CertificateDer<'_>) -> Result<Role, TlsError> {
    let (_, x509) =
        x509_parser::parse_x509_certificate(cert).map_err(|err| TlsError::CertificateParse {
            what: "the peer certificate".to_owned(),
            reason: err.to_string(),
        })?;
    role_of_x509(&x509)
}

/// [`role_of_cert`] on an already parsed certificate.
pub(super) fn role_of_x509(x509: &X509Certificate<'_>) -> Result<Role, TlsError> {
    let subject = x509.subject();
    let no_role = |reason: String| TlsError::NoRole {
        subject: super::truncate_for_error(&subject.to_string()),
        reason,
    };
    let mut names = subject.iter_common_name();
    let (Some(cn), None) = (names.next(), names.next()) else {
        return Err(no_role("expected exactly one Common Name".to_owned()));
    };
    let cn = cn
        .as_str()
        .map_err(|_| no_role("the Common Name is not a string".to_owned()))?;
    Role::parse(cn).map_err(|err| no_role(err.to_string()))
}

/// The role of the client on a server connection, for handlers.
///
/// `None` when the client sent no certificate (a listener without client auth) or its
/// certificate carries no role. On a listener built with [`super::server_config`] the
/// certificate has already been verified and role-checked during the handshake.
pub fn peer_role(conn: &rustls::ServerConnection) -> Option<Role> {
    let leaf = conn.peer_certificates()?.first()?;
    role_of_cert(leaf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_roles() {
        for text in [
            "collector",
            "agent:web1",
            "agent:a",
            "agent:db-2.eu_west",
            "agent:9",
        ] {
            let role = Role::parse(text).unwrap();
            assert_eq!(role.to_string(), text);
            assert_eq!(text.parse::<Role>().unwrap(), role);
        }
        assert_eq!(Role::parse("agent:web1").unwrap().host(), Some("web1"));
        assert_eq!(Role::Collector.natural_name(), "collector");
    }

    #[test]
    fn rejects_bad_roles_and_hosts() {
        let long = format!("agent:{}", "a".repeat(64));
        let bad = [
            "",
            "admin",
            "Collector",
            "collector ",
            "agent",
            "agent:",
            "agent:../x",
            "agent:.hidden",
            "agent:-x",
            "agent:_x",
            "agent:a b",
            "agent:a/b",
            "agent:a:b",
            "agent:wéb",
            "agent:a\n",
            long.as_str(),
        ];
        for text in bad {
            let err = Role::parse(text).unwrap_err();
            assert!(
                matches!(err, TlsError::InvalidRole { .. }),
                "{text:?}: {err}"
            );
        }
        // 63 characters is the longest host.
        assert!(Role::parse(&format!("agent:{}", "a".repeat(63))).is_ok());
    }

    #[test]
    fn directly_built_agent_roles_are_revalidated() {
        assert!(Role::Agent("../x".into()).validate().is_err());
        assert!(Role::agent("a b").is_err());
        assert_eq!(Role::agent("web1").unwrap(), Role::Agent("web1".into()));
    }

    #[test]
    fn policies_allow_only_their_roles() {
        let web1 = Role::Agent("web1".into());
        let web2 = Role::Agent("web2".into());
        assert!(PeerPolicy::Collector.allows(&Role::Collector));
        assert!(!PeerPolicy::Collector.allows(&web1));
        assert!(PeerPolicy::AnyAgent.allows(&web1));
        assert!(!PeerPolicy::AnyAgent.allows(&Role::Collector));
        assert!(PeerPolicy::Agent("web1".into()).allows(&web1));
        assert!(!PeerPolicy::Agent("web1".into()).allows(&web2));
        assert!(!PeerPolicy::Agent("web1".into()).allows(&Role::Agent("Web1".into())));
        assert!(!PeerPolicy::Agent("collector".into()).allows(&Role::Collector));
    }
}
