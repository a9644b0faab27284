//! The `container` sampler: each pass reads the cgroup files of every
//! running container in the [`Inventory`] and emits cAdvisor's series, plus
//! Muster's state, health and restart series for every known container.
//!
//! Labels are cAdvisor's: `id` (the cgroup path, `/docker/<id>` or
//! `/system.slice/docker-<id>.scope`), `image`, `name`, then one
//! `container_label_<key>` per allowlisted Docker label (empty when the
//! container lacks it), then the family's own label (`interface`, `device`,
//! `state`, `health`).
//!
//! A container's cgroup directories are found once per init PID (see
//! [`super::cgroup::resolve`]) and cached. A container that stops mid-pass
//! (its files vanish) is skipped silently: its usage series are simply not
//! set this round, and its state series follow the `die` event. A container
//! whose files can't be read at all (rootless Docker, no cgroup mount) gets
//! its numbers from the engine's one-shot stats ([`super::stats`]), one pass
//! late. With no engine ever reached and no containers known, a pass
//! reports [`SampleError::NoData`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::cgroup::{self, CgroupDirs, ContainerCgroup, Hierarchy, ReadError};
use super::cgroup_v1::read_v1;
use super::cgroup_v2::read_v2;
use super::devices::DeviceNames;
use super::families::{F, Families};
use super::inventory::{Container, Health, Inventory, State};
use super::label_name;
use super::stats::StatsCache;
use super::usage::{InterfaceUsage, Usage};
use crate::sample::host::netdev::parse_net_dev;
use crate::sample::paths::SamplePaths;
use crate::sample::{SampleError, Sampler, SeriesTable};

/// Interfaces cAdvisor leaves out of a container's network series (loopback
/// and the host side of bridges, seen with `--network host`).
const IGNORED_INTERFACES: [&str; 4] = ["lo", "veth", "docker", "nerdctl"];

/// A resolved container cgroup, valid while the init PID is the same.
#[derive(Debug, Clone)]
struct Resolved {
    pid: u32,
    cgroup: ContainerCgroup,
}

/// Reads containers' cgroup files; see the module docs.
#[derive(Debug)]
pub struct ContainerSampler {
    paths: SamplePaths,
    hierarchy: Hierarchy,
    inventory: Arc<RwLock<Inventory>>,
    stats: Arc<StatsCache>,
    label_keys: Vec<String>,
    label_names: Vec<String>,
    snapshot: Vec<Container>,
    generation: Option<u64>,
    connected: bool,
    resolved: HashMap<String, Resolved>,
    last_id_label: HashMap<String, String>,
    systemd_style: bool,
    devices: DeviceNames,
    buf: String,
    usage: Usage,
    usage_malformed: u64,
    clock: fn() -> f64,
}

impl ContainerSampler {
    /// A sampler reading under `paths` with the detected `hierarchy`,
    /// labelling with the Docker labels in `label_allowlist`, reading its
    /// containers from `inventory` and asking `stats` for the fallback.
    pub fn new(
        paths: &SamplePaths,
        hierarchy: Hierarchy,
        label_allowlist: &[String],
        inventory: Arc<RwLock<Inventory>>,
        stats: Arc<StatsCache>,
    ) -> Self {
        let mut label_keys = Vec::new();
        let mut label_names = vec!["id".to_owned(), "image".to_owned(), "name".to_owned()];
        for key in label_allowlist {
            let name = label_name(key);
            // Two keys that sanitise alike ("a.b", "a-b") would repeat a label.
            if !label_names.contains(&name) {
                label_keys.push(key.clone());
                label_names.push(name);
            }
        }
        Self {
            devices: DeviceNames::new(paths.sys.clone()),
            systemd_style: matches!(hierarchy, Hierarchy::V2(_)),
            paths: paths.clone(),
            hierarchy,
            inventory,
            stats,
            label_keys,
            label_names,
            snapshot: Vec::new(),
            generation: None,
            connected: false,
            resolved: HashMap::new(),
            last_id_label: HashMap::new(),
            buf: String::new(),
            usage: Usage::default(),
            usage_malformed: 0,
            clock: unix_now,
        }
    }

    /// Replaces the clock giving `container_last_seen` (unix seconds); for tests.
    pub fn with_clock(mut self, clock: fn() -> f64) -> Self {
        self.clock = clock;
        self
    }

    /// Copies the inventory when it changed since the last pass.
    fn refresh_snapshot(&mut self) {
        let inventory = self
            .inventory
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.generation == Some(inventory.generation) {
            return;
        }
        self.generation = Some(inventory.generation);
        self.connected = inventory.connected;
        self.snapshot.clear();
        self.snapshot.extend(inventory.containers.values().cloned());
        drop(inventory);
        self.snapshot
            .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        let known = |id: &str| self.snapshot.iter().any(|c| c.id == id);
        self.resolved.retain(|id, _| known(id));
        self.last_id_label.retain(|id, _| known(id));
        let running = |id: &str| {
            self.snapshot
                .iter()
                .any(|c| c.id == id && c.state.has_processes())
        };
        self.stats.retain(running);
    }

    /// The container's cgroup, from the cache or resolved now.
    fn resolve(&mut self, c: &Container, pid: u32) -> Option<ContainerCgroup> {
        if let Some(r) = self.resolved.get(&c.id).filter(|r| r.pid == pid) {
            return Some(r.cgroup.clone());
        }
        let path = self.paths.proc_file(format!("{pid}/cgroup"));
        let text = cgroup::read_into(&path, &mut self.buf)
            .ok()
            .map(|()| self.buf.as_str());
        let found = cgroup::resolve(&self.hierarchy, text, &c.id, &c.cgroup_parent)?;
        self.systemd_style = found.id_label.ends_with(".scope");
        self.resolved.insert(
            c.id.clone(),
            Resolved {
                pid,
                cgroup: found.clone(),
            },
        );
        Some(found)
    }

