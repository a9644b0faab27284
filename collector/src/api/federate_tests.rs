//! `/federate` through the router, without a socket.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};

use super::test_kit::TestApi;
use crate::query::MemorySource;
use crate::series::{Labels, METRIC_NAME, Sample};

fn api(now_ms: i64) -> TestApi {
    let source = MemorySource::new();
    let add = |pairs: &[(&str, &str)], timestamp_ms: i64, value: f64| {
        source
            .add(
                &Labels::from_pairs(pairs.iter().copied()),
                Sample {
                    timestamp_ms,
                    value,
                },
            )
            .expect("series");
    };
    add(&[(METRIC_NAME, "up"), ("host", "a")], now_ms - 20_000, 0.0);
    add(&[(METRIC_NAME, "up"), ("host", "a")], now_ms - 10_000, 1.0);
    add(&[(METRIC_NAME, "up"), ("host", "b")], now_ms - 10_000, 0.0);
    // Older than the 5-minute lookback: not federated.
    add(
        &[(METRIC_NAME, "up"), ("host", "gone")],
        now_ms - 600_000,
        1.0,
    );
    add(
        &[(METRIC_NAME, "node_load1"), ("host", "a")],
        now_ms - 5_000,
        0.5,
    );
    TestApi::new(Arc::new(source))
}

fn now_ms() -> i64 {
    i64::try_from(crate::unix_ms()).expect("a sane clock")
}

#[tokio::test]
async fn federates_the_latest_sample_of_matching_series_with_timestamps() {
    let now = now_ms();
    let api = api(now);
    let request = Request::get("/federate?match[]=up&match[]=%7B__name__%3D%22node_load1%22%7D")
        .body(Body::empty())
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = format!(
        "# TYPE node_load1 untyped\nnode_load1{{host=\"a\"}} 0.5 {}\n\
         # TYPE up untyped\nup{{host=\"a\"}} 1.0 {}\nup{{host=\"b\"}} 0.0 {}\n",
        now - 5_000,
        now - 10_000,
        now - 10_000
    );
    assert_eq!(body, expected);
}

#[tokio::test]
async fn form_post_works_like_get() {
    let now = now_ms();
    let api = api(now);
    let request = Request::post("/federate")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("match[]=up%7Bhost%3D%22b%22%7D"))
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        format!("# TYPE up untyped\nup{{host=\"b\"}} 0.0 {}\n", now - 10_000)
    );
}

#[tokio::test]
async fn missing_or_bad_match_is_bad_data() {
    let api = api(now_ms());
    for uri in [
        "/federate",
        "/federate?match[]=rate(up%5B5m%5D)",
        "/federate?match[]=%7B",
    ] {
        let request = Request::get(uri).body(Body::empty()).expect("request");
        let (status, body) = api.send(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body.contains("bad_data"), "{uri}: {body}");
    }
}

#[tokio::test]
async fn federate_needs_a_token() {
    let api = api(now_ms());
    let request = Request::get("/federate?match[]=up")
        .header("authorization", "Bearer nope")
        .body(Body::empty())
        .expect("request");
    let (status, _) = api.send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
