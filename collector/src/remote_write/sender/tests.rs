//! The sender against a scripted fake transport, on a paused clock: ordering across
//! retries, refusals, Retry-After, backoff and the shutdown flush.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use prometheus::Registry;

use super::*;
use crate::remote_write::metrics::RemoteWriteMetrics;
use crate::remote_write::proto::WriteRequest;
use crate::series::{Labels, Sample};

/// One request the fake saw: when, what, and what it answered.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    request: WriteRequest,
    accepted: bool,
}

/// Answers from a script (then 200 forever) and records every request.
#[derive(Debug, Clone, Default)]
struct Fake {
    script: Arc<Mutex<VecDeque<Result<(), SendError>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn answering(script: impl IntoIterator<Item = Result<(), SendError>>) -> Self {
        let fake = Self::default();
        fake.script.lock().unwrap().extend(script);
        fake
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<WriteRequest> {
        self.seen()
            .into_iter()
            .filter(|s| s.accepted)
            .map(|s| s.request)
            .collect()
    }
}

impl Transport for Fake {
    async fn send(&self, body: Bytes) -> Result<(), SendError> {
        let request = encode::decode_body(&body).unwrap();
        let answer = self.script.lock().unwrap().pop_front().unwrap_or(Ok(()));
        self.seen.lock().unwrap().push(Seen {
            at: Instant::now(),
            request,
            accepted: answer.is_ok(),
        });
        answer
    }
}

fn status(code: u16, retry_after: Option<Duration>) -> Result<(), SendError> {
    Err(SendError::Status {
        remote: "fake".into(),
        status: code,
        body: "nope".into(),
        retry_after,
    })
}

fn network() -> Result<(), SendError> {
    Err(SendError::Network {
        remote: "fake".into(),
        reason: "connection refused".into(),
    })
}

struct Setup {
    queue: Arc<SampleQueue>,
    metrics: RemoteMetrics,
    registry: Registry,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(fake: &Fake, edit: impl FnOnce(&mut RemoteWriteConfig)) -> Setup {
    let mut config = RemoteWriteConfig::new("http://127.0.0.1:1/api/v1/write".parse().unwrap());
    config.max_samples_per_send = 4;
    config.queue_capacity = 1_000;
    edit(&mut config);
    let registry = Registry::new();
    let metrics = RemoteWriteMetrics::register(&registry)
        .unwrap()
        .remote("fake");
    let queue = Arc::new(SampleQueue::new(
        config.queue_capacity,
        metrics.queue.clone(),
    ));
    let sender = Sender::new(
        &config,
        "fake".into(),
        Arc::clone(&queue),
        fake.clone(),
        metrics.clone(),
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(sender.run(shutdown.clone()));
    Setup {
        queue,
        metrics,
        registry,
        shutdown,
        task,
    }
}

fn push(queue: &SampleQueue, name: &str, times: std::ops::Range<i64>) {
    let labels = Arc::new(Labels::from_pairs([("__name__", name), ("host", "web1")]));
    let samples: Vec<Sample> = times
        .map(|t| Sample {
            timestamp_ms: t,
            value: t as f64 * 10.0,
        })
        .collect();
    queue.push([(&labels, samples.as_slice())]);
}

/// Timestamps per metric name, in the order the receiver accepted them.
fn delivered(requests: &[WriteRequest]) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for request in requests {
        for series in &request.timeseries {
            let name = series.labels[0].value.clone();
            out.entry(name)
                .or_default()
                .extend(series.samples.iter().map(|s| s.timestamp));
        }
    }
    out
}

fn counted(setup: &Setup, result: &str) -> u64 {
    setup
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == "muster_collector_remote_write_samples_total")
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| m.get_label().iter().any(|l| l.value() == result))
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// Yields to the runtime until `done` holds; the paused clock advances while all wait.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

async fn stop(setup: &mut Setup) {
    setup.shutdown.cancel();
    (&mut setup.task).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn ordering_is_kept_across_retries() {
    let fake = Fake::answering([status(503, None), network(), status(500, None)]);
    let mut setup = start(&fake, |_| {});
    push(&setup.queue, "a", 0..3);
    push(&setup.queue, "b", 0..2);
    push(&setup.queue, "a", 3..6);
    // Arrives while the first batch is being retried: must wait behind it.
    until("first attempt", || !fake.seen().is_empty()).await;
    push(&setup.queue, "b", 2..5);
    push(&setup.queue, "a", 6..7);
    until("every sample accepted", || {
        delivered(&fake.accepted())
            .values()
            .map(Vec::len)
            .sum::<usize>()
            == 12
    })
    .await;
    let seen = fake.seen();
    // The failed attempts and the accepted one carry the same batch.
    assert_eq!(seen[0].request, seen[3].request);
    assert!(seen[..3].iter().all(|s| !s.accepted));
    let got = delivered(&fake.accepted());
    assert_eq!(got["a"], (0..7).collect::<Vec<_>>());
    assert_eq!(got["b"], (0..5).collect::<Vec<_>>());
    stop(&mut setup).await;
    assert_eq!(counted(&setup, "sent"), 12);
    assert_eq!(setup.metrics.retries.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_refused_batch_is_dropped_and_the_next_one_sent() {
    let fake = Fake::answering([status(400, None)]);
    let mut setup = start(&fake, |_| {});
    push(&setup.queue, "a", 0..4);
    push(&setup.queue, "a", 4..6);
    until("two requests", || fake.seen().len() == 2).await;
    stop(&mut setup).await;
    assert_eq!(delivered(&fake.accepted())["a"], [4, 5]);
    assert_eq!(counted(&setup, "dropped_rejected"), 4);
    assert_eq!(counted(&setup, "sent"), 2);
    assert_eq!(setup.metrics.retries.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let fake = Fake::answering([status(429, Some(Duration::from_secs(7)))]);
    let mut setup = start(&fake, |_| {});
    push(&setup.queue, "a", 0..4);
    until("the retry", || fake.seen().len() == 2).await;
    let seen = fake.seen();
    assert!(seen[1].at - seen[0].at >= Duration::from_secs(7));
    assert!(seen[1].accepted);
    stop(&mut setup).await;
}

#[tokio::test(start_paused = true)]
async fn a_partial_batch_waits_for_the_deadline() {
    let fake = Fake::default();
    let mut setup = start(&fake, |c| {
        c.batch_send_deadline = muster_shared::config::Duration::from_secs(5);
    });
    let pushed_at = Instant::now();
    push(&setup.queue, "a", 0..2);
    until("the partial batch", || fake.seen().len() == 1).await;
    assert!(fake.seen()[0].at - pushed_at >= Duration::from_secs(5));
    // A full batch goes at once.
    let full_at = Instant::now();
    push(&setup.queue, "a", 2..6);
    until("the full batch", || fake.seen().len() == 2).await;
    assert!(fake.seen()[1].at - full_at < Duration::from_secs(5));
    stop(&mut setup).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_what_is_queued() {
    let fake = Fake::default();
    let mut setup = start(&fake, |c| {
        c.batch_send_deadline = muster_shared::config::Duration::from_secs(60);
    });
    push(&setup.queue, "a", 0..10);
    stop(&mut setup).await;
    assert_eq!(
        delivered(&fake.accepted())["a"],
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(counted(&setup, "sent"), 10);
    assert_eq!(counted(&setup, "dropped_shutdown"), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_at_the_flush_deadline_and_counts_the_rest() {
    let fake = Fake::answering((0..10_000).map(|_| status(503, None)));
    let mut setup = start(&fake, |c| {
        c.flush_deadline = muster_shared::config::Duration::from_secs(3);
    });
    push(&setup.queue, "a", 0..10);
    until("a first attempt", || !fake.seen().is_empty()).await;
    let cancelled_at = Instant::now();
    stop(&mut setup).await;
    assert!(Instant::now() - cancelled_at >= Duration::from_secs(3));
    assert_eq!(counted(&setup, "dropped_shutdown"), 10);
    assert_eq!(setup.queue.len(), 0);
    assert_eq!(setup.metrics.queue.get(), 0);
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap() {
    let (min, max) = (Duration::from_millis(30), Duration::from_secs(5));
    let mut backoff = Backoff::new(min, max);
    let mut ceiling = min;
    for _ in 0..20 {
        let delay = backoff.next_delay();
        assert!(
            delay >= ceiling / 2 && delay <= ceiling,
            "{delay:?} vs {ceiling:?}"
        );
        ceiling = (ceiling * 2).min(max);
    }
    assert!(backoff.next_delay() >= max / 2);
}
