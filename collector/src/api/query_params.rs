//! Parameters of the Prometheus-compatible query API, read as Prometheus reads them.
//!
//! They come from the URL's query string and, for a POST, from an
//! `application/x-www-form-urlencoded` body (what Grafana sends). Keys may repeat
//! (`match[]`), so the pairs are kept in order rather than put in a map; as with Go's
//! `Request.Form`, body values come before URL values, and a single-valued parameter takes
//! the first. Times are RFC 3339 or Unix seconds with decimals; durations are Prometheus
//! durations (`15s`, `1m30s`) or float seconds.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode, header};

use promql_parser::parser::{self, Expr};
use promql_parser::util::parse_duration;

use super::query_response::PromError;
use crate::series::{METRIC_NAME, MatchOp, Matcher};

/// The earliest time a parameter can name, in ms (Prometheus's `minTime`, as Grafana may
/// send it back).
pub const MIN_TIME_MS: i64 = i64::MIN / 2;
/// The latest time a parameter can name, in ms.
pub const MAX_TIME_MS: i64 = i64::MAX / 2;

const MIN_TIME_TEXT: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_TEXT: &str = "292277025-08-18T07:12:54.999999999Z";

/// The request's parameters, in order, body first.
#[derive(Debug, Clone, Default)]
pub struct PromParams(Vec<(String, String)>);

impl<S> FromRequest<S> for PromParams
where
    S: Send + Sync,
{
    type Rejection = PromError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let from_url: Vec<(String, String)> = request
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let mut pairs = Vec::new();
        if request.method() == Method::POST && is_form {
            let body = Bytes::from_request(request, state)
                .await
                .map_err(|rejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        PromError::TooLarge("request body is too large".to_owned())
                    } else {
                        PromError::BadData(format!("cannot read the form body: {rejection}"))
                    }
                })?;
            pairs.extend(url::form_urlencoded::parse(&body).into_owned());
        }
        pairs.extend(from_url);
        Ok(Self(pairs))
    }
}

impl PromParams {
    /// Parameters from pairs, body first (for tests and callers that already hold them).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    /// The first value of `name`, if given and not empty (Go's `FormValue`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The time `name`, in ms since the epoch, if given.
    ///
    /// # Errors
    /// `bad_data` naming the parameter.
    pub fn time(&self, name: &str) -> Result<Option<i64>, PromError> {
        self.get(name)
            .map(|text| parse_time(text).map_err(|e| invalid(name, &e)))
            .transpose()
    }

    /// The time `name`, which must be given.
    ///
    /// # Errors
    /// `bad_data` naming the parameter.
    pub fn required_time(&self, name: &str) -> Result<i64, PromError> {
        self.time(name)?
            .ok_or_else(|| invalid(name, "cannot parse \"\" to a valid timestamp"))
    }

    /// The duration `name`, in ms, if given.
    ///
    /// # Errors
    /// `bad_data` naming the parameter.
    pub fn duration(&self, name: &str) -> Result<Option<i64>, PromError> {
        self.get(name)
            .map(|text| parse_duration_ms(text).map_err(|e| invalid(name, &e)))
            .transpose()
    }

    /// The selectors in `match[]`, each as a list of matchers (the metric name included).
    ///
    /// # Errors
    /// `bad_data` for a value that is not a plain series selector.
    pub fn selectors(&self) -> Result<Vec<Vec<Matcher>>, PromError> {
        self.all("match[]")
            .map(|text| parse_selector(text).map_err(|e| invalid("match[]", &e)))
            .collect()
    }

    /// [`PromParams::selectors`], at least one.
    ///
    /// # Errors
    /// `bad_data` without `match[]` or for a bad one.
    pub fn required_selectors(&self) -> Result<Vec<Vec<Matcher>>, PromError> {
        let selectors = self.selectors()?;
        if selectors.is_empty() {
            return Err(PromError::BadData(
                "no match[] parameter provided".to_owned(),
            ));
        }
        Ok(selectors)
    }
}

/// `invalid parameter "<name>": <reason>`, Prometheus's wording.
pub fn invalid(name: &str, reason: &str) -> PromError {
    PromError::BadData(format!("invalid parameter {name:?}: {reason}"))
}

