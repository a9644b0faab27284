//! No credential in labels, logs, errors or Debug output; the receiver still gets them.

use super::*;

#[tokio::test]
async fn credentials_never_reach_labels_errors_or_logs() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let (receiver, port) = fake_receiver([Reply {
        body: "internal error",
        ..reply(503)
    }])
    .await;
    let with_credentials =
        format!("http://alice:hunter2@127.0.0.1:{port}/api/v1/write?api_key=querysecret");
    // Nothing listens on port 1: connection refused, an error that reqwest would show
    // with its URL.
    let refused = "http://bob:pa55word@127.0.0.1:1/api/v1/write?token=urltoken";
    let mut bearer = config(&format!("http://127.0.0.1:{port}/api/v1/write"));
    bearer.name = Some("bearer".to_owned());
    bearer.bearer_token = Some(muster_shared::config::Secret::new("tokensecret"));
    bearer.headers.insert(
        "X-Scope-OrgID".to_owned(),
        muster_shared::config::Secret::new("tenantsecret"),
    );
    let mut configs = [config(&with_credentials), config(refused), bearer];
    for c in &mut configs {
        // The unreachable endpoint retries until this deadline once stopped.
        c.flush_deadline = muster_shared::config::Duration(Duration::from_millis(200));
    }
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&configs, metrics.registry(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("up", 0..1)]);
    until("both reachable endpoints accept", || {
        receiver.accepted().len() == 2
    })
    .await;
    until("the unreachable endpoint failed twice", || {
        logs.text().contains("remote write failed") && {
            let families = metrics.registry().gather();
            families
                .iter()
                .find(|f| f.name() == "muster_collector_remote_write_retries_total")
                .is_some_and(|f| {
                    f.get_metric()
                        .iter()
                        .any(|m| m.get_counter().get_value() >= 2.0)
                })
        }
    })
    .await;
    stop(&rw, &shutdown).await;

    // The receiver got the credentials as headers.
    let seen = receiver.seen();
    let auth: Vec<String> = seen
        .iter()
        .filter_map(|r| r.headers.get("authorization"))
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        auth.contains(&"Basic YWxpY2U6aHVudGVyMg==".to_owned()),
        "{auth:?}"
    );
    assert!(auth.contains(&"Bearer tokensecret".to_owned()), "{auth:?}");
    assert!(seen.iter().any(|r| {
        r.headers
            .get("x-scope-orgid")
            .is_some_and(|v| v == "tenantsecret")
    }));

    // ...and nothing else ever shows them.
    let shown = format!(
        "{}\n{}\n{:?}\n{:?}",
        logs.text(),
        metrics.render(),
        rw.remotes(),
        configs
    );
    for secret in [
        "alice",
        "hunter2",
        "querysecret",
        "bob",
        "pa55word",
        "urltoken",
        "tokensecret",
        "tenantsecret",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
    assert!(
        shown.contains(&format!(
            "http://<redacted>@127.0.0.1:{port}/api/v1/write?api_key=<redacted>"
        )),
        "{shown}"
    );

    // A config error names the endpoint without its secret.
    let mut bad = config(refused);
    bad.bearer_token = Some(muster_shared::config::Secret::new("tokensecret"));
    let err = RemoteWrite::start(
        &[bad],
        &prometheus::Registry::new(),
        CancellationToken::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("carries credentials"), "{err}");
    for secret in ["bob", "pa55word", "urltoken", "tokensecret"] {
        assert!(!err.contains(secret), "{secret} leaked: {err}");
    }
}

#[tokio::test]
async fn a_send_error_text_holds_no_secret() {
    let config = config("http://bob:pa55word@127.0.0.1:1/w?token=urltoken");
    let transport = client::HttpTransport::new(&config, &config.remote()).unwrap();
    let body = encode::encode_body(&WriteRequest::default()).unwrap();
    let err = client::Transport::send(&transport, body).await.unwrap_err();
    assert!(err.retryable(), "{err}");
    assert_eq!(err.reason(), "network");
    let text = format!("{err} {err:?}");
    for secret in ["bob", "pa55word", "urltoken"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(
        text.contains("http://<redacted>@127.0.0.1:1/w?token=<redacted>"),
        "{text}"
    );
}
