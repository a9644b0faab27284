//! The buffer as the scheduler's [`RoundSink`]: rounds go to the agent's
//! write-ahead log, and the buffer's size is reported with each round.

use std::sync::Arc;

use super::scheduler::RoundSink;
use super::series::{FamilySpec, Kind, SeriesTable};
use crate::buffer::Buffer;

const ROUNDS: FamilySpec<'static> = FamilySpec {
    name: "muster_agent_buffer_rounds",
    help: "Sampling rounds held in the buffer.",
    kind: Kind::Gauge,
    labels: &[],
};
const BYTES: FamilySpec<'static> = FamilySpec {
    name: "muster_agent_buffer_bytes",
    help: "Approximate bytes of rounds held in the buffer.",
    kind: Kind::Gauge,
    labels: &[],
};
const EVICTED: FamilySpec<'static> = FamilySpec {
    name: "muster_agent_buffer_evicted_rounds_total",
    help: "Rounds dropped from the buffer by its age or size bound.",
    kind: Kind::Counter,
    labels: &[],
};
const LAST_SEQ: FamilySpec<'static> = FamilySpec {
    name: "muster_agent_buffer_last_sequence",
    help: "Sequence number of the newest buffered round.",
    kind: Kind::Gauge,
    labels: &[],
};

/// Hands rounds to the [`Buffer`].
#[derive(Debug, Clone)]
pub struct BufferSink(pub Arc<Buffer>);

impl RoundSink for BufferSink {
    fn intern(&self, metric: &str, labels: &[(&str, &str)]) -> u32 {
        self.0.intern(metric, labels)
    }

    fn append(&self, timestamp_unix_ms: u64, values: &[(u32, f64)]) -> Result<u64, String> {
        self.0
            .append(timestamp_unix_ms, values)
            .map_err(|err| err.to_string())
    }

    fn report(&self, out: &mut SeriesTable) {
        let stats = self.0.stats();
        out.set_spec(&ROUNDS, &[], stats.rounds as f64);
        out.set_spec(&BYTES, &[], stats.bytes as f64);
        out.set_spec(&EVICTED, &[], stats.evicted_rounds as f64);
        out.set_spec(&LAST_SEQ, &[], stats.last_seq as f64);
    }
}
