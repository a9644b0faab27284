//! The agent's configuration file (`agent.toml`).
//!
//! Two stages: [`AgentConfig`] mirrors the file; [`AgentSettings`] is what the
//! code below the loader sees, with paths resolved against the file's folder.
//! Every key is documented here; `config/agent.example.toml` shows them all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use muster_shared::config::{self, ConfigError, EnvOverride};
use serde::{Deserialize, Serialize};

use crate::backup::sets::config::BackupSetConfig;
use crate::buffer::BufferConfig;
use crate::probe::config::ProbeConfig;
use crate::sample::config::SampleConfig;

/// `agent.toml` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Address the mTLS API listens on. Default `0.0.0.0:7071`.
    /// Override: `MUSTER_AGENT_LISTEN`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Folder for the agent's store (sample buffer, job records).
    /// Relative paths are resolved against this file's folder.
    /// Override: `MUSTER_AGENT_DATA_DIR`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The agent's certificate files, written by `muster-agent enroll`.
    #[serde(default)]
    pub tls: TlsFiles,
    /// Sampling: interval, samplers, paths and filters.
    #[serde(default)]
    pub sample: SampleConfig,
    /// The sample buffer's bounds (the agent's write-ahead log).
    #[serde(default)]
    pub buffer: BufferConfig,
    /// An optional plain-HTTP `/metrics` listener for a Prometheus that
    /// scrapes agents directly.
    #[serde(default)]
    pub prometheus: PrometheusConfig,
    /// `[[probe]]` tables: the probes this agent runs (and the only ones: the
    /// collector cannot add any).
    #[serde(default, rename = "probe")]
    pub probes: Vec<ProbeConfig>,
    /// `[[backup]]` tables: the backup sets this agent runs (the collector can only name
    /// them).
    #[serde(default, rename = "backup")]
    pub backups: Vec<BackupSetConfig>,
}

/// `[prometheus]`: the plain-HTTP metrics listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Address serving only `GET /metrics` over plain HTTP, e.g.
    /// `"127.0.0.1:9101"`. Off when absent. Env: `MUSTER_AGENT_PROMETHEUS_LISTEN`.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

/// Where the agent's certificate, key and the fleet CA live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The fleet CA certificate (PEM). Default `pki/ca.crt`.
    #[serde(default = "default_ca")]
    pub ca: PathBuf,
    /// This agent's certificate (PEM). Default `pki/agent.crt`.
    #[serde(default = "default_cert")]
    pub cert: PathBuf,
    /// This agent's private key (PEM, mode 0600). Default `pki/agent.key`.
    #[serde(default = "default_key")]
    pub key: PathBuf,
}

