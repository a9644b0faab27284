//! The collector's configuration file (`collector.toml`).
//!
//! Two stages: [`CollectorConfig`] mirrors the file; [`CollectorSettings`]
//! holds resolved paths and checked values, and is all the code below the
//! loader sees. Every key is documented here; `config/collector.example.toml`
//! shows them all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use muster_shared::config::{self, ConfigError, Duration, EnvOverride};
use serde::{Deserialize, Serialize};

/// `collector.toml` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Folder for the store and the PKI. Relative paths are resolved against
    /// this file's folder. Override: `MUSTER_COLLECTOR_DATA_DIR`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The web API and dashboard listener.
    #[serde(default)]
    pub api: ApiConfig,
    /// Pulling from agents.
    #[serde(default)]
    pub scrape: ScrapeConfig,
    /// Certificate files; defaults live under `<data_dir>/pki`.
    #[serde(default)]
    pub pki: PkiConfig,
    /// Endpoints to remote-write every stored sample to (`[[remote_write]]`, any number).
    #[serde(default)]
    pub remote_write: Vec<crate::remote_write::config::RemoteWriteConfig>,
    /// The time-series store: retention, rollups, chunk windows.
    #[serde(default)]
    pub storage: crate::tsdb::config::TsdbConfig,
    /// The store's periodic work: flushes.
    #[serde(default)]
    pub maintenance: MaintenanceConfig,
    /// Alert rules, routing, receivers and the notification outbox.
    #[serde(default)]
    pub alerting: crate::alert::config::AlertingConfig,
    /// The backup view: agent calls and the BackupLog.
    #[serde(default)]
    pub backup: BackupConfig,
}

/// `[backup]`: how the collector reaches agents' backup APIs and how much history it keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// BackupLog entries kept per host and backup set (the oldest go first). Default 500,
    /// at least 1.
    #[serde(default = "default_backup_history")]
    pub history_per_set: usize,
    /// Limit of one call to an agent's backup or job API. Default `"30s"`.
    #[serde(default = "default_backup_timeout")]
    pub timeout: Duration,
    /// How often every agent's backup sets are read, so their runs reach the BackupLog.
    /// Default `"10m"`, at least `"1s"`.
    #[serde(default = "default_backup_poll")]
    pub poll_interval: Duration,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            history_per_set: default_backup_history(),
            timeout: default_backup_timeout(),
            poll_interval: default_backup_poll(),
        }
    }
}

fn default_backup_history() -> usize {
    crate::backup::log::DEFAULT_KEEP_PER_SET
}
fn default_backup_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_backup_poll() -> Duration {
    Duration::from_secs(600)
}

/// The API listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address. Default `127.0.0.1:7070`. Override: `MUSTER_COLLECTOR_LISTEN`.
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    /// Serve TLS with the collector's certificate. Plain HTTP (`false`) is
    /// allowed only on a loopback address. Default `true`.
    #[serde(default = "default_true")]
    pub tls: bool,
    /// Largest request body accepted, in bytes. Default 1 MiB.
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            tls: true,
            max_body_bytes: default_body_limit(),
        }
    }
}

/// The scrape loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// How often each agent is pulled. Default `"10s"`.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// How long one pull may take, connection included. Default `"5s"`;
    /// must not exceed `interval`.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Pulls in flight at once across all agents. Default 64.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            timeout: default_timeout(),
            concurrency: default_concurrency(),
        }
    }
}

/// The store's periodic work, run by the server beside the scrape loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// How often closed chunks are written to disk, after which the agents'
    /// durable cursors move; also how often a store that failed to write is
    /// tried again. Default `"30s"`, at least `"100ms"`.
    #[serde(default = "default_flush_interval")]
    pub flush_interval: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            flush_interval: default_flush_interval(),
        }
    }
}

/// Where the fleet CA and the collector's own certificate live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiConfig {
    /// Fleet CA certificate. Default `<data_dir>/pki/ca.crt`.
    pub ca_cert: Option<PathBuf>,
    /// Fleet CA private key, needed to sign enrollments. Default `<data_dir>/pki/ca.key`.
    pub ca_key: Option<PathBuf>,
    /// The collector's certificate (API server and client to agents).
    /// Default `<data_dir>/pki/collector.crt`.
    pub cert: Option<PathBuf>,
    /// The collector's private key. Default `<data_dir>/pki/collector.key`.
    pub key: Option<PathBuf>,
    /// Lifetime of agent certificates signed at enrollment. Default `"365d"`.
    #[serde(default = "default_agent_validity")]
    pub agent_cert_validity: Duration,
}

