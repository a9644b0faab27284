//! The series log: the index's only file, `<tsdb dir>/series.log`. It owns that file:
//! creating it, reading it back at open (repairing a torn end) and appending one
//! compressed record per [`super::Index::resolve`] call that created series. It leaves out
//! what the series mean: the in-memory index is rebuilt from what [`SeriesLog::open`]
//! hands back, and postings are never stored (they are derived from the labels).
//!
//! Layout in `format.rs`: a header, then records of a length, a CRC-32 and a zstd payload
//! holding the (id, labels) pairs of one call, columnar, with a per-record string table.
//! Measured on a realistic host (`tests.rs`, `measure_bytes_per_series`: 503 series,
//! node_exporter and cAdvisor names, 12 containers, `host`): **6.7 bytes per series** with
//! the host's series in one record, 6.9 in two as the benchmark's hosts send them (sled's
//! tree took 517 per series with its postings). Smaller records pay their string table
//! and zstd frame: a new container's 28 series take 20.6 bytes each, a lone series 93.
//!
//! # Durability and interruptions
//!
//! - The file is created whole: header (and, when moving from sled, the old index) into
//!   `series.log.tmp`, fsynced, renamed, the directory fsynced. A crash leaves either no
//!   log (the next open starts over) or a complete one; a leftover `.tmp` is overwritten.
//! - [`SeriesLog::append`] writes the record at the end of the last good record and
//!   fdatasyncs before it returns. If either fails (disk full, I/O error), it truncates
//!   the file back to where it was, so the file holds nothing of the failed call and a
//!   retry appends at the same place. Should the truncation fail too, the next append
//!   truncates first (its own write lands at the same offset either way).
//! - A crash mid-append leaves a torn record at the end: one cut short, one whose bytes
//!   did not all reach the disk (CRC mismatch, or zeros where the file grew). The next
//!   open truncates it away with a warning naming the offset and bytes dropped; its
//!   series were never reported created, so the batch that defined them is pulled again
//!   and creates them anew.
//!
//! # Damage before the end
//!
//! A record that fails its check while more bytes follow it, or whose length is one no
//! append writes (zero, or above the limit), is damage, not a crash: a damaged length
//! leaves no reliable way to find the next record, so reading stops there too. What
//! precedes it is kept; the rest is copied to `series.log.damaged-<offset>` for an
//! operator and cut off, logged at error level. The series it held are created again
//! with new ids when their hosts next send them. Their old ids are not reused where
//! segments hold chunks under them (the index starts past the segments' largest id), so
//! those chunks stay on disk, unreachable, until retention deletes them. Refusing to
//! start over a damaged index file would stop ingest and alerting for the whole fleet. A
//! bad file header is different: it is refused with an error and the file left alone,
//! since it means the file is not a series log (or not one this build reads), not that a
//! write was cut.

mod format;
mod payload;

#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::series::Labels;

use super::SeriesId;
use format::{HEADER_BYTES, RECORD_HEADER_BYTES, RecordHeader};

pub use format::{Damage, EncodeError};

/// The log's file name in the tsdb directory.
pub const FILE_NAME: &str = "series.log";
/// Series per record when a log is created with many (moving from sled): keeps each
/// record's decompression buffer to a few megabytes.
const CREATE_RECORD_SERIES: usize = 65_536;
/// Read buffer at open.
const READ_BUFFER_BYTES: usize = 1 << 16;

/// A failed series log operation, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SeriesLogError {
    /// A file operation failed (disk full, permissions, I/O).
    #[error("{op} series log {}", path.display())]
    Io {
        /// What was being done: `creating`, `reading`, `appending`, `syncing`, ...
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with a series log header this build reads; it was left
    /// as it is.
    #[error("{} is not a series log this build reads", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: Damage,
    },
    /// The series could not be made into a record; nothing was written.
    #[error("encoding {series} series for series log {}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// How many series.
        series: usize,
        /// Why.
        #[source]
        source: EncodeError,
    },
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SeriesLogError {
    move |source| SeriesLogError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// An open series log, positioned for appends. One writer at a time (`&mut self`).
#[derive(Debug)]
pub struct SeriesLog {
    path: PathBuf,
    file: File,
    /// Bytes of the header and of every whole, synced record: where the next one goes.
    len: u64,
    /// A failed append could not truncate its bytes away: the next append does first.
    dirty: bool,
    #[cfg(test)]
    fault: Option<Fault>,
}

/// A failure a test arms for the next appends: write only `write_bytes` of the record,
/// then fail as a full disk would; optionally fail the truncation that follows.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    /// Bytes of the record written before the failure.
    pub write_bytes: usize,
    /// Whether the truncation back fails too.
    pub truncate_fails: bool,
}