impl Default for TlsFiles {
    fn default() -> Self {
        Self {
            ca: default_ca(),
            cert: default_cert(),
            key: default_key(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7071))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_ca() -> PathBuf {
    PathBuf::from("pki/ca.crt")
}
fn default_cert() -> PathBuf {
    PathBuf::from("pki/agent.crt")
}
fn default_key() -> PathBuf {
    PathBuf::from("pki/agent.key")
}

/// Environment variables that replace keys of the file.
pub const ENV_OVERRIDES: &[EnvOverride] = &[
    EnvOverride {
        var: "MUSTER_AGENT_LISTEN",
        key: "listen",
    },
    EnvOverride {
        var: "MUSTER_AGENT_DATA_DIR",
        key: "data_dir",
    },
    EnvOverride {
        var: "MUSTER_AGENT_PROMETHEUS_LISTEN",
        key: "prometheus.listen",
    },
];

/// The runtime form: resolved paths, nothing left to interpret.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// The config file it came from.
    pub config_path: PathBuf,
    /// API listen address.
    pub listen: SocketAddr,
    /// Absolute or cwd-relative data folder.
    pub data_dir: PathBuf,
    /// Fleet CA certificate file.
    pub ca_path: PathBuf,
    /// Agent certificate file.
    pub cert_path: PathBuf,
    /// Agent key file.
    pub key_path: PathBuf,
    /// Sampling settings.
    pub sample: SampleConfig,
    /// Buffer bounds.
    pub buffer: BufferConfig,
    /// The plain-HTTP `/metrics` listener, if any.
    pub prometheus_listen: Option<SocketAddr>,
    /// The probes, validated, with `ca_file`s resolved against the config's folder.
    pub probes: Vec<ProbeConfig>,
    /// The backup sets, validated, with paths resolved.
    pub backups: Vec<BackupSetConfig>,
}

impl AgentSettings {
    /// Loads, overrides from the environment and resolves `path`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `file:line:col` or the variable at fault.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let raw: AgentConfig = config::load(path, ENV_OVERRIDES)?;
        let mut problems = raw.sample.problems();
        problems.extend(crate::probe::config::problems(&raw.probes));
        problems.extend(crate::backup::sets::config::problems(&raw.backups));
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            });
        }
        Ok(Self::resolve(path, raw))
    }

    /// Resolves a parsed config written at `path`.
    pub fn resolve(path: &Path, raw: AgentConfig) -> Self {
        let mut probes = raw.probes;
        for probe in &mut probes {
            probe.resolve_paths(path);
        }
        let data_dir = config::resolve_path(path, &raw.data_dir);
        let mut backups = raw.backups;
        for set in &mut backups {
            set.resolve(path, &data_dir);
        }
        Self {
            config_path: path.to_owned(),
            listen: raw.listen,
            data_dir,
            ca_path: config::resolve_path(path, &raw.tls.ca),
            cert_path: config::resolve_path(path, &raw.tls.cert),
            key_path: config::resolve_path(path, &raw.tls.key),
            sample: raw.sample,
            buffer: raw.buffer,
            prometheus_listen: raw.prometheus.listen,
            probes,
            backups,
        }
    }

    /// The folder of the sled store.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("store")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_against_the_config_folder() {
        let raw: AgentConfig = config::parse("", Path::new("/etc/muster/agent.toml")).unwrap();
        let s = AgentSettings::resolve(Path::new("/etc/muster/agent.toml"), raw);
        assert_eq!(s.listen, "0.0.0.0:7071".parse().unwrap());
        assert_eq!(s.ca_path, Path::new("/etc/muster/pki/ca.crt"));
        assert_eq!(s.store_path(), Path::new("/etc/muster/data/store"));
    }

    #[test]
    fn unknown_key_in_tls_section_is_refused_with_position() {
        let err = config::parse::<AgentConfig>(
            "[tls]\nca = \"a\"\ncerts = \"b\"\n",
            Path::new("agent.toml"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("agent.toml:3:1: unknown field `certs`"),
            "{err}"
        );
    }

    #[test]
    fn bad_listen_address_is_refused_with_position() {
        let err = config::parse::<AgentConfig>("listen = \"localhost\"\n", Path::new("agent.toml"))
            .unwrap_err();
        assert!(err.to_string().starts_with("agent.toml:1:10:"), "{err}");
    }

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.example.toml");
        let s = AgentSettings::load(&path).unwrap();
        assert_eq!(s.listen.port(), 7071);
        assert!(
            s.probes.is_empty(),
            "the example's probes are commented out"
        );
    }

    #[test]
    fn example_probes_are_valid_once_uncommented() {
        // config/agent.example.toml shows [[probe]] tables commented out; uncommented, they
        // must load as they are.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let uncommented: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# [[probe]]"))
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(uncommented.starts_with("[[probe]]"), "{uncommented}");
        let raw: AgentConfig = config::parse(&uncommented, &path).unwrap();
        assert_eq!(raw.probes.len(), 5, "{uncommented}");
        assert_eq!(
            crate::probe::config::problems(&raw.probes),
            Vec::<String>::new()
        );
    }

    #[test]
    fn probe_problems_fail_the_load_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("agent.toml");
        std::fs::write(
            &path,
            "[[probe]]\nname = \"a\"\nkind = \"exec\"\ntarget = \"check\"\n",
        )
        .unwrap();
        let err = AgentSettings::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: invalid config: probe \"a\": target",
                path.display()
            )),
            "{err}"
        );
    }
}
