//! The durable outbox: a notification the dispatcher decided to send is delivered after a
//! receiver outage and after a collector restart, at least once.
//!
//! [`Outbox::enqueue`] writes notifications to sled (tree `alert_outbox`) in one batch and
//! flushes before it returns, so what the dispatcher handed over survives a crash from
//! then on. [`Outbox::start`] runs one worker per receiver, so a slow or down receiver
//! delays only itself. A worker delivers its receiver's entries in id order, so a
//! resolved notice never overtakes the firing one before it:
//!
//! 1. take the oldest pending entry; wait until it is due;
//! 2. send it once; on success delete it (one write and a flush);
//! 3. on a permanent failure, or when a retryable one has gone on for
//!    `dead_letter_after` since the entry was queued (or since this collector started),
//!    make it a dead letter (kept, listed, retried or deleted through the API, dropped after
//!    `dead_letter_retention`), and go on with the next;
//! 4. otherwise wait: exponential backoff with full jitter, from `min_backoff` doubling to
//!    `max_backoff`, and never less than the service's `Retry-After`.
//!
//! Entries for a receiver that is not configured become dead letters at once, saying so.
//! Interrupted at any point, the store holds each entry whole: an entry delivered but not
//! yet deleted is delivered again after a restart (receivers deduplicate by the
//! notification's stable `group_key`). Attempt counts and next-attempt times are written
//! without a flush; a crash may forget the last few, which only shortens a wait.
//!
//! Parts: `config.rs` ([`OutboxConfig`]), `store.rs` (the entry layout and the in-memory
//! index), `delivery.rs` (the workers and the janitor), `metrics.rs`.

mod config;
mod delivery;
mod metrics;
mod store;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use muster_shared::store::{Store, StoreError, Tree};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::OutboxConfig;
pub use store::{EntryFilter, EntryState, OutboxEntry, TREE};

use crate::alert::model::Notification;
use crate::alert::notify::{FailureReason, Receiver, ReceiverKind};
use metrics::OutboxMetrics;
use store::Index;

/// Why an outbox operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The store failed; for `enqueue`, nothing was queued.
    #[error("outbox store: {0}")]
    Store(#[from] StoreError),
    /// No entry has this id.
    #[error("outbox entry {id} does not exist")]
    NotFound {
        /// The id asked for.
        id: u64,
    },
    /// The entry is pending, not a dead letter.
    #[error("outbox entry {id} is not a dead letter")]
    NotDead {
        /// The id asked for.
        id: u64,
    },
    /// The entry's receiver is not configured, so retrying it is pointless.
    #[error("outbox entry {id} is for receiver {receiver:?}, which is not configured")]
    UnknownReceiver {
        /// The id asked for.
        id: u64,
        /// Its receiver.
        receiver: String,
    },
    /// The settings are invalid.
    #[error("invalid outbox config: {}", problems.join("; "))]
    Invalid {
        /// Each problem.
        problems: Vec<String>,
    },
    /// A blocking store task panicked.
    #[error("outbox store task failed: {reason}")]
    Task {
        /// What happened.
        reason: String,
    },
    /// The metrics could not be registered (an outbox opened twice on one registry).
    #[error("registering outbox metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The time the outbox reads: the system clock, or in tests Tokio's (paused) clock.
#[derive(Debug, Clone)]
pub(crate) enum Clock {
    /// Milliseconds since the Unix epoch.
    System,
    /// `wall_ms` plus the Tokio time passed since `at`.
    #[cfg(test)]
    Tokio {
        wall_ms: u64,
        at: tokio::time::Instant,
    },
}

impl Clock {
    fn now_ms(&self) -> u64 {
        match self {
            Clock::System => crate::unix_ms(),
            #[cfg(test)]
            Clock::Tokio { wall_ms, at } => {
                wall_ms + u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)
            }
        }
    }
}

/// The outbox. Its methods other than [`Outbox::start`] block on disk I/O: call them from
/// `spawn_blocking`.
#[derive(Debug)]
pub struct Outbox {
    store: Store,
    tree: Tree<u64, OutboxEntry>,
    config: OutboxConfig,
    /// Serialises every write, and holds the last id given out.
    writer: Mutex<u64>,
    index: Mutex<Index>,
    /// The receivers of the running workers and their kinds; `None` before `start`.
    known: Mutex<Option<BTreeMap<String, ReceiverKind>>>,
    wakers: Mutex<BTreeMap<String, Arc<Notify>>>,
    metrics: OutboxMetrics,
    clock: Clock,
    opened_at_ms: u64,
}

