//! Container metrics, cAdvisor-compatible: the `container` sampler and the
//! Docker inventory it labels series with.
//!
//! Two halves, joined by an `Arc<RwLock<Inventory>>`:
//! - the **inventory task** ([`engine`]), async, talks to the Docker engine
//!   through bollard over its unix socket: list + inspect at (re)connect,
//!   then the events stream; no polling. It reconnects with backoff, so an
//!   engine that starts after the agent is picked up. It also fetches the
//!   engine's one-shot stats for containers whose cgroup files can't be read
//!   ([`stats`]).
//! - the **sampler** ([`sampler`]), blocking, on the sampling pool: reads the
//!   cgroup files ([`cgroup_v2`], [`cgroup_v1`]; hierarchy detection and
//!   per-container paths in [`cgroup`]) and `/proc/<pid>/net/dev` of every
//!   running container, and emits cAdvisor's series names and labels.
//!
//! Without a Docker engine, [`start`] logs "no Docker engine; host metrics
//! only" once and still returns the sampler: its passes report
//! [`SampleError::NoData`](crate::sample::SampleError::NoData) (not a
//! failure) until the engine appears. A container stopping mid-pass is
//! skipped silently (its files vanish); its state series follow the `die`
//! event.
//!
//! Leaves out: other engines (containerd, Podman, CRI), per-container
//! filesystem usage (`container_fs_usage_bytes` needs the storage driver),
//! `container_memory_failures_total`, and the spec series other than CPU
//! quota/period and the memory limit.

pub mod cgroup;
pub mod cgroup_v1;
pub mod cgroup_v2;
pub mod devices;
pub mod engine;
pub mod families;
pub mod inventory;
pub mod sampler;
pub mod stats;
pub mod usage;

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Sampler;
use super::paths::SamplePaths;
pub use inventory::{Container, Health, Inventory, State};
pub use sampler::ContainerSampler;

/// `[sample.container]` in `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    /// Sample Docker containers. Default `true`; on a host without Docker
    /// the sampler reports "no data", which costs nothing.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Docker labels exported as `container_label_<key>` on every container
    /// series, the key sanitised as cAdvisor does (every character outside
    /// `[a-zA-Z0-9_]` becomes `_`); values are kept as they are. Keys that
    /// sanitise alike are exported once. Default: the Compose project and
    /// service (`com.docker.compose.project`, `com.docker.compose.service`).
    #[serde(default = "default_label_allowlist")]
    pub label_allowlist: Vec<String>,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            label_allowlist: default_label_allowlist(),
        }
    }
}

fn default_enabled() -> bool {
    true
}

fn default_label_allowlist() -> Vec<String> {
    vec![
        "com.docker.compose.project".to_owned(),
        "com.docker.compose.service".to_owned(),
    ]
}

/// The exported label name of Docker label `key`: `container_label_` + the
/// key with every character outside `[a-zA-Z0-9_]` replaced by `_`
/// (cAdvisor's `sanitizeLabelName`).
pub fn label_name(key: &str) -> String {
    let mut name = String::with_capacity("container_label_".len() + key.len());
    name.push_str("container_label_");
    name.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    name
}

