//! The `loadavg` sampler: the 1, 5 and 15 minute load averages from
//! `/proc/loadavg`.
//!
//! Leaves out the running/total task counts and last PID on the same line
//! (node_exporter does not export them either).

use std::path::PathBuf;

use super::read::{as_text, parse_finite, read_into};
use crate::sample::paths::SamplePaths;
use crate::sample::series::{FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};

const LOADS: [FamilySpec<'static>; 3] = [
    FamilySpec {
        name: "node_load1",
        help: "1m load average.",
        kind: Kind::Gauge,
        labels: &[],
    },
    FamilySpec {
        name: "node_load5",
        help: "5m load average.",
        kind: Kind::Gauge,
        labels: &[],
    },
    FamilySpec {
        name: "node_load15",
        help: "15m load average.",
        kind: Kind::Gauge,
        labels: &[],
    },
];

/// Samples `/proc/loadavg`.
#[derive(Debug)]
pub struct LoadavgSampler {
    path: PathBuf,
    buf: Vec<u8>,
}

impl LoadavgSampler {
    /// Reads `loadavg` under `paths.proc`.
    pub fn new(paths: &SamplePaths) -> Self {
        Self {
            path: paths.proc_file("loadavg"),
            buf: Vec::new(),
        }
    }
}

impl Sampler for LoadavgSampler {
    fn name(&self) -> &'static str {
        "loadavg"
    }

    /// # Errors
    /// [`SampleError::Parse`] when the line does not start with three loads
    /// (also counted as one malformed line).
    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        read_into(&self.path, &mut self.buf)?;
        let Some(loads) = parse_loadavg(&as_text(&self.buf)) else {
            out.malformed(1);
            return Err(SampleError::Parse {
                path: self.path.clone(),
                reason: "expected three load averages".to_owned(),
            });
        };
        for (spec, value) in LOADS.iter().zip(loads) {
            out.set_spec(spec, &[], value);
        }
        Ok(())
    }
}

/// The three load averages at the start of `/proc/loadavg` text, or `None`
/// if any is missing, not a number, or not finite.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace();
    let mut loads = [0.0; 3];
    for slot in &mut loads {
        *slot = parse_finite(fields.next()?)?;
    }
    Some(loads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::host::testkit::{live_names, render, round, write};

    #[test]
    fn parses_one_line() {
        assert_eq!(
            parse_loadavg("0.02 0.04 0.05 1/497 11947\n"),
            Some([0.02, 0.04, 0.05])
        );
    }

    #[test]
    fn malformed_lines_are_none_not_panics() {
        for text in [
            "",
            "\n",
            "0.1 0.2",
            "0.1 x 0.3 1/2 3",
            "1e999 0 0 1/2 3",
            "NaN 0 0",
        ] {
            assert_eq!(parse_loadavg(text), None, "{text:?}");
        }
    }

    #[test]
    fn fixture_sample_gives_exact_series() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/loadavg", "3.73 2.94 1.91 3/126 28152\n");
        let mut sampler = LoadavgSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        assert_eq!(
            render(&table),
            ["node_load1 3.73", "node_load15 1.91", "node_load5 2.94"]
        );
    }

    #[test]
    fn truncated_file_is_counted_and_a_parse_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/loadavg", "3.73 2.9");
        let mut sampler = LoadavgSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        let err = round(&mut sampler, &mut table).unwrap_err();
        assert!(err.to_string().contains("loadavg"), "{err}");
        assert_eq!(table.malformed_count(), 1);
        assert_eq!(table.live_count(), 0);
    }

    #[test]
    fn live_host_has_three_loads() {
        let mut sampler = LoadavgSampler::new(&SamplePaths::default());
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        assert_eq!(
            live_names(&table),
            ["node_load1", "node_load15", "node_load5"]
        );
    }
}
