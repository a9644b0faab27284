//! `[[probe]]` tables in `agent.toml`: what to probe, how often, and what counts as up.
//!
//! ```toml
//! [[probe]]
//! name = "api"                    # the `probe` label; unique
//! kind = "http"                   # http, tcp, exec, docker or tls
//! target = "https://api.example.com/health"   # the `target` label
//! interval = "10s"                # Kubernetes' periodSeconds
//! timeout = "1s"                  # timeoutSeconds
//! initial_delay = "0s"            # initialDelaySeconds
//! success_threshold = 1
//! failure_threshold = 3
//! conditions = ['[STATUS] == 200', '[RESPONSE_TIME] < 300ms', '[CERT_EXPIRY] > 72h']
//! [probe.http]                    # the kind's own options; each kind has its table
//! method = "GET"
//! ```
//!
//! Defaults are Kubernetes' (interval 10 s, timeout 1 s, thresholds 1 and 3, no initial
//! delay). Values are checked by type while parsing: durations, conditions and patterns;
//! a bad one fails the load with `file:line:col` (for a condition, the line of its array,
//! with its number):
//!
//! ```text
//! agent.toml:12:14: condition 2 `[STATUS] = 200`: unknown operator `=` at column 10; expected one of == != < <= > >= contains matches
//! ```
//!
//! [`problems`] checks the rules across fields and reports every problem, each naming its
//! probe. The target's form depends on the kind: a
//! URL (http), `host:port` (tcp, tls), an absolute path (exec: the command; arguments go in
//! `[probe.exec] args`) or a container name (docker).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use muster_shared::config::Duration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Timing;
use super::condition::{Condition, Placeholder};
use super::exec::ExecOptions;
use super::http::HttpOptions;
use super::tcp::TcpOptions;
use super::tls::TlsOptions;

/// The shortest interval.
pub const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest interval: a value stays visible to the collector's instant queries (and
/// Prometheus') for their 5-minute lookback, so a longer gap would make a probe's series
/// blink out between runs.
pub const MAX_INTERVAL: std::time::Duration = std::time::Duration::from_secs(4 * 60);
/// The longest probe name.
pub const MAX_NAME_CHARS: usize = 128;

/// A probe kind, as written in `kind = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An HTTP(S) request.
    Http,
    /// A TCP connection, with an optional send/expect exchange.
    Tcp,
    /// A command from this file, run by the agent.
    Exec,
    /// A local Docker container's state and health.
    Docker,
    /// A TLS handshake with `host:port`, for its certificate chain.
    Tls,
}

