//! The collector's API: bearer tokens and roles (401/403), JSON errors, and
//! garbage posted to every route never takes it down.

use muster_tests::{Collector, CollectorOptions};

#[test]
fn missing_or_wrong_token_is_401_and_low_role_is_403() {
    let collector = Collector::start(CollectorOptions::default());
    let viewer = collector.create_token(&["--role", "viewer", "--name", "dash"]);
    let operator = collector.create_token(&["--role", "operator"]);

    let (status, body) = collector.get("/api/v1/hosts", None).unwrap();
    assert_eq!(status, 401);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("missing bearer token"),
        "{body}"
    );

    let forged = format!("mst_{}", "0".repeat(64));
    let (status, body) = collector.get("/api/v1/hosts", Some(&forged)).unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("token not recognised"));
    let (status, _) = collector.get("/api/v1/hosts", Some("not-a-token")).unwrap();
    assert_eq!(status, 401);

    for token in [&viewer, &operator, &collector.admin_token] {
        let (status, body) = collector.get("/api/v1/hosts", Some(token)).unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, "[]");
    }

    // Creating tokens is for admins only.
    for token in [&viewer, &operator] {
        let (status, body) = collector
            .post(
                "/api/v1/tokens",
                "application/json",
                br#"{"role":"admin"}"#.to_vec(),
                Some(token),
            )
            .unwrap();
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("needs the admin role"), "{body}");
    }
    let (status, body) = collector
        .post(
            "/api/v1/tokens",
            "application/json",
            br#"{"role":"viewer","name":"x"}"#.to_vec(),
            Some(&collector.admin_token),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = created["token"].as_str().unwrap();
    assert_eq!(collector.get("/api/v1/hosts", Some(token)).unwrap().0, 200);
}

/// `token create` against a running collector goes through its API, also when the
/// API is plain HTTP (it used to panic building the client: no crypto provider).
#[test]
fn token_create_works_through_a_plain_http_api() {
    let collector = Collector::start(CollectorOptions {
        tls: false,
        scrape_interval: "1s",
    });
    assert!(collector.url.starts_with("http://"), "{}", collector.url);
    let viewer = collector.create_token(&["--role", "viewer", "--name", "plain"]);
    let (status, body) = collector.get("/api/v1/hosts", Some(&viewer)).unwrap();
    assert_eq!(status, 200, "the new token works: {body}");
    let enroll = collector.create_token(&["--enroll", "--host", "web9"]);
    assert!(!enroll.is_empty());
}

#[test]
fn public_endpoints_answer_without_a_token() {
    let collector = Collector::start(CollectorOptions::default());
    muster_tests::wait_for("collector ready", || {
        collector
            .get("/health/ready", None)
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    let (status, body) = collector.get("/version", None).unwrap();
    assert_eq!(status, 200);
    let version: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert!(!version["commit"].as_str().unwrap().is_empty());
    let (status, body) = collector.get("/metrics", None).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("muster_collector_ready 1"), "{body}");
    assert_eq!(collector.get("/health", None).unwrap().0, 200);
}

#[test]
fn bad_bodies_get_a_json_400() {
    let collector = Collector::start(CollectorOptions::default());
    let admin = Some(collector.admin_token.as_str());
    for (path, content_type, body, needle) in [
        (
            "/api/v1/tokens",
            "application/json",
            "{",
            "invalid JSON body",
        ),
        (
            "/api/v1/tokens",
            "application/json",
            r#"{"role":"root"}"#,
            "invalid JSON body",
        ),
        (
            "/api/v1/tokens",
            "application/json",
            r#"{"role":"viewer","extra":1}"#,
            "unknown field",
        ),
        (
            "/api/v1/tokens",
            "text/plain",
            r#"{"role":"viewer"}"#,
            "Content-Type",
        ),
        (
            "/api/v1/enroll-tokens",
            "application/json",
            r#"{"host":"../etc"}"#,
            "invalid host name",
        ),
        (
            "/api/v1/enroll-tokens",
            "application/json",
            r#"{"host":"a","ttl":"soon"}"#,
            "invalid duration",
        ),
        (
            "/api/v1/enroll",
            "application/json",
            r#"{"token":"x"}"#,
            "invalid JSON body",
        ),
    ] {
        let (status, text) = collector
            .post(path, content_type, body.as_bytes().to_vec(), admin)
            .unwrap();
        assert_eq!(status, 400, "{path} {body}: {text}");
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON error body: {text}"));
        assert!(
            json["error"].as_str().unwrap().contains(needle),
            "{path} {body}: {text}"
        );
    }
}

#[test]
fn random_bytes_posted_to_every_route_give_4xx_and_the_collector_stays_up() {
    let collector = Collector::start(CollectorOptions::default());
    let routes = [
        "/health",
        "/health/live",
        "/health/ready",
        "/version",
        "/metrics",
        "/api/v1/hosts",
        "/api/v1/tokens",
        "/api/v1/enroll-tokens",
        "/api/v1/enroll",
        "/api/v1/hosts/web1/backups",
        "/api/v1/hosts/web1/restores",
        "/api/v1/audit",
        "/api/v1/nope",
        "/",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..8 {
        for route in routes {
            let len = usize::try_from(next() % 4096).unwrap();
            let body: Vec<u8> = (0..len)
                .map(|_| u8::try_from(next() & 0xff).unwrap())
                .collect();
            for token in [None, Some(collector.admin_token.as_str())] {
                for content_type in ["application/json", "application/octet-stream"] {
                    let (status, text) = collector
                        .post(route, content_type, body.clone(), token)
                        .unwrap();
                    assert!(
                        (400..500).contains(&status),
                        "round {round} {route}: {status} {text}"
                    );
                    assert!(
                        serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                        "{route}: JSON error body: {text}"
                    );
                }
            }
        }
    }
    // An oversized body is refused with 413, not read whole.
    let big = vec![b'x'; 2 << 20];
    let (status, _) = collector
        .post(
            "/api/v1/tokens",
            "application/json",
            big,
            Some(&collector.admin_token),
        )
        .unwrap();
    assert_eq!(status, 413);
    assert_eq!(
        collector.get("/health/live", None).unwrap().0,
        200,
        "still up"
    );
}
