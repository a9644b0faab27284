//! Alert latency: from a probed HTTP target going down to the webhook request that reports
//! it, over 20 trials, for Muster (agent probe → collector rule → webhook receiver) and for
//! Prometheus + blackbox_exporter + Alertmanager, both with a 1 s probe (scrape) interval,
//! a 1 s rule evaluation interval, no `for`, group_wait 0 and group_interval 1 s.
//!
//! There is one target per trial, each its own loopback server, all probed by both sides
//! from the start. Prometheus places each target's scrapes at its own offset within the
//! interval (a hash of its labels) and evaluates rules at another, so the delay from a
//! probe to the next evaluation is fixed per target and differs between targets, as it does
//! across a fleet; one target for all trials would measure one arbitrary offset.
//!
//! Trial `i`: wait a random fraction of the interval (so trials sample every phase of the
//! probe clocks), switch target `i` to 503 and time the first webhook request that reports
//! its alert firing; switch it back and wait for the resolved notice. Prints p50 and p99
//! for each side and their ratio. Nothing asserts on a figure.
//!
//! `MUSTER_BENCH_TRIALS` (default 20). Needs the release binaries
//! (`cargo build --release --workspace --bins`) and Debian's prometheus,
//! prometheus-blackbox-exporter and prometheus-alertmanager.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "common/mod.rs"]
mod common;
#[path = "alert_latency/muster.rs"]
mod muster;
#[path = "alert_latency/stack.rs"]
mod stack;

use std::time::{Duration, Instant, SystemTime};

use muster_tests::webhook::WebhookSink;

/// The alert both sides raise.
pub const ALERT_NAME: &str = "TargetDown";
/// Probe, scrape and evaluation interval on both sides.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// How long one trial may wait for a notification.
const TRIAL_LIMIT: Duration = Duration::from_secs(60);

/// One side of the comparison, already started against the target and the webhook.
pub trait Side {
    fn name(&self) -> &'static str;
    /// How long after start the side needs before its first trial.
    fn settle(&self) -> Duration;
}

fn main() {
    common::require_release_bins(&["muster-agent", "muster-collector"]);
    let trials: usize = std::env::var("MUSTER_BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);

    let muster = {
        let targets = start_targets(trials);
        let webhook = WebhookSink::start();
        let side = muster::Muster::start(&urls(&targets), &webhook.url())
            .unwrap_or_else(|e| common::give_up(&format!("{e:#}")));
        measure(&side, &targets, &webhook)
    };
    let stack = {
        let targets = start_targets(trials);
        let webhook = WebhookSink::start();
        let side = stack::Stack::start(&urls(&targets), &webhook.url())
            .unwrap_or_else(|e| common::give_up(&format!("{e:#}")));
        measure(&side, &targets, &webhook)
    };
    for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
        let m = common::quantile(&muster, p);
        let s = common::quantile(&stack, p);
        println!(
            "alert latency {label}: muster {} / prometheus+blackbox+alertmanager {} = {}",
            common::ms(m),
            common::ms(s),
            common::ratio(m.as_secs_f64(), s.as_secs_f64()),
        );
    }
}

/// `n` targets answering 200.
fn start_targets(n: usize) -> Vec<WebhookSink> {
    (0..n).map(|_| WebhookSink::start()).collect()
}

/// What both sides probe: `http://127.0.0.1:PORT/`, also the alert's `target` (Muster) or
/// `instance` (Prometheus) label.
fn urls(targets: &[WebhookSink]) -> Vec<String> {
    targets.iter().map(|t| format!("{}/", t.url())).collect()
}

/// One down/up cycle per target; returns the down → firing-notification latencies.
fn measure(side: &dyn Side, targets: &[WebhookSink], webhook: &WebhookSink) -> Vec<Duration> {
    std::thread::sleep(side.settle());
    let mut latencies = Vec::with_capacity(targets.len());
    for (trial, (target, url)) in targets.iter().zip(urls(targets)).enumerate() {
        // A random phase against the probe clocks.
        std::thread::sleep(INTERVAL.mul_f64(random_fraction()));
        let down_at = SystemTime::now();
        target.answer(503);
        let fired = wait_notice(webhook, down_at, &url, "firing").unwrap_or_else(|| {
            common::give_up(&format!(
                "{}: trial {trial}: no firing notice within {TRIAL_LIMIT:?}",
                side.name()
            ))
        });
        latencies.push(fired.duration_since(down_at).unwrap_or_default());
        let up_at = SystemTime::now();
        target.answer(200);
        wait_notice(webhook, up_at, &url, "resolved").unwrap_or_else(|| {
            common::give_up(&format!(
                "{}: trial {trial}: no resolved notice within {TRIAL_LIMIT:?}",
                side.name()
            ))
        });
        target.clear();
    }
    eprintln!(
        "{}: {} trials, latencies ms: {:?}",
        side.name(),
        latencies.len(),
        latencies
            .iter()
            .map(Duration::as_millis)
            .collect::<Vec<_>>()
    );
    latencies
}

/// When the first webhook request after `since` arrived that reports [`ALERT_NAME`] for
/// `url` with `status` (Alertmanager's webhook v4 shape, which both sides send).
fn wait_notice(
    webhook: &WebhookSink,
    since: SystemTime,
    url: &str,
    status: &str,
) -> Option<SystemTime> {
    let deadline = Instant::now() + TRIAL_LIMIT;
    while Instant::now() < deadline {
        let found = webhook.received().into_iter().find(|r| {
            r.at >= since
                && serde_json::from_slice::<serde_json::Value>(&r.body).is_ok_and(|body| {
                    body["alerts"].as_array().is_some_and(|alerts| {
                        alerts.iter().any(|a| {
                            a["status"] == status
                                && a["labels"]["alertname"] == ALERT_NAME
                                && a["labels"]
                                    .as_object()
                                    .is_some_and(|l| l.values().any(|v| v == url))
                        })
                    })
                })
        });
        if let Some(found) = found {
            return Some(found.at);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// A number in [0, 1) from the OS's random source.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("OS random source");
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
