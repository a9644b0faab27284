//! Reading one segment with positioned reads (`pread`): opening checks the header, the
//! trailer and the fences and keeps the fences (8 bytes per 128 series) and the open
//! file; a lookup reads one 4 KiB index block, a series' run is one more read.
//!
//! Why `pread` and not `mmap`: mapped pages that a query touches count in the process's
//! resident memory (the collector must stay well under Prometheus there), a file cut short
//! under a mapping raises SIGBUS instead of an error, and the workspace denies `unsafe`.
//! The page cache still serves repeated reads.
//!
//! A [`Segment`] keeps its file open, so a reader holding it (an `Arc`) reads on after
//! compaction or retention has unlinked the file or renamed another over its name.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::SegmentError;
use super::format::{
    BLOCK_ENTRIES, Damage, ENTRY_BYTES, Entry, FENCE_BYTES, Fence, HEADER_BYTES, MAGIC,
    TRAILER_BYTES, Trailer, parse_block, parse_fences,
};

/// An open, checked segment file.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    file: File,
    len: u64,
    trailer: Trailer,
    fences: Box<[Fence]>,
    damage_noted: AtomicBool,
}

/// The index block a reader last loaded from one segment: lookups of ascending series
/// mostly hit it.
#[derive(Debug, Default)]
pub struct BlockCache {
    block: Option<usize>,
    entries: Vec<Entry>,
}

impl Segment {
    /// Opens and checks `path`.
    ///
    /// # Errors
    /// [`SegmentError::Io`] when it cannot be read, [`SegmentError::Damaged`] when its
    /// header, trailer or fences are wrong.
    pub fn open(path: &Path) -> Result<Segment, SegmentError> {
        let file = File::open(path).map_err(|source| SegmentError::io("opening", path, source))?;
        let len = file
            .metadata()
            .map_err(|source| SegmentError::io("reading metadata of", path, source))?
            .len();
        let damaged = |source| SegmentError::Damaged {
            path: path.to_owned(),
            source,
        };
        if len < HEADER_BYTES + TRAILER_BYTES as u64 {
            return Err(damaged(Damage::TooShort { len }));
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        read_at(&file, path, &mut header, 0)?;
        if header != MAGIC {
            return Err(damaged(Damage::Magic { part: "header" }));
        }
        let mut raw = [0u8; TRAILER_BYTES];
        read_at(&file, path, &mut raw, len - TRAILER_BYTES as u64)?;
        let trailer = Trailer::parse(&raw).map_err(damaged)?;
        if trailer.file_len() != len || trailer.index_offset < HEADER_BYTES {
            return Err(damaged(Damage::Layout {
                reason: "the trailer does not describe the file's length",
            }));
        }
        let mut fences = vec![0u8; trailer.blocks() * FENCE_BYTES];
        read_at(&file, path, &mut fences, trailer.fences_offset())?;
        let fences = parse_fences(&fences, &trailer).map_err(damaged)?;
        Ok(Segment {
            path: path.to_owned(),
            file,
            len,
            trailer,
            fences: fences.into(),
            damage_noted: AtomicBool::new(false),
        })
    }

    /// The file's path (which may since have been unlinked or reused).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// What the segment holds.
    pub fn trailer(&self) -> &Trailer {
        &self.trailer
    }

    /// Marks the segment as found damaged; true the first time.
    pub fn mark_damaged(&self) -> bool {
        !self.damage_noted.swap(true, Ordering::Relaxed)
    }

    /// Heap bytes held (the fences).
    pub fn heap_bytes(&self) -> usize {
        self.fences.len() * std::mem::size_of::<Fence>() + self.path.as_os_str().len()
    }

    /// Whether the segment may hold `series` at a time in `start..=end`.
    pub fn may_hold(&self, series: u32, start: i64, end: i64) -> bool {
        let t = &self.trailer;
        (t.min_series..=t.max_series).contains(&series) && t.min_ts <= end && t.max_ts >= start
    }

    /// The index entry of `series`, if the segment holds it.
    ///
    /// # Errors
    /// [`SegmentError::Io`], or [`SegmentError::Damaged`] for a damaged index block.
    pub fn find(&self, series: u32, cache: &mut BlockCache) -> Result<Option<Entry>, SegmentError> {
        let t = &self.trailer;
        if !(t.min_series..=t.max_series).contains(&series) {
            return Ok(None);
        }
        // The last block starting at or before `series`.
        let block = self.fences.partition_point(|f| f.series <= series);
        let Some(block) = block.checked_sub(1) else {
            return Ok(None);
        };
        if cache.block != Some(block) {
            cache.block = None;
            cache.entries = self.read_block(block)?;
            cache.block = Some(block);
        }
        Ok(cache
            .entries
            .binary_search_by_key(&series, |e| e.series)
            .ok()
            .map(|i| cache.entries[i]))
    }

    /// Reads index block `block`, checked.
    ///
    /// # Errors
    /// As [`Segment::find`].
    pub fn read_block(&self, block: usize) -> Result<Vec<Entry>, SegmentError> {
        let t = &self.trailer;
        let fence = self
            .fences
            .get(block)
            .ok_or_else(|| SegmentError::Damaged {
                path: self.path.clone(),
                source: Damage::Layout {
                    reason: "index block beyond the fences",
                },
            })?;
        let first = block * BLOCK_ENTRIES;
        let count = (t.entries as usize - first).min(BLOCK_ENTRIES);
        let mut bytes = vec![0u8; count * ENTRY_BYTES];
        let at = t.index_offset + (first * ENTRY_BYTES) as u64;
        read_at(&self.file, &self.path, &mut bytes, at)?;
        parse_block(&bytes, fence, t.index_offset).map_err(|source| SegmentError::Damaged {
            path: self.path.clone(),
            source,
        })
    }

    /// Reads the run of `entry` into `buf` (replacing its contents).
    ///
    /// # Errors
    /// [`SegmentError::Io`].
    pub fn read_run(&self, entry: &Entry, buf: &mut Vec<u8>) -> Result<(), SegmentError> {
        buf.clear();
        buf.resize(entry.len as usize, 0);
        read_at(&self.file, &self.path, buf, entry.offset)
    }

    /// Every index entry in series order, a block at a time (for merges).
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            segment: self,
            block: 0,
            loaded: Vec::new().into_iter(),
        }
    }
}

/// Iterator over a segment's entries; see [`Segment::entries`]. An error stands for one
/// index block; iteration can go on past it.
#[derive(Debug)]
pub struct Entries<'a> {
    segment: &'a Segment,
    block: usize,
    loaded: std::vec::IntoIter<Entry>,
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.loaded.next() {
                return Some(Ok(e));
            }
            if self.block >= self.segment.fences.len() {
                return None;
            }
            let block = self.block;
            self.block += 1;
            // A damaged block is reported and the next one read after it.
            match self.segment.read_block(block) {
                Ok(entries) => self.loaded = entries.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

fn read_at(file: &File, path: &Path, buf: &mut [u8], at: u64) -> Result<(), SegmentError> {
    file.read_exact_at(buf, at).map_err(|source| {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            SegmentError::Damaged {
                path: path.to_owned(),
                source: Damage::Layout {
                    reason: "ends before the trailer says",
                },
            }
        } else {
            SegmentError::io("reading", path, source)
        }
    })
}
