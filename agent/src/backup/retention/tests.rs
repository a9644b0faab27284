//! Retention tests: the edges (buckets, weeks across years, keep_within from the latest
//! snapshot, future snapshots, tags, grouping) here; restic's documented examples in
//! `tests/doc.rs`, its golden cases in `tests/restic.rs`, the config forms in
//! `tests/config.rs`.

mod config;
mod doc;
mod restic;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::*;

/// A time in UTC, written `2019-09-01 11:00:00` (fractional seconds allowed).
fn utc(text: &str) -> DateTime<FixedOffset> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|err| panic!("bad test time {text:?}: {err}"));
    Utc.from_utc_datetime(&naive).fixed_offset()
}

fn at(id: &str, time: DateTime<FixedOffset>) -> SnapshotMeta {
    SnapshotMeta {
        id: id.to_owned(),
        time,
        host: "mopped".to_owned(),
        paths: vec!["/home/user/work".to_owned()],
        tags: Vec::new(),
    }
}

fn snap(id: &str, time: &str) -> SnapshotMeta {
    at(id, utc(time))
}

fn snap_rfc3339(id: &str, time: &str) -> SnapshotMeta {
    let time = DateTime::parse_from_rfc3339(time).expect("test time");
    at(id, time)
}

/// Far after every test snapshot, so none is in the future unless a test says so.
fn later() -> DateTime<FixedOffset> {
    utc("2100-01-01 00:00:00")
}

/// Applies `policy` without grouping, asserting one group comes back.
fn one_group(policy: &RetentionPolicy, snapshots: &[SnapshotMeta]) -> Group {
    let mut groups = apply_at(policy, snapshots, GroupBy::NONE, later());
    assert_eq!(groups.len(), 1, "expected one group: {groups:?}");
    groups.remove(0)
}

fn kept(group: &Group) -> Vec<&str> {
    group.kept().collect()
}

fn removed(group: &Group) -> Vec<&str> {
    group.removed().collect()
}

fn reasons<'g>(group: &'g Group, id: &str) -> &'g [String] {
    let decision = group.decisions.iter().find(|d| d.id == id);
    &decision
        .unwrap_or_else(|| panic!("no decision for {id}"))
        .reasons
}
#[test]
fn empty_list_gives_no_groups() {
    let policy = RetentionPolicy {
        keep_last: Some(3),
        ..Default::default()
    };
    assert!(apply_at(&policy, &[], GroupBy::default(), later()).is_empty());
}

#[test]
fn empty_policy_removes_nothing() {
    let policy = RetentionPolicy {
        keep_last: Some(0),
        keep_within: Some(CalendarDuration::default()),
        ..Default::default()
    };
    assert!(policy.is_empty());
    let snapshots = [
        snap("a", "2020-01-01 00:00:00"),
        snap("b", "2020-01-02 00:00:00"),
    ];
    let group = one_group(&policy, &snapshots);
    assert_eq!(kept(&group), ["b", "a"]);
    assert!(removed(&group).is_empty());
    assert!(!group.removes_all());

    assert!(
        !RetentionPolicy {
            keep_tags: vec![String::new()],
            ..Default::default()
        }
        .is_empty()
    );
    assert!(
        !RetentionPolicy {
            keep_hourly: Some(UNLIMITED),
            ..Default::default()
        }
        .is_empty()
    );
}

