//! Alert rules: what they are once checked ([`Rule`], [`RuleSet`]), where they come from
//! (rule files, [`file`](mod@file); built-in rules, [`builtin`]), and how a running collector keeps
//! the set current ([`reload`]).
//!
//! A rule is an expression of the query subset, optionally compared with a threshold,
//! evaluated on an interval by [`crate::alert::eval`]; each series it returns is an alert
//! whose labels are the series' labels (without `__name__`), the rule's labels and
//! `alertname`. A rule is checked completely when it is built — the expression parsed and
//! inside the subset, durations, names, every template — so evaluation never meets a
//! malformed rule and a bad file is refused whole, with every problem listed.
//!
//! - [`file`](mod@file) — rule files as written (TOML), with `file:line:col` errors.
//! - [`builtin`] — the rules every collector has, and their overrides.
//! - [`template`] — `{{ $labels.host }}`-style templates of labels and annotations.
//! - [`humanize`] — Prometheus's number formatting for templates.
//! - [`reload`] — files to rule set, hot reload, the last reload's outcome.
//! - [`config`] — the `[alerting]` keys of `collector.toml` this part owns.
//!
//! Leaves out evaluation and alert state ([`crate::alert::eval`]) and everything after it
//! (routing, silences, receivers). Rule groups with their own intervals are not offered:
//! every rule runs on the evaluation interval.

pub mod builtin;
pub mod config;
mod error;
pub mod file;
pub mod humanize;
pub mod reload;
pub mod template;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use promql_parser::parser::value::ValueType;
use serde::{Deserialize, Serialize};

use crate::alert::labels::ALERTNAME;
use crate::query::Query;

pub use error::{Field, FieldError, Location, RuleError, RuleErrors};
use template::{Template, is_label_name};

/// A comparison of a rule's expression with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl CompareOp {
    /// The operator as PromQL writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }
}

/// A rule as written, before it is checked: from a rule file or a built-in definition.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDef {
    /// The rule's name, which becomes the `alertname` label.
    pub name: String,
    /// The expression; with `condition`, compared with a threshold.
    pub expr: String,
    /// `op threshold`: the expression's series whose value passes are the alerts. Without
    /// it, every series the expression returns is one (write `node_load1 > 4`).
    pub condition: Option<(CompareOp, f64)>,
    /// How long the condition must hold before the alert fires (0: at once).
    pub for_: Duration,
    /// How long a firing alert keeps firing after the condition stops holding.
    pub keep_firing_for: Duration,
    /// Labels added to every alert (templates allowed); they replace series labels of the
    /// same name.
    pub labels: BTreeMap<String, String>,
    /// Annotations (templates allowed): `summary`, `description`, `runbook_url`, ...
    pub annotations: BTreeMap<String, String>,
}

/// A checked rule: its expression parsed once, its templates parsed once.
#[derive(Debug, Clone)]
pub struct Rule {
    def: RuleDef,
    query: Query,
    labels: Vec<(String, Template)>,
    annotations: Vec<(String, Template)>,
    location: Location,
}

