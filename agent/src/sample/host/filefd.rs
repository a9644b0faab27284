//! The `filefd` sampler: allocated and maximum file handles from
//! `/proc/sys/fs/file-nr`.
//!
//! Leaves out the middle field (free handles, always 0 since Linux 2.6).

use std::path::PathBuf;

use super::read::{as_text, parse_u64, read_into};
use crate::sample::paths::SamplePaths;
use crate::sample::series::{FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};

const ALLOCATED: FamilySpec<'static> = FamilySpec {
    name: "node_filefd_allocated",
    help: "File descriptor statistics: allocated.",
    kind: Kind::Gauge,
    labels: &[],
};
const MAXIMUM: FamilySpec<'static> = FamilySpec {
    name: "node_filefd_maximum",
    help: "File descriptor statistics: maximum.",
    kind: Kind::Gauge,
    labels: &[],
};

/// Samples `/proc/sys/fs/file-nr`.
#[derive(Debug)]
pub struct FilefdSampler {
    path: PathBuf,
    buf: Vec<u8>,
}

impl FilefdSampler {
    /// Reads `sys/fs/file-nr` under `paths.proc`.
    pub fn new(paths: &SamplePaths) -> Self {
        Self {
            path: paths.proc_file("sys/fs/file-nr"),
            buf: Vec::new(),
        }
    }
}

impl Sampler for FilefdSampler {
    fn name(&self) -> &'static str {
        "filefd"
    }

    /// # Errors
    /// [`SampleError::Parse`] when the line is not three `u64`s (also counted
    /// as one malformed line).
    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        read_into(&self.path, &mut self.buf)?;
        let Some((allocated, maximum)) = parse_file_nr(&as_text(&self.buf)) else {
            out.malformed(1);
            return Err(SampleError::Parse {
                path: self.path.clone(),
                reason: "expected three numbers: allocated, free, maximum".to_owned(),
            });
        };
        out.set_spec(&ALLOCATED, &[], allocated as f64);
        out.set_spec(&MAXIMUM, &[], maximum as f64);
        Ok(())
    }
}

/// `(allocated, maximum)` from `file-nr` text (`allocated free maximum`), or
/// `None` unless it is exactly three `u64`s.
pub fn parse_file_nr(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_ascii_whitespace();
    let allocated = parse_u64(fields.next()?)?;
    parse_u64(fields.next()?)?;
    let maximum = parse_u64(fields.next()?)?;
    fields.next().is_none().then_some((allocated, maximum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::host::testkit::{live_names, render, round, write};

    #[test]
    fn parses_allocated_and_maximum() {
        assert_eq!(parse_file_nr("663\t0\t2466177\n"), Some((663, 2_466_177)));
    }

    #[test]
    fn malformed_text_is_none_not_a_panic() {
        for text in [
            "",
            "663",
            "663\t0",
            "663 x 5",
            "18446744073709551616 0 1",
            "1 0 2 3",
        ] {
            assert_eq!(parse_file_nr(text), None, "{text:?}");
        }
    }

    #[test]
    fn fixture_sample_gives_exact_series() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/sys/fs/file-nr", "663\t0\t2466177\n");
        let mut sampler = FilefdSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        assert_eq!(
            render(&table),
            ["node_filefd_allocated 663", "node_filefd_maximum 2466177"]
        );
    }

    #[test]
    fn truncated_file_is_counted_and_a_parse_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/sys/fs/file-nr", "663\t0");
        let mut sampler = FilefdSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        let err = round(&mut sampler, &mut table).unwrap_err();
        assert!(err.to_string().contains("file-nr"), "{err}");
        assert_eq!(table.malformed_count(), 1);
        assert_eq!(table.live_count(), 0);
    }

    #[test]
    fn live_host_has_file_handles() {
        let mut sampler = FilefdSampler::new(&SamplePaths::default());
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        assert_eq!(
            live_names(&table),
            ["node_filefd_allocated", "node_filefd_maximum"]
        );
        assert!(table.live().all(|s| s.value > 0.0));
    }
}
