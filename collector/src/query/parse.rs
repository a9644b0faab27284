//! Parsing a query with promql-parser and checking that it stays inside the subset this
//! engine evaluates.
//!
//! The check runs once, before any data is read, so an unsupported construct is a
//! `bad_data` error naming the construct rather than a wrong answer later. What the subset
//! holds is decided by the evaluator's own tables ([`Function::from_name`],
//! [`Aggregation::from_token`], [`BinaryOp::from_token`]), so the two can't drift apart.

use std::fmt;

use promql_parser::parser::{self, Expr, VectorMatchCardinality};

use super::aggregate::Aggregation;
use super::binary::BinaryOp;
use super::error::QueryError;
use super::functions::Function;

/// A parsed query that passed the subset check; parse once, evaluate many times (alert
/// rules do).
#[derive(Debug, Clone)]
pub struct Query {
    text: String,
    expr: Expr,
}

impl Query {
    /// Parses `text` and checks it against the supported subset.
    ///
    /// # Errors
    /// [`QueryError::Parse`] for text that is not PromQL, [`QueryError::Unsupported`] for
    /// PromQL outside the subset (naming the first construct found).
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        let expr = parser::parse(text).map_err(|message| QueryError::Parse { message })?;
        check_subset(&expr)?;
        Ok(Self {
            text: text.to_owned(),
            expr,
        })
    }

    /// The text the query was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The syntax tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A construct of PromQL that the engine does not evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// A function outside the subset.
    #[error("function `{0}` is not supported")]
    Function(String),
    /// An aggregation outside the subset.
    #[error("aggregation `{0}` is not supported")]
    Aggregation(String),
    /// A binary operator outside the subset (`atan2`).
    #[error("operator `{0}` is not supported")]
    Operator(String),
    /// `expr[range:step]`.
    #[error("subqueries are not supported")]
    Subquery,
    /// Many-to-one matching.
    #[error("`group_left` is not supported")]
    GroupLeft,
    /// One-to-many matching.
    #[error("`group_right` is not supported")]
    GroupRight,
    /// `fill`, `fill_left`, `fill_right`.
    #[error("`fill` modifiers are not supported")]
    Fill,
    /// `{a="x" or b="y"}`, a promql-parser extension that Prometheus doesn't have.
    #[error("`or` between label matchers is not supported")]
    OrMatchers,
    /// A node promql-parser never produces itself.
    #[error("extension expressions are not supported")]
    Extension,
}

/// Walks `expr` and returns the first construct outside the subset.
///
/// # Errors
/// The construct found.
pub fn check_subset(expr: &Expr) -> Result<(), Unsupported> {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => check_selector(&vs.matchers),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs.matchers),
        Expr::Paren(p) => check_subset(&p.expr),
        Expr::Unary(u) => check_subset(&u.expr),
        Expr::Subquery(_) => Err(Unsupported::Subquery),
        Expr::Extension(_) => Err(Unsupported::Extension),
        Expr::Call(call) => {
            if Function::from_name(call.func.name).is_none() {
                return Err(Unsupported::Function(call.func.name.to_owned()));
            }
            call.args.args.iter().try_for_each(|arg| check_subset(arg))
        }
        Expr::Aggregate(agg) => {
            if Aggregation::from_token(agg.op).is_none() {
                return Err(Unsupported::Aggregation(agg.op.to_string()));
            }
            if let Some(param) = &agg.param {
                check_subset(param)?;
            }
            check_subset(&agg.expr)
        }
        Expr::Binary(bin) => {
            if BinaryOp::from_token(bin.op).is_none() {
                return Err(Unsupported::Operator(bin.op.to_string()));
            }
            if let Some(modifier) = &bin.modifier {
                match modifier.card {
                    VectorMatchCardinality::ManyToOne(_) => return Err(Unsupported::GroupLeft),
                    VectorMatchCardinality::OneToMany(_) => return Err(Unsupported::GroupRight),
                    VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => {}
                }
                if modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some() {
                    return Err(Unsupported::Fill);
                }
            }
            check_subset(&bin.lhs)?;
            check_subset(&bin.rhs)
        }
    }
}

fn check_selector(matchers: &promql_parser::label::Matchers) -> Result<(), Unsupported> {
    if matchers.or_matchers.is_empty() {
        Ok(())
    } else {
        Err(Unsupported::OrMatchers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsupported(text: &str) -> String {
        match Query::parse(text) {
            Err(QueryError::Unsupported(u)) => u.to_string(),
            other => panic!("{text}: expected an unsupported construct, got {other:?}"),
        }
    }

    #[test]
    fn accepts_the_expressions_the_issue_names() {
        for text in [
            r#"100 * (1 - avg by (host) (rate(node_cpu_seconds_total{mode="idle"}[5m])))"#,
            "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1",
            "topk(5, rate(container_cpu_usage_seconds_total[5m]))",
            "predict_linear(node_filesystem_avail_bytes[6h], 4*3600) < 0",
            r#"{__name__=~"node_.*", host!="a"} offset 5m"#,
            "foo @ 1700000000 and on (host) bar unless ignoring (mode) baz or qux",
            "sum without (cpu) (irate(foo[1m])) > bool 3",
            r#"clamp_min(round(foo, 0.5), 1) ^ -2 % 3 == scalar(vector(time()))"#,
        ] {
            Query::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn names_each_unsupported_construct() {
        let cases = [
            (
                "histogram_quantile(0.9, rate(foo[5m]))",
                "function `histogram_quantile` is not supported",
            ),
            (
                "label_replace(up, \"a\", \"b\", \"c\", \"d\")",
                "function `label_replace` is not supported",
            ),
            ("absent(up)", "function `absent` is not supported"),
            ("rate(foo[5m:1m])", "subqueries are not supported"),
            (
                "max_over_time(rate(foo[1m])[5m:])",
                "subqueries are not supported",
            ),
            (
                "foo * on (a) group_left (b) bar",
                "`group_left` is not supported",
            ),
            (
                "foo * on (a) group_right bar",
                "`group_right` is not supported",
            ),
            (
                "quantile(0.5, foo)",
                "aggregation `quantile` is not supported",
            ),
            ("stddev(foo)", "aggregation `stddev` is not supported"),
            (
                "count_values(\"v\", foo)",
                "aggregation `count_values` is not supported",
            ),
            ("group(foo)", "aggregation `group` is not supported"),
            ("foo atan2 bar", "operator `atan2` is not supported"),
            (
                "sum(rate(foo[5m])) / sum(histogram_count(bar))",
                "function `histogram_count` is not supported",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(unsupported(text), want, "{text}");
        }
    }

    #[test]
    fn bad_syntax_is_a_parse_error() {
        for text in ["", "foo{", "rate(foo)", "1 > 2", "sum(foo"] {
            assert!(
                matches!(Query::parse(text), Err(QueryError::Parse { .. })),
                "{text}"
            );
        }
    }
}
