use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::probe::Timing;
use crate::probe::condition::Condition;
use crate::probe::families::HTTP_STATUS_CODE;
use crate::sample::SeriesTable;
use crate::sample::scheduler::ExtraSeries;

/// A round as appended: its timestamp and values.
type Round = (u64, Vec<(u32, f64)>);

/// A sink that records rounds with their series written out.
#[derive(Default)]
struct FakeSink {
    series: Mutex<Vec<String>>,
    rounds: Mutex<Vec<Round>>,
}

impl RoundSink for FakeSink {
    fn intern(&self, metric: &str, labels: &[(&str, &str)]) -> u32 {
        let key = format!(
            "{metric}{{{}}}",
            labels
                .iter()
                .map(|(n, v)| format!("{n}={v:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut series = self.series.lock().unwrap();
        let id = series.iter().position(|k| *k == key).unwrap_or_else(|| {
            series.push(key);
            series.len() - 1
        });
        u32::try_from(id).unwrap()
    }
    fn append(&self, timestamp: u64, values: &[(u32, f64)]) -> Result<u64, String> {
        let mut rounds = self.rounds.lock().unwrap();
        rounds.push((timestamp, values.to_vec()));
        Ok(rounds.len() as u64)
    }
    fn report(&self, _out: &mut SeriesTable) {}
}

impl FakeSink {
    fn count(&self) -> usize {
        self.rounds.lock().unwrap().len()
    }

    /// Round `n` (from 0) as `series value` lines; a staleness marker shows as `stale`.
    fn round(&self, n: usize) -> Vec<String> {
        let rounds = self.rounds.lock().unwrap();
        let series = self.series.lock().unwrap();
        rounds[n]
            .1
            .iter()
            .map(|(id, v)| {
                let value = if v.to_bits() == STALE_NAN.to_bits() {
                    "stale".to_owned()
                } else {
                    v.to_string()
                };
                format!("{} {value}", series[*id as usize])
            })
            .collect()
    }

    fn value(&self, n: usize, series: &str) -> Option<String> {
        self.round(n)
            .into_iter()
            .find_map(|line| line.strip_prefix(&format!("{series}{{")).map(str::to_owned))
            .and_then(|rest| rest.rsplit_once(' ').map(|(_, v)| v.to_owned()))
    }
}

/// A prober playing a script: each run takes the next step (sleep, then fail or not).
struct Scripted {
    steps: Mutex<VecDeque<(Duration, Option<&'static str>)>>,
    /// Runs started so far.
    started: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(steps: &[(u64, Option<&'static str>)]) -> Self {
        Self {
            steps: Mutex::new(
                steps
                    .iter()
                    .map(|&(ms, fail)| (Duration::from_millis(ms), fail))
                    .collect(),
            ),
            started: Arc::default(),
        }
    }
}

impl Prober for Scripted {
    async fn probe(&self, out: &mut Outcome) {
        self.started.fetch_add(1, Ordering::SeqCst);
        let step = self.steps.lock().unwrap().pop_front();
        let (sleep, fail) = step.unwrap_or((Duration::ZERO, None));
        out.set(&HTTP_STATUS_CODE, 0.0);
        if !sleep.is_zero() {
            tokio::time::sleep(sleep).await;
        }
        out.set(
            &HTTP_STATUS_CODE,
            if fail.is_some() { 503.0 } else { 200.0 },
        );
        out.facts.status = Some(if fail.is_some() { 503 } else { 200 });
        if let Some(reason) = fail {
            out.fail(reason);
        }
    }
}

fn probe(prober: Scripted, conditions: &[&str], initial_delay_s: u64) -> Probe<Scripted> {
    Probe {
        name: "api".to_owned(),
        target: "http://api/".to_owned(),
        timing: Timing {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            initial_delay: Duration::from_secs(initial_delay_s),
            success_threshold: 1,
            failure_threshold: 2,
        },
        conditions: conditions
            .iter()
            .map(|c| Condition::parse(c).unwrap())
            .collect(),
        prober,
    }
}

struct Started {
    sink: Arc<FakeSink>,
    board: Arc<ProbeBoard>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

fn run(probe: Probe<Scripted>) -> Started {
    let sink = Arc::new(FakeSink::default());
    let board = Arc::new(ProbeBoard::new());
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    start(
        vec![probe],
        sink.clone(),
        board.clone(),
        Arc::new(crate::urgent::UrgentRounds::new()),
        &shutdown,
        &tasks,
    );
    Started {
        sink,
        board,
        shutdown,
        tasks,
    }
}

/// Waits (in real time, up to 10 s) until the sink holds `n` rounds; the paused clock does
/// not move meanwhile, since this task never sleeps.
async fn wait_rounds(sink: &FakeSink, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sink.count() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "round {n} never came (have {})",
            sink.count()
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn runs_pass_the_thresholds_and_each_is_its_own_round() {
    let s = run(probe(
        Scripted::new(&[
            (0, None),
            (0, Some("connection refused")),
            (0, Some("connection refused")),
            (0, Some("status 503")),
            (0, None),
        ]),
        &[],
        0,
    ));
    for n in 1..=5 {
        wait_rounds(&s.sink, n).await;
        tokio::time::advance(Duration::from_secs(10)).await;
    }
    let labels = "probe=\"api\",target=\"http://api/\"";
    assert_eq!(
        s.sink.round(0),
        vec![
            format!("probe_success{{{labels}}} 1"),
            format!("probe_duration_seconds{{{labels}}} 0"),
            format!("probe_http_status_code{{{labels}}} 200"),
            format!("muster_probe_failed_condition{{{labels}}} 0"),
            format!("muster_probe_healthy{{{labels}}} 1"),
            format!("muster_probe_consecutive_failures{{{labels}}} 0"),
        ]
    );
    // Failure threshold 2: healthy after one failure, unhealthy after two.
    let column = |series: &str| -> Vec<String> {
        (0..5)
            .map(|n| s.sink.value(n, series).unwrap_or_else(|| "-".to_owned()))
            .collect()
    };
    assert_eq!(column("probe_success"), ["1", "0", "0", "0", "1"]);
    assert_eq!(column("muster_probe_healthy"), ["1", "1", "0", "0", "1"]);
    assert_eq!(
        column("muster_probe_consecutive_failures"),
        ["0", "1", "2", "3", "0"]
    );
    // The reason series: present while failing; the old one ends with a staleness marker.
    let refused = format!("muster_probe_failure_info{{{labels},reason=\"connection refused\"}}");
    let status = format!("muster_probe_failure_info{{{labels},reason=\"status 503\"}}");
    assert!(s.sink.round(1).contains(&format!("{refused} 1")));
    assert!(s.sink.round(2).contains(&format!("{refused} 1")));
    assert!(s.sink.round(3).contains(&format!("{status} 1")));
    assert!(s.sink.round(3).contains(&format!("{refused} stale")));
    assert!(s.sink.round(4).contains(&format!("{status} stale")));
    assert!(
        !s.sink
            .round(4)
            .iter()
            .any(|l| l.ends_with(" 1") && l.contains("failure_info"))
    );

    // Timestamps are the runs' starts, in order.
    let stamps: Vec<u64> = s.sink.rounds.lock().unwrap().iter().map(|r| r.0).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");

    s.shutdown.cancel();
    s.tasks.close();
    s.tasks.wait().await;
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_timeout_fails_with_what_it_had() {
    let prober = Scripted::new(&[(5_000, None)]);
    let started = prober.started.clone();
    let s = run(probe(prober, &[], 0));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while started.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        tokio::task::yield_now().await;
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    wait_rounds(&s.sink, 1).await;
    let round = s.sink.round(0);
    let labels = "probe=\"api\",target=\"http://api/\"";
    assert!(
        round.contains(&format!("probe_success{{{labels}}} 0")),
        "{round:?}"
    );
    assert!(
        round.contains(&format!("probe_duration_seconds{{{labels}}} 1")),
        "{round:?}"
    );
    assert!(
        round.contains(&format!("probe_http_status_code{{{labels}}} 0")),
        "{round:?}"
    );
    assert!(
        round.contains(&format!(
            "muster_probe_failure_info{{{labels},reason=\"timeout\"}} 1"
        )),
        "{round:?}"
    );
    s.shutdown.cancel();
    s.tasks.close();
    s.tasks.wait().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_condition_fails_the_run_and_is_numbered() {
    let s = run(probe(
        Scripted::new(&[(0, None)]),
        &["[STATUS] < 500", "[STATUS] == 201"],
        0,
    ));
    wait_rounds(&s.sink, 1).await;
    assert_eq!(s.sink.value(0, "probe_success").as_deref(), Some("0"));
    assert_eq!(
        s.sink.value(0, "muster_probe_failed_condition").as_deref(),
        Some("2")
    );
    assert!(
        s.sink
            .round(0)
            .iter()
            .any(|l| l.contains("reason=\"condition [STATUS] == 201 failed\"} 1")),
        "{:?}",
        s.sink.round(0)
    );
    s.shutdown.cancel();
    s.tasks.close();
    s.tasks.wait().await;
}

#[tokio::test(start_paused = true)]
async fn the_first_run_waits_for_the_initial_delay_and_shutdown_stops_the_task() {
    let s = run(probe(Scripted::new(&[]), &[], 30));
    tokio::time::advance(Duration::from_secs(29)).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(s.sink.count(), 0, "no run before the initial delay");
    tokio::time::advance(Duration::from_secs(1)).await;
    wait_rounds(&s.sink, 1).await;

    // The board shows the latest run for /metrics.
    let mut table = SeriesTable::new();
    table.begin_round();
    s.board.fill(&mut table);
    assert_eq!(table.live_count(), 6);

    s.shutdown.cancel();
    s.tasks.close();
    s.tasks.wait().await;
    assert_eq!(s.sink.count(), 1);
}
