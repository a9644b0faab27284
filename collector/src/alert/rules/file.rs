//! A rule file as written: TOML, one `[[rule]]` table per rule.
//!
//! ```toml
//! [[rule]]
//! name = "HighLoad"                  # the alertname; unique across files and built-ins
//! expr = "node_load1"                # PromQL of the query subset
//! op = ">"                           # optional, with threshold: > >= < <= == !=
//! threshold = 4.0                    # without op/threshold, expr filters itself: "node_load1 > 4"
//! for = "5m"                         # default "0s": fire at the first evaluation
//! keep_firing_for = "1m"             # default "0s"
//! labels = { severity = "warning" }
//! annotations = { summary = "Load {{ $value }} on {{ $labels.host }}" }
//! enabled = true                     # default true; false keeps the rule checked but idle
//! ```
//!
//! Owns parsing a file into checked [`Rule`]s with every problem at its `file:line:col`:
//! TOML and schema errors (unknown keys, wrong types, bad durations) come from
//! [`muster_shared::config::parse`]; the rule checks of [`Rule::new`] are placed at the
//! value they are about. Leaves out finding files and uniqueness across files
//! ([`super::reload`], [`super::RuleSet::new`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use muster_shared::config::{self, ConfigError, Duration};
use serde::Deserialize;
use toml::Spanned;

use super::{CompareOp, DisabledRule, Field, Location, Rule, RuleDef, RuleError};

/// A rule file: `[[rule]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The rules, in file order.
    #[serde(default)]
    pub rule: Vec<RuleEntry>,
}

/// One `[[rule]]` as written; values carry their place in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    /// The rule's name, the alerts' `alertname`.
    pub name: Spanned<String>,
    /// The expression.
    pub expr: Spanned<String>,
    /// The comparison with `threshold`; both or neither.
    #[serde(default)]
    pub op: Option<Spanned<CompareOp>>,
    /// The threshold `expr` is compared with.
    #[serde(default)]
    pub threshold: Option<Spanned<f64>>,
    /// How long the condition holds before the alert fires. Default `"0s"`.
    #[serde(default, rename = "for")]
    pub for_: Duration,
    /// How long a firing alert stays firing once the condition is gone. Default `"0s"`.
    #[serde(default)]
    pub keep_firing_for: Duration,
    /// Labels added to the alerts (templates allowed).
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
    /// Annotations (templates allowed).
    #[serde(default)]
    pub annotations: BTreeMap<String, Spanned<String>>,
    /// `false` checks the rule but does not evaluate it. Default `true`.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// What one file holds: its enabled rules and the names of its disabled ones.
#[derive(Debug, Default)]
pub struct ParsedFile {
    /// Rules to evaluate.
    pub rules: Vec<Rule>,
    /// Rules with `enabled = false`.
    pub disabled: Vec<DisabledRule>,
}

/// Reads and parses the rule file at `path`.
///
/// # Errors
/// Every problem in the file (see [`parse_rule_file`]), or one naming the path when it
/// can't be read.
pub fn read_rule_file(path: &Path) -> Result<ParsedFile, Vec<RuleError>> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        vec![RuleError {
            location: Location::Path {
                path: path.to_owned(),
            },
            message: format!("cannot read rule file: {err}"),
        }]
    })?;
    parse_rule_file(&text, path)
}

