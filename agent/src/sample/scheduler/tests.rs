use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const VALUE: FamilySpec<'static> = FamilySpec {
    name: "test_value",
    help: "A test value.",
    kind: Kind::Gauge,
    labels: &["sampler"],
};

/// A sink that records what it is given.
#[derive(Default)]
struct FakeSink {
    interned: Mutex<Vec<String>>,
    rounds: Mutex<Vec<Vec<(u32, f64)>>>,
    intern_calls: AtomicUsize,
}

impl RoundSink for FakeSink {
    fn intern(&self, metric: &str, labels: &[(&str, &str)]) -> u32 {
        self.intern_calls.fetch_add(1, Ordering::SeqCst);
        let key = format!("{metric}{labels:?}");
        let mut interned = self.interned.lock().unwrap();
        if let Some(i) = interned.iter().position(|k| *k == key) {
            return u32::try_from(i).unwrap();
        }
        interned.push(key);
        u32::try_from(interned.len() - 1).unwrap()
    }
    fn append(&self, _ts: u64, values: &[(u32, f64)]) -> Result<u64, String> {
        let mut rounds = self.rounds.lock().unwrap();
        rounds.push(values.to_vec());
        Ok(rounds.len() as u64)
    }
    fn report(&self, _out: &mut SeriesTable) {}
}

impl FakeSink {
    fn name_of(&self, id: u32) -> String {
        self.interned.lock().unwrap()[id as usize].clone()
    }
    fn last_round(&self) -> Vec<(String, f64)> {
        let rounds = self.rounds.lock().unwrap();
        let last = rounds.last().cloned().unwrap_or_default();
        drop(rounds);
        last.into_iter()
            .map(|(id, v)| (self.name_of(id), v))
            .collect()
    }
}

struct Fixed(&'static str, f64);
impl Sampler for Fixed {
    fn name(&self) -> &'static str {
        self.0
    }
    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        out.set_spec(&VALUE, &[self.0], self.1);
        Ok(())
    }
}

struct Failing;
impl Sampler for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }
    fn sample(&mut self, _out: &mut SeriesTable) -> Result<(), SampleError> {
        Err(SampleError::Other("boom".into()))
    }
}

struct Panicking;
impl Sampler for Panicking {
    fn name(&self) -> &'static str {
        "panicking"
    }
    fn sample(&mut self, _out: &mut SeriesTable) -> Result<(), SampleError> {
        panic!("sampler bug")
    }
}

/// Blocks until released, like a stat on a hung mount.
struct Hanging(std::sync::mpsc::Receiver<()>);
impl Sampler for Hanging {
    fn name(&self) -> &'static str {
        "hanging"
    }
    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        let _ = self.0.recv();
        out.set_spec(&VALUE, &["hanging"], 7.0);
        Ok(())
    }
}

fn scheduler(
    samplers: Vec<Box<dyn Sampler>>,
    timeout_ms: u64,
) -> (Scheduler, Arc<FakeSink>, Arc<Exposition>) {
    let sink = Arc::new(FakeSink::default());
    let exposition = Arc::new(Exposition::new());
    let s = Scheduler::new(
        samplers,
        sink.clone(),
        exposition.clone(),
        ScheduleOptions {
            interval: Duration::from_secs(10),
            timeout: Duration::from_millis(timeout_ms),
        },
    );
    (s, sink, exposition)
}

fn value_of(round: &[(String, f64)], needle: &str) -> Option<f64> {
    round
        .iter()
        .find(|(k, _)| k.contains(needle))
        .map(|(_, v)| *v)
}

