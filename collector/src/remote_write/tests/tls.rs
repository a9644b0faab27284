//! https endpoints verified against `ca_file`.

use super::*;

#[tokio::test]
async fn https_with_a_ca_file_verifies_the_receiver() {
    use muster_shared::tls::{CertificateAuthority, Identity, Role};
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let leaf = ca
        .issue(
            &Role::Collector,
            &["127.0.0.1".to_owned()],
            Duration::from_secs(3600),
        )
        .unwrap();
    let identity = Identity::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap();
    let tls =
        muster_shared::tls::server_config_without_client_auth(ca.cert_pem(), identity).unwrap();
    let (receiver, port) = fake_receiver_with(Some(tls), []).await;

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let mut config = config(&format!("https://127.0.0.1:{port}/api/v1/write"));
    config.ca_file = Some(ca_file.clone());
    let err = RemoteWrite::start(
        std::slice::from_ref(&config),
        &prometheus::Registry::new(),
        CancellationToken::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(&ca_file.display().to_string()),
        "a missing ca_file is named: {err}"
    );

    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], &prometheus::Registry::new(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("up", 0..2)]);
    until("the https receiver accepts", || {
        receiver.accepted().len() == 1
    })
    .await;
    stop(&rw, &shutdown).await;
}

#[tokio::test]
async fn https_refuses_a_receiver_outside_the_ca_file() {
    use muster_shared::tls::{CertificateAuthority, Identity, Role};
    let (ca, other) = (
        CertificateAuthority::generate("test CA").unwrap(),
        CertificateAuthority::generate("someone else").unwrap(),
    );
    let leaf = other
        .issue(
            &Role::Collector,
            &["127.0.0.1".to_owned()],
            Duration::from_secs(3600),
        )
        .unwrap();
    let identity = Identity::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap();
    let tls =
        muster_shared::tls::server_config_without_client_auth(other.cert_pem(), identity).unwrap();
    let (receiver, port) = fake_receiver_with(Some(tls), []).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let mut config = config(&format!("https://127.0.0.1:{port}/api/v1/write"));
    config.ca_file = Some(ca_file);
    config.name = Some("tls".to_owned());
    config.flush_deadline = muster_shared::config::Duration(Duration::from_millis(100));
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], metrics.registry(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("up", 0..2)]);
    let network = [("remote", "tls"), ("reason", "network")];
    until("the handshake fails", || {
        metric(
            &metrics,
            "muster_collector_remote_write_failures_total",
            &network,
        ) >= 1.0
    })
    .await;
    stop(&rw, &shutdown).await;
    assert!(receiver.seen().is_empty());
}
