//! A size-limited tmpfs for tests that need a disk that fills up: mounted on a
//! fresh temporary folder with `mount -t tmpfs -o size=...`, unmounted (lazily
//! if still busy) when dropped. Mounting needs root (CAP_SYS_ADMIN); without
//! it [`Tmpfs::mount`] prints why and returns `None` (the test skips), except
//! under `CI=true`, where it panics.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{in_ci, run};

/// A mounted tmpfs, unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount`'s syntax: `"16m"`) on a new
    /// temporary folder; `None` after printing why when that is not possible here.
    pub fn mount(size: &str, why: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700"))
            .arg("tmpfs")
            .arg(dir.path()));
        if !out.status.success() {
            let reason = format!(
                "cannot mount a tmpfs (needs root) ({why}): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            assert!(!in_ci(), "required in CI: {reason}");
            eprintln!("SKIPPED: {reason}");
            return None;
        }
        Some(Self { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes zeros to `name` until the file system is full; returns its path
    /// and how many bytes it holds.
    pub fn fill(&self, name: &str) -> (PathBuf, u64) {
        let path = self.path().join(name);
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 << 10];
        let mut written = 0u64;
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(err) => panic!("filling {}: {err}", path.display()),
            }
        }
        // Smaller writes take what a 64 KiB block could not.
        for size in [4096usize, 512, 1] {
            while let Ok(n) = file.write(&block[..size]) {
                if n == 0 {
                    break;
                }
                written += n as u64;
            }
        }
        (path, written)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let out = run(Command::new("umount").arg(self.dir.path()));
        if !out.status.success() {
            // Still busy (a process of a failed test): detach it now, freed when unused.
            let lazy = run(Command::new("umount").arg("-l").arg(self.dir.path()));
            if !lazy.status.success() {
                eprintln!(
                    "cleanup: cannot unmount {}: {}",
                    self.dir.path().display(),
                    String::from_utf8_lossy(&lazy.stderr).trim()
                );
            }
        }
    }
}
