//! Alertmanager's label matchers, shared by routes, silences and inhibition rules.
//!
//! One matcher is `name OP value` with `OP` one of `=`, `!=`, `=~`, `!~`; the value is
//! double-quoted (with `\"`, `\\` and `\n` escapes) or bare up to the end. Regexes are
//! anchored at both ends, as in Alertmanager and Prometheus. A label the alert lacks has
//! the value `""`, so `team!="ops"` matches an alert without `team`, and `team=""`
//! matches exactly those alerts.
//!
//! A list is either matchers separated by commas, or the same inside braces:
//! `{severity="critical", host=~"web.*"}`.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::labels::{LabelSet, value_of};

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchType {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`, anchored
    Regex,
    /// `!~`, anchored
    NotRegex,
}

impl MatchType {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        }
    }
}

/// One label matcher. Serialized as its text (`severity="critical"`), so TOML files and
/// API bodies write matchers the way Alertmanager's users already do.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Matcher {
    name: String,
    kind: MatchType,
    value: String,
    /// Compiled, anchored; `Some` exactly for the two regex kinds.
    regex: Option<Regex>,
}

impl Matcher {
    /// A matcher; regexes are compiled anchored.
    ///
    /// # Errors
    /// An empty or invalid name, or a regex that does not compile.
    pub fn new(
        name: impl Into<String>,
        kind: MatchType,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        if !valid_name(&name) {
            return Err(MatcherError::Name { name });
        }
        let regex = match kind {
            MatchType::Regex | MatchType::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$")).map_err(|err| MatcherError::Regex {
                    value: value.clone(),
                    reason: err.to_string(),
                })?,
            ),
            MatchType::Equal | MatchType::NotEqual => None,
        };
        Ok(Self {
            name,
            kind,
            value,
            regex,
        })
    }

    /// Parses one matcher, `name="value"`.
    ///
    /// ```
    /// use muster_collector::alert::matcher::Matcher;
    /// let m = Matcher::parse(r#"host=~"web.*""#).unwrap();
    /// let labels = [("host".to_owned(), "web1".to_owned())].into();
    /// assert!(m.matches(&labels));
    /// ```
    ///
    /// # Errors
    /// What is wrong with the text, quoting it.
    pub fn parse(text: &str) -> Result<Self, MatcherError> {
        let text = text.trim();
        let op_at = text.find(['=', '!']).ok_or_else(|| MatcherError::Syntax {
            text: text.to_owned(),
            reason: "no operator (=, !=, =~, !~)".to_owned(),
        })?;
        let name = text[..op_at].trim();
        let rest = &text[op_at..];
        let (kind, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchType::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchType::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchType::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchType::Equal, r)
        } else {
            return Err(MatcherError::Syntax {
                text: text.to_owned(),
                reason: "no operator (=, !=, =~, !~)".to_owned(),
            });
        };
        let value = parse_value(rest.trim()).map_err(|reason| MatcherError::Syntax {
            text: text.to_owned(),
            reason,
        })?;
        Self::new(name, kind, value)
    }

    /// Parses a list: `a="1", b=~"2"` or `{a="1", b=~"2"}`. Commas inside quoted values
    /// are part of the value. An empty list is allowed (it matches everything).
    ///
    /// # Errors
    /// The first matcher that does not parse.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, MatcherError> {
        let mut body = text.trim();
        if let Some(inner) = body.strip_prefix('{') {
            body = inner
                .strip_suffix('}')
                .ok_or_else(|| MatcherError::Syntax {
                    text: text.to_owned(),
                    reason: "missing closing }".to_owned(),
                })?;
        }
        split_outside_quotes(body)
            .into_iter()
            .filter(|part| !part.trim().is_empty())
            .map(Self::parse)
            .collect()
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The comparison.
    pub fn kind(&self) -> MatchType {
        self.kind
    }

    /// The value or regex as written.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `labels` satisfy this matcher (a missing label is `""`).
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matches_value(value_of(labels, &self.name))
    }

    /// Whether a label value satisfies this matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match (self.kind, &self.regex) {
            (MatchType::Equal, _) => value == self.value,
            (MatchType::NotEqual, _) => value != self.value,
            (MatchType::Regex, Some(re)) => re.is_match(value),
            (MatchType::NotRegex, Some(re)) => !re.is_match(value),
            // new() compiles a regex for both regex kinds.
            (MatchType::Regex | MatchType::NotRegex, None) => false,
        }
    }
}