    /// The `id` label of a container without a cgroup now (not running):
    /// the last one seen, else Docker's default path for this host's driver.
    fn expected_id_label(&self, c: &Container) -> String {
        if let Some(label) = self.last_id_label.get(&c.id) {
            return label.clone();
        }
        let parent = c.cgroup_parent.trim_matches('/');
        match (self.systemd_style, parent.is_empty()) {
            (true, true) => format!("/system.slice/docker-{}.scope", c.id),
            (true, false) => format!("/{parent}/docker-{}.scope", c.id),
            (false, true) => format!("/docker/{}", c.id),
            (false, false) => format!("/{parent}/{}", c.id),
        }
    }

    /// Reads one running container's usage into `self.usage`. `Ok(false)`:
    /// nothing to report this pass (vanished, or stats not fetched yet).
    fn read_usage(
        &mut self,
        c: &Container,
        pid: u32,
        cg: Option<&ContainerCgroup>,
    ) -> Result<bool, ReadError> {
        let read = match cg.map(|cg| &cg.dirs) {
            Some(CgroupDirs::V2(dir)) => read_v2(dir, &mut self.buf, &mut self.usage),
            Some(CgroupDirs::V1(dirs)) => read_v1(dirs, &mut self.buf, &mut self.usage),
            None => Err(ReadError::Unreadable),
        };
        match read {
            Ok(malformed) => {
                self.usage_malformed = malformed;
                if c.owns_network() {
                    self.read_network(pid);
                }
                Ok(true)
            }
            Err(ReadError::Vanished) => {
                self.resolved.remove(&c.id);
                Ok(false)
            }
            Err(ReadError::Unreadable) => match self.stats.get_or_request(&c.id) {
                Some(usage) => {
                    self.usage = usage;
                    Ok(true)
                }
                None => Ok(false),
            },
            Err(err) => Err(err),
        }
    }

    /// Adds the interfaces of `/proc/<pid>/net/dev` to `self.usage`; a
    /// process gone mid-pass leaves them out.
    fn read_network(&mut self, pid: u32) {
        let path = self.paths.proc_file(format!("{pid}/net/dev"));
        if cgroup::read_into(&path, &mut self.buf).is_err() {
            return;
        }
        let interfaces = &mut self.usage.interfaces;
        self.usage_malformed += parse_net_dev(&self.buf, |name, n| {
            if IGNORED_INTERFACES
                .iter()
                .any(|p| name.to_ascii_lowercase().starts_with(p))
            {
                return;
            }
            interfaces.push(InterfaceUsage {
                name: name.to_owned(),
                receive_bytes: n.receive_bytes,
                receive_packets: n.receive_packets,
                receive_errors: n.receive_errs,
                receive_dropped: n.receive_drop,
                transmit_bytes: n.transmit_bytes,
                transmit_packets: n.transmit_packets,
                transmit_errors: n.transmit_errs,
                transmit_dropped: n.transmit_drop,
            });
        });
    }
}

impl Sampler for ContainerSampler {
    fn name(&self) -> &'static str {
        "container"
    }

    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        self.refresh_snapshot();
        if !self.connected && self.snapshot.is_empty() {
            return Err(SampleError::NoData(format!(
                "no Docker engine at {}",
                self.paths.docker_socket.display()
            )));
        }
        let now = (self.clock)();
        let names: Vec<&str> = self.label_names.iter().map(String::as_str).collect();
        let fams = Families::register(out, &names);
        drop(names);

        let snapshot = std::mem::take(&mut self.snapshot);
        let mut first_error = None;
        let mut read_ok = 0usize;
        for c in &snapshot {
            let running_pid = c.pid.filter(|_| c.state.has_processes());
            let cg = running_pid.and_then(|pid| self.resolve(c, pid));
            let id_label = match &cg {
                Some(cg) => {
                    self.last_id_label.insert(c.id.clone(), cg.id_label.clone());
                    cg.id_label.clone()
                }
                None => self.expected_id_label(c),
            };
            let mut values: Vec<&str> = Vec::with_capacity(fams.width());
            values.extend([id_label.as_str(), c.image.as_str(), c.name.as_str()]);
            values.extend(
                self.label_keys
                    .iter()
                    .map(|k| c.labels.get(k).map_or("", String::as_str)),
            );

            for state in State::ALL {
                fams.set_with(
                    out,
                    F::State,
                    &mut values,
                    state.as_str(),
                    f64::from(u8::from(c.state == state)),
                );
            }
            for health in Health::ALL {
                fams.set_with(
                    out,
                    F::Health,
                    &mut values,
                    health.as_str(),
                    f64::from(u8::from(c.health == health)),
                );
            }
            fams.set(out, F::Restarts, &values, c.restart_count as f64);

            let Some(pid) = running_pid else { continue };
            self.usage_malformed = 0;
            match self.read_usage(c, pid, cg.as_ref()) {
                Ok(true) => {
                    read_ok += 1;
                    out.malformed(self.usage_malformed);
                    let devices = &mut self.devices;
                    fams.emit_usage(out, &values, &self.usage, |major, minor| {
                        devices.name(major, minor).to_owned()
                    });
                    fams.set(out, F::LastSeen, &values, now);
                    if let Some(started) = c.started_at {
                        fams.set(out, F::StartTime, &values, started);
                    }
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::debug!(container = %c.name, error = ?err, "container cgroup read failed");
                    first_error.get_or_insert(err);
                }
            }
        }
        self.snapshot = snapshot;
        match first_error {
            Some(ReadError::Io { path, source }) if read_ok == 0 => {
                Err(SampleError::read(path, source))
            }
            _ => Ok(()),
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
