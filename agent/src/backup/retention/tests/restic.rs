//! restic's own expectations: the snapshot list of its `TestApplyPolicy`
//! (`internal/data/snapshot_policy_test.go`) and, per policy, the snapshots and reasons of
//! its golden files (`internal/data/testdata/policy_keep_snapshots_<n>`), restated here as
//! "time: reasons" lines. All times are UTC; nothing is in the future.

use super::*;

/// restic's test list, in its order (the order decides between equal times). The one
/// snapshot with paths there is irrelevant without grouping and left plain.
const SNAPSHOTS: &[(&str, &[&str])] = &[
    ("2014-09-01 10:20:30", &[]),
    ("2014-09-02 10:20:30", &[]),
    ("2014-09-05 10:20:30", &[]),
    ("2014-09-06 10:20:30", &[]),
    ("2014-09-08 10:20:30", &[]),
    ("2014-09-09 10:20:30", &[]),
    ("2014-09-10 10:20:30", &[]),
    ("2014-09-11 10:20:30", &[]),
    ("2014-09-20 10:20:30", &[]),
    ("2014-09-22 10:20:30", &[]),
    ("2014-08-08 10:20:30", &[]),
    ("2014-08-10 10:20:30", &[]),
    ("2014-08-12 10:20:30", &[]),
    ("2014-08-13 10:20:30", &[]),
    ("2014-08-13 10:20:30.1", &[]),
    ("2014-08-15 10:20:30", &[]),
    ("2014-08-18 10:20:30", &[]),
    ("2014-08-20 10:20:30", &[]),
    ("2014-08-21 10:20:30", &[]),
    ("2014-08-22 10:20:30", &[]),
    ("2014-10-01 10:20:30", &["foo"]),
    ("2014-10-02 10:20:30", &["foo"]),
    ("2014-10-05 10:20:30", &["foo"]),
    ("2014-10-06 10:20:30", &["foo"]),
    ("2014-10-08 10:20:30", &["foo"]),
    ("2014-10-09 10:20:30", &["foo"]),
    ("2014-10-10 10:20:30", &["foo"]),
    ("2014-10-11 10:20:30", &["foo"]),
    ("2014-10-20 10:20:30", &["foo"]),
    ("2014-10-22 10:20:30", &["foo"]),
    ("2014-11-08 10:20:30", &["foo"]),
    ("2014-11-10 10:20:30", &["foo"]),
    ("2014-11-12 10:20:30", &["foo"]),
    ("2014-11-13 10:20:30", &["foo"]),
    ("2014-11-13 10:20:30.1", &["bar"]),
    ("2014-11-15 10:20:30", &["foo", "bar"]),
    ("2014-11-18 10:20:30", &[]),
    ("2014-11-20 10:20:30", &[]),
    ("2014-11-21 10:20:30", &[]),
    ("2014-11-22 10:20:30", &[]),
    ("2015-09-01 10:20:30", &[]),
    ("2015-09-02 10:20:30", &[]),
    ("2015-09-05 10:20:30", &[]),
    ("2015-09-06 10:20:30", &[]),
    ("2015-09-08 10:20:30", &[]),
    ("2015-09-09 10:20:30", &[]),
    ("2015-09-10 10:20:30", &[]),
    ("2015-09-11 10:20:30", &[]),
    ("2015-09-20 10:20:30", &[]),
    ("2015-09-22 10:20:30", &[]),
    ("2015-08-08 10:20:30", &[]),
    ("2015-08-10 10:20:30", &[]),
    ("2015-08-12 10:20:30", &[]),
    ("2015-08-13 10:20:30", &[]),
    ("2015-08-13 10:20:30.1", &[]),
    ("2015-08-15 10:20:30", &[]),
    ("2015-08-18 10:20:30", &[]),
    ("2015-08-20 10:20:30", &[]),
    ("2015-08-21 10:20:30", &[]),
    ("2015-08-22 10:20:30", &[]),
    ("2015-10-01 10:20:30", &[]),
    ("2015-10-02 10:20:30", &[]),
    ("2015-10-05 10:20:30", &[]),
    ("2015-10-06 10:20:30", &[]),
    ("2015-10-08 10:20:30", &[]),
    ("2015-10-09 10:20:30", &[]),
    ("2015-10-10 10:20:30", &[]),
    ("2015-10-11 10:20:30", &[]),
    ("2015-10-20 10:20:30", &[]),
    ("2015-10-22 10:20:30", &[]),
    ("2015-10-22 10:20:30", &[]),
    ("2015-10-22 10:20:30", &["foo", "bar"]),
    ("2015-10-22 10:20:30", &["foo", "bar"]),
    ("2015-10-22 10:20:30", &["foo", "bar"]),
    ("2015-11-08 10:20:30", &[]),
    ("2015-11-10 10:20:30", &[]),
    ("2015-11-12 10:20:30", &[]),
    ("2015-11-13 10:20:30", &[]),
    ("2015-11-13 10:20:30.1", &[]),
    ("2015-11-15 10:20:30", &[]),
    ("2015-11-18 10:20:30", &[]),
    ("2015-11-20 10:20:30", &[]),
    ("2015-11-21 10:20:30", &[]),
    ("2015-11-22 10:20:30", &[]),
    ("2016-01-01 01:02:03", &[]),
    ("2016-01-01 01:03:03", &[]),
    ("2016-01-01 07:08:03", &[]),
    ("2016-01-03 07:02:03", &[]),
    ("2016-01-04 10:23:03", &[]),
    ("2016-01-04 11:23:03", &[]),
    ("2016-01-04 12:23:03", &[]),
    ("2016-01-04 12:24:03", &[]),
    ("2016-01-04 12:28:03", &[]),
    ("2016-01-04 12:30:03", &[]),
    ("2016-01-04 16:23:03", &[]),
    ("2016-01-05 09:02:03", &[]),
    ("2016-01-06 08:02:03", &[]),
    ("2016-01-07 10:02:03", &[]),
    ("2016-01-08 20:02:03", &[]),
    ("2016-01-09 21:02:03", &[]),
    ("2016-01-12 21:02:03", &[]),
    ("2016-01-12 21:08:03", &[]),
    ("2016-01-18 12:02:03", &[]),
];

