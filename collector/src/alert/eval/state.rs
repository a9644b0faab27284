//! The life of one alert, one evaluation at a time: Prometheus's alerting rule semantics
//! (`rules/alerting.go`; research/prometheus-alerting-reference.md §6).
//!
//! ```text
//!            match                  held for `for`              no match, past keep_firing_for
//! (none) ──────────▶ pending ─────────────────────────▶ firing ───────────────────────────────▶ resolved
//!                      │ no match: discarded,                ▲ match: still firing             │ match: a new
//!                      ▼ never sent                          └──(value, annotations updated)   ▼ episode (pending)
//!                   (none)                                                              (none) after retention
//! ```
//!
//! - A new match is pending from that evaluation (`active_at`); with no `for` it fires at
//!   once. It fires at the first evaluation at least `for` after `active_at`, so the delay
//!   rounds up to the evaluation interval.
//! - A pending alert that no longer matches is dropped: it was never sent.
//! - A firing alert that no longer matches keeps firing while the last matching evaluation
//!   is less than `keep_firing_for` ago, then resolves at that evaluation's time.
//! - A resolved alert stays listed for the retention, so receivers hear of it; if it matches
//!   again it starts a new episode with the same labels, hence the same fingerprint.
//! - Value and annotations follow every matching evaluation; the labels never change.
//!
//! Pure functions of the alert, what the rule saw and the time: no clock, no I/O.

use crate::alert::labels::LabelSet;
use crate::alert::model::{Alert, AlertState};

/// A rule's timing, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `for`.
    pub for_ms: u64,
    /// `keep_firing_for`.
    pub keep_firing_for_ms: u64,
    /// How long a resolved alert is kept.
    pub resolved_retention_ms: u64,
}

/// What one evaluation saw for one alert's labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The expression's value.
    pub value: f64,
    /// The annotations, expanded for this value.
    pub annotations: LabelSet,
}

/// Whether an alert is still tracked after an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Keep it (it may have changed).
    Keep,
    /// Forget it: a pending alert that stopped matching, or a resolved one past retention.
    Drop,
}

/// The alert for `labels`, first matched at `now_ms`: pending, or firing at once when the
/// rule has no `for`.
pub fn start(
    labels: LabelSet,
    seen: Seen,
    timing: Timing,
    now_ms: u64,
    generator_url: &str,
) -> Alert {
    let mut alert = Alert {
        labels,
        annotations: seen.annotations,
        state: AlertState::Pending,
        active_at_ms: now_ms,
        fired_at_ms: None,
        resolved_at_ms: None,
        value: seen.value,
        last_active_ms: now_ms,
        generator_url: generator_url.to_owned(),
    };
    promote(&mut alert, timing, now_ms);
    alert
}

/// Advances a tracked alert by one evaluation at `now_ms`; `seen` is what the rule
/// returned for its labels, `None` when it returned nothing for them.
pub fn advance(
    alert: &mut Alert,
    seen: Option<Seen>,
    timing: Timing,
    now_ms: u64,
    generator_url: &str,
) -> Outcome {
    match (alert.state, seen) {
        (AlertState::Resolved, Some(seen)) => {
            let labels = std::mem::take(&mut alert.labels);
            *alert = start(labels, seen, timing, now_ms, generator_url);
        }
        (AlertState::Pending | AlertState::Firing, Some(seen)) => {
            alert.value = seen.value;
            alert.annotations = seen.annotations;
            alert.last_active_ms = now_ms;
            generator_url.clone_into(&mut alert.generator_url);
            promote(alert, timing, now_ms);
        }
        (AlertState::Pending, None) => return Outcome::Drop,
        (AlertState::Firing, None) => {
            if now_ms.saturating_sub(alert.last_active_ms) >= timing.keep_firing_for_ms {
                resolve(alert, now_ms);
            }
        }
        (AlertState::Resolved, None) => return expire(alert, timing, now_ms),
    }
    Outcome::Keep
}

/// Retires an alert whose rule is gone (removed or disabled by a reload): a pending one is
/// dropped, a firing one resolves now, a resolved one stays for the rest of its retention.
pub fn retire(alert: &mut Alert, timing: Timing, now_ms: u64) -> Outcome {
    match alert.state {
        AlertState::Pending => Outcome::Drop,
        AlertState::Firing => {
            resolve(alert, now_ms);
            Outcome::Keep
        }
        AlertState::Resolved => expire(alert, timing, now_ms),
    }
}

/// After a restart: a pending alert keeps the time it spent pending before the collector
/// stopped, but not the time it was down (nobody saw the condition then), as Prometheus
/// restores `for` state. `down_at_ms` is the last evaluation before the stop.
pub fn shift_for_downtime(alert: &mut Alert, down_at_ms: u64, now_ms: u64) {
    if alert.state == AlertState::Pending {
        let downtime = now_ms.saturating_sub(down_at_ms);
        alert.active_at_ms = alert.active_at_ms.saturating_add(downtime).min(now_ms);
    }
}

