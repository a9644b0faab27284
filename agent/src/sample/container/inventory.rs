//! The containers Docker knows about and their metadata: what the sampler
//! labels series with and which containers it reads.
//!
//! [`Inventory`] is plain data, shared as `Arc<RwLock<Inventory>>` between
//! the engine task ([`super::engine`], which fills it from bollard's list,
//! inspect and events) and the sampler (which copies it when its
//! [`Inventory::generation`] changes, so each read lock is short). Tests
//! build one directly. [`container_from_inspect`] is the pure conversion from
//! Docker's inspect answer.
//!
//! Leaves out: images, volumes, networks and anything not needed to label or
//! locate a container.

use std::collections::HashMap;

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};

/// A container's lifecycle state, as Docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Frozen (`docker pause`).
    Paused,
    /// Being restarted by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Stopped.
    Exited,
    /// Failed to be removed.
    Dead,
    /// A state this agent does not know (newer engines' `stopping`).
    Other,
}

impl State {
    /// The states exported in `muster_container_state{state}`, in order.
    pub const ALL: [Self; 7] = [
        Self::Created,
        Self::Running,
        Self::Paused,
        Self::Restarting,
        Self::Removing,
        Self::Exited,
        Self::Dead,
    ];

    /// Docker's name (`"running"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Removing => "removing",
            Self::Exited => "exited",
            Self::Dead => "dead",
            Self::Other => "other",
        }
    }

    /// Whether the container has a cgroup with processes to read.
    pub fn has_processes(self) -> bool {
        matches!(self, Self::Running | Self::Paused)
    }
}

/// A container's health check status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// No health check configured.
    None,
    /// Within the start period.
    Starting,
    /// Passing.
    Healthy,
    /// Failing.
    Unhealthy,
}

impl Health {
    /// The values exported in `muster_container_health{health}`, in order.
    pub const ALL: [Self; 4] = [Self::None, Self::Starting, Self::Healthy, Self::Unhealthy];

    /// Docker's name (`"healthy"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

/// One container's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// Full 64-hex id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Image as given at creation (`nginx:1.27`), cAdvisor's `image` label.
    pub image: String,
    /// Docker labels.
    pub labels: HashMap<String, String>,
    /// `com.docker.compose.project`, when set.
    pub compose_project: Option<String>,
    /// `com.docker.compose.service`, when set.
    pub compose_service: Option<String>,
    /// Lifecycle state.
    pub state: State,
    /// Health check status.
    pub health: Health,
    /// Docker's `RestartCount` (restarts by the restart policy).
    pub restart_count: u64,
    /// When the container last started, unix seconds; `None` if never.
    pub started_at: Option<f64>,
    /// PID of its init process in the host's PID namespace; `None` when not
    /// running.
    pub pid: Option<u32>,
    /// `HostConfig.NetworkMode` (`bridge`, `host`, `container:<id>`, ...).
    pub network_mode: String,
    /// `HostConfig.CgroupParent` (usually empty).
    pub cgroup_parent: String,
}

impl Container {
    /// Whether this container has its own network namespace, so that its
    /// `/proc/<pid>/net/dev` is its own (not the host's or another
    /// container's): cAdvisor skips network stats otherwise.
    pub fn owns_network(&self) -> bool {
        !(self.network_mode == "host" || self.network_mode.starts_with("container:"))
    }
}

/// Every container Docker reported, and whether the engine is reachable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    /// Containers by full id.
    pub containers: HashMap<String, Container>,
    /// Whether the engine answered the last (re)connect and its events
    /// stream is open.
    pub connected: bool,
    /// Bumped on every change; the sampler copies the inventory only when it
    /// differs from its copy's.
    pub generation: u64,
}

impl Inventory {
    /// Replaces every container (after a list on (re)connect).
    pub fn replace(&mut self, containers: impl IntoIterator<Item = Container>) {
        self.containers = containers.into_iter().map(|c| (c.id.clone(), c)).collect();
        self.generation += 1;
    }

    /// Adds or updates one container.
    pub fn upsert(&mut self, container: Container) {
        if self.containers.get(&container.id) != Some(&container) {
            self.containers.insert(container.id.clone(), container);
            self.generation += 1;
        }
    }

    /// Forgets a container (destroyed).
    pub fn remove(&mut self, id: &str) {
        if self.containers.remove(id).is_some() {
            self.generation += 1;
        }
    }

    /// Marks the engine reachable or not.
    pub fn set_connected(&mut self, connected: bool) {
        if self.connected != connected {
            self.connected = connected;
            self.generation += 1;
        }
    }
}

/// Converts Docker's inspect answer; `None` when it has no id.
pub fn container_from_inspect(c: &ContainerInspectResponse) -> Option<Container> {
    let id = c.id.clone().filter(|id| !id.is_empty())?;
    let config = c.config.as_ref();
    let labels = config.and_then(|c| c.labels.clone()).unwrap_or_default();
    let state = c.state.as_ref();
    let status = state.and_then(|s| s.status);
    let running = status == Some(ContainerStateStatusEnum::RUNNING)
        || status == Some(ContainerStateStatusEnum::PAUSED);
    let pid = state
        .and_then(|s| s.pid)
        .filter(|&p| p > 0 && running)
        .and_then(|p| u32::try_from(p).ok());
    let health = match state.and_then(|s| s.health.as_ref()).and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => Health::Starting,
        Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        _ => Health::None,
    };
    let host = c.host_config.as_ref();
    Some(Container {
        name: c
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
        compose_project: labels.get("com.docker.compose.project").cloned(),
        compose_service: labels.get("com.docker.compose.service").cloned(),
        labels,
        state: state_from(status),
        health,
        restart_count: c
            .restart_count
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        started_at: state
            .and_then(|s| s.started_at.as_deref())
            .and_then(parse_rfc3339),
        pid,
        network_mode: host
            .and_then(|h| h.network_mode.clone())
            .unwrap_or_default(),
        cgroup_parent: host
            .and_then(|h| h.cgroup_parent.clone())
            .unwrap_or_default(),
        id,
    })
}

fn state_from(status: Option<ContainerStateStatusEnum>) -> State {
    match status {
        Some(ContainerStateStatusEnum::CREATED) => State::Created,
        Some(ContainerStateStatusEnum::RUNNING) => State::Running,
        Some(ContainerStateStatusEnum::PAUSED) => State::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => State::Restarting,
        Some(ContainerStateStatusEnum::REMOVING) => State::Removing,
        Some(ContainerStateStatusEnum::EXITED) => State::Exited,
        Some(ContainerStateStatusEnum::DEAD) => State::Dead,
        _ => State::Other,
    }
}

/// Parses Docker's RFC 3339 timestamps (`2024-05-01T10:20:30.123456789Z`,
/// or with a `+hh:mm` offset) to unix seconds. `None` for anything else and
/// for Go's zero time (`0001-01-01T00:00:00Z`: never started).
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let s = text.get(from..to)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if year < 1970
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = text.get(19..)?;
    let mut fraction = 0.0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        fraction = format!("0.{}", frac.get(..digits)?).parse().ok()?;
        rest = frac.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest.get(1..)?.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(secs as f64 + fraction)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
