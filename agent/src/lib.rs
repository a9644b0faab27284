//! The Muster agent: one small process per host.
//!
//! It samples host and container metrics and runs the probes of its config
//! into a local buffer (its write-ahead log), serves them over mutual TLS to
//! the collector and as Prometheus text, and enrolls itself with a one-time
//! token; backups and deploys arrive as later modules under the same API.
//!
//! - [`config`] — `agent.toml`.
//! - [`sample`] — the samplers and their scheduler.
//! - [`probe`] — http, tcp, exec, docker and tls probes; their conditions.
//! - [`buffer`] — the sled ring buffer of sampling rounds.
//! - [`api`] — the routes the collector calls.
//! - [`run`] — `muster-agent run`, the server's lifecycle.
//! - [`enroll`] — `muster-agent enroll`, key pair + CSR + pinned collector.
//! - [`urgent`] — rounds the collector should pull at once, and their waiters.
//! - [`memory`] — keeping resident memory near the live heap (glibc).

pub mod api;
pub mod backup;
pub mod backup_cli;
pub mod buffer;
pub mod config;
pub mod enroll;
pub mod jobs;
pub mod memory;
pub mod probe;
pub mod run;
pub mod sample;
pub mod urgent;

/// Milliseconds since the Unix epoch, the agent's one clock reading (0 before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
