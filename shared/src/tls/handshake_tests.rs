//! Real TLS handshakes between the configs of `config.rs`: in memory (byte-for-byte, so both
//! sides' errors are visible) and over a tokio loopback TCP pair with tokio-rustls.
//!
//! Every client dials a name that appears in no certificate (`nowhere.invalid`): success proves
//! the dialled name is ignored and the role is the identity.

use std::sync::Arc;

use rustls::{
    AlertDescription, CertificateError, ClientConfig, ClientConnection, Connection,
    ProtocolVersion, ServerConfig, ServerConnection,
};
use rustls_pki_types::ServerName;

use super::testkit::{Fleet, our_error};
use super::{
    Fingerprint, PeerPolicy, Role, TlsError, client_config, peer_role, pinned_client_config,
    server_config, server_config_without_client_auth,
};

/// Both ends of an in-memory handshake and the first error each side hit.
struct Outcome {
    client: ClientConnection,
    server: ServerConnection,
    client_err: Option<rustls::Error>,
    server_err: Option<rustls::Error>,
}

impl Outcome {
    fn assert_ok(&self) {
        assert!(
            self.client_err.is_none() && self.server_err.is_none(),
            "client: {:?}, server: {:?}",
            self.client_err,
            self.server_err
        );
        assert!(!self.client.is_handshaking() && !self.server.is_handshaking());
    }
}

fn dialled_name() -> ServerName<'static> {
    ServerName::try_from("nowhere.invalid").unwrap()
}

/// Moves everything `from` wants to send into `to`; records `to`'s first error. Returns whether
/// any bytes moved.
fn pump(from: &mut Connection, to: &mut Connection, to_err: &mut Option<rustls::Error>) -> bool {
    let mut buf = Vec::new();
    while from.wants_write() {
        if from.write_tls(&mut buf).unwrap() == 0 {
            break;
        }
    }
    if buf.is_empty() {
        return false;
    }
    let mut rest = &buf[..];
    while to_err.is_none() && !rest.is_empty() {
        if to.read_tls(&mut rest).unwrap() == 0 {
            break;
        }
        if let Err(err) = to.process_new_packets() {
            *to_err = Some(err);
        }
    }
    true
}

