//! A command's output as a file in the snapshot (`pg_dump`, `mysqldump`, `etcdctl snapshot`):
//! read as it is produced, never staged on disk.
//!
//! The command comes from the agent's own config only. A command that exits non-zero, or
//! outlives its timeout (killed), fails the backup: a truncated dump must not pass for a
//! good one.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::store::{BlobStore, PackSlot};
use super::{BackupError, Progress};
use crate::backup::chunker::Chunker;
use crate::backup::tree::{Node, NodeKind};

/// A command whose standard output becomes one file at the snapshot's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSource {
    /// The file's name in the snapshot (one path component).
    pub name: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Killed (and the backup failed) after this long.
    pub timeout: Duration,
}

/// The last bytes of the command's stderr kept for the error message.
const STDERR_TAIL: usize = 2048;

/// Runs `source`, stores its output, and returns the file's node.
pub fn read_stream(
    store: &BlobStore<'_>,
    slot: &mut PackSlot,
    source: &StreamSource,
    progress: &dyn Progress,
) -> Result<Node, BackupError> {
    let fail = |reason: String| BackupError::Command {
        name: source.name.clone(),
        reason,
    };
    let (program, args) = source
        .command
        .split_first()
        .ok_or_else(|| fail("empty command".into()))?;
    // Its own process group, so a timeout kills what it started too (a shell's children
    // would hold the pipe open).
    let mut child = Command::new(program)
        .args(args)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start {program}: {e}")))?;
    let started = Instant::now();
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let timed_out = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (done, timed_out, limit) = (done.clone(), timed_out.clone(), source.timeout);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if started.elapsed() > limit {
                    timed_out.store(true, Ordering::Relaxed);
                    if let Ok(pid) = i32::try_from(pid) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(-pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let stderr_reader = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut tail = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            String::from_utf8_lossy(&tail).trim().to_string()
        })
    });
    let mut chunker = Chunker::new(store.repo().config().chunker);
    let read = match child.stdout.take() {
        Some(stdout) => store.save_stream(slot, &mut chunker, stdout, progress),
        None => Ok((Vec::new(), 0)),
    };
    let status = child.wait();
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    let stderr = stderr_reader
        .and_then(|h| h.join().ok())
        .unwrap_or_default();
    let (ids, size) = read.map_err(|e| fail(format!("reading its output: {e}")))?;
    let status = status.map_err(|e| fail(e.to_string()))?;
    if timed_out.load(Ordering::Relaxed) {
        return Err(fail(format!(
            "killed after its timeout of {:?}",
            source.timeout
        )));
    }
    if !status.success() {
        return Err(fail(format!("{status}: {stderr}")));
    }
    let (content, content_lists) = store.content_form(slot, ids)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    Ok(Node {
        mode: 0o600,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        mtime_ns: now,
        ctime_ns: now,
        size,
        content,
        content_lists,
        ..Node::empty(source.name.as_bytes().to_vec(), NodeKind::File)
    })
}
