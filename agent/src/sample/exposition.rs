//! The Prometheus text format (0.0.4) of the latest round, rendered once per
//! round and served as-is by every `/metrics` request.
//!
//! Rendering per round rather than per request makes a scrape cost a copy of
//! a reference-counted buffer, whatever the number of scrapers.

use std::fmt::Write as _;
use std::sync::RwLock;

use bytes::Bytes;

use super::series::SeriesTable;

/// The content type of the text format, exactly as Prometheus expects it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The latest rendered exposition, shared between the scheduler (writer) and
/// the `/metrics` handlers (readers).
#[derive(Debug, Default)]
pub struct Exposition {
    text: RwLock<Bytes>,
}

impl Exposition {
    /// An empty exposition (before the first round).
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the served text.
    pub fn publish(&self, text: Bytes) {
        *self
            .text
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = text;
    }

    /// The latest text; cheap (a reference count).
    pub fn latest(&self) -> Bytes {
        self.text
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Renders the live series of `tables` into `out` (cleared first). Families
/// are written in registration order, each as one group with its `# HELP`
/// and `# TYPE` lines; a family with no live series is left out.
pub fn render(tables: &[&SeriesTable], out: &mut String) {
    out.clear();
    // Series indices grouped by family, reused per table.
    let mut by_family: Vec<Vec<&super::series::Series>> = Vec::new();
    for table in tables {
        by_family.clear();
        by_family.resize_with(table.families().len(), Vec::new);
        for series in table.live() {
            if let Some(group) = by_family.get_mut(series.family.index()) {
                group.push(series);
            }
        }
        for (family, group) in table.families().iter().zip(&by_family) {
            if group.is_empty() {
                continue;
            }
            out.push_str("# HELP ");
            out.push_str(&family.name);
            out.push(' ');
            escape_help(&family.help, out);
            out.push_str("\n# TYPE ");
            out.push_str(&family.name);
            out.push(' ');
            out.push_str(family.kind.as_str());
            out.push('\n');
            for series in group {
                out.push_str(&family.name);
                if !family.labels.is_empty() {
                    out.push('{');
                    for (i, (name, value)) in
                        family.labels.iter().zip(series.values.iter()).enumerate()
                    {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(name);
                        out.push_str("=\"");
                        escape_label_value(value, out);
                        out.push('"');
                    }
                    out.push('}');
                }
                out.push(' ');
                push_value(series.value, out);
                out.push('\n');
            }
        }
    }
}

/// Writes a sample value as the text format wants it.
fn push_value(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        // Whole numbers without a decimal point, as Prometheus clients print them.
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

fn escape_help(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_label_value(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::series::{FamilySpec, Kind};

    const LOAD: FamilySpec<'static> = FamilySpec {
        name: "node_load1",
        help: "1m load average.",
        kind: Kind::Gauge,
        labels: &[],
    };
    const FS: FamilySpec<'static> = FamilySpec {
        name: "node_filesystem_avail_bytes",
        help: "Filesystem space available to non-root users in bytes.",
        kind: Kind::Gauge,
        labels: &["device", "mountpoint"],
    };

    #[test]
    fn renders_groups_with_help_type_and_escaped_labels() {
        let mut t = SeriesTable::new();
        t.begin_round();
        t.set_spec(&FS, &["/dev/sda1", "/"], 1024.0);
        t.set_spec(&LOAD, &[], 0.25);
        t.set_spec(&FS, &["odd\"dev\\", "/mnt/a\nb"], 2.5e20);
        let mut out = String::new();
        render(&[&t], &mut out);
        assert_eq!(
            out,
            "# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.\n\
             # TYPE node_filesystem_avail_bytes gauge\n\
             node_filesystem_avail_bytes{device=\"/dev/sda1\",mountpoint=\"/\"} 1024\n\
             node_filesystem_avail_bytes{device=\"odd\\\"dev\\\\\",mountpoint=\"/mnt/a\\nb\"} 250000000000000000000\n\
             # HELP node_load1 1m load average.\n\
             # TYPE node_load1 gauge\n\
             node_load1 0.25\n"
        );
    }

    #[test]
    fn special_values_use_prometheus_spelling() {
        let mut out = String::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -3.0, 0.5] {
            push_value(v, &mut out);
            out.push(' ');
        }
        assert_eq!(out, "NaN +Inf -Inf -3 0.5 ");
    }

    #[test]
    fn families_without_live_series_are_left_out() {
        let mut t = SeriesTable::new();
        t.begin_round();
        t.set_spec(&LOAD, &[], 1.0);
        t.begin_round();
        let mut out = String::new();
        render(&[&t], &mut out);
        assert!(out.is_empty(), "{out}");
    }
}
