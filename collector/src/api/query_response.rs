//! Answers of the Prometheus-compatible query API, in Prometheus's exact JSON shape, so
//! Grafana's Prometheus data source and other Prometheus clients read them unchanged.
//!
//! Success: `{"status":"success","data":...}`; a sample is `[<unix seconds>, "<value>"]`
//! with the time written as Prometheus writes it (`1700000000.1` as `1700000000.100`) and
//! the value as Go's shortest decimal (`NaN`, `+Inf`, `-Inf` spelled out). Failure:
//! `{"status":"error","errorType":"...","error":"..."}`. These endpoints answer in this
//! shape rather than the rest of the API's `{"error": ...}`, because the clients that call
//! them only understand this one. The JSON is written directly: a range query can return
//! millions of points, and no intermediate tree is built for them.

use std::fmt::Write as _;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::query::{QueryError, QueryErrorKind, Value};
use crate::series::{Labels, Sample, SeriesSamples};

/// Every way a query API request fails, by Prometheus's `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// 400 `bad_data`: a parameter or the query is wrong.
    #[error("{0}")]
    BadData(String),
    /// 413 `bad_data`: the form body is over `api.max_body_bytes`.
    #[error("{0}")]
    TooLarge(String),
    /// 422 `execution`: valid, but can't be computed on this data.
    #[error("{0}")]
    Execution(String),
    /// 503 `timeout`: ran past its timeout.
    #[error("{0}")]
    Timeout(String),
    /// 500 `internal`: our fault; the detail is logged, not returned.
    #[error("{0}")]
    Internal(String),
}

impl PromError {
    /// A query error, classified as Prometheus classifies it; `param` names the parameter a
    /// bad query came from (`query`).
    pub fn from_query(err: &QueryError, param: &str) -> Self {
        match err.kind() {
            QueryErrorKind::BadData => match err {
                // Prometheus reports its own range checks without naming a parameter.
                QueryError::InvalidStep { .. }
                | QueryError::EndBeforeStart
                | QueryError::TooManyPoints { .. } => Self::BadData(err.to_string()),
                _ => Self::BadData(format!("invalid parameter {param:?}: {err}")),
            },
            QueryErrorKind::Execution => Self::Execution(err.to_string()),
            QueryErrorKind::Timeout => Self::Timeout(err.to_string()),
            QueryErrorKind::Internal => Self::Internal(err.to_string()),
        }
    }

    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadData(_) => (StatusCode::BAD_REQUEST, "bad_data"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "bad_data"),
            Self::Execution(_) => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
            Self::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let (status, error_type) = self.status_and_type();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "query request failed");
                "internal error; see the collector's log".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = String::from(r#"{"status":"error","errorType":""#);
        body.push_str(error_type);
        body.push_str(r#"","error":"#);
        push_json_string(&mut body, &message);
        body.push('}');
        json_response(status, body)
    }
}

/// A 200 answer wrapping already-encoded `data`.
pub fn success(data: &str) -> Response {
    let mut body = String::with_capacity(data.len() + 32);
    body.push_str(r#"{"status":"success","data":"#);
    body.push_str(data);
    body.push('}');
    json_response(StatusCode::OK, body)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `{"resultType":...,"result":...}` for an instant query.
pub fn encode_instant(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Scalar(sample) => {
            out.push_str(r#"{"resultType":"scalar","result":"#);
            push_point(&mut out, sample);
        }
        Value::String {
            timestamp_ms,
            value,
        } => {
            out.push_str(r#"{"resultType":"string","result":["#);
            push_timestamp(&mut out, *timestamp_ms);
            out.push(',');
            push_json_string(&mut out, value);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push_str(r#"{"resultType":"vector","result":["#);
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                push_labels(&mut out, &s.labels);
                out.push_str(r#","value":"#);
                push_point(&mut out, &s.sample);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => return encode_matrix(series),
    }
    out.push('}');
    out
}

/// `{"resultType":"matrix","result":[...]}`.
pub fn encode_matrix(series: &[SeriesSamples]) -> String {
    let mut out = String::from(r#"{"resultType":"matrix","result":["#);
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"metric":"#);
        push_labels(&mut out, &s.labels);
        out.push_str(r#","values":["#);
        for (j, sample) in s.samples.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_point(&mut out, sample);
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

/// `[{"__name__":"up",...},...]` for `/series`.
pub fn encode_label_sets(sets: &[Labels]) -> String {
    let mut out = String::from("[");
    for (i, labels) in sets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_labels(&mut out, labels);
    }
    out.push(']');
    out
}

/// `["a","b"]` for `/labels` and `/label/{name}/values`.
pub fn encode_strings(values: &[String]) -> String {
    let mut out = String::from("[");
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, value);
    }
    out.push(']');
    out
}

fn push_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, &label.name);
        out.push(':');
        push_json_string(out, &label.value);
    }
    out.push('}');
}

fn push_point(out: &mut String, sample: &Sample) {
    out.push('[');
    push_timestamp(out, sample.timestamp_ms);
    out.push_str(",\"");
    push_value(out, sample.value);
    out.push_str("\"]");
}

/// Seconds with the milliseconds as three digits when there are any, as Prometheus's
/// `jsonutil.MarshalTimestamp`.
fn push_timestamp(out: &mut String, ms: i64) {
    if ms < 0 {
        out.push('-');
    }
    let ms = ms.unsigned_abs();
    let _ = write!(out, "{}", ms / 1000);
    let fraction = ms % 1000;
    if fraction != 0 {
        let _ = write!(out, ".{fraction:03}");
    }
}

/// The value as Go's `strconv.FormatFloat(v, 'f', -1, 64)`, with Prometheus's spellings
/// of the special values. Rust's `Display` for `f64` is the same shortest round-trip
/// decimal without an exponent.
fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{value}");
    }
}

/// A JSON string literal.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::InstantSample;

    fn text(f: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        f(&mut out);
        out
    }

    #[test]
    fn timestamps_are_written_as_prometheus_writes_them() {
        assert_eq!(text(|o| push_timestamp(o, 1_700_000_000_000)), "1700000000");
        assert_eq!(
            text(|o| push_timestamp(o, 1_700_000_000_100)),
            "1700000000.100"
        );
        assert_eq!(
            text(|o| push_timestamp(o, 1_700_000_000_005)),
            "1700000000.005"
        );
        assert_eq!(text(|o| push_timestamp(o, -1_500)), "-1.500");
        assert_eq!(text(|o| push_timestamp(o, 0)), "0");
    }

    #[test]
    fn values_are_go_decimals_with_special_spellings() {
        let cases = [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e21, "1000000000000000000000"),
            (1e-7, "0.0000001"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (value, want) in cases {
            assert_eq!(text(|o| push_value(o, value)), want);
        }
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(
            text(|o| push_json_string(o, "a\"b\\c\nd\u{1}é")),
            r#""a\"b\\c\nd\u0001é""#
        );
    }

    #[test]
    fn a_vector_has_prometheus_shape() {
        let value = Value::Vector(vec![InstantSample {
            labels: Labels::from_pairs([("__name__", "up"), ("host", "a")]),
            sample: Sample {
                timestamp_ms: 1_500,
                value: 1.0,
            },
        }]);
        assert_eq!(
            encode_instant(&value),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","host":"a"},"value":[1.500,"1"]}]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&encode_instant(&value)).unwrap();
        assert_eq!(parsed["result"][0]["value"][0], 1.5);
    }
}
