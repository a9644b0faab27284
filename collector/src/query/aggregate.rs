//! Aggregation operators: `sum`, `avg`, `min`, `max`, `count`, `topk`, `bottomk`, with
//! `by (...)` or `without (...)`.
//!
//! Groups are keyed by the labels the grouping keeps: `by` keeps the listed labels only,
//! `without` drops the listed ones and the metric name, no clause puts everything in one
//! group. `sum`..`count` output one element per group labelled by its key; `topk` and
//! `bottomk` output the chosen input elements unchanged, each group's best first.

use std::collections::HashMap;
use std::sync::Arc;

use promql_parser::parser::token::{T_AVG, T_BOTTOMK, T_COUNT, T_MAX, T_MIN, T_SUM, T_TOPK};
use promql_parser::parser::{AggregateExpr, LabelModifier, token::TokenType};

use crate::series::{Labels, METRIC_NAME};

use super::error::QueryError;
use super::eval::{StepContext, eval_scalar, eval_vector};
use super::range_functions::{KahanSum, Mean};
use super::value::{Element, StepValue};

/// An aggregation of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// `sum`.
    Sum,
    /// `avg`.
    Avg,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `count`.
    Count,
    /// `topk(k, v)`.
    Topk,
    /// `bottomk(k, v)`.
    Bottomk,
}

impl Aggregation {
    /// The aggregation of a parsed operator token, if the subset has it.
    pub fn from_token(token: TokenType) -> Option<Self> {
        Some(match token.id() {
            T_SUM => Self::Sum,
            T_AVG => Self::Avg,
            T_MIN => Self::Min,
            T_MAX => Self::Max,
            T_COUNT => Self::Count,
            T_TOPK => Self::Topk,
            T_BOTTOMK => Self::Bottomk,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Count => "count",
            Self::Topk => "topk",
            Self::Bottomk => "bottomk",
        }
    }
}

/// Evaluates an aggregation at the context's step.
///
/// # Errors
/// The operand's error, or [`QueryError::InvalidParameter`] for a NaN or out-of-range `k`.
pub(crate) fn eval_aggregate(
    ctx: &StepContext<'_>,
    agg: &AggregateExpr,
) -> Result<StepValue, QueryError> {
    let op = Aggregation::from_token(agg.op).ok_or_else(|| {
        QueryError::Unsupported(super::parse::Unsupported::Aggregation(agg.op.to_string()))
    })?;
    let k = match (&agg.param, op) {
        (Some(param), Aggregation::Topk | Aggregation::Bottomk) => {
            Some(parse_k(op, eval_scalar(ctx, param, op.name())?)?)
        }
        _ => None,
    };
    let input = eval_vector(ctx, &agg.expr, op.name())?;
    let groups = group(input, agg.modifier.as_ref());
    let out = match k {
        Some(k) => groups
            .into_iter()
            .flat_map(|(_, members)| select_k(members, k, op == Aggregation::Topk))
            .collect(),
        None => groups
            .into_iter()
            .map(|(key, members)| Element::new(Arc::new(key), fold(op, &members)))
            .collect(),
    };
    Ok(StepValue::Vector(out))
}

/// `k` as Prometheus takes it: truncated to an integer; below 1 selects nothing.
fn parse_k(op: Aggregation, k: f64) -> Result<usize, QueryError> {
    if k.is_nan() {
        return Err(QueryError::InvalidParameter {
            operation: op.name(),
            reason: "k is NaN".to_owned(),
        });
    }
    if k >= 9.223_372_036_854_776e18 || k <= -9.223_372_036_854_776e18 {
        return Err(QueryError::InvalidParameter {
            operation: op.name(),
            reason: format!("k = {k} does not fit in a 64-bit integer"),
        });
    }
    // Truncation toward zero is Prometheus's `int64(k)`; the range was checked above.
    let k = k as i64;
    Ok(usize::try_from(k).unwrap_or(0))
}

/// The elements by group, groups in order of first appearance.
fn group(input: Vec<Element>, modifier: Option<&LabelModifier>) -> Vec<(Labels, Vec<Element>)> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<Element>)> = Vec::new();
    for element in input {
        let key = match modifier {
            None => Labels::default(),
            Some(LabelModifier::Include(by)) => element
                .labels
                .filtered(|name| by.labels.iter().any(|l| l == name)),
            Some(LabelModifier::Exclude(without)) => element
                .labels
                .filtered(|name| name != METRIC_NAME && !without.labels.iter().any(|l| l == name)),
        };
        match index.get(&key) {
            Some(&i) => groups[i].1.push(element),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![element]));
            }
        }
    }
    groups
}

/// One group's value for `sum`, `avg`, `min`, `max` and `count`.
fn fold(op: Aggregation, members: &[Element]) -> f64 {
    let values = members.iter().map(|e| e.value);
    let first = members.first().map_or(f64::NAN, |e| e.value);
    match op {
        Aggregation::Sum => {
            let mut sum = KahanSum::default();
            values.for_each(|v| sum.add(v));
            sum.total()
        }
        Aggregation::Avg => {
            let mut mean = Mean::default();
            values.for_each(|v| mean.add(v));
            mean.value()
        }
        // A NaN is replaced by any later value, so NaN comes out only when all are NaN.
        Aggregation::Max => values.fold(first, |m, v| if m < v || m.is_nan() { v } else { m }),
        Aggregation::Min => values.fold(first, |m, v| if m > v || m.is_nan() { v } else { m }),
        Aggregation::Count => members.len() as f64,
        Aggregation::Topk | Aggregation::Bottomk => f64::NAN,
    }
}

