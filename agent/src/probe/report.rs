//! A finished run as values: the conditions' verdict, then every series of the run, for the
//! probe's round in the buffer and for `/metrics`.
//!
//! The order is fixed: `probe_success`, `probe_duration_seconds`, the kind's series,
//! `muster_probe_failed_condition`, `muster_probe_healthy`,
//! `muster_probe_consecutive_failures`, and `muster_probe_failure_info{reason}` while the
//! run failed.

use std::time::{Duration, SystemTime};

use super::condition::Condition;
use super::families::{
    CONSECUTIVE_FAILURES, DURATION, FAILED_CONDITION, FAILURE_INFO, HEALTHY, SUCCESS,
};
use super::health::HealthState;
use super::{MAX_REASON_CHARS, Outcome};
use crate::sample::FamilySpec;

/// One value of a run, labelled `probe` and `target` (and `reason` for
/// [`FAILURE_INFO`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeValue {
    /// Its family.
    pub family: &'static FamilySpec<'static>,
    /// The `reason` label, for [`FAILURE_INFO`] only.
    pub reason: Option<String>,
    /// The value.
    pub value: f64,
}

impl ProbeValue {
    fn new(family: &'static FamilySpec<'static>, value: f64) -> Self {
        Self {
            family,
            reason: None,
            value,
        }
    }
}

/// Checks `conditions` against the run and fails `outcome` with the first that does not
/// hold (unless the prober already failed it: its reason explains more). Returns that
/// condition's 1-based number. `now` is when the run ended.
pub fn check_conditions(
    outcome: &mut Outcome,
    conditions: &[Condition],
    response_time: Duration,
    now: SystemTime,
) -> Option<usize> {
    let failed = conditions
        .iter()
        .position(|c| !c.holds(&outcome.facts, response_time, now))?;
    if let Some(condition) = conditions.get(failed) {
        let text: String = condition
            .as_str()
            .trim()
            .chars()
            .take(MAX_REASON_CHARS)
            .collect();
        outcome.fail(format!("condition {text} failed"));
    }
    Some(failed + 1)
}

/// The values of a run that took `elapsed`, after its conditions were checked
/// (`failed_condition`) and `health` recorded it.
pub fn values(
    outcome: &Outcome,
    elapsed: Duration,
    failed_condition: Option<usize>,
    health: &HealthState,
) -> Vec<ProbeValue> {
    let success = outcome.failure().is_none();
    let mut values = Vec::with_capacity(outcome.series().len() + 7);
    values.push(ProbeValue::new(&SUCCESS, if success { 1.0 } else { 0.0 }));
    values.push(ProbeValue::new(&DURATION, elapsed.as_secs_f64()));
    values.extend(
        outcome
            .series()
            .iter()
            .map(|&(family, value)| ProbeValue::new(family, value)),
    );
    values.push(ProbeValue::new(
        &FAILED_CONDITION,
        failed_condition.map_or(0.0, |n| n as f64),
    ));
    values.push(ProbeValue::new(
        &HEALTHY,
        if health.healthy() { 1.0 } else { 0.0 },
    ));
    values.push(ProbeValue::new(
        &CONSECUTIVE_FAILURES,
        f64::from(health.consecutive_failures()),
    ));
    if let Some(reason) = outcome.failure() {
        values.push(ProbeValue {
            family: &FAILURE_INFO,
            reason: Some(reason.to_owned()),
            value: 1.0,
        });
    }
    values
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::probe::families::HTTP_STATUS_CODE;

    fn names(values: &[ProbeValue]) -> Vec<(&str, Option<&str>, f64)> {
        values
            .iter()
            .map(|v| (v.family.name, v.reason.as_deref(), v.value))
            .collect()
    }

    #[test]
    fn the_first_failing_condition_explains_a_run_the_prober_passed() {
        let conditions: Vec<Condition> = ["[STATUS] < 500", "[STATUS] == 200", "[STATUS] == 201"]
            .iter()
            .map(|c| Condition::parse(c).unwrap())
            .collect();
        let mut out = Outcome::default();
        out.facts.status = Some(204);
        let failed = check_conditions(&mut out, &conditions, Duration::ZERO, UNIX_EPOCH);
        assert_eq!(failed, Some(2));
        assert_eq!(out.failure(), Some("condition [STATUS] == 200 failed"));

        let mut refused = Outcome::default();
        refused.fail("connection refused");
        let failed = check_conditions(&mut refused, &conditions, Duration::ZERO, UNIX_EPOCH);
        assert_eq!(failed, Some(1));
        assert_eq!(refused.failure(), Some("connection refused"));

        let mut fine = Outcome::default();
        fine.facts.status = Some(200);
        assert_eq!(
            check_conditions(&mut fine, &conditions[..2], Duration::ZERO, UNIX_EPOCH),
            None
        );
        assert_eq!(fine.failure(), None);
    }

    #[test]
    fn a_run_becomes_its_series_in_a_fixed_order() {
        let mut health = HealthState::new();
        let mut out = Outcome::default();
        out.set(&HTTP_STATUS_CODE, 200.0);
        health.record(true, 1, 3);
        assert_eq!(
            names(&values(&out, Duration::from_millis(250), None, &health)),
            vec![
                ("probe_success", None, 1.0),
                ("probe_duration_seconds", None, 0.25),
                ("probe_http_status_code", None, 200.0),
                ("muster_probe_failed_condition", None, 0.0),
                ("muster_probe_healthy", None, 1.0),
                ("muster_probe_consecutive_failures", None, 0.0),
            ]
        );

        let mut failed = Outcome::default();
        failed.fail("status 503");
        health.record(false, 1, 1);
        assert_eq!(
            names(&values(&failed, Duration::from_secs(1), Some(1), &health)),
            vec![
                ("probe_success", None, 0.0),
                ("probe_duration_seconds", None, 1.0),
                ("muster_probe_failed_condition", None, 1.0),
                ("muster_probe_healthy", None, 0.0),
                ("muster_probe_consecutive_failures", None, 1.0),
                ("muster_probe_failure_info", Some("status 503"), 1.0),
            ]
        );
    }
}