/// The kept snapshots of `policy` over restic's list, newest first, as "time: reasons".
fn keep_lines(policy: &RetentionPolicy) -> Vec<String> {
    let snapshots: Vec<SnapshotMeta> = SNAPSHOTS
        .iter()
        .enumerate()
        .map(|(i, (time, tags))| {
            let mut s = snap(&i.to_string(), time);
            s.tags = tags.iter().map(|t| (*t).to_owned()).collect();
            s
        })
        .collect();
    let group = one_group(policy, &snapshots);
    group
        .decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| {
            let index: usize = d.id.parse().expect("index id");
            format!("{}: {}", SNAPSHOTS[index].0, d.reasons.join("; "))
        })
        .collect()
}

/// `lines` with one reason for all: the golden files where every match is the same.
fn all(reason: &str, times: &[&str]) -> Vec<String> {
    times.iter().map(|t| format!("{t}: {reason}")).collect()
}

fn span(text: &str) -> Option<CalendarDuration> {
    Some(text.parse().expect("span"))
}

#[test]
fn golden_5_keep_hourly_20() {
    let policy = RetentionPolicy {
        keep_hourly: Some(20),
        ..Default::default()
    };
    let times = [
        "2016-01-18 12:02:03",
        "2016-01-12 21:08:03",
        "2016-01-09 21:02:03",
        "2016-01-08 20:02:03",
        "2016-01-07 10:02:03",
        "2016-01-06 08:02:03",
        "2016-01-05 09:02:03",
        "2016-01-04 16:23:03",
        "2016-01-04 12:30:03",
        "2016-01-04 11:23:03",
        "2016-01-04 10:23:03",
        "2016-01-03 07:02:03",
        "2016-01-01 07:08:03",
        "2016-01-01 01:03:03",
        "2015-11-22 10:20:30",
        "2015-11-21 10:20:30",
        "2015-11-20 10:20:30",
        "2015-11-18 10:20:30",
        "2015-11-15 10:20:30",
        "2015-11-13 10:20:30.1",
    ];
    assert_eq!(keep_lines(&policy), all("hourly snapshot", &times));
}

