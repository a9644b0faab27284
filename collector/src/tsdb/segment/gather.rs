//! Gathering one series' chunks from several segments: for reads over a time range
//! ([`SeriesReader`]) and for merges that walk every series of a set ([`SeriesMerge`]).
//!
//! Chunks of one series never overlap in time (the head drops anything not after a
//! series' last sample), so ordering them by first timestamp orders their samples. The
//! same chunk can sit in two segments for a while (a merge or a flush retry interrupted
//! before the old files were removed); [`Gathered`] keeps it once.

use std::iter::Peekable;
use std::sync::Arc;

use super::format::{Damage, run_chunks};
use super::reader::{BlockCache, Entries, Segment};
use super::{Entry, SegmentError, SegmentList, Segments, chunk_first_ts};

/// One series' chunks gathered from segments, ordered by first timestamp, each once.
#[derive(Debug, Default)]
pub struct Gathered {
    runs: Vec<Vec<u8>>,
    sources: Vec<Arc<Segment>>,
    /// (first timestamp, run, start, end).
    chunks: Vec<(i64, usize, usize, usize)>,
    sorted: bool,
}

/// A gathered chunk.
#[derive(Debug, Clone, Copy)]
pub struct GatheredChunk<'a> {
    /// Its first timestamp (unchecked until decoded).
    pub first_ts: i64,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// The segment it came from, for errors.
    pub segment: &'a Segment,
}

impl Gathered {
    /// Forgets the chunks, keeping the buffers.
    pub fn clear(&mut self) {
        self.sources.clear();
        self.chunks.clear();
        self.sorted = true;
    }

    /// Reads the run of `entry` from `segment` and adds the chunks whose first timestamp
    /// `keep` accepts.
    ///
    /// # Errors
    /// [`SegmentError::Io`]; [`SegmentError::Damaged`] for a run that does not split into
    /// chunks (none of its chunks is added).
    pub fn add(
        &mut self,
        segment: &Arc<Segment>,
        entry: &Entry,
        keep: impl Fn(i64) -> bool,
    ) -> Result<(), SegmentError> {
        let run = self.sources.len();
        if run == self.runs.len() {
            self.runs.push(Vec::new());
        }
        let buf = &mut self.runs[run];
        segment.read_run(entry, buf)?;
        let before = self.chunks.len();
        for range in run_chunks(buf) {
            let added = range.and_then(|r| {
                let ts = chunk_first_ts(&buf[r.clone()]).ok_or(Damage::Layout {
                    reason: "chunk without a first timestamp",
                })?;
                Ok((ts, r))
            });
            match added {
                Ok((ts, r)) if keep(ts) => {
                    self.sorted &= self.chunks.last().is_none_or(|c| c.0 < ts);
                    self.chunks.push((ts, run, r.start, r.end));
                }
                Ok(_) => {}
                Err(source) => {
                    self.chunks.truncate(before);
                    return Err(SegmentError::Damaged {
                        path: segment.path().to_owned(),
                        source,
                    });
                }
            }
        }
        self.sources.push(Arc::clone(segment));
        Ok(())
    }

    /// The chunks, oldest first.
    pub fn chunks(&mut self) -> impl ExactSizeIterator<Item = GatheredChunk<'_>> + '_ {
        if !self.sorted {
            self.chunks.sort_by_key(|c| c.0);
            self.chunks.dedup_by_key(|c| c.0);
            self.sorted = true;
        }
        let (runs, sources) = (&self.runs, &self.sources);
        self.chunks
            .iter()
            .map(move |&(first_ts, run, start, end)| GatheredChunk {
                first_ts,
                bytes: &runs[run][start..end],
                segment: &sources[run],
            })
    }

    /// Whether no chunk was gathered.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// Reads series over a time range from a snapshot's segments that overlap it. Ask for
/// series in ascending order: each segment's last index block is kept.
#[derive(Debug)]
pub struct SeriesReader<'a> {
    owner: &'a Segments,
    segments: Vec<(Arc<Segment>, BlockCache)>,
    start: i64,
    end: i64,
    hits: Vec<(usize, Entry)>,
    gathered: Gathered,
}

