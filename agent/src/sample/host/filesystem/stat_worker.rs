//! `statvfs` with a timeout, so a hung mount (a dead NFS server, a stuck
//! FUSE daemon) never blocks the `filesystem` sampler's pass.
//!
//! Sketch (node_exporter's `stuckMountWatcher`, with a thread instead of a
//! goroutine): calls run one at a time on a dedicated worker thread, fed
//! through a one-slot channel. The sampler waits for each answer up to the
//! timeout. When it times out, the mount is marked stuck and the worker is
//! *abandoned* to its pending call: it keeps its thread, and the next call
//! starts a fresh worker. A stuck mount is skipped until its abandoned call
//! returns; the thread then exits on its own and is joined on the next pass.
//! So at most one thread per stuck mount, plus the live worker, ever exists.
//!
//! Interruption: dropping [`StatWorkers`] joins the idle worker; threads
//! still blocked in the kernel cannot be cancelled and are left to exit when
//! their call returns.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// What `statvfs` says about a filesystem, in base units.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FsStat {
    /// Total bytes (blocks × fragment size).
    pub size_bytes: f64,
    /// Free bytes, including those reserved for root.
    pub free_bytes: f64,
    /// Bytes available to unprivileged users.
    pub avail_bytes: f64,
    /// Total inodes.
    pub files: f64,
    /// Free inodes.
    pub files_free: f64,
}

/// The stat call: [`statvfs`] in production, a fake in tests.
pub type StatFn = fn(&Path) -> io::Result<FsStat>;

/// `statvfs(2)` on `path`, sizes in bytes. Blocks are counted in fragment
/// size units (`f_frsize`), as `df` does.
///
/// # Errors
/// The errno, e.g. `EACCES` or `ENOENT` for a mount point hidden from us.
pub fn statvfs(path: &Path) -> io::Result<FsStat> {
    let s = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    let fragment = s.fragment_size() as f64;
    Ok(FsStat {
        size_bytes: s.blocks() as f64 * fragment,
        free_bytes: s.blocks_free() as f64 * fragment,
        avail_bytes: s.blocks_available() as f64 * fragment,
        files: s.files() as f64,
        files_free: s.files_free() as f64,
    })
}

/// The answer for one mount.
#[derive(Debug)]
pub enum StatOutcome {
    /// The call returned, with its result.
    Done(io::Result<FsStat>),
    /// No answer within the timeout; the mount is now stuck.
    TimedOut,
}

type Reply = (PathBuf, io::Result<FsStat>);

#[derive(Debug)]
struct Worker {
    jobs: SyncSender<PathBuf>,
    replies: Receiver<Reply>,
    handle: JoinHandle<()>,
}

#[derive(Debug)]
struct Stuck {
    mount_point: String,
    handle: JoinHandle<()>,
}

/// Runs stat calls with a timeout and remembers stuck mounts.
#[derive(Debug)]
pub struct StatWorkers {
    stat: StatFn,
    timeout: Duration,
    worker: Option<Worker>,
    stuck: Vec<Stuck>,
}

impl StatWorkers {
    /// No thread is started until the first call.
    pub fn new(stat: StatFn, timeout: Duration) -> Self {
        Self {
            stat,
            timeout,
            worker: None,
            stuck: Vec::new(),
        }
    }

    /// Forgets stuck mounts whose call has returned (joining their threads),
    /// so they are stat'ed again. Call once per pass, before [`Self::is_stuck`].
    pub fn reap(&mut self) {
        let mut i = 0;
        while i < self.stuck.len() {
            if self.stuck[i].handle.is_finished() {
                let done = self.stuck.swap_remove(i);
                tracing::info!(
                    mountpoint = %done.mount_point,
                    "mount point answers again, monitoring resumes"
                );
                // Finished: the join returns at once (a panic in it is already logged).
                let _ = done.handle.join();
            } else {
                i += 1;
            }
        }
    }

    /// Whether `mount_point` has a call still pending from an earlier pass.
    pub fn is_stuck(&self, mount_point: &str) -> bool {
        self.stuck.iter().any(|s| s.mount_point == mount_point)
    }

    /// How many mounts are stuck.
    pub fn stuck_count(&self) -> usize {
        self.stuck.len()
    }

    /// Stats `path` (the mount point under the rootfs) for `mount_point`,
    /// waiting up to the timeout. `path` is handed to the worker and back, so
    /// its storage is reused; after a timeout it is left empty.
    ///
    /// # Errors
    /// The error of spawning the worker thread.
    pub fn stat(&mut self, mount_point: &str, path: &mut PathBuf) -> io::Result<StatOutcome> {
        if self.worker.is_none() {
            self.worker = Some(spawn(self.stat)?);
        }
        let Some(worker) = self.worker.as_ref() else {
            return Err(io::Error::other("stat worker missing"));
        };
        if worker.jobs.send(std::mem::take(path)).is_err() {
            // The worker died (a panic in the stat call): start over next time.
            self.retire_worker();
            return Ok(StatOutcome::Done(Err(io::Error::other(
                "stat worker exited",
            ))));
        }
        match worker.replies.recv_timeout(self.timeout) {
            Ok((returned_path, result)) => {
                *path = returned_path;
                Ok(StatOutcome::Done(result))
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some(w) = self.worker.take() {
                    // Logged once per stuck episode, not per pass.
                    tracing::warn!(
                        mountpoint = %mount_point,
                        timeout = ?self.timeout,
                        "statvfs timed out; skipping the mount point until it answers"
                    );
                    self.stuck.push(Stuck {
                        mount_point: mount_point.to_owned(),
                        handle: w.handle,
                    });
                }
                Ok(StatOutcome::TimedOut)
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.retire_worker();
                Ok(StatOutcome::Done(Err(io::Error::other(
                    "stat worker exited",
                ))))
            }
        }
    }

    fn retire_worker(&mut self) {
        if let Some(w) = self.worker.take() {
            drop(w.jobs);
            let _ = w.handle.join();
        }
    }
}

impl Drop for StatWorkers {
    fn drop(&mut self) {
        // The live worker is idle (a pending call would have made it stuck):
        // closing its channel ends its loop.
        self.retire_worker();
        // Stuck threads are blocked in the kernel; they exit when it answers.
    }
}

fn spawn(stat: StatFn) -> io::Result<Worker> {
    let (jobs, job_rx) = sync_channel::<PathBuf>(1);
    let (reply_tx, replies) = sync_channel::<Reply>(1);
    let handle = std::thread::Builder::new()
        .name("muster-statvfs".to_owned())
        .spawn(move || {
            while let Ok(path) = job_rx.recv() {
                let result = stat(&path);
                // Fails once the sampler gave up on this worker: then exit.
                if reply_tx.send((path, result)).is_err() {
                    break;
                }
            }
        })?;
    Ok(Worker {
        jobs,
        replies,
        handle,
    })
}