#[test]
fn one_bucket_keeps_newest_and_oldest_while_counts_remain() {
    // restic 0.14+: with counts left at the end, the oldest is kept too.
    let snapshots = [
        snap("a", "2020-05-05 01:00:00"),
        snap("b", "2020-05-05 06:00:00"),
        snap("c", "2020-05-05 12:00:00"),
        snap("d", "2020-05-05 18:00:00"),
    ];
    let policy = RetentionPolicy {
        keep_daily: Some(3),
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    assert_eq!(kept(&group), ["d", "a"]);
    assert_eq!(removed(&group), ["c", "b"]);
    assert_eq!(reasons(&group, "d"), ["daily snapshot"]);
    assert_eq!(reasons(&group, "a"), ["oldest daily snapshot"]);

    // With the count spent, the oldest goes.
    let policy = RetentionPolicy {
        keep_daily: Some(1),
        ..Default::default()
    };
    assert_eq!(kept(&one_group(&policy, &snapshots)), ["d"]);
}

#[test]
fn unlimited_keeps_every_bucket_and_the_oldest() {
    let snapshots = [
        snap("a", "2020-05-04 01:00:00"),
        snap("b", "2020-05-04 08:00:00"),
        snap("c", "2020-05-05 12:00:00"),
        snap("d", "2020-05-05 18:00:00"),
    ];
    let policy = RetentionPolicy {
        keep_daily: Some(UNLIMITED),
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    assert_eq!(kept(&group), ["d", "b", "a"]);
    assert_eq!(reasons(&group, "a"), ["oldest daily snapshot"]);
}

#[test]
fn weeks_run_monday_to_sunday() {
    let snapshots = [
        snap("sat", "2024-03-09 12:00:00"),
        snap("sun-noon", "2024-03-10 12:00:00"),
        snap("sun-late", "2024-03-10 23:59:59"),
        snap("mon", "2024-03-11 00:00:00"),
    ];
    let policy = RetentionPolicy {
        keep_weekly: Some(2),
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    assert_eq!(kept(&group), ["mon", "sun-late"]);
    assert_eq!(removed(&group), ["sun-noon", "sat"]);
}

#[test]
fn buckets_use_the_snapshots_own_offset() {
    // "late-sunday" is Sunday 23:30 at -02:00, i.e. Monday 01:30 UTC: still week 10 on its
    // own clock. Read in UTC it would share week 11 with "monday" and "early-monday".
    let snapshots = [
        snap_rfc3339("early-monday", "2024-03-11T00:10:00+00:00"),
        snap_rfc3339("monday", "2024-03-11T00:30:00+00:00"),
        snap_rfc3339("late-sunday", "2024-03-10T23:30:00-02:00"),
    ];
    let policy = RetentionPolicy {
        keep_weekly: Some(2),
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    assert_eq!(kept(&group), ["late-sunday", "monday"]);
    assert_eq!(removed(&group), ["early-monday"]);
}

#[test]
fn iso_weeks_cross_year_boundaries() {
    // 30 Dec 2019 (Monday) opens ISO week 2020-W01; 29 Dec 2019 closes 2019-W52.
    // 1 and 3 Jan 2021 still belong to 2020-W53.
    let snapshots = [
        snap("2019-12-29", "2019-12-29 12:00:00"),
        snap("2019-12-30", "2019-12-30 12:00:00"),
        snap("2020-01-05", "2020-01-05 12:00:00"),
        snap("2020-12-31", "2020-12-31 12:00:00"),
        snap("2021-01-01", "2021-01-01 12:00:00"),
        snap("2021-01-03", "2021-01-03 12:00:00"),
        snap("2021-01-04", "2021-01-04 12:00:00"),
    ];
    let policy = RetentionPolicy {
        keep_weekly: Some(4),
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    assert_eq!(
        kept(&group),
        ["2021-01-04", "2021-01-03", "2020-01-05", "2019-12-29"]
    );

    // Yearly buckets are calendar years, not ISO years.
    let policy = RetentionPolicy {
        keep_yearly: Some(2),
        ..Default::default()
    };
    assert_eq!(
        kept(&one_group(&policy, &snapshots)),
        ["2021-01-04", "2020-12-31"]
    );
}

#[test]
fn keep_within_counts_back_from_the_latest_snapshot_not_now() {
    let snapshots = [
        snap("jan01", "2020-01-01 00:00:00"),
        snap("jan03", "2020-01-03 00:00:00"), // exactly at the cutoff: outside
        snap("jan05", "2020-01-05 00:00:00"),
        snap("jan10", "2020-01-10 00:00:00"),
    ];
    let policy = RetentionPolicy {
        keep_within: Some("7d".parse().expect("span")),
        ..Default::default()
    };
    // Years after the last snapshot: counted from now, everything would go.
    let group = one_group(&policy, &snapshots);
    assert_eq!(kept(&group), ["jan10", "jan05"]);
    assert_eq!(removed(&group), ["jan03", "jan01"]);
    assert_eq!(reasons(&group, "jan05"), ["within 7d"]);
}

#[test]
fn keep_within_months_follow_go_date_normalization() {
    // 31 March minus one month is "31 February", which Go normalizes to 3 March (2021).
    let snapshots = [
        snap("feb28", "2021-02-28 12:00:00"),
        snap("mar03", "2021-03-03 12:00:00"),
        snap("mar03+1s", "2021-03-03 12:00:01"),
        snap("mar31", "2021-03-31 12:00:00"),
    ];
    let policy = RetentionPolicy {
        keep_within: Some("1m".parse().expect("span")),
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    assert_eq!(kept(&group), ["mar31", "mar03+1s"]);

    let latest = utc("2024-03-31 12:00:00");
    let one_month: CalendarDuration = "1m".parse().expect("span");
    assert_eq!(one_month.before(latest), Some(utc("2024-03-02 12:00:00")));
    let mixed: CalendarDuration = "1y2m3d3h".parse().expect("span");
    assert_eq!(
        mixed.before(utc("2016-01-18 12:02:03")),
        Some(utc("2014-11-15 09:02:03"))
    );
}

#[test]
fn future_snapshots_are_kept_by_within_rules_only() {
    let now = utc("2020-01-10 00:00:00");
    let snapshots = [
        snap("old", "2020-01-01 00:00:00"),
        snap("recent", "2020-01-09 00:00:00"),
        snap("future", "2030-01-01 00:00:00"),
    ];
    // The latest snapshot is "recent", not "future"; the future one is within.
    let policy = RetentionPolicy {
        keep_within: Some("2d".parse().expect("span")),
        keep_within_daily: Some("2d".parse().expect("span")),
        ..Default::default()
    };
    let groups = apply_at(&policy, &snapshots, GroupBy::NONE, now);
    assert_eq!(kept(&groups[0]), ["future", "recent"]);
    assert_eq!(
        reasons(&groups[0], "future"),
        ["within 2d", "daily within 2d"]
    );

    // A count rule does not protect it: the future snapshot takes the "last" slot.
    let policy = RetentionPolicy {
        keep_last: Some(1),
        ..Default::default()
    };
    let groups = apply_at(&policy, &snapshots, GroupBy::NONE, now);
    assert_eq!(kept(&groups[0]), ["future"]);

    // With every snapshot in the future there is no latest: all are within.
    let policy = RetentionPolicy {
        keep_within: Some("1h".parse().expect("span")),
        ..Default::default()
    };
    let groups = apply_at(
        &policy,
        &snapshots,
        GroupBy::NONE,
        utc("2000-01-01 00:00:00"),
    );
    assert_eq!(removed(&groups[0]), Vec::<&str>::new());
}

#[test]
fn keep_within_daily_keeps_the_newest_per_day_inside_the_span() {
    let snapshots = [
        snap("jan05", "2020-01-05 12:00:00"),
        snap("jan08-10h", "2020-01-08 10:00:00"),
        snap("jan08-20h", "2020-01-08 20:00:00"),
        snap("jan09-06h", "2020-01-09 06:00:00"),
        snap("jan09-18h", "2020-01-09 18:00:00"),
        snap("jan10-06h", "2020-01-10 06:00:00"),
        snap("jan10-18h", "2020-01-10 18:00:00"),
    ];
    let policy = RetentionPolicy {
        keep_within_daily: Some("2d".parse().expect("span")),
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    // Cutoff 2020-01-08 18:00: "jan08-10h" is outside, "jan05" too (so not kept as oldest).
    assert_eq!(kept(&group), ["jan10-18h", "jan09-18h", "jan08-20h"]);
    assert_eq!(reasons(&group, "jan08-20h"), ["daily within 2d"]);

    // When the oldest is within and shares a kept bucket, it is kept as "oldest".
    let same_day = &snapshots[3..]; // jan09-06h .. jan10-18h
    let policy = RetentionPolicy {
        keep_within_daily: Some("7d".parse().expect("span")),
        ..Default::default()
    };
    let group = one_group(&policy, same_day);
    assert_eq!(kept(&group), ["jan10-18h", "jan09-18h", "jan09-06h"]);
    assert_eq!(reasons(&group, "jan09-06h"), ["oldest daily within 7d"]);
}

#[test]
fn reasons_list_every_matching_rule_in_rule_order() {
    let mut tagged = snap("newest", "2020-01-10 00:00:00");
    tagged.tags = vec!["db".into()];
    let snapshots = [snap("older", "2020-01-09 00:00:00"), tagged];
    let policy = RetentionPolicy {
        keep_last: Some(1),
        keep_daily: Some(1),
        keep_within: Some("1h".parse().expect("span")),
        keep_within_yearly: Some("1y".parse().expect("span")),
        keep_tags: vec!["db".into()],
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    assert_eq!(
        reasons(&group, "newest"),
        [
            "has tags [db]",
            "within 1h",
            "last snapshot",
            "daily snapshot",
            "yearly within 1y"
        ]
    );
    assert_eq!(reasons(&group, "older"), ["oldest yearly within 1y"]);
}

#[test]
fn keep_tags_needs_every_tag_of_one_entry() {
    let tagged = |id: &str, tags: &[&str]| {
        let mut s = snap(id, &format!("2020-01-0{} 00:00:00", id.len()));
        s.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        s
    };
    let snapshots = [
        tagged("a", &["a", "b"]),
        tagged("bb", &["a"]),
        tagged("ccc", &[]),
        tagged("dddd", &["c", "b", "a"]),
    ];
    let policy = RetentionPolicy {
        keep_tags: vec!["a, b".into()],
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    assert_eq!(kept(&group), ["dddd", "a"]);
    assert_eq!(reasons(&group, "a"), ["has tags [a, b]"]);

    // "" keeps untagged snapshots only.
    let policy = RetentionPolicy {
        keep_tags: vec![String::new()],
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    assert_eq!(kept(&group), ["ccc"]);
    assert_eq!(reasons(&group, "ccc"), ["has tags []"]);

    // A tag nobody has would remove the whole group: the caller must refuse.
    let policy = RetentionPolicy {
        keep_tags: vec!["x".into()],
        ..Default::default()
    };
    assert!(one_group(&policy, &snapshots).removes_all());
}

#[test]
fn groups_by_host_and_sorted_paths_by_default() {
    let make = |id: &str, host: &str, paths: &[&str], minute: u32| SnapshotMeta {
        id: id.to_owned(),
        time: utc("2020-01-01 00:00:00") + Duration::minutes(i64::from(minute)),
        host: host.to_owned(),
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        tags: vec![format!("t{}", minute % 2)],
    };
    let snapshots = [
        make("h1-a-old", "h1", &["/a"], 1),
        make("h1-a-new", "h1", &["/a"], 2),
        make("h2-a", "h2", &["/a"], 3),
        make("h1-ba", "h1", &["/b", "/a"], 4),
        make("h1-ab", "h1", &["/a", "/b"], 5),
    ];
    let policy = RetentionPolicy {
        keep_last: Some(1),
        ..Default::default()
    };

    let groups = apply_at(&policy, &snapshots, GroupBy::default(), later());
    let summary: Vec<(String, Vec<&str>, Vec<&str>)> = groups
        .iter()
        .map(|g| (g.key.to_string(), kept(g), removed(g)))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "host h1, path [/a]".to_owned(),
                vec!["h1-a-new"],
                vec!["h1-a-old"]
            ),
            (
                "host h1, path [/a /b]".to_owned(),
                vec!["h1-ab"],
                vec!["h1-ba"]
            ),
            ("host h2, path [/a]".to_owned(), vec!["h2-a"], vec![]),
        ]
    );

    let groups = apply_at(&policy, &snapshots, GroupBy::NONE, later());
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].key, GroupKey::default());
    assert_eq!(kept(&groups[0]), ["h1-ab"]);

    let by_tags: GroupBy = "tags".parse().expect("group by");
    let groups = apply_at(&policy, &snapshots, by_tags, later());
    let keys: Vec<String> = groups.iter().map(|g| g.key.to_string()).collect();
    assert_eq!(keys, ["tags [t0]", "tags [t1]"]);
    assert_eq!(kept(&groups[1]), ["h1-ab"]);
}
