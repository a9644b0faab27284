//! Delivery: order, outages, Retry-After, giving up, restarts.

use super::*;

#[tokio::test(start_paused = true)]
async fn enqueued_notifications_are_delivered_in_order_and_deleted() {
    let s = setup(config());
    let fake = Fake::default();
    let workers = s.outbox.start(vec![receiver("ops", &fake)], &s.shutdown);
    let ids = s
        .outbox
        .enqueue((1..=3).map(|i| notification("ops", i)).collect())
        .unwrap();
    assert_eq!(ids, [1, 2, 3]);
    until("three deliveries", || fake.delivered().len() == 3).await;
    assert_eq!(fake.delivered(), [1, 2, 3]);
    until("the outbox is empty", || s.outbox.counts() == (0, 0)).await;
    assert!(s.outbox.list(EntryFilter::All).unwrap().is_empty());
    let labels = [("receiver", "ops"), ("kind", "webhook")];
    assert_eq!(
        metric(&s.registry, "muster_collector_notifications_total", &labels),
        3.0
    );
    assert_eq!(
        metric(
            &s.registry,
            "muster_collector_notification_latency_seconds",
            &[("kind", "webhook")]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &s.registry,
            "muster_collector_outbox_entries",
            &[("state", "pending")]
        ),
        0.0
    );
    workers.stop();
    workers.wait().await;
}

#[tokio::test(start_paused = true)]
async fn receiver_down_for_60s_then_back_gets_every_notification_in_order() {
    let s = setup(config());
    let fake = Fake::down_for(std::time::Duration::from_secs(60));
    let other = Fake::default();
    let started = Instant::now();
    let workers = s.outbox.start(
        vec![receiver("ops", &fake), receiver("other", &other)],
        &s.shutdown,
    );
    let mut batch: Vec<Notification> = (1..=5).map(|i| notification("ops", i)).collect();
    batch.push(notification("other", 100));
    s.outbox.enqueue(batch).unwrap();
    // The other receiver is not held up by the one that is down.
    until("the other receiver's delivery", || {
        other.delivered() == [100]
    })
    .await;
    assert!(fake.delivered().is_empty());
    until("five deliveries", || fake.delivered().len() == 5).await;
    assert_eq!(fake.delivered(), [1, 2, 3, 4, 5]);
    let attempts = fake.attempts();
    let failed = attempts.iter().filter(|a| !a.ok).count();
    assert!(
        failed >= 4,
        "backoff from 1s doubling needs several tries in 60s: {failed}"
    );
    assert!(
        attempts.iter().filter(|a| !a.ok).all(|a| a.number == 1),
        "only the head is tried while down"
    );
    let first_ok = attempts.iter().find(|a| a.ok).unwrap();
    assert!(first_ok.at >= started + std::time::Duration::from_secs(60));
    let failures = metric(
        &s.registry,
        "muster_collector_notifications_failed_total",
        &[("receiver", "ops"), ("reason", "server_error")],
    );
    assert_eq!(failures, failed as f64);
    until("the outbox is empty", || s.outbox.counts() == (0, 0)).await;
    workers.stop();
    workers.wait().await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_the_least_wait() {
    let s = setup(config());
    let wait = std::time::Duration::from_secs(90);
    let fake = Fake::answering([NotifyError::retryable(
        FailureReason::RateLimited,
        "slow down",
        Some(wait),
    )]);
    let workers = s.outbox.start(vec![receiver("ops", &fake)], &s.shutdown);
    s.outbox.enqueue(vec![notification("ops", 1)]).unwrap();
    until("the first attempt is recorded", || {
        s.outbox
            .list(EntryFilter::Pending)
            .unwrap()
            .first()
            .is_some_and(|e| e.attempts == 1)
    })
    .await;
    let entry = s.outbox.get(1).unwrap().unwrap();
    let attempted = entry.last_attempt_ms.unwrap();
    assert!(entry.next_attempt_ms >= attempted + 90_000, "{entry:?}");
    assert_eq!(entry.last_reason, Some(FailureReason::RateLimited));
    until("the retry is delivered", || fake.delivered() == [1]).await;
    let attempts = fake.attempts();
    assert!(attempts[1].at >= attempts[0].at + wait, "{attempts:?}");
    workers.stop();
    workers.wait().await;
}

#[tokio::test(start_paused = true)]
async fn a_long_outage_dead_letters_after_dead_letter_after() {
    let s = setup(OutboxConfig {
        dead_letter_after: muster_shared::config::Duration::from_secs(600),
        ..config()
    });
    let fake = Fake::down_for(std::time::Duration::from_secs(100_000));
    let started = Instant::now();
    let workers = s.outbox.start(vec![receiver("ops", &fake)], &s.shutdown);
    s.outbox
        .enqueue(vec![notification("ops", 1), notification("ops", 2)])
        .unwrap();
    until("both are dead letters", || s.outbox.counts() == (0, 2)).await;
    let dead = s.outbox.list(EntryFilter::Dead).unwrap();
    for letter in &dead {
        assert_eq!(letter.last_reason, Some(FailureReason::ServerError));
        assert!(letter.dead_at_ms.unwrap() >= T0_MS + 600_000, "{letter:?}");
    }
    // Given up within the backoff cap after the limit, not a day later.
    assert!(Instant::now() < started + std::time::Duration::from_secs(600 + 2 * 300 + 60));
    assert!(fake.delivered().is_empty());
    workers.stop();
    workers.wait().await;
}

#[tokio::test(start_paused = true)]
async fn stored_notifications_are_delivered_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A collector that enqueues, then dies before any worker ran.
        let outbox = open(dir.path(), config(), &Registry::new());
        let ids = outbox
            .enqueue(vec![notification("ops", 1), notification("ops", 2)])
            .unwrap();
        assert_eq!(ids, [1, 2]);
    }
    let registry = Registry::new();
    let outbox = open(dir.path(), config(), &registry);
    assert_eq!(outbox.counts(), (2, 0));
    assert_eq!(
        metric(
            &registry,
            "muster_collector_outbox_entries",
            &[("state", "pending")]
        ),
        2.0
    );
    let fake = Fake::default();
    let shutdown = CancellationToken::new();
    let workers = outbox.start(vec![receiver("ops", &fake)], &shutdown);
    until("both are delivered", || fake.delivered() == [1, 2]).await;
    // Ids go on from the last one stored.
    assert_eq!(outbox.enqueue(vec![notification("ops", 3)]).unwrap(), [3]);
    until("the new one is delivered", || fake.delivered() == [1, 2, 3]).await;
    shutdown.cancel();
    workers.wait().await;
}

