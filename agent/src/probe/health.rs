//! Kubernetes' probe thresholds: turning a probe's runs into a healthy/unhealthy state.
//!
//! A healthy probe becomes unhealthy after `failure_threshold` consecutive failed runs; an
//! unhealthy one becomes healthy again after `success_threshold` consecutive successful runs
//! ([Kubernetes: configure probes](https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#configure-probes)).
//!
//! The state before any run is **healthy**, as a Kubernetes liveness probe's is: a starting
//! agent reports a failing service only after `failure_threshold` failed runs, so a restart
//! never raises or resolves an alert on its own, and a single failed first run is not news.
//! (A readiness probe starts as failing instead; for an alert on `muster_probe_healthy == 0`
//! that would page at every agent start.)

/// A probe's state and its current streaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthState {
    healthy: bool,
    successes: u32,
    failures: u32,
}

/// A change of state, for logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Unhealthy → healthy.
    Recovered,
    /// Healthy → unhealthy.
    Failed,
}

impl Default for HealthState {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthState {
    /// The state before any run: healthy, no streak.
    pub fn new() -> Self {
        Self {
            healthy: true,
            successes: 0,
            failures: 0,
        }
    }

    /// Records one run and returns the transition it caused, if any. Thresholds below 1
    /// count as 1.
    pub fn record(
        &mut self,
        success: bool,
        success_threshold: u32,
        failure_threshold: u32,
    ) -> Option<Transition> {
        if success {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if !self.healthy && self.successes >= success_threshold.max(1) {
                self.healthy = true;
                return Some(Transition::Recovered);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.healthy && self.failures >= failure_threshold.max(1) {
                self.healthy = false;
                return Some(Transition::Failed);
            }
        }
        None
    }

    /// Whether the probe is healthy.
    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Failed runs in a row, up to the latest.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Successful runs in a row, up to the latest.
    pub fn consecutive_successes(&self) -> u32 {
        self.successes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `runs` ('s' success, 'f' failure) through thresholds (success, failure) and
    /// returns the state after each run as 'H' or 'U'.
    fn states(runs: &str, success_threshold: u32, failure_threshold: u32) -> String {
        let mut state = HealthState::new();
        runs.chars()
            .map(|c| {
                state.record(c == 's', success_threshold, failure_threshold);
                if state.healthy() { 'H' } else { 'U' }
            })
            .collect()
    }

    #[test]
    fn thresholds_follow_kubernetes() {
        let table: &[(&str, u32, u32, &str)] = &[
            // Kubernetes' defaults: success 1, failure 3.
            ("fff", 1, 3, "HHU"),
            ("ffsfff", 1, 3, "HHHHHU"),
            ("fffs", 1, 3, "HHUH"),
            ("ffffff", 1, 3, "HHUUUU"),
            // Recovery needs `success_threshold` successes in a row.
            ("fsssfss", 2, 1, "UUHHUUH"),
            ("fsfsss", 3, 1, "UUUUUH"),
            // A threshold of 1 reacts to every run; 0 counts as 1.
            ("fsfs", 1, 1, "UHUH"),
            ("fsfs", 0, 0, "UHUH"),
            // Starting healthy: successes change nothing.
            ("sss", 5, 5, "HHH"),
        ];
        for (runs, success, failure, want) in table {
            assert_eq!(
                states(runs, *success, *failure),
                *want,
                "{runs} with thresholds {success}/{failure}"
            );
        }
    }

    #[test]
    fn transitions_and_streaks_are_reported() {
        let mut s = HealthState::new();
        assert_eq!(s.record(false, 1, 2), None);
        assert_eq!(s.consecutive_failures(), 1);
        assert_eq!(s.record(false, 1, 2), Some(Transition::Failed));
        assert_eq!(s.record(false, 1, 2), None);
        assert_eq!(s.consecutive_failures(), 3);
        assert_eq!(s.record(true, 1, 2), Some(Transition::Recovered));
        assert_eq!(s.consecutive_failures(), 0);
        assert_eq!(s.consecutive_successes(), 1);
    }
}