impl<'a> SeriesReader<'a> {
    /// A reader of `list` (a snapshot of `owner`) for `start..=end`.
    pub fn new(owner: &'a Segments, list: &SegmentList, start: i64, end: i64) -> Self {
        let segments = list
            .iter()
            .filter(|s| s.trailer().min_ts <= end && s.trailer().max_ts >= start)
            .map(|s| (Arc::clone(s), BlockCache::default()))
            .collect();
        SeriesReader {
            owner,
            segments,
            start,
            end,
            hits: Vec::new(),
            gathered: Gathered::default(),
        }
    }

    /// Finds the index entries of `series` whose runs overlap the range, oldest segment
    /// first, and returns them. A segment whose index is damaged is skipped (logged and
    /// counted once).
    ///
    /// # Errors
    /// [`SegmentError::Io`].
    pub fn find(&mut self, series: u32) -> Result<impl Iterator<Item = &Entry>, SegmentError> {
        self.hits.clear();
        for (i, (segment, cache)) in self.segments.iter_mut().enumerate() {
            if !segment.may_hold(series, self.start, self.end) {
                continue;
            }
            match segment.find(series, cache) {
                Ok(Some(e)) if e.overlaps(self.start, self.end) => self.hits.push((i, e)),
                Ok(_) => {}
                Err(e) if e.is_damage() => self.owner.note_damage(segment, &e),
                Err(e) => return Err(e),
            }
        }
        Ok(self.hits.iter().map(|(_, e)| e))
    }

    /// Reads the runs [`SeriesReader::find`] found into [`SeriesReader::gathered`].
    ///
    /// # Errors
    /// [`SegmentError::Io`], or [`SegmentError::Damaged`] for a damaged run.
    pub fn gather(&mut self) -> Result<&mut Gathered, SegmentError> {
        self.gathered.clear();
        for (i, e) in &self.hits {
            self.gathered.add(&self.segments[*i].0, e, |_| true)?;
        }
        Ok(&mut self.gathered)
    }
}

/// Walks the entries of several segments together, series by series, in order. An index
/// block found damaged is skipped (logged and counted once per segment): a merge copies
/// whatever can be read.
#[derive(Debug)]
pub struct SeriesMerge<'a> {
    owner: &'a Segments,
    segments: &'a [Arc<Segment>],
    inputs: Vec<Peekable<Entries<'a>>>,
}

impl<'a> SeriesMerge<'a> {
    /// A merge of `segments`, which belong to `owner`.
    pub fn new(owner: &'a Segments, segments: &'a [Arc<Segment>]) -> Self {
        SeriesMerge {
            owner,
            segments,
            inputs: segments.iter().map(|s| s.entries().peekable()).collect(),
        }
    }

    /// The next series and its entries; `None` at the end.
    ///
    /// # Errors
    /// [`SegmentError::Io`] from reading an index block; the merge cannot go on.
    pub fn next_series(&mut self) -> Result<Option<MergeStep>, SegmentError> {
        let mut min: Option<u32> = None;
        for (i, input) in self.inputs.iter_mut().enumerate() {
            loop {
                match input.peek() {
                    Some(Ok(e)) => min = Some(min.map_or(e.series, |m| m.min(e.series))),
                    Some(Err(_)) => match input.next() {
                        Some(Err(e)) if e.is_damage() => {
                            self.owner.note_damage(&self.segments[i], &e);
                            continue;
                        }
                        Some(Err(e)) => return Err(e),
                        _ => continue,
                    },
                    None => {}
                }
                break;
            }
        }
        let Some(series) = min else {
            return Ok(None);
        };
        let mut hits = Vec::new();
        for (i, input) in self.inputs.iter_mut().enumerate() {
            if let Some(Ok(e)) = input.next_if(|e| e.as_ref().is_ok_and(|e| e.series == series)) {
                hits.push((i, e));
            }
        }
        Ok(Some(MergeStep { series, hits }))
    }
}

/// One series of a [`SeriesMerge`].
#[derive(Debug)]
pub struct MergeStep {
    /// The series.
    pub series: u32,
    /// For each input holding it, in the order given: (input index, its entry).
    pub hits: Vec<(usize, Entry)>,
}
