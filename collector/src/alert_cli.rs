//! `muster-collector alerts` and `muster-collector silence add|list|expire`: the alerting
//! API from a shell, through a running collector ([`crate::api_client::ApiClient`]).
//!
//! Each command returns the text to print: one line per alert or silence for people, or
//! the API's JSON with `--json` for scripts.

use std::fmt::Write as _;

use anyhow::Context;
use serde_json::json;

use crate::api::alerts::{AckView, AlertList, AlertView};
use crate::api::silences::{SilenceList, SilenceView};
use crate::api_client::ApiClient;

/// What `alerts` lists.
#[derive(Debug, Clone, Default)]
pub struct AlertsRequest {
    /// `firing`, `pending`, `resolved`, comma-separated; all when `None`.
    pub state: Option<String>,
    /// Matchers, `{a="1"}`.
    pub filter: Option<String>,
    /// Ended episodes instead of the current alerts, with this text search.
    pub history: bool,
    /// Text to find in the history.
    pub search: Option<String>,
    /// The API's JSON instead of lines.
    pub json: bool,
}

/// `alerts`: the current alerts, or the history.
///
/// # Errors
/// The collector can't be reached or refuses.
pub async fn alerts(client: &ApiClient, request: &AlertsRequest) -> anyhow::Result<String> {
    let mut query = Vec::new();
    if let Some(state) = &request.state {
        query.push(format!("state={}", encode(state)));
    }
    if let Some(filter) = &request.filter {
        query.push(format!("filter={}", encode(filter)));
    }
    if let Some(search) = &request.search {
        query.push(format!("q={}", encode(search)));
    }
    let path = if request.history {
        "/api/v1/alerts/history"
    } else {
        "/api/v1/alerts"
    };
    let path = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let list: AlertList = client.get(&path).await?;
    if request.json {
        return Ok(serde_json::to_string_pretty(
            &json!({ "alerts": list.alerts }),
        )?);
    }
    if list.alerts.is_empty() {
        return Ok("no alerts".to_owned());
    }
    let mut out = String::new();
    for alert in &list.alerts {
        let _ = writeln!(out, "{}", alert_line(alert));
    }
    Ok(out.trim_end().to_owned())
}

/// `alerts ack FINGERPRINT`: acknowledges a listed alert.
///
/// # Errors
/// As [`alerts`]; 404 when the alert is not listed.
pub async fn acknowledge(
    client: &ApiClient,
    fingerprint: &str,
    comment: &str,
    expires_in: Option<&str>,
) -> anyhow::Result<String> {
    let mut body = json!({ "comment": comment });
    if let Some(expires_in) = expires_in {
        body["expires_in"] = json!(expires_in);
    }
    let ack: AckView = client
        .post(
            &format!("/api/v1/alerts/{}/ack", encode(fingerprint)),
            &body,
        )
        .await?;
    Ok(format!("acknowledged {} by {}", ack.fingerprint, ack.by))
}

/// What `silence add` creates.
#[derive(Debug, Clone)]
pub struct SilenceRequest {
    /// Matchers, each `name="value"` (or one `{..}` list).
    pub matchers: Vec<String>,
    /// How long, e.g. `2h`.
    pub duration: String,
    /// Why.
    pub comment: String,
    /// Who; the token's name when `None`.
    pub author: Option<String>,
}

/// `silence add`: prints the new silence's id.
///
/// # Errors
/// As [`alerts`]; 400 with the reason for a bad matcher or duration.
pub async fn silence_add(client: &ApiClient, request: &SilenceRequest) -> anyhow::Result<String> {
    let mut body = json!({
        "matchers": request.matchers,
        "duration": request.duration,
        "comment": request.comment,
    });
    if let Some(author) = &request.author {
        body["created_by"] = json!(author);
    }
    let silence: SilenceView = client.post("/api/v1/silences", &body).await?;
    Ok(silence.id)
}

/// `silence list`: one line per silence.
///
/// # Errors
/// As [`alerts`].
pub async fn silence_list(
    client: &ApiClient,
    state: Option<&str>,
    json_out: bool,
) -> anyhow::Result<String> {
    let path = match state {
        Some(state) => format!("/api/v1/silences?state={}", encode(state)),
        None => "/api/v1/silences".to_owned(),
    };
    let list: SilenceList = client.get(&path).await?;
    if json_out {
        return serde_json::to_string_pretty(&list).context("cannot print the silences");
    }
    if list.silences.is_empty() {
        return Ok("no silences".to_owned());
    }
    let mut out = String::new();
    for s in &list.silences {
        let _ = writeln!(
            out,
            "{}  {:<8} {} → {}  {{{}}}  by {}: {}",
            s.id,
            s.state,
            s.starts_at,
            s.ends_at,
            s.matchers.join(", "),
            s.created_by,
            s.comment
        );
    }
    Ok(out.trim_end().to_owned())
}

/// `silence expire ID`.
///
/// # Errors
/// As [`alerts`]; 404 for an unknown id.
pub async fn silence_expire(client: &ApiClient, id: &str) -> anyhow::Result<String> {
    let silence: SilenceView = client
        .delete(&format!("/api/v1/silences/{}", encode(id)))
        .await?;
    Ok(format!("expired {} at {}", silence.id, silence.ends_at))
}

fn alert_line(alert: &AlertView) -> String {
    let name = alert.labels.get("alertname").map_or("", String::as_str);
    let others: Vec<String> = alert
        .labels
        .iter()
        .filter(|(n, _)| n.as_str() != "alertname")
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    let since = alert
        .resolved_at
        .as_deref()
        .or(alert.fired_at.as_deref())
        .unwrap_or(&alert.active_at);
    let mut line = format!(
        "{}  {:<8} {name} {{{}}} since {since}",
        alert.fingerprint,
        alert.state,
        others.join(", ")
    );
    if let Some(summary) = alert.annotations.get("summary") {
        let _ = write!(line, " — {summary}");
    }
    if !alert.silenced_by.is_empty() {
        let _ = write!(line, " [silenced]");
    }
    if !alert.inhibited_by.is_empty() {
        let _ = write!(line, " [inhibited]");
    }
    if let Some(by) = &alert.acknowledged_by {
        let _ = write!(line, " [acked by {by}]");
    }
    line
}

/// A query value, form-encoded.
fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_matchers_for_a_query_string() {
        assert_eq!(encode(r#"{a="b c"}"#), "%7Ba%3D%22b+c%22%7D");
    }

    #[test]
    fn an_alert_line_names_what_matters() {
        let view = AlertView {
            fingerprint: "00000000000000ab".to_owned(),
            labels: [
                ("alertname".to_owned(), "HostDown".to_owned()),
                ("host".to_owned(), "web1".to_owned()),
            ]
            .into(),
            annotations: [("summary".to_owned(), "web1 is down".to_owned())].into(),
            state: "firing".to_owned(),
            active_at: "a".to_owned(),
            fired_at: Some("f".to_owned()),
            resolved_at: None,
            value: 0.0,
            generator_url: String::new(),
            silenced_by: vec!["s".to_owned()],
            inhibited_by: Vec::new(),
            acknowledged_by: Some("ann".to_owned()),
        };
        assert_eq!(
            alert_line(&view),
            r#"00000000000000ab  firing   HostDown {host="web1"} since f — web1 is down [silenced] [acked by ann]"#
        );
    }
}
