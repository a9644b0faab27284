//! The outbox's tasks: one delivery worker per receiver, and the janitor.
//!
//! A worker (see the module doc of the outbox for the algorithm) touches the store only
//! through `spawn_blocking`, one hop per step (read the entry; settle it), and checks
//! cancellation before each wait and during each send: an attempt cut short by shutdown
//! is simply attempted again later. It logs a failing receiver when the error changes
//! (and once when it recovers) and counts every attempt.

use std::sync::Arc;
use std::time::Duration;

use muster_shared::store::StoreError;
use tokio_util::sync::CancellationToken;

use super::{EntryState, Outbox, OutboxEntry, OutboxError, lock, unknown_receiver_text};
use crate::alert::notify::{FailureReason, NotifyError, Receiver, Sent};

/// How often the janitor runs after its first run at start.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
/// How long a worker waits after the store failed before it tries again.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// Runs `f` on the outbox in the blocking pool.
async fn blocking<T: Send + 'static>(
    outbox: &Arc<Outbox>,
    f: impl FnOnce(&Outbox) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, OutboxError> {
    let outbox = Arc::clone(outbox);
    match tokio::task::spawn_blocking(move || f(&outbox)).await {
        Ok(result) => result.map_err(OutboxError::Store),
        Err(err) => Err(OutboxError::Task {
            reason: err.to_string(),
        }),
    }
}

/// Delivers `receiver`'s entries until `shutdown`.
pub(super) async fn run(outbox: Arc<Outbox>, receiver: Arc<Receiver>, shutdown: CancellationToken) {
    let name = receiver.name().to_owned();
    let kind = receiver.kind();
    tracing::info!(receiver = %name, kind = kind.as_str(), "notification worker started");
    let mut failures = FailureLog::default();
    while let Some(entry) = next_due(&outbox, &name, &shutdown).await {
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            result = receiver.send(&entry.notification) => result,
        };
        let seconds = started.elapsed().as_secs_f64();
        let settled = match result {
            Ok(sent) => {
                if let Sent::Delivered(delivered) = sent {
                    outbox.metrics.attempt(&name, kind, seconds);
                    outbox.metrics.truncated(&name, kind, delivered.truncations);
                }
                if failures.clear() {
                    tracing::info!(receiver = %name, "receiver recovered");
                }
                tracing::debug!(
                    receiver = %name,
                    id = entry.id,
                    attempts = entry.attempts + 1,
                    "notification delivered"
                );
                blocking(&outbox, move |o| o.settle_delivered(&entry)).await
            }
            Err(err) => {
                outbox.metrics.attempt(&name, kind, seconds);
                outbox.metrics.failed(&name, kind.as_str(), err.reason);
                let next = after_failure(&outbox, &entry, &err);
                report(&name, &next, &err, &mut failures);
                blocking(&outbox, move |o| o.settle_failed(&entry, &next)).await
            }
        };
        if let Err(err) = settled {
            tracing::error!(
                receiver = %name,
                error = %err,
                "outbox could not record a delivery attempt"
            );
            if sleep_or_cancel(STORE_RETRY, &shutdown).await.is_none() {
                break;
            }
        }
    }
    tracing::info!(receiver = %name, "notification worker stopped");
}