/// The running workers of one [`Outbox::start`].
#[derive(Debug)]
pub struct OutboxWorkers {
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl OutboxWorkers {
    /// Stops the workers (an attempt in flight is abandoned and retried later).
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Waits until every worker has stopped, after [`Self::stop`] or the cancellation of
    /// the token given to `start`.
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Outbox {
    /// Opens the outbox in `store` and registers its metrics in `registry`. Reads every
    /// entry once to index it (blocking). Nothing is delivered until [`Self::start`].
    ///
    /// # Errors
    /// [`OutboxError::Invalid`], [`OutboxError::Store`] when the tree cannot be read,
    /// [`OutboxError::Metrics`] on a second registration.
    pub fn open(
        store: &Store,
        config: OutboxConfig,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Self>, OutboxError> {
        Self::open_with(store, config, registry, Clock::System)
    }

    pub(crate) fn open_with(
        store: &Store,
        config: OutboxConfig,
        registry: &prometheus::Registry,
        clock: Clock,
    ) -> Result<Arc<Self>, OutboxError> {
        let problems = config.problems("outbox");
        if !problems.is_empty() {
            return Err(OutboxError::Invalid { problems });
        }
        let tree = store.tree::<u64, OutboxEntry>(TREE)?;
        let (index, last_id) = Index::load(&tree)?;
        let metrics = OutboxMetrics::register(registry)?;
        let (pending, dead) = index.counts();
        metrics.entries(pending, dead);
        if pending + dead > 0 {
            tracing::info!(pending, dead, "outbox opened with stored notifications");
        }
        Ok(Arc::new(Self {
            store: store.clone(),
            tree,
            config,
            writer: Mutex::new(last_id),
            index: Mutex::new(index),
            known: Mutex::new(None),
            wakers: Mutex::new(BTreeMap::new()),
            metrics,
            opened_at_ms: clock.now_ms(),
            clock,
        }))
    }

    /// Stores `notifications` as pending entries, in order, in one batch, and flushes: once
    /// it returns `Ok`, they will be delivered even after a crash. Returns their ids. A
    /// notification for a receiver the running workers do not know becomes a dead letter
    /// at once. Blocking.
    ///
    /// # Errors
    /// [`OutboxError::Store`]; then none of them is queued, and the call can be repeated.
    pub fn enqueue(&self, notifications: Vec<Notification>) -> Result<Vec<u64>, OutboxError> {
        if notifications.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now_ms();
        let known = lock(&self.known).clone();
        let mut last_id = lock(&self.writer);
        let mut batch = self.tree.batch();
        let mut entries = Vec::with_capacity(notifications.len());
        for n in notifications {
            let id = *last_id + 1 + u64::try_from(entries.len()).unwrap_or(u64::MAX);
            let mut entry = OutboxEntry::pending(id, n, now);
            if let Some(known) = &known
                && !known.contains_key(entry.receiver())
            {
                let text = unknown_receiver_text(entry.receiver());
                entry = entry.into_dead(FailureReason::UnknownReceiver, text, now);
            }
            batch.insert(&id, &entry)?;
            entries.push(entry);
        }
        // Ids are never reused, even when this fails.
        *last_id += u64::try_from(entries.len()).unwrap_or(u64::MAX);
        self.tree.apply(batch)?;
        if let Err(err) = self.store.flush() {
            let mut undo = self.tree.batch();
            for entry in &entries {
                undo.remove(&entry.id);
            }
            let _ = self.tree.apply(undo);
            return Err(err.into());
        }
        self.indexed(|index| entries.iter().for_each(|e| index.insert(e)));
        drop(last_id);
        for entry in &entries {
            match entry.state {
                EntryState::Pending => self.wake(entry.receiver()),
                EntryState::Dead => tracing::error!(
                    receiver = %entry.receiver(),
                    id = entry.id,
                    "notification for an unknown receiver; dead-lettered"
                ),
            }
        }
        Ok(entries.iter().map(|e| e.id).collect())
    }

    /// The entries passing `filter`, oldest first. Blocking; reads the whole tree.
    ///
    /// # Errors
    /// [`OutboxError::Store`].
    pub fn list(&self, filter: EntryFilter) -> Result<Vec<OutboxEntry>, OutboxError> {
        let mut entries = Vec::new();
        for item in self.tree.iter() {
            let (_, entry) = item?;
            if filter.matches(&entry) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// Entry `id`, if it exists. Blocking.
    ///
    /// # Errors
    /// [`OutboxError::Store`].
    pub fn get(&self, id: u64) -> Result<Option<OutboxEntry>, OutboxError> {
        Ok(self.tree.get(&id)?)
    }

    /// Puts dead letter `id` back in its receiver's queue, due at once, with its attempts
    /// reset (its last error is kept). It keeps its id, so it goes before the receiver's
    /// newer entries. Blocking.
    ///
    /// # Errors
    /// [`OutboxError::NotFound`], [`OutboxError::NotDead`],
    /// [`OutboxError::UnknownReceiver`] when its receiver is not configured, or
    /// [`OutboxError::Store`].
    pub fn retry_dead(&self, id: u64) -> Result<OutboxEntry, OutboxError> {
        let _writer = lock(&self.writer);
        let mut entry = self.tree.get(&id)?.ok_or(OutboxError::NotFound { id })?;
        if entry.state != EntryState::Dead {
            return Err(OutboxError::NotDead { id });
        }
        if lock(&self.known)
            .as_ref()
            .is_some_and(|known| !known.contains_key(entry.receiver()))
        {
            return Err(OutboxError::UnknownReceiver {
                id,
                receiver: entry.receiver().to_owned(),
            });
        }
        let now = self.now_ms();
        entry.state = EntryState::Pending;
        entry.attempts = 0;
        entry.queued_at_ms = now;
        entry.next_attempt_ms = now;
        entry.dead_at_ms = None;
        self.tree.insert(&id, &entry)?;
        self.indexed(|index| index.insert(&entry));
        self.wake(entry.receiver());
        self.store.flush()?;
        tracing::info!(receiver = %entry.receiver(), id, "dead letter put back for delivery");
        Ok(entry)
    }

    /// Deletes entry `id`, pending or dead; returns whether it existed. Blocking.
    ///
    /// # Errors
    /// [`OutboxError::Store`].
    pub fn delete(&self, id: u64) -> Result<bool, OutboxError> {
        let _writer = lock(&self.writer);
        let Some(entry) = self.tree.remove(&id)? else {
            return Ok(false);
        };
        self.indexed(|index| index.remove(id, entry.receiver()));
        self.wake(entry.receiver());
        self.store.flush()?;
        Ok(true)
    }

    /// How many entries are pending and dead.
    pub fn counts(&self) -> (usize, usize) {
        lock(&self.index).counts()
    }

    /// Starts one delivery worker per receiver, and a janitor that dead-letters entries
    /// of receivers not in `receivers` and drops dead letters past their retention (at
    /// start, then hourly). Every stored pending entry of a receiver is delivered. Stops
    /// when `shutdown` is cancelled or [`OutboxWorkers::stop`] is called; after that,
    /// `start` may be called again with new receivers (a config reload). Call within a
    /// Tokio runtime.
    pub fn start(
        self: &Arc<Self>,
        receivers: Vec<Receiver>,
        shutdown: &CancellationToken,
    ) -> OutboxWorkers {
        let shutdown = shutdown.child_token();
        let known: BTreeMap<String, ReceiverKind> = receivers
            .iter()
            .map(|r| (r.name().to_owned(), r.kind()))
            .collect();
        for (name, kind) in &known {
            self.metrics.receiver(name, *kind);
        }
        *lock(&self.known) = Some(known);
        let tracker = TaskTracker::new();
        for receiver in receivers {
            tracker.spawn(delivery::run(
                Arc::clone(self),
                Arc::new(receiver),
                shutdown.clone(),
            ));
        }
        tracker.spawn(delivery::tend(Arc::clone(self), shutdown.clone()));
        tracker.close();
        OutboxWorkers { tracker, shutdown }
    }

    // The workers' side.

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Changes the index, then the entry gauge.
    fn indexed(&self, change: impl FnOnce(&mut Index)) {
        let mut index = lock(&self.index);
        change(&mut index);
        let (pending, dead) = index.counts();
        self.metrics.entries(pending, dead);
    }

    fn head(&self, receiver: &str) -> Option<u64> {
        lock(&self.index).head(receiver)
    }

    fn waker(&self, receiver: &str) -> Arc<Notify> {
        Arc::clone(lock(&self.wakers).entry(receiver.to_owned()).or_default())
    }

    fn wake(&self, receiver: &str) {
        self.waker(receiver).notify_one();
    }

    /// Removes `delivered` (if unchanged since it was read) and flushes. Blocking.
    fn settle_delivered(&self, delivered: &OutboxEntry) -> Result<(), StoreError> {
        let _writer = lock(&self.writer);
        if self
            .tree
            .compare_and_swap(&delivered.id, Some(delivered), None)?
            .is_err()
        {
            // Deleted through the API meanwhile: nothing left to do.
            return Ok(());
        }
        self.indexed(|index| index.remove(delivered.id, delivered.receiver()));
        self.store.flush()?;
        Ok(())
    }

    /// Replaces `attempted` by `next` (if unchanged since it was read); flushes when `next`
    /// is a dead letter. Blocking.
    fn settle_failed(&self, attempted: &OutboxEntry, next: &OutboxEntry) -> Result<(), StoreError> {
        let _writer = lock(&self.writer);
        if self
            .tree
            .compare_and_swap(&attempted.id, Some(attempted), Some(next))?
            .is_err()
        {
            // Deleted or changed through the API meanwhile: that wins.
            return Ok(());
        }
        self.indexed(|index| index.insert(next));
        if next.state == EntryState::Dead {
            self.store.flush()?;
        }
        Ok(())
    }
}

/// The `last_error` of an entry whose receiver is not configured.
fn unknown_receiver_text(receiver: &str) -> String {
    format!("receiver {receiver:?} is not configured")
}
