//! The Muster agent: one small process per host.
//!
//! Today it serves its identity and health over mutual TLS to the collector
//! and enrolls itself with a one-time token; samplers, probes, backups and
//! deploys arrive as later modules under the same API.
//!
//! - [`config`] — `agent.toml`.
//! - [`api`] — the routes the collector calls.
//! - [`run`] — `muster-agent run`, the server's lifecycle.
//! - [`enroll`] — `muster-agent enroll`, key pair + CSR + pinned collector.

pub mod api;
pub mod buffer;
pub mod config;
pub mod enroll;
pub mod run;
pub mod sample;
