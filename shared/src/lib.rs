//! What the Muster agent and collector must agree on.
//!
//! - [`protocol`] — wire types of the agent API, versioned by [`protocol::PROTOCOL_VERSION`].
//! - [`codec`] — bincode 2 + zstd frames with a versioned header and hard size limits.
//! - [`tls`] — the fleet CA, certificate issuing, role-checking rustls configs, fingerprints.
//! - [`files`] — atomic, private (0600) writes of keys, certificates and tokens.
//! - [`config`] — TOML loading with `file:line:col` errors and `MUSTER_*` overrides.
//! - [`store`] — the only place that touches sled.
//! - [`telemetry`] — tracing setup and request ids.
//! - [`token`] — API and enrollment token formats and their stored hashes.
//! - [`serve`] — the HTTP(S) listener both binaries use.
//! - [`version`] — the build's semver and git commit.

pub mod codec;
pub mod config;
pub mod files;
pub mod protocol;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod version;
