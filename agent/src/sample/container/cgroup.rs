//! Which cgroup hierarchy this host has, and where each container's cgroup
//! directories are in it.
//!
//! [`detect`] looks once, at start: v2 (`<cgroup>/cgroup.controllers`
//! exists), v1 (controller mounts such as `<cgroup>/memory`), or hybrid (v1
//! controllers plus a v2 mount at `<cgroup>/unified`, which holds no
//! controllers, so usage is read from the v1 side). [`resolve`] finds a
//! container's directories from its init process's `/proc/<pid>/cgroup`,
//! which is right for both Docker cgroup drivers and for nested or custom
//! parents, and falls back to Docker's known paths (`docker/<id>`,
//! `system.slice/docker-<id>.scope`) when that file can't be read or its path
//! lies outside this process's cgroup namespace (a containerised agent
//! without `--cgroupns=host` sees `/../<sibling>` paths).
//!
//! The reading of the files themselves is in [`super::cgroup_v2`] and
//! [`super::cgroup_v1`]; this module also holds the helpers both share.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The v1 controllers whose files the sampler reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Controllers {
    /// Mount of `cpu` (CFS stats and limits).
    pub cpu: Option<PathBuf>,
    /// Mount of `cpuacct` (CPU time).
    pub cpuacct: Option<PathBuf>,
    /// Mount of `memory`.
    pub memory: Option<PathBuf>,
    /// Mount of `blkio`.
    pub blkio: Option<PathBuf>,
    /// Mount of `pids`.
    pub pids: Option<PathBuf>,
}

impl Controllers {
    fn slot(&mut self, name: &str) -> Option<&mut Option<PathBuf>> {
        match name {
            "cpu" => Some(&mut self.cpu),
            "cpuacct" => Some(&mut self.cpuacct),
            "memory" => Some(&mut self.memory),
            "blkio" => Some(&mut self.blkio),
            "pids" => Some(&mut self.pids),
            _ => None,
        }
    }

    /// The directory of controller `name` (`"cpu"`, `"memory"`, ...).
    pub fn get(&self, name: &str) -> Option<&Path> {
        match name {
            "cpu" => self.cpu.as_deref(),
            "cpuacct" => self.cpuacct.as_deref(),
            "memory" => self.memory.as_deref(),
            "blkio" => self.blkio.as_deref(),
            "pids" => self.pids.as_deref(),
            _ => None,
        }
    }

    fn any(&self) -> bool {
        self.cpu.is_some()
            || self.cpuacct.is_some()
            || self.memory.is_some()
            || self.blkio.is_some()
            || self.pids.is_some()
    }
}

/// The host's cgroup layout, as seen under [`SamplePaths::cgroup`](crate::sample::paths::SamplePaths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Unified hierarchy mounted at this path.
    V2(PathBuf),
    /// Only v1 controller mounts.
    V1(Controllers),
    /// v1 controllers plus a controller-less v2 mount (`unified`).
    Hybrid {
        /// The v1 controller mounts, where the numbers are.
        controllers: Controllers,
        /// The v2 mount.
        unified: PathBuf,
    },
    /// No cgroup files visible (rootless, or the mount is absent): only the
    /// Docker stats fallback can give numbers.
    None,
}

impl Hierarchy {
    /// `"v2"`, `"v1"`, `"hybrid"` or `"none"`, for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::V2(_) => "v2",
            Self::V1(_) => "v1",
            Self::Hybrid { .. } => "hybrid",
            Self::None => "none",
        }
    }
}

/// Looks at `root` (normally `/sys/fs/cgroup`) and says which layout it has.
/// Unreadable entries count as absent.
pub fn detect(root: &Path) -> Hierarchy {
    if root.join("cgroup.controllers").is_file() {
        return Hierarchy::V2(root.to_owned());
    }
    let mut controllers = Controllers::default();
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // `cpu,cpuacct` holds both; a `cpu` symlink to it is seen too and
            // gives the same directory.
            for controller in name.split(',') {
                if let Some(slot) = controllers.slot(controller) {
                    slot.get_or_insert_with(|| path.clone());
                }
            }
        }
    }
    let unified = root.join("unified");
    match (
        controllers.any(),
        unified.join("cgroup.controllers").is_file(),
    ) {
        (true, true) => Hierarchy::Hybrid {
            controllers,
            unified,
        },
        (true, false) => Hierarchy::V1(controllers),
        (false, _) => Hierarchy::None,
    }
}

