//! Urgent rounds: buffered rounds the collector should pull at once (a probe's health
//! changed), announced to `GET /v1/samples/urgent` waiters.
//!
//! Holds only the newest urgent sequence number (a watch channel); the rounds themselves
//! are in the buffer like every other. Leaves out deciding what is urgent: the probe
//! runner marks its rounds. After a restart nothing is marked until the next change; the
//! collector's regular pulls still bring every round.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The newest urgent round, and its waiters.
#[derive(Debug)]
pub struct UrgentRounds {
    newest: watch::Sender<u64>,
    closed: CancellationToken,
}

impl Default for UrgentRounds {
    fn default() -> Self {
        Self::new()
    }
}

impl UrgentRounds {
    /// Nothing marked yet.
    pub fn new() -> Self {
        Self {
            newest: watch::Sender::new(0),
            closed: CancellationToken::new(),
        }
    }

    /// Marks round `seq` urgent and wakes the waiters it concerns.
    pub fn mark(&self, seq: u64) {
        self.newest.send_if_modified(|newest| {
            let newer = seq > *newest;
            if newer {
                *newest = seq;
            }
            newer
        });
    }

    /// Waits up to `timeout` for an urgent round after `after`; returns its sequence
    /// number, or 0 when none came (or [`UrgentRounds::close`] was called).
    pub async fn wait_after(&self, after: u64, timeout: Duration) -> u64 {
        let mut newest = self.newest.subscribe();
        tokio::select! {
            biased;
            () = self.closed.cancelled() => 0,
            found = tokio::time::timeout(timeout, newest.wait_for(|&seq| seq > after)) => {
                found.ok().and_then(Result::ok).map_or(0, |seq| *seq)
            }
        }
    }

    /// Wakes every waiter with 0 and answers later ones at once: the agent is stopping,
    /// and graceful shutdown must not wait for long polls.
    pub fn close(&self) {
        self.closed.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_waiter_wakes_on_a_newer_mark_only() {
        let urgent = Arc::new(UrgentRounds::new());
        urgent.mark(5);
        // Already there: no wait.
        assert_eq!(urgent.wait_after(4, Duration::from_secs(10)).await, 5);
        // Nothing after 5 within the timeout.
        assert_eq!(urgent.wait_after(5, Duration::from_secs(10)).await, 0);

        let waiter = {
            let urgent = urgent.clone();
            tokio::spawn(async move { urgent.wait_after(5, Duration::from_secs(60)).await })
        };
        tokio::task::yield_now().await;
        urgent.mark(3); // older: ignored
        urgent.mark(7);
        assert_eq!(waiter.await.unwrap(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn close_releases_waiters() {
        let urgent = Arc::new(UrgentRounds::new());
        let waiter = {
            let urgent = urgent.clone();
            tokio::spawn(async move { urgent.wait_after(0, Duration::from_secs(60)).await })
        };
        tokio::task::yield_now().await;
        urgent.close();
        assert_eq!(waiter.await.unwrap(), 0);
        assert_eq!(urgent.wait_after(0, Duration::from_secs(60)).await, 0);
    }
}