/// Whether `labels` satisfy every matcher of `matchers` (an empty list matches all).
pub fn all_match(matchers: &[Matcher], labels: &LabelSet) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.kind == other.kind && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matcher({self})")
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.kind.as_str())?;
        for c in self.value.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

impl TryFrom<String> for Matcher {
    type Error = MatcherError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Matcher> for String {
    fn from(m: Matcher) -> String {
        m.to_string()
    }
}

/// Why a matcher was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// The text is not `name OP value`.
    #[error("invalid matcher {text:?}: {reason}")]
    Syntax {
        /// The matcher as given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// The label name is empty or has characters outside `[a-zA-Z0-9_]`.
    #[error("invalid label name {name:?} in a matcher")]
    Name {
        /// The name as given.
        name: String,
    },
    /// The regex does not compile.
    #[error("invalid regex {value:?} in a matcher: {reason}")]
    Regex {
        /// The regex as given.
        value: String,
        /// The compiler's message.
        reason: String,
    },
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A quoted value with its escapes, or a bare value as it is.
fn parse_value(text: &str) -> Result<String, String> {
    let Some(inner) = text.strip_prefix('"') else {
        if text.contains('"') {
            return Err("a quote inside an unquoted value".to_owned());
        }
        return Ok(text.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some(c @ ('"' | '\\')) => out.push(c),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return Err("unterminated escape".to_owned()),
            },
            '"' => {
                return if chars.as_str().trim().is_empty() {
                    Ok(out)
                } else {
                    Err(format!(
                        "text after the closing quote: {:?}",
                        chars.as_str()
                    ))
                };
            }
            c => out.push(c),
        }
    }
    Err("missing closing quote".to_owned())
}

/// Splits at commas that are not inside double quotes.
fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn matches_like_alertmanager() {
        let web1 = labels(&[("host", "web1"), ("severity", "critical")]);
        let cases = [
            (r#"host="web1""#, true),
            ("host=web1", true),
            (r#"host!="web1""#, false),
            (r#"host=~"web.*""#, true),
            // Anchored: a partial match is no match.
            (r#"host=~"eb""#, false),
            (r#"host!~"db.*""#, true),
            (r#"team="""#, true),
            (r#"team!="ops""#, true),
            (r#"team=~".+""#, false),
        ];
        for (text, expected) in cases {
            let m = Matcher::parse(text).unwrap();
            assert_eq!(m.matches(&web1), expected, "{text}");
        }
    }

    #[test]
    fn prints_what_it_parses() {
        for text in [r#"a="b\"c""#, r#"a!~"x|y""#, r#"a="1,2""#] {
            let m = Matcher::parse(text).unwrap();
            assert_eq!(m.to_string(), text);
            assert_eq!(Matcher::parse(&m.to_string()).unwrap(), m);
        }
    }

    #[test]
    fn parses_lists_with_and_without_braces() {
        let list = Matcher::parse_list(r#"{severity="critical", note="a,b"}"#).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].value(), "a,b");
        assert_eq!(Matcher::parse_list("a=1,b!=2").unwrap().len(), 2);
        assert!(Matcher::parse_list("").unwrap().is_empty());
    }

    #[test]
    fn refuses_bad_matchers_with_the_reason() {
        let cases = [
            ("host", "no operator"),
            (r#"="x""#, "invalid label name"),
            (r#"9x="y""#, "invalid label name"),
            (r#"a=~"(""#, "invalid regex"),
            (r#"a="open"#, "missing closing quote"),
            (r#"a="x" y"#, "after the closing quote"),
            (r#"{a="x""#, "missing closing }"),
        ];
        for (text, reason) in cases {
            let err = Matcher::parse_list(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn serde_uses_the_text_form() {
        let m: Matcher = serde_json::from_str(r#""severity=\"critical\"""#).unwrap();
        assert_eq!(m.kind(), MatchType::Equal);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#""severity=\"critical\"""#
        );
        assert!(serde_json::from_str::<Matcher>(r#""nope""#).is_err());
    }
}
