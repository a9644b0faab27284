//! The query API through the router, without a socket: Prometheus's answer shapes, GET
//! and form POST, repeated `match[]`, and its error shapes and codes.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::test_kit::TestApi;
use crate::query::MemorySource;
use crate::series::{Labels, Matcher, SeriesSamples, SeriesSource, SourceError};

fn api() -> TestApi {
    let source = MemorySource::new();
    for (series, values) in [
        (r#"up{host="a",job="node"}"#, "1 1 1"),
        (r#"up{host="b",job="node"}"#, "1 0 0"),
        (r#"load{host="a",cpu="0"}"#, "0.5 0.25 2"),
    ] {
        source
            .add_notation(series, values, 0, 60_000)
            .expect("series");
    }
    TestApi::new(Arc::new(source))
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Asserts a Prometheus error answer and returns its message.
#[track_caller]
fn error(answer: (StatusCode, String), status: StatusCode, error_type: &str) -> String {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    let body = parse(&body);
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["errorType"], error_type, "{body}");
    body["error"].as_str().expect("an error message").to_owned()
}

#[tokio::test]
async fn instant_query_answers_a_vector_in_prometheus_shape() {
    let api = api();
    let (status, body) = api
        .get("/api/v1/query?query=up%20%3D%3D%201&time=120")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","host":"a","job":"node"},"value":[120,"1"]}]}}"#
    );
}

#[tokio::test]
async fn form_post_gives_the_same_answer_as_get() {
    let api = api();
    let get = api
        .get("/api/v1/query?query=sum%20by%20(host)%20(up)&time=1970-01-01T00:02:00Z")
        .await;
    let post = api
        .post_form("/api/v1/query", "query=sum+by+%28host%29+%28up%29&time=120")
        .await;
    assert_eq!(get.0, StatusCode::OK, "{}", get.1);
    assert_eq!(get, post);
}

#[tokio::test]
async fn body_parameters_win_over_url_parameters() {
    let api = api();
    let (status, body) = api
        .post_form("/api/v1/query?query=nothing&time=5", "query=up&time=60.5")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body = parse(&body);
    assert_eq!(body["data"]["result"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["data"]["result"][0]["value"][0], json!(60.5));
}

#[tokio::test]
async fn scalars_and_special_values_are_spelled_as_prometheus_does() {
    let api = api();
    for (query, want) in [
        ("1%2F0", "+Inf"),
        ("-1%2F0", "-Inf"),
        ("0%2F0", "NaN"),
        ("0.1", "0.1"),
    ] {
        let (status, body) = api
            .get(&format!("/api/v1/query?query={query}&time=1.5"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            format!(
                r#"{{"status":"success","data":{{"resultType":"scalar","result":[1.500,"{want}"]}}}}"#
            )
        );
    }
    let (_, body) = api.get("/api/v1/query?query=%22hi%22&time=1").await;
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"string","result":[1,"hi"]}}"#
    );
}

#[tokio::test]
async fn instant_query_without_time_is_evaluated_now() {
    let api = api();
    let (status, body) = api.get("/api/v1/query?query=time()").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let now = crate::unix_ms() as f64 / 1000.0;
    let at = parse(&body)["data"]["result"][0].as_f64().expect("a time");
    assert!((now - at).abs() < 3600.0, "{at} is not about now ({now})");
}

#[tokio::test]
async fn range_query_answers_a_matrix() {
    let api = api();
    let (status, body) = api
        .get("/api/v1/query_range?query=up&start=0&end=120&step=60")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        concat!(
            r#"{"status":"success","data":{"resultType":"matrix","result":["#,
            r#"{"metric":{"__name__":"up","host":"a","job":"node"},"values":[[0,"1"],[60,"1"],[120,"1"]]},"#,
            r#"{"metric":{"__name__":"up","host":"b","job":"node"},"values":[[0,"1"],[60,"0"],[120,"0"]]}]}}"#
        )
    );
}

