//! The repository lock: `flock` on `REPO/lock`, exclusive for writers, shared for readers.
//!
//! The kernel drops a `flock` when its holder dies, so a lock is never stale: a killed agent
//! leaves no lock to clean up (restic's and borg's stale-lock trouble does not arise). The
//! holder writes its pid, host and command into the file so a refused caller can say who
//! holds it. Local filesystems only: `flock` over NFS is not reliable.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Exclusive (backup, forget, prune, import) or shared (list, restore, verify, export).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// One writer, no readers.
    Exclusive,
    /// Many readers, no writer.
    Shared,
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RepoLock {
    _lock: Flock<File>,
    mode: LockMode,
}

impl RepoLock {
    /// The mode held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }
}

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("repository {repo} is locked by {holder}")]
    Held {
        /// The repository.
        repo: PathBuf,
        /// What the holder wrote (pid, host, command, since), or "a reader".
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock repository {repo}: {source}")]
    Io {
        /// The repository.
        repo: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Takes the lock of the repository at `repo`, waiting up to `wait` for a holder to finish.
pub fn acquire(
    repo: &Path,
    mode: LockMode,
    wait: Duration,
    what: &str,
) -> Result<RepoLock, LockError> {
    let path = repo.join("lock");
    let io_err = |source| LockError::Io {
        repo: repo.to_path_buf(),
        source,
    };
    let deadline = Instant::now() + wait;
    let arg = match mode {
        LockMode::Exclusive => FlockArg::LockExclusiveNonblock,
        LockMode::Shared => FlockArg::LockSharedNonblock,
    };
    loop {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match Flock::lock(file, arg) {
            Ok(mut lock) => {
                if mode == LockMode::Exclusive {
                    let note = format!(
                        "pid {} on {} ({what}) since {}",
                        std::process::id(),
                        crate::backup::hostname(),
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                    lock.set_len(0).map_err(io_err)?;
                    lock.rewind().map_err(io_err)?;
                    lock.write_all(note.as_bytes()).map_err(io_err)?;
                }
                return Ok(RepoLock { _lock: lock, mode });
            }
            Err((mut file, Errno::EWOULDBLOCK)) => {
                if Instant::now() >= deadline {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    // The note is the last writer's: current if a writer holds the lock,
                    // stale if readers do; the kernel does not say which.
                    let holder = match holder.trim() {
                        "" => "another process".to_string(),
                        note => format!("another process (last writer: {note})"),
                    };
                    return Err(LockError::Held {
                        repo: repo.to_path_buf(),
                        holder,
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err((_, errno)) => return Err(io_err(io::Error::from(errno))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares() {
        let dir = tempfile::tempdir().unwrap();
        let w = acquire(dir.path(), LockMode::Exclusive, Duration::ZERO, "backup").unwrap();
        let err = acquire(dir.path(), LockMode::Shared, Duration::ZERO, "list").unwrap_err();
        assert!(err.to_string().contains("backup"), "{err}");
        drop(w);
        let r1 = acquire(dir.path(), LockMode::Shared, Duration::ZERO, "list").unwrap();
        let _r2 = acquire(dir.path(), LockMode::Shared, Duration::ZERO, "list").unwrap();
        assert!(acquire(dir.path(), LockMode::Exclusive, Duration::ZERO, "prune").is_err());
        assert_eq!(r1.mode(), LockMode::Shared);
    }
}
