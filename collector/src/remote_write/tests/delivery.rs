//! Delivery: retries on 5xx, 429 and timeouts, no retry on 400, the full queue.

use super::*;

#[tokio::test]
async fn server_error_then_ok_is_retried_and_delivered_once() {
    let (receiver, port) = fake_receiver([reply(500), reply(200)]).await;
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config(&url)], metrics.registry(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("node_load1", 0..3), series("node_load5", 0..2)]);
    until("the retried batch is accepted", || {
        receiver.accepted().len() == 1
    })
    .await;
    stop(&rw, &shutdown).await;

    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "one failure, one success, nothing more");
    assert_eq!(seen[0].request, seen[1].request);
    let request = &seen[1].request;
    assert_eq!(request.timeseries.len(), 2);
    let labels: Vec<(&str, &str)> = request.timeseries[0]
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        labels,
        [("__name__", "node_load1"), ("cpu", "0"), ("host", "web1")]
    );
    let points: Vec<(i64, f64)> = request.timeseries[0]
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value))
        .collect();
    assert_eq!(
        points,
        [
            (1_700_000_000_000, 0.5),
            (1_700_000_000_001, 1.5),
            (1_700_000_000_002, 2.5)
        ]
    );
    let headers = &seen[1].headers;
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
    assert_eq!(
        headers["user-agent"],
        format!("muster-collector/{}", muster_shared::version::VERSION).as_str()
    );
    assert!(!headers.contains_key("authorization"));

    let remote = [("remote", url.as_str())];
    let sent = [("remote", url.as_str()), ("result", "sent")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_samples_total",
            &sent
        ),
        5.0
    );
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_retries_total",
            &remote
        ),
        1.0
    );
    let server_errors = [("remote", url.as_str()), ("reason", "server_error")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_failures_total",
            &server_errors
        ),
        1.0
    );
    assert!(
        metric(
            &metrics,
            "muster_collector_remote_write_last_success_timestamp_seconds",
            &remote
        ) > 1e9
    );
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_queue_samples",
            &remote
        ),
        0.0
    );
    assert!(
        metrics
            .render()
            .contains("muster_collector_remote_write_send_duration_seconds_count")
    );
}

#[tokio::test]
async fn rate_limited_with_retry_after_is_retried() {
    let limited = Reply {
        retry_after: Some("1"),
        ..reply(429)
    };
    let (receiver, port) = fake_receiver([limited]).await;
    let mut config = config(&format!("http://127.0.0.1:{port}/api/v1/write"));
    config.name = Some("vm".to_owned());
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], metrics.registry(), shutdown.clone()).unwrap();
    assert_eq!(rw.remotes(), ["vm"]);
    let started = tokio::time::Instant::now();
    rw.enqueue(&[series("up", 0..1)]);
    until("the batch is accepted after the 429", || {
        receiver.accepted().len() == 1
    })
    .await;
    // The backoff alone (10-50 ms) would have retried far sooner than Retry-After's second.
    assert!(started.elapsed() >= Duration::from_secs(1));
    stop(&rw, &shutdown).await;
    let limited = [("remote", "vm"), ("reason", "rate_limited")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_failures_total",
            &limited
        ),
        1.0
    );
    assert_eq!(receiver.seen().len(), 2);
}

#[tokio::test]
async fn client_error_is_not_retried_but_counted_and_logged_once() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let refused = Reply {
        body: "out of order sample for series up{host=\"web1\"}",
        ..reply(400)
    };
    let (receiver, port) = fake_receiver([refused.clone(), refused]).await;
    let mut config = config(&format!("http://127.0.0.1:{port}/api/v1/write"));
    config.name = Some("vm".to_owned());
    config.max_samples_per_send = 2;
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], metrics.registry(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("up", 0..6)]);
    until("three batches answered", || receiver.seen().len() == 3).await;
    stop(&rw, &shutdown).await;

    assert_eq!(
        receiver.seen().len(),
        3,
        "a refused batch is never sent again"
    );
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        accepted[0].timeseries[0].samples[0].timestamp,
        1_700_000_000_004
    );
    let rejected = [("remote", "vm"), ("result", "dropped_rejected")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_samples_total",
            &rejected
        ),
        4.0
    );
    let retries = [("remote", "vm")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_retries_total",
            &retries
        ),
        0.0
    );
    let text = logs.text();
    let refusals: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("remote write batch refused"))
        .collect();
    assert_eq!(
        refusals.len(),
        1,
        "the same refusal is logged once:\n{text}"
    );
    assert!(refusals[0].contains("HTTP 400"), "{text}");
    assert!(refusals[0].contains("out of order sample"), "{text}");
}

#[tokio::test]
async fn slow_server_times_out_and_is_retried() {
    let slow = Reply {
        delay: Duration::from_secs(5),
        ..reply(200)
    };
    let (receiver, port) = fake_receiver([slow]).await;
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let mut config = config(&url);
    config.timeout = muster_shared::config::Duration(Duration::from_millis(200));
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], metrics.registry(), shutdown.clone()).unwrap();
    rw.enqueue(&[series("up", 0..2)]);
    until("a second attempt after the timeout", || {
        receiver.seen().len() >= 2
    })
    .await;
    stop(&rw, &shutdown).await;
    let timeouts = [("remote", url.as_str()), ("reason", "timeout")];
    assert!(
        metric(
            &metrics,
            "muster_collector_remote_write_failures_total",
            &timeouts
        ) >= 1.0
    );
    let sent = [("remote", url.as_str()), ("result", "sent")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_samples_total",
            &sent
        ),
        2.0
    );
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_counts_them() {
    let (receiver, port) = fake_receiver([]).await;
    let mut config = config(&format!("http://127.0.0.1:{port}/api/v1/write"));
    config.name = Some("vm".to_owned());
    config.queue_capacity = 10;
    config.max_samples_per_send = 10;
    let metrics = Metrics::new().unwrap();
    let shutdown = CancellationToken::new();
    let rw = RemoteWrite::start(&[config], metrics.registry(), shutdown.clone()).unwrap();
    // No await between the pushes: the sender cannot take anything in between.
    rw.enqueue(&[series("a", 0..8)]);
    rw.enqueue(&[series("b", 0..8)]);
    let queued = [("remote", "vm")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_queue_samples",
            &queued
        ),
        10.0
    );
    stop(&rw, &shutdown).await;
    let dropped = [("remote", "vm"), ("result", "dropped_queue_full")];
    assert_eq!(
        metric(
            &metrics,
            "muster_collector_remote_write_samples_total",
            &dropped
        ),
        6.0
    );
    let accepted = receiver.accepted();
    let kept: Vec<(String, i64)> = accepted
        .iter()
        .flat_map(|r| &r.timeseries)
        .flat_map(|s| {
            let name = s.labels[0].value.clone();
            s.samples
                .iter()
                .map(move |p| (name.clone(), p.timestamp - 1_700_000_000_000))
        })
        .collect();
    let expected: Vec<(String, i64)> = (6..8)
        .map(|t| ("a".to_owned(), t))
        .chain((0..8).map(|t| ("b".to_owned(), t)))
        .collect();
    assert_eq!(kept, expected, "the newest ten are sent at shutdown");
}