#[test]
fn golden_8_keep_daily_30() {
    let policy = RetentionPolicy {
        keep_daily: Some(30),
        ..Default::default()
    };
    let times = [
        "2016-01-18 12:02:03",
        "2016-01-12 21:08:03",
        "2016-01-09 21:02:03",
        "2016-01-08 20:02:03",
        "2016-01-07 10:02:03",
        "2016-01-06 08:02:03",
        "2016-01-05 09:02:03",
        "2016-01-04 16:23:03",
        "2016-01-03 07:02:03",
        "2016-01-01 07:08:03",
        "2015-11-22 10:20:30",
        "2015-11-21 10:20:30",
        "2015-11-20 10:20:30",
        "2015-11-18 10:20:30",
        "2015-11-15 10:20:30",
        "2015-11-13 10:20:30.1",
        "2015-11-12 10:20:30",
        "2015-11-10 10:20:30",
        "2015-11-08 10:20:30",
        "2015-10-22 10:20:30",
        "2015-10-20 10:20:30",
        "2015-10-11 10:20:30",
        "2015-10-10 10:20:30",
        "2015-10-09 10:20:30",
        "2015-10-08 10:20:30",
        "2015-10-06 10:20:30",
        "2015-10-05 10:20:30",
        "2015-10-02 10:20:30",
        "2015-10-01 10:20:30",
        "2015-09-22 10:20:30",
    ];
    assert_eq!(keep_lines(&policy), all("daily snapshot", &times));
}

#[test]
fn golden_15_keep_daily_2_weekly_2_monthly_6() {
    let policy = RetentionPolicy {
        keep_daily: Some(2),
        keep_weekly: Some(2),
        keep_monthly: Some(6),
        ..Default::default()
    };
    assert_eq!(
        keep_lines(&policy),
        [
            "2016-01-18 12:02:03: daily snapshot; weekly snapshot; monthly snapshot",
            "2016-01-12 21:08:03: daily snapshot; weekly snapshot",
            "2015-11-22 10:20:30: monthly snapshot",
            "2015-10-22 10:20:30: monthly snapshot",
            "2015-09-22 10:20:30: monthly snapshot",
            "2015-08-22 10:20:30: monthly snapshot",
            "2014-11-22 10:20:30: monthly snapshot",
        ]
    );
}

#[test]
fn golden_16_keep_yearly_10_keeps_the_oldest() {
    let policy = RetentionPolicy {
        keep_yearly: Some(10),
        ..Default::default()
    };
    assert_eq!(
        keep_lines(&policy),
        [
            "2016-01-18 12:02:03: yearly snapshot",
            "2015-11-22 10:20:30: yearly snapshot",
            "2014-11-22 10:20:30: yearly snapshot",
            "2014-08-08 10:20:30: oldest yearly snapshot",
        ]
    );
}

#[test]
fn golden_20_keep_tag_foo_or_bar() {
    let policy = RetentionPolicy {
        keep_tags: vec!["foo".into(), "bar".into()],
        ..Default::default()
    };
    let both = "has tags [foo]; has tags [bar]";
    let mut expected = vec![
        format!("2015-10-22 10:20:30: {both}"),
        format!("2015-10-22 10:20:30: {both}"),
        format!("2015-10-22 10:20:30: {both}"),
        format!("2014-11-15 10:20:30: {both}"),
        "2014-11-13 10:20:30.1: has tags [bar]".to_owned(),
    ];
    expected.extend(all(
        "has tags [foo]",
        &[
            "2014-11-13 10:20:30",
            "2014-11-12 10:20:30",
            "2014-11-10 10:20:30",
            "2014-11-08 10:20:30",
            "2014-10-22 10:20:30",
            "2014-10-20 10:20:30",
            "2014-10-11 10:20:30",
            "2014-10-10 10:20:30",
            "2014-10-09 10:20:30",
            "2014-10-08 10:20:30",
            "2014-10-06 10:20:30",
            "2014-10-05 10:20:30",
            "2014-10-02 10:20:30",
            "2014-10-01 10:20:30",
        ],
    ));
    assert_eq!(keep_lines(&policy), expected);
}

