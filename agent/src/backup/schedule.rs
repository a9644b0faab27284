//! Schedules: when a backup set runs next.
//!
//! A schedule is written in config as one string: an interval (`"6h"`, `"every 30m"`,
//! humantime syntax) or a cron pattern (`"0 3 * * *"`, `"@daily"`). Owns parsing that
//! string (errors name the cron field and why), and the two questions a runner asks:
//! [`Schedule::next_after`] (the slot after an instant) and [`Schedule::next_run`] (when to
//! start, given the last run and the clock). Leaves out the timer, persisting the last run
//! and time zones with DST: instants carry a fixed UTC offset, and cron fields are read on
//! that offset's wall clock.
//!
//! Cron patterns are parsed by `croner` rather than by hand: POSIX/Vixie 5-field syntax
//! (ranges, lists, steps, `JAN`..`DEC`, `SUN`..`SAT`, a day-of-month and day-of-week both
//! restricted meaning either, as Vixie cron), the `@yearly` ... `@hourly` nicknames, and
//! croner's extensions (`L`, `W`, `#`). Seconds and year fields are refused.
//!
//! Missed runs are caught up once, not replayed: an interval counts from the previous run
//! (next = last + interval), and when the agent was down past a slot the run happens at
//! start, once, like anacron or a systemd timer with `Persistent=true`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The five cron fields in order: the name errors print, and what each accepts.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, W"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT (0 and 7 are Sunday), L, #"),
];

/// The nicknames croner expands; `@reboot` and `@midnight` are not among them.
const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// When a backup set runs. Parsed from, and written as, one string (see [`FromStr`]), so a
/// config reads `schedule = "0 3 * * *"` or `schedule = "every 6h"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every so often, counted from the start of the previous run. Parsing refuses
    /// intervals under one second; a zero interval built by hand would run back to back.
    Every(Duration),
    /// On the slots of a 5-field cron pattern.
    Cron(CronPattern),
}

/// A parsed 5-field cron pattern, remembering the text it came from.
#[derive(Clone)]
pub struct CronPattern {
    source: String,
    // Boxed: croner's pattern is ~300 bytes, and a schedule is mostly moved around.
    cron: Box<Cron>,
}

impl CronPattern {
    /// The pattern as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for CronPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronPattern").field(&self.source).finish()
    }
}

impl PartialEq for CronPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for CronPattern {}

/// Why a schedule string is refused. Each variant holds the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Nothing but whitespace.
    #[error(
        "empty schedule: write an interval (\"6h\", \"every 30m\") or a cron pattern (\"0 3 * * *\")"
    )]
    Empty,
    /// An interval that humantime cannot read, or one under a second.
    #[error("invalid interval {input:?}: {reason}")]
    Interval {
        /// The schedule as written.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Not five whitespace-separated fields (and not an interval either).
    #[error(
        "cron pattern {input:?} has {found} fields; expected 5 (minute hour day-of-month month day-of-week), or an interval such as \"every 6h\""
    )]
    FieldCount {
        /// The schedule as written.
        input: String,
        /// How many fields it has.
        found: usize,
    },
    /// One field is out of range or malformed.
    #[error("cron pattern {input:?}: {field} field {value:?} is invalid ({reason})")]
    Field {
        /// The schedule as written.
        input: String,
        /// Which field: minute, hour, day-of-month, month or day-of-week.
        field: &'static str,
        /// The field's text.
        value: String,
        /// What the field accepts, and croner's explanation.
        reason: String,
    },
    /// An `@name` croner does not know.
    #[error(
        "unknown cron nickname {input:?}: expected @yearly, @annually, @monthly, @weekly, @daily or @hourly"
    )]
    Nickname {
        /// The schedule as written.
        input: String,
    },
    /// Refused as a whole, no single field to blame.
    #[error("invalid cron pattern {input:?}: {reason}")]
    Pattern {
        /// The schedule as written.
        input: String,
        /// croner's explanation.
        reason: String,
    },
    /// Valid fields that no date satisfies, such as 30 February.
    #[error("cron pattern {input:?} never matches a date (such as 30 February)")]
    NeverMatches {
        /// The schedule as written.
        input: String,
    },
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

fn parse_interval(input: &str, text: &str) -> Result<Schedule, ScheduleError> {
    let error = |reason: String| ScheduleError::Interval {
        input: input.to_owned(),
        reason,
    };
    let interval = humantime::parse_duration(text).map_err(|err| {
        error(format!(
            "{err}; write a number with a unit (\"30m\", \"6h\", \"1h 30m\") or a 5-field cron pattern"
        ))
    })?;
    if interval < Duration::from_secs(1) {
        return Err(error("shorter than one second".into()));
    }
    if TimeDelta::from_std(interval).is_err() {
        return Err(error("too long".into()));
    }
    Ok(Schedule::Every(interval))
}

fn parse_cron(input: &str, text: &str) -> Result<Schedule, ScheduleError> {
    let parser = parser();
    let cron = parser
        .parse(text)
        .map_err(|err| blame_field(&parser, input, text, &err))?;
    // A pattern that can match at all does so within a few decades (the weekday and
    // leap-year cycles), far inside croner's search up to year 5000: failing from 1970
    // means it never matches (30 February, 31 April).
    let start = DateTime::<Utc>::UNIX_EPOCH.fixed_offset();
    if cron.find_next_occurrence(&start, false).is_err() {
        return Err(ScheduleError::NeverMatches {
            input: input.to_owned(),
        });
    }
    Ok(Schedule::Cron(CronPattern {
        source: text.to_owned(),
        cron: Box::new(cron),
    }))
}