fn handshake(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Outcome {
    let mut client = Connection::Client(ClientConnection::new(client, dialled_name()).unwrap());
    let mut server = Connection::Server(ServerConnection::new(server).unwrap());
    let (mut client_err, mut server_err) = (None, None);
    for _ in 0..32 {
        let sent = pump(&mut client, &mut server, &mut server_err);
        let answered = pump(&mut server, &mut client, &mut client_err);
        if !sent && !answered {
            break;
        }
    }
    let (Connection::Client(client), Connection::Server(server)) = (client, server) else {
        unreachable!("built as client and server above");
    };
    Outcome {
        client,
        server,
        client_err,
        server_err,
    }
}

fn web1() -> Role {
    Role::Agent("web1".into())
}

/// The agent web1's API listener: only the collector may call it.
fn agent_server(fleet: &Fleet, role: &Role) -> Arc<ServerConfig> {
    server_config(fleet.ca_pem(), fleet.identity(role), PeerPolicy::Collector).unwrap()
}

/// The collector calling agent web1.
fn collector_client(fleet: &Fleet, expect: PeerPolicy) -> Arc<ClientConfig> {
    client_config(
        fleet.ca_pem(),
        Some(fleet.identity(&Role::Collector)),
        expect,
    )
    .unwrap()
}

fn assert_our_error(err: Option<&rustls::Error>, check: impl FnOnce(&TlsError) -> bool) {
    let err = err.expect("the handshake should have failed");
    let ours = our_error(err).unwrap_or_else(|| panic!("not a TlsError rejection: {err:?}"));
    assert!(check(ours), "unexpected rejection: {ours}");
}

#[test]
fn collector_client_reaches_agent_server() {
    let fleet = Fleet::new();
    let out = handshake(
        collector_client(&fleet, PeerPolicy::Agent("web1".into())),
        agent_server(&fleet, &web1()),
    );
    out.assert_ok();
    assert_eq!(peer_role(&out.server), Some(Role::Collector));
    assert_eq!(out.client.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(
        out.client.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    // The server sent its leaf and then the CA certificate.
    let chain = out.client.peer_certificates().unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(&chain[1], fleet.ca.cert_der());
}

#[test]
fn agent_server_refuses_client_without_certificate() {
    let fleet = Fleet::new();
    let client = client_config(fleet.ca_pem(), None, PeerPolicy::Agent("web1".into())).unwrap();
    let out = handshake(client, agent_server(&fleet, &web1()));
    assert!(
        matches!(out.server_err, Some(rustls::Error::NoCertificatesPresented)),
        "{:?}",
        out.server_err
    );
    assert!(
        matches!(
            out.client_err,
            Some(rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            ))
        ),
        "{:?}",
        out.client_err
    );
}

#[test]
fn agent_server_refuses_client_from_another_ca() {
    let fleet = Fleet::new();
    let rogue = Fleet::new();
    // The rogue client trusts the real CA (it's public) but its own cert is from another CA.
    let client = client_config(
        fleet.ca_pem(),
        Some(rogue.identity(&Role::Collector)),
        PeerPolicy::Agent("web1".into()),
    )
    .unwrap();
    let out = handshake(client, agent_server(&fleet, &web1()));
    assert!(
        matches!(
            out.server_err,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{:?}",
        out.server_err
    );
    assert!(peer_role(&out.server).is_none());
}

#[test]
fn agent_server_refuses_client_from_a_ca_with_the_same_name() {
    // A rogue CA copying the fleet CA's subject: found as issuer by name, refused by signature.
    let fleet = Fleet::named("Muster fleet");
    let rogue = Fleet::named("Muster fleet");
    let client = client_config(
        fleet.ca_pem(),
        Some(rogue.identity(&Role::Collector)),
        PeerPolicy::Agent("web1".into()),
    )
    .unwrap();
    let out = handshake(client, agent_server(&fleet, &web1()));
    assert!(
        matches!(
            out.server_err,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::BadSignature
            ))
        ),
        "{:?}",
        out.server_err
    );
}

#[test]
fn agent_server_refuses_fleet_client_with_agent_role() {
    let fleet = Fleet::new();
    let client = client_config(
        fleet.ca_pem(),
        Some(fleet.identity(&Role::Agent("x".into()))),
        PeerPolicy::Agent("web1".into()),
    )
    .unwrap();
    let out = handshake(client, agent_server(&fleet, &web1()));
    assert_our_error(out.server_err.as_ref(), |err| {
        matches!(
            err,
            TlsError::PeerRoleRejected { role: Role::Agent(host), expected: PeerPolicy::Collector }
                if host == "x"
        )
    });
    let message = out.server_err.as_ref().unwrap().to_string();
    assert!(
        message.contains("agent:x") && message.contains("collector"),
        "{message}"
    );
    assert!(
        matches!(
            out.client_err,
            Some(rustls::Error::AlertReceived(
                AlertDescription::CertificateUnknown
            ))
        ),
        "{:?}",
        out.client_err
    );
}

#[test]
fn collector_client_refuses_the_wrong_agent() {
    let fleet = Fleet::new();
    let out = handshake(
        collector_client(&fleet, PeerPolicy::Agent("web1".into())),
        agent_server(&fleet, &Role::Agent("other".into())),
    );
    assert_our_error(out.client_err.as_ref(), |err| {
        matches!(
            err,
            TlsError::PeerRoleRejected { role: Role::Agent(host), expected: PeerPolicy::Agent(want) }
                if host == "other" && want == "web1"
        )
    });
    assert!(
        out.server_err.is_some(),
        "the server saw the client's alert"
    );
}

#[test]
fn collector_client_refuses_server_from_another_ca() {
    let fleet = Fleet::new();
    let rogue = Fleet::new();
    // A rogue agent server with the right role but a certificate from another CA. It trusts
    // the real CA for clients and sends the real CA certificate in its chain, so only the
    // client's chain check can stop it.
    let server = server_config(
        fleet.ca_pem(),
        rogue.identity(&web1()),
        PeerPolicy::Collector,
    )
    .unwrap();
    let out = handshake(
        collector_client(&fleet, PeerPolicy::Agent("web1".into())),
        server,
    );
    assert!(
        matches!(
            out.client_err,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{:?}",
        out.client_err
    );
}

#[test]
fn agent_client_reaches_collector_and_refuses_an_agent_posing_as_collector() {
    let fleet = Fleet::new();
    let agent_client = client_config(
        fleet.ca_pem(),
        Some(fleet.identity(&web1())),
        PeerPolicy::Collector,
    )
    .unwrap();
    // The collector's agent-facing listener accepts any agent and tells the handler which.
    let collector_server = server_config(
        fleet.ca_pem(),
        fleet.identity(&Role::Collector),
        PeerPolicy::AnyAgent,
    )
    .unwrap();
    let out = handshake(Arc::clone(&agent_client), collector_server);
    out.assert_ok();
    assert_eq!(peer_role(&out.server), Some(web1()));

    // Another agent's (valid, serverAuth) certificate must not pass as the collector.
    let impostor = server_config(
        fleet.ca_pem(),
        fleet.identity(&Role::Agent("web2".into())),
        PeerPolicy::AnyAgent,
    )
    .unwrap();
    let out = handshake(agent_client, impostor);
    assert_our_error(out.client_err.as_ref(), |err| {
        matches!(
            err,
            TlsError::PeerRoleRejected {
                expected: PeerPolicy::Collector,
                ..
            }
        )
    });
}

#[test]
fn any_agent_listener_refuses_the_collector_role() {
    let fleet = Fleet::new();
    let server = server_config(
        fleet.ca_pem(),
        fleet.identity(&Role::Collector),
        PeerPolicy::AnyAgent,
    )
    .unwrap();
    let client = client_config(
        fleet.ca_pem(),
        Some(fleet.identity(&Role::Collector)),
        PeerPolicy::Collector,
    )
    .unwrap();
    let out = handshake(client, server);
    assert_our_error(out.server_err.as_ref(), |err| {
        matches!(
            err,
            TlsError::PeerRoleRejected {
                role: Role::Collector,
                expected: PeerPolicy::AnyAgent
            }
        )
    });
}

#[test]
fn public_listener_needs_no_client_certificate() {
    let fleet = Fleet::new();
    let server =
        server_config_without_client_auth(fleet.ca_pem(), fleet.identity(&Role::Collector))
            .unwrap();
    let client = client_config(fleet.ca_pem(), None, PeerPolicy::Collector).unwrap();
    let out = handshake(client, server);
    out.assert_ok();
    assert_eq!(peer_role(&out.server), None);
    assert_eq!(out.client.peer_certificates().unwrap().len(), 2);
}

#[test]
fn pinned_config_accepts_the_right_fingerprint() {
    let fleet = Fleet::new();
    let server =
        server_config_without_client_auth(fleet.ca_pem(), fleet.identity(&Role::Collector))
            .unwrap();
    let out = handshake(
        pinned_client_config(fleet.ca.fingerprint()).unwrap(),
        server,
    );
    out.assert_ok();
    assert_eq!(out.client.alpn_protocol(), Some(&b"h2"[..]));
}

#[test]
fn pinned_config_refuses_a_wrong_fingerprint() {
    let fleet = Fleet::new();
    let server =
        server_config_without_client_auth(fleet.ca_pem(), fleet.identity(&Role::Collector))
            .unwrap();
    let wrong = Fleet::new().ca.fingerprint();
    let out = handshake(pinned_client_config(wrong).unwrap(), server);
    assert_our_error(
        out.client_err.as_ref(),
        |err| matches!(err, TlsError::FingerprintMismatch { expected } if *expected == wrong),
    );
    let message = out.client_err.as_ref().unwrap().to_string();
    assert!(message.contains("fingerprint did not match"), "{message}");
    assert!(message.contains(&wrong.to_string()), "{message}");
}

#[test]
fn pinned_config_refuses_an_agent_server_with_the_right_ca() {
    let fleet = Fleet::new();
    let server =
        server_config_without_client_auth(fleet.ca_pem(), fleet.identity(&web1())).unwrap();
    let out = handshake(
        pinned_client_config(fleet.ca.fingerprint()).unwrap(),
        server,
    );
    assert_our_error(out.client_err.as_ref(), |err| {
        matches!(
            err,
            TlsError::PeerRoleRejected {
                expected: PeerPolicy::Collector,
                ..
            }
        )
    });
}

#[test]
fn server_sends_every_ca_of_a_rollover_bundle() {
    let old = Fleet::new();
    let new = Fleet::new();
    let bundle = format!("{}{}", old.ca_pem(), new.ca_pem());
    let server =
        server_config_without_client_auth(&bundle, new.identity(&Role::Collector)).unwrap();
    // An agent whose token pins the old CA still finds it, but the leaf is from the new CA.
    let out = handshake(
        pinned_client_config(old.ca.fingerprint()).unwrap(),
        Arc::clone(&server),
    );
    assert!(
        matches!(
            out.client_err,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{:?}",
        out.client_err
    );
    let out = handshake(pinned_client_config(new.ca.fingerprint()).unwrap(), server);
    out.assert_ok();
    assert_eq!(out.client.peer_certificates().unwrap().len(), 3);
}

#[test]
fn configs_refuse_bad_ca_pem() {
    let fleet = Fleet::new();
    let leaf = fleet.issue(&Role::Collector);
    let err = client_config(&leaf.cert_pem, None, PeerPolicy::Collector).unwrap_err();
    assert!(matches!(err, TlsError::NotCa { .. }), "{err}");
    let err = server_config("", fleet.identity(&web1()), PeerPolicy::Collector).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
}

#[test]
fn fingerprint_of_ca_matches_what_the_server_sends() {
    let fleet = Fleet::new();
    let server =
        server_config_without_client_auth(fleet.ca_pem(), fleet.identity(&Role::Collector))
            .unwrap();
    let out = handshake(
        pinned_client_config(fleet.ca.fingerprint()).unwrap(),
        server,
    );
    let sent = &out.client.peer_certificates().unwrap()[1];
    assert_eq!(Fingerprint::of_der(sent), fleet.ca.fingerprint());
}

mod loopback {
    //! The same configs through tokio-rustls over 127.0.0.1, as `shared::serve` uses them.

    use std::io;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;

    /// The rustls error inside an I/O error from tokio-rustls.
    fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
        err.get_ref()?.downcast_ref::<rustls::Error>()
    }

    /// Accepts one connection; on success echoes one byte back and returns the client's role.
    async fn serve_once(
        listener: TcpListener,
        config: Arc<ServerConfig>,
    ) -> io::Result<Option<Role>> {
        let (tcp, _) = listener.accept().await?;
        let mut tls = TlsAcceptor::from(config).accept(tcp).await?;
        let role = peer_role(tls.get_ref().1);
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        tls.write_all(&byte).await?;
        tls.shutdown().await?;
        Ok(role)
    }

    /// Connects, sends one byte and reads it back.
    async fn call_once(
        addr: std::net::SocketAddr,
        config: Arc<ClientConfig>,
    ) -> io::Result<Vec<u8>> {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = TlsConnector::from(config)
            .connect(dialled_name(), tcp)
            .await?;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        tls.write_all(b"x").await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        Ok(alpn.unwrap_or_default())
    }

    async fn run(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
    ) -> (io::Result<Vec<u8>>, io::Result<Option<Role>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_once(listener, server));
        let client = call_once(addr, client).await;
        let server = tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("the server task never finished")
            .unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn collector_client_reaches_agent_server_over_tcp() {
        let fleet = Fleet::new();
        let (client, server) = run(
            collector_client(&fleet, PeerPolicy::Agent("web1".into())),
            agent_server(&fleet, &web1()),
        )
        .await;
        assert_eq!(client.unwrap(), b"h2");
        assert_eq!(server.unwrap(), Some(Role::Collector));
    }

    #[tokio::test]
    async fn agent_server_refuses_agent_role_over_tcp() {
        let fleet = Fleet::new();
        let client = client_config(
            fleet.ca_pem(),
            Some(fleet.identity(&Role::Agent("x".into()))),
            PeerPolicy::Agent("web1".into()),
        )
        .unwrap();
        let (client, server) = run(client, agent_server(&fleet, &web1())).await;
        let server_err = server.unwrap_err();
        let rejection = rustls_error(&server_err).expect("a rustls error");
        assert!(
            matches!(
                our_error(rejection),
                Some(TlsError::PeerRoleRejected { .. })
            ),
            "{rejection:?}"
        );
        // TLS 1.3: the client learns of it from the alert, on its first read.
        let client_err = client.unwrap_err();
        assert!(
            matches!(
                rustls_error(&client_err),
                Some(rustls::Error::AlertReceived(
                    AlertDescription::CertificateUnknown
                ))
            ),
            "{client_err:?}"
        );
    }
}