impl SeriesLog {
    /// Creates the log at `path` holding `series` (none for a new store), durably: see
    /// the module doc. Replaces a file left at `path`; the caller checks there is none.
    ///
    /// # Errors
    /// [`SeriesLogError::Io`], [`SeriesLogError::Encode`]; `path` does not exist then.
    pub fn create(path: &Path, series: &[(SeriesId, Labels)]) -> Result<(), SeriesLogError> {
        let tmp = path.with_extension("log.tmp");
        let written = write_new(&tmp, path, series);
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return written;
        }
        std::fs::rename(&tmp, path).map_err(io_error("renaming", &tmp))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Err(source) = File::open(dir).and_then(|d| d.sync_all()) {
            // The name might not survive a crash: take it back rather than report the
            // log created (the caller drops sled's tree only after this returns).
            let _ = std::fs::remove_file(path);
            return Err(io_error("syncing the directory of", path)(source));
        }
        Ok(())
    }

    /// Opens the log at `path` and hands every series it holds to `visit`, in file order
    /// (ids ascending within a record). A torn or damaged end is cut off (module doc).
    ///
    /// # Errors
    /// [`SeriesLogError::Header`] for a file that is not a series log;
    /// [`SeriesLogError::Io`] when it cannot be read or repaired.
    pub fn open(
        path: &Path,
        mut visit: impl FnMut(SeriesId, Labels),
    ) -> Result<SeriesLog, SeriesLogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_error("opening", path))?;
        let file_len = file
            .metadata()
            .map_err(io_error("reading the size of", path))?
            .len();
        let (good, stop) = read_records(&file, path, file_len, &mut visit)?;
        if let Some((damage, declared_end)) = stop {
            let dropped = file_len - good;
            let torn = matches!(damage, Damage::Cut { .. })
                || declared_end == Some(file_len)
                || is_zeros(&file, path, good, file_len)?;
            if torn {
                tracing::warn!(path = %path.display(), offset = good, dropped_bytes = dropped,
                    damage = %damage, "dropping a torn record at the end of the series log");
            } else {
                let saved = save_tail(&file, path, good, file_len)?;
                tracing::error!(path = %path.display(), offset = good, dropped_bytes = dropped,
                    saved = %saved.display(), damage = %damage,
                    "series log damaged before its end: the series after this offset are \
                     dropped and will be created again with new ids");
            }
            file.set_len(good).map_err(io_error("truncating", path))?;
            file.sync_all().map_err(io_error("syncing", path))?;
        }
        Ok(SeriesLog {
            path: path.to_owned(),
            file,
            len: good,
            dirty: false,
            #[cfg(test)]
            fault: None,
        })
    }

    /// Appends one record holding `series` and fdatasyncs. On failure the file is as it
    /// was (module doc) and the caller must treat none of the series as written.
    ///
    /// # Errors
    /// [`SeriesLogError::Io`] (disk full, I/O; retryable), [`SeriesLogError::Encode`].
    pub fn append(&mut self, series: &[(SeriesId, &Labels)]) -> Result<(), SeriesLogError> {
        let record = format::encode_record(series).map_err(|source| SeriesLogError::Encode {
            path: self.path.clone(),
            series: series.len(),
            source,
        })?;
        if self.dirty {
            self.file
                .set_len(self.len)
                .map_err(io_error("truncating", &self.path))?;
            self.dirty = false;
        }
        if let Err((op, source)) = self.write_record(&record) {
            self.roll_back();
            return Err(SeriesLogError::Io {
                op,
                path: self.path.clone(),
                source,
            });
        }
        self.len += record.len() as u64;
        Ok(())
    }

    /// Bytes of the file's whole records and header.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.len <= HEADER_BYTES
    }

    /// Arms (or with `None` disarms) a failure for the next appends.
    #[cfg(test)]
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        self.fault = fault;
    }

    fn write_record(&mut self, record: &[u8]) -> Result<(), (&'static str, std::io::Error)> {
        #[cfg(test)]
        if let Some(fault) = self.fault {
            let part = &record[..fault.write_bytes.min(record.len())];
            self.file
                .write_all_at(part, self.len)
                .map_err(|e| ("appending", e))?;
            return Err(("appending", std::io::Error::from_raw_os_error(libc::ENOSPC)));
        }
        self.file
            .write_all_at(record, self.len)
            .map_err(|e| ("appending", e))?;
        self.file.sync_data().map_err(|e| ("syncing", e))
    }

    /// Cuts what a failed append may have written.
    fn roll_back(&mut self) {
        #[cfg(test)]
        if self.fault.is_some_and(|f| f.truncate_fails) {
            self.dirty = true;
            return;
        }
        if let Err(err) = self.file.set_len(self.len) {
            // The append's own error is what the caller reports; this one only explains
            // why the next append truncates first.
            tracing::warn!(path = %self.path.display(), offset = self.len, error = %err,
                "cannot cut a failed append off the series log; the next append will");
            self.dirty = true;
        }
    }
}

