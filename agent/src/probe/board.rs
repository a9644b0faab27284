//! The latest values of every probe, for `/metrics`.
//!
//! Probe runs go to the buffer as their own rounds (the runner appends them); the text
//! exposition is rendered by the sampling loop once per sampling round. The board sits
//! between the two: each run replaces its probe's values here, and the scheduler, at each
//! render, copies the board into a table of its own ([`ExtraSeries`]), so probe series
//! appear on `/metrics` at most one sampling interval after their run, once per family, and
//! are never appended to the buffer twice.

use std::sync::{Mutex, PoisonError};

use super::report::ProbeValue;
use crate::sample::SeriesTable;
use crate::sample::scheduler::ExtraSeries;

/// The latest run's values of each probe, by the probe's position in the config.
#[derive(Debug, Default)]
pub struct ProbeBoard {
    probes: Mutex<Vec<Entry>>,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    name: String,
    target: String,
    values: Vec<ProbeValue>,
}

impl ProbeBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the values of the probe at `slot`.
    pub fn publish(&self, slot: usize, name: &str, target: &str, values: Vec<ProbeValue>) {
        let mut probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
        if probes.len() <= slot {
            probes.resize_with(slot + 1, Entry::default);
        }
        if let Some(entry) = probes.get_mut(slot) {
            if entry.name != name {
                name.clone_into(&mut entry.name);
            }
            if entry.target != target {
                target.clone_into(&mut entry.target);
            }
            entry.values = values;
        }
    }
}

impl ExtraSeries for ProbeBoard {
    fn fill(&self, out: &mut SeriesTable) {
        let probes = self.probes.lock().unwrap_or_else(PoisonError::into_inner);
        for entry in probes.iter() {
            for value in &entry.values {
                match &value.reason {
                    Some(reason) => out.set_spec(
                        value.family,
                        &[&entry.name, &entry.target, reason],
                        value.value,
                    ),
                    None => out.set_spec(value.family, &[&entry.name, &entry.target], value.value),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::families::{FAILURE_INFO, SUCCESS};
    use crate::sample::exposition;

    #[test]
    fn renders_each_family_once_with_the_latest_values() {
        let board = ProbeBoard::new();
        let success = |v| ProbeValue {
            family: &SUCCESS,
            reason: None,
            value: v,
        };
        board.publish(1, "db", "db:5432", vec![success(0.0)]);
        board.publish(0, "api", "https://api/", vec![success(0.0)]);
        board.publish(
            0,
            "api",
            "https://api/",
            vec![
                success(1.0),
                ProbeValue {
                    family: &FAILURE_INFO,
                    reason: Some("status 503".to_owned()),
                    value: 1.0,
                },
            ],
        );
        let mut table = SeriesTable::new();
        table.begin_round();
        board.fill(&mut table);
        let mut text = String::new();
        exposition::render(&[&table], &mut text);
        assert_eq!(
            text,
            "# HELP probe_success blackbox_exporter: Displays whether or not the probe was a success\n\
             # TYPE probe_success gauge\n\
             probe_success{probe=\"api\",target=\"https://api/\"} 1\n\
             probe_success{probe=\"db\",target=\"db:5432\"} 0\n\
             # HELP muster_probe_failure_info Why the latest run of the probe failed, as the reason label; absent while it succeeds.\n\
             # TYPE muster_probe_failure_info gauge\n\
             muster_probe_failure_info{probe=\"api\",target=\"https://api/\",reason=\"status 503\"} 1\n"
        );
    }
}