#[tokio::test]
async fn range_query_takes_rfc3339_and_duration_steps_by_post() {
    let api = api();
    let (status, body) = api
        .post_form(
            "/api/v1/query_range",
            "query=sum(load)&start=1970-01-01T00:00:30Z&end=1970-01-01T00:02:00Z&step=1m",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body = parse(&body);
    assert_eq!(body["data"]["resultType"], "matrix");
    assert_eq!(
        body["data"]["result"][0]["values"],
        json!([[30, "0.5"], [90, "0.25"]])
    );
    assert_eq!(body["data"]["result"][0]["metric"], json!({}));
}

#[tokio::test]
async fn series_unions_repeated_match_by_get_and_post() {
    let api = api();
    let want = json!([
        {"__name__": "load", "cpu": "0", "host": "a"},
        {"__name__": "up", "host": "a", "job": "node"},
        {"__name__": "up", "host": "b", "job": "node"},
    ]);
    let (status, body) = api
        .get("/api/v1/series?match[]=up&match[]=load&match[]=%7Bhost%3D%22a%22%7D")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(parse(&body)["data"], want);
    let (status, body) = api
        .post_form(
            "/api/v1/series",
            "match%5B%5D=up&match%5B%5D=load&start=0&end=200",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(parse(&body)["data"], want);
}

#[tokio::test]
async fn series_respects_the_time_range() {
    let api = api();
    let (_, body) = api.get("/api/v1/series?match[]=up&start=500&end=600").await;
    assert_eq!(parse(&body)["data"], json!([]));
}

#[tokio::test]
async fn labels_and_label_values_with_and_without_match() {
    let api = api();
    let (status, body) = api.get("/api/v1/labels").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        parse(&body)["data"],
        json!(["__name__", "cpu", "host", "job"])
    );
    let (_, body) = api.post_form("/api/v1/labels", "match[]=up").await;
    assert_eq!(parse(&body)["data"], json!(["__name__", "host", "job"]));
    let (_, body) = api.get("/api/v1/label/host/values").await;
    assert_eq!(parse(&body)["data"], json!(["a", "b"]));
    let (_, body) = api
        .get("/api/v1/label/__name__/values?match[]=%7Bhost%3D%22b%22%7D")
        .await;
    assert_eq!(parse(&body)["data"], json!(["up"]));
}

#[tokio::test]
async fn bad_parameters_are_bad_data() {
    let api = api();
    let cases = [
        (
            "/api/v1/query?query=up&time=yesterday",
            r#"invalid parameter "time": cannot parse "yesterday" to a valid timestamp"#,
        ),
        (
            "/api/v1/query",
            r#"invalid parameter "query": parse error: no expression found in input"#,
        ),
        (
            "/api/v1/query?query=up&timeout=soon",
            r#"invalid parameter "timeout": cannot parse "soon" to a valid duration"#,
        ),
        (
            "/api/v1/query?query=histogram_quantile(0.9,%20up)",
            r#"invalid parameter "query": function `histogram_quantile` is not supported"#,
        ),
        (
            "/api/v1/query?query=rate(up[5m:1m])",
            r#"invalid parameter "query": subqueries are not supported"#,
        ),
        (
            "/api/v1/query_range?query=up&end=60&step=15",
            r#"invalid parameter "start": cannot parse "" to a valid timestamp"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=60",
            r#"invalid parameter "step": cannot parse "" to a valid duration"#,
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=60&step=0",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ),
        (
            "/api/v1/query_range?query=up&start=60&end=0&step=1",
            "end timestamp must not be before start time",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=12000&step=1",
            "exceeded maximum resolution of 11000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ),
        (
            "/api/v1/query_range?query=up[5m]&start=0&end=60&step=1",
            r#"invalid parameter "query": invalid expression type "range vector" for range query, must be Scalar or instant Vector"#,
        ),
        ("/api/v1/series", "no match[] parameter provided"),
        (
            "/api/v1/series?match[]=rate(up[5m])",
            r#"invalid parameter "match[]": "rate(up[5m])" is not a series selector"#,
        ),
        (
            "/api/v1/series?match[]=up&start=10&end=5",
            r#"invalid parameter "end": end timestamp must not be before start time"#,
        ),
        ("/api/v1/label/1bad/values", r#"invalid label name: "1bad""#),
    ];
    for (uri, want) in cases {
        let message = error(api.get(uri).await, StatusCode::BAD_REQUEST, "bad_data");
        assert_eq!(message, want, "{uri}");
    }
}

#[tokio::test]
async fn matching_errors_are_execution_errors() {
    let api = api();
    let message = error(
        api.get("/api/v1/query?query=load%20*%20on()%20up&time=120")
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "execution",
    );
    assert!(message.starts_with("found duplicate series"), "{message}");
}

#[tokio::test]
async fn a_query_past_its_timeout_is_a_timeout() {
    let api = api();
    let message = error(
        api.get("/api/v1/query?query=up&time=60&timeout=0s").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
    );
    assert!(message.starts_with("query timed out in"), "{message}");
}

/// A store that fails on every call.
#[derive(Debug)]
struct FailingSource;

impl SeriesSource for FailingSource {
    fn select(
        &self,
        _: &[Matcher],
        _: i64,
        _: i64,
        _: usize,
    ) -> Result<Vec<SeriesSamples>, SourceError> {
        Err(SourceError::Store(
            "disk on fire at /var/lib/muster".to_owned(),
        ))
    }
    fn series(&self, _: &[Matcher], _: i64, _: i64, _: usize) -> Result<Vec<Labels>, SourceError> {
        Err(SourceError::Store(
            "disk on fire at /var/lib/muster".to_owned(),
        ))
    }
    fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, SourceError> {
        Err(SourceError::Store(
            "disk on fire at /var/lib/muster".to_owned(),
        ))
    }
    fn label_values(
        &self,
        _: &str,
        _: &[Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<String>, SourceError> {
        Err(SourceError::Store(
            "disk on fire at /var/lib/muster".to_owned(),
        ))
    }
}

#[tokio::test]
async fn store_failures_are_internal_and_keep_their_detail_in_the_log() {
    let api = TestApi::new(Arc::new(FailingSource));
    for uri in [
        "/api/v1/query?query=up&time=1",
        "/api/v1/series?match[]=up",
        "/api/v1/labels",
    ] {
        let message = error(
            api.get(uri).await,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
        );
        assert!(!message.contains("disk on fire"), "{uri}: {message}");
    }
}

#[tokio::test]
async fn the_query_api_needs_a_token() {
    let api = api();
    let request = axum::http::Request::get("/api/v1/query?query=up")
        .header("authorization", "Bearer nope")
        .body(axum::body::Body::empty())
        .expect("a request");
    let (status, _) = api.send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
