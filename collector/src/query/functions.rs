//! The functions of the subset: which they are, and how each turns its arguments into a
//! value at one step. The arithmetic over sample windows is in [`super::range_functions`].
//!
//! As in Prometheus, every function drops the metric name from its output, except
//! `last_over_time`, which returns samples of the series unchanged.

use std::sync::Arc;

use promql_parser::parser::{Call, Expr, MatrixSelector};

use crate::series::Labels;

use super::error::QueryError;
use super::eval::{StepContext, eval_scalar, eval_vector};
use super::range_functions::{
    OverTime, changes, deriv, extrapolated_rate, instant_rate, predict_linear,
};
use super::select::range_bounds;
use super::value::{Element, StepValue, check_unique_labels, drop_metric_name};

/// A function of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `rate(v range-vector)`.
    Rate,
    /// `irate(v range-vector)`.
    Irate,
    /// `increase(v range-vector)`.
    Increase,
    /// `delta(v range-vector)`.
    Delta,
    /// `deriv(v range-vector)`.
    Deriv,
    /// `predict_linear(v range-vector, t scalar)`.
    PredictLinear,
    /// `changes(v range-vector)`.
    Changes,
    /// `<aggregation>_over_time(v range-vector)`.
    OverTime(OverTime),
    /// `abs(v instant-vector)`.
    Abs,
    /// `ceil(v instant-vector)`.
    Ceil,
    /// `floor(v instant-vector)`.
    Floor,
    /// `round(v instant-vector, to_nearest=1 scalar)`.
    Round,
    /// `clamp_min(v instant-vector, min scalar)`.
    ClampMin,
    /// `clamp_max(v instant-vector, max scalar)`.
    ClampMax,
    /// `time()`.
    Time,
    /// `vector(s scalar)`.
    Vector,
    /// `scalar(v instant-vector)`.
    Scalar,
    /// `timestamp(v instant-vector)`.
    Timestamp,
}

impl Function {
    /// The function named `name`, if the subset has it.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "rate" => Self::Rate,
            "irate" => Self::Irate,
            "increase" => Self::Increase,
            "delta" => Self::Delta,
            "deriv" => Self::Deriv,
            "predict_linear" => Self::PredictLinear,
            "changes" => Self::Changes,
            "avg_over_time" => Self::OverTime(OverTime::Avg),
            "max_over_time" => Self::OverTime(OverTime::Max),
            "min_over_time" => Self::OverTime(OverTime::Min),
            "sum_over_time" => Self::OverTime(OverTime::Sum),
            "count_over_time" => Self::OverTime(OverTime::Count),
            "last_over_time" => Self::OverTime(OverTime::Last),
            "abs" => Self::Abs,
            "ceil" => Self::Ceil,
            "floor" => Self::Floor,
            "round" => Self::Round,
            "clamp_min" => Self::ClampMin,
            "clamp_max" => Self::ClampMax,
            "time" => Self::Time,
            "vector" => Self::Vector,
            "scalar" => Self::Scalar,
            "timestamp" => Self::Timestamp,
            _ => return None,
        })
    }
}

/// Evaluates a call at the context's step.
///
/// # Errors
/// An argument's evaluation error, or [`QueryError::DuplicateLabelset`] when dropping the
/// metric name makes two series equal.
pub(crate) fn call(ctx: &StepContext<'_>, call: &Call) -> Result<StepValue, QueryError> {
    let name = call.func.name;
    let function = Function::from_name(name).ok_or_else(|| {
        QueryError::Unsupported(super::parse::Unsupported::Function(name.to_owned()))
    })?;
    let args = &call.args.args;
    let arg = |i: usize| -> Result<&Expr, QueryError> {
        args.get(i).map(|a| &**a).ok_or(QueryError::OperandType {
            operation: name.to_owned(),
            found: "too few arguments",
        })
    };
    let t_seconds = ctx.t_ms as f64 / 1000.0;
    let out = match function {
        Function::Time => return Ok(StepValue::Scalar(t_seconds)),
        Function::Vector => {
            let value = eval_scalar(ctx, arg(0)?, name)?;
            return Ok(StepValue::Vector(vec![Element::new(
                Arc::new(Labels::default()),
                value,
            )]));
        }
        Function::Scalar => {
            let vector = eval_vector(ctx, arg(0)?, name)?;
            let value = match vector.as_slice() {
                [only] => only.value,
                _ => f64::NAN,
            };
            return Ok(StepValue::Scalar(value));
        }
        Function::Rate | Function::Increase | Function::Delta => {
            let (is_counter, is_rate) = match function {
                Function::Rate => (true, true),
                Function::Increase => (true, false),
                _ => (false, false),
            };
            let ms = matrix_arg(arg(0)?, name)?;
            let (from, to) = range_bounds(ms, ctx.t_ms, ctx.span);
            over_range(ctx, ms, true, |samples| {
                extrapolated_rate(samples, from, to, is_counter, is_rate)
            })
        }
        Function::Irate => over_range(ctx, matrix_arg(arg(0)?, name)?, true, |s| {
            instant_rate(s, true)
        }),
        Function::Deriv => over_range(ctx, matrix_arg(arg(0)?, name)?, true, deriv),
        Function::Changes => over_range(ctx, matrix_arg(arg(0)?, name)?, true, changes),
        Function::PredictLinear => {
            let ms = matrix_arg(arg(0)?, name)?;
            let horizon = eval_scalar(ctx, arg(1)?, name)?;
            // Prometheus evaluates an `@` subtree once, at the query's start, and takes
            // the regression's intercept there.
            let at = if ms.vs.at.is_some() {
                ctx.span.start_ms
            } else {
                ctx.t_ms
            };
            over_range(ctx, ms, true, |s| predict_linear(s, at, horizon))
        }
        Function::OverTime(agg) => {
            let drop_name = agg != OverTime::Last;
            over_range(ctx, matrix_arg(arg(0)?, name)?, drop_name, |s| agg.apply(s))
        }
        Function::Abs => map_vector(ctx, arg(0)?, name, f64::abs)?,
        Function::Ceil => map_vector(ctx, arg(0)?, name, f64::ceil)?,
        Function::Floor => map_vector(ctx, arg(0)?, name, f64::floor)?,
        Function::Round => {
            let to_nearest = match args.get(1) {
                Some(a) => eval_scalar(ctx, a, name)?,
                None => 1.0,
            };
            // Prometheus multiplies by the inverse: fewer floating-point surprises.
            let inverse = 1.0 / to_nearest;
            map_vector(ctx, arg(0)?, name, |v| {
                (v * inverse + 0.5).floor() / inverse
            })?
        }
        Function::ClampMin => {
            let min = eval_scalar(ctx, arg(1)?, name)?;
            map_vector(ctx, arg(0)?, name, |v| go_max(min, v))?
        }
        Function::ClampMax => {
            let max = eval_scalar(ctx, arg(1)?, name)?;
            map_vector(ctx, arg(0)?, name, |v| go_min(max, v))?
        }
        Function::Timestamp => timestamp(ctx, arg(0)?)?,
    };
    check_unique_labels(&out)?;
    Ok(StepValue::Vector(out))
}