/// Parses rule file `text`; `path` names it in rules' locations and errors.
///
/// # Errors
/// A TOML or schema error (one: parsing stops there), or every rule problem found, each at
/// its `file:line:col`.
pub fn parse_rule_file(text: &str, path: &Path) -> Result<ParsedFile, Vec<RuleError>> {
    let file: RuleFile = config::parse(text, path).map_err(|err| vec![config_error(err, path)])?;
    let at = |span: Range<usize>| {
        let (line, column) = line_col(text, span.start);
        Location::File {
            path: path.to_owned(),
            line,
            column,
        }
    };
    let mut parsed = ParsedFile::default();
    let mut errors = Vec::new();
    for entry in file.rule {
        let location = at(entry.name.span());
        let condition = match (&entry.op, &entry.threshold) {
            (Some(op), Some(threshold)) => Some((*op.get_ref(), *threshold.get_ref())),
            (None, None) => None,
            (Some(op), None) => {
                errors.push(RuleError {
                    location: at(op.span()),
                    message: "`op` needs a `threshold`".to_owned(),
                });
                continue;
            }
            (None, Some(threshold)) => {
                errors.push(RuleError {
                    location: at(threshold.span()),
                    message: "`threshold` needs an `op` (>, >=, <, <=, ==, !=)".to_owned(),
                });
                continue;
            }
        };
        let def = RuleDef {
            name: entry.name.get_ref().clone(),
            expr: entry.expr.get_ref().clone(),
            condition,
            for_: entry.for_.get(),
            keep_firing_for: entry.keep_firing_for.get(),
            labels: values(&entry.labels),
            annotations: values(&entry.annotations),
        };
        let name = def.name.clone();
        match Rule::new(def, location.clone()) {
            Ok(rule) if entry.enabled => parsed.rules.push(rule),
            Ok(_) => parsed.disabled.push(DisabledRule { name, location }),
            Err(field_errors) => errors.extend(field_errors.into_iter().map(|e| {
                let span = match &e.field {
                    Field::Name => entry.name.span(),
                    Field::Expr => entry.expr.span(),
                    Field::Threshold => entry
                        .threshold
                        .as_ref()
                        .map_or_else(|| entry.expr.span(), Spanned::span),
                    Field::Label(name) => entry
                        .labels
                        .get(name)
                        .map_or_else(|| entry.name.span(), Spanned::span),
                    Field::Annotation(name) => entry
                        .annotations
                        .get(name)
                        .map_or_else(|| entry.name.span(), Spanned::span),
                };
                RuleError {
                    location: at(span),
                    message: e.message,
                }
            })),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

fn values(map: &BTreeMap<String, Spanned<String>>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
        .collect()
}

fn config_error(err: ConfigError, path: &Path) -> RuleError {
    match err {
        ConfigError::Parse {
            path,
            line,
            column,
            message,
        } => RuleError {
            location: Location::File { path, line, column },
            message,
        },
        other => RuleError {
            location: Location::Path {
                path: path.to_owned(),
            },
            message: other.to_string(),
        },
    }
}

/// 1-based line and character column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse_rule_file(text, Path::new("rules/host.toml")) {
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
            Ok(parsed) => panic!("expected errors, parsed {parsed:?}"),
        }
    }

    #[test]
    fn parses_every_key() {
        let text = r#"
[[rule]]
name = "HighLoad"
expr = "node_load1"
op = ">"
threshold = 4
for = "5m"
keep_firing_for = "1m"
labels = { severity = "warning" }
annotations = { summary = "Load {{ $value }} on {{ $labels.host }}" }

[[rule]]
name = "Quiet"
expr = "up == 0"
enabled = false
"#;
        let parsed = parse_rule_file(text, Path::new("rules/host.toml")).unwrap();
        let [rule] = parsed.rules.as_slice() else {
            panic!("one enabled rule: {parsed:?}");
        };
        assert_eq!(rule.name(), "HighLoad");
        assert_eq!(rule.query().text(), "(node_load1) > 4");
        assert_eq!(rule.for_(), std::time::Duration::from_secs(300));
        assert_eq!(rule.keep_firing_for(), std::time::Duration::from_secs(60));
        assert_eq!(rule.labels()[0].0, "severity");
        assert_eq!(rule.location().to_string(), "rules/host.toml:3:8");
        assert_eq!(parsed.disabled[0].name, "Quiet");
        assert_eq!(
            parsed.disabled[0].location.to_string(),
            "rules/host.toml:13:8"
        );
        assert!(
            parse_rule_file("", Path::new("empty.toml"))
                .unwrap()
                .rules
                .is_empty()
        );
    }

    #[test]
    fn toml_and_schema_errors_point_at_the_file() {
        assert_eq!(
            errors("[[rule]]\nname = \"A\"\nexpr = \"up\"\nfro = \"5m\"\n"),
            [
                "rules/host.toml:4:1: unknown field `fro`, expected one of `name`, `expr`, `op`, `threshold`, `for`, `keep_firing_for`, `labels`, `annotations`, `enabled`"
            ]
        );
        let duration = errors("[[rule]]\nname = \"A\"\nexpr = \"up\"\nfor = \"5 parsecs\"\n");
        assert!(
            duration[0].starts_with("rules/host.toml:4:7: invalid duration \"5 parsecs\""),
            "{duration:?}"
        );
        assert_eq!(
            errors("[[rule]]\nname = \"A\"\nexpr = \"up\"\nop = \"=>\"\nthreshold = 1\n"),
            [
                "rules/host.toml:4:6: unknown variant `=>`, expected one of `>`, `>=`, `<`, `<=`, `==`, `!=`"
            ]
        );
        assert_eq!(
            errors("[[rule]\nname = 1\n"),
            ["rules/host.toml:1:8: unclosed array table, expected `]`"]
        );
        assert_eq!(
            errors("[[rules]]\nname = \"A\"\n"),
            ["rules/host.toml:1:3: unknown field `rules`, expected `rule`"]
        );
    }

    #[test]
    fn rule_errors_point_at_their_value() {
        let text = r#"[[rule]]
name = "A"
expr = "rate(up)"
annotations = { summary = "{{ $value | humanise }}" }

[[rule]]
name = "B"
expr = "up"
threshold = 3

[[rule]]
name = "Bad Name"
expr = "up == 0"
labels = { "severity-level" = "x" }
"#;
        assert_eq!(
            errors(text),
            [
                "rules/host.toml:3:8: invalid expression: parse error: expected type matrix in call to function 'rate', got vector",
                "rules/host.toml:4:27: annotation summary: template column 13: unknown function `humanise`: expected humanize, humanize1024, humanizeDuration, humanizePercentage, humanizeTimestamp or printf",
                "rules/host.toml:9:13: `threshold` needs an `op` (>, >=, <, <=, ==, !=)",
                "rules/host.toml:12:8: rule name \"Bad Name\" must match [a-zA-Z_:][a-zA-Z0-9_:]* (at most 200 characters)",
                "rules/host.toml:14:31: label name \"severity-level\" must match [a-zA-Z_][a-zA-Z0-9_]* without a leading __",
            ]
        );
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_col("a\nbé c", 6), (2, 4));
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("abc", 99), (1, 4));
    }
}
