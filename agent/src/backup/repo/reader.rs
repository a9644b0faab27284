//! Reading blobs back: positioned reads from a few open packs, decompression, and a check
//! that the plain bytes hash to the blob's id (a damaged pack is an error, never wrong data).

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::index::BlobLoc;
use super::{RepoError, Repository, io_at};
use crate::backup::compress::BlobDecompressor;
use crate::backup::id::BlobId;

/// Open pack files kept per reader (restores read packs in runs, so a few suffice).
const OPEN_PACKS: usize = 8;

/// Reads blobs; one per thread.
#[derive(Debug)]
pub struct BlobReader<'r> {
    repo: &'r Repository,
    open: Vec<(u32, File)>,
    stored: Vec<u8>,
    decompressor: BlobDecompressor,
}

impl<'r> BlobReader<'r> {
    pub(super) fn new(repo: &'r Repository) -> Self {
        BlobReader {
            repo,
            open: Vec::with_capacity(OPEN_PACKS),
            stored: Vec::new(),
            decompressor: BlobDecompressor::default(),
        }
    }

    fn pack_file(&mut self, pack: u32) -> Result<&File, RepoError> {
        if let Some(i) = self.open.iter().position(|(p, _)| *p == pack) {
            return Ok(&self.open[i].1);
        }
        let meta = self
            .repo
            .index()
            .pack(pack)
            .ok_or_else(|| RepoError::Config {
                path: self.repo.root().join("index"),
                reason: format!("index names pack #{pack}, which it does not list"),
            })?;
        let path = self.repo.pack_path(&meta.id);
        let file = File::open(&path).map_err(io_at(&path))?;
        if self.open.len() == OPEN_PACKS {
            self.open.remove(0);
        }
        self.open.push((pack, file));
        Ok(&self.open[self.open.len() - 1].1)
    }

    /// Reads blob `id` into `out` (cleared first).
    pub fn read(&mut self, id: &BlobId, out: &mut Vec<u8>) -> Result<(), RepoError> {
        let loc = self
            .repo
            .index()
            .get(id)
            .ok_or(RepoError::BlobMissing { id: *id })?;
        self.read_at(id, loc, out)
    }

    /// Reads blob `id`, stored at `loc`, into `out`.
    pub fn read_at(
        &mut self,
        id: &BlobId,
        loc: BlobLoc,
        out: &mut Vec<u8>,
    ) -> Result<(), RepoError> {
        let pack_id = self.repo.index().pack(loc.pack).map(|p| p.id);
        let damaged = |reason: String| RepoError::BlobDamaged {
            id: *id,
            pack: pack_id.unwrap_or(crate::backup::id::PackId([0; 32])),
            reason,
        };
        let mut stored = std::mem::take(&mut self.stored);
        stored.resize(loc.stored_len as usize, 0);
        let read = self.pack_file(loc.pack).and_then(|f| {
            f.read_exact_at(&mut stored, loc.offset)
                .map_err(|e| damaged(format!("read failed: {e}")))
        });
        if let Err(e) = read {
            self.stored = stored;
            return Err(e);
        }
        let result = self
            .repo
            .decode_blob(id, &loc, &stored, &mut self.decompressor, out)
            .map_err(damaged);
        self.stored = stored;
        result?;
        Ok(())
    }
}