/// The range selector a range-vector argument is (the parser's type check guarantees one;
/// parentheses around it are allowed).
fn matrix_arg<'e>(expr: &'e Expr, name: &str) -> Result<&'e MatrixSelector, QueryError> {
    match expr {
        Expr::MatrixSelector(ms) => Ok(ms),
        Expr::Paren(p) => matrix_arg(&p.expr, name),
        _ => Err(QueryError::OperandType {
            operation: name.to_owned(),
            found: "an argument that is not a range selector",
        }),
    }
}

/// Applies `f` to each series' window; series for which it gives `None` are left out.
fn over_range(
    ctx: &StepContext<'_>,
    ms: &MatrixSelector,
    drop_name: bool,
    mut f: impl FnMut(&[crate::series::Sample]) -> Option<f64>,
) -> Vec<Element> {
    ctx.data
        .range(ms, ctx.t_ms, ctx.span)
        .filter_map(|(labels, samples)| {
            let value = f(samples)?;
            let labels = if drop_name {
                drop_metric_name(labels)
            } else {
                Arc::clone(labels)
            };
            Some(Element::new(labels, value))
        })
        .collect()
}

fn map_vector(
    ctx: &StepContext<'_>,
    arg: &Expr,
    name: &str,
    f: impl Fn(f64) -> f64,
) -> Result<Vec<Element>, QueryError> {
    Ok(eval_vector(ctx, arg, name)?
        .into_iter()
        .map(|e| Element::new(drop_metric_name(&e.labels), f(e.value)))
        .collect())
}

/// `timestamp(v)`: a selector's samples keep their own times; any other expression's
/// elements are at the evaluation time.
fn timestamp(ctx: &StepContext<'_>, arg: &Expr) -> Result<Vec<Element>, QueryError> {
    let mut inner = arg;
    while let Expr::Paren(p) = inner {
        inner = &p.expr;
    }
    if let Expr::VectorSelector(vs) = inner {
        return Ok(ctx
            .data
            .instant(vs, ctx.t_ms, ctx.span)
            .map(|(labels, s)| {
                Element::new(drop_metric_name(labels), s.timestamp_ms as f64 / 1000.0)
            })
            .collect());
    }
    let t_seconds = ctx.t_ms as f64 / 1000.0;
    map_vector(ctx, arg, "timestamp", |_| t_seconds)
}

/// Go's `math.Max`, which Prometheus uses: +Inf wins, then NaN, and +0 beats -0.
fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: -Inf wins, then NaN, and -0 beats +0.
fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamping_propagates_nan_as_go_does() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert_eq!(go_max(1.0, 2.0), 2.0);
        assert_eq!(go_min(1.0, 2.0), 1.0);
        assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
        assert_eq!(go_min(f64::NEG_INFINITY, f64::NAN), f64::NEG_INFINITY);
        assert!(go_max(-0.0, 0.0).is_sign_positive());
        assert!(go_min(0.0, -0.0).is_sign_negative());
    }

    #[test]
    fn names_map_to_functions() {
        assert_eq!(Function::from_name("rate"), Some(Function::Rate));
        assert_eq!(Function::from_name("changes"), Some(Function::Changes));
        assert_eq!(
            Function::from_name("last_over_time"),
            Some(Function::OverTime(OverTime::Last))
        );
        assert_eq!(Function::from_name("histogram_quantile"), None);
    }
}