/// Where one container's cgroup files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupDirs {
    /// The container's directory in the unified hierarchy.
    V2(PathBuf),
    /// The container's directory in each v1 controller (`None`: not mounted
    /// or not found).
    V1(Controllers),
}

/// A container's cgroup: its directories and the `id` label cAdvisor gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCgroup {
    /// The cgroup path relative to the hierarchy root, with a leading `/`:
    /// `/docker/<id>` or `/system.slice/docker-<id>.scope`.
    pub id_label: String,
    /// The directories to read.
    pub dirs: CgroupDirs,
}

/// Calls `each(hierarchy_id, controllers, path)` for every line of a
/// `/proc/<pid>/cgroup` file (`ID:CONTROLLERS:PATH`; v2's line is `0::PATH`).
/// Returns the number of malformed lines skipped.
pub fn parse_proc_cgroup(text: &str, mut each: impl FnMut(&str, &str, &str)) -> u64 {
    let mut malformed = 0;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(controllers), Some(path))
                if !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && path.starts_with('/') =>
            {
                each(id, controllers, path);
            }
            _ => malformed += 1,
        }
    }
    malformed
}

/// Docker's own paths for a container, relative to a hierarchy root:
/// systemd driver first (the default on v2), then cgroupfs, then a custom
/// `--cgroup-parent` in both styles.
pub fn known_paths(container_id: &str, cgroup_parent: &str) -> Vec<String> {
    let mut paths = vec![
        format!("system.slice/docker-{container_id}.scope"),
        format!("docker/{container_id}"),
    ];
    let parent = cgroup_parent.trim_matches('/');
    if !parent.is_empty() {
        paths.push(format!("{parent}/{container_id}"));
        paths.push(format!("{parent}/docker-{container_id}.scope"));
    }
    paths
}

/// The directory for `path` (from `/proc/<pid>/cgroup`) under `mount`, when
/// it stays inside the mount and exists.
fn dir_from_proc(mount: &Path, path: &str) -> Option<(PathBuf, String)> {
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|c| c == ".." || c == ".") {
        return None;
    }
    let dir = mount.join(rel);
    dir.is_dir().then(|| (dir, format!("/{rel}")))
}

fn dir_from_known(mount: &Path, known: &[String]) -> Option<(PathBuf, String)> {
    known.iter().find_map(|rel| {
        let dir = mount.join(rel);
        dir.is_dir().then(|| (dir, format!("/{rel}")))
    })
}

/// Finds a container's cgroup directories. `proc_cgroup` is the text of its
/// init process's `/proc/<pid>/cgroup` (`None` when unreadable); paths from
/// it are tried first, then [`known_paths`]. Returns `None` when no directory
/// exists for the container (it has stopped, or the hierarchy is not visible).
pub fn resolve(
    hierarchy: &Hierarchy,
    proc_cgroup: Option<&str>,
    container_id: &str,
    cgroup_parent: &str,
) -> Option<ContainerCgroup> {
    let known = known_paths(container_id, cgroup_parent);
    match hierarchy {
        Hierarchy::V2(root) => {
            let mut from_proc = None;
            if let Some(text) = proc_cgroup {
                parse_proc_cgroup(text, |id, _, path| {
                    if id == "0" && from_proc.is_none() {
                        from_proc = dir_from_proc(root, path);
                    }
                });
            }
            let (dir, id_label) = from_proc.or_else(|| dir_from_known(root, &known))?;
            Some(ContainerCgroup {
                id_label,
                dirs: CgroupDirs::V2(dir),
            })
        }
        Hierarchy::V1(mounts)
        | Hierarchy::Hybrid {
            controllers: mounts,
            ..
        } => resolve_v1(mounts, proc_cgroup, &known),
        Hierarchy::None => None,
    }
}

