//! Host 0's backlog as OpenMetrics text with timestamps, for `promtool tsdb
//! create-blocks-from openmetrics`: the same CPU series, values and timestamps the agent API
//! serves the collector as backlog, labelled as Prometheus labels what it scrapes from host
//! 0 (`instance`, `job` and the target's `host` label), so the backfilled blocks and the
//! live scrapes are one series per CPU and mode.
//!
//! Series after series, each in time order, one family (OpenMetrics wants a family's
//! samples together), `# EOF` at the end.

use std::io::{self, Write};

use super::Fleet;
use super::catalogue::CPU_SERIES;

/// Writes host 0's backlog rounds (those before round 0, on a clock started at `start_ms`)
/// with `target_labels` added to each series; returns the number of samples written.
///
/// # Errors
/// Those of `out`.
pub fn write_backlog(
    out: &mut impl Write,
    fleet: &Fleet,
    start_ms: u64,
    target_labels: &[(&str, &str)],
) -> io::Result<u64> {
    let Some(host) = fleet.hosts.first() else {
        writeln!(out, "# EOF")?;
        return Ok(0);
    };
    let backlog = i64::try_from(fleet.backlog(0)).unwrap_or(i64::MAX);
    let mut samples = 0;
    writeln!(
        out,
        "# HELP node_cpu_seconds Seconds the CPUs spent in each mode."
    )?;
    writeln!(out, "# TYPE node_cpu_seconds counter")?;
    for (i, def) in host.defs[..CPU_SERIES.min(host.defs.len())]
        .iter()
        .enumerate()
    {
        let mut labels: Vec<(&str, &str)> = def
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .chain(target_labels.iter().copied())
            .collect();
        labels.sort_unstable();
        let labels = labels
            .iter()
            .map(|(n, v)| format!("{n}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(",");
        for round in -backlog..0 {
            let ms = fleet.timestamp_ms(0, start_ms, round);
            writeln!(
                out,
                "{}{{{labels}}} {} {}.{:03}",
                def.metric,
                host.value(i, round),
                ms / 1000,
                ms % 1000
            )?;
            samples += 1;
        }
    }
    writeln!(out, "# EOF")?;
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_backlog_with_target_labels_and_seconds() {
        let fleet = Fleet::new(1, 2, 0);
        let mut out = Vec::new();
        let n = write_backlog(&mut out, &fleet, 1_000_000, &[("job", "loadgen")]).unwrap();
        assert_eq!(n, 2 * CPU_SERIES as u64);
        let text = String::from_utf8(out).unwrap();
        let first = text.lines().nth(2).unwrap();
        assert!(
            first.starts_with("node_cpu_seconds_total{cpu=\"0\",job=\"loadgen\",mode=\"idle\"} "),
            "{first}"
        );
        assert!(
            first.ends_with(" 980.000")
                || first.ends_with(" 980.001")
                || first.ends_with(" 980.002")
                || first.ends_with(" 980.003"),
            "{first}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
