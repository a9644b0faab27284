//! The condition language of `[[probe]] conditions`: parsing and evaluation.
//!
//! A condition is one comparison, `PLACEHOLDER OPERATOR VALUE`:
//!
//! ```text
//! [STATUS] == 200            [RESPONSE_TIME] < 300ms        [BODY] contains "ok"
//! [CERT_EXPIRY] > 72h        [CONNECTED] == true            [EXIT_CODE] != 2
//! [HEALTH] == "healthy"      [BODY] matches "^\{\"status\":\"up\""
//! ```
//!
//! | placeholder       | value                                               | operators                    |
//! |-------------------|-----------------------------------------------------|------------------------------|
//! | `[STATUS]`        | the HTTP status (integer)                           | `== != < <= > >=`            |
//! | `[EXIT_CODE]`     | the command's exit code (integer)                   | `== != < <= > >=`            |
//! | `[RESPONSE_TIME]` | the probe's duration (`300ms`, `2s`, `1m30s`)       | `== != < <= > >=`            |
//! | `[CERT_EXPIRY]`   | time left before the earliest certificate expires   | `== != < <= > >=`            |
//! | `[CONNECTED]`     | whether a connection was made (`true`, `false`)     | `== !=`                      |
//! | `[BODY]`          | the answer's body or the command's output (string)  | `== != contains matches`     |
//! | `[HEALTH]`        | Docker's health status (`"healthy"`, `"none"`, ...) | `== !=`                      |
//!
//! Strings are double-quoted, with `\"`, `\\`, `\n` and `\t` escapes (any other backslash
//! is kept as written, so `"\d+"` is the regex `\d+`); `matches` takes a regular expression
//! (Rust `regex` syntax, unanchored: add `^`/`$` to anchor it). Which
//! placeholders a probe kind offers is the config's business ([`super::config`]); this module
//! is pure: [`Condition::parse`] turns text into a checked condition or an error naming the
//! column, and [`Condition::holds`] evaluates it against a run's [`Facts`]. A fact the run
//! did not produce (no status because the connection failed) makes the condition false.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod parse;

use parse::parse_parts;
pub use parse::{ConditionError, ConditionProblem};

/// What a condition reads from a probe run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `[STATUS]`: the final HTTP status code.
    Status,
    /// `[RESPONSE_TIME]`: how long the run took.
    ResponseTime,
    /// `[BODY]`: the answer's body (http) or the command's standard output (exec).
    Body,
    /// `[CERT_EXPIRY]`: time left until the earliest certificate of the chain expires.
    CertExpiry,
    /// `[CONNECTED]`: whether a connection was established.
    Connected,
    /// `[EXIT_CODE]`: the command's exit code.
    ExitCode,
    /// `[HEALTH]`: Docker's health status of the container.
    Health,
}

impl Placeholder {
    /// Every placeholder, in the order error messages list them.
    pub const ALL: [Placeholder; 7] = [
        Self::Status,
        Self::ResponseTime,
        Self::Body,
        Self::CertExpiry,
        Self::Connected,
        Self::ExitCode,
        Self::Health,
    ];

    /// As written in a condition, brackets included (`"[STATUS]"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "[STATUS]",
            Self::ResponseTime => "[RESPONSE_TIME]",
            Self::Body => "[BODY]",
            Self::CertExpiry => "[CERT_EXPIRY]",
            Self::Connected => "[CONNECTED]",
            Self::ExitCode => "[EXIT_CODE]",
            Self::Health => "[HEALTH]",
        }
    }

    fn value_type(self) -> ValueType {
        match self {
            Self::Status | Self::ExitCode => ValueType::Integer,
            Self::ResponseTime | Self::CertExpiry => ValueType::Duration,
            Self::Connected => ValueType::Bool,
            Self::Body | Self::Health => ValueType::Text,
        }
    }

    fn operators(self) -> &'static [Operator] {
        use Operator::{Contains, Eq, Ge, Gt, Le, Lt, Matches, Ne};
        match self {
            Self::Status | Self::ExitCode | Self::ResponseTime | Self::CertExpiry => {
                &[Eq, Ne, Lt, Le, Gt, Ge]
            }
            Self::Connected | Self::Health => &[Eq, Ne],
            Self::Body => &[Eq, Ne, Contains, Matches],
        }
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `contains`: substring.
    Contains,
    /// `matches`: regular expression, unanchored.
    Matches,
}

impl Operator {
    /// Every operator, in the order error messages list them.
    pub const ALL: [Operator; 8] = [
        Self::Eq,
        Self::Ne,
        Self::Lt,
        Self::Le,
        Self::Gt,
        Self::Ge,
        Self::Contains,
        Self::Matches,
    ];