/// Whether `a` ranks below `b` for `topk` (`top`) or above it for `bottomk`; NaN always
/// ranks worst.
fn worse(a: f64, b: f64, top: bool) -> bool {
    if a.is_nan() {
        return !b.is_nan();
    }
    if b.is_nan() {
        return false;
    }
    if top { a < b } else { a > b }
}

/// The `k` best members of a group, best first (equal values in input order).
///
/// Which of several equal values make the cut is decided as Prometheus decides it: the
/// members go through a binary heap with the worst on top, built and repaired as Go's
/// `container/heap` does, and a newcomer replaces the top only if strictly better. The
/// input comes in label order here; Prometheus's comes in its storage's order (label order
/// for compacted blocks, creation order in the head), so on fresh data its ties may fall
/// differently.
fn select_k(members: Vec<Element>, k: usize, top: bool) -> Vec<Element> {
    if k == 0 {
        return Vec::new();
    }
    // Prometheus's heap order: NaN sorts first, then ascending for topk, descending for
    // bottomk.
    let less = |a: f64, b: f64| a.is_nan() || if top { a < b } else { a > b };
    let mut heap: Vec<(usize, Element)> = Vec::with_capacity(k.min(members.len()));
    for (position, element) in members.into_iter().enumerate() {
        if heap.len() < k {
            heap.push((position, element));
            let last = heap.len() - 1;
            heap_up(&mut heap, last, |a, b| less(a.1.value, b.1.value));
        } else if worse(heap[0].1.value, element.value, top) {
            heap[0] = (position, element);
            if !heap_down(&mut heap, 0, |a, b| less(a.1.value, b.1.value)) {
                heap_up(&mut heap, 0, |a, b| less(a.1.value, b.1.value));
            }
        }
    }
    heap.sort_by(|(pa, a), (pb, b)| {
        if worse(b.value, a.value, top) {
            std::cmp::Ordering::Less
        } else if worse(a.value, b.value, top) {
            std::cmp::Ordering::Greater
        } else {
            pa.cmp(pb)
        }
    });
    heap.into_iter().map(|(_, e)| e).collect()
}

/// Go's `container/heap` `up`: moves `j` towards the root while it is less than its parent.
fn heap_up<T>(heap: &mut [T], mut j: usize, less: impl Fn(&T, &T) -> bool) {
    while j > 0 {
        let parent = (j - 1) / 2;
        if !less(&heap[j], &heap[parent]) {
            break;
        }
        heap.swap(parent, j);
        j = parent;
    }
}

/// Go's `container/heap` `down`: moves `i0` down while a child is less; whether it moved.
fn heap_down<T>(heap: &mut [T], i0: usize, less: impl Fn(&T, &T) -> bool) -> bool {
    let mut i = i0;
    loop {
        let left = 2 * i + 1;
        if left >= heap.len() {
            break;
        }
        let mut child = left;
        let right = left + 1;
        if right < heap.len() && less(&heap[right], &heap[left]) {
            child = right;
        }
        if !less(&heap[child], &heap[i]) {
            break;
        }
        heap.swap(i, child);
        i = child;
    }
    i > i0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(host: &str, value: f64) -> Element {
        Element::new(Arc::new(Labels::from_pairs([("host", host)])), value)
    }

    fn hosts(elements: &[Element]) -> Vec<&str> {
        elements
            .iter()
            .map(|e| e.labels.get("host").unwrap_or(""))
            .collect()
    }

    #[test]
    fn topk_keeps_the_earlier_of_equal_values() {
        let input = vec![
            element("a", 1.0),
            element("b", 2.0),
            element("c", 2.0),
            element("d", 2.0),
        ];
        assert_eq!(hosts(&select_k(input.clone(), 2, true)), ["b", "c"]);
        assert_eq!(hosts(&select_k(input, 2, false)), ["a", "b"]);
    }

    #[test]
    fn topk_ranks_nan_last_and_orders_best_first() {
        let input = vec![element("a", f64::NAN), element("b", 1.0), element("c", 3.0)];
        assert_eq!(hosts(&select_k(input.clone(), 2, true)), ["c", "b"]);
        assert_eq!(hosts(&select_k(input.clone(), 2, false)), ["b", "c"]);
        assert_eq!(hosts(&select_k(input, 5, true)), ["c", "b", "a"]);
    }

    #[test]
    fn k_is_truncated_and_checked() {
        assert_eq!(parse_k(Aggregation::Topk, 2.9).unwrap(), 2);
        assert_eq!(parse_k(Aggregation::Topk, -1.0).unwrap(), 0);
        assert!(parse_k(Aggregation::Topk, f64::NAN).is_err());
        assert!(parse_k(Aggregation::Bottomk, 1e19).is_err());
    }

    #[test]
    fn min_and_max_skip_nan_unless_all_are() {
        let members = [element("a", f64::NAN), element("b", 2.0), element("c", 1.0)];
        assert_eq!(fold(Aggregation::Max, &members), 2.0);
        assert_eq!(fold(Aggregation::Min, &members), 1.0);
        assert!(fold(Aggregation::Max, &[element("a", f64::NAN)]).is_nan());
    }
}