/// Turns croner's whole-pattern error into one naming the field at fault: each field is
/// tried alone among `*`s, and the first that fails on its own is blamed.
fn blame_field(
    parser: &CronParser,
    input: &str,
    text: &str,
    err: &croner::errors::CronError,
) -> ScheduleError {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        return ScheduleError::FieldCount {
            input: input.to_owned(),
            found: fields.len(),
        };
    }
    for (index, (value, (name, accepts))) in fields.iter().zip(FIELDS).enumerate() {
        let mut probe = ["*"; 5];
        probe[index] = value;
        if let Err(field_err) = parser.parse(&probe.join(" ")) {
            return ScheduleError::Field {
                input: input.to_owned(),
                field: name,
                value: (*value).to_owned(),
                reason: format!("accepts {accepts}, with lists, ranges and steps; {field_err}"),
            };
        }
    }
    ScheduleError::Pattern {
        input: input.to_owned(),
        reason: err.to_string(),
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    /// Reads, in this order: `every <interval>`; an `@nickname`; five fields as cron;
    /// anything else as an interval (`"6h"`, `"1h 30m"`). Intervals use humantime units
    /// (`s`, `m` = minutes, `h`, `d`, `w`, ...) and must be at least one second.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim();
        if text.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if let Some(rest) = text.strip_prefix("every")
            && (rest.is_empty() || rest.starts_with(char::is_whitespace))
        {
            return parse_interval(input, rest.trim());
        }
        if text.starts_with('@') {
            if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(text)) {
                return Err(ScheduleError::Nickname {
                    input: input.to_owned(),
                });
            }
            return parse_cron(input, text);
        }
        let fields = text.split_whitespace().count();
        if fields == FIELDS.len() {
            return parse_cron(input, text);
        }
        if fields == 1 || humantime::parse_duration(text).is_ok() {
            return parse_interval(input, text);
        }
        Err(ScheduleError::FieldCount {
            input: input.to_owned(),
            found: fields,
        })
    }
}

impl fmt::Display for Schedule {
    /// The string form [`FromStr`] reads back: `every 1h 30m`, or the cron pattern as given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Every(interval) => write!(f, "every {}", humantime::format_duration(*interval)),
            Self::Cron(pattern) => f.write_str(&pattern.source),
        }
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What [`Schedule::next_run`] answers when nothing will ever be due: the last instant
/// chrono represents, in UTC.
pub fn never() -> DateTime<FixedOffset> {
    DateTime::<Utc>::MAX_UTC.fixed_offset()
}

impl Schedule {
    /// The slot after `after`: `after + interval`, or the first cron slot strictly later
    /// than `after`, read on `after`'s wall clock and returned in its offset. `None` past
    /// the calendar chrono or croner can reach (year 5000 for cron).
    pub fn next_after(&self, after: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        match self {
            Self::Every(interval) => after.checked_add_signed(TimeDelta::from_std(*interval).ok()?),
            Self::Cron(pattern) => pattern.cron.find_next_occurrence(&after, false).ok(),
        }
    }

    /// When to start the next run, given the start of the last one (`None`: never ran)
    /// and the current time; `now` itself means "start now". Cron slots are read on
    /// `now`'s offset.
    ///
    /// - Interval, never ran: `now`. Cron, never ran: the next slot after `now` (no slot
    ///   was missed that anyone knows of, as a systemd timer without a stamp).
    /// - Otherwise the slot after the last run; if that is already past (the agent was
    ///   down), `now`, once: after that run, the next slot is in the future again, so
    ///   missed slots are not replayed (anacron, systemd `Persistent=true`).
    /// - A last run after `now` (the clock stepped back) counts as `now`, so a schedule
    ///   waits at most one period, not until the clock catches up.
    /// - [`never`] when no slot remains.
    ///
    /// ```
    /// use chrono::DateTime;
    /// use muster_agent::backup::schedule::Schedule;
    ///
    /// let t = |s: &str| DateTime::parse_from_rfc3339(s).expect("literal");
    /// let nightly: Schedule = "0 3 * * *".parse().expect("pattern");
    /// let now = t("2024-03-10T12:00:00+01:00");
    /// // Down since Thursday's run: one catch-up run now, not three.
    /// assert_eq!(nightly.next_run(Some(t("2024-03-07T03:00:00+01:00")), now), now);
    /// // After it, the next slot is tomorrow night.
    /// assert_eq!(nightly.next_run(Some(now), now), t("2024-03-11T03:00:00+01:00"));
    /// ```
    pub fn next_run(
        &self,
        last_run: Option<DateTime<FixedOffset>>,
        now: DateTime<FixedOffset>,
    ) -> DateTime<FixedOffset> {
        let offset = *now.offset();
        let last_run = last_run.map(|last| last.min(now).with_timezone(&offset));
        let due = match (self, last_run) {
            (Self::Every(_), None) => return now,
            (Self::Cron(_), None) => self.next_after(now),
            (_, Some(last)) => self.next_after(last),
        };
        match due {
            Some(due) if due <= now => now,
            Some(due) => due,
            None => never(),
        }
    }
}

#[cfg(test)]
mod tests;