    /// As written in a condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Contains => "contains",
            Self::Matches => "matches",
        }
    }

    fn parse(token: &str) -> Option<Operator> {
        Self::ALL.into_iter().find(|op| op.as_str() == token)
    }

    fn compare<T: PartialOrd>(self, left: &T, right: &T) -> bool {
        match self {
            Self::Eq => left == right,
            Self::Ne => left != right,
            Self::Lt => left < right,
            Self::Le => left <= right,
            Self::Gt => left > right,
            Self::Ge => left >= right,
            Self::Contains | Self::Matches => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    Integer,
    Duration,
    Bool,
    Text,
}

impl ValueType {
    fn expected(self) -> &'static str {
        match self {
            Self::Integer => "an integer such as 200",
            Self::Duration => "a duration such as 300ms, 5s or 72h",
            Self::Bool => "true or false",
            Self::Text => "a double-quoted string such as \"ok\"",
        }
    }
}

#[derive(Debug, Clone)]
enum Operand {
    Integer(i64),
    Duration(Duration),
    Bool(bool),
    Text(String),
    Regex(regex::Regex),
}

/// What one probe run produced, as conditions read it. `None` where the run has no such
/// fact (a failed connection has no status).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The final HTTP status code.
    pub status: Option<u16>,
    /// The answer's body or the command's output (bounded by the prober), lossily UTF-8.
    pub body: Option<String>,
    /// When the earliest certificate of the presented chain expires.
    pub cert_expiry: Option<SystemTime>,
    /// Whether a connection was established.
    pub connected: Option<bool>,
    /// The command's exit code (`None` when killed by a signal or never started).
    pub exit_code: Option<i32>,
    /// Docker's health status name (`healthy`, `unhealthy`, `starting`, `none`).
    pub health: Option<&'static str>,
}

/// One parsed condition. Compares and prints as its source text.
#[derive(Debug, Clone)]
pub struct Condition {
    source: String,
    placeholder: Placeholder,
    operator: Operator,
    operand: Operand,
}

impl Condition {
    /// Parses one condition.
    ///
    /// # Errors
    /// A [`ConditionError`] naming the problem and its column.
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        parse_parts(text)
            .map(|(placeholder, operator, operand)| Condition {
                source: text.to_owned(),
                placeholder,
                operator,
                operand,
            })
            .map_err(|problem| ConditionError {
                condition: text.to_owned(),
                problem,
            })
    }

    /// The condition as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// What it reads.
    pub fn placeholder(&self) -> Placeholder {
        self.placeholder
    }

    /// How it compares.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// Whether the condition holds for a run that produced `facts` and took
    /// `response_time`; `now` is when the run ended (for `[CERT_EXPIRY]`). A missing fact
    /// makes it false; an expired certificate has zero time left.
    pub fn holds(&self, facts: &Facts, response_time: Duration, now: SystemTime) -> bool {
        let op = self.operator;
        match (self.placeholder, &self.operand) {
            (Placeholder::Status, Operand::Integer(want)) => facts
                .status
                .is_some_and(|got| op.compare(&i64::from(got), want)),
            (Placeholder::ExitCode, Operand::Integer(want)) => facts
                .exit_code
                .is_some_and(|got| op.compare(&i64::from(got), want)),
            (Placeholder::ResponseTime, Operand::Duration(want)) => {
                op.compare(&response_time, want)
            }
            (Placeholder::CertExpiry, Operand::Duration(want)) => {
                facts.cert_expiry.is_some_and(|expiry| {
                    let left = expiry.duration_since(now).unwrap_or(Duration::ZERO);
                    op.compare(&left, want)
                })
            }
            (Placeholder::Connected, Operand::Bool(want)) => {
                facts.connected.is_some_and(|got| op.compare(&got, want))
            }
            (Placeholder::Health, Operand::Text(want)) => facts
                .health
                .is_some_and(|got| op.compare(&got, &want.as_str())),
            (Placeholder::Body, operand) => {
                let Some(body) = facts.body.as_deref() else {
                    return false;
                };
                match (op, operand) {
                    (Operator::Contains, Operand::Text(want)) => body.contains(want.as_str()),
                    (Operator::Matches, Operand::Regex(re)) => re.is_match(body),
                    (_, Operand::Text(want)) => op.compare(&body, &want.as_str()),
                    _ => false,
                }
            }
            // `parse` never pairs a placeholder with another operand type.
            _ => false,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Condition::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
