//! Writing one segment: chunks in (series, time) order go to `<name>.tmp` through a
//! buffer; [`SegmentWriter::finish`] appends the index, fences and trailer, fsyncs the
//! file, renames it to `<name>` and fsyncs the directory, so a segment that has its name
//! is whole and durable. An interruption leaves at most a `.tmp` file, which the next open
//! removes (a dropped writer removes its own).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::SegmentError;
use super::format::{
    BLOCK_ENTRIES, ENTRY_BYTES, Entry, Fence, HEADER_BYTES, Kind, Level, MAGIC, Trailer,
    chunk_count,
};

/// Write buffer: large enough that a flush of 500,000 chunks is a few thousand writes.
const BUFFER_BYTES: usize = 1 << 20;

/// A segment being written. Chunks must come in (series, timestamp) order.
#[derive(Debug)]
pub struct SegmentWriter {
    tmp: PathBuf,
    path: PathBuf,
    file: Option<BufWriter<File>>,
    kind: Kind,
    level: Level,
    day: i64,
    offset: u64,
    entries: Vec<Entry>,
    open: Option<Entry>,
    min_ts: i64,
    max_ts: i64,
    samples: u64,
}

impl SegmentWriter {
    /// Starts `<dir>/<name>` (written as `<name>.tmp` until finished). `day` is the day's
    /// start for [`Level::Day`].
    ///
    /// # Errors
    /// [`SegmentError::Io`] when the file cannot be created or written.
    pub fn create(
        dir: &Path,
        name: &str,
        kind: Kind,
        level: Level,
        day: i64,
    ) -> Result<SegmentWriter, SegmentError> {
        let path = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|source| SegmentError::io("creating", &tmp, source))?;
        let mut w = SegmentWriter {
            tmp,
            path,
            file: Some(BufWriter::with_capacity(BUFFER_BYTES, file)),
            kind,
            level,
            day: if level == Level::Day { day } else { 0 },
            offset: 0,
            entries: Vec::new(),
            open: None,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            samples: 0,
        };
        w.write(&MAGIC)?;
        debug_assert_eq!(w.offset, HEADER_BYTES);
        Ok(w)
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether no chunk was added.
    pub fn is_empty(&self) -> bool {
        self.open.is_none()
    }

    /// Adds a chunk of `series` holding samples from `first_ts` to `last_ts`.
    ///
    /// # Errors
    /// [`SegmentError::Order`] when it does not come after the previous chunk (a bug: the
    /// segment is left unfinished), [`SegmentError::Io`] on a write failure.
    pub fn push(
        &mut self,
        series: u32,
        first_ts: i64,
        last_ts: i64,
        chunk: &[u8],
    ) -> Result<(), SegmentError> {
        let len = u32::try_from(chunk.len())
            .ok()
            .and_then(|n| n.checked_add(4))
            .ok_or_else(|| self.order(series, "chunk over 4 GiB"))?;
        if last_ts < first_ts {
            return Err(self.order(series, "chunks not in time order"));
        }
        match &mut self.open {
            Some(e) if e.series == series => {
                let grown = e.len.checked_add(len);
                match grown {
                    Some(grown) if first_ts > e.last_ts => {
                        e.len = grown;
                        e.last_ts = last_ts;
                    }
                    Some(_) => return Err(self.order(series, "chunks not in time order")),
                    None => return Err(self.order(series, "run over 4 GiB")),
                }
            }
            Some(e) if e.series > series => {
                return Err(self.order(series, "series not in order"));
            }
            _ => {
                let next = Entry {
                    series,
                    len,
                    offset: self.offset,
                    first_ts,
                    last_ts,
                };
                if let Some(done) = self.open.replace(next) {
                    self.entries.push(done);
                }
            }
        }
        self.min_ts = self.min_ts.min(first_ts);
        self.max_ts = self.max_ts.max(last_ts);
        self.samples += chunk_count(chunk);
        self.write(&(chunk.len() as u32).to_le_bytes())?;
        self.write(chunk)
    }

    /// Writes the index, fences and trailer, makes the file durable and gives it its name.
    /// A segment without chunks is not written: `Ok(None)`.
    ///
    /// # Errors
    /// [`SegmentError::Io`]; the temporary file is removed.
    pub fn finish(mut self) -> Result<Option<PathBuf>, SegmentError> {
        let Some(last) = self.open.take() else {
            return Ok(None);
        };
        self.entries.push(last);
        let entries = std::mem::take(&mut self.entries);
        let index_offset = self.offset;
        let mut fences = Vec::with_capacity(entries.len().div_ceil(BLOCK_ENTRIES) * 8);
        let mut block = Vec::with_capacity(BLOCK_ENTRIES * ENTRY_BYTES);
        for group in entries.chunks(BLOCK_ENTRIES) {
            block.clear();
            group.iter().for_each(|e| e.encode(&mut block));
            Fence {
                series: group[0].series,
                crc: crc32fast::hash(&block),
            }
            .encode(&mut fences);
            self.write(&block)?;
        }
        let trailer = Trailer {
            index_offset,
            entries: u32::try_from(entries.len())
                .map_err(|_| self.order(0, "more than 2^32 series"))?,
            fences_crc: crc32fast::hash(&fences),
            min_series: entries.first().map_or(0, |e| e.series),
            max_series: entries.last().map_or(0, |e| e.series),
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            samples: self.samples,
            day: self.day,
            kind: self.kind,
            level: self.level,
        };
        self.write(&fences)?;
        self.write(&trailer.encode())?;
        let file = self
            .file
            .take()
            .ok_or_else(|| self.order(0, "finished twice"))?;
        let file = file
            .into_inner()
            .map_err(|e| SegmentError::io("writing", &self.tmp, e.into_error()))?;
        file.sync_all()
            .map_err(|source| SegmentError::io("syncing", &self.tmp, source))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|source| SegmentError::io("renaming", &self.tmp, source))?;
        let path = std::mem::take(&mut self.path);
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Err(err) = sync_dir(dir) {
            // The name may not survive a crash: take it back rather than report a
            // segment durable that might vanish.
            let _ = std::fs::remove_file(&path);
            return Err(err);
        }
        Ok(Some(path))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SegmentError> {
        let Some(file) = self.file.as_mut() else {
            return Err(self.order(0, "written after finishing"));
        };
        file.write_all(bytes)
            .map_err(|source| SegmentError::io("writing", &self.tmp, source))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn order(&self, series: u32, reason: &'static str) -> SegmentError {
        SegmentError::Order {
            path: self.tmp.clone(),
            series,
            reason,
        }
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        // Unfinished (an error, or nothing to write): the temporary file is garbage.
        if self.file.take().is_some() || !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Fsyncs directory `dir`, so the names created or removed in it survive a crash.
///
/// # Errors
/// [`SegmentError::Io`].
pub fn sync_dir(dir: &Path) -> Result<(), SegmentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SegmentError::io("syncing directory", dir, source))
}
