//! The agent's listener refuses every client but the fleet's collector:
//! no certificate, another CA's certificate, or a fleet certificate whose
//! role is not `collector`.

use std::time::Duration;

use muster_shared::tls::{CertificateAuthority, Identity, PeerPolicy, Role, client_config};
use muster_tests::{AgentDir, Collector, CollectorOptions, runtime, wait_for};

struct Fixture {
    collector: Collector,
    agent: AgentDir,
    _proc: muster_tests::Proc,
    fleet_ca: CertificateAuthority,
}

fn fixture() -> Fixture {
    let collector = Collector::start(CollectorOptions::default());
    let token = collector.create_token(&["--enroll", "--host", "web1"]);
    let agent = AgentDir::new();
    let out = agent.enroll(&collector.url, &token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let proc = agent.start();
    let pki = collector.dir.path().join("data/pki");
    let fleet_ca = CertificateAuthority::from_pem(
        &std::fs::read_to_string(pki.join("ca.crt")).unwrap(),
        &std::fs::read_to_string(pki.join("ca.key")).unwrap(),
    )
    .unwrap();
    Fixture {
        collector,
        agent,
        _proc: proc,
        fleet_ca,
    }
}

/// GET /v1/info on the agent with the given client identity; the error text
/// on failure.
fn call(f: &Fixture, identity: Option<Identity>) -> Result<u16, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = client_config(
        &f.collector.ca_pem,
        identity,
        PeerPolicy::Agent("web1".into()),
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured((*config).clone())
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{}/v1/info", f.agent.port);
    runtime().block_on(async move {
        match client.get(url).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(err) => {
                let mut text = err.to_string();
                let mut source = std::error::Error::source(&err);
                while let Some(cause) = source {
                    text.push_str(": ");
                    text.push_str(&cause.to_string());
                    source = cause.source();
                }
                Err(text)
            }
        }
    })
}

fn issue(ca: &CertificateAuthority, role: &Role) -> Identity {
    let cert = ca.issue(role, &[], Duration::from_secs(3600)).unwrap();
    Identity::from_pem(&cert.cert_pem, &cert.key_pem).unwrap()
}

#[test]
fn agent_accepts_only_the_collector_role_from_the_fleet_ca() {
    let f = fixture();
    // Wait until the agent serves: the collector sees it up.
    wait_for("web1 is up", || {
        f.collector
            .hosts()
            .as_array()
            .and_then(|a| a.iter().find(|h| h["status"] == "up").cloned())
    });

    // The real thing works: a collector-role certificate from the fleet CA.
    assert_eq!(
        call(&f, Some(issue(&f.fleet_ca, &Role::Collector))),
        Ok(200)
    );

    // Each refusal happens in the TLS handshake: no HTTP status comes back
    // (the agent's route guard would answer 403, so an Err proves the TLS
    // layer refused). With TLS 1.3 the client may see the server's alert or
    // just a closed connection, so the text is not asserted.

    // No client certificate.
    let result = call(&f, None);
    assert!(
        result.is_err(),
        "no client certificate must be refused: {result:?}"
    );

    // A collector-role certificate from another CA.
    let other_ca = CertificateAuthority::generate("Other CA").unwrap();
    let result = call(&f, Some(issue(&other_ca, &Role::Collector)));
    assert!(result.is_err(), "another CA must be refused: {result:?}");

    // A fleet certificate whose role is an agent's.
    let result = call(&f, Some(issue(&f.fleet_ca, &Role::Agent("web9".into()))));
    assert!(
        result.is_err(),
        "an agent-role certificate must be refused: {result:?}"
    );

    // And the agent still serves the collector afterwards.
    assert_eq!(
        call(&f, Some(issue(&f.fleet_ca, &Role::Collector))),
        Ok(200)
    );
}