impl Rule {
    /// Checks `def`: the name (`[a-zA-Z_:][a-zA-Z0-9_:]*`, at most 200 characters), the
    /// expression (PromQL of the subset, returning an instant vector), the threshold
    /// (finite, with an operator), label names (not `alertname`, nor `__`-prefixed) and
    /// every template.
    ///
    /// # Errors
    /// Every problem found, each naming its field.
    pub fn new(def: RuleDef, location: Location) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |field: Field, message: String| errors.push(FieldError { field, message });
        if !is_rule_name(&def.name) {
            fail(
                Field::Name,
                format!(
                    "rule name {:?} must match [a-zA-Z_:][a-zA-Z0-9_:]* (at most 200 characters)",
                    def.name
                ),
            );
        }
        let query = match compose(&def) {
            Ok(text) => match Query::parse(&text) {
                Ok(query) if query.expr().value_type() == ValueType::Vector => Some(query),
                Ok(query) => {
                    fail(
                        Field::Expr,
                        format!(
                            "expression must return an instant vector, not a {}",
                            type_name(query.expr().value_type())
                        ),
                    );
                    None
                }
                Err(err) => {
                    fail(Field::Expr, format!("invalid expression: {err}"));
                    None
                }
            },
            Err(message) => {
                fail(Field::Threshold, message);
                None
            }
        };
        let mut labels = Vec::new();
        for (name, text) in &def.labels {
            let field = || Field::Label(name.clone());
            if !is_label_name(name) || name.starts_with("__") {
                fail(
                    field(),
                    format!(
                        "label name {name:?} must match [a-zA-Z_][a-zA-Z0-9_]* without a leading __"
                    ),
                );
            } else if name == ALERTNAME {
                fail(
                    field(),
                    "the `alertname` label is the rule's name; rename the rule instead".to_owned(),
                );
            }
            match Template::parse(text) {
                Ok(template) => labels.push((name.clone(), template)),
                Err(err) => fail(field(), format!("label {name}: {err}")),
            }
        }
        let mut annotations = Vec::new();
        for (name, text) in &def.annotations {
            let field = || Field::Annotation(name.clone());
            if !is_label_name(name) {
                fail(
                    field(),
                    format!("annotation name {name:?} must match [a-zA-Z_][a-zA-Z0-9_]*"),
                );
            }
            match Template::parse(text) {
                Ok(template) => annotations.push((name.clone(), template)),
                Err(err) => fail(field(), format!("annotation {name}: {err}")),
            }
        }
        match query {
            Some(query) if errors.is_empty() => Ok(Self {
                def,
                query,
                labels,
                annotations,
                location,
            }),
            _ => Err(errors),
        }
    }

    /// The name (`alertname`).
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The definition it was built from.
    pub fn def(&self) -> &RuleDef {
        &self.def
    }

    /// The query evaluated: the expression, compared with the threshold if there is one.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// `for`.
    pub fn for_(&self) -> Duration {
        self.def.for_
    }

    /// `keep_firing_for`.
    pub fn keep_firing_for(&self) -> Duration {
        self.def.keep_firing_for
    }

    /// Label templates, by name.
    pub fn labels(&self) -> &[(String, Template)] {
        &self.labels
    }

    /// Annotation templates, by name.
    pub fn annotations(&self) -> &[(String, Template)] {
        &self.annotations
    }

    /// Where it was defined.
    pub fn location(&self) -> &Location {
        &self.location
    }
}

/// A disabled rule (`enabled = false`), listed so the API can show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisabledRule {
    /// Its name.
    pub name: String,
    /// Where it is defined.
    pub location: Location,
}

/// The rules in force: names unique, in load order (built-ins first, then files in path
/// order, rules in file order). Immutable; a reload builds a new one.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Arc<Rule>>,
    disabled: Vec<DisabledRule>,
}

impl RuleSet {
    /// A set of `rules`, and the names of `disabled` ones.
    ///
    /// # Errors
    /// A [`RuleError`] for each name used more than once, at its second and later places.
    /// Disabled rules count, except disabled built-ins: disabling one is how a rule file
    /// replaces it.
    pub fn new(rules: Vec<Rule>, disabled: Vec<DisabledRule>) -> Result<Self, RuleErrors> {
        let mut seen: BTreeMap<&str, &Location> = BTreeMap::new();
        let mut errors = Vec::new();
        let named = rules
            .iter()
            .map(|r| (r.name(), r.location()))
            // A disabled built-in frees its name for a rule file's replacement.
            .chain(
                disabled
                    .iter()
                    .filter(|d| !matches!(d.location, Location::Builtin { .. }))
                    .map(|d| (d.name.as_str(), &d.location)),
            );
        for (name, location) in named {
            if let Some(first) = seen.insert(name, location) {
                let hint = if matches!(first, Location::Builtin { .. }) {
                    " (to replace a built-in rule, disable it with [alerting.builtin.NAME] enabled = false)"
                } else {
                    ""
                };
                errors.push(RuleError {
                    location: location.clone(),
                    message: format!("rule {name} is already defined at {first}{hint}"),
                });
                seen.insert(name, first);
            }
        }
        if !errors.is_empty() {
            return Err(RuleErrors(errors));
        }
        Ok(Self {
            rules: rules.into_iter().map(Arc::new).collect(),
            disabled,
        })
    }

    /// The rules, in load order.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// The rule named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Rule>> {
        self.rules.iter().find(|r| r.name() == name)
    }

    /// The disabled rules.
    pub fn disabled(&self) -> &[DisabledRule] {
        &self.disabled
    }

    /// The number of rules in force.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is in force.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The query text of a definition: `(expr) op threshold`, or the expression alone.
