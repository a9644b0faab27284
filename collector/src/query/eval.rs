//! Evaluating an expression at one step, over data already loaded.
//!
//! A range query is a sequence of these evaluations, one per step, like a sequence of
//! instant queries that share one load of the data ([`super::select`]). Each node is
//! evaluated recursively; functions, aggregations and binary operators live in their own
//! modules.

use promql_parser::parser::{Expr, UnaryExpr};

use super::aggregate::eval_aggregate;
use super::binary::eval_binary;
use super::error::QueryError;
use super::functions::call;
use super::parse::Unsupported;
use super::select::{Preloaded, Span};
use super::value::{Element, RangeSeries, StepValue, check_unique_labels, drop_metric_name};

/// What a step's evaluation knows: the loaded data, the step's time and the query's span
/// (which `@ start()` and `@ end()` refer to).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepContext<'a> {
    pub data: &'a Preloaded,
    pub t_ms: i64,
    pub span: Span,
}

/// Evaluates `expr` at the context's step.
///
/// # Errors
/// Any [`QueryError`] of evaluation (matching, duplicate label sets, parameters).
pub(crate) fn eval(ctx: &StepContext<'_>, expr: &Expr) -> Result<StepValue, QueryError> {
    match expr {
        Expr::NumberLiteral(n) => Ok(StepValue::Scalar(n.val)),
        Expr::StringLiteral(s) => Ok(StepValue::String(s.val.clone())),
        Expr::Paren(p) => eval(ctx, &p.expr),
        Expr::Unary(u) => eval_unary(ctx, u),
        Expr::VectorSelector(vs) => Ok(StepValue::Vector(
            ctx.data
                .instant(vs, ctx.t_ms, ctx.span)
                .map(|(labels, sample)| Element::new(labels.clone(), sample.value))
                .collect(),
        )),
        Expr::MatrixSelector(ms) => Ok(StepValue::Matrix(
            ctx.data
                .range(ms, ctx.t_ms, ctx.span)
                .map(|(labels, samples)| RangeSeries {
                    labels: labels.clone(),
                    samples: samples.to_vec(),
                })
                .collect(),
        )),
        Expr::Call(c) => call(ctx, c),
        Expr::Aggregate(a) => eval_aggregate(ctx, a),
        Expr::Binary(b) => eval_binary(ctx, b),
        Expr::Subquery(_) => Err(Unsupported::Subquery.into()),
        Expr::Extension(_) => Err(Unsupported::Extension.into()),
    }
}

/// Unary minus: negates a scalar, or each element of a vector (dropping the metric name).
fn eval_unary(ctx: &StepContext<'_>, unary: &UnaryExpr) -> Result<StepValue, QueryError> {
    match eval(ctx, &unary.expr)? {
        StepValue::Scalar(v) => Ok(StepValue::Scalar(-v)),
        StepValue::Vector(elements) => {
            let negated: Vec<Element> = elements
                .into_iter()
                .map(|e| Element::new(drop_metric_name(&e.labels), -e.value))
                .collect();
            check_unique_labels(&negated)?;
            Ok(StepValue::Vector(negated))
        }
        other => Err(QueryError::OperandType {
            operation: "unary minus".to_owned(),
            found: other.type_name(),
        }),
    }
}

/// Evaluates an operand that must be a scalar.
///
/// # Errors
/// [`QueryError::OperandType`] for anything else, or the operand's own error.
pub(crate) fn eval_scalar(
    ctx: &StepContext<'_>,
    expr: &Expr,
    operation: &str,
) -> Result<f64, QueryError> {
    match eval(ctx, expr)? {
        StepValue::Scalar(v) => Ok(v),
        other => Err(QueryError::OperandType {
            operation: operation.to_owned(),
            found: other.type_name(),
        }),
    }
}

/// Evaluates an operand that must be an instant vector.
///
/// # Errors
/// [`QueryError::OperandType`] for anything else, or the operand's own error.
pub(crate) fn eval_vector(
    ctx: &StepContext<'_>,
    expr: &Expr,
    operation: &str,
) -> Result<Vec<Element>, QueryError> {
    match eval(ctx, expr)? {
        StepValue::Vector(v) => Ok(v),
        other => Err(QueryError::OperandType {
            operation: operation.to_owned(),
            found: other.type_name(),
        }),
    }
}
