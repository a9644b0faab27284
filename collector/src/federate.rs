//! `/federate`: the latest sample of each selected series in the Prometheus text format,
//! so a Prometheus can pull the fleet's series from the collector as it pulls from another
//! Prometheus (`honor_labels: true`, `metrics_path: /federate`, `params: {match[]: [...]}`).
//!
//! As in Prometheus's own `/federate`, every sample carries its timestamp, series are
//! grouped by metric name under a `# TYPE <name> untyped` line (the store keeps no type or
//! help text, and Prometheus omits HELP here too), and a series is included when its latest
//! sample is within the lookback window (5 minutes) of now.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::series::{Labels, METRIC_NAME, Sample};

/// The content type of the answer (text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `series` (each with its latest sample) as text format 0.0.4, grouped by metric
/// name in name order; series without a metric name are skipped (they cannot be written).
pub fn render(series: &BTreeMap<Labels, Sample>) -> String {
    let mut by_name: BTreeMap<&str, Vec<(&Labels, &Sample)>> = BTreeMap::new();
    for (labels, sample) in series {
        if let Some(name) = labels.metric_name() {
            by_name.entry(name).or_default().push((labels, sample));
        }
    }
    let mut out = String::with_capacity(series.len() * 96);
    for (name, members) in by_name {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# TYPE {name} untyped");
        for (labels, sample) in members {
            write_series(&mut out, name, labels);
            out.push(' ');
            write_value(&mut out, sample.value);
            let _ = writeln!(out, " {}", sample.timestamp_ms);
        }
    }
    out
}

fn write_series(out: &mut String, name: &str, labels: &Labels) {
    out.push_str(name);
    let mut first = true;
    for label in labels.iter().filter(|l| l.name != METRIC_NAME) {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(&label.name);
        out.push_str("=\"");
        for c in label.value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

/// A float as the text format spells it: `NaN`, `+Inf`, `-Inf`, or the shortest decimal
/// that reads back to the same bits (exponent form for very large or small magnitudes).
fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(timestamp_ms: i64, value: f64) -> Sample {
        Sample {
            timestamp_ms,
            value,
        }
    }

    #[test]
    fn groups_by_name_with_type_lines_and_timestamps() {
        let mut series = BTreeMap::new();
        series.insert(
            Labels::from_pairs([(METRIC_NAME, "up"), ("host", "b")]),
            sample(2_000, 1.0),
        );
        series.insert(
            Labels::from_pairs([(METRIC_NAME, "node_load1"), ("host", "a")]),
            sample(1_000, 0.25),
        );
        series.insert(
            Labels::from_pairs([(METRIC_NAME, "up"), ("host", "a")]),
            sample(1_500, 0.0),
        );
        assert_eq!(
            render(&series),
            "# TYPE node_load1 untyped\nnode_load1{host=\"a\"} 0.25 1000\n\
             # TYPE up untyped\nup{host=\"a\"} 0.0 1500\nup{host=\"b\"} 1.0 2000\n"
        );
    }

    #[test]
    fn escapes_values_and_spells_special_floats() {
        let mut series = BTreeMap::new();
        series.insert(
            Labels::from_pairs([(METRIC_NAME, "m"), ("path", "C:\\x \"y\"\nz")]),
            sample(1, f64::NAN),
        );
        series.insert(
            Labels::from_pairs([(METRIC_NAME, "p")]),
            sample(2, f64::INFINITY),
        );
        series.insert(Labels::from_pairs([(METRIC_NAME, "q")]), sample(3, -1e-9));
        let text = render(&series);
        assert!(
            text.contains("m{path=\"C:\\\\x \\\"y\\\"\\nz\"} NaN 1\n"),
            "{text}"
        );
        assert!(text.contains("p +Inf 2\n"), "{text}");
        assert!(text.contains("q -1e-9 3\n"), "{text}");
    }

    #[test]
    fn skips_series_without_a_name() {
        let mut series = BTreeMap::new();
        series.insert(Labels::from_pairs([("host", "a")]), sample(1, 1.0));
        assert_eq!(render(&series), "");
    }
}