#[tokio::test]
async fn a_failing_or_panicking_sampler_does_not_stop_the_others() {
    let (mut s, sink, exposition) = scheduler(
        vec![
            Box::new(Fixed("a", 1.0)),
            Box::new(Failing),
            Box::new(Panicking),
            Box::new(Fixed("b", 2.0)),
        ],
        5_000,
    );
    s.round().await;
    let round = sink.last_round();
    assert_eq!(
        value_of(&round, "test_value[(\"sampler\", \"a\")]"),
        Some(1.0)
    );
    assert_eq!(
        value_of(&round, "test_value[(\"sampler\", \"b\")]"),
        Some(2.0)
    );
    let text = String::from_utf8(exposition.latest().to_vec()).unwrap();
    assert!(
        text.contains("node_scrape_collector_success{collector=\"a\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("node_scrape_collector_success{collector=\"failing\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("node_scrape_collector_success{collector=\"panicking\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("muster_agent_sampler_failures_total{sampler=\"failing\"} 1"),
        "{text}"
    );

    // Next round: the failing one is tried again, the panicking one is gone.
    s.round().await;
    let text = String::from_utf8(exposition.latest().to_vec()).unwrap();
    assert!(
        text.contains("muster_agent_sampler_failures_total{sampler=\"failing\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("muster_agent_sampler_failures_total{sampler=\"panicking\"} 1"),
        "{text}"
    );
    assert!(text.contains("test_value{sampler=\"b\"} 2"), "{text}");
}

#[tokio::test]
async fn a_hanging_sampler_is_skipped_until_it_returns() {
    let (release, wait) = std::sync::mpsc::channel();
    let (mut s, sink, exposition) = scheduler(
        vec![Box::new(Fixed("a", 1.0)), Box::new(Hanging(wait))],
        300,
    );
    s.round().await;
    let text = String::from_utf8(exposition.latest().to_vec()).unwrap();
    assert!(
        text.contains("node_scrape_collector_success{collector=\"hanging\"} 0"),
        "{text}"
    );
    assert!(text.contains("test_value{sampler=\"a\"} 1"), "{text}");
    assert_eq!(
        value_of(&sink.last_round(), "test_value[(\"sampler\", \"hanging\")]"),
        None
    );

    // Still stuck: not started twice, still failed, the other still runs.
    s.round().await;
    assert!(value_of(&sink.last_round(), "\"a\")]").is_some());
    let text = String::from_utf8(exposition.latest().to_vec()).unwrap();
    assert!(
        text.contains("node_scrape_collector_success{collector=\"hanging\"} 0"),
        "{text}"
    );

    // Released: its pass returns and counts in the next round.
    release.send(()).unwrap();
    s.round().await;
    let round = sink.last_round();
    assert_eq!(
        value_of(&round, "test_value[(\"sampler\", \"hanging\")]"),
        Some(7.0)
    );
    let text = String::from_utf8(exposition.latest().to_vec()).unwrap();
    assert!(
        text.contains("node_scrape_collector_success{collector=\"hanging\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn series_are_interned_once() {
    let (mut s, sink, _) = scheduler(
        vec![Box::new(Fixed("a", 1.0)), Box::new(Fixed("b", 2.0))],
        5_000,
    );
    s.round().await;
    let first = sink.intern_calls.load(Ordering::SeqCst);
    for _ in 0..5 {
        s.round().await;
    }
    // Own series that appear after the first round (none here) aside, no
    // further interning happens in steady state.
    assert_eq!(sink.intern_calls.load(Ordering::SeqCst), first);
    assert_eq!(sink.rounds.lock().unwrap().len(), 6);
}

/// Series whose owner buffers them itself.
struct Extra;
impl ExtraSeries for Extra {
    fn fill(&self, out: &mut SeriesTable) {
        out.set_spec(
            &FamilySpec {
                name: "probe_success",
                help: "Probe result.",
                kind: Kind::Gauge,
                labels: &["probe"],
            },
            &["api"],
            1.0,
        );
    }
}

#[tokio::test]
async fn extra_series_are_shown_but_never_appended() {
    let (s, sink, exposition) = scheduler(vec![Box::new(Fixed("a", 1.0))], 5_000);
    let mut s = s.with_extra(Arc::new(Extra));
    s.round().await;
    let text = String::from_utf8(exposition.latest().to_vec()).unwrap();
    assert!(text.contains("probe_success{probe=\"api\"} 1\n"), "{text}");
    assert_eq!(text.matches("# TYPE probe_success").count(), 1, "{text}");
    assert!(
        sink.interned
            .lock()
            .unwrap()
            .iter()
            .all(|k| !k.contains("probe_success")),
        "the owner appends them"
    );
}
