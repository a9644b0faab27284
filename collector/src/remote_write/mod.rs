//! Prometheus remote write 1.0 from the collector to VictoriaMetrics, Mimir, Thanos or
//! Prometheus (DESIGN.md §4 and §6).
//!
//! Parts, one per file:
//! - `proto.rs`: the protobuf messages.

pub mod proto;