#[test]
fn golden_27_keep_within_13d23h() {
    let policy = RetentionPolicy {
        keep_within: span("13d23h"),
        ..Default::default()
    };
    let times = [
        "2016-01-18 12:02:03",
        "2016-01-12 21:08:03",
        "2016-01-12 21:02:03",
        "2016-01-09 21:02:03",
        "2016-01-08 20:02:03",
        "2016-01-07 10:02:03",
        "2016-01-06 08:02:03",
        "2016-01-05 09:02:03",
        "2016-01-04 16:23:03",
    ];
    assert_eq!(keep_lines(&policy), all("within 13d23h", &times));
}

#[test]
fn golden_32_keep_within_weekly_1y2m3d3h() {
    let policy = RetentionPolicy {
        keep_within_weekly: span("1y2m3d3h"),
        ..Default::default()
    };
    let times = [
        "2016-01-18 12:02:03",
        "2016-01-12 21:08:03",
        "2016-01-09 21:02:03",
        "2016-01-03 07:02:03",
        "2015-11-22 10:20:30",
        "2015-11-15 10:20:30",
        "2015-11-08 10:20:30",
        "2015-10-22 10:20:30",
        "2015-10-11 10:20:30",
        "2015-10-02 10:20:30",
        "2015-09-22 10:20:30",
        "2015-09-20 10:20:30",
        "2015-09-11 10:20:30",
        "2015-09-06 10:20:30",
        "2015-08-22 10:20:30",
        "2015-08-15 10:20:30",
        "2015-08-08 10:20:30",
        "2014-11-22 10:20:30",
        "2014-11-15 10:20:30",
    ];
    assert_eq!(keep_lines(&policy), all("weekly within 1y2m3d3h", &times));
}

#[test]
fn golden_33_keep_within_monthly_1y2m3d3h() {
    let policy = RetentionPolicy {
        keep_within_monthly: span("1y2m3d3h"),
        ..Default::default()
    };
    let times = [
        "2016-01-18 12:02:03",
        "2015-11-22 10:20:30",
        "2015-10-22 10:20:30",
        "2015-09-22 10:20:30",
        "2015-08-22 10:20:30",
        "2014-11-22 10:20:30",
    ];
    assert_eq!(keep_lines(&policy), all("monthly within 1y2m3d3h", &times));
}

#[test]
fn golden_39_unlimited_monthly_and_yearly_keep_the_oldest() {
    let policy = RetentionPolicy {
        keep_daily: Some(3),
        keep_weekly: Some(2),
        keep_monthly: Some(UNLIMITED),
        keep_yearly: Some(UNLIMITED),
        ..Default::default()
    };
    assert_eq!(
        keep_lines(&policy),
        [
            "2016-01-18 12:02:03: daily snapshot; weekly snapshot; monthly snapshot; yearly snapshot",
            "2016-01-12 21:08:03: daily snapshot; weekly snapshot",
            "2016-01-09 21:02:03: daily snapshot",
            "2015-11-22 10:20:30: monthly snapshot; yearly snapshot",
            "2015-10-22 10:20:30: monthly snapshot",
            "2015-09-22 10:20:30: monthly snapshot",
            "2015-08-22 10:20:30: monthly snapshot",
            "2014-11-22 10:20:30: monthly snapshot; yearly snapshot",
            "2014-10-22 10:20:30: monthly snapshot",
            "2014-09-22 10:20:30: monthly snapshot",
            "2014-08-22 10:20:30: monthly snapshot",
            "2014-08-08 10:20:30: oldest monthly snapshot; oldest yearly snapshot",
        ]
    );
}
