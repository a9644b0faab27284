//! Snapshot → `.tar.zst`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::TarballError;
use crate::backup::archiver::Progress;
use crate::backup::id::BlobId;
use crate::backup::repo::{BlobReader, RepoError, Repository};
use crate::backup::snapshot::Snapshot;
use crate::backup::tree::{self, Node, NodeKind};

/// What an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportSummary {
    /// Entries written.
    pub entries: u64,
    /// File bytes written (before compression).
    pub bytes: u64,
}

/// Writes `snapshot` as a zstd-compressed tar to `out`. Paths are relative (the snapshot's
/// absolute paths without the leading `/`), as GNU tar writes them.
pub fn export<W: Write>(
    repo: &Repository,
    snapshot: &Snapshot,
    out: W,
    level: i32,
    progress: &dyn Progress,
) -> Result<ExportSummary, TarballError> {
    let encoder = zstd::stream::write::Encoder::new(out, level)?;
    let mut builder = tar::Builder::new(encoder);
    builder.mode(tar::HeaderMode::Complete);
    let mut state = Exporter {
        repo,
        reader: repo.blob_reader(),
        links: HashMap::new(),
        summary: ExportSummary::default(),
        progress,
    };
    state.dir(&mut builder, PathBuf::new(), &[snapshot.tree])?;
    let encoder = builder.into_inner()?;
    encoder.finish()?.flush()?;
    Ok(state.summary)
}

struct Exporter<'a, 'r> {
    repo: &'r Repository,
    reader: BlobReader<'r>,
    /// (device, inode) of multiply-linked files written, and their path.
    links: HashMap<(u64, u64), PathBuf>,
    summary: ExportSummary,
    progress: &'a dyn Progress,
}

impl Exporter<'_, '_> {
    fn dir<W: Write>(
        &mut self,
        builder: &mut tar::Builder<W>,
        path: PathBuf,
        ids: &[BlobId],
    ) -> Result<(), TarballError> {
        let mut nodes = Vec::new();
        let mut buf = Vec::new();
        for id in ids {
            self.reader.read(id, &mut buf)?;
            nodes.extend(tree::decode_nodes(id, &buf)?);
        }
        for node in nodes {
            tree::check_name(&node.name).map_err(|reason| TarballError::Unsafe {
                entry: node.display_name(),
                reason,
            })?;
            let child = path.join(OsString::from_vec(node.name.clone()));
            self.entry(builder, &child, &node)?;
            self.summary.entries += 1;
            self.progress.entry();
            if node.kind == NodeKind::Dir {
                self.dir(builder, child, &node.subtree)?;
            }
        }
        Ok(())
    }

    fn entry<W: Write>(
        &mut self,
        builder: &mut tar::Builder<W>,
        path: &Path,
        node: &Node,
    ) -> Result<(), TarballError> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(node.mode);
        h.set_uid(u64::from(node.uid));
        h.set_gid(u64::from(node.gid));
        h.set_mtime(u64::try_from(node.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0));
        h.set_size(0);
        match node.kind {
            NodeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut h, path, io::empty())?;
            }
            NodeKind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                let target = PathBuf::from(OsString::from_vec(node.target.clone()));
                builder.append_link(&mut h, path, target)?;
            }
            NodeKind::File => {
                if node.links > 1 {
                    if let Some(first) = self.links.get(&(node.device, node.inode)) {
                        h.set_entry_type(tar::EntryType::Link);
                        builder.append_link(&mut h, path, first)?;
                        return Ok(());
                    }
                    self.links
                        .insert((node.device, node.inode), path.to_path_buf());
                }
                let ids = self.content_ids(node)?;
                let mut size = 0u64;
                for id in &ids {
                    let loc = self
                        .repo
                        .index()
                        .get(id)
                        .ok_or(RepoError::BlobMissing { id: *id })?;
                    size += u64::from(loc.raw_len);
                }
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(size);
                let stream = ChunkStream {
                    reader: &mut self.reader,
                    ids: ids.into_iter(),
                    buf: Vec::new(),
                    pos: 0,
                    progress: self.progress,
                };
                builder.append_data(&mut h, path, stream)?;
                self.summary.bytes += size;
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                h.set_entry_type(match node.kind {
                    NodeKind::Fifo => tar::EntryType::Fifo,
                    NodeKind::CharDevice => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                });
                h.set_device_major(nix::sys::stat::major(node.rdev) as u32)?;
                h.set_device_minor(nix::sys::stat::minor(node.rdev) as u32)?;
                builder.append_data(&mut h, path, io::empty())?;
            }
            NodeKind::Socket => {}
        }
        Ok(())
    }

    fn content_ids(&mut self, node: &Node) -> Result<Vec<BlobId>, TarballError> {
        let mut ids = node.content.clone();
        let mut buf = Vec::new();
        for list in &node.content_lists {
            self.reader.read(list, &mut buf)?;
            ids.extend(tree::decode_list(list, &buf)?);
        }
        Ok(ids)
    }
}

/// A file's bytes, read chunk by chunk (hash-checked) as tar asks for them.
struct ChunkStream<'a, 'r> {
    reader: &'a mut BlobReader<'r>,
    ids: std::vec::IntoIter<BlobId>,
    buf: Vec<u8>,
    pos: usize,
    progress: &'a dyn Progress,
}

impl Read for ChunkStream<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(id) = self.ids.next() else {
                return Ok(0);
            };
            self.reader
                .read(&id, &mut self.buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.pos = 0;
            self.progress.bytes(self.buf.len() as u64);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
