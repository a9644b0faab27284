//! Dead letters and the outbox's API: refusals, unknown receivers, retention, deletes.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_permanent_refusal_is_a_visible_dead_letter_and_the_queue_moves_on() {
    let s = setup(config());
    let fake = Fake::answering([refused()]);
    let workers = s.outbox.start(vec![receiver("ops", &fake)], &s.shutdown);
    s.outbox
        .enqueue(vec![notification("ops", 1), notification("ops", 2)])
        .unwrap();
    until("the second is delivered", || fake.delivered() == [2]).await;
    let dead = s.outbox.list(EntryFilter::Dead).unwrap();
    assert_eq!(dead.len(), 1);
    let letter = &dead[0];
    assert_eq!(
        (letter.id, letter.state, letter.attempts),
        (1, EntryState::Dead, 1)
    );
    assert_eq!(letter.last_reason, Some(FailureReason::RejectedBody));
    assert!(letter.last_error.as_deref().unwrap().contains("HTTP 400"));
    assert_eq!(letter.dead_at_ms, letter.last_attempt_ms);
    assert!(s.outbox.list(EntryFilter::Pending).unwrap().is_empty());
    assert_eq!(
        metric(
            &s.registry,
            "muster_collector_outbox_entries",
            &[("state", "dead")]
        ),
        1.0
    );

    // Put back, it is delivered.
    assert!(matches!(
        s.outbox.retry_dead(2),
        Err(OutboxError::NotFound { id: 2 })
    ));
    let back = s.outbox.retry_dead(1).unwrap();
    assert_eq!((back.state, back.attempts), (EntryState::Pending, 0));
    until("the retried dead letter is delivered", || {
        fake.delivered() == [2, 1]
    })
    .await;
    until("the outbox is empty", || s.outbox.counts() == (0, 0)).await;
    workers.stop();
    workers.wait().await;
}

#[tokio::test(start_paused = true)]
async fn notifications_for_unknown_receivers_are_dead_letters() {
    let s = setup(config());
    s.outbox.enqueue(vec![notification("gone", 1)]).unwrap();
    let fake = Fake::default();
    let workers = s.outbox.start(vec![receiver("ops", &fake)], &s.shutdown);
    until("the janitor dead-letters it", || {
        s.outbox.counts() == (0, 1)
    })
    .await;
    let ids = s
        .outbox
        .enqueue(vec![notification("gone", 2), notification("ops", 3)])
        .unwrap();
    assert_eq!(ids, [2, 3]);
    until("the known one is delivered", || fake.delivered() == [3]).await;
    let dead = s.outbox.list(EntryFilter::Dead).unwrap();
    assert_eq!(dead.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
    for letter in &dead {
        assert_eq!(letter.last_reason, Some(FailureReason::UnknownReceiver));
        assert_eq!(
            letter.last_error.as_deref(),
            Some("receiver \"gone\" is not configured")
        );
    }
    assert!(matches!(
        s.outbox.retry_dead(1),
        Err(OutboxError::UnknownReceiver { id: 1, .. })
    ));
    assert!(s.outbox.delete(1).unwrap());
    assert!(!s.outbox.delete(1).unwrap());
    assert_eq!(s.outbox.counts(), (0, 1));
    workers.stop();
    workers.wait().await;
}

#[tokio::test(start_paused = true)]
async fn dead_letters_are_dropped_after_their_retention() {
    let s = setup(OutboxConfig {
        dead_letter_retention: muster_shared::config::Duration::from_secs(86_400),
        ..config()
    });
    let fake = Fake::answering([refused()]);
    let workers = s.outbox.start(vec![receiver("ops", &fake)], &s.shutdown);
    s.outbox.enqueue(vec![notification("ops", 1)]).unwrap();
    until("it is a dead letter", || s.outbox.counts() == (0, 1)).await;
    tokio::time::sleep(std::time::Duration::from_secs(86_400 - 3600)).await;
    assert_eq!(s.outbox.counts(), (0, 1), "kept within its retention");
    until("it is dropped", || s.outbox.counts() == (0, 0)).await;
    assert!(s.outbox.list(EntryFilter::All).unwrap().is_empty());
    workers.stop();
    workers.wait().await;
}

#[tokio::test(start_paused = true)]
async fn a_pending_entry_deleted_mid_attempt_stays_deleted() {
    let s = setup(config());
    let fake = Fake::down_for(std::time::Duration::from_secs(3600));
    let workers = s.outbox.start(vec![receiver("ops", &fake)], &s.shutdown);
    s.outbox.enqueue(vec![notification("ops", 1)]).unwrap();
    until("a failed attempt", || !fake.attempts().is_empty()).await;
    assert!(matches!(
        s.outbox.retry_dead(1),
        Err(OutboxError::NotDead { id: 1 })
    ));
    assert!(s.outbox.delete(1).unwrap());
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    assert!(s.outbox.get(1).unwrap().is_none());
    assert_eq!(s.outbox.counts(), (0, 0));
    workers.stop();
    workers.wait().await;
}
