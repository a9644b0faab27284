//! Making one entry on disk: folders (checked to be real), links, special files, metadata.

use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use crate::backup::tree::{Node, NodeKind};

/// Whether metadata owners can be set (only root may give files away).
fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Makes `path` a real folder: creates it, or accepts an existing folder. Anything else
/// there, a symlink above all, is refused: writing through it could leave the target.
pub fn ensure_real_dir(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "{} is a symlink where the snapshot has a folder; not writing through it",
            path.display()
        )),
        Ok(_) => Err(format!(
            "{} exists and is not a folder; remove it first",
            path.display()
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(path) {
            Ok(()) => Ok(()),
            Err(e) => Err(format!("cannot create folder {}: {e}", path.display())),
        },
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Removes whatever non-folder is at `path` (a file or a symlink itself, never its target),
/// so a new entry can take its place.
pub fn clear_spot(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a folder is in the way",
        )),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates a symlink, fifo or device node (sockets are skipped: they cannot be recreated).
pub fn make_special(path: &Path, node: &Node) -> io::Result<()> {
    clear_spot(path)?;
    match node.kind {
        NodeKind::Symlink => {
            symlink(std::ffi::OsStr::from_bytes(&node.target), path)?;
            if is_root() {
                std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))?;
            }
            let t = mtime(node);
            filetime::set_symlink_file_times(path, t, t)?;
            return Ok(());
        }
        NodeKind::Fifo => {
            nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(node.mode))
                .map_err(io::Error::from)?;
        }
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            let kind = if node.kind == NodeKind::CharDevice {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            nix::sys::stat::mknod(
                path,
                kind,
                nix::sys::stat::Mode::from_bits_truncate(node.mode),
                node.rdev,
            )
            .map_err(io::Error::from)?;
        }
        NodeKind::Socket => return Ok(()),
        NodeKind::File | NodeKind::Dir => return Ok(()),
    }
    apply_path_meta(path, node)
}

/// Makes `path` another name of the already restored `first`.
pub fn hard_link(first: &Path, path: &Path) -> io::Result<()> {
    clear_spot(path)?;
    fs::hard_link(first, path)
}

fn mtime(node: &Node) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(
        node.mtime_ns.div_euclid(1_000_000_000),
        node.mtime_ns.rem_euclid(1_000_000_000) as u32,
    )
}

/// Owner (as root), mode, then times of a restored file, through its open handle.
pub fn apply_file_meta(file: &File, node: &Node) -> io::Result<()> {
    if is_root() {
        std::os::unix::fs::fchown(file, Some(node.uid), Some(node.gid))?;
    }
    // After chown, which clears setuid and setgid.
    file.set_permissions(Permissions::from_mode(node.mode))?;
    let t = mtime(node);
    filetime::set_file_handle_times(file, Some(t), Some(t))
}

fn apply_path_meta(path: &Path, node: &Node) -> io::Result<()> {
    if is_root() {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))?;
    }
    fs::set_permissions(path, Permissions::from_mode(node.mode))?;
    let t = mtime(node);
    filetime::set_symlink_file_times(path, t, t)
}

/// A folder's owner, mode and times, after everything in it is written. Failures are
/// logged: the data is restored either way.
pub fn apply_dir_meta(path: &Path, node: &Node) {
    if let Err(e) = apply_path_meta(path, node) {
        tracing::warn!(path = %path.display(), error = %e, "cannot restore folder metadata");
    }
}
