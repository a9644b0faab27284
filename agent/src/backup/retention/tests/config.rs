//! The written forms: counts, spans, group-by values, tag lists, TOML and JSON.

use super::*;

#[test]
fn group_by_parses_restic_flag_values() {
    let parse = |s: &str| s.parse::<GroupBy>();
    assert_eq!(parse("host,paths"), Ok(GroupBy::default()));
    assert_eq!(
        parse("hosts, path,tag"),
        Ok(GroupBy {
            host: true,
            paths: true,
            tags: true
        })
    );
    assert_eq!(parse(""), Ok(GroupBy::NONE));
    assert_eq!(
        parse("owner"),
        Err(RetentionError::GroupBy {
            field: "owner".into()
        })
    );
    assert_eq!(GroupBy::default().to_string(), "host,paths");
    assert_eq!(GroupBy::NONE.to_string(), "");
}

#[test]
fn counts_parse_like_restic() {
    assert_eq!(parse_count("7"), Ok(7));
    assert_eq!(parse_count(" 0 "), Ok(0));
    assert_eq!(parse_count("unlimited"), Ok(UNLIMITED));
    assert_eq!(parse_count("-1"), Ok(UNLIMITED));
    for bad in ["-2", "seven", "", "99999999999"] {
        let err = parse_count(bad).expect_err(bad);
        assert!(
            matches!(err, RetentionError::Count { ref input, .. } if input == bad),
            "{err}"
        );
    }
    assert!(
        parse_count("-2")
            .expect_err("-2")
            .to_string()
            .contains("unlimited")
    );
}

#[test]
fn calendar_durations_parse_and_print_restic_syntax() {
    let span: CalendarDuration = "2y5m7d3h".parse().expect("span");
    assert_eq!(
        span,
        CalendarDuration {
            years: 2,
            months: 5,
            days: 7,
            hours: 3
        }
    );
    assert_eq!(span.to_string(), "2y5m7d3h");
    assert_eq!(
        "3h1y"
            .parse::<CalendarDuration>()
            .expect("span")
            .to_string(),
        "1y3h"
    );
    assert!("0d".parse::<CalendarDuration>().expect("span").is_zero());

    for (bad, why) in [
        ("", "empty"),
        ("7", "no unit"),
        ("7w", "unknown unit"),
        ("-1d", "negative"),
        ("1d2d", "twice"),
        ("d", "expected a number"),
        ("99999999999d", "too large"),
    ] {
        let err = bad.parse::<CalendarDuration>().expect_err(bad).to_string();
        assert!(
            err.contains(why) && err.contains(&format!("{bad:?}")),
            "{bad}: {err}"
        );
    }
}

#[test]
fn validate_reports_every_bad_tag_entry() {
    let mut policy = RetentionPolicy {
        keep_tags: vec!["".into(), "a,b".into(), "a,".into()],
        ..Default::default()
    };
    assert_eq!(
        policy.validate(),
        Err(RetentionError::EmptyTag { entry: "a,".into() })
    );
    policy.keep_tags.push("a,,b".into());
    let err = policy.validate().expect_err("two problems");
    assert!(matches!(&err, RetentionError::Policy { problems } if problems.len() == 2));
    assert!(err.to_string().starts_with("2 problems"), "{err}");
    policy.keep_tags.truncate(2);
    assert_eq!(policy.validate(), Ok(()));
}

#[test]
fn policy_reads_and_writes_toml() {
    let text = r#"
        keep_last = 3
        keep_daily = "unlimited"
        keep_weekly = -1
        keep_within = "1y6m"
        keep_within_daily = "7d"
        keep_tags = ["manual", "db,daily"]
    "#;
    let policy: RetentionPolicy = toml::from_str(text).expect("policy");
    assert_eq!(policy.keep_last, Some(3));
    assert_eq!(policy.keep_daily, Some(UNLIMITED));
    assert_eq!(policy.keep_weekly, Some(UNLIMITED));
    assert_eq!(policy.keep_monthly, None);
    assert_eq!(
        policy.keep_within,
        Some(CalendarDuration {
            years: 1,
            months: 6,
            ..Default::default()
        })
    );
    assert_eq!(policy.keep_tags, ["manual", "db,daily"]);

    let written = toml::to_string(&policy).expect("serialize");
    assert!(written.contains("keep_daily = \"unlimited\""), "{written}");
    assert_eq!(
        toml::from_str::<RetentionPolicy>(&written).expect("reread"),
        policy
    );

    for (bad, why) in [
        ("keep_daily = -2", "negative"),
        ("keep_daily = \"lots\"", "whole number"),
        ("keep_within = \"5x\"", "unknown unit"),
        ("keep_dayly = 3", "unknown field"),
    ] {
        let err = toml::from_str::<RetentionPolicy>(bad)
            .expect_err(bad)
            .to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn snapshot_meta_round_trips_json_with_its_offset() {
    let snapshot = snap_rfc3339("x", "2024-03-10T23:30:00-02:00");
    let json = serde_json::to_string(&snapshot).expect("json");
    assert!(json.contains("2024-03-10T23:30:00-02:00"), "{json}");
    assert_eq!(
        serde_json::from_str::<SnapshotMeta>(&json).expect("back"),
        snapshot
    );
}
