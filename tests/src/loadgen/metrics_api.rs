//! Plain-HTTP `GET /metrics` for each simulated host, in the Prometheus text format 0.0.4:
//! the same series as the agent API, with the values of the newest round, as node_exporter
//! and cAdvisor would answer a scrape at that moment.
//!
//! Each host's line prefixes (`name{labels} `) and family headers are rendered once at
//! start, so a scrape formats only the ~500 values.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::catalogue::HostSeries;
use super::{Fleet, unix_ms};

/// The Prometheus text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One host's exposition, pre-rendered but for the values.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// Series `i`'s text before its value: its family's HELP and TYPE lines when it is the
    /// family's first series, then `name{labels} `.
    prefixes: Vec<String>,
    /// Bytes of all prefixes: a capacity hint for a scrape's body.
    len: usize,
}

impl Exposition {
    /// Pre-renders `series`.
    pub fn new(series: &HostSeries) -> Self {
        let mut prefixes = Vec::with_capacity(series.defs.len());
        for family in &series.families {
            for i in family.start..family.end {
                let mut text = String::new();
                if i == family.start {
                    let _ = write!(
                        text,
                        "# HELP {0} Simulated by muster-loadgen.\n# TYPE {0} {1}\n",
                        family.name, family.kind
                    );
                }
                text.push_str(family.name);
                let labels = &series.defs[i].labels;
                if !labels.is_empty() {
                    text.push('{');
                    for (n, label) in labels.iter().enumerate() {
                        if n > 0 {
                            text.push(',');
                        }
                        let _ = write!(text, "{}=\"{}\"", label.name, escape(&label.value));
                    }
                    text.push('}');
                }
                text.push(' ');
                prefixes.push(text);
            }
        }
        let len = prefixes.iter().map(String::len).sum();
        Self { prefixes, len }
    }

    /// The text of `series` at `round`.
    pub fn render(&self, series: &HostSeries, round: i64) -> String {
        let mut body = String::with_capacity(self.len + 24 * self.prefixes.len());
        for (i, prefix) in self.prefixes.iter().enumerate() {
            body.push_str(prefix);
            let _ = writeln!(body, "{}", series.value(i, round));
        }
        body
    }
}

/// A label value escaped for the text format (backslash, double quote, line feed).
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

#[derive(Debug, Clone)]
struct HostState {
    fleet: Arc<Fleet>,
    exposition: Arc<Exposition>,
    host: usize,
}

/// The router of host `host`: `/metrics` only.
pub fn router(fleet: Arc<Fleet>, host: usize) -> Router {
    let exposition = Arc::new(Exposition::new(&fleet.hosts[host]));
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(HostState {
            fleet,
            exposition,
            host,
        })
}

async fn metrics(State(state): State<HostState>) -> Response {
    let Some(round) = state.fleet.clock.newest_round(unix_ms()) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the clock has not started\n",
        )
            .into_response();
    };
    state.fleet.served.scrapes.fetch_add(1, Ordering::Relaxed);
    let body = state
        .exposition
        .render(&state.fleet.hosts[state.host], round);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_once_under_its_family() {
        let host = HostSeries::new(3);
        let text = Exposition::new(&host).render(&host, 7);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples.len(), host.defs.len());
        assert_eq!(
            text.lines().filter(|l| l.starts_with("# TYPE ")).count(),
            host.families.len()
        );
        assert!(
            text.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} "),
            "{}",
            &text[..300]
        );
        let value = host.value(0, 7);
        assert!(samples[0].ends_with(&format!(" {value}")), "{}", samples[0]);
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("plain"), "plain");
    }
}
