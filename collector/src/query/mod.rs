//! PromQL evaluation: the subset of Prometheus's query language that dashboards and alert
//! rules for a fleet use, with Prometheus's semantics, over any [`SeriesSource`].
//!
//! [`Engine`] runs instant and range queries within [`Limits`]; [`Query`] is a parsed and
//! checked expression, to parse once and evaluate often (alert rules). Parsing is
//! promql-parser's; anything it accepts that the engine doesn't evaluate is refused up
//! front with an error naming the construct ([`Unsupported`]). [`MemorySource`] holds
//! series in memory for tests and for a collector without a store.
//!
//! The subset, and where it differs from Prometheus, is described in `docs/query.md`.
//!
//! [`SeriesSource`]: crate::series::SeriesSource

mod aggregate;
mod binary;
mod engine;
mod error;
mod eval;
mod functions;
mod memory;
mod notation;
mod parse;
mod range_functions;
mod select;
mod value;

#[cfg(test)]
mod tests;

pub use engine::{Engine, Limits};
pub use error::{QueryError, QueryErrorKind};
pub use memory::{MemorySource, MemorySourceError};
pub use notation::NotationError;
pub use parse::{Query, Unsupported};
pub use select::{STALE_NAN_BITS, is_stale};
pub use value::{InstantSample, Value};

/// How far back an instant selector looks for a series' latest sample: 5 minutes, as
/// Prometheus's default `--query.lookback-delta`.
pub const LOOKBACK_DELTA_MS: i64 = 5 * 60 * 1000;
