//! The repository: a local folder of packs, index files and snapshot files, behind a lock.
//!
//! ```text
//! REPO/config            format, id, chunker parameters, id key, compression (JSON)
//! REPO/data/ab/<id>      packs of blobs (file chunks and trees), named by their BLAKE3
//! REPO/index/<id>        index files: which pack holds which blob
//! REPO/snapshots/<id>    one small JSON file per snapshot (see `snapshot`)
//! REPO/tmp/              files being written; removed when a writer opens the repository
//! REPO/lock              flock; holder's pid, host and command
//! ```
//! The repository knows blobs, packs and the index; it knows nothing of files, trees,
//! snapshots or retention.
//!
//! # Crash safety
//! Writes go in restic's order: packs are written to `tmp/`, fsynced and renamed into
//! `data/`; then an index file names them; then a snapshot refers to their blobs. Reads go in
//! the reverse order. A writer killed at any point leaves packs that no index lists (opening
//! the repository indexes them from their trailers, so the next backup reuses them) or
//! temporary files (removed). An index entry whose pack is gone (a prune killed after
//! deleting) is dropped when the index is loaded.

pub mod config;
pub mod index;
pub mod lock;
pub mod pack;
mod reader;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use reader::BlobReader;

use self::config::{InitOptions, RepoConfig};
use self::index::{Index, IndexError, IndexedPack};
use self::lock::{LockError, LockMode, RepoLock};
use self::pack::{PackError, PackWriter};
use crate::backup::crypto::{BlobCipher, MasterKey};
use crate::backup::id::{BlobId, IdKey, PackId};

