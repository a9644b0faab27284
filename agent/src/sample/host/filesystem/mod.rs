//! The `filesystem` sampler: size, free space and inodes of each mounted
//! filesystem, from the host's mount table and `statvfs`.
//!
//! Mounts come from `/proc/1/mounts` (the host's namespace even when the
//! agent runs in a container), falling back to `/proc/mounts`; pseudo
//! filesystems and mount points are skipped with node_exporter's default
//! excludes; each mount point is stat'ed under the rootfs. A mount that
//! hangs is marked stuck, reported with `node_filesystem_device_error 1`, and
//! skipped until its call returns ([`stat_worker`]). Leaves out
//! node_exporter's `node_filesystem_mount_info`, `purgeable_bytes` and the
//! `device_error` *label* (the error is a series here, so the label set of a
//! filesystem never changes).

pub mod mounts;
pub mod stat_worker;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use self::mounts::{MountEntry, MountList, parse_mounts};
use self::stat_worker::{FsStat, StatFn, StatOutcome, StatWorkers};
use super::read::{as_text, read_into};
use crate::sample::filter::Filter;
use crate::sample::paths::SamplePaths;
use crate::sample::series::{FamilyId, FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};
use muster_shared::config::Duration;

/// node_exporter's default `--collector.filesystem.mount-points-exclude`,
/// `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`,
/// written for whole-name matching (node_exporter searches, our patterns are
/// anchored at both ends).
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)(/.*)?";

/// node_exporter's default `--collector.filesystem.fs-types-exclude`.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";

/// Which filesystems the `filesystem` sampler reports, and how long it waits
/// for each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemConfig {
    /// Mount points to report; anchored regexes. Default: exclude
    /// [`DEFAULT_MOUNT_POINTS_EXCLUDE`] (`/dev`, `/proc`, `/sys`, systemd
    /// credentials, container storage), as node_exporter; setting this table
    /// replaces that default.
    #[serde(default = "default_mount_points")]
    pub mount_points: Filter,
    /// Filesystem types to report; anchored regexes. Default: exclude
    /// [`DEFAULT_FS_TYPES_EXCLUDE`] (pseudo filesystems, overlay, squashfs),
    /// as node_exporter; setting this table replaces that default.
    #[serde(default = "default_fs_types")]
    pub fs_types: Filter,
    /// How long one `statvfs` may take before its mount is marked stuck and
    /// skipped until it answers (node_exporter's `mount-timeout`). Each newly
    /// stuck mount costs one pass this long, once. Default `"2s"`.
    #[serde(default = "default_mount_timeout")]
    pub mount_timeout: Duration,
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        Self {
            mount_points: default_mount_points(),
            fs_types: default_fs_types(),
            mount_timeout: default_mount_timeout(),
        }
    }
}

fn default_mount_points() -> Filter {
    Filter::excluding(DEFAULT_MOUNT_POINTS_EXCLUDE).expect("the default pattern is a valid regex")
}
fn default_fs_types() -> Filter {
    Filter::excluding(DEFAULT_FS_TYPES_EXCLUDE).expect("the default pattern is a valid regex")
}
fn default_mount_timeout() -> Duration {
    Duration::from_secs(2)
}

const fn gauge(name: &'static str, help: &'static str) -> FamilySpec<'static> {
    FamilySpec {
        name,
        help,
        kind: Kind::Gauge,
        labels: &["device", "fstype", "mountpoint"],
    }
}

const SIZE: FamilySpec<'static> = gauge("node_filesystem_size_bytes", "Filesystem size in bytes.");
const FREE: FamilySpec<'static> = gauge(
    "node_filesystem_free_bytes",
    "Filesystem free space in bytes.",
);
const AVAIL: FamilySpec<'static> = gauge(
    "node_filesystem_avail_bytes",
    "Filesystem space available to non-root users in bytes.",
);
const FILES: FamilySpec<'static> = gauge("node_filesystem_files", "Filesystem total file nodes.");
const FILES_FREE: FamilySpec<'static> = gauge(
    "node_filesystem_files_free",
    "Filesystem total free file nodes.",
);
const READONLY: FamilySpec<'static> =
    gauge("node_filesystem_readonly", "Filesystem read-only status.");
const DEVICE_ERROR: FamilySpec<'static> = gauge(
    "node_filesystem_device_error",
    "Whether an error occurred while getting statistics for the given device.",
);

/// Samples mounted filesystems.
#[derive(Debug)]
pub struct FilesystemSampler {
    mounts_path: PathBuf,
    fallback_mounts_path: PathBuf,
    rootfs: PathBuf,
    mount_points: Filter,
    fs_types: Filter,
    buf: Vec<u8>,
    mounts: MountList,
    stat_path: PathBuf,
    workers: StatWorkers,
}