impl Default for PkiConfig {
    fn default() -> Self {
        Self {
            ca_cert: None,
            ca_key: None,
            cert: None,
            key: None,
            agent_cert_validity: default_agent_validity(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7070))
}
fn default_true() -> bool {
    true
}
fn default_body_limit() -> usize {
    1 << 20
}
fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_concurrency() -> usize {
    64
}
fn default_flush_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_agent_validity() -> Duration {
    Duration::from_secs(365 * 24 * 3600)
}

/// Environment variables that replace keys of the file.
pub const ENV_OVERRIDES: &[EnvOverride] = &[
    EnvOverride {
        var: "MUSTER_COLLECTOR_LISTEN",
        key: "api.listen",
    },
    EnvOverride {
        var: "MUSTER_COLLECTOR_DATA_DIR",
        key: "data_dir",
    },
];

/// The runtime form.
#[derive(Debug, Clone)]
pub struct CollectorSettings {
    /// The config file it came from (None for settings built in code).
    pub config_path: Option<PathBuf>,
    /// Data folder.
    pub data_dir: PathBuf,
    /// API listen address.
    pub listen: SocketAddr,
    /// Serve the API over TLS.
    pub api_tls: bool,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Pull interval.
    pub scrape_interval: std::time::Duration,
    /// Pull timeout.
    pub scrape_timeout: std::time::Duration,
    /// Pulls in flight at most.
    pub scrape_concurrency: usize,
    /// Certificate paths.
    pub pki: PkiPaths,
    /// Agent certificate lifetime.
    pub agent_cert_validity: std::time::Duration,
    /// The time-series store's settings.
    pub storage: crate::tsdb::TsdbOptions,
    /// How often the store is flushed (and a failing one tried again).
    pub flush_interval: std::time::Duration,
    /// Remote write endpoints, relative paths resolved against the config's folder.
    pub remote_write: Vec<crate::remote_write::config::RemoteWriteConfig>,
    /// `[alerting]`, receivers' file paths resolved against the config's folder (rule
    /// file globs are resolved when loaded, against `config_path`).
    pub alerting: crate::alert::config::AlertingConfig,
    /// BackupLog entries kept per host and set.
    pub backup_history_per_set: usize,
    /// Limit of one call to an agent's backup or job API.
    pub backup_timeout: std::time::Duration,
    /// How often every agent's backup sets are read for the BackupLog.
    pub backup_poll_interval: std::time::Duration,
}

/// Resolved certificate paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    /// Fleet CA certificate.
    pub ca_cert: PathBuf,
    /// Fleet CA key.
    pub ca_key: PathBuf,
    /// Collector certificate.
    pub cert: PathBuf,
    /// Collector key.
    pub key: PathBuf,
}

impl PkiPaths {
    /// The default layout under `data_dir/pki`.
    pub fn under(data_dir: &Path) -> Self {
        let pki = data_dir.join("pki");
        Self {
            ca_cert: pki.join("ca.crt"),
            ca_key: pki.join("ca.key"),
            cert: pki.join("collector.crt"),
            key: pki.join("collector.key"),
        }
    }
}

