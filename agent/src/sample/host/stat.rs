//! The `stat` sampler: kernel-wide counters from `/proc/stat` (boot time,
//! context switches, forks, interrupts, runnable and blocked processes).
//!
//! Leaves out the per-CPU lines (the `cpu` sampler reads them from the same
//! file), node_exporter's optional `softirqs` breakdown and the per-IRQ
//! counts of the `intr` line (only its total is emitted).

use std::path::PathBuf;

use super::read::{as_text, parse_u64, read_into};
use crate::sample::paths::SamplePaths;
use crate::sample::series::{FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};

const BOOT_TIME: FamilySpec<'static> = FamilySpec {
    name: "node_boot_time_seconds",
    help: "Node boot time, in unixtime.",
    kind: Kind::Gauge,
    labels: &[],
};
const CONTEXT_SWITCHES: FamilySpec<'static> = FamilySpec {
    name: "node_context_switches_total",
    help: "Total number of context switches.",
    kind: Kind::Counter,
    labels: &[],
};
const FORKS: FamilySpec<'static> = FamilySpec {
    name: "node_forks_total",
    help: "Total number of forks.",
    kind: Kind::Counter,
    labels: &[],
};
const INTERRUPTS: FamilySpec<'static> = FamilySpec {
    name: "node_intr_total",
    help: "Total number of interrupts serviced.",
    kind: Kind::Counter,
    labels: &[],
};
const PROCS_RUNNING: FamilySpec<'static> = FamilySpec {
    name: "node_procs_running",
    help: "Number of processes in runnable state.",
    kind: Kind::Gauge,
    labels: &[],
};
const PROCS_BLOCKED: FamilySpec<'static> = FamilySpec {
    name: "node_procs_blocked",
    help: "Number of processes blocked waiting for I/O to complete.",
    kind: Kind::Gauge,
    labels: &[],
};

/// The `/proc/stat` keys this sampler reads, and the family each feeds.
const KEYS: [(&str, &FamilySpec<'static>); 6] = [
    ("btime", &BOOT_TIME),
    ("ctxt", &CONTEXT_SWITCHES),
    ("processes", &FORKS),
    ("intr", &INTERRUPTS),
    ("procs_running", &PROCS_RUNNING),
    ("procs_blocked", &PROCS_BLOCKED),
];

/// Samples the kernel-wide lines of `/proc/stat`.
#[derive(Debug)]
pub struct StatSampler {
    path: PathBuf,
    buf: Vec<u8>,
}

impl StatSampler {
    /// Reads `stat` under `paths.proc`.
    pub fn new(paths: &SamplePaths) -> Self {
        Self {
            path: paths.proc_file("stat"),
            buf: Vec::new(),
        }
    }
}

impl Sampler for StatSampler {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        read_into(&self.path, &mut self.buf)?;
        let text = as_text(&self.buf);
        let malformed = parse_stat(&text, |spec, value| out.set_spec(spec, &[], value));
        out.malformed(malformed);
        Ok(())
    }
}

/// Calls `each(family, value)` for each known key of `/proc/stat` text
/// (`btime`, `ctxt`, `processes`, `intr` (its first number, the total),
/// `procs_running`, `procs_blocked`); other lines are ignored. Returns the
/// number of known lines whose value is missing or not a `u64`.
pub fn parse_stat(text: &str, mut each: impl FnMut(&FamilySpec<'static>, f64)) -> u64 {
    let mut malformed = 0;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        let Some((_, spec)) = KEYS.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        match fields.next().and_then(parse_u64) {
            Some(v) => each(spec, v as f64),
            None => malformed += 1,
        }
    }
    malformed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::host::testkit::{fixture, live_names, render, round, write};

    fn sample_fixture(name: &str) -> SeriesTable {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/stat", &fixture(name));
        let mut sampler = StatSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        table
    }

    #[test]
    fn fixture_sample_gives_exact_series() {
        let table = sample_fixture("proc_stat");
        assert_eq!(
            render(&table),
            [
                "node_boot_time_seconds 1795305678",
                "node_context_switches_total 8683620",
                "node_forks_total 60592",
                "node_intr_total 2943737",
                "node_procs_blocked 1",
                "node_procs_running 3",
            ]
        );
        assert_eq!(table.malformed_count(), 0);
    }

    #[test]
    fn malformed_values_are_counted_and_good_ones_kept() {
        let table = sample_fixture("proc_stat_malformed");
        // ctxt non-numeric, btime empty, processes overflows, procs_blocked negative.
        assert_eq!(table.malformed_count(), 4);
        assert_eq!(
            render(&table),
            ["node_intr_total 2943737", "node_procs_running 3"]
        );
        assert_eq!(parse_stat("", |_, _| panic!("no values")), 0);
    }

    #[test]
    fn live_host_has_boot_time_and_switches() {
        let mut sampler = StatSampler::new(&SamplePaths::default());
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        let names = live_names(&table);
        for spec in KEYS.map(|(_, s)| s.name) {
            assert!(names.iter().any(|n| n == spec), "{spec} in {names:?}");
        }
        assert!(table.live().all(|s| s.value >= 0.0));
    }
}