impl Kind {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Tcp => "tcp",
            Self::Exec => "exec",
            Self::Docker => "docker",
            Self::Tls => "tls",
        }
    }

    /// The condition placeholders a run of this kind produces.
    pub fn placeholders(self) -> &'static [Placeholder] {
        use Placeholder as P;
        match self {
            Self::Http => &[
                P::Status,
                P::ResponseTime,
                P::Body,
                P::CertExpiry,
                P::Connected,
            ],
            Self::Tcp => &[P::ResponseTime, P::Connected],
            Self::Exec => &[P::ExitCode, P::ResponseTime, P::Body],
            Self::Docker => &[P::Health, P::ResponseTime],
            Self::Tls => &[P::CertExpiry, P::ResponseTime, P::Connected],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[probe]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The probe's name: its `probe` label, unique on this agent, at most
    /// [`MAX_NAME_CHARS`] characters, no control characters.
    pub name: String,
    /// What kind of probe.
    pub kind: Kind,
    /// What it probes, its `target` label: a URL without credentials (http), `host:port`
    /// (tcp, tls), the command's absolute path (exec), a container name (docker).
    pub target: String,
    /// Time between the starts of two runs. Default `"10s"`; from 1 s to 4 min.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// How long a run may take. Default `"1s"`; above zero, at most `interval`.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Wait before the first run. Default `"0s"`.
    #[serde(default)]
    pub initial_delay: Duration,
    /// Consecutive successes that make an unhealthy probe healthy. Default 1; at least 1.
    #[serde(default = "default_success_threshold")]
    pub success_threshold: u32,
    /// Consecutive failures that make a healthy probe unhealthy. Default 3; at least 1.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Conditions that must all hold for a run to succeed, besides the kind's own checks.
    /// Each placeholder must be one the kind produces.
    #[serde(default, deserialize_with = "deserialize_conditions")]
    pub conditions: Vec<Condition>,
    /// `[probe.http]`, for `kind = "http"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpOptions>,
    /// `[probe.tcp]`, for `kind = "tcp"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpOptions>,
    /// `[probe.exec]`, for `kind = "exec"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecOptions>,
    /// `[probe.tls]`, for `kind = "tls"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsOptions>,
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_success_threshold() -> u32 {
    1
}
fn default_failure_threshold() -> u32 {
    3
}

impl ProbeConfig {
    /// A probe with every default, for tests and examples.
    pub fn new(name: &str, kind: Kind, target: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            target: target.to_owned(),
            interval: default_interval(),
            timeout: default_timeout(),
            initial_delay: Duration::default(),
            success_threshold: default_success_threshold(),
            failure_threshold: default_failure_threshold(),
            conditions: Vec::new(),
            http: None,
            tcp: None,
            exec: None,
            tls: None,
        }
    }

    /// The timing fields.
    pub fn timing(&self) -> Timing {
        Timing {
            interval: self.interval.get(),
            timeout: self.timeout.get(),
            initial_delay: self.initial_delay.get(),
            success_threshold: self.success_threshold,
            failure_threshold: self.failure_threshold,
        }
    }

    /// Resolves relative `ca_file` paths against the config file's folder.
    pub fn resolve_paths(&mut self, config_path: &Path) {
        let resolve = |p: &mut Option<std::path::PathBuf>| {
            if let Some(path) = p {
                *path = muster_shared::config::resolve_path(config_path, path);
            }
        };
        if let Some(http) = &mut self.http {
            resolve(&mut http.ca_file);
        }
        if let Some(tls) = &mut self.tls {
            resolve(&mut tls.ca_file);
        }
    }

    fn who(&self, index: usize) -> String {
        if self.name.is_empty() {
            format!("probe #{}", index + 1)
        } else {
            format!("probe {:?}", self.name)
        }
    }
}

/// Parses `conditions`, naming a bad one by its number (the position TOML gives is the
/// array's).
fn deserialize_conditions<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Condition>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Condition::parse(text).map_err(|err| {
                serde::de::Error::custom(format!(
                    "condition {} `{}`: {}",
                    i + 1,
                    err.condition,
                    err.problem
                ))
            })
        })
        .collect()
}

/// Every problem of `probes` that types alone do not catch, each naming its probe (by name,
/// or `#n` when it has none).
pub fn problems(probes: &[ProbeConfig]) -> Vec<String> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, p) in probes.iter().enumerate() {
        let who = p.who(i);
        if p.name.is_empty() {
            out.push(format!("{who}: name must not be empty"));
        } else if p.name.chars().count() > MAX_NAME_CHARS || p.name.chars().any(char::is_control) {
            out.push(format!(
                "{who}: name must be at most {MAX_NAME_CHARS} characters, without control characters"
            ));
        } else if !names.insert(p.name.as_str()) {
            out.push(format!("{who}: another probe has the same name"));
        }
        timing_problems(p, &who, &mut out);
        options_problems(p, &who, &mut out);
        for (n, condition) in p.conditions.iter().enumerate() {
            let placeholder = condition.placeholder();
            let at = format!("{who}: condition {} `{condition}`", n + 1);
            if !p.kind.placeholders().contains(&placeholder) {
                let offered: Vec<&str> = p.kind.placeholders().iter().map(|p| p.as_str()).collect();
                out.push(format!(
                    "{at}: {placeholder} does not apply to a {} probe (it offers {})",
                    p.kind,
                    offered.join(" ")
                ));
            } else if placeholder == Placeholder::CertExpiry
                && p.kind == Kind::Http
                && !p.target.to_ascii_lowercase().starts_with("https://")
            {
                out.push(format!("{at}: {placeholder} needs an https:// target"));
            }
        }
    }
    out
}

