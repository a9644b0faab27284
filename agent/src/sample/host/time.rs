//! The `time` sampler: the host's wall clock, so a scraper can see clock
//! skew (`node_time_seconds - timestamp(node_time_seconds)`).
//!
//! Leaves out node_exporter's time zone offset and clocksource series.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::sample::series::{FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};

const TIME: FamilySpec<'static> = FamilySpec {
    name: "node_time_seconds",
    help: "System time in seconds since epoch (1970).",
    kind: Kind::Gauge,
    labels: &[],
};

/// Samples the wall clock.
#[derive(Debug, Default)]
pub struct TimeSampler;

impl Sampler for TimeSampler {
    fn name(&self) -> &'static str {
        "time"
    }

    /// # Errors
    /// [`SampleError::Other`] when the clock reads before 1970.
    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| SampleError::Other(format!("system clock before 1970: {e}")))?;
        out.set_spec(&TIME, &[], now.as_secs_f64());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::host::testkit::{live_names, round};

    #[test]
    fn live_clock_is_after_2020() {
        let mut table = SeriesTable::new();
        round(&mut TimeSampler, &mut table).unwrap();
        assert_eq!(live_names(&table), ["node_time_seconds"]);
        assert!(table.live().all(|s| s.value > 1_577_836_800.0));
    }
}