/// A repository operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// There is no repository at the path.
    #[error("{path} is not a Muster backup repository (no config file); `backup run` creates one")]
    NotARepository {
        /// The path given.
        path: PathBuf,
    },
    /// `init` found something already there.
    #[error("{path} already holds a repository or other files")]
    Exists {
        /// The path given.
        path: PathBuf,
    },
    /// The config file is unreadable or invalid.
    #[error("repository config {path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A pack could not be read or written.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// An index file could not be read.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A blob is not in the index.
    #[error("blob {id} is not in the repository")]
    BlobMissing {
        /// The blob.
        id: BlobId,
    },
    /// The repository is encrypted and no key file was given.
    #[error("repository {path} is encrypted: give its key file (--key-file)")]
    KeyRequired {
        /// The repository.
        path: PathBuf,
    },
    /// The key file is not this repository's.
    #[error("the key file does not open repository {path}")]
    WrongKey {
        /// The repository.
        path: PathBuf,
    },
    /// A key file was given for a repository that is not encrypted.
    #[error("repository {path} is not encrypted; drop --key-file")]
    NotEncrypted {
        /// The repository.
        path: PathBuf,
    },
    /// A blob's stored bytes are damaged.
    #[error("blob {id} in pack {pack} is damaged: {reason}")]
    BlobDamaged {
        /// The blob.
        id: BlobId,
        /// Its pack.
        pack: PackId,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> RepoError + '_ {
    move |source| RepoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What opening found and repaired, for the caller to log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Packs on disk that no index listed (an interrupted writer's), now indexed.
    pub unindexed_packs: usize,
    /// Packs listed by an index but gone from disk (an interrupted prune's), now dropped.
    pub missing_packs: usize,
    /// Files in `data/` that are not readable packs (left alone; `verify` reports them).
    pub damaged_packs: Vec<String>,
    /// Temporary files removed.
    pub removed_temporaries: usize,
}

/// An open, locked repository.
#[derive(Debug)]
pub struct Repository {
    root: PathBuf,
    config: RepoConfig,
    key: IdKey,
    index: Index,
    index_files: Vec<PathBuf>,
    lock: RepoLock,
    report: OpenReport,
    cipher: Option<BlobCipher>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Repository {
    /// Creates a repository in `root` (absent or an empty folder) and opens it exclusively.
    pub fn init(root: &Path, options: InitOptions) -> Result<Repository, RepoError> {
        if root.join("config").exists() || fs::read_dir(root).is_ok_and(|mut d| d.next().is_some())
        {
            return Err(RepoError::Exists {
                path: root.to_path_buf(),
            });
        }
        // Config first: invalid options leave nothing behind.
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let config =
            RepoConfig::generate(options.clone(), created).map_err(|reason| RepoError::Config {
                path: root.join("config"),
                reason,
            })?;
        let json = serde_json::to_vec_pretty(&config).map_err(|e| RepoError::Config {
            path: root.join("config"),
            reason: e.to_string(),
        })?;
        for sub in ["", "data", "index", "snapshots", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        }
        write_atomic(root, &root.join("config"), &json)?;
        Repository::open_keyed(
            root,
            LockMode::Exclusive,
            Duration::ZERO,
            "init",
            options.key.as_ref(),
        )
    }

    /// Opens the repository at `root`, taking its lock in `mode` (waiting up to `lock_wait`),
    /// and loads the index. A writer (exclusive) also indexes packs an interrupted writer left
    /// unindexed and removes temporary files.
    pub fn open(
        root: &Path,
        mode: LockMode,
        lock_wait: Duration,
        what: &str,
    ) -> Result<Repository, RepoError> {
        Repository::open_keyed(root, mode, lock_wait, what, None)
    }

    /// As [`Repository::open`], with the key of an encrypted repository.
    pub fn open_keyed(
        root: &Path,
        mode: LockMode,
        lock_wait: Duration,
        what: &str,
        master: Option<&MasterKey>,
    ) -> Result<Repository, RepoError> {
        let config_path = root.join("config");
        let bytes = match fs::read(&config_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RepoError::NotARepository {
                    path: root.to_path_buf(),
                });
            }
            Err(e) => return Err(io_at(&config_path)(e)),
        };
        let config_err = |reason: String| RepoError::Config {
            path: config_path.clone(),
            reason,
        };
        let mut config: RepoConfig =
            serde_json::from_slice(&bytes).map_err(|e| config_err(e.to_string()))?;
        config.validate().map_err(config_err)?;
        let (key, cipher) = match (&config.encryption, master) {
            (Some(enc), Some(m)) => {
                if m.check_value(&config.id) != enc.key_check {
                    return Err(RepoError::WrongKey {
                        path: root.to_path_buf(),
                    });
                }
                config.chunker.seed = m.chunker_seed();
                (m.id_key(), Some(m.cipher()))
            }
            (Some(_), None) => {
                return Err(RepoError::KeyRequired {
                    path: root.to_path_buf(),
                });
            }
            (None, Some(_)) => {
                return Err(RepoError::NotEncrypted {
                    path: root.to_path_buf(),
                });
            }
            (None, None) => (config.id_key().map_err(config_err)?, None),
        };
        let lock = lock::acquire(root, mode, lock_wait, what)?;
        let mut repo = Repository {
            root: root.to_path_buf(),
            config,
            key,
            index: Index::default(),
            index_files: Vec::new(),
            lock,
            report: OpenReport::default(),
            cipher,
        };
        repo.load_index()?;
        Ok(repo)
    }

    fn load_index(&mut self) -> Result<(), RepoError> {
        let on_disk = self.list_packs()?;
        let mut loaded = Index::default();
        let index_dir = self.root.join("index");
        let mut files = list_names(&index_dir)?;
        files.sort();
        for name in files {
            let path = index_dir.join(&name);
            for pack in index::read_index_file(&path)? {
                if on_disk.contains(&pack.id) {
                    loaded.add_pack(&pack);
                } else {
                    self.report.missing_packs += 1;
                }
            }
            self.index_files.push(path);
        }
        let mut unindexed = Vec::new();
        for id in &on_disk {
            if loaded.has_pack(id) {
                continue;
            }
            let path = self.pack_path(id);
            match pack::read_trailer(&path) {
                Ok(entries) => {
                    let size = fs::metadata(&path).map_err(io_at(&path))?.len();
                    let p = IndexedPack {
                        id: *id,
                        size,
                        entries,
                    };
                    loaded.add_pack(&p);
                    unindexed.push(p);
                }
                Err(e) => {
                    tracing::warn!(pack = %id, error = %e, "pack is not readable; run verify");
                    self.report.damaged_packs.push(id.to_hex());
                }
            }
        }
        self.index = loaded;
        self.report.unindexed_packs = unindexed.len();
        if self.lock.mode() == LockMode::Exclusive {
            if !unindexed.is_empty() {
                self.write_index_file(&unindexed)?;
            }
            self.report.removed_temporaries = self.remove_temporaries()?;
        }
        Ok(())
    }

    fn remove_temporaries(&self) -> Result<usize, RepoError> {
        let tmp = self.root.join("tmp");
        fs::create_dir_all(&tmp).map_err(io_at(&tmp))?;
        let mut n = 0;
        for name in list_names(&tmp)? {
            let path = tmp.join(name);
            fs::remove_file(&path).map_err(io_at(&path))?;
            n += 1;
        }
        Ok(n)
    }

    /// Every pack file in `data/`, by id (names that are not ids are skipped).
    pub fn list_packs(&self) -> Result<std::collections::HashSet<PackId>, RepoError> {
        let data = self.root.join("data");
        let mut out = std::collections::HashSet::new();
        for sub in list_names(&data)? {
            let dir = data.join(&sub);
            if !dir.is_dir() {
                continue;
            }
            for name in list_names(&dir)? {
                if let Ok(id) = name.parse::<PackId>() {
                    out.insert(id);
                }
            }
        }
        Ok(out)
    }

    /// What opening found and repaired.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The repository's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Its config.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The blob id key.
    pub fn key(&self) -> &IdKey {
        &self.key
    }

    /// The cipher, when the repository is encrypted.
    pub fn cipher(&self) -> Option<&BlobCipher> {
        self.cipher.as_ref()
    }

    /// A blob's plain bytes from its stored bytes: opened (encrypted repositories),
    /// decompressed, and checked against its id.
    pub fn decode_blob(
        &self,
        id: &BlobId,
        loc: &index::BlobLoc,
        stored: &[u8],
        dec: &mut crate::backup::compress::BlobDecompressor,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let opened;
        let stored = match &self.cipher {
            Some(c) => {
                opened = c.open(stored, &id.0)?;
                opened.as_slice()
            }
            None => stored,
        };
        if loc.compressed {
            dec.unpack(stored, loc.raw_len as usize, out)
                .map_err(|e| e.to_string())?;
        } else {
            out.clear();
            out.extend_from_slice(stored);
        }
        if self.key.blob_id(out) != *id {
            return Err("content does not hash to its id".into());
        }
        Ok(())
    }

    /// The loaded index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The lock mode held.
    pub fn lock_mode(&self) -> LockMode {
        self.lock.mode()
    }

    /// Where pack `id` lives.
    pub fn pack_path(&self, id: &PackId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join("data").join(&hex[..2]).join(hex)
    }

    /// A fresh path in `tmp/`.
    pub fn temp_path(&self, what: &str) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Starts a new pack in `tmp/`.
    pub fn new_pack(&self) -> Result<PackWriter, RepoError> {
        Ok(PackWriter::create(self.temp_path("pack"))?)
    }

    /// Makes finished packs part of the repository: fsyncs their folders, writes an index file
    /// naming them, and adds them to the loaded index.
    pub fn add_packs(&mut self, packs: Vec<IndexedPack>) -> Result<(), RepoError> {
        if packs.is_empty() {
            return Ok(());
        }
        let mut dirs: Vec<PathBuf> = packs
            .iter()
            .filter_map(|p| self.pack_path(&p.id).parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        for dir in &dirs {
            sync_dir(dir)?;
        }
        sync_dir(&self.root.join("data"))?;
        self.write_index_file(&packs)?;
        for p in &packs {
            self.index.add_pack(p);
        }
        Ok(())
    }

    fn write_index_file(&mut self, packs: &[IndexedPack]) -> Result<(), RepoError> {
        let bytes = index::encode_index(packs).map_err(|reason| RepoError::Config {
            path: self.root.join("index"),
            reason,
        })?;
        let name = blake3::hash(&bytes).to_hex().to_string();
        let path = self.root.join("index").join(name);
        self.write_file_atomic(&path, &bytes)?;
        self.index_files.push(path);
        Ok(())
    }

    /// Replaces every index file with one listing `keep` (the packs that remain), then
    /// deletes `remove` packs. Prune's last step; a crash in between leaves packs that a later
    /// open indexes again or drops.
    pub fn replace_index(
        &mut self,
        keep: Vec<IndexedPack>,
        remove: &[PackId],
    ) -> Result<(), RepoError> {
        let old = std::mem::take(&mut self.index_files);
        if !keep.is_empty() {
            self.write_index_file(&keep)?;
        }
        let new_files = self.index_files.clone();
        for path in old.iter().filter(|p| !new_files.contains(p)) {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(path)(e)),
            }
        }
        sync_dir(&self.root.join("index"))?;
        for id in remove {
            let path = self.pack_path(id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
        let mut index = Index::default();
        for p in &keep {
            index.add_pack(p);
        }
        self.index = index;
        Ok(())
    }

    /// Writes `bytes` to `path` inside the repository: temporary file, fsync, rename, fsync
    /// of the folder.
    pub fn write_file_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
        write_atomic(&self.root, path, bytes)
    }

    /// A reader of blobs (one per thread).
    pub fn blob_reader(&self) -> BlobReader<'_> {
        BlobReader::new(self)
    }
}

fn write_atomic(root: &Path, path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_dir = root.join("tmp");
    fs::create_dir_all(&tmp_dir).map_err(io_at(&tmp_dir))?;
    let tmp = tmp_dir.join(format!("file-{}-{n}", std::process::id()));
    let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
    f.write_all(bytes).map_err(io_at(&tmp))?;
    f.sync_data().map_err(io_at(&tmp))?;
    drop(f);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
    }
    fs::rename(&tmp, path).map_err(io_at(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a folder, so the names of files renamed into it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), RepoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// The names in a folder (an absent folder has none).
pub fn list_names(dir: &Path) -> Result<Vec<String>, RepoError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(io_at(dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push(name);
        }
    }
    Ok(out)
}
