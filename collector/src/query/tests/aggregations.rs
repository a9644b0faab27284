//! Aggregations: grouping with `by`/`without`, the folds, `topk`/`bottomk`.

use super::{instant, instant_error, source};
use crate::query::{MemorySource, QueryError};

fn cpu() -> MemorySource {
    source(&[
        (r#"cpu{host="a", cpu="0", mode="idle"}"#, "1"),
        (r#"cpu{host="a", cpu="1", mode="idle"}"#, "3"),
        (r#"cpu{host="a", cpu="0", mode="user"}"#, "10"),
        (r#"cpu{host="b", cpu="0", mode="idle"}"#, "5"),
    ])
}

#[test]
fn by_keeps_only_the_listed_labels() {
    let s = cpu();
    assert_eq!(
        instant(&s, "sum by (host) (cpu)", 0),
        [r#"{host="a"} => 14"#, r#"{host="b"} => 5"#]
    );
    assert_eq!(
        instant(&s, "sum(cpu) by (host, mode)", 0),
        [
            r#"{host="a",mode="idle"} => 4"#,
            r#"{host="a",mode="user"} => 10"#,
            r#"{host="b",mode="idle"} => 5"#
        ]
    );
    assert_eq!(
        instant(&s, "count by (__name__) (cpu)", 0),
        ["cpu{} => 4"],
        "listing __name__ keeps it"
    );
}

#[test]
fn without_drops_the_listed_labels_and_the_name() {
    let s = cpu();
    assert_eq!(
        instant(&s, "max without (cpu) (cpu)", 0),
        [
            r#"{host="a",mode="idle"} => 3"#,
            r#"{host="a",mode="user"} => 10"#,
            r#"{host="b",mode="idle"} => 5"#
        ]
    );
    assert_eq!(
        instant(&s, "min without () (cpu)", 0).len(),
        4,
        "without nothing: one group per series, named by its other labels"
    );
}

#[test]
fn no_grouping_aggregates_everything() {
    let s = cpu();
    assert_eq!(instant(&s, "sum(cpu)", 0), ["{} => 19"]);
    assert_eq!(instant(&s, "avg(cpu)", 0), ["{} => 4.75"]);
    assert_eq!(instant(&s, "min(cpu)", 0), ["{} => 1"]);
    assert_eq!(instant(&s, "max(cpu)", 0), ["{} => 10"]);
    assert_eq!(instant(&s, "count(cpu)", 0), ["{} => 4"]);
    assert!(
        instant(&s, "sum(nothing)", 0).is_empty(),
        "no input, no group"
    );
}

#[test]
fn avg_by_host_of_idle() {
    let s = cpu();
    assert_eq!(
        instant(&s, r#"avg by (host) (cpu{mode="idle"})"#, 0),
        [r#"{host="a"} => 2"#, r#"{host="b"} => 5"#]
    );
}

#[test]
fn topk_returns_the_series_unchanged_best_first() {
    let s = cpu();
    assert_eq!(
        instant(&s, "topk(2, cpu)", 0),
        [
            r#"cpu{cpu="0",host="a",mode="user"} => 10"#,
            r#"cpu{cpu="0",host="b",mode="idle"} => 5"#
        ]
    );
    assert_eq!(
        instant(&s, "bottomk(1, cpu)", 0),
        [r#"cpu{cpu="0",host="a",mode="idle"} => 1"#]
    );
}

#[test]
fn topk_ties_are_cut_as_prometheus_cuts_them() {
    let s = source(&[
        (r#"x{host="d"}"#, "2"),
        (r#"x{host="c"}"#, "2"),
        (r#"x{host="a"}"#, "1"),
        (r#"x{host="b"}"#, "2"),
    ]);
    assert_eq!(
        instant(&s, "topk(2, x)", 0),
        [r#"x{host="b"} => 2"#, r#"x{host="c"} => 2"#]
    );
    assert_eq!(
        instant(&s, "bottomk(2, x)", 0),
        [r#"x{host="a"} => 1"#, r#"x{host="b"} => 2"#]
    );
    // Not always the lowest labels: the heap keeps b here, as Prometheus's does when its
    // storage returns the series in label order.
    let s = source(&[
        (r#"x{host="a"}"#, "2"),
        (r#"x{host="b"}"#, "2"),
        (r#"x{host="c"}"#, "5"),
    ]);
    assert_eq!(
        instant(&s, "topk(2, x)", 0),
        [r#"x{host="c"} => 5"#, r#"x{host="b"} => 2"#]
    );
}

#[test]
fn topk_by_picks_per_group() {
    let s = cpu();
    assert_eq!(
        instant(&s, "topk by (host) (1, cpu)", 0),
        [
            r#"cpu{cpu="0",host="a",mode="user"} => 10"#,
            r#"cpu{cpu="0",host="b",mode="idle"} => 5"#
        ]
    );
}

#[test]
fn topk_parameter_is_an_expression_truncated_to_an_integer() {
    let s = cpu();
    assert_eq!(
        instant(&s, "topk(scalar(count(cpu)) - 1.5, cpu)", 0).len(),
        2
    );
    assert!(instant(&s, "topk(0, cpu)", 0).is_empty());
    assert!(instant(&s, "topk(-3, cpu)", 0).is_empty());
    assert_eq!(instant(&s, "topk(100, cpu)", 0).len(), 4);
    let err = instant_error(&s, "topk(scalar(nothing), cpu)", 0);
    assert!(matches!(err, QueryError::InvalidParameter { .. }), "{err}");
}
