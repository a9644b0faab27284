//! Segments: closed chunks in immutable, append-only files, one folder per kind
//! (`<tsdb dir>/blocks` for raw chunks, `<tsdb dir>/rollups` for 5-minute rollups).
//!
//! A segment holds chunks sorted by (series, time) and ends with an index of one entry
//! per series (`format.rs` has the layout). Files are written whole under a temporary name
//! and renamed (`writer.rs`), read with positioned reads (`reader.rs`), and never changed:
//! compaction writes new files and retention unlinks old ones.
//!
//! ```text
//! blocks/00000000000000000042.seg   one flush's chunks (level Flush), numbered in order
//! blocks/day-2024-03-01.seg         a finished day's raw chunks, merged (level Day)
//! rollups/day-2024-03-01.seg        that day's rollups
//! *.tmp                             being written; removed at open
//! ```
//!
//! [`Segments`] is the set of one folder. Readers take a [`SegmentList`] snapshot (an
//! `Arc`), so a set changed under them by a flush, a merge or retention does not affect
//! them, and the files they hold stay readable after an unlink. Memory per segment is its
//! fences and its open file; nothing is kept per stored chunk.
//!
//! # Damage
//!
//! A segment whose header, trailer or fences are wrong when the store opens is skipped
//! with an error log naming the file, counted ([`Segments::damaged`]) and left in place
//! for an operator to inspect. Refusing to open would stop ingest, alerts and every other
//! series over one file, and the file's data is gone either way. Damage found later (an
//! index block or a chunk) fails the reads that touch it, naming the file.

mod format;
mod gather;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

pub use format::{Damage, Entry, Kind, Level, chunk_first_ts};
pub use gather::{Gathered, GatheredChunk, MergeStep, SeriesMerge, SeriesReader};
pub use reader::{BlockCache, Segment};
pub use writer::{SegmentWriter, sync_dir};

/// A failed segment operation, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// A file or directory operation failed (disk full, permissions, I/O).
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done: `creating`, `writing`, `reading`, ...
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file's bytes are not a valid segment.
    #[error("segment {} is damaged", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: Damage,
    },
    /// Chunks were handed to a writer out of order: a bug, the segment was not written.
    #[error("segment {} not written: series {series}: {reason}", path.display())]
    Order {
        /// The temporary file.
        path: PathBuf,
        /// The series.
        series: u32,
        /// What was out of order.
        reason: &'static str,
    },
}

impl SegmentError {
    fn io(op: &'static str, path: &Path, source: std::io::Error) -> SegmentError {
        SegmentError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// Whether the bytes on disk are at fault (retrying will not help).
    pub fn is_damage(&self) -> bool {
        matches!(self, SegmentError::Damaged { .. })
    }
}

/// A snapshot of a folder's segments.
#[derive(Debug, Default)]
pub struct SegmentList {
    /// Oldest first, by (oldest sample, newest sample).
    segments: Vec<Arc<Segment>>,
    /// Indexes into `segments`, newest sample first.
    newest_first: Vec<usize>,
}

impl SegmentList {
    fn new(mut segments: Vec<Arc<Segment>>) -> SegmentList {
        segments.sort_by_key(|s| (s.trailer().min_ts, s.trailer().max_ts));
        let mut newest_first: Vec<usize> = (0..segments.len()).collect();
        newest_first.sort_by_key(|&i| std::cmp::Reverse(segments[i].trailer().max_ts));
        SegmentList {
            segments,
            newest_first,
        }
    }

