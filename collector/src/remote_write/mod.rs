//! Prometheus remote write 1.0 from the collector to VictoriaMetrics, Mimir, Thanos or
//! Prometheus (DESIGN.md §4 and §6).
//!
//! Parts, one per file:
//! - `config.rs`: [`RemoteWriteConfig`](config::RemoteWriteConfig), the `[[remote_write]]` keys.
//! - `url.rs`: [`RemoteUrl`], the endpoint URL and its redacted form.
//! - `proto.rs`: the protobuf messages.

pub mod config;
pub mod proto;

mod url;

pub use config::RemoteWriteConfig;
pub use url::{RemoteUrl, redact_url};
