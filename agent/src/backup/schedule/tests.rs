//! Schedule tests: the string forms, errors naming their field, next slots on a fixed
//! offset (no DST), and catching up missed runs once.

use super::*;

fn t(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|err| panic!("bad test time {text:?}: {err}"))
}

fn parse(text: &str) -> Schedule {
    text.parse()
        .unwrap_or_else(|err| panic!("{text:?} should parse: {err}"))
}

fn parse_err(text: &str) -> ScheduleError {
    match text.parse::<Schedule>() {
        Ok(schedule) => panic!("{text:?} should fail, got {schedule:?}"),
        Err(err) => err,
    }
}

fn next(schedule: &str, after: &str) -> String {
    let next = parse(schedule).next_after(t(after));
    next.map_or_else(|| "none".to_owned(), |n| n.to_rfc3339())
}

#[test]
fn intervals_parse_with_or_without_every() {
    assert_eq!(
        parse("every 6h"),
        Schedule::Every(Duration::from_secs(6 * 3600))
    );
    assert_eq!(parse("6h"), Schedule::Every(Duration::from_secs(6 * 3600)));
    assert_eq!(
        parse("  1h 30m "),
        Schedule::Every(Duration::from_secs(5400))
    );
    assert_eq!(
        parse("every 1h 30m"),
        Schedule::Every(Duration::from_secs(5400))
    );
    assert_eq!(
        parse("every 1d"),
        Schedule::Every(Duration::from_secs(86_400))
    );
}

#[test]
fn cron_patterns_and_nicknames_parse() {
    for text in [
        "0 3 * * *",
        "@hourly",
        "@DAILY",
        "@weekly",
        "*/15 9-17 * * MON-FRI",
        "0 3 1,15 JAN,jul *",
        "30 2 * * sun",
        "0 0 L * *",
    ] {
        assert!(matches!(parse(text), Schedule::Cron(_)), "{text}");
    }
}

#[test]
fn string_form_round_trips() {
    for text in [
        "every 6h",
        "every 1h 30m",
        "0 3 * * *",
        "@daily",
        "*/10 * * * 1-5",
    ] {
        assert_eq!(parse(text).to_string(), text);
        assert_eq!(parse(&parse(text).to_string()), parse(text));
    }
    assert_eq!(parse("90m").to_string(), "every 1h 30m");
    assert_eq!(parse("  0 3 * * *  ").to_string(), "0 3 * * *");
}

#[test]
fn errors_say_what_and_where() {
    assert_eq!(parse_err("  "), ScheduleError::Empty);
    assert!(matches!(parse_err("every"), ScheduleError::Interval { .. }));
    assert!(matches!(parse_err("6x"), ScheduleError::Interval { .. }));
    let zero = parse_err("every 0s").to_string();
    assert!(zero.contains("shorter than one second"), "{zero}");
    assert_eq!(
        parse_err("0 3 * *"),
        ScheduleError::FieldCount {
            input: "0 3 * *".into(),
            found: 4
        }
    );
    assert!(matches!(
        parse_err("0 0 3 * * *"),
        ScheduleError::FieldCount { found: 6, .. }
    ));
    assert!(matches!(
        parse_err("@reboot"),
        ScheduleError::Nickname { .. }
    ));
    assert!(matches!(
        parse_err("0 0 30 2 *"),
        ScheduleError::NeverMatches { .. }
    ));

    for (text, field, value) in [
        ("60 3 * * *", "minute", "60"),
        ("*/0 3 * * *", "minute", "*/0"),
        ("0 24 * * *", "hour", "24"),
        ("0 9-5x * * *", "hour", "9-5x"),
        ("0 3 32 * *", "day-of-month", "32"),
        ("0 3 * 13 *", "month", "13"),
        ("0 3 * FOO *", "month", "FOO"),
        ("0 3 * * 8", "day-of-week", "8"),
    ] {
        match parse_err(text) {
            ScheduleError::Field {
                field: f,
                value: v,
                ref reason,
                ..
            } => {
                assert_eq!((f, v.as_str()), (field, value), "{text}");
                assert!(!reason.is_empty(), "{text}");
            }
            other => panic!("{text}: expected a field error, got {other:?}"),
        }
        let message = parse_err(text).to_string();
        assert!(
            message.contains(field) && message.contains(text),
            "{message}"
        );
    }
}