/// Waits for `receiver`'s oldest pending entry to be due, and returns it; `None` once
/// `shutdown` is cancelled.
async fn next_due(
    outbox: &Arc<Outbox>,
    receiver: &str,
    shutdown: &CancellationToken,
) -> Option<OutboxEntry> {
    let waker = outbox.waker(receiver);
    loop {
        if shutdown.is_cancelled() {
            return None;
        }
        let Some(id) = outbox.head(receiver) else {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                () = waker.notified() => continue,
            }
        };
        let entry = match blocking(outbox, move |o| o.tree.get(&id)).await {
            Ok(Some(entry)) if entry.state == EntryState::Pending => entry,
            Ok(_) => {
                // Deleted or dead-lettered between the two reads: bring the index in line
                // with the tree (under the writer's lock) and look again.
                let owner = receiver.to_owned();
                if let Err(err) = blocking(outbox, move |o| o.resync(id, &owner)).await {
                    tracing::error!(
                        receiver,
                        id,
                        error = %err,
                        "outbox could not re-read a notification"
                    );
                    sleep_or_cancel(STORE_RETRY, shutdown).await?;
                }
                continue;
            }
            Err(err) => {
                tracing::error!(receiver, id, error = %err, "outbox could not read a notification");
                sleep_or_cancel(STORE_RETRY, shutdown).await?;
                continue;
            }
        };
        let wait = entry.next_attempt_ms.saturating_sub(outbox.now_ms());
        if wait == 0 {
            return Some(entry);
        }
        // A wake (new entry, retry, delete) re-reads the head: it may have changed.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(Duration::from_millis(wait)) => return Some(entry),
            () = waker.notified() => {}
        }
    }
}

/// `Some(())` after `wait`, `None` if `shutdown` came first.
async fn sleep_or_cancel(wait: Duration, shutdown: &CancellationToken) -> Option<()> {
    tokio::select! {
        biased;
        () = shutdown.cancelled() => None,
        () = tokio::time::sleep(wait) => Some(()),
    }
}

/// `entry` after the failed attempt `err`: a dead letter when the failure is permanent or
/// the entry has waited `dead_letter_after`, else pending with its next attempt set.
fn after_failure(outbox: &Outbox, entry: &OutboxEntry, err: &NotifyError) -> OutboxEntry {
    let now = outbox.now_ms();
    let mut next = entry.clone();
    next.attempts = next.attempts.saturating_add(1);
    next.first_attempt_ms.get_or_insert(now);
    next.last_attempt_ms = Some(now);
    next.last_error = Some(err.message.clone());
    next.last_reason = Some(err.reason);
    let waited = now.saturating_sub(entry.queued_at_ms.max(outbox.opened_at_ms));
    let limit =
        u64::try_from(outbox.config.dead_letter_after.get().as_millis()).unwrap_or(u64::MAX);
    if !err.retryable || waited >= limit {
        return next.into_dead(err.reason, err.message.clone(), now);
    }
    let delay = backoff(
        next.attempts,
        outbox.config.min_backoff.get(),
        outbox.config.max_backoff.get(),
    )
    .max(err.retry_after.unwrap_or_default());
    next.next_attempt_ms = now.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
    next
}

/// Logs a failed attempt: a dead letter always (an operator must act), a retry when its
/// error differs from the last one logged.
fn report(receiver: &str, next: &OutboxEntry, err: &NotifyError, failures: &mut FailureLog) {
    if next.state == EntryState::Dead {
        failures.clear();
        let why = if err.retryable {
            "notification kept failing past dead_letter_after; dead-lettered"
        } else {
            "notification refused for good; dead-lettered"
        };
        tracing::error!(
            receiver,
            id = next.id,
            attempts = next.attempts,
            reason = err.reason.as_str(),
            error = %err,
            "{why}"
        );
    } else if failures.changed(&err.message) {
        tracing::warn!(
            receiver,
            id = next.id,
            attempts = next.attempts,
            reason = err.reason.as_str(),
            error = %err,
            retry_at_ms = next.next_attempt_ms,
            "notification failed; will retry"
        );
    }
}

/// Full jitter: a random delay up to `min × 2^(attempts − 1)`, capped at `max`.
pub(super) fn backoff(attempts: u32, min: Duration, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    let ceiling = min.saturating_mul(1u32 << doublings).min(max);
    ceiling.mul_f64(random_fraction())
}

