//! Binary operators: scalar and vector operands, matching, filters, `bool`, set operators.

use super::{instant, instant_error, scalar, source};
use crate::query::{MemorySource, QueryError};

fn fs() -> MemorySource {
    source(&[
        (r#"avail{host="a", mount="/"}"#, "5"),
        (r#"avail{host="a", mount="/var"}"#, "50"),
        (r#"avail{host="b", mount="/"}"#, "40"),
        (r#"size{host="a", mount="/"}"#, "100"),
        (r#"size{host="a", mount="/var"}"#, "100"),
        (r#"size{host="b", mount="/"}"#, "100"),
        (r#"up{host="a", job="node"}"#, "1"),
        (r#"up{host="b", job="node"}"#, "0"),
    ])
}

#[test]
fn scalar_arithmetic_follows_precedence() {
    let s = fs();
    assert_eq!(scalar(&s, "1 + 2 * 3", 0), 7.0);
    assert_eq!(scalar(&s, "2 ^ 3 ^ 2", 0), 512.0, "^ is right-associative");
    assert_eq!(scalar(&s, "-7 % 3", 0), -1.0, "% keeps the dividend's sign");
    assert_eq!(scalar(&s, "1 > bool 2", 0), 0.0);
    assert_eq!(scalar(&s, "2 >= bool 2", 0), 1.0);
    assert!(scalar(&s, "0 / 0", 0).is_nan());
    assert_eq!(scalar(&s, "1 / 0", 0), f64::INFINITY);
    assert_eq!(scalar(&s, "0x10 + 1e3", 0), 1016.0);
    assert_eq!(scalar(&s, "-Inf", 0), f64::NEG_INFINITY);
    assert!(scalar(&s, "NaN", 0).is_nan());
}

#[test]
fn vector_scalar_arithmetic_drops_the_name() {
    let s = fs();
    assert_eq!(
        instant(&s, "up * 2", 0),
        [
            r#"{host="a",job="node"} => 2"#,
            r#"{host="b",job="node"} => 0"#
        ]
    );
    assert_eq!(
        instant(&s, "1 - up", 0),
        [
            r#"{host="a",job="node"} => 0"#,
            r#"{host="b",job="node"} => 1"#
        ]
    );
}

#[test]
fn comparison_filters_and_keeps_name_and_value() {
    let s = fs();
    assert_eq!(
        instant(&s, "up == 0", 0),
        [r#"up{host="b",job="node"} => 0"#]
    );
    assert_eq!(
        instant(&s, "0.5 < up", 0),
        [r#"up{host="a",job="node"} => 1"#],
        "the vector's value is kept when the scalar is on the left"
    );
}

#[test]
fn bool_comparison_returns_zero_or_one_without_the_name() {
    let s = fs();
    assert_eq!(
        instant(&s, "up > bool 0.5", 0),
        [
            r#"{host="a",job="node"} => 1"#,
            r#"{host="b",job="node"} => 0"#
        ]
    );
    assert_eq!(
        instant(&s, "avail > bool on (host, mount) size", 0),
        [
            r#"{host="a",mount="/"} => 0"#,
            r#"{host="a",mount="/var"} => 0"#,
            r#"{host="b",mount="/"} => 0"#
        ]
    );
}

#[test]
fn vectors_match_on_all_labels_but_the_name() {
    let s = fs();
    assert_eq!(
        instant(&s, "avail / size", 0),
        [
            r#"{host="a",mount="/"} => 0.05"#,
            r#"{host="a",mount="/var"} => 0.5"#,
            r#"{host="b",mount="/"} => 0.4"#
        ]
    );
    assert_eq!(
        instant(&s, "avail / size < 0.1", 0),
        [r#"{host="a",mount="/"} => 0.05"#]
    );
    assert!(
        instant(&s, "avail + up", 0).is_empty(),
        "no label set in common"
    );
}

#[test]
fn comparison_between_vectors_keeps_the_left_side() {
    let s = fs();
    assert_eq!(
        instant(&s, "avail < size / 10", 0),
        [r#"avail{host="a",mount="/"} => 5"#]
    );
}

#[test]
fn on_keeps_only_the_listed_labels() {
    let s = fs();
    assert_eq!(
        instant(&s, r#"avail{mount="/"} * on (host) up"#, 0),
        [r#"{host="a"} => 5"#, r#"{host="b"} => 0"#]
    );
}

#[test]
fn ignoring_removes_the_listed_labels() {
    let s = fs();
    assert_eq!(
        instant(&s, r#"avail{mount="/"} + ignoring (mount, job) up"#, 0),
        [r#"{host="a"} => 6"#, r#"{host="b"} => 40"#]
    );
}

#[test]
fn duplicates_on_the_right_are_many_to_many() {
    let s = fs();
    let err = instant_error(&s, r#"up * on (host) avail"#, 0);
    assert!(
        matches!(err, QueryError::DuplicateMatch { side: "right", .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            r#"found duplicate series for the match group {host="a"} on the right hand-side of the operation: ["#
        ),
        "{err}"
    );
    assert!(err.to_string().ends_with(
        "many-to-many matching not allowed: matching labels must be unique on one side"
    ));
}

#[test]
fn duplicates_on_the_left_need_group_left() {
    let s = fs();
    let err = instant_error(&s, r#"avail * on (host) up"#, 0);
    assert!(matches!(err, QueryError::MultipleMatches { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    );
    assert_eq!(
        instant(&s, r#"avail > on (host) up * 10"#, 0),
        [r#"{host="a"} => 50"#, r#"{host="b"} => 40"#],
        "a filtered-out element doesn't count as a match"
    );
}

#[test]
fn and_keeps_left_elements_with_a_partner() {
    let s = fs();
    assert_eq!(
        instant(&s, "avail and on (host) (up == 1)", 0),
        [
            r#"avail{host="a",mount="/"} => 5"#,
            r#"avail{host="a",mount="/var"} => 50"#
        ]
    );
    assert!(instant(&s, "avail and up", 0).is_empty());
}

#[test]
fn or_adds_right_elements_the_left_lacks() {
    let s = fs();
    assert_eq!(
        instant(
            &s,
            r#"avail{mount="/var"} or on (host) avail{mount="/"}"#,
            0
        ),
        [
            r#"avail{host="a",mount="/var"} => 50"#,
            r#"avail{host="b",mount="/"} => 40"#
        ]
    );
    assert_eq!(instant(&s, "nothing or up", 0).len(), 2);
}

#[test]
fn unless_drops_left_elements_with_a_partner() {
    let s = fs();
    assert_eq!(
        instant(&s, "avail unless on (host) (up == 1)", 0),
        [r#"avail{host="b",mount="/"} => 40"#]
    );
    assert_eq!(
        instant(&s, "avail unless ignoring (mount) up", 0).len(),
        3,
        "`job` on the right only: no signature matches"
    );
}

#[test]
fn unary_minus_negates_and_drops_the_name() {
    let s = fs();
    assert_eq!(scalar(&s, "-(1 + 2)", 0), -3.0);
    assert_eq!(
        instant(&s, r#"-up{host="a"}"#, 0),
        [r#"{host="a",job="node"} => -1"#]
    );
}