/// Writes a new log holding `series` to `tmp` and fsyncs it.
fn write_new(tmp: &Path, path: &Path, series: &[(SeriesId, Labels)]) -> Result<(), SeriesLogError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(io_error("creating", tmp))?;
    let mut bytes = format::header().to_vec();
    for part in series.chunks(CREATE_RECORD_SERIES) {
        let refs: Vec<(SeriesId, &Labels)> = part.iter().map(|(id, l)| (*id, l)).collect();
        let record = format::encode_record(&refs).map_err(|source| SeriesLogError::Encode {
            path: path.to_owned(),
            series: part.len(),
            source,
        })?;
        bytes.extend_from_slice(&record);
    }
    file.write_all_at(&bytes, 0)
        .map_err(io_error("writing", tmp))?;
    file.sync_all().map_err(io_error("syncing", tmp))
}

/// Where reading stopped early: the damage, and where the damaged record says it ends
/// (when its header could be read).
type Stop = Option<(Damage, Option<u64>)>;

/// Reads the header and then records until the end or the first bad one; returns the
/// length of the good part and why reading stopped early.
fn read_records(
    file: &File,
    path: &Path,
    file_len: u64,
    visit: &mut impl FnMut(SeriesId, Labels),
) -> Result<(u64, Stop), SeriesLogError> {
    let read_error = io_error("reading", path);
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    let mut header = [0u8; HEADER_BYTES as usize];
    let got = usize::try_from(file_len.min(HEADER_BYTES)).unwrap_or(0);
    reader.read_exact(&mut header[..got]).map_err(read_error)?;
    format::parse_header(&header[..got]).map_err(|source| SeriesLogError::Header {
        path: path.to_owned(),
        source,
    })?;
    let mut offset = HEADER_BYTES;
    let mut payload = Vec::new();
    loop {
        let have = file_len - offset;
        if have == 0 {
            return Ok((offset, None));
        }
        let mut head = [0u8; RECORD_HEADER_BYTES];
        if have < RECORD_HEADER_BYTES as u64 {
            let need = RECORD_HEADER_BYTES as u64;
            return Ok((offset, Some((Damage::Cut { need, have }, None))));
        }
        reader
            .read_exact(&mut head)
            .map_err(io_error("reading", path))?;
        let h = match RecordHeader::parse(&head) {
            Ok(h) => h,
            Err(damage) => return Ok((offset, Some((damage, None)))),
        };
        let need = h.record_len();
        if need > have {
            return Ok((offset, Some((Damage::Cut { need, have }, None))));
        }
        payload.resize(h.payload_len as usize, 0);
        reader
            .read_exact(&mut payload)
            .map_err(io_error("reading", path))?;
        match format::decode_record(&h, &payload) {
            Ok(series) => series.into_iter().for_each(|(id, l)| visit(id, l)),
            Err(damage) => return Ok((offset, Some((damage, Some(offset + need))))),
        }
        offset += need;
    }
}

/// Reads bytes `from..to` of the file a buffer at a time, handing each piece and its
/// offset to `visit`, until `visit` answers false; returns whether it read to `to`.
fn read_blocks(
    file: &File,
    path: &Path,
    from: u64,
    to: u64,
    mut visit: impl FnMut(&[u8], u64) -> Result<bool, SeriesLogError>,
) -> Result<bool, SeriesLogError> {
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(buf.len(), |n| n.min(buf.len()));
        file.read_exact_at(&mut buf[..n], at)
            .map_err(io_error("reading", path))?;
        if !visit(&buf[..n], at)? {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Whether bytes `from..to` of the file are all zero (a file grown by a crash before its
/// data reached the disk).
fn is_zeros(file: &File, path: &Path, from: u64, to: u64) -> Result<bool, SeriesLogError> {
    read_blocks(file, path, from, to, |piece, _| {
        Ok(piece.iter().all(|&b| b == 0))
    })
}

/// Copies bytes `from..to` to `<path>.damaged-<from>` and fsyncs the copy; returns its
/// path. The log is cut only once the copy is safe.
fn save_tail(file: &File, path: &Path, from: u64, to: u64) -> Result<PathBuf, SeriesLogError> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".damaged-{from}"));
    let copy_path = PathBuf::from(name);
    let copy = File::create(&copy_path).map_err(io_error("saving the damaged end of", path))?;
    read_blocks(file, path, from, to, |piece, at| {
        copy.write_all_at(piece, at - from)
            .map_err(io_error("saving the damaged end of", path))?;
        Ok(true)
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    copy.sync_all()
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(io_error("saving the damaged end of", path))?;
    Ok(copy_path)
}