impl FilesystemSampler {
    /// Reads the mount table under `paths.proc` and stats mount points under
    /// `paths.rootfs`. The stat thread starts on the first pass.
    pub fn new(paths: &SamplePaths, config: &FilesystemConfig) -> Self {
        Self::with_stat(paths, config, stat_worker::statvfs)
    }

    fn with_stat(paths: &SamplePaths, config: &FilesystemConfig, stat: StatFn) -> Self {
        Self {
            mounts_path: paths.proc_file("1/mounts"),
            fallback_mounts_path: paths.proc_file("mounts"),
            rootfs: paths.rootfs.clone(),
            mount_points: config.mount_points.clone(),
            fs_types: config.fs_types.clone(),
            buf: Vec::new(),
            mounts: MountList::default(),
            stat_path: PathBuf::new(),
            workers: StatWorkers::new(stat, config.mount_timeout.get()),
        }
    }

    fn read_mounts(&mut self) -> Result<(), SampleError> {
        read_into(&self.mounts_path, &mut self.buf)
            .or_else(|_| read_into(&self.fallback_mounts_path, &mut self.buf))
    }
}

impl Sampler for FilesystemSampler {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    /// # Errors
    /// [`SampleError::Read`] when neither mount table can be read, or
    /// [`SampleError::Other`] when the stat thread cannot be started.
    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        self.read_mounts()?;
        self.mounts.clear();
        let text = as_text(&self.buf);
        let (mounts, mount_points, fs_types) =
            (&mut self.mounts, &self.mount_points, &self.fs_types);
        let malformed = parse_mounts(&text, |m| {
            if mount_points.allows(&m.mount_point) && fs_types.allows(m.fs_type) {
                mounts.push(m);
            }
        });
        out.malformed(malformed);

        let ids = Families::register(out);
        self.workers.reap();
        for entry in self.mounts.entries() {
            if self.workers.is_stuck(&entry.mount_point) {
                ids.set_error(out, entry);
                continue;
            }
            set_rootfs_path(&mut self.stat_path, &self.rootfs, &entry.mount_point);
            let outcome = self
                .workers
                .stat(&entry.mount_point, &mut self.stat_path)
                .map_err(|e| SampleError::Other(format!("cannot start the statvfs thread: {e}")))?;
            match outcome {
                StatOutcome::Done(Ok(stat)) => ids.set_stat(out, entry, &stat),
                StatOutcome::Done(Err(err)) => {
                    tracing::debug!(mountpoint = %entry.mount_point, error = %err, "statvfs failed");
                    ids.set_error(out, entry);
                }
                StatOutcome::TimedOut => ids.set_error(out, entry),
            }
        }
        Ok(())
    }
}

/// `rootfs` + `mount_point` into `path`, reusing its storage (as
/// [`SamplePaths::rootfs_path`]).
fn set_rootfs_path(path: &mut PathBuf, rootfs: &std::path::Path, mount_point: &str) {
    path.as_mut_os_string().clear();
    path.push(rootfs);
    path.push(mount_point.trim_start_matches('/'));
}

/// The family ids of one pass.
struct Families {
    size: FamilyId,
    free: FamilyId,
    avail: FamilyId,
    files: FamilyId,
    files_free: FamilyId,
    readonly: FamilyId,
    device_error: FamilyId,
}

impl Families {
    fn register(out: &mut SeriesTable) -> Self {
        Self {
            size: out.family(&SIZE),
            free: out.family(&FREE),
            avail: out.family(&AVAIL),
            files: out.family(&FILES),
            files_free: out.family(&FILES_FREE),
            readonly: out.family(&READONLY),
            device_error: out.family(&DEVICE_ERROR),
        }
    }

    fn set_stat(&self, out: &mut SeriesTable, entry: &MountEntry, stat: &FsStat) {
        let labels = labels(entry);
        out.set(self.size, &labels, stat.size_bytes);
        out.set(self.free, &labels, stat.free_bytes);
        out.set(self.avail, &labels, stat.avail_bytes);
        out.set(self.files, &labels, stat.files);
        out.set(self.files_free, &labels, stat.files_free);
        out.set(self.readonly, &labels, f64::from(u8::from(entry.read_only)));
        out.set(self.device_error, &labels, 0.0);
    }

    /// node_exporter reports read-only status and the error, not sizes.
    fn set_error(&self, out: &mut SeriesTable, entry: &MountEntry) {
        let labels = labels(entry);
        out.set(self.readonly, &labels, f64::from(u8::from(entry.read_only)));
        out.set(self.device_error, &labels, 1.0);
    }
}

fn labels(entry: &MountEntry) -> [&str; 3] {
    [&entry.device, &entry.fs_type, &entry.mount_point]
}

#[cfg(test)]
mod tests;
