//! The outbox against fake receivers on a paused clock, and once against a real webhook
//! receiver and a local HTTP server in real time. This file is the kit; the tests are in
//! `delivery.rs` (delivery, order across an outage, Retry-After, giving up, restart) and
//! `dead_letters.rs` (refusals, unknown receivers, retention, the API).

mod dead_letters;
mod delivery;

use std::collections::VecDeque;
use std::sync::Mutex;

use prometheus::Registry;
use tokio::time::Instant;

use super::*;
use crate::alert::notify::testkit::{self, T0_MS};
use crate::alert::notify::{
    Delivered, FailureReason, Notifier, NotifyError, ReceiverConfig, SendFuture,
};

/// One attempt a fake saw.
#[derive(Debug, Clone)]
struct Attempt {
    at: Instant,
    /// The notification's `created_at_ms`, which the tests use as its number.
    number: u64,
    ok: bool,
}

/// A receiver that fails while `down_until` is ahead, then answers from its script, then
/// succeeds; it records every attempt.
#[derive(Debug, Clone, Default)]
struct Fake {
    down_until: Arc<Mutex<Option<Instant>>>,
    script: Arc<Mutex<VecDeque<NotifyError>>>,
    seen: Arc<Mutex<Vec<Attempt>>>,
}

impl Fake {
    fn down_for(wait: std::time::Duration) -> Self {
        let fake = Self::default();
        *fake.down_until.lock().unwrap() = Some(Instant::now() + wait);
        fake
    }

    fn answering(errors: impl IntoIterator<Item = NotifyError>) -> Self {
        let fake = Self::default();
        fake.script.lock().unwrap().extend(errors);
        fake
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.seen.lock().unwrap().clone()
    }

    /// Numbers of the notifications delivered, in delivery order.
    fn delivered(&self) -> Vec<u64> {
        self.attempts()
            .into_iter()
            .filter(|a| a.ok)
            .map(|a| a.number)
            .collect()
    }
}

impl Notifier for Fake {
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let down = self
                .down_until
                .lock()
                .unwrap()
                .is_some_and(|until| Instant::now() < until);
            let result = if down {
                Err(unavailable())
            } else {
                self.script.lock().unwrap().pop_front().map_or(Ok(()), Err)
            };
            self.seen.lock().unwrap().push(Attempt {
                at: Instant::now(),
                number: n.created_at_ms,
                ok: result.is_ok(),
            });
            result.map(|()| Delivered::default())
        })
    }
}

fn unavailable() -> NotifyError {
    NotifyError::retryable(
        FailureReason::ServerError,
        "webhook receiver \"ops\": answered HTTP 503: down",
        None,
    )
}

fn refused() -> NotifyError {
    NotifyError::permanent(
        FailureReason::RejectedBody,
        "webhook receiver \"ops\": answered HTTP 400: bad payload",
    )
}

fn receiver(name: &str, fake: &Fake) -> Receiver {
    Receiver::new(
        &ReceiverConfig::new(name, ReceiverKind::Webhook),
        Box::new(fake.clone()),
    )
}

/// Notification number `number` (its `created_at_ms`) for `receiver`.
fn notification(receiver: &str, number: u64) -> Notification {
    Notification {
        receiver: receiver.to_owned(),
        created_at_ms: number,
        ..testkit::two_alerts()
    }
}

struct Setup {
    dir: tempfile::TempDir,
    outbox: Arc<Outbox>,
    registry: Registry,
    shutdown: CancellationToken,
}

fn config() -> OutboxConfig {
    OutboxConfig::default()
}

fn open(dir: &std::path::Path, config: OutboxConfig, registry: &Registry) -> Arc<Outbox> {
    let store = Store::open(dir, muster_shared::store::StoreOptions::agent()).unwrap();
    let clock = Clock::Tokio {
        wall_ms: T0_MS,
        at: Instant::now(),
    };
    Outbox::open_with(&store, config, registry, clock).unwrap()
}

fn setup(config: OutboxConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let outbox = open(dir.path(), config, &registry);
    Setup {
        dir,
        outbox,
        registry,
        shutdown: CancellationToken::new(),
    }
}

/// Waits (on the test's clock, paused or not) until `done` holds, failing after 2 hours of
/// that clock and naming what never happened.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + std::time::Duration::from_secs(7200);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn metric(registry: &Registry, family: &str, labels: &[(&str, &str)]) -> f64 {
    let families = registry.gather();
    let family = families
        .iter()
        .find(|f| f.name() == family)
        .unwrap_or_else(|| panic!("no family {family}"));
    let m = family
        .get_metric()
        .iter()
        .find(|m| {
            labels.iter().all(|(name, value)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *name && l.value() == *value)
            })
        })
        .unwrap_or_else(|| panic!("no {labels:?} in {family:?}"));
    match family.get_field_type() {
        prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
        prometheus::proto::MetricType::HISTOGRAM => m.get_histogram().get_sample_count() as f64,
        _ => m.get_gauge().get_value(),
    }
}
