//! Pack files: many blobs in one file, each with its own header, and a trailer listing them.
//!
//! ```text
//! "MUSTPK01"                                  8 bytes
//! blob*:   header (42 bytes) + stored bytes   header = kind u8, flags u8, raw_len u32 LE,
//!                                                      stored_len u32 LE, id [32]
//! trailer: count × (header + offset u64 LE)   50 bytes an entry
//!          count u32 LE, crc32 of the entries u32 LE, "MUSTPKIX"
//! ```
//! The trailer lets a reader index a pack without reading its blobs; the per-blob headers let
//! `rebuild-index` recover blobs from a pack whose trailer is damaged. A pack's name is the
//! BLAKE3 of all its bytes, so a flipped byte anywhere is found without an index.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backup::id::{BlobId, ID_LEN, PackId};

const MAGIC: &[u8; 8] = b"MUSTPK01";
const TRAILER_MAGIC: &[u8; 8] = b"MUSTPKIX";
const HEADER_LEN: usize = 2 + 4 + 4 + ID_LEN;
const ENTRY_LEN: usize = HEADER_LEN + 8;
const TAIL_LEN: usize = 4 + 4 + 8;
/// Blobs are at most this large (the chunker's maximum is 16 MiB; trees are split below this).
pub const MAX_BLOB_LEN: u32 = 64 << 20;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlobKind {
    /// A chunk of file content.
    Data,
    /// A directory listing (a tree node list).
    Tree,
}