/// A time as Prometheus's API takes it: Unix seconds (decimals kept to the millisecond)
/// or RFC 3339.
///
/// # Errors
/// `cannot parse "<text>" to a valid timestamp`.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let fail = || format!("cannot parse {text:?} to a valid timestamp");
    if let Ok(seconds) = text.parse::<f64>() {
        let ms = (seconds * 1000.0).round();
        // Anything in range of an i64 of ms, with room for windows around it.
        return if ms.is_finite() && ms > MIN_TIME_MS as f64 && ms < MAX_TIME_MS as f64 {
            Ok(ms as i64)
        } else {
            Err(fail())
        };
    }
    match text {
        MIN_TIME_TEXT => return Ok(MIN_TIME_MS),
        MAX_TIME_TEXT => return Ok(MAX_TIME_MS),
        _ => {}
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| fail())
}

/// A duration as Prometheus's API takes it: float seconds or `1h30m`-style, in ms.
///
/// # Errors
/// `cannot parse "<text>" to a valid duration`.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let fail = || format!("cannot parse {text:?} to a valid duration");
    if let Ok(seconds) = text.parse::<f64>() {
        let ms = (seconds * 1000.0).round();
        return if ms.is_finite() && ms.abs() < i64::MAX as f64 {
            Ok(ms as i64)
        } else {
            Err(fail())
        };
    }
    match parse_duration(text) {
        Ok(duration) => i64::try_from(duration.as_millis()).map_err(|_| fail()),
        // promql-parser refuses zero, which is right for a range but not for `timeout=0s`,
        // a valid Prometheus duration.
        Err(reason) if reason == "duration must be greater than 0" => Ok(0),
        Err(_) => Err(fail()),
    }
}

/// A `match[]` value: a plain series selector, without modifiers.
fn parse_selector(text: &str) -> Result<Vec<Matcher>, String> {
    let Expr::VectorSelector(vs) = parser::parse(text)? else {
        return Err(format!("{text:?} is not a series selector"));
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err(format!(
            "{text:?} has a modifier; a series selector has none"
        ));
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(format!(
            "{text:?}: `or` between label matchers is not supported"
        ));
    }
    let mut matchers = vs.matchers.matchers;
    if let Some(name) = vs.name {
        matchers.push(Matcher::new(MatchOp::Equal, METRIC_NAME, &name));
    }
    Ok(matchers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1700000000.1234").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_time("-1.5").unwrap(), -1_500);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(parse_time(MAX_TIME_TEXT).unwrap(), MAX_TIME_MS);
        for bad in ["", "yesterday", "NaN", "inf", "1e300", "2023-11-14"] {
            assert_eq!(
                parse_time(bad).unwrap_err(),
                format!("cannot parse {bad:?} to a valid timestamp")
            );
        }
    }

    #[test]
    fn durations_are_prometheus_durations_or_seconds() {
        assert_eq!(parse_duration_ms("15s").unwrap(), 15_000);
        assert_eq!(parse_duration_ms("1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("1h").unwrap(), 3_600_000);
        assert_eq!(parse_duration_ms("0.5").unwrap(), 500);
        assert_eq!(parse_duration_ms("60").unwrap(), 60_000);
        assert_eq!(parse_duration_ms("0s").unwrap(), 0);
        assert!(parse_duration_ms("fast").is_err());
        assert!(parse_duration_ms("1e300").is_err());
    }

    #[test]
    fn body_values_come_first_and_keys_repeat() {
        let params = PromParams::from_pairs([
            ("match[]".to_owned(), "up".to_owned()),
            ("time".to_owned(), String::new()),
            ("match[]".to_owned(), r#"{job="x"}"#.to_owned()),
            ("time".to_owned(), "5".to_owned()),
        ]);
        assert_eq!(
            params.get("time"),
            Some("5"),
            "an empty value counts as absent"
        );
        let selectors = params.selectors().unwrap();
        assert_eq!(selectors.len(), 2);
        assert_eq!(
            selectors[0],
            [Matcher::new(MatchOp::Equal, METRIC_NAME, "up")]
        );
    }

    #[test]
    fn match_must_be_a_plain_selector() {
        for bad in ["rate(up[5m])", "up offset 5m", r#"{job=~".*"}"#, "up{"] {
            let params = PromParams::from_pairs([("match[]".to_owned(), bad.to_owned())]);
            let err = params.selectors().unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("invalid parameter \"match[]\": "),
                "{bad}: {err}"
            );
        }
    }
}
