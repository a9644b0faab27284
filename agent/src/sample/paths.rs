//! Where samplers read from. Every path is configurable, which is how a
//! containerised agent reads the host's `/proc` and how tests point samplers
//! at fixture trees (node_exporter's `--path.procfs`, `--path.sysfs`,
//! `--path.rootfs`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The roots samplers read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplePaths {
    /// procfs mount. Default `/proc`.
    #[serde(default = "default_proc")]
    pub proc: PathBuf,
    /// sysfs mount. Default `/sys`.
    #[serde(default = "default_sys")]
    pub sys: PathBuf,
    /// The host's root filesystem, prefixed to mount points before `statfs`
    /// (a containerised agent mounts the host's `/` at e.g. `/host`). Default `/`.
    #[serde(default = "default_rootfs")]
    pub rootfs: PathBuf,
    /// The cgroup hierarchy's mount. Default `/sys/fs/cgroup`.
    #[serde(default = "default_cgroup")]
    pub cgroup: PathBuf,
    /// The Docker engine's socket. Default `/var/run/docker.sock`.
    #[serde(default = "default_docker_socket")]
    pub docker_socket: PathBuf,
}

impl Default for SamplePaths {
    fn default() -> Self {
        Self {
            proc: default_proc(),
            sys: default_sys(),
            rootfs: default_rootfs(),
            cgroup: default_cgroup(),
            docker_socket: default_docker_socket(),
        }
    }
}

impl SamplePaths {
    /// All roots under one fixture folder: `DIR/proc`, `DIR/sys`, `DIR/rootfs`,
    /// `DIR/sys/fs/cgroup`, `DIR/docker.sock`.
    pub fn under(dir: &Path) -> Self {
        Self {
            proc: dir.join("proc"),
            sys: dir.join("sys"),
            rootfs: dir.join("rootfs"),
            cgroup: dir.join("sys/fs/cgroup"),
            docker_socket: dir.join("docker.sock"),
        }
    }

    /// `proc` joined with `rel` (e.g. `"meminfo"`, `"1/net/dev"`).
    pub fn proc_file(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.proc.join(rel)
    }

    /// `sys` joined with `rel` (e.g. `"class/hwmon"`).
    pub fn sys_file(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.sys.join(rel)
    }

    /// A host mount point as seen from this process: `rootfs` + `mountpoint`.
    pub fn rootfs_path(&self, mountpoint: &str) -> PathBuf {
        self.rootfs.join(mountpoint.trim_start_matches('/'))
    }
}

fn default_proc() -> PathBuf {
    PathBuf::from("/proc")
}
fn default_sys() -> PathBuf {
    PathBuf::from("/sys")
}
fn default_rootfs() -> PathBuf {
    PathBuf::from("/")
}
fn default_cgroup() -> PathBuf {
    PathBuf::from("/sys/fs/cgroup")
}
fn default_docker_socket() -> PathBuf {
    PathBuf::from("/var/run/docker.sock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_prefix_joins_mountpoints() {
        let p = SamplePaths {
            rootfs: PathBuf::from("/host"),
            ..SamplePaths::default()
        };
        assert_eq!(p.rootfs_path("/var/lib"), Path::new("/host/var/lib"));
        assert_eq!(SamplePaths::default().rootfs_path("/"), Path::new("/"));
    }
}