#[test]
fn cron_next_slot_on_the_offsets_wall_clock() {
    let daily = "0 3 * * *";
    assert_eq!(
        next(daily, "2024-03-10T01:00:00+01:00"),
        "2024-03-10T03:00:00+01:00"
    );
    assert_eq!(
        next(daily, "2024-03-10T02:59:59.500+01:00"),
        "2024-03-10T03:00:00+01:00"
    );
    // Strictly after: a run starting on the slot does not get the same slot again.
    assert_eq!(
        next(daily, "2024-03-10T03:00:00+01:00"),
        "2024-03-11T03:00:00+01:00"
    );
    assert_eq!(
        next(daily, "2024-03-10T03:00:00.250+01:00"),
        "2024-03-11T03:00:00+01:00"
    );
    // 03:00 at -05:00, not 03:00 UTC.
    assert_eq!(
        next(daily, "2024-03-10T04:00:00-05:00"),
        "2024-03-11T03:00:00-05:00"
    );

    assert_eq!(
        next("@hourly", "2024-03-10T10:15:00+00:00"),
        "2024-03-10T11:00:00+00:00"
    );
    // Friday 17:50 -> Monday 09:00.
    assert_eq!(
        next("*/15 9-17 * * MON-FRI", "2024-03-08T17:50:00+00:00"),
        "2024-03-11T09:00:00+00:00"
    );
    assert_eq!(
        next("0 3 1,15 * *", "2024-02-15T03:00:00+00:00"),
        "2024-03-01T03:00:00+00:00"
    );
    // Year end and leap day.
    assert_eq!(
        next("0 0 1 1 *", "2024-12-31T23:59:00+00:00"),
        "2025-01-01T00:00:00+00:00"
    );
    assert_eq!(
        next("0 12 29 2 *", "2024-03-01T00:00:00+00:00"),
        "2028-02-29T12:00:00+00:00"
    );
    // Vixie cron: with both days restricted, either matches (the 13th or a Friday).
    assert_eq!(
        next("0 0 13 * FRI", "2024-09-01T00:00:00+00:00"),
        "2024-09-06T00:00:00+00:00"
    );
    assert_eq!(
        next("0 0 13 * FRI", "2024-10-12T00:00:00+00:00"),
        "2024-10-13T00:00:00+00:00"
    );
}

#[test]
fn interval_next_slot_counts_from_the_instant_given() {
    assert_eq!(
        next("every 6h", "2024-03-10T22:30:00+02:00"),
        "2024-03-11T04:30:00+02:00"
    );
    assert_eq!(
        next("90m", "2024-03-10T23:00:00+00:00"),
        "2024-03-11T00:30:00+00:00"
    );
}

#[test]
fn next_run_of_an_interval() {
    let every_6h = parse("every 6h");
    let now = t("2024-03-10T12:00:00+00:00");
    assert_eq!(every_6h.next_run(None, now), now, "never ran: now");
    assert_eq!(
        every_6h.next_run(Some(t("2024-03-10T11:00:00+00:00")), now),
        t("2024-03-10T17:00:00+00:00"),
        "anchored to the last run"
    );
    assert_eq!(
        every_6h.next_run(Some(t("2024-03-09T01:00:00+00:00")), now),
        now,
        "overdue: now"
    );
    assert_eq!(
        every_6h.next_run(Some(t("2024-03-10T06:00:00+00:00")), now),
        now,
        "due exactly now"
    );
}

#[test]
fn next_run_of_cron_catches_up_once() {
    let daily = parse("0 3 * * *");
    let now = t("2024-03-10T12:00:00+00:00");
    assert_eq!(
        daily.next_run(None, now),
        t("2024-03-11T03:00:00+00:00"),
        "never ran: next slot"
    );
    assert_eq!(
        daily.next_run(Some(t("2024-03-10T03:00:00+00:00")), now),
        t("2024-03-11T03:00:00+00:00"),
        "today's slot done"
    );
    // Down for three days: one run now, not three.
    assert_eq!(
        daily.next_run(Some(t("2024-03-07T03:00:00+00:00")), now),
        now
    );
    let after_catch_up = daily.next_run(Some(now), now);
    assert_eq!(after_catch_up, t("2024-03-11T03:00:00+00:00"));
}

#[test]
fn next_run_survives_clock_and_offset_changes() {
    let daily = parse("0 3 * * *");
    let now = t("2024-03-10T12:00:00+00:00");
    // The last run is "tomorrow": the clock went back. Wait one slot, not a day more.
    assert_eq!(
        daily.next_run(Some(t("2024-03-11T08:00:00+00:00")), now),
        t("2024-03-11T03:00:00+00:00")
    );
    let every_6h = parse("6h");
    assert_eq!(
        every_6h.next_run(Some(t("2024-03-12T00:00:00+00:00")), now),
        t("2024-03-10T18:00:00+00:00")
    );
    // Slots follow now's offset even when the last run was stored in another.
    let now_plus2 = t("2024-03-10T12:00:00+02:00");
    assert_eq!(
        daily.next_run(Some(t("2024-03-10T01:30:00+00:00")), now_plus2),
        t("2024-03-11T03:00:00+02:00")
    );
}

#[test]
fn schedule_reads_and_writes_toml() {
    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Set {
        schedule: Schedule,
    }
    let set: Set = toml::from_str(r#"schedule = "0 3 * * *""#).expect("cron");
    assert_eq!(set.schedule, parse("0 3 * * *"));
    assert_eq!(
        toml::to_string(&set).expect("write").trim(),
        r#"schedule = "0 3 * * *""#
    );
    let set: Set = toml::from_str(r#"schedule = "every 6h""#).expect("interval");
    assert_eq!(set.schedule, Schedule::Every(Duration::from_secs(6 * 3600)));

    let err = toml::from_str::<Set>(r#"schedule = "0 25 * * *""#).expect_err("hour 25");
    assert!(err.to_string().contains("hour field \"25\""), "{err}");
}
