use super::*;
use crate::probe::certs::testkit::{chain, server_config, unix};
use crate::probe::condition::Condition;
use crate::probe::config::Kind;
use crate::probe::testkit::{closed_port, http_server};

fn config(target: &str, options: HttpOptions) -> ProbeConfig {
    let mut c = ProbeConfig::new("api", Kind::Http, target);
    c.http = Some(options);
    c
}

async fn run(config: &ProbeConfig) -> Outcome {
    let prober = HttpProber::new(config, &mut RootsCache::default()).unwrap();
    let mut out = Outcome::default();
    prober.probe(&mut out).await;
    out
}

/// The kind's series of `out`, by name.
fn series(out: &Outcome) -> Vec<(&'static str, f64)> {
    out.series().iter().map(|(f, v)| (f.name, *v)).collect()
}

#[tokio::test]
async fn a_2xx_answer_succeeds_with_blackbox_series() {
    let server = http_server(None).await;
    let out = run(&config(
        &format!("http://{}/ok", server.addr),
        HttpOptions::default(),
    ))
    .await;
    assert_eq!(out.failure(), None);
    assert_eq!(
        series(&out),
        vec![
            ("probe_http_status_code", 200.0),
            ("probe_http_content_length", 9.0),
            ("probe_http_redirects", 0.0),
            ("probe_http_ssl", 0.0),
        ]
    );
    assert_eq!(out.facts.status, Some(200));
    assert_eq!(out.facts.connected, Some(true));
    assert_eq!(out.facts.body, None, "no condition reads the body");
}

#[tokio::test]
async fn a_status_outside_the_accepted_ones_fails_with_its_code() {
    let server = http_server(None).await;
    let fail = format!("http://{}/fail", server.addr);
    let out = run(&config(&fail, HttpOptions::default())).await;
    assert_eq!(out.failure(), Some("status 503"));
    assert_eq!(out.value("probe_http_status_code"), Some(503.0));

    let only_503 = HttpOptions {
        valid_status_codes: vec![503],
        ..HttpOptions::default()
    };
    assert_eq!(run(&config(&fail, only_503.clone())).await.failure(), None);
    let ok = format!("http://{}/ok", server.addr);
    assert_eq!(
        run(&config(&ok, only_503)).await.failure(),
        Some("status 200")
    );
}

#[tokio::test]
async fn redirects_are_followed_counted_and_limited() {
    let server = http_server(None).await;
    let hops = format!("http://{}/hop/3", server.addr);
    let out = run(&config(&hops, HttpOptions::default())).await;
    assert_eq!(out.failure(), None);
    assert_eq!(out.value("probe_http_redirects"), Some(3.0));
    assert_eq!(out.value("probe_http_status_code"), Some(200.0));

    let limited = HttpOptions {
        max_redirects: 2,
        ..HttpOptions::default()
    };
    let out = run(&config(&hops, limited)).await;
    assert_eq!(out.failure(), Some("status 302"));
    assert_eq!(out.value("probe_http_redirects"), Some(2.0));

    let off = HttpOptions {
        follow_redirects: false,
        valid_status_codes: vec![302],
        ..HttpOptions::default()
    };
    let out = run(&config(&hops, off)).await;
    assert_eq!(out.failure(), None);
    assert_eq!(out.value("probe_http_redirects"), Some(0.0));
    assert_eq!(out.value("probe_http_status_code"), Some(302.0));
}

#[tokio::test]
async fn a_body_pattern_that_does_not_match_fails_the_run() {
    let server = http_server(None).await;
    let ok = format!("http://{}/ok", server.addr);
    let matching = HttpOptions {
        body_pattern: Some(TextPattern::new(r"status\s+ok").unwrap()),
        ..HttpOptions::default()
    };
    let out = run(&config(&ok, matching)).await;
    assert_eq!(out.failure(), None);
    assert_eq!(out.value("probe_failed_due_to_regex"), Some(0.0));

    let missing = HttpOptions {
        body_pattern: Some(TextPattern::new("^healthy$").unwrap()),
        ..HttpOptions::default()
    };
    let out = run(&config(&ok, missing)).await;
    assert_eq!(out.failure(), Some("body did not match body_pattern"));
    assert_eq!(out.value("probe_failed_due_to_regex"), Some(1.0));
}

#[tokio::test]
async fn method_headers_and_body_are_sent_and_the_body_kept_for_conditions() {
    let server = http_server(None).await;
    let options = HttpOptions {
        method: "POST".to_owned(),
        headers: [("X-Probe".to_owned(), Secret::new("abc"))].into(),
        body: Some("hello".to_owned()),
        ..HttpOptions::default()
    };
    let mut c = config(&format!("http://{}/echo", server.addr), options);
    c.conditions = vec![Condition::parse("[BODY] contains \"hello\"").unwrap()];
    let out = run(&c).await;
    assert_eq!(out.failure(), None);
    assert_eq!(out.facts.body.as_deref(), Some("POST abc\nhello"));
}