impl CollectorSettings {
    /// Loads, overrides from the environment, resolves and validates `path`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `file:line:col`, the variable at fault, or
    /// every cross-field problem.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let raw: CollectorConfig = config::load(path, ENV_OVERRIDES)?;
        Self::resolve(path, raw)
    }

    /// Resolves and validates a parsed config written at `path`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every problem.
    pub fn resolve(path: &Path, raw: CollectorConfig) -> Result<Self, ConfigError> {
        let data_dir = config::resolve_path(path, &raw.data_dir);
        let defaults = PkiPaths::under(&data_dir);
        let pick = |value: &Option<PathBuf>, default: PathBuf| {
            value
                .as_deref()
                .map_or(default, |v| config::resolve_path(path, v))
        };
        let settings = Self {
            config_path: Some(path.to_owned()),
            pki: PkiPaths {
                ca_cert: pick(&raw.pki.ca_cert, defaults.ca_cert),
                ca_key: pick(&raw.pki.ca_key, defaults.ca_key),
                cert: pick(&raw.pki.cert, defaults.cert),
                key: pick(&raw.pki.key, defaults.key),
            },
            data_dir,
            listen: raw.api.listen,
            api_tls: raw.api.tls,
            max_body_bytes: raw.api.max_body_bytes,
            scrape_interval: raw.scrape.interval.get(),
            scrape_timeout: raw.scrape.timeout.get(),
            scrape_concurrency: raw.scrape.concurrency,
            agent_cert_validity: raw.pki.agent_cert_validity.get(),
            storage: crate::tsdb::TsdbOptions::default(),
            flush_interval: raw.maintenance.flush_interval.get(),
            backup_history_per_set: raw.backup.history_per_set,
            backup_timeout: raw.backup.timeout.get(),
            backup_poll_interval: raw.backup.poll_interval.get(),
            remote_write: raw
                .remote_write
                .iter()
                .map(|c| c.clone().with_paths_resolved(path))
                .collect(),
            alerting: {
                let mut alerting = raw.alerting.clone();
                alerting.receivers = alerting
                    .receivers
                    .into_iter()
                    .map(|r| r.with_paths_resolved(path))
                    .collect();
                alerting.adapt_to_pull_interval(raw.scrape.interval.get());
                alerting
            },
        };
        let mut settings = settings;
        let mut problems = settings.problems();
        match raw.storage.resolve() {
            Ok(storage) => settings.storage = storage,
            Err(storage) => problems.extend(storage),
        }
        problems.extend(crate::remote_write::config::problems(&raw.remote_write));
        problems.extend(settings.alerting.problems(settings.scrape_interval));
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// Every cross-field rule that fails, each naming its keys.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.api_tls && !self.listen.ip().is_loopback() {
            problems.push(format!(
                "api.tls = false is allowed only on a loopback address, not {}",
                self.listen
            ));
        }
        if self.scrape_interval < std::time::Duration::from_millis(100) {
            problems.push("scrape.interval must be at least 100ms".to_owned());
        }
        if self.scrape_timeout.is_zero() || self.scrape_timeout > self.scrape_interval {
            problems
                .push("scrape.timeout must be above zero and at most scrape.interval".to_owned());
        }
        if self.flush_interval < std::time::Duration::from_millis(100) {
            problems.push("maintenance.flush_interval must be at least 100ms".to_owned());
        }
        if self.scrape_concurrency == 0 {
            problems.push("scrape.concurrency must be at least 1".to_owned());
        }
        if self.max_body_bytes < 1024 {
            problems.push("api.max_body_bytes must be at least 1024".to_owned());
        }
        if self.backup_history_per_set == 0 {
            problems.push("backup.history_per_set must be at least 1".to_owned());
        }
        if self.backup_timeout.is_zero() {
            problems.push("backup.timeout must be above zero".to_owned());
        }
        if self.backup_poll_interval < std::time::Duration::from_secs(1) {
            problems.push("backup.poll_interval must be at least 1s".to_owned());
        }
        if self.agent_cert_validity < std::time::Duration::from_secs(3600) {
            problems.push("pki.agent_cert_validity must be at least 1h".to_owned());
        }
        problems
    }

    /// The sled store's folder.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// The time-series store's segment files: `<data_dir>/tsdb`.
    pub fn tsdb_path(&self) -> PathBuf {
        self.data_dir.join("tsdb")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<CollectorSettings, ConfigError> {
        let path = Path::new("/srv/muster/collector.toml");
        CollectorSettings::resolve(path, config::parse(text, path)?)
    }

    #[test]
    fn defaults_are_loopback_tls_under_data_dir() {
        let s = resolve("").unwrap();
        assert_eq!(s.listen, "127.0.0.1:7070".parse().unwrap());
        assert!(s.api_tls);
        assert_eq!(s.pki.ca_key, Path::new("/srv/muster/data/pki/ca.key"));
        assert_eq!(s.scrape_interval, std::time::Duration::from_secs(10));
        assert_eq!(s.flush_interval, std::time::Duration::from_secs(30));
    }

    #[test]
    fn flush_interval_is_configurable_and_bounded() {
        let s = resolve("[maintenance]\nflush_interval = \"2s\"\n").unwrap();
        assert_eq!(s.flush_interval, std::time::Duration::from_secs(2));
        let err = resolve("[maintenance]\nflush_interval = \"10ms\"\n").unwrap_err();
        assert!(
            err.to_string().contains("maintenance.flush_interval"),
            "{err}"
        );
    }

    #[test]
    fn plain_http_off_loopback_is_refused() {
        let err = resolve("[api]\nlisten = \"0.0.0.0:7070\"\ntls = false\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("api.tls = false is allowed only on a loopback address"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let err = resolve("[scrape]\ninterval = \"1s\"\ntimeout = \"2s\"\nconcurrency = 0\n")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("scrape.timeout"), "{text}");
        assert!(text.contains("scrape.concurrency"), "{text}");
    }

    #[test]
    fn wrong_type_names_file_line_col() {
        let err = resolve("[scrape]\ninterval = 10\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/srv/muster/collector.toml:2:12:"),
            "{err}"
        );
    }

    #[test]
    fn storage_problems_are_reported_with_the_rest() {
        let err = resolve("[storage]\nretention = \"1h\"\n").unwrap_err();
        assert!(err.to_string().contains("storage.retention"), "{err}");
    }

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/collector.example.toml");
        let s = CollectorSettings::load(&path).unwrap();
        assert_eq!(s.listen.port(), 7070);
    }
}