fn timing_problems(p: &ProbeConfig, who: &str, out: &mut Vec<String>) {
    let interval = p.interval.get();
    if interval < MIN_INTERVAL || interval > MAX_INTERVAL {
        out.push(format!(
            "{who}: interval must be from 1s to 4m, not {}",
            p.interval
        ));
    }
    if p.timeout.get().is_zero() || p.timeout > p.interval {
        out.push(format!(
            "{who}: timeout ({}) must be above zero and at most interval ({})",
            p.timeout, p.interval
        ));
    }
    if p.success_threshold == 0 {
        out.push(format!("{who}: success_threshold must be at least 1"));
    }
    if p.failure_threshold == 0 {
        out.push(format!("{who}: failure_threshold must be at least 1"));
    }
}

fn options_problems(p: &ProbeConfig, who: &str, out: &mut Vec<String>) {
    let tables = [
        (Kind::Http, p.http.is_some()),
        (Kind::Tcp, p.tcp.is_some()),
        (Kind::Exec, p.exec.is_some()),
        (Kind::Tls, p.tls.is_some()),
    ];
    for (kind, present) in tables {
        if present && kind != p.kind {
            out.push(format!(
                "{who}: [probe.{kind}] does not apply to a {} probe",
                p.kind
            ));
        }
    }
    match p.kind {
        Kind::Http => {
            super::http::target_problems(&p.target, who, out);
            if let Some(o) = &p.http {
                o.problems(who, out);
            }
        }
        Kind::Tcp | Kind::Tls => {
            if let Err(reason) = split_host_port(&p.target) {
                out.push(format!("{who}: target {:?}: {reason}", p.target));
            }
            if let Some(o) = &p.tls {
                o.problems(who, out);
            }
        }
        Kind::Exec => {
            if !Path::new(&p.target).is_absolute() {
                out.push(format!(
                    "{who}: target {:?} must be the command's absolute path (arguments go in [probe.exec] args)",
                    p.target
                ));
            }
            if let Some(o) = &p.exec {
                o.problems(who, out);
            }
        }
        Kind::Docker => {
            let valid = p
                .target
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
                && p.target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid {
                out.push(format!(
                    "{who}: target {:?} must be a container name or id ([a-zA-Z0-9][a-zA-Z0-9_.-]*)",
                    p.target
                ));
            }
        }
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6 addresses).
///
/// # Errors
/// What is wrong with it, for a config problem.
pub fn split_host_port(target: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address must be written [addr]:port")?;
        let port = after
            .strip_prefix(':')
            .ok_or("expected host:port, e.g. db.internal:5432 or [::1]:443")?;
        (host, port)
    } else {
        target
            .rsplit_once(':')
            .ok_or("expected host:port, e.g. db.internal:5432 or [::1]:443")?
    };
    if host.is_empty() || (host.contains(':') && !target.starts_with('[')) {
        return Err("expected host:port, e.g. db.internal:5432 or [::1]:443".to_owned());
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok((host.to_owned(), port)),
        _ => Err(format!("port {port:?} must be a number from 1 to 65535")),
    }
}

/// An unanchored regular expression from the config (`body_pattern`, `expect`); a bad one
/// fails at load with its position. Compares and prints as written.
#[derive(Clone)]
pub struct TextPattern {
    source: String,
    regex: regex::Regex,
}

impl TextPattern {
    /// Compiles `source`.
    ///
    /// # Errors
    /// The regex error, saying where the pattern is wrong.
    pub fn new(source: &str) -> Result<Self, String> {
        regex::Regex::new(source)
            .map(|regex| Self {
                source: source.to_owned(),
                regex,
            })
            .map_err(|err| format!("invalid pattern {source:?}: {err}"))
    }

    /// The compiled expression.
    pub fn regex(&self) -> &regex::Regex {
        &self.regex
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for TextPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TextPattern({:?})", self.source)
    }
}

impl PartialEq for TextPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for TextPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for TextPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Self::new(&source).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
