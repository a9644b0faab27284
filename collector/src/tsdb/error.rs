//! Why a store operation failed. Each variant names its subject (host, series, phase) and
//! says whether retrying can help.

use std::path::PathBuf;

use muster_shared::protocol::samples::BatchError;
use muster_shared::store::StoreError;

use super::chunk::ChunkError;
use super::index::{SeriesId, SeriesLogError};
use super::segment::SegmentError;

/// A failed [`super::Tsdb`] operation.
#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    /// A batch broke the protocol's invariants; nothing of it was stored. Not retryable.
    #[error("batch from host {host} refused")]
    InvalidBatch {
        /// The host that sent it.
        host: String,
        /// The broken invariant.
        #[source]
        source: BatchError,
    },
    /// A batch is well formed but unstorable (an empty metric name, a timestamp beyond the
    /// year 10,000); nothing of it was stored. Not retryable.
    #[error("batch from host {host} refused: {reason}")]
    Refused {
        /// The host that sent it.
        host: String,
        /// What is wrong, naming the series or round.
        reason: String,
    },
    /// Opening the store's trees or loading the index failed.
    #[error("opening the time-series store: {what}")]
    Open {
        /// What was being read.
        what: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Opening the series index failed: its log cannot be created, read or repaired, or
    /// is not a series log (then it is left as it is).
    #[error("opening the series index")]
    OpenIndex {
        /// The log's error, naming the file.
        #[source]
        source: SeriesLogError,
    },
    /// Writing new series to the index failed; the log is as it was, none of the series
    /// exist and the batch's samples were not stored. Retryable (disk space, I/O).
    #[error("writing {count} new series of host {host} to the index")]
    IndexWrite {
        /// The host whose batch defined them.
        host: String,
        /// How many series.
        count: usize,
        /// The log's error, naming the file.
        #[source]
        source: SeriesLogError,
    },
    /// Opening the segment folders failed (creating, listing, removing unfinished files).
    #[error("opening the time-series store's segments")]
    OpenSegments {
        /// The folder's error.
        #[source]
        source: SegmentError,
    },
    /// Reading a series' chunks or its last durable timestamp failed.
    #[error("reading chunks of series {series}")]
    ReadSegment {
        /// The series.
        series: SeriesId,
        /// The segment's error, naming the file.
        #[source]
        source: SegmentError,
    },
    /// A stored chunk does not decode (damaged on disk).
    #[error("chunk of series {series} in {} is damaged", path.display())]
    Chunk {
        /// The series.
        series: SeriesId,
        /// The segment file holding it.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ChunkError,
    },
    /// A flush could not write its segment; the head keeps the chunks and the durable
    /// cursors did not move. Retryable: the next flush writes them again.
    #[error("flushing {chunks} chunks")]
    Flush {
        /// How many chunks were being written.
        chunks: usize,
        /// The segment's error, naming the file.
        #[source]
        source: SegmentError,
    },
    /// The segment was written but the durable cursors could not be; they stay where they
    /// were (re-ingest after a crash drops the duplicates). Retryable.
    #[error("persisting durable cursors of {hosts} hosts")]
    Cursors {
        /// How many hosts' cursors were being written.
        hosts: usize,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Persisting the retention floors failed; running compaction again resumes it.
    #[error("compaction: {step}")]
    Compact {
        /// What was being done.
        step: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Writing or removing segments during compaction failed (I/O, disk space); the
    /// segments read stay as they were. Running compaction again resumes it.
    #[error("compaction: {step}")]
    CompactSegments {
        /// What was being done.
        step: &'static str,
        /// The segment's error, naming the file.
        #[source]
        source: SegmentError,
    },
}

impl TsdbError {
    /// Whether the same call may succeed later (I/O, disk space), as opposed to input that
    /// will always be refused.
    pub fn is_retryable(&self) -> bool {
        match self {
            TsdbError::InvalidBatch { .. }
            | TsdbError::Refused { .. }
            | TsdbError::Chunk { .. } => false,
            TsdbError::ReadSegment { source, .. } => !source.is_damage(),
            _ => true,
        }
    }
}
