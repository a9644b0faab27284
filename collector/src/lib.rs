//! The Muster collector: the centre of a fleet.
//!
//! It enrolls agents, pulls their sample buffers over mutual TLS into its own
//! time-series store, evaluates alert rules and delivers notifications, and
//! serves a token-protected API (Prometheus-compatible queries, `/federate`,
//! alerts, silences and backups) with its own metrics. Deploys arrive as a
//! later module beside these.
//!
//! - [`alert`] — rules, alerts, routing, silences, receivers and the outbox.
//! - [`alert_cli`] — `alerts` and `silence` commands, through a running collector's API.
//! - [`config`] — `collector.toml`.
//! - [`pki`] — the fleet CA and the collector's certificate on disk.
//! - [`tokens`] — API tokens with roles, one-time enrollment tokens.
//! - [`hosts`] — enrolled hosts and their up/down state.
//! - [`enroll`] — signing an agent's CSR against a one-time token.
//! - [`scrape`] — the pull loop.
//! - [`series`] — labels, samples and the read trait the store offers its readers.
//! - [`query`] — PromQL evaluation (instant and range queries) over a series source.
//! - [`remote_write`] — Prometheus remote write 1.0 to VictoriaMetrics, Mimir, Thanos, Prometheus.
//! - [`federate`] — `/federate`: the latest samples as Prometheus text.
//! - [`tsdb`] — the time-series store: compressed chunks and series index in sled.
//! - [`api`] — the HTTP API.
//! - [`api_client`] — the CLI's client for a running collector's API.
//! - [`audit`] — the append-only audit log of changes made through the API.
//! - [`backup`] — agents' backup sets, backup and restore jobs, the BackupLog.
//! - [`backup_cli`] — `backup list|snapshots|run|restore|history`, through the API.
//! - [`metrics`] — the collector's own Prometheus metrics.
//! - [`maintain`] — the store's flushes and compactions, and probing a store that fails.
//! - [`server`] — `muster-collector serve`, wiring the above together.
//! - [`store_health`] — whether the store takes writes; scraping pauses while it does not.
//! - [`commands`] — `ca init`, `token create`.
//! - [`dev`] — `muster-collector dev`.

pub mod alert;
pub mod alert_cli;
pub mod api;
pub mod api_client;
pub mod audit;
pub mod backup;
pub mod backup_cli;
pub mod commands;
pub mod config;
pub mod dev;
pub mod enroll;
pub mod federate;
pub mod hosts;
pub mod maintain;
pub mod metrics;
pub mod pki;
pub mod query;
pub mod remote_write;
pub mod scrape;
pub mod series;
pub mod server;
pub mod store_health;
pub mod tokens;
pub mod tsdb;

/// Milliseconds since the Unix epoch, the collector's one clock reading.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