fn resolve_v1(
    mounts: &Controllers,
    proc_cgroup: Option<&str>,
    known: &[String],
) -> Option<ContainerCgroup> {
    let mut found = Controllers::default();
    let mut id_label: Option<String> = None;
    // In the order whose path names the container: cpu, as cAdvisor does.
    let names = ["cpu", "cpuacct", "memory", "blkio", "pids"];
    for name in names {
        let Some(mount) = mounts.get(name) else {
            continue;
        };
        let mut from_proc = None;
        if let Some(text) = proc_cgroup {
            parse_proc_cgroup(text, |_, controllers, path| {
                if from_proc.is_none() && controllers.split(',').any(|c| c == name) {
                    from_proc = dir_from_proc(mount, path);
                }
            });
        }
        if let Some((dir, label)) = from_proc.or_else(|| dir_from_known(mount, known)) {
            id_label.get_or_insert(label);
            if let Some(slot) = found.slot(name) {
                *slot = Some(dir);
            }
        }
    }
    Some(ContainerCgroup {
        id_label: id_label?,
        dirs: CgroupDirs::V1(found),
    })
}

/// Calls `each(key, value)` for every `key value` line of a flat keyed file
/// (`cpu.stat`, `memory.stat`, `memory.events`, `memory.oom_control`,
/// `cpuacct.stat`). Returns the number of malformed lines skipped (not two
/// fields, or a value that is not a `u64`).
pub fn parse_flat_keyed(text: &str, mut each: impl FnMut(&str, u64)) -> u64 {
    let mut malformed = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        match (
            fields.next(),
            fields.next().map(str::parse::<u64>),
            fields.next(),
        ) {
            (Some(key), Some(Ok(value)), None) => each(key, value),
            _ => malformed += 1,
        }
    }
    malformed
}

/// A file holding one `u64` (`memory.current`, `cpuacct.usage`, ...).
/// `None` when it does not parse.
pub fn parse_single_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// A limit file: `max` (v2) or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit.
    Max,
    /// This many (bytes, tasks).
    Value(u64),
}

/// Parses `memory.max`, `pids.max` (`max` or a number) and v1's
/// `memory.limit_in_bytes` (a number). `None` when it does not parse.
pub fn parse_limit(text: &str) -> Option<Limit> {
    match text.trim() {
        "max" => Some(Limit::Max),
        other => other.parse().ok().map(Limit::Value),
    }
}

/// Counts the PIDs in a `cgroup.procs` text (one per line).
pub fn count_procs(text: &str) -> u64 {
    text.lines().filter(|l| !l.trim().is_empty()).count() as u64
}

/// Why a container's files could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// A file the pass needs is gone: the container stopped mid-pass. Skip it.
    Vanished,
    /// Every file was missing or denied while the directory exists (rootless
    /// Docker, a restricted mount): use the engine's stats instead.
    Unreadable,
    /// Another I/O error, with its file.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Reads `path` into `buf` (cleared first), reusing its allocation.
///
/// # Errors
/// The I/O error of opening or reading.
pub fn read_into(path: &Path, buf: &mut String) -> io::Result<()> {
    buf.clear();
    std::fs::File::open(path)?.read_to_string(buf)?;
    Ok(())
}

/// What happened to one file of a container.
#[derive(Debug, Default)]
pub(crate) struct ReadTally {
    pub(crate) read: u32,
    pub(crate) denied: u32,
    pub(crate) missing: u32,
}

impl ReadTally {
    /// Reads `dir/file` into `buf`: `Ok(true)` when read, `Ok(false)` when
    /// missing or denied (tallied), `Err` on any other error.
    pub(crate) fn read(
        &mut self,
        dir: &Path,
        file: &str,
        buf: &mut String,
    ) -> Result<bool, ReadError> {
        let path = dir.join(file);
        match read_into(&path, buf) {
            Ok(()) => {
                self.read += 1;
                Ok(true)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.missing += 1;
                Ok(false)
            }
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
                self.denied += 1;
                Ok(false)
            }
            // ENODEV/ESRCH come from a cgroup being removed under us.
            Err(err) if matches!(err.raw_os_error(), Some(19 | 3)) => {
                self.missing += 1;
                Ok(false)
            }
            Err(source) => Err(ReadError::Io { path, source }),
        }
    }

    /// The outcome once every file was tried: a file missing because `dir`
    /// is gone means the container vanished mid-pass; nothing read while it
    /// exists means it is unreadable.
    pub(crate) fn finish(&self, dir: &Path) -> Result<(), ReadError> {
        if self.missing > 0 && !dir.is_dir() {
            Err(ReadError::Vanished)
        } else if self.read == 0 {
            Err(ReadError::Unreadable)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
