//! [`CalendarDuration`]: restic's `--keep-within` span, written `2y5m7d3h`.
//!
//! Years, months and days are calendar units, not fixed lengths: one month back from
//! 31 March is "31 February", which Go's `AddDate` (and so restic) normalizes to 2 or
//! 3 March. [`CalendarDuration::before`] reproduces that, so `keep_within = "1m"` keeps
//! what restic keeps. Note `m` is months here, never minutes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeDelta};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::RetentionError;

/// A span of calendar years, months, days and hours, as restic's `--keep-within*` take it.
///
/// Written `"2y5m7d3h"`: each of `y` (years), `m` (months), `d` (days) and `h` (hours) at
/// most once, in any order, with non-negative whole numbers. All zero means "not set", as
/// in restic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CalendarDuration {
    /// Calendar years.
    pub years: u32,
    /// Calendar months (`m`).
    pub months: u32,
    /// Calendar days.
    pub days: u32,
    /// Hours of 3600 s.
    pub hours: u32,
}

impl CalendarDuration {
    /// True when every part is zero: such a rule is off, as restic's `Duration.Zero()`.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// The instant this span before `latest`, as restic computes it:
    /// `latest.AddDate(-years, -months, -days).Add(-hours)`, on `latest`'s own wall clock.
    /// The calendar step normalizes like Go (month overflow into years, then day overflow
    /// into months), so 31 March minus one month is 3 March (2 March in a leap year).
    ///
    /// `None` when the result lies before what chrono can represent (about 262,000 BCE):
    /// every snapshot is then within the span.
    pub fn before(&self, latest: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        let local = latest.naive_local();
        let month0 = i64::from(local.month0()) - i64::from(self.months);
        let year = i64::from(local.year()) - i64::from(self.years) + month0.div_euclid(12);
        let month = u32::try_from(month0.rem_euclid(12)).ok()? + 1;
        let first = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, 1)?;
        let day_offset = i64::from(local.day()) - 1 - i64::from(self.days);
        let date = first.checked_add_signed(TimeDelta::try_days(day_offset)?)?;
        let shifted = date
            .and_time(local.time())
            .and_local_timezone(*latest.offset())
            .single()?;
        shifted.checked_sub_signed(TimeDelta::try_hours(i64::from(self.hours))?)
    }
}

impl fmt::Display for CalendarDuration {
    /// restic's form: the non-zero parts in the order y, m, d, h (`"1y2m3d3h"`); `"0h"`
    /// when all are zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (value, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if value != 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for CalendarDuration {
    type Err = RetentionError;

    /// Parses restic's syntax (`"7d"`, `"1y6m"`, `"2y5m7d3h"`). Stricter than restic on
    /// two points that only hide mistakes: a unit given twice (restic keeps the last) and
    /// an empty string (restic reads "not set") are errors.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason: String| RetentionError::Duration {
            input: input.to_owned(),
            reason,
        };
        let mut rest = input.trim();
        if rest.is_empty() {
            return Err(error(
                "empty; write a number and a unit, e.g. \"7d\", \"1y6m\"".into(),
            ));
        }
        let mut span = Self::default();
        let mut seen = Vec::with_capacity(4);
        while !rest.is_empty() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                let reason = if rest.starts_with('-') {
                    "negative values are not allowed".to_owned()
                } else {
                    format!("expected a number at {rest:?}")
                };
                return Err(error(reason));
            }
            let (number, after) = rest.split_at(digits);
            let value: u32 = number
                .parse()
                .map_err(|_| error(format!("{number} is too large")))?;
            let mut chars = after.chars();
            let unit = chars
                .next()
                .ok_or_else(|| error(format!("no unit after {number} (use y, m, d or h)")))?;
            let slot = match unit {
                'y' => &mut span.years,
                'm' => &mut span.months,
                'd' => &mut span.days,
                'h' => &mut span.hours,
                other => {
                    return Err(error(format!(
                        "unknown unit {other:?} after {number} (use y, m = months, d or h)"
                    )));
                }
            };
            if seen.contains(&unit) {
                return Err(error(format!("unit {unit:?} given twice")));
            }
            seen.push(unit);
            *slot = value;
            rest = chars.as_str();
        }
        Ok(span)
    }
}

impl Serialize for CalendarDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CalendarDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
