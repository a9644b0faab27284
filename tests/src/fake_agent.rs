//! A fake agent for the collector's scrape path: it serves `/v1/info` and
//! `/v1/samples` over mutual TLS with an identity from
//! [`Collector::enroll_fake_host`], from rounds the test adds, and answers each
//! sample pull as the test says: correctly, or with a truncated, garbled,
//! invalid or unstorable batch. It records the cursor of every pull, so a test
//! sees what the collector asked for.
//!
//! Correct batches carry one series, [`GOOD_METRIC`]`{fake="1"}`, valued with
//! the round's sequence number, or more ([`FakeAgent::sample_every_second`]):
//! `{fake="2"}`, `{fake="3"}`, ... with values that compress badly, as a large
//! host's. Every bad batch also defines and values [`REFUSED_METRIC`], so a
//! test can show that nothing of it was stored.
//!
//! With [`FakeAgent::serve_backups`] it also lists the `backups` and `jobs` capabilities
//! and serves backup sets, snapshots and jobs from memory ([`backups`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use muster_shared::codec::{FLAG_ZSTD, HEADER_LEN, encode_frame};
use muster_shared::protocol::info::{AgentInfo, CAP_BACKUPS, CAP_JOBS, CAP_SAMPLES};
use muster_shared::protocol::samples::{
    Label, Round, SampleBatch, SamplesQuery, SeriesDef, SeriesValue,
};
use muster_shared::protocol::{BATCH_MEDIA_TYPE, PROTOCOL_VERSION};
use muster_shared::serve::{ServeOptions, serve};
use muster_shared::tls::{Identity, PeerPolicy, server_config};
use tokio_util::sync::CancellationToken;

use crate::Collector;

pub mod backups;

use crate::timeline::{AgentHistory, series_name};
use backups::FakeBackups;

/// The metric of correct batches.
pub const GOOD_METRIC: &str = "fake_good";
/// The extra metric every bad batch carries.
pub const REFUSED_METRIC: &str = "fake_refused";
/// A round timestamp past the year 9999, which the collector's store refuses.
const AFTER_YEAR_9999_MS: u64 = 300_000_000_000_000;

/// How the fake answers `/v1/samples`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The rounds after the cursor, correctly framed.
    Correct,
    /// A correct frame cut in the middle.
    Truncated,
    /// A frame flagged as zstd whose payload starts with zeros instead of zstd's magic.
    Garbled,
    /// A well-framed batch breaking the protocol: a value of an undefined series.
    Invalid,
    /// A valid batch the store refuses: a round stamped after the year 9999.
    Unstorable,
}

#[derive(Debug)]
struct Script {
    host: String,
    answer: Answer,
    rounds: Vec<Round>,
    asked: Vec<u64>,
    /// Requests for more rounds than this are answered only after the delay.
    slow_above: Option<(u32, Duration)>,
    /// Good series per round.
    series: u32,
    /// Whether a round is added every second, as rounds are asked for.
    sampling: bool,
    /// Whether `/v1/info` lists the `backups` and `jobs` capabilities.
    backups: bool,
}

impl Script {
    /// Adds a round stamped `ts` with a value of every series.
    fn push_round(&mut self, ts: u64) {
        let seq = self.rounds.last().map_or(0, |r| r.seq) + 1;
        let values = (0..self.series)
            .map(|series| SeriesValue {
                series,
                value: if series == 0 {
                    seq as f64
                } else {
                    noise(seq, series)
                },
            })
            .collect();
        self.rounds.push(Round {
            seq,
            timestamp_unix_ms: ts,
            values,
        });
    }

    /// While sampling, adds the rounds due since the last one.
    fn sample_until(&mut self, now: u64) {
        if !self.sampling {
            return;
        }
        while let Some(next) = self.rounds.last().map(|r| r.timestamp_unix_ms + 1000) {
            if next > now {
                break;
            }
            self.push_round(next);
        }
    }

    fn series_defs(&self) -> Vec<SeriesDef> {
        (0..self.series)
            .map(|id| SeriesDef {
                id,
                metric: GOOD_METRIC.to_owned(),
                labels: vec![Label {
                    name: "fake".to_owned(),
                    value: (id + 1).to_string(),
                }],
            })
            .collect()
    }
}

/// A value of `series` in round `seq` that XOR compression cannot shrink much.
fn noise(seq: u64, series: u32) -> f64 {
    // splitmix64's finaliser.
    let mut z = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(series).rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / 1024.0
}