#[tokio::test]
async fn an_answer_without_content_length_reports_minus_one() {
    let server = http_server(None).await;
    let out = run(&config(
        &format!("http://{}/chunked", server.addr),
        HttpOptions::default(),
    ))
    .await;
    assert_eq!(out.failure(), None);
    assert_eq!(out.value("probe_http_content_length"), Some(-1.0));
}

#[tokio::test]
async fn a_refused_connection_reports_no_answer() {
    let addr = closed_port().await;
    let out = run(&config(&format!("http://{addr}/"), HttpOptions::default())).await;
    assert_eq!(out.failure(), Some("connection refused"));
    assert_eq!(out.value("probe_http_status_code"), Some(0.0));
    assert_eq!(out.facts.connected, Some(false));
    assert_eq!(out.facts.status, None);
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_a_timeout() {
    let server = http_server(None).await;
    let mut c = config(
        &format!("http://{}/slow", server.addr),
        HttpOptions::default(),
    );
    c.timeout = muster_shared::config::Duration(std::time::Duration::from_millis(200));
    let out = run(&c).await;
    assert_eq!(out.failure(), Some("timeout"));
    assert_eq!(out.value("probe_http_status_code"), Some(0.0));
}

#[tokio::test]
async fn https_reports_the_chain_expiry_and_verifies_against_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs = chain((2031, 5, 1), (2030, 2, 3));
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &certs.ca_pem).unwrap();
    let server = http_server(Some(server_config(&certs))).await;
    let target = format!("https://{}/ok", server.addr);

    let trusted = HttpOptions {
        ca_file: Some(ca_file),
        ..HttpOptions::default()
    };
    let out = run(&config(&target, trusted)).await;
    assert_eq!(out.failure(), None);
    assert_eq!(out.value("probe_http_ssl"), Some(1.0));
    assert_eq!(
        out.value("probe_ssl_earliest_cert_expiry"),
        Some(unix((2030, 2, 3)))
    );
    assert!(out.facts.cert_expiry.is_some());

    // Another CA: refused, yet the expiry of what was shown is reported.
    let other = chain((2031, 5, 1), (2030, 2, 3));
    let other_file = dir.path().join("other.pem");
    std::fs::write(&other_file, &other.ca_pem).unwrap();
    let untrusted = HttpOptions {
        ca_file: Some(other_file.clone()),
        ..HttpOptions::default()
    };
    let out = run(&config(&target, untrusted)).await;
    assert_eq!(
        out.failure(),
        Some("tls: certificate signed by an unknown authority")
    );
    assert_eq!(out.value("probe_http_status_code"), Some(0.0));
    assert_eq!(
        out.value("probe_ssl_earliest_cert_expiry"),
        Some(unix((2030, 2, 3)))
    );

    let insecure = HttpOptions {
        ca_file: Some(other_file),
        insecure_skip_verify: true,
        ..HttpOptions::default()
    };
    let out = run(&config(&target, insecure)).await;
    assert_eq!(out.failure(), None);
    assert_eq!(out.value("probe_http_ssl"), Some(1.0));
}

#[test]
fn options_problems_name_the_key_and_hide_header_values() {
    let options = HttpOptions {
        method: "GE T".to_owned(),
        headers: [
            ("Bad Name".to_owned(), Secret::new("x")),
            ("Authorization".to_owned(), Secret::new("Bearer s3cret\n")),
        ]
        .into(),
        valid_status_codes: vec![200, 999],
        max_redirects: 1000,
        ..HttpOptions::default()
    };
    let mut out = Vec::new();
    options.problems("probe \"api\"", &mut out);
    assert_eq!(
        out,
        vec![
            "probe \"api\": method \"GE T\" is not an HTTP method",
            "probe \"api\": the value of header \"Authorization\" holds characters a header cannot",
            "probe \"api\": header name \"Bad Name\" is not valid",
            "probe \"api\": valid_status_codes: 999 is not an HTTP status (100-599)",
            "probe \"api\": max_redirects must be at most 100",
        ]
    );
    assert!(!format!("{out:?}{options:?}").contains("s3cret"));

    let mut out = Vec::new();
    target_problems("ftp://x/", "p", &mut out);
    target_problems("https://user:pw@x/", "p", &mut out);
    target_problems("not a url", "p", &mut out);
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(
        out[0].contains("must be an http:// or https:// URL"),
        "{out:?}"
    );
    assert!(out[1].contains("must not hold credentials"), "{out:?}");
    assert!(!out[1].contains("pw"), "{out:?}");
    assert!(out[2].contains("is not a URL"), "{out:?}");
}