#[tokio::test(start_paused = true)]
async fn workers_restart_with_new_receivers() {
    let s = setup(config());
    let first = Fake::default();
    let workers = s.outbox.start(vec![receiver("ops", &first)], &s.shutdown);
    s.outbox.enqueue(vec![notification("ops", 1)]).unwrap();
    until("delivered by the first worker", || first.delivered() == [1]).await;
    workers.stop();
    workers.wait().await;
    s.outbox.enqueue(vec![notification("ops", 2)]).unwrap();
    let second = Fake::default();
    let workers = s.outbox.start(vec![receiver("ops", &second)], &s.shutdown);
    until("delivered by the second worker", || {
        second.delivered() == [2]
    })
    .await;
    s.shutdown.cancel();
    workers.wait().await;
    assert_eq!(first.delivered(), [1]);
}

/// End to end in real time: the real webhook receiver against a local server that answers
/// 503 three times, then 200.

#[tokio::test]
async fn a_real_receiver_gets_everything_after_its_errors() {
    let server = testkit::TestServer::start(testkit::reply(200, "")).await;
    server.script((0..3).map(|_| testkit::reply(503, "busy")));
    let mut receiver_config = ReceiverConfig::new("ops", ReceiverKind::Webhook);
    receiver_config.url = Some(muster_shared::config::Secret::new(server.url("/hook")));
    let receiver = Receiver::build(&receiver_config).unwrap();
    let s = setup(OutboxConfig {
        min_backoff: muster_shared::config::Duration(std::time::Duration::from_millis(10)),
        max_backoff: muster_shared::config::Duration(std::time::Duration::from_millis(50)),
        ..config()
    });
    let workers = s.outbox.start(vec![receiver], &s.shutdown);
    let batch = (1..=3)
        .map(|i| Notification {
            group_key: format!("group-{i}"),
            ..notification("ops", i)
        })
        .collect();
    s.outbox.enqueue(batch).unwrap();
    until("three failed and three accepted requests", || {
        server.requests().len() == 6
    })
    .await;
    let groups: Vec<String> = server
        .requests()
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap())
        .map(|body| body["groupKey"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        groups,
        [
            "group-1", "group-1", "group-1", "group-1", "group-2", "group-3"
        ]
    );
    until("the outbox is empty", || s.outbox.counts() == (0, 0)).await;
    let failed = metric(
        &s.registry,
        "muster_collector_notifications_failed_total",
        &[("receiver", "ops"), ("reason", "server_error")],
    );
    assert_eq!(failed, 3.0);
    workers.stop();
    workers.wait().await;
    drop(s.dir);
}