/// Starts the inventory task (bollard: list + events) and returns the
/// sampler that reads cgroup files; `None` when `config.enabled` is false.
///
/// Detects the cgroup hierarchy under `paths.cgroup` and checks the engine
/// at `paths.docker_socket` once (a ping with a 5 s timeout); without one it
/// logs "no Docker engine; host metrics only" at info and the task keeps
/// retrying with backoff. The task is spawned on `tasks` and stops when
/// `shutdown` is cancelled.
pub async fn start(
    paths: &SamplePaths,
    config: &ContainerConfig,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> Option<Box<dyn Sampler>> {
    if !config.enabled {
        return None;
    }
    let root = paths.cgroup.clone();
    let hierarchy = tokio::task::spawn_blocking(move || cgroup::detect(&root))
        .await
        .unwrap_or(cgroup::Hierarchy::None);
    tracing::info!(
        cgroup = hierarchy.as_str(),
        path = %paths.cgroup.display(),
        "container sampler: cgroup hierarchy detected"
    );
    if let Err(error) = engine::ping(&paths.docker_socket).await {
        tracing::info!(
            socket = %paths.docker_socket.display(),
            %error,
            "no Docker engine; host metrics only"
        );
    }
    let inventory = Arc::new(RwLock::new(Inventory::default()));
    let stats = Arc::new(stats::StatsCache::new());
    let task = engine::Engine {
        socket: paths.docker_socket.clone(),
        inventory: inventory.clone(),
        stats: stats.clone(),
        shutdown,
    };
    tasks.spawn(task.run());
    Some(Box::new(ContainerSampler::new(
        paths,
        hierarchy,
        &config.label_allowlist,
        inventory,
        stats,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_sanitised_as_cadvisor() {
        assert_eq!(
            label_name("com.docker.compose.project"),
            "container_label_com_docker_compose_project"
        );
        assert_eq!(label_name("a-b/c d_é9"), "container_label_a_b_c_d__9");
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        let c: ContainerConfig =
            muster_shared::config::parse("", std::path::Path::new("a.toml")).unwrap();
        assert_eq!(c, ContainerConfig::default());
        assert!(c.enabled);
        assert_eq!(c.label_allowlist.len(), 2);
        let err = muster_shared::config::parse::<ContainerConfig>(
            "enabled = false\nlabels = []\n",
            std::path::Path::new("a.toml"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("a.toml:2:1: unknown field `labels`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn disabled_starts_nothing() {
        let tasks = TaskTracker::new();
        let config = ContainerConfig {
            enabled: false,
            ..ContainerConfig::default()
        };
        let sampler = start(
            &SamplePaths::default(),
            &config,
            CancellationToken::new(),
            &tasks,
        )
        .await;
        assert!(sampler.is_none());
        assert!(tasks.is_empty());
    }

    /// Against the real engine: start a container by hand, then
    /// `MUSTER_TEST_CONTAINER=<name> cargo test -p muster-agent --lib
    /// sample::container -- --ignored`. Live host, so shape only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a Docker engine and a running container named by MUSTER_TEST_CONTAINER"]
    async fn real_engine_inventory_lists_a_running_container() {
        let name = std::env::var("MUSTER_TEST_CONTAINER").expect("MUSTER_TEST_CONTAINER");
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let sampler = start(
            &SamplePaths::default(),
            &ContainerConfig::default(),
            shutdown.clone(),
            &tasks,
        )
        .await
        .unwrap();
        let sampler = Arc::new(std::sync::Mutex::new(sampler));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let series = loop {
            let sampler = sampler.clone();
            let wanted = name.clone();
            let found = tokio::task::spawn_blocking(move || {
                let mut out = crate::sample::SeriesTable::new();
                out.begin_round();
                let _ = sampler.lock().unwrap().sample(&mut out);
                out.live()
                    .filter_map(|s| {
                        let f = out.family_of(s.family)?;
                        let at = f.labels.iter().position(|l| &**l == "name")?;
                        (*s.values[at] == *wanted).then(|| f.name.to_string())
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap();
            if found
                .iter()
                .any(|n| n == "container_cpu_usage_seconds_total")
            {
                break found;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "container {name} never sampled; saw {found:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        for family in [
            "container_memory_usage_bytes",
            "container_memory_working_set_bytes",
            "container_threads",
            "container_last_seen",
            "muster_container_state",
        ] {
            assert!(
                series.iter().any(|n| n == family),
                "{family} missing: {series:?}"
            );
        }
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }

    #[tokio::test]
    async fn without_an_engine_the_sampler_reports_no_data() {
        let tmp = tempfile::tempdir().unwrap();
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let mut sampler = start(
            &SamplePaths::under(tmp.path()),
            &ContainerConfig::default(),
            shutdown.clone(),
            &tasks,
        )
        .await
        .unwrap();
        assert_eq!(sampler.name(), "container");
        let mut out = crate::sample::SeriesTable::new();
        out.begin_round();
        let err = sampler.sample(&mut out).unwrap_err();
        assert!(
            matches!(err, crate::sample::SampleError::NoData(_)),
            "{err}"
        );
        shutdown.cancel();
        tasks.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait())
            .await
            .unwrap();
    }
}
