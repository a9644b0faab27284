//! Binary operators: arithmetic, comparisons (filtering, or 0/1 with `bool`) and the set
//! operators `and`, `or`, `unless`, between scalars and instant vectors.
//!
//! Vector-to-vector operations match elements by signature: with `on (l...)` the values of
//! the listed labels, otherwise all labels but the metric name and those in `ignoring`.
//! Arithmetic and comparisons match one-to-one: a signature repeated on the right is
//! Prometheus's many-to-many error, and two left elements that both find the same right
//! one is its "multiple matches" error. Results carry the left side's labels, reduced to
//! the `on` labels or without the `ignoring` ones, and without the metric name unless the
//! operator is a filtering comparison.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use promql_parser::parser::token::{
    T_ADD, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD, T_MUL,
    T_NEQ, T_POW, T_SUB, TokenType,
};
use promql_parser::parser::{BinaryExpr, LabelModifier};

use crate::series::{Labels, METRIC_NAME};

use super::error::QueryError;
use super::eval::{StepContext, eval};
use super::value::{Element, StepValue, check_unique_labels, drop_metric_name};

/// A binary operator of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Mod,
    /// `^`.
    Pow,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `>`.
    Gt,
    /// `<`.
    Lt,
    /// `>=`.
    Ge,
    /// `<=`.
    Le,
    /// `and`.
    And,
    /// `or`.
    Or,
    /// `unless`.
    Unless,
}

impl BinaryOp {
    /// The operator of a parsed token, if the subset has it.
    pub fn from_token(token: TokenType) -> Option<Self> {
        Some(match token.id() {
            T_ADD => Self::Add,
            T_SUB => Self::Sub,
            T_MUL => Self::Mul,
            T_DIV => Self::Div,
            T_MOD => Self::Mod,
            T_POW => Self::Pow,
            T_EQLC => Self::Eq,
            T_NEQ => Self::Ne,
            T_GTR => Self::Gt,
            T_LSS => Self::Lt,
            T_GTE => Self::Ge,
            T_LTE => Self::Le,
            T_LAND => Self::And,
            T_LOR => Self::Or,
            T_LUNLESS => Self::Unless,
            _ => return None,
        })
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Gt | Self::Lt | Self::Ge | Self::Le
        )
    }

    /// `(value, keep)`: arithmetic always keeps its result; a comparison keeps the left
    /// value when it holds.
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            Self::Add => (l + r, true),
            Self::Sub => (l - r, true),
            Self::Mul => (l * r, true),
            Self::Div => (l / r, true),
            // Rust's `%` on floats is C's fmod, as Go's math.Mod: the sign of the dividend.
            Self::Mod => (l % r, true),
            Self::Pow => (l.powf(r), true),
            Self::Eq => (l, l == r),
            Self::Ne => (l, l != r),
            Self::Gt => (l, l > r),
            Self::Lt => (l, l < r),
            Self::Ge => (l, l >= r),
            Self::Le => (l, l <= r),
            // Set operators never reach element arithmetic.
            Self::And | Self::Or | Self::Unless => (l, true),
        }
    }
}

/// Evaluates a binary expression at the context's step.
///
/// # Errors
/// An operand's error, matching errors, or [`QueryError::DuplicateLabelset`].
pub(crate) fn eval_binary(
    ctx: &StepContext<'_>,
    bin: &BinaryExpr,
) -> Result<StepValue, QueryError> {
    let op = BinaryOp::from_token(bin.op).ok_or_else(|| {
        QueryError::Unsupported(super::parse::Unsupported::Operator(bin.op.to_string()))
    })?;
    let return_bool = bin.return_bool();
    let matching = bin.modifier.as_ref().and_then(|m| m.matching.as_ref());
    let lhs = eval(ctx, &bin.lhs)?;
    let rhs = eval(ctx, &bin.rhs)?;
    let out = match (lhs, rhs) {
        (StepValue::Scalar(l), StepValue::Scalar(r)) => {
            let (value, keep) = op.apply(l, r);
            let value = if op.is_comparison() {
                if keep { 1.0 } else { 0.0 }
            } else {
                value
            };
            return Ok(StepValue::Scalar(value));
        }
        (StepValue::Vector(l), StepValue::Scalar(r)) => vector_scalar(op, l, r, false, return_bool),
        (StepValue::Scalar(l), StepValue::Vector(r)) => vector_scalar(op, r, l, true, return_bool),
        (StepValue::Vector(l), StepValue::Vector(r)) => match op {
            BinaryOp::And => and(l, &r, matching),
            BinaryOp::Or => or(l, r, matching),
            BinaryOp::Unless => unless(l, &r, matching),
            _ => one_to_one(op, l, r, matching, return_bool)?,
        },
        (l, r) => {
            return Err(QueryError::OperandType {
                operation: bin.op.to_string(),
                found: if matches!(l, StepValue::Scalar(_) | StepValue::Vector(_)) {
                    r.type_name()
                } else {
                    l.type_name()
                },
            });
        }
    };
    check_unique_labels(&out)?;
    Ok(StepValue::Vector(out))
}