/// A running fake agent, stopped when dropped.
#[derive(Debug)]
pub struct FakeAgent {
    /// The host it is enrolled as.
    pub host: String,
    /// Its loopback port.
    pub port: u16,
    script: Arc<Mutex<Script>>,
    backups: Arc<Mutex<FakeBackups>>,
    shutdown: CancellationToken,
    rt: Option<tokio::runtime::Runtime>,
}

impl FakeAgent {
    /// Enrolls `host` with `collector` and serves it on a loopback port, answering
    /// [`Answer::Correct`] with no rounds yet.
    pub fn start(collector: &Collector, host: &str) -> Self {
        crate::install_crypto();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let identity = collector.enroll_fake_host(host, port);
        let tls = server_config(
            &identity.ca_pem,
            Identity::from_pem(&identity.cert_pem, &identity.key_pem).unwrap(),
            PeerPolicy::Collector,
        )
        .unwrap();
        let script = Arc::new(Mutex::new(Script {
            host: identity.host.clone(),
            answer: Answer::Correct,
            rounds: Vec::new(),
            asked: Vec::new(),
            slow_above: None,
            series: 1,
            sampling: false,
            backups: false,
        }));
        let backups = Arc::new(Mutex::new(FakeBackups::default()));
        let router = Router::new()
            .route("/v1/info", get(info))
            .route("/v1/samples", get(samples))
            .with_state(script.clone())
            .merge(backups::router(backups.clone()));
        let shutdown = CancellationToken::new();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let stop = shutdown.clone();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve(listener, Some(tls), router, stop, ServeOptions::default()).await;
        });
        Self {
            host: identity.host,
            port,
            script,
            backups,
            shutdown,
            rt: Some(rt),
        }
    }

    /// Adds `n` rounds one second apart, the last stamped now (or a second
    /// after the previous round if that is later): queries see them at once.
    pub fn add_rounds(&self, n: u64) {
        let mut script = lock(&self.script);
        let mut ts = script.rounds.last().map_or(0, |r| r.timestamp_unix_ms);
        let now = now_ms();
        for i in 0..n {
            ts = (ts + 1000).max(now - (n - 1 - i) * 1000);
            script.push_round(ts);
        }
    }

    /// From now on, holds a round every second (the first now) of `series`
    /// series, as an agent sampling a large host would.
    pub fn sample_every_second(&self, series: u32) {
        let mut script = lock(&self.script);
        script.series = series;
        script.sampling = true;
        if script.rounds.is_empty() {
            script.push_round(now_ms());
        }
    }

    /// The last sequence number held (0 before any round).
    pub fn last_seq(&self) -> u64 {
        let mut script = lock(&self.script);
        script.sample_until(now_ms());
        script.rounds.last().map_or(0, |r| r.seq)
    }

    /// The timestamps of the rounds held, oldest first.
    pub fn timestamps(&self) -> Vec<i64> {
        let mut script = lock(&self.script);
        script.sample_until(now_ms());
        script
            .rounds
            .iter()
            .map(|r| i64::try_from(r.timestamp_unix_ms).unwrap())
            .collect()
    }

    /// What it holds, as a [`crate::timeline`] history: every series in every round.
    pub fn history(&self) -> AgentHistory {
        let mut script = lock(&self.script);
        script.sample_until(now_ms());
        let rounds: Vec<i64> = script
            .rounds
            .iter()
            .map(|r| i64::try_from(r.timestamp_unix_ms).unwrap())
            .collect();
        AgentHistory {
            series: script
                .series_defs()
                .iter()
                .map(|def| (series_name(def), rounds.clone()))
                .collect(),
            last_seq: script.rounds.last().map_or(0, |r| r.seq),
            rounds,
        }
    }

    /// How `/v1/samples` answers from now on.
    pub fn answer(&self, answer: Answer) {
        lock(&self.script).answer = answer;
    }

    /// From now on, answers requests for more than `max_rounds` rounds only
    /// after `delay`, as an agent too slow to send a large batch in time.
    pub fn slow_above(&self, max_rounds: u32, delay: Duration) {
        lock(&self.script).slow_above = Some((max_rounds, delay));
    }

    /// From now on, lists the `backups` and `jobs` capabilities and serves `state`'s sets
    /// and jobs ([`backups`]).
    pub fn serve_backups(&self, state: FakeBackups) {
        *lock(&self.backups) = state;
        lock(&self.script).backups = true;
    }

    /// Every `POST /v1/jobs` body so far, repeats included.
    pub fn job_requests(&self) -> Vec<muster_shared::protocol::jobs::JobRequest> {
        lock(&self.backups).requests.clone()
    }

    /// How many distinct jobs were created.
    pub fn jobs_created(&self) -> usize {
        lock(&self.backups).jobs.len()
    }

    /// The `after` of every `/v1/samples` request so far, in order.
    pub fn cursors_asked(&self) -> Vec<u64> {
        lock(&self.script).asked.clone()
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn lock<T>(state: &Mutex<T>) -> MutexGuard<'_, T> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

async fn info(State(script): State<Arc<Mutex<Script>>>) -> Response {
    let script = lock(&script);
    let mut capabilities = vec![CAP_SAMPLES.to_owned()];
    if script.backups {
        capabilities.extend([CAP_BACKUPS.to_owned(), CAP_JOBS.to_owned()]);
    }
    let info = AgentInfo {
        host_id: script.host.clone(),
        agent_version: "fake".to_owned(),
        protocol_version: PROTOCOL_VERSION,
        capabilities,
        started_at_unix_ms: 0,
    };
    binary(encode_frame(&info, PROTOCOL_VERSION, 3).unwrap())
}

async fn samples(
    State(script): State<Arc<Mutex<Script>>>,
    Query(query): Query<SamplesQuery>,
) -> Response {
    let max = query.max.unwrap_or(500);
    let slow = lock(&script).slow_above;
    if let Some((_, delay)) = slow.filter(|(limit, _)| max > *limit) {
        tokio::time::sleep(delay).await;
    }
    let mut script = lock(&script);
    script.sample_until(now_ms());
    script.asked.push(query.after);
    let max = max as usize;
    let after: Vec<&Round> = script
        .rounds
        .iter()
        .filter(|r| r.seq > query.after)
        .collect();
    let more = after.len() > max;
    let rounds: Vec<Round> = after.into_iter().take(max).cloned().collect();
    let mut defs = script.series_defs();
    let answer = script.answer;
    if answer == Answer::Correct {
        let correct = batch(query.after, more, defs, rounds);
        return binary(encode_frame(&correct, PROTOCOL_VERSION, 3).unwrap());
    }
    let refused_id = script.series;
    defs.push(SeriesDef {
        id: refused_id,
        metric: REFUSED_METRIC.to_owned(),
        labels: Vec::new(),
    });
    let mut rounds = rounds;
    for round in &mut rounds {
        round.values.push(SeriesValue {
            series: refused_id,
            value: -1.0,
        });
    }
    match answer {
        Answer::Invalid => {
            for round in &mut rounds {
                round.values.push(SeriesValue {
                    series: refused_id + 7,
                    value: 0.0,
                });
            }
        }
        Answer::Unstorable => {
            let seq = rounds.last().map_or(query.after, |r| r.seq) + 1;
            rounds.push(Round {
                seq,
                timestamp_unix_ms: AFTER_YEAR_9999_MS,
                values: vec![SeriesValue {
                    series: refused_id,
                    value: -1.0,
                }],
            });
        }
        _ => {}
    }
    let bad = batch(query.after, more, defs, rounds);
    let mut frame = encode_frame(&bad, PROTOCOL_VERSION, 3).unwrap();
    match answer {
        Answer::Truncated => frame.truncate(frame.len() / 2),
        Answer::Garbled => {
            // The flags (offset 6) claim zstd, which it may already be; the payload
            // then starts with zeros instead of zstd's magic.
            frame[6..8].copy_from_slice(&FLAG_ZSTD.to_le_bytes());
            frame[HEADER_LEN..HEADER_LEN + 4].fill(0);
        }
        _ => {}
    }
    binary(frame)
}

fn batch(after: u64, more: bool, series: Vec<SeriesDef>, rounds: Vec<Round>) -> SampleBatch {
    let (first_seq, last_seq) = match (rounds.first(), rounds.last()) {
        (Some(first), Some(last)) => (first.seq, last.seq),
        _ => (0, 0),
    };
    SampleBatch {
        first_seq,
        last_seq,
        next_after: last_seq.max(after),
        more,
        gap: None,
        series,
        rounds,
    }
}

fn binary(frame: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, BATCH_MEDIA_TYPE)], frame).into_response()
}
