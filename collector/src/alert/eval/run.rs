//! The evaluation loop: the rules in force, every `evaluation_interval`, until cancelled.
//!
//! Each round is one blocking task (queries, state, the store's batch and, when alerts
//! changed, its flush), so a round is never cut in half by cancellation: the loop only
//! stops between rounds. A slow round delays the next instead of overlapping it.

use std::sync::Arc;
use std::time::Duration;

use muster_shared::store::Store;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::alert::rules::reload::LoadedRules;
use crate::series::SeriesSource;

use super::Evaluator;

impl Evaluator {
    /// Evaluates `rules`' current set against `source` at once and then every `interval`,
    /// flushing `store` after a round that changed alerts, until `cancel`. Failures are
    /// logged when they change (a rule's in [`Evaluator::evaluate`], the store's here) and
    /// the loop goes on.
    pub async fn run(
        self: Arc<Self>,
        rules: Arc<LoadedRules>,
        source: Arc<dyn SeriesSource>,
        store: Store,
        interval: Duration,
        cancel: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_failure: Option<String> = None;
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let evaluator = Arc::clone(&self);
            let set = rules.current();
            let source = Arc::clone(&source);
            let store = store.clone();
            let round = tokio::task::spawn_blocking(move || -> Result<(), String> {
                let summary = evaluator
                    .evaluate(&set, source.as_ref(), crate::unix_ms())
                    .map_err(|err| format!("{err}: {}", source_text(&err)))?;
                if summary.written > 0 {
                    store
                        .flush()
                        .map_err(|err| format!("cannot flush alert state: {err}"))?;
                }
                Ok(())
            })
            .await
            .unwrap_or_else(|err| Err(format!("evaluation task failed: {err}")));
            match round {
                Ok(()) => {
                    if last_failure.take().is_some() {
                        tracing::info!("alert state saves again");
                    }
                }
                Err(message) => {
                    if last_failure.as_ref() != Some(&message) {
                        tracing::error!(error = %message, "alert evaluation round failed");
                    }
                    last_failure = Some(message);
                }
            }
        }
    }
}

/// The error's source, which `Display` of [`super::EvalError`] leaves out.
fn source_text(err: &super::EvalError) -> String {
    std::error::Error::source(err).map_or_else(String::new, ToString::to_string)
}
