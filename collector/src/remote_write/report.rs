//! Logging repeated remote write failures without flooding: a failing request is logged
//! when its error text changes, queue drops at most once a minute with their count. The
//! metrics count every occurrence; these only decide which ones reach the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a queue that keeps overflowing is logged.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Remembers the last logged failure of one sender.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    last: Option<String>,
}

impl FailureLog {
    /// Whether `text` differs from the failure logged last (and remembers it).
    pub fn changed(&mut self, text: &str) -> bool {
        if self.last.as_deref() == Some(text) {
            return false;
        }
        self.last = Some(text.to_owned());
        true
    }

    /// Forgets the last failure; returns whether there was one (the sender recovered).
    pub fn clear(&mut self) -> bool {
        self.last.take().is_some()
    }
}

/// Logs one endpoint's queue overflows at most once per [`DROP_LOG_INTERVAL`].
#[derive(Debug, Default)]
pub(crate) struct DropLog {
    state: Mutex<DropState>,
}

#[derive(Debug, Default)]
struct DropState {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl DropLog {
    /// Records `dropped` samples and logs them (with any not logged yet) when the last log
    /// line is old enough.
    pub fn record(&self, remote: &str, dropped: u64, capacity: usize) {
        if dropped == 0 {
            return;
        }
        let now = Instant::now();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.unlogged += dropped;
        if state
            .last_logged
            .is_some_and(|at| now.duration_since(at) < DROP_LOG_INTERVAL)
        {
            return;
        }
        let samples = std::mem::take(&mut state.unlogged);
        state.last_logged = Some(now);
        drop(state);
        tracing::warn!(
            remote,
            dropped_samples = samples,
            queue_capacity = capacity,
            "remote write queue full; dropped the oldest samples"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_log_reports_changes_only() {
        let mut log = FailureLog::default();
        assert!(log.changed("HTTP 500"));
        assert!(!log.changed("HTTP 500"));
        assert!(log.changed("timeout"));
        assert!(log.clear());
        assert!(!log.clear());
        assert!(log.changed("timeout"));
    }

    #[test]
    fn drop_log_keeps_counting_between_lines() {
        let log = DropLog::default();
        log.record("r", 5, 10);
        log.record("r", 3, 10);
        log.record("r", 0, 10);
        let state = log.state.lock().unwrap();
        assert_eq!(state.unlogged, 3);
        assert!(state.last_logged.is_some());
    }
}