fn compose(def: &RuleDef) -> Result<String, String> {
    match def.condition {
        None => Ok(def.expr.clone()),
        Some((_, threshold)) if !threshold.is_finite() => Err(format!(
            "threshold must be a finite number, not {threshold}"
        )),
        // Rust prints every finite f64 as a plain decimal, which PromQL reads back exactly.
        // A `#` comment in the expression would swallow the closing parenthesis: end its
        // line first.
        Some((op, threshold)) => {
            let end = if def.expr.contains('#') { "\n" } else { "" };
            Ok(format!("({}{end}) {} {threshold}", def.expr, op.as_str()))
        }
    }
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, 1 to 200 characters: a metric name, which keeps alert names
/// printable everywhere (chat titles, URLs, label matchers without quotes).
pub fn is_rule_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 200
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn def(name: &str, expr: &str) -> RuleDef {
        RuleDef {
            name: name.to_owned(),
            expr: expr.to_owned(),
            condition: None,
            for_: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    fn builtin(name: &str) -> Location {
        Location::Builtin {
            name: name.to_owned(),
        }
    }

    #[test]
    fn a_threshold_composes_a_filtering_comparison() {
        let mut d = def("HighLoad", "node_load1 + 0");
        d.condition = Some((CompareOp::Ge, 0.5));
        let rule = Rule::new(d, builtin("HighLoad")).unwrap();
        assert_eq!(rule.query().text(), "(node_load1 + 0) >= 0.5");
        let mut d = def("Tiny", "x");
        d.condition = Some((CompareOp::Lt, 1e-7));
        assert_eq!(
            Rule::new(d, builtin("Tiny")).unwrap().query().text(),
            "(x) < 0.0000001"
        );
        let mut d = def("Commented", "x # the load");
        d.condition = Some((CompareOp::Gt, 4.0));
        assert_eq!(
            Rule::new(d, builtin("Commented")).unwrap().query().text(),
            "(x # the load\n) > 4"
        );
    }

    #[test]
    fn every_problem_of_a_rule_is_reported_with_its_field() {
        let mut d = def("bad name", "rate(x)");
        d.labels.insert("alertname".to_owned(), "x".to_owned());
        d.labels.insert("__x".to_owned(), "x".to_owned());
        d.annotations
            .insert("summary".to_owned(), "{{ $valeu }}".to_owned());
        let errors = Rule::new(d, builtin("x")).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.clone()).collect();
        assert_eq!(
            fields,
            [
                Field::Name,
                Field::Expr,
                Field::Label("__x".to_owned()),
                Field::Label("alertname".to_owned()),
                Field::Annotation("summary".to_owned()),
            ]
        );
        assert!(
            errors[1]
                .message
                .starts_with("invalid expression: parse error")
        );
        assert_eq!(
            errors[4].message,
            "annotation summary: template column 4: unknown `$valeu`: expected $labels.NAME, $value or $externalURL"
        );
    }

    #[test]
    fn expressions_must_be_vectors_of_the_subset_and_thresholds_finite() {
        let message = |d: RuleDef| Rule::new(d, builtin("x")).unwrap_err()[0].message.clone();
        assert_eq!(
            message(def("A", "1 + 1")),
            "expression must return an instant vector, not a scalar"
        );
        assert_eq!(
            message(def("A", "histogram_quantile(0.9, x)")),
            "invalid expression: function `histogram_quantile` is not supported"
        );
        let mut d = def("A", "x");
        d.condition = Some((CompareOp::Gt, f64::NAN));
        assert_eq!(message(d), "threshold must be a finite number, not NaN");
    }

    #[test]
    fn names_must_be_unique_across_the_set() {
        let file = |line| Location::File {
            path: "rules/a.toml".into(),
            line,
            column: 8,
        };
        let a = Rule::new(def("A", "x"), builtin("A")).unwrap();
        let a_again = Rule::new(def("A", "y"), file(7)).unwrap();
        let err = RuleSet::new(vec![a, a_again], vec![]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rules/a.toml:7:8: rule A is already defined at built-in rule A (to replace a built-in rule, disable it with [alerting.builtin.NAME] enabled = false)"
        );
        let b = Rule::new(def("B", "x"), file(1)).unwrap();
        let disabled_b = DisabledRule {
            name: "B".to_owned(),
            location: file(9),
        };
        let err = RuleSet::new(vec![b], vec![disabled_b]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rules/a.toml:9:8: rule B is already defined at rules/a.toml:1:8"
        );
        // A disabled built-in leaves its name to a file's rule.
        let replacement = Rule::new(def("HostDown", "up == 0"), file(3)).unwrap();
        let disabled = DisabledRule {
            name: "HostDown".to_owned(),
            location: builtin("HostDown"),
        };
        let set = RuleSet::new(vec![replacement], vec![disabled]).unwrap();
        assert_eq!(set.get("HostDown").map(|r| r.location()), Some(&file(3)));
    }

    #[test]
    fn rule_names_are_metric_names() {
        assert!(is_rule_name("HostDown"));
        assert!(is_rule_name("job:errors_5m"));
        assert!(!is_rule_name("Host Down"));
        assert!(!is_rule_name("1st"));
        assert!(!is_rule_name(""));
        assert!(!is_rule_name(&"a".repeat(201)));
    }
}