    /// The segments, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Segment>> {
        self.segments.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

/// The segments of one folder.
#[derive(Debug)]
pub struct Segments {
    dir: PathBuf,
    kind: Kind,
    list: RwLock<Arc<SegmentList>>,
    /// Serialises changes of the set (flush and compaction may overlap).
    change: Mutex<()>,
    next_seq: AtomicU64,
    damaged: AtomicU64,
}

impl Segments {
    /// Opens the segments in `dir` (created if missing): removes `.tmp` files a crash
    /// left, opens every `.seg` file and skips damaged ones (see the module doc).
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the folder cannot be created or listed.
    pub fn open(dir: &Path, kind: Kind) -> Result<Segments, SegmentError> {
        std::fs::create_dir_all(dir).map_err(|source| SegmentError::io("creating", dir, source))?;
        // The folders' own names must be durable before the files in them are.
        for ancestor in dir.ancestors().skip(1).take(2) {
            if !ancestor.as_os_str().is_empty() {
                sync_dir(ancestor)?;
            }
        }
        let listing =
            std::fs::read_dir(dir).map_err(|source| SegmentError::io("listing", dir, source))?;
        let (mut segments, mut damaged, mut next_seq, mut removed) = (Vec::new(), 0, 1, false);
        for item in listing {
            let item = item.map_err(|source| SegmentError::io("listing", dir, source))?;
            let path = item.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                // Never read (only `.seg` files are): left behind, it only takes space.
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed a segment a crash left unfinished");
                        removed = true;
                    }
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "cannot remove a segment a crash left unfinished");
                    }
                }
                continue;
            }
            let Some(stem) = name.strip_suffix(".seg") else {
                continue;
            };
            if let Ok(seq) = stem.parse::<u64>() {
                next_seq = next_seq.max(seq.saturating_add(1));
            }
            let opened = Segment::open(&path).and_then(|s| {
                if s.trailer().kind == kind {
                    Ok(s)
                } else {
                    Err(SegmentError::Damaged {
                        path: path.clone(),
                        source: Damage::Layout {
                            reason: "a segment of the other kind",
                        },
                    })
                }
            });
            match opened {
                Ok(s) => segments.push(Arc::new(s)),
                Err(error) => {
                    damaged += 1;
                    tracing::error!(
                        path = %path.display(),
                        error = %error_chain(&error),
                        "skipping a segment that cannot be read: its samples are not served; \
                         move it away once inspected"
                    );
                }
            }
        }
        if removed {
            sync_dir(dir)?;
        }
        Ok(Segments {
            dir: dir.to_owned(),
            kind,
            list: RwLock::new(Arc::new(SegmentList::new(segments))),
            change: Mutex::default(),
            next_seq: AtomicU64::new(next_seq),
            damaged: AtomicU64::new(damaged),
        })
    }

    /// The current segments.
    pub fn snapshot(&self) -> Arc<SegmentList> {
        Arc::clone(&self.list.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// A writer for a flush's segment, named by the next sequence number.
    ///
    /// # Errors
    /// As [`SegmentWriter::create`].
    pub fn flush_writer(&self) -> Result<SegmentWriter, SegmentError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let name = format!("{seq:020}.seg");
        SegmentWriter::create(&self.dir, &name, self.kind, Level::Flush, 0)
    }

    /// A writer for day `day`'s segment (UTC midnight, ms). Finishing it replaces the
    /// day's file, if there is one.
    ///
    /// # Errors
    /// As [`SegmentWriter::create`].
    pub fn day_writer(&self, day: i64) -> Result<SegmentWriter, SegmentError> {
        let name = match chrono::DateTime::from_timestamp_millis(day) {
            Some(d) => format!("day-{}.seg", d.format("%Y-%m-%d")),
            None => format!("day-{day}.seg"),
        };
        SegmentWriter::create(&self.dir, &name, self.kind, Level::Day, day)
    }

    /// Opens the just-written segments at `added` and swaps them in for `retired` in one
    /// step, then unlinks the retired files whose names no segment uses now (a day file
    /// rewritten in place keeps its name). Returns the bytes the unlinked files held.
    ///
    /// # Errors
    /// [`SegmentError`] when an added file does not open (the set is unchanged) or a
    /// retired one cannot be unlinked (the set is changed; the file is left behind).
    pub fn replace(
        &self,
        added: &[PathBuf],
        retired: &[Arc<Segment>],
    ) -> Result<u64, SegmentError> {
        let opened: Vec<Arc<Segment>> = added
            .iter()
            .map(|p| Segment::open(p).map(Arc::new))
            .collect::<Result<_, _>>()?;
        let _one_at_a_time = self.change.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.snapshot();
        let mut next: Vec<Arc<Segment>> = current
            .segments
            .iter()
            .filter(|s| !retired.iter().any(|r| Arc::ptr_eq(r, s)))
            .cloned()
            .collect();
        next.extend(opened);
        let next = Arc::new(SegmentList::new(next));
        let gone: Vec<&Arc<Segment>> = retired
            .iter()
            .filter(|r| !next.segments.iter().any(|s| s.path() == r.path()))
            .collect();
        let mut freed: u64 = retired.iter().map(|r| r.bytes()).sum();
        *self.list.write().unwrap_or_else(PoisonError::into_inner) = next;
        // Readers holding a retired segment keep its open file: unlinking is safe.
        let mut first_error = None;
        for r in &gone {
            match std::fs::remove_file(r.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    freed -= r.bytes();
                    first_error.get_or_insert(SegmentError::io("removing", r.path(), source));
                }
            }
        }
        if !gone.is_empty() {
            sync_dir(&self.dir)?;
        }
        first_error.map_or(Ok(freed), Err)
    }

    /// The newest timestamp stored for `series`: segments newest first, stopping at the
    /// first that cannot hold anything newer than what was found. Segments whose index is
    /// damaged are skipped (logged once each).
    ///
    /// # Errors
    /// [`SegmentError::Io`].
    pub fn last_ts(&self, series: u32) -> Result<Option<i64>, SegmentError> {
        let list = self.snapshot();
        let mut best: Option<i64> = None;
        for &i in &list.newest_first {
            let segment = &list.segments[i];
            if best.is_some_and(|b| segment.trailer().max_ts <= b) {
                break;
            }
            match segment.find(series, &mut BlockCache::default()) {
                Ok(Some(e)) => best = Some(best.map_or(e.last_ts, |b| b.max(e.last_ts))),
                Ok(None) => {}
                Err(e) if e.is_damage() => self.note_damage(segment, &e),
                Err(e) => return Err(e),
            }
        }
        Ok(best)
    }

    /// The largest series id in any segment.
    pub fn max_series(&self) -> Option<u32> {
        self.snapshot().iter().map(|s| s.trailer().max_series).max()
    }

    /// Segments skipped as damaged at open, plus damage found since.
    pub fn damaged(&self) -> u64 {
        self.damaged.load(Ordering::Relaxed)
    }

    /// Logs and counts damage found in `segment` after open, once per segment: reads
    /// and compaction go on without what it holds.
    pub fn note_damage(&self, segment: &Segment, error: &SegmentError) {
        if segment.mark_damaged() {
            self.damaged.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                path = %segment.path().display(),
                error = %error_chain(error),
                "a segment is damaged: the samples it holds there are not served"
            );
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Bytes, files and samples of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Segment files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Samples (or rollup buckets) they hold, repeats included.
    pub samples: u64,
    /// Heap bytes the open segments hold.
    pub heap_bytes: u64,
}

impl SegmentList {
    /// What the snapshot's files hold.
    pub fn usage(&self) -> Usage {
        self.segments.iter().fold(Usage::default(), |u, s| Usage {
            files: u.files + 1,
            bytes: u.bytes + s.bytes(),
            samples: u.samples + s.trailer().samples,
            heap_bytes: u.heap_bytes + s.heap_bytes() as u64,
        })
    }
}

/// `err` with its sources, `: `-separated, for a log field.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
