//! Sampling: host and container metrics, one sampler per subsystem.
//!
//! Every `sample_interval` the [`scheduler`] runs one *round*: each enabled
//! [`Sampler`] fills its own [`SeriesTable`] on the blocking pool, with a
//! timeout, so one that fails or hangs never stops the others (it reports
//! `node_scrape_collector_success{collector} 0` and is skipped until it
//! returns). The round's live values then go to the buffer (the agent's
//! write-ahead log) and to the `/metrics` exposition.
//!
//! Samplers are named after node_exporter's collectors (`cpu`, `meminfo`,
//! `filesystem`, ...) and emit node_exporter's and cAdvisor's series names, so
//! existing dashboards work unchanged. Reading is split from parsing: `read_*`
//! does the I/O, `parse_*` is a pure function tested on fixtures.

pub mod buffer_sink;
pub mod config;
pub mod container;
pub mod exposition;
pub mod filter;
pub mod host;
pub mod paths;
pub mod process;
pub mod scheduler;
pub mod series;

use std::path::PathBuf;

pub use series::{FamilySpec, Kind, SeriesTable};

/// One subsystem's sampler. Implementations do blocking I/O (they run on the
/// blocking pool), keep their read buffers between rounds, and write every
/// value of a pass into `out`.
pub trait Sampler: Send + 'static {
    /// The collector name, as node_exporter's `--collector.<name>` (or
    /// `container` for the container sampler). Used in the
    /// `node_scrape_collector_*{collector}` series and in logs.
    fn name(&self) -> &'static str;

    /// Takes one pass. Lines or entries that don't parse are skipped and
    /// counted with [`SeriesTable::malformed`]; an error means the whole pass
    /// failed (values set before the error are still reported).
    ///
    /// # Errors
    /// A [`SampleError`] naming what could not be read.
    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError>;
}

/// Why a sampler's pass failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file's content is unusable as a whole.
    #[error("cannot parse {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Nothing to report on this host (no sensors, no Docker engine); logged
    /// at debug and not counted as a failure, like node_exporter's ErrNoData.
    #[error("no data: {0}")]
    NoData(String),
    /// Anything else, with its context.
    #[error("{0}")]
    Other(String),
}

impl SampleError {
    /// A read error for `path`.
    pub fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Read {
            path: path.into(),
            source,
        }
    }
}