/// A vector and a scalar; `swapped` when the scalar was on the left. A filtering
/// comparison keeps the vector's own value whichever side it was on.
fn vector_scalar(
    op: BinaryOp,
    vector: Vec<Element>,
    scalar: f64,
    swapped: bool,
    return_bool: bool,
) -> Vec<Element> {
    vector
        .into_iter()
        .filter_map(|element| {
            let (l, r) = if swapped {
                (scalar, element.value)
            } else {
                (element.value, scalar)
            };
            let (mut value, keep) = op.apply(l, r);
            if op.is_comparison() {
                value = element.value;
            }
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                return None;
            }
            let labels = if op.is_comparison() && !return_bool {
                element.labels
            } else {
                drop_metric_name(&element.labels)
            };
            Some(Element::new(labels, value))
        })
        .collect()
}

/// The labels two elements must share to match.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => {
            labels.filtered(|name| on.labels.iter().any(|l| l == name))
        }
        Some(LabelModifier::Exclude(ignoring)) => labels
            .filtered(|name| name != METRIC_NAME && !ignoring.labels.iter().any(|l| l == name)),
        None => labels.filtered(|name| name != METRIC_NAME),
    }
}

fn one_to_one(
    op: BinaryOp,
    lhs: Vec<Element>,
    rhs: Vec<Element>,
    matching: Option<&LabelModifier>,
    return_bool: bool,
) -> Result<Vec<Element>, QueryError> {
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    let mut right: HashMap<Labels, Element> = HashMap::with_capacity(rhs.len());
    for element in rhs {
        let sig = signature(&element.labels, matching);
        if let Some(previous) = right.get(&sig) {
            return Err(QueryError::DuplicateMatch {
                group: sig.to_string(),
                side: "right",
                first: element.labels.to_string(),
                second: previous.labels.to_string(),
            });
        }
        right.insert(sig, element);
    }
    let mut matched: HashSet<Labels> = HashSet::new();
    let mut out = Vec::new();
    for element in lhs {
        let sig = signature(&element.labels, matching);
        let Some(partner) = right.get(&sig) else {
            continue;
        };
        let (mut value, keep) = op.apply(element.value, partner.value);
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        if !matched.insert(sig) {
            return Err(QueryError::MultipleMatches {
                group: partner.labels.to_string(),
            });
        }
        out.push(Element::new(
            result_labels(&element.labels, op, matching, return_bool),
            value,
        ));
    }
    Ok(out)
}

/// The left element's labels, reduced as the matching says.
fn result_labels(
    labels: &Arc<Labels>,
    op: BinaryOp,
    matching: Option<&LabelModifier>,
    return_bool: bool,
) -> Arc<Labels> {
    let drop_name = !op.is_comparison() || return_bool;
    let dropped = |name: &str| drop_name && name == METRIC_NAME;
    match matching {
        Some(LabelModifier::Include(on)) => {
            Arc::new(labels.filtered(|name| on.labels.iter().any(|l| l == name) && !dropped(name)))
        }
        Some(LabelModifier::Exclude(ignoring)) if !ignoring.labels.is_empty() => Arc::new(
            labels.filtered(|name| !(ignoring.labels.iter().any(|l| l == name) || dropped(name))),
        ),
        _ if drop_name => drop_metric_name(labels),
        _ => Arc::clone(labels),
    }
}

fn signatures(elements: &[Element], matching: Option<&LabelModifier>) -> HashSet<Labels> {
    elements
        .iter()
        .map(|e| signature(&e.labels, matching))
        .collect()
}

/// `and`: left elements whose signature appears on the right.
fn and(lhs: Vec<Element>, rhs: &[Element], matching: Option<&LabelModifier>) -> Vec<Element> {
    if lhs.is_empty() || rhs.is_empty() {
        return Vec::new();
    }
    let right = signatures(rhs, matching);
    lhs.into_iter()
        .filter(|e| right.contains(&signature(&e.labels, matching)))
        .collect()
}

/// `or`: every left element, then right elements whose signature the left lacks.
fn or(mut lhs: Vec<Element>, rhs: Vec<Element>, matching: Option<&LabelModifier>) -> Vec<Element> {
    let left = signatures(&lhs, matching);
    lhs.extend(
        rhs.into_iter()
            .filter(|e| !left.contains(&signature(&e.labels, matching))),
    );
    lhs
}

/// `unless`: left elements whose signature the right lacks.
fn unless(lhs: Vec<Element>, rhs: &[Element], matching: Option<&LabelModifier>) -> Vec<Element> {
    let right = signatures(rhs, matching);
    lhs.into_iter()
        .filter(|e| !right.contains(&signature(&e.labels, matching)))
        .collect()
}