fn promote(alert: &mut Alert, timing: Timing, now_ms: u64) {
    if alert.state == AlertState::Pending
        && now_ms.saturating_sub(alert.active_at_ms) >= timing.for_ms
    {
        alert.state = AlertState::Firing;
        alert.fired_at_ms = Some(now_ms);
    }
}

fn resolve(alert: &mut Alert, now_ms: u64) {
    alert.state = AlertState::Resolved;
    alert.resolved_at_ms = Some(now_ms);
}

fn expire(alert: &Alert, timing: Timing, now_ms: u64) -> Outcome {
    let resolved_at = alert.resolved_at_ms.unwrap_or(alert.last_active_ms);
    if now_ms.saturating_sub(resolved_at) > timing.resolved_retention_ms {
        Outcome::Drop
    } else {
        Outcome::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000;

    fn timing(for_s: u64, keep_s: u64) -> Timing {
        Timing {
            for_ms: for_s * SEC,
            keep_firing_for_ms: keep_s * SEC,
            resolved_retention_ms: 60 * SEC,
        }
    }

    fn seen(value: f64) -> Seen {
        Seen {
            value,
            annotations: LabelSet::from([("summary".to_owned(), format!("v={value}"))]),
        }
    }

    /// One step of a table: the evaluation time (s), whether the rule matched, and the state
    /// after it (`None`: no longer tracked).
    type Step = (u64, bool, Option<AlertState>);

    /// Runs `steps` against one label set and checks each state, returning the alert.
    fn run(timing: Timing, steps: &[Step]) -> Option<Alert> {
        let labels = LabelSet::from([("alertname".to_owned(), "A".to_owned())]);
        let mut alert: Option<Alert> = None;
        for (i, &(t, matched, want)) in steps.iter().enumerate() {
            let now = t * SEC;
            let observed = matched.then(|| seen(t as f64));
            alert = match (alert.take(), observed) {
                (None, None) => None,
                (None, Some(s)) => Some(start(labels.clone(), s, timing, now, "u")),
                (Some(mut a), s) => match advance(&mut a, s, timing, now, "u") {
                    Outcome::Keep => Some(a),
                    Outcome::Drop => None,
                },
            };
            assert_eq!(
                alert.as_ref().map(|a| a.state),
                want,
                "step {i} at {t}s: {alert:?}"
            );
        }
        alert
    }

    use AlertState::{Firing, Pending, Resolved};

    #[test]
    fn pending_then_firing_then_resolved() {
        let alert = run(
            timing(10, 0),
            &[
                (0, false, None),
                (5, true, Some(Pending)),
                (10, true, Some(Pending)),
                (15, true, Some(Firing)),
                (20, true, Some(Firing)),
                (25, false, Some(Resolved)),
                (30, false, Some(Resolved)),
            ],
        )
        .unwrap();
        assert_eq!(alert.active_at_ms, 5 * SEC);
        assert_eq!(alert.fired_at_ms, Some(15 * SEC));
        assert_eq!(alert.resolved_at_ms, Some(25 * SEC));
        assert_eq!(alert.last_active_ms, 20 * SEC);
        assert_eq!(alert.value, 20.0, "the value of the last match");
        assert_eq!(alert.annotations["summary"], "v=20");
    }

    #[test]
    fn without_for_it_fires_at_the_first_match() {
        let alert = run(timing(0, 0), &[(5, true, Some(Firing))]).unwrap();
        assert_eq!(alert.fired_at_ms, Some(alert.active_at_ms));
    }

    #[test]
    fn flapping_within_for_starts_pending_from_scratch() {
        let alert = run(
            timing(10, 0),
            &[
                (0, true, Some(Pending)),
                (5, true, Some(Pending)),
                (10, false, None),
                (15, true, Some(Pending)),
                (20, true, Some(Pending)),
                (25, true, Some(Firing)),
            ],
        )
        .unwrap();
        assert_eq!(alert.active_at_ms, 15 * SEC, "the second episode's start");
        assert_eq!(alert.fired_at_ms, Some(25 * SEC));
    }

    #[test]
    fn keep_firing_for_bridges_gaps_and_then_resolves() {
        let alert = run(
            timing(0, 10),
            &[
                (0, true, Some(Firing)),
                (5, false, Some(Firing)),
                (9, false, Some(Firing)),
                (12, true, Some(Firing)),
                (17, false, Some(Firing)),
                (22, false, Some(Resolved)),
            ],
        )
        .unwrap();
        assert_eq!(alert.fired_at_ms, Some(0), "one episode throughout");
        assert_eq!(alert.resolved_at_ms, Some(22 * SEC));
    }

    #[test]
    fn keep_firing_for_does_not_keep_a_pending_alert() {
        run(
            timing(10, 60),
            &[(0, true, Some(Pending)), (5, false, None)],
        );
    }

    #[test]
    fn a_resolved_alert_that_matches_again_is_a_new_episode_then_expires() {
        let alert = run(
            timing(5, 0),
            &[
                (0, true, Some(Pending)),
                (5, true, Some(Firing)),
                (10, false, Some(Resolved)),
                (15, true, Some(Pending)),
                (20, true, Some(Firing)),
                (25, false, Some(Resolved)),
                (85, false, Some(Resolved)),
                (86, false, None),
            ],
        );
        assert!(alert.is_none(), "past the 60 s retention");
        let second = run(
            timing(5, 0),
            &[
                (0, true, Some(Pending)),
                (5, true, Some(Firing)),
                (10, false, Some(Resolved)),
                (15, true, Some(Pending)),
            ],
        )
        .unwrap();
        assert_eq!(
            (
                second.active_at_ms,
                second.fired_at_ms,
                second.resolved_at_ms
            ),
            (15 * SEC, None, None)
        );
    }

    #[test]
    fn retiring_drops_pending_and_resolves_firing() {
        let t = timing(10, 600);
        let labels = LabelSet::new();
        let mut pending = start(labels.clone(), seen(1.0), t, 0, "u");
        assert_eq!(retire(&mut pending, t, SEC), Outcome::Drop);
        let mut firing = start(labels, seen(1.0), timing(0, 600), 0, "u");
        assert_eq!(retire(&mut firing, t, SEC), Outcome::Keep);
        assert_eq!(
            firing.state, Resolved,
            "keep_firing_for does not outlive the rule"
        );
        assert_eq!(firing.resolved_at_ms, Some(SEC));
        assert_eq!(retire(&mut firing, t, 62 * SEC), Outcome::Drop);
    }

    proptest::proptest! {
        #[test]
        fn any_sequence_of_matches_keeps_the_invariants(
            for_s in 0u64..30,
            keep_s in 0u64..30,
            steps in proptest::collection::vec((1u64..15, proptest::bool::ANY), 1..60),
        ) {
            use proptest::prop_assert;
            let t = timing(for_s, keep_s);
            let mut now = 0;
            let mut alert: Option<Alert> = None;
            for (dt, matched) in steps {
                now += dt * SEC;
                let before = alert.as_ref().map(|a| a.state);
                alert = match (alert.take(), matched.then(|| seen(1.0))) {
                    (None, None) => None,
                    (None, Some(s)) => Some(start(LabelSet::new(), s, t, now, "u")),
                    (Some(mut a), s) => match advance(&mut a, s, t, now, "u") {
                        Outcome::Keep => Some(a),
                        Outcome::Drop => None,
                    },
                };
                let Some(a) = &alert else {
                    prop_assert!(!matched, "a match is always tracked");
                    continue;
                };
                prop_assert!(a.active_at_ms <= a.last_active_ms && a.last_active_ms <= now);
                match a.state {
                    Pending => {
                        prop_assert!(matched && a.fired_at_ms.is_none());
                        prop_assert!(now - a.active_at_ms < t.for_ms, "pending past its for");
                    }
                    Firing => {
                        let fired = a.fired_at_ms.unwrap_or(0);
                        prop_assert!(fired - a.active_at_ms >= t.for_ms, "fired early");
                        prop_assert!(matched || now - a.last_active_ms < t.keep_firing_for_ms);
                    }
                    Resolved => {
                        prop_assert!(!matched);
                        prop_assert!(before != Some(Pending), "a pending alert never resolves");
                        prop_assert!(a.fired_at_ms <= a.resolved_at_ms && a.fired_at_ms.is_some());
                    }
                }
            }
        }
    }

    #[test]
    fn downtime_does_not_count_towards_for() {
        let t = timing(60, 0);
        let mut alert = start(LabelSet::new(), seen(1.0), t, 0, "u");
        // Pending for 20 s when the collector stopped at 20 s; back at 120 s.
        shift_for_downtime(&mut alert, 20 * SEC, 120 * SEC);
        assert_eq!(alert.active_at_ms, 100 * SEC);
        assert_eq!(
            advance(&mut alert, Some(seen(1.0)), t, 155 * SEC, "u"),
            Outcome::Keep
        );
        assert_eq!(alert.state, Pending);
        advance(&mut alert, Some(seen(1.0)), t, 160 * SEC, "u");
        assert_eq!(alert.state, Firing, "20 s before the stop + 40 s after");
        let mut firing = alert.clone();
        shift_for_downtime(&mut firing, 160 * SEC, 500 * SEC);
        assert_eq!(firing, alert, "only pending alerts move");
    }
}