impl BlobKind {
    fn to_byte(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// One blob in a pack, as the trailer and the index list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// The blob's id.
    pub id: BlobId,
    /// Data or tree.
    pub kind: BlobKind,
    /// Whether the stored bytes are a zstd frame.
    pub compressed: bool,
    /// Offset of the stored bytes (after the blob's header) in the pack.
    pub offset: u64,
    /// Length of the stored bytes.
    pub stored_len: u32,
    /// Length of the plain bytes.
    pub raw_len: u32,
}

/// A pack that could not be read or is not a pack.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Reading or writing the file failed.
    #[error("pack {path}: {source}")]
    Io {
        /// The pack file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The bytes are not a well-formed pack.
    #[error("pack {path} is damaged: {reason}")]
    Damaged {
        /// The pack file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PackError + '_ {
    move |source| PackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn encode_header(e: &PackEntry, out: &mut Vec<u8>) {
    out.push(e.kind.to_byte());
    out.push(u8::from(e.compressed));
    out.extend_from_slice(&e.raw_len.to_le_bytes());
    out.extend_from_slice(&e.stored_len.to_le_bytes());
    out.extend_from_slice(&e.id.0);
}

fn decode_header(b: &[u8], offset: u64) -> Result<PackEntry, String> {
    let kind = BlobKind::from_byte(b[0]).ok_or_else(|| format!("unknown blob kind {}", b[0]))?;
    let compressed = match b[1] {
        0 => false,
        1 => true,
        f => return Err(format!("unknown blob flags {f}")),
    };
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&b[10..10 + ID_LEN]);
    let (raw_len, stored_len) = (u32_at(2), u32_at(6));
    if raw_len > MAX_BLOB_LEN || stored_len > MAX_BLOB_LEN {
        return Err(format!(
            "blob length {raw_len}/{stored_len} is over the limit"
        ));
    }
    Ok(PackEntry {
        id: BlobId(id),
        kind,
        compressed,
        offset,
        stored_len,
        raw_len,
    })
}

/// Writes one pack to a temporary file; [`PackWriter::finish`] makes it durable and gives it
/// its final name.
#[derive(Debug)]
pub struct PackWriter {
    file: BufWriter<File>,
    tmp: PathBuf,
    hasher: blake3::Hasher,
    len: u64,
    entries: Vec<PackEntry>,
    header: Vec<u8>,
}

impl PackWriter {
    /// Starts a pack in `tmp` (a unique path in the repository's temporary folder).
    pub fn create(tmp: PathBuf) -> Result<Self, PackError> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        let mut w = PackWriter {
            file: BufWriter::with_capacity(1 << 20, file),
            tmp,
            hasher: blake3::Hasher::new(),
            len: 0,
            entries: Vec::new(),
            header: Vec::with_capacity(ENTRY_LEN),
        };
        w.write(MAGIC)?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), PackError> {
        self.file.write_all(bytes).map_err(io_err(&self.tmp))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Appends a blob; `stored` is its zstd frame when `compressed`, else its plain bytes.
    pub fn add(
        &mut self,
        id: BlobId,
        kind: BlobKind,
        raw_len: u32,
        stored: &[u8],
        compressed: bool,
    ) -> Result<PackEntry, PackError> {
        let stored_len = u32::try_from(stored.len())
            .ok()
            .filter(|&n| n <= MAX_BLOB_LEN)
            .ok_or_else(|| PackError::Damaged {
                path: self.tmp.clone(),
                reason: format!("blob of {} bytes is over the limit", stored.len()),
            })?;
        let entry = PackEntry {
            id,
            kind,
            compressed,
            offset: self.len + HEADER_LEN as u64,
            stored_len,
            raw_len,
        };
        let mut header = std::mem::take(&mut self.header);
        header.clear();
        encode_header(&entry, &mut header);
        self.write(&header)?;
        self.header = header;
        self.write(stored)?;
        self.entries.push(entry);
        Ok(entry)
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no blob has been added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the trailer, fsyncs, and renames the file to `final_path(id)`. Returns the pack's
    /// id, size and entries. The caller fsyncs the folder (once for many packs).
    pub fn finish(
        mut self,
        final_path: impl FnOnce(&PackId) -> PathBuf,
    ) -> Result<(PackId, u64, Vec<PackEntry>), PackError> {
        let mut trailer = Vec::with_capacity(self.entries.len() * ENTRY_LEN + TAIL_LEN);
        for e in &self.entries {
            encode_header(e, &mut trailer);
            trailer.extend_from_slice(&e.offset.to_le_bytes());
        }
        let crc = crc32fast::hash(&trailer);
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        trailer.extend_from_slice(&count.to_le_bytes());
        trailer.extend_from_slice(&crc.to_le_bytes());
        trailer.extend_from_slice(TRAILER_MAGIC);
        self.write(&trailer)?;
        self.file.flush().map_err(io_err(&self.tmp))?;
        self.file.get_ref().sync_data().map_err(io_err(&self.tmp))?;
        let id = PackId(*self.hasher.finalize().as_bytes());
        let dest = final_path(&id);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        fs::rename(&self.tmp, &dest).map_err(io_err(&dest))?;
        Ok((id, self.len, self.entries))
    }

    /// Removes the temporary file of a pack that will not be finished.
    pub fn abandon(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Reads a pack's trailer: its blob entries, checked against the file's size.
pub fn read_trailer(path: &Path) -> Result<Vec<PackEntry>, PackError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let size = f.metadata().map_err(io_err(path))?.len();
    let damaged = |reason: String| PackError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    if size < (MAGIC.len() + TAIL_LEN) as u64 {
        return Err(damaged(format!("{size} bytes is too short for a pack")));
    }
    let mut tail = [0u8; TAIL_LEN];
    f.seek(SeekFrom::End(-(TAIL_LEN as i64)))
        .map_err(io_err(path))?;
    f.read_exact(&mut tail).map_err(io_err(path))?;
    if &tail[8..] != TRAILER_MAGIC {
        return Err(damaged("no trailer (the pack was not finished)".into()));
    }
    let count = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    let crc = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]);
    let trailer_len = count * ENTRY_LEN as u64;
    let body_end = size
        .checked_sub(TAIL_LEN as u64 + trailer_len)
        .filter(|&end| end >= MAGIC.len() as u64)
        .ok_or_else(|| damaged(format!("trailer of {count} entries does not fit")))?;
    let mut trailer = vec![0u8; trailer_len as usize];
    f.seek(SeekFrom::Start(body_end)).map_err(io_err(path))?;
    f.read_exact(&mut trailer).map_err(io_err(path))?;
    if crc32fast::hash(&trailer) != crc {
        return Err(damaged("trailer checksum mismatch".into()));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for raw in trailer.chunks_exact(ENTRY_LEN) {
        let mut off = [0u8; 8];
        off.copy_from_slice(&raw[HEADER_LEN..]);
        let offset = u64::from_le_bytes(off);
        let e = decode_header(raw, offset).map_err(damaged)?;
        if offset < (MAGIC.len() + HEADER_LEN) as u64 || offset + u64::from(e.stored_len) > body_end
        {
            return Err(damaged(format!(
                "blob {} lies outside the pack",
                e.id.short()
            )));
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Reads a whole pack, checking its magic, its name (BLAKE3 of the bytes) and every blob
/// header against the trailer: `verify --read-data`'s first step.
pub fn read_whole(path: &Path, expected: &PackId) -> Result<Vec<u8>, PackError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let damaged = |reason: String| PackError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    if !bytes.starts_with(MAGIC) {
        return Err(damaged("bad magic".into()));
    }
    if blake3::hash(&bytes).as_bytes() != &expected.0 {
        return Err(damaged("content does not match its name (BLAKE3)".into()));
    }
    Ok(bytes)
}

/// Walks the per-blob headers from the start of a pack's bytes, for a pack whose trailer is
/// lost. Stops at the first header that does not parse (the trailer, or damage).
pub fn scan_headers(bytes: &[u8]) -> Vec<PackEntry> {
    // An intact tail says where the blobs end; the trailer's entries look like headers.
    let mut end = bytes.len();
    if end >= MAGIC.len() + TAIL_LEN && bytes.ends_with(TRAILER_MAGIC) {
        let t = &bytes[end - TAIL_LEN..];
        let count = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize;
        if let Some(body_end) = count
            .checked_mul(ENTRY_LEN)
            .and_then(|n| end.checked_sub(TAIL_LEN + n))
            .filter(|&e| e >= MAGIC.len())
        {
            end = body_end;
        }
    }
    let bytes = &bytes[..end];
    let mut out = Vec::new();
    let mut pos = MAGIC.len();
    while pos + HEADER_LEN <= bytes.len() {
        let Ok(e) = decode_header(&bytes[pos..pos + HEADER_LEN], (pos + HEADER_LEN) as u64) else {
            break;
        };
        let end = pos + HEADER_LEN + e.stored_len as usize;
        if end > bytes.len() {
            break;
        }
        out.push(e);
        pos = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId([n; ID_LEN])
    }

    fn write_pack(dir: &Path) -> (PackId, PathBuf) {
        let mut w = PackWriter::create(dir.join("tmp-1")).unwrap();
        w.add(id(1), BlobKind::Data, 5, b"hello", false).unwrap();
        w.add(id(2), BlobKind::Tree, 100, b"zzz", true).unwrap();
        let (pid, size, entries) = w.finish(|p| dir.join(p.to_hex())).unwrap();
        assert_eq!(entries.len(), 2);
        let path = dir.join(pid.to_hex());
        assert_eq!(fs::metadata(&path).unwrap().len(), size);
        (pid, path)
    }

    #[test]
    fn trailer_lists_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let (pid, path) = write_pack(dir.path());
        let entries = read_trailer(&path).unwrap();
        assert_eq!(entries.len(), 2);
        let bytes = read_whole(&path, &pid).unwrap();
        let e = entries[0];
        assert_eq!(
            &bytes[e.offset as usize..][..e.stored_len as usize],
            b"hello"
        );
        assert_eq!(entries[1].kind, BlobKind::Tree);
        assert!(entries[1].compressed);
        assert_eq!(scan_headers(&bytes), entries);
        assert!(!dir.path().join("tmp-1").exists());
    }

    #[test]
    fn damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (pid, path) = write_pack(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        bytes[12] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            read_whole(&path, &pid),
            Err(PackError::Damaged { .. })
        ));
        let n = bytes.len();
        bytes[n - 20] ^= 0xff; // inside the trailer
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            read_trailer(&path),
            Err(PackError::Damaged { .. })
        ));
        fs::write(&path, b"short").unwrap();
        assert!(read_trailer(&path).is_err());
        fs::write(&path, [MAGIC.as_slice(), &[0u8; 8], TRAILER_MAGIC].concat()).unwrap();
        assert!(read_trailer(&path).is_ok()); // an empty pack: zero entries, checksum of nothing
    }
}