/// A number in `[0, 1)` from the standard library's per-process hash keys (no crate for
/// jitter).
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    // 53 bits: every such integer is exact in an f64.
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl Outbox {
    /// Makes the index say what the tree says about entry `id` of `receiver`. Blocking.
    fn resync(&self, id: u64, receiver: &str) -> Result<(), StoreError> {
        let _writer = lock(&self.writer);
        match self.tree.get(&id)? {
            Some(entry) => self.indexed(|index| index.insert(&entry)),
            None => self.indexed(|index| index.remove(id, receiver)),
        }
        Ok(())
    }

    /// Dead-letters pending entries of receivers not configured, and drops dead letters
    /// past their retention. Returns how many of each. Blocking.
    fn sweep(&self) -> Result<(usize, usize), StoreError> {
        let _writer = lock(&self.writer);
        let now = self.now_ms();
        let orphans: Vec<u64> = {
            let known = lock(&self.known);
            let index = lock(&self.index);
            match known.as_ref() {
                Some(known) => index
                    .receivers()
                    .filter(|r| !known.contains_key(*r))
                    .flat_map(|r| index.pending_of(r))
                    .collect(),
                None => Vec::new(),
            }
        };
        let retention_ms =
            u64::try_from(self.config.dead_letter_retention.get().as_millis()).unwrap_or(u64::MAX);
        let expired = lock(&self.index).dead_before(now.saturating_sub(retention_ms));
        if orphans.is_empty() && expired.is_empty() {
            return Ok((0, 0));
        }
        let mut batch = self.tree.batch();
        let mut dead = Vec::new();
        for id in &orphans {
            if let Some(entry) = self.tree.get(id)? {
                let text = unknown_receiver_text(entry.receiver());
                let entry = entry.into_dead(FailureReason::UnknownReceiver, text, now);
                batch.insert(id, &entry)?;
                dead.push(entry);
            }
        }
        let mut dropped = Vec::new();
        for id in &expired {
            if let Some(entry) = self.tree.get(id)? {
                batch.remove(id);
                dropped.push(entry);
            }
        }
        self.tree.apply(batch)?;
        self.indexed(|index| {
            dead.iter().for_each(|e| index.insert(e));
            dropped
                .iter()
                .for_each(|e| index.remove(e.id, e.receiver()));
        });
        self.store.flush()?;
        for entry in &dead {
            tracing::error!(
                receiver = %entry.receiver(),
                id = entry.id,
                "notification for a receiver that is no longer configured; dead-lettered"
            );
        }
        Ok((dead.len(), dropped.len()))
    }
}

/// Keeps the janitor running until `shutdown`: at start, then every hour.
pub(super) async fn tend(outbox: Arc<Outbox>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SWEEP_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match blocking(&outbox, Outbox::sweep).await {
            Ok((0, 0)) => {}
            Ok((orphaned, dropped)) => {
                tracing::info!(
                    orphaned,
                    dropped,
                    "outbox swept: unknown receivers dead-lettered, old dead letters dropped"
                );
            }
            Err(err) => tracing::error!(error = %err, "outbox sweep failed"),
        }
    }
}

/// Remembers the last failure logged by one worker.
#[derive(Debug, Default)]
struct FailureLog {
    last: Option<String>,
}

impl FailureLog {
    /// Whether `text` differs from the failure logged last (and remembers it).
    fn changed(&mut self, text: &str) -> bool {
        if self.last.as_deref() == Some(text) {
            return false;
        }
        self.last = Some(text.to_owned());
        true
    }

    /// Forgets the last failure; returns whether there was one.
    fn clear(&mut self) -> bool {
        self.last.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_full_jitter() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(300));
        for attempts in 1..40 {
            let ceiling = Duration::from_secs(1 << (attempts - 1).min(20)).min(max);
            for _ in 0..20 {
                let delay = backoff(attempts, min, max);
                assert!(
                    delay <= ceiling,
                    "attempt {attempts}: {delay:?} > {ceiling:?}"
                );
            }
        }
        let spread: std::collections::BTreeSet<u128> =
            (0..50).map(|_| backoff(9, min, max).as_millis()).collect();
        assert!(spread.len() > 10, "jitter varies: {spread:?}");
    }

    #[test]
    fn failure_log_reports_changes_only() {
        let mut log = FailureLog::default();
        assert!(log.changed("HTTP 500"));
        assert!(!log.changed("HTTP 500"));
        assert!(log.changed("timeout"));
        assert!(log.clear());
        assert!(!log.clear());
    }
}
