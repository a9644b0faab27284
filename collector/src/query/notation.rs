//! promtool's notation for test series, so tests here (and alert-rule tests) can write
//! their input exactly as `promtool test rules` does, and feed both the same data.
//!
//! A series is `name{label="value",...}`. Its values are separated by spaces, one per
//! interval: `7` is a value, `_` a missing one, `stale` a staleness marker, `_x3` three
//! missing ones, `7x3` four sevens, `1+2x3` the four values `1 3 5 7` and `9-1x2` `9 8 7`.
//! See <https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/>.

use promql_parser::parser::{self, Expr};

use crate::series::{Labels, METRIC_NAME, MatchOp, Sample};

use super::select::STALE_NAN_BITS;

/// Why a series or its values did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotationError {
    /// The series is not `name{label="value",...}` with `=` matchers only.
    #[error("series {series:?} is not `name{{label=\"value\",...}}`: {reason}")]
    Series {
        /// The text given.
        series: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value item did not parse.
    #[error("value {item:?} is not a number, `_`, `stale`, `AxN`, `A+BxN` or `A-BxN`")]
    Value {
        /// The item.
        item: String,
    },
}

/// The labels of a series written `name{label="value",...}`.
///
/// # Errors
/// [`NotationError::Series`].
pub fn parse_series_labels(series: &str) -> Result<Labels, NotationError> {
    let fail = |reason: &str| NotationError::Series {
        series: series.to_owned(),
        reason: reason.to_owned(),
    };
    let expr = parser::parse(series).map_err(|e| fail(&e))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(fail("not a series"));
    };
    if vs.offset.is_some() || vs.at.is_some() || !vs.matchers.or_matchers.is_empty() {
        return Err(fail("modifiers are not allowed"));
    }
    let mut pairs = Vec::new();
    if let Some(name) = vs.name {
        pairs.push((METRIC_NAME.to_owned(), name));
    }
    for m in vs.matchers.matchers {
        if m.op != MatchOp::Equal {
            return Err(fail("only `=` is allowed"));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::from_pairs(pairs))
}

/// The samples of a values description, the n-th slot at `start_ms + n * interval_ms`.
///
/// # Errors
/// [`NotationError::Value`] naming the first item that did not parse.
pub fn expand_values(
    values: &str,
    start_ms: i64,
    interval_ms: i64,
) -> Result<Vec<Sample>, NotationError> {
    let mut out = Vec::new();
    let mut slot: i64 = 0;
    let mut push = |value: Option<f64>, slot: &mut i64| {
        if let Some(value) = value {
            out.push(Sample {
                timestamp_ms: start_ms.saturating_add(slot.saturating_mul(interval_ms)),
                value,
            });
        }
        *slot = slot.saturating_add(1);
    };
    for item in values.split_whitespace() {
        let bad = || NotationError::Value {
            item: item.to_owned(),
        };
        match item {
            "_" => push(None, &mut slot),
            "stale" => push(Some(f64::from_bits(STALE_NAN_BITS)), &mut slot),
            _ => match item.rsplit_once('x') {
                Some(("_", times)) => {
                    let times: i64 = times.parse().map_err(|_| bad())?;
                    slot = slot.saturating_add(times);
                }
                Some((head, times)) => {
                    let times: u32 = times.parse().map_err(|_| bad())?;
                    let (first, step) = split_step(head).ok_or_else(bad)?;
                    for i in 0..=times {
                        push(Some(first + f64::from(i) * step), &mut slot);
                    }
                }
                None => push(Some(parse_number(item).ok_or_else(bad)?), &mut slot),
            },
        }
    }
    Ok(out)
}

/// `A+B`, `A-B` or `A` into (A, ±B or 0). A sign right after an exponent's `e` belongs to
/// the number.
fn split_step(head: &str) -> Option<(f64, f64)> {
    let bytes = head.as_bytes();
    let split = (1..bytes.len())
        .find(|&i| matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
    match split {
        None => Some((parse_number(head)?, 0.0)),
        Some(i) => Some((parse_number(&head[..i])?, parse_number(&head[i..])?)),
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(i64, f64)> {
        expand_values(text, 0, 10)
            .unwrap()
            .into_iter()
            .map(|s| (s.timestamp_ms, s.value))
            .collect()
    }

    #[test]
    fn expands_like_promtool() {
        assert_eq!(values("1 2"), [(0, 1.0), (10, 2.0)]);
        assert_eq!(values("1+2x3"), [(0, 1.0), (10, 3.0), (20, 5.0), (30, 7.0)]);
        assert_eq!(values("9-1x2"), [(0, 9.0), (10, 8.0), (20, 7.0)]);
        assert_eq!(values("-1-1x1"), [(0, -1.0), (10, -2.0)]);
        assert_eq!(values("5x2"), [(0, 5.0), (10, 5.0), (20, 5.0)]);
        assert_eq!(values("1e3+1e1x1"), [(0, 1000.0), (10, 1010.0)]);
        assert_eq!(values("_ 1 _x2 2"), [(10, 1.0), (40, 2.0)]);
    }

    #[test]
    fn stale_is_the_staleness_marker() {
        let got = expand_values("1 stale", 0, 10).unwrap();
        assert_eq!(got[1].value.to_bits(), STALE_NAN_BITS);
    }

    #[test]
    fn bad_items_are_named() {
        let err = expand_values("1 two 3", 0, 10).unwrap_err();
        assert_eq!(
            err,
            NotationError::Value {
                item: "two".to_owned()
            }
        );
        assert!(expand_values("1+x3", 0, 10).is_err());
    }

    #[test]
    fn series_labels_accept_only_equality() {
        let labels = parse_series_labels(r#"up{host="a", job="node"}"#).unwrap();
        assert_eq!(labels.to_string(), r#"up{host="a",job="node"}"#);
        assert!(parse_series_labels(r#"up{host=~"a"}"#).is_err());
        assert!(parse_series_labels("rate(up[5m])").is_err());
    }
}
