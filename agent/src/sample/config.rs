//! The `[sample]` section of `agent.toml`: how often, which samplers, where
//! they read, and each sampler's own options (owned by its module).

use muster_shared::config::Duration;
use serde::{Deserialize, Serialize};

use super::container::ContainerConfig;
use super::host::HOST_SAMPLERS;
use super::host::diskstats::DiskstatsConfig;
use super::host::filesystem::FilesystemConfig;
use super::host::netdev::NetdevConfig;
use super::paths::SamplePaths;

/// Samplers that are not host samplers.
pub const OTHER_SAMPLERS: &[&str] = &["process", "container"];

/// `[sample]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Time between sampling rounds. Default `"10s"`.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// How long a round waits for a sampler before reporting it failed.
    /// Default `"5s"`; at most `interval`.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// The samplers to run, by node_exporter collector name (`cpu`, `meminfo`,
    /// `filesystem`, ...) plus `process` and `container`. Default: all.
    #[serde(default)]
    pub samplers: Option<Vec<String>>,
    /// Where samplers read (`/proc`, `/sys`, the host's root, cgroups, the
    /// Docker socket).
    #[serde(default)]
    pub paths: SamplePaths,
    /// The `filesystem` sampler's mount point and type filters.
    #[serde(default)]
    pub filesystem: FilesystemConfig,
    /// The `diskstats` sampler's device filter.
    #[serde(default)]
    pub diskstats: DiskstatsConfig,
    /// The `netdev` sampler's interface filter.
    #[serde(default)]
    pub netdev: NetdevConfig,
    /// The container sampler.
    #[serde(default)]
    pub container: ContainerConfig,
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            timeout: default_timeout(),
            samplers: None,
            paths: SamplePaths::default(),
            filesystem: FilesystemConfig::default(),
            diskstats: DiskstatsConfig::default(),
            netdev: NetdevConfig::default(),
            container: ContainerConfig::default(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl SampleConfig {
    /// Whether the sampler `name` runs.
    pub fn enabled(&self, name: &str) -> bool {
        self.samplers
            .as_ref()
            .is_none_or(|list| list.iter().any(|n| n == name))
    }

    /// Every cross-field problem, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.interval.get() < std::time::Duration::from_millis(100) {
            problems.push("sample.interval must be at least 100ms".to_owned());
        }
        if self.timeout.get().is_zero() || self.timeout > self.interval {
            problems
                .push("sample.timeout must be above zero and at most sample.interval".to_owned());
        }
        if let Some(list) = &self.samplers {
            for name in list {
                if !HOST_SAMPLERS.contains(&name.as_str())
                    && !OTHER_SAMPLERS.contains(&name.as_str())
                {
                    problems.push(format!(
                        "sample.samplers: unknown sampler {name:?} (known: {}, {})",
                        HOST_SAMPLERS.join(", "),
                        OTHER_SAMPLERS.join(", ")
                    ));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_sampler_names_are_reported() {
        let c = SampleConfig {
            samplers: Some(vec!["cpu".into(), "gpu".into()]),
            ..SampleConfig::default()
        };
        let problems = c.problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("unknown sampler \"gpu\""),
            "{problems:?}"
        );
        assert!(c.enabled("cpu"));
        assert!(!c.enabled("meminfo"));
        assert!(SampleConfig::default().enabled("meminfo"));
    }

    #[test]
    fn timeout_must_fit_in_the_interval() {
        let c = SampleConfig {
            timeout: Duration::from_secs(20),
            ..SampleConfig::default()
        };
        assert!(c.problems()[0].contains("sample.timeout"));
    }
}
