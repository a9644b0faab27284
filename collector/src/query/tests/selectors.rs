//! Instant and range selectors: matchers, lookback, staleness, `offset`, `@`.

use super::{MIN, instant, source};
use crate::query::{Engine, Limits, Value};
use crate::series::Sample;

fn up() -> crate::query::MemorySource {
    source(&[
        (r#"up{host="a"}"#, "1 2 3"),
        (r#"up{host="ab"}"#, "10 20 30"),
        (r#"down{host="a"}"#, "0 0 0"),
    ])
}

#[test]
fn instant_selector_takes_the_latest_sample_at_or_before_the_time() {
    let s = up();
    assert_eq!(
        instant(&s, r#"up{host="a"}"#, 2 * MIN),
        [r#"up{host="a"} => 3"#]
    );
    assert_eq!(
        instant(&s, r#"up{host="a"}"#, MIN + 30_000),
        [r#"up{host="a"} => 2"#],
        "the sample at 2m is in the future"
    );
}

#[test]
fn lookback_is_five_minutes_open_at_the_start() {
    let s = up();
    let last = 2 * MIN;
    assert_eq!(
        instant(&s, r#"up{host="a"}"#, last + 5 * MIN - 1),
        [r#"up{host="a"} => 3"#]
    );
    assert!(
        instant(&s, r#"up{host="a"}"#, last + 5 * MIN).is_empty(),
        "a sample exactly 5m old is out of (t-5m, t]"
    );
}

#[test]
fn staleness_marker_hides_the_series_until_the_next_sample() {
    let s = source(&[("up", "1 stale 3")]);
    assert_eq!(instant(&s, "up", 30_000), ["up{} => 1"]);
    assert!(instant(&s, "up", MIN + 30_000).is_empty());
    assert_eq!(instant(&s, "up", 2 * MIN), ["up{} => 3"]);
}

#[test]
fn matchers_are_anchored_and_the_name_can_be_a_matcher() {
    let s = up();
    assert_eq!(
        instant(&s, r#"{__name__="up", host=~"a"}"#, 2 * MIN),
        [r#"up{host="a"} => 3"#]
    );
    assert_eq!(
        instant(&s, r#"{__name__=~"up|down", host!~"a.+"}"#, 2 * MIN),
        [r#"down{host="a"} => 0"#, r#"up{host="a"} => 3"#]
    );
    assert_eq!(
        instant(&s, r#"up{host!="a"}"#, 2 * MIN),
        [r#"up{host="ab"} => 30"#]
    );
    assert!(instant(&s, r#"up{job="x"}"#, 2 * MIN).is_empty());
    assert_eq!(
        instant(&s, r#"up{job=""}"#, 2 * MIN).len(),
        2,
        "an empty matcher matches series without the label"
    );
}

#[test]
fn offset_reads_earlier_or_later_data() {
    let s = up();
    assert_eq!(
        instant(&s, r#"up{host="a"} offset 1m"#, 2 * MIN),
        [r#"up{host="a"} => 2"#]
    );
    assert_eq!(
        instant(&s, r#"up{host="a"} offset -1m"#, MIN),
        [r#"up{host="a"} => 3"#]
    );
    assert_eq!(
        instant(
            &s,
            r#"count_over_time(up{host="a"}[1m] offset 1m)"#,
            2 * MIN
        ),
        [r#"{host="a"} => 1"#]
    );
}

#[test]
fn at_modifier_pins_the_time() {
    let s = up();
    assert_eq!(
        instant(&s, r#"up{host="a"} @ 60"#, 100 * MIN),
        [r#"up{host="a"} => 2"#]
    );
    assert_eq!(
        instant(&s, r#"up{host="a"} @ 120 offset 2m"#, 100 * MIN),
        [r#"up{host="a"} => 1"#]
    );
    assert_eq!(
        instant(&s, r#"sum_over_time(up{host="a"}[2m] @ 120)"#, 100 * MIN),
        [r#"{host="a"} => 5"#]
    );
}

#[test]
fn range_selector_window_is_open_at_the_start() {
    let s = up();
    assert_eq!(
        instant(&s, r#"count_over_time(up{host="a"}[2m])"#, 2 * MIN),
        [r#"{host="a"} => 2"#],
        "(0m, 2m] holds the samples at 1m and 2m"
    );
    assert_eq!(
        instant(&s, r#"count_over_time(up{host="a"}[2m])"#, 2 * MIN - 1),
        [r#"{host="a"} => 2"#],
        "(-1ms, 2m-1ms] holds 0m and 1m"
    );
}

#[test]
fn range_selector_leaves_out_staleness_markers() {
    let s = source(&[("up", "1 stale 3")]);
    assert_eq!(instant(&s, "count_over_time(up[5m])", 2 * MIN), ["{} => 2"]);
}

#[test]
fn instant_query_of_a_range_selector_returns_the_raw_samples() {
    let s = up();
    let value = Engine::new(Limits::default())
        .instant(&s, r#"up{host="a"}[90s]"#, 2 * MIN)
        .unwrap();
    let Value::Matrix(series) = value else {
        panic!("expected a matrix, got {value:?}");
    };
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].labels.to_string(), r#"up{host="a"}"#);
    assert_eq!(
        series[0].samples,
        [
            Sample {
                timestamp_ms: MIN,
                value: 2.0
            },
            Sample {
                timestamp_ms: 2 * MIN,
                value: 3.0
            }
        ]
    );
}

#[test]
fn literals_are_scalars_and_strings() {
    let s = up();
    let engine = Engine::new(Limits::default());
    assert_eq!(
        engine.instant(&s, "1.5", 7).unwrap(),
        Value::Scalar(Sample {
            timestamp_ms: 7,
            value: 1.5
        })
    );
    assert_eq!(
        engine.instant(&s, r#""hello""#, 7).unwrap(),
        Value::String {
            timestamp_ms: 7,
            value: "hello".to_owned()
        }
    );
}
