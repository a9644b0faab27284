//! The backup routes through the router, without a socket: roles, bad bodies, unknown and
//! unreachable hosts, and the audit of a restore. The calls that reach an agent are in
//! `tests/tests/backups.rs`, against the fake agent.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;

use super::test_kit::TestApi;
use crate::hosts::HostRecord;
use crate::query::MemorySource;

/// A router with host `web1` enrolled at a loopback port nobody listens on.
fn api() -> TestApi {
    let api = TestApi::new(Arc::new(MemorySource::new()));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address: SocketAddr = closed.local_addr().expect("address");
    drop(closed);
    api.state
        .hosts
        .record(&HostRecord {
            id: "web1".to_owned(),
            address,
            cert_fingerprint: "00".to_owned(),
            enrolled_at_unix_ms: 0,
        })
        .expect("record a host");
    api
}

fn error_of(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    json["error"].as_str().expect("an error field").to_owned()
}

#[tokio::test]
async fn a_viewer_cannot_start_a_backup_or_a_restore() {
    let api = api();
    let viewer = api.viewer_token.clone();
    let (status, body) = api
        .post_json("/api/v1/hosts/web1/backups", r#"{"set":"etc"}"#, &viewer)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(error_of(&body).contains("operator"), "{body}");
    let restore = r#"{"set":"etc","snapshot":"latest","target_dir":"/srv/r"}"#;
    let (status, _) = api
        .post_json("/api/v1/hosts/web1/restores", restore, &viewer)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_bodies_get_a_json_400_naming_the_problem() {
    let api = api();
    let ops = api.operator_token.clone();
    let cases = [
        ("/api/v1/hosts/web1/backups", "{", "invalid JSON body"),
        (
            "/api/v1/hosts/web1/backups",
            r#"{"sett":"etc"}"#,
            "unknown field",
        ),
        ("/api/v1/hosts/web1/backups", r#"{}"#, "missing field"),
        ("/api/v1/hosts/web1/backups", r#"{"set":""}"#, "empty"),
        (
            "/api/v1/hosts/web1/backups",
            r#"{"set":"a/b"}"#,
            "control character or `/`",
        ),
        (
            "/api/v1/hosts/web1/backups",
            r#"{"set":"etc","idempotency_key":""}"#,
            "idempotency_key",
        ),
        (
            "/api/v1/hosts/web1/restores",
            r#"{"set":"etc","snapshot":"nope","target_dir":"/r"}"#,
            "snapshot",
        ),
        (
            "/api/v1/hosts/web1/restores",
            r#"{"set":"etc","snapshot":"latest","target_dir":"relative"}"#,
            "target_dir",
        ),
        (
            "/api/v1/hosts/web1/restores",
            r#"{"set":"etc","snapshot":"4f2a9c1e","target_dir":"/r","sub_path":"../../etc"}"#,
            "sub_path",
        ),
        (
            "/api/v1/hosts/web1/restores",
            r#"{"set":"etc"}"#,
            "missing field",
        ),
    ];
    for (uri, body, expected) in cases {
        let (status, answer) = api.post_json(uri, body, &ops).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {body}: {answer}");
        assert!(
            error_of(&answer).contains(expected),
            "{uri} {body}: {answer}"
        );
    }
    let (status, answer) = api.get("/api/v1/hosts/web1/backups/history?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = api.get("/api/v1/hosts/web1/backups/history?limit=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

#[tokio::test]
async fn an_unknown_host_is_404_and_an_unreachable_agent_is_502() {
    let api = api();
    let (status, body) = api.get("/api/v1/hosts/nope/backups").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(error_of(&body).contains("nope"), "{body}");
    let (status, body) = api.get("/api/v1/hosts/nope/backups/history").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = api.get("/api/v1/hosts/web1/backups").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        error_of(&body).contains("agent web1 is unreachable"),
        "{body}"
    );
    let (status, body) = api.get("/api/v1/hosts/web1/jobs/j1").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let (status, body) = api.get("/api/v1/hosts/web1/backups/history").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"entries":[]}"#);
}

#[tokio::test]
async fn a_restore_the_agent_never_got_is_still_audited() {
    let api = api();
    let ops = api.operator_token.clone();
    let body =
        r#"{"set":"etc","snapshot":"4f2a9c1e","target_dir":"/srv/r","sub_path":"/etc/nginx"}"#;
    let (status, answer) = api
        .post_json("/api/v1/hosts/web1/restores", body, &ops)
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    let entries = api.state.audit.recent(10).expect("read the audit log");
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry.action, "backup.restore");
    assert_eq!(entry.actor, "ops");
    assert_eq!(entry.target, "web1");
    assert_eq!(entry.detail["target_dir"], "/srv/r");
    assert_eq!(entry.detail["sub_path"], "etc/nginx");
    assert!(
        entry.detail["outcome"].starts_with("failed: agent web1 is unreachable"),
        "{entry:?}"
    );
}
