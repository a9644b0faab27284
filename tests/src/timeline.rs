//! What an agent sampled against what the collector stored, series by series,
//! as timestamps: the agent's buffer is the ground truth (its write-ahead log),
//! read through `GET /v1/samples?after=..` in JSON; the collector's store is read
//! through `/api/v1/query` with a range selector over the same span.
//!
//! A series is named by its metric and labels, the `host` label left out (the
//! collector replaces the agent's with its own).

use std::collections::BTreeMap;

use muster_shared::protocol::samples::{SampleBatch, SeriesDef};

use crate::{AgentDir, Collector};

/// Timestamps (ms) per series, in the order stored.
pub type Timelines = BTreeMap<String, Vec<i64>>;

/// What an agent's buffer holds.
#[derive(Debug, Clone, Default)]
pub struct AgentHistory {
    /// Per series, the timestamps of the rounds that hold a value of it.
    pub series: Timelines,
    /// Every round's timestamp, oldest first.
    pub rounds: Vec<i64>,
    /// The newest sequence number read.
    pub last_seq: u64,
}

impl AgentHistory {
    /// The first and last round timestamps.
    pub fn span(&self) -> (i64, i64) {
        (
            *self.rounds.first().expect("the agent holds rounds"),
            *self.rounds.last().expect("the agent holds rounds"),
        )
    }
}

/// Reads an agent's buffer as the collector would, over mutual TLS with the
/// collector's certificate.
#[derive(Debug)]
pub struct AgentReader {
    client: reqwest::Client,
    rt: std::sync::Arc<tokio::runtime::Runtime>,
    port: u16,
}

impl AgentReader {
    /// A reader of `agent`, enrolled as `host` with `collector`.
    pub fn new(agent: &AgentDir, collector: &Collector, host: &str) -> Self {
        Self {
            client: agent.collector_client(collector, host),
            rt: collector.rt.clone(),
            port: agent.port,
        }
    }

    /// One batch after `after`, in JSON.
    fn batch(&self, after: u64) -> SampleBatch {
        let url = format!(
            "https://127.0.0.1:{}/v1/samples?after={after}&max=5000",
            self.port
        );
        self.rt.block_on(async {
            let response = self
                .client
                .get(&url)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(response.status(), 200, "{url}");
            response.json().await.unwrap()
        })
    }

    /// The newest sequence number the agent holds, reading only what follows `after`
    /// (a number it is known to hold).
    pub fn last_seq(&self, after: u64) -> u64 {
        let mut after = after;
        loop {
            let batch = self.batch(after);
            if !batch.more || batch.next_after == after {
                return batch.next_after.max(after);
            }
            after = batch.next_after;
        }
    }

    /// Every round the agent holds.
    pub fn history(&self) -> AgentHistory {
        let mut history = AgentHistory::default();
        let mut after = 0u64;
        loop {
            let batch = self.batch(after);
            let names: BTreeMap<u32, String> = batch
                .series
                .iter()
                .map(|def| (def.id, series_name(def)))
                .collect();
            for round in &batch.rounds {
                let ts = i64::try_from(round.timestamp_unix_ms).unwrap();
                history.rounds.push(ts);
                for value in &round.values {
                    history
                        .series
                        .entry(names[&value.series].clone())
                        .or_default()
                        .push(ts);
                }
            }
            history.last_seq = history.last_seq.max(batch.last_seq);
            if !batch.more || batch.next_after == after {
                return history;
            }
            after = batch.next_after;
        }
    }
}

/// The series the collector writes itself for each host at each pull, as a regex.
pub const COLLECTOR_SERIES: &str = "up|scrape_duration_seconds|scrape_samples_scraped";

/// Everything the collector stores for `host` with a timestamp in `[from_ms, to_ms]`.
pub fn collector_timelines(
    collector: &Collector,
    host: &str,
    from_ms: i64,
    to_ms: i64,
) -> Timelines {
    // A range selector covers (time - range, time].
    let range = to_ms - from_ms + 1;
    // The agent's series only: not the ones the collector writes about each pull.
    let answer = collector.query(
        &format!("{{host=\"{host}\",__name__!~\"{COLLECTOR_SERIES}\"}}[{range}ms]"),
        Some(to_ms),
    );
    let mut timelines = Timelines::new();
    for series in answer["data"]["result"].as_array().unwrap() {
        let labels = series["metric"].as_object().unwrap();
        let metric = labels["__name__"].as_str().unwrap();
        let mut rest: Vec<(String, String)> = labels
            .iter()
            .filter(|(name, _)| *name != "__name__" && *name != "host")
            .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
            .collect();
        rest.sort();
        let stamps = series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|point| (point[0].as_f64().unwrap() * 1000.0).round() as i64)
            .collect();
        timelines.insert(name(metric, &rest), stamps);
    }
    timelines
}

/// Where the collector's timelines differ from the agent's over the agent's span:
/// samples missing, samples extra or repeated, whole series missing. Empty when
/// the collector holds exactly what the agent sampled.
pub fn differences(agent: &AgentHistory, stored: &Timelines) -> Vec<String> {
    let mut problems = Vec::new();
    for (series, expected) in &agent.series {
        let Some(got) = stored.get(series) else {
            problems.push(format!("{series}: missing ({} samples)", expected.len()));
            continue;
        };
        if got != expected {
            let missing: Vec<_> = expected.iter().filter(|t| !got.contains(t)).collect();
            let extra: Vec<_> = got.iter().filter(|t| !expected.contains(t)).collect();
            problems.push(format!(
                "{series}: {} stored, {} sampled; missing {missing:?}, extra {extra:?}{}",
                got.len(),
                expected.len(),
                if missing.is_empty() && extra.is_empty() {
                    " (repeated)"
                } else {
                    ""
                }
            ));
        }
    }
    for series in stored.keys().filter(|s| !agent.series.contains_key(*s)) {
        problems.push(format!("{series}: stored but never sampled"));
    }
    problems
}

/// The name of a series as an agent defines it: `metric{label="value",...}`,
/// labels sorted, `host` and empty values left out.
pub fn series_name(def: &SeriesDef) -> String {
    let mut labels: Vec<(String, String)> = def
        .labels
        .iter()
        // An empty value is no label, in Prometheus as in the collector.
        .filter(|l| l.name != "host" && !l.value.is_empty())
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    labels.sort();
    name(&def.metric, &labels)
}

fn name(metric: &str, labels: &[(String, String)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{metric}{{{}}}", labels.join(","))
}
