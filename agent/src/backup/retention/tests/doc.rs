//! The examples of restic's `doc/060_forget.rst` that list snapshots and results.

use super::*;

#[test]
fn doc_example_keep_daily_4_of_twelve_sundays() {
    // doc/060_forget.rst: one backup every Sunday for 12 weeks, `forget --keep-daily 4`.
    let snapshots = [
        snap("0a1f9759", "2019-09-01 11:00:00"),
        snap("46cfe4d5", "2019-09-08 11:00:00"),
        snap("f6b1f037", "2019-09-15 11:00:00"),
        snap("eb430a5d", "2019-09-22 11:00:00"),
        snap("8cf1cb9a", "2019-09-29 11:00:00"),
        snap("5d33b116", "2019-10-06 11:00:00"),
        snap("b9553125", "2019-10-13 11:00:00"),
        snap("e1a7b58b", "2019-10-20 11:00:00"),
        snap("8f8018c0", "2019-10-27 11:00:00"),
        snap("59403279", "2019-11-03 11:00:00"),
        snap("dfee9fb4", "2019-11-10 11:00:00"),
        snap("e1ae2f40", "2019-11-17 11:00:00"),
    ];
    let policy = RetentionPolicy {
        keep_daily: Some(4),
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    assert_eq!(
        kept(&group),
        ["e1ae2f40", "dfee9fb4", "59403279", "8f8018c0"]
    );
    assert_eq!(
        removed(&group),
        [
            "e1a7b58b", "b9553125", "5d33b116", "8cf1cb9a", "eb430a5d", "f6b1f037", "46cfe4d5",
            "0a1f9759"
        ]
    );
    for id in kept(&group) {
        assert_eq!(reasons(&group, id), ["daily snapshot"]);
    }
}

#[test]
fn doc_example_keep_last_1() {
    // doc/060_forget.rst, `forget --keep-last 1 --prune`.
    let snapshots = [
        snap("8c02b94b", "2017-02-21 10:48:33"),
        snap("4bba301e", "2017-02-21 10:49:18"),
    ];
    let policy = RetentionPolicy {
        keep_last: Some(1),
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);
    assert_eq!(kept(&group), ["4bba301e"]);
    assert_eq!(removed(&group), ["8c02b94b"]);
    assert_eq!(reasons(&group, "4bba301e"), ["last snapshot"]);
}

#[test]
fn doc_example_daily_for_a_century() {
    // doc/060_forget.rst: a backup every day for 100 years, `--keep-daily 7 --keep-weekly
    // 5 --keep-monthly 12 --keep-yearly 75`: 7 dailies, 4 more weeklies (the dailies hold
    // one Sunday), 11 more monthlies and 74 more yearlies (one of each is already kept).
    let first = NaiveDate::from_ymd_opt(1925, 1, 1).expect("date");
    let last = NaiveDate::from_ymd_opt(2024, 12, 29).expect("date"); // a Sunday
    let snapshots: Vec<SnapshotMeta> = first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| snap(&d.to_string(), &format!("{d} 12:00:00")))
        .collect();
    let policy = RetentionPolicy {
        keep_daily: Some(7),
        keep_weekly: Some(5),
        keep_monthly: Some(12),
        keep_yearly: Some(75),
        ..Default::default()
    };
    let group = one_group(&policy, &snapshots);

    let dailies = [
        "2024-12-29",
        "2024-12-28",
        "2024-12-27",
        "2024-12-26",
        "2024-12-25",
        "2024-12-24",
        "2024-12-23",
    ];
    let weeklies = ["2024-12-22", "2024-12-15", "2024-12-08", "2024-12-01"];
    let monthlies = [
        "2024-11-30",
        "2024-10-31",
        "2024-09-30",
        "2024-08-31",
        "2024-07-31",
        "2024-06-30",
        "2024-05-31",
        "2024-04-30",
        "2024-03-31",
        "2024-02-29",
        "2024-01-31",
    ];
    let yearlies: Vec<String> = (1950..=2023).rev().map(|y| format!("{y}-12-31")).collect();
    let mut expected: Vec<&str> = dailies.to_vec();
    expected.extend(weeklies);
    expected.extend(monthlies);
    expected.extend(yearlies.iter().map(String::as_str));
    assert_eq!(kept(&group), expected);
    assert_eq!(kept(&group).len(), 7 + 4 + 11 + 74);

    assert_eq!(
        reasons(&group, "2024-12-29"),
        [
            "daily snapshot",
            "weekly snapshot",
            "monthly snapshot",
            "yearly snapshot"
        ]
    );
    assert_eq!(reasons(&group, "2024-12-01"), ["weekly snapshot"]);
    assert_eq!(reasons(&group, "1950-12-31"), ["yearly snapshot"]);
    // The yearly count runs out before 1925, so the oldest is not kept.
    assert!(removed(&group).contains(&"1925-01-01"));
}
