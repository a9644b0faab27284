//! Quiet hours per receiver: a daily window in which its notifications are held.
//!
//! It owns the window (`start`, `end`, a fixed `utc_offset`, optional `days`) and the
//! question "is this receiver quiet at this instant, and until when". What is held and
//! when it is released is the dispatcher's business (`dispatch/`): alerts held during the
//! window stay in their group and are notified at the first group flush at or after the
//! window's end, merged into the group's state at that moment; alerts matching
//! `severity="critical"` pass through when `allow_critical` is set.
//!
//! The offset is fixed (`"+01:00"`), not a time zone: no tz database is needed, and the
//! window does not move with daylight saving time; an operator who wants it to writes the
//! offset twice a year. A window whose `end` is not after its `start` runs past midnight
//! (`22:00`–`07:00`); `days` names the day a window *starts* on, so a Friday window of
//! `22:00`–`07:00` covers Saturday morning.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::labels::LabelSet;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// Milliseconds in a minute.
const MINUTE_MS: i64 = 60_000;

/// The label and value that make an alert critical for quiet hours.
pub const CRITICAL: (&str, &str) = ("severity", "critical");

/// Whether `labels` say `severity="critical"`.
pub fn is_critical(labels: &LabelSet) -> bool {
    labels.get(CRITICAL.0).is_some_and(|v| v == CRITICAL.1)
}

/// A receiver's quiet hours (`[receivers.<name>.quiet_hours]`, wired by the server).
///
/// ```
/// use muster_collector::alert::quiet::QuietHours;
/// let text = "start = \"22:00\"\nend = \"07:00\"\nutc_offset = \"+01:00\"\n";
/// let q: QuietHours = muster_shared::config::parse(text, "c.toml".as_ref()).unwrap();
/// // 1970-01-01 21:30 UTC is 22:30 at +01:00: quiet until 07:00 local, 06:00 UTC.
/// let at = (21 * 60 + 30) * 60_000;
/// assert_eq!(q.quiet_until(at), Some(30 * 3_600_000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// When the window starts, local `HH:MM`.
    pub start: TimeOfDay,
    /// When it ends, local `HH:MM`; at or before `start` means the next day.
    pub end: TimeOfDay,
    /// The fixed offset of local time from UTC, `+HH:MM` or `-HH:MM`. Default `+00:00`.
    #[serde(default)]
    pub utc_offset: UtcOffset,
    /// The days a window starts on (`["mon", "tue", ...]`). Default: every day.
    #[serde(default)]
    pub days: Option<Vec<Weekday>>,
    /// Let alerts labelled `severity="critical"` through. Default `true`.
    #[serde(default = "default_true")]
    pub allow_critical: bool,
}

fn default_true() -> bool {
    true
}

impl QuietHours {
    /// When the window that holds `now_ms` ends (ms since the epoch), `None` when `now_ms`
    /// is outside every window.
    pub fn quiet_until(&self, now_ms: u64) -> Option<u64> {
        let offset = i64::from(self.utc_offset.0) * MINUTE_MS;
        let local = i64::try_from(now_ms).ok()?.checked_add(offset)?;
        let day = local.div_euclid(DAY_MS);
        let time = local.rem_euclid(DAY_MS);
        let start = i64::from(self.start.0) * MINUTE_MS;
        let end = i64::from(self.end.0) * MINUTE_MS;
        let end_local = if start < end {
            (self.runs_on(day) && (start..end).contains(&time)).then(|| day * DAY_MS + end)
        } else if time >= start && self.runs_on(day) {
            Some((day + 1) * DAY_MS + end)
        } else if time < end && self.runs_on(day - 1) {
            Some(day * DAY_MS + end)
        } else {
            None
        }?;
        u64::try_from(end_local - offset).ok()
    }

    /// Whether an alert with `labels` is held at `now_ms`: inside a window, and not let
    /// through as critical.
    pub fn holds(&self, labels: &LabelSet, now_ms: u64) -> bool {
        self.quiet_until(now_ms).is_some() && !(self.allow_critical && is_critical(labels))
    }

    /// Every problem with this window, each naming `key` (e.g. `receivers.chat.quiet_hours`).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.start == self.end {
            problems.push(format!("{key}: start and end are equal ({})", self.start));
        }
        if self.days.as_ref().is_some_and(Vec::is_empty) {
            problems.push(format!("{key}.days is empty; leave it out for every day"));
        }
        problems
    }

    fn runs_on(&self, day: i64) -> bool {
        self.days
            .as_ref()
            .is_none_or(|days| days.contains(&Weekday::of_day(day)))
    }
}

/// A local time of day, `HH:MM` (00:00 to 23:59), as minutes after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// Minutes after midnight, 0 to 1439.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl FromStr for TimeOfDay {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid time of day {text:?}: write it as HH:MM, 00:00 to 23:59");
        let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(TimeOfDay(h * 60 + m))
    }
}

impl TryFrom<String> for TimeOfDay {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<TimeOfDay> for String {
    fn from(t: TimeOfDay) -> String {
        t.to_string()
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// A fixed offset from UTC, `+HH:MM` or `-HH:MM` (at most 14 hours), as minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UtcOffset(i16);

impl UtcOffset {
    /// Minutes east of UTC.
    pub fn minutes(self) -> i16 {
        self.0
    }
}

impl FromStr for UtcOffset {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid UTC offset {text:?}: write it as +HH:MM or -HH:MM");
        let text = text.trim();
        let (sign, rest) = match text.split_at_checked(1) {
            Some(("+", rest)) => (1, rest),
            Some(("-", rest)) => (-1, rest),
            _ => return Err(bad()),
        };
        let time: TimeOfDay = rest.parse().map_err(|_| bad())?;
        if time.0 > 14 * 60 {
            return Err(bad());
        }
        // At most 840 minutes: fits i16.
        Ok(UtcOffset(sign * i16::try_from(time.0).map_err(|_| bad())?))
    }
}

impl TryFrom<String> for UtcOffset {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<UtcOffset> for String {
    fn from(o: UtcOffset) -> String {
        o.to_string()
    }
}

impl fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", abs / 60, abs % 60)
    }
}

/// A day of the week, written `mon` to `sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// The weekday of day number `day` since 1970-01-01 (a Thursday).
    fn of_day(day: i64) -> Self {
        const WEEK: [Weekday; 7] = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ];
        // rem_euclid(7) is 0..=6.
        WEEK[usize::try_from((day + 3).rem_euclid(7)).unwrap_or(0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;
    const M: u64 = 60_000;
    /// 1970-01-05, a Monday, 00:00 UTC.
    const MONDAY: u64 = 4 * 24 * H;

    fn parse(text: &str) -> Result<QuietHours, String> {
        muster_shared::config::parse(text, std::path::Path::new("c.toml"))
            .map_err(|e| e.to_string())
    }

    fn quiet(text: &str) -> QuietHours {
        parse(text).unwrap()
    }

    #[test]
    fn windows_wrap_past_midnight_and_honour_the_offset() {
        let night = quiet("start = \"22:00\"\nend = \"07:00\"\n");
        let east = quiet("start = \"22:00\"\nend = \"07:00\"\nutc_offset = \"+02:00\"\n");
        let west = quiet("start = \"09:00\"\nend = \"17:30\"\nutc_offset = \"-05:00\"\n");
        let cases: [(&str, &QuietHours, u64, Option<u64>); 9] = [
            ("before the start", &night, MONDAY + 21 * H, None),
            (
                "at the start",
                &night,
                MONDAY + 22 * H,
                Some(MONDAY + 31 * H),
            ),
            (
                "after midnight",
                &night,
                MONDAY + 26 * H,
                Some(MONDAY + 31 * H),
            ),
            ("at the end", &night, MONDAY + 31 * H, None),
            (
                "early morning",
                &night,
                MONDAY + 3 * H,
                Some(MONDAY + 7 * H),
            ),
            (
                "east: 20:00 UTC is 22:00",
                &east,
                MONDAY + 20 * H,
                Some(MONDAY + 29 * H),
            ),
            ("east: 21:00 local is not", &east, MONDAY + 19 * H, None),
            (
                "west: 14:00 UTC is 09:00",
                &west,
                MONDAY + 14 * H,
                Some(MONDAY + 22 * H + 30 * M),
            ),
            ("west: 13:59 UTC is not", &west, MONDAY + 14 * H - M, None),
        ];
        for (name, q, at, expected) in cases {
            assert_eq!(q.quiet_until(at), expected, "{name}");
        }
    }

    #[test]
    fn days_name_the_day_a_window_starts_on() {
        let q = quiet("start = \"22:00\"\nend = \"07:00\"\ndays = [\"fri\"]\n");
        let friday = MONDAY + 4 * 24 * H;
        let cases = [
            ("thursday night", friday - 2 * H, None),
            ("friday night", friday + 23 * H, Some(friday + 31 * H)),
            ("saturday morning", friday + 30 * H, Some(friday + 31 * H)),
            ("saturday night", friday + 47 * H, None),
            ("friday morning", friday + 3 * H, None),
        ];
        for (name, at, expected) in cases {
            assert_eq!(q.quiet_until(at), expected, "{name}");
        }
    }

    #[test]
    fn critical_alerts_pass_when_allowed() {
        let allow = quiet("start = \"00:00\"\nend = \"12:00\"\n");
        let strict = quiet("start = \"00:00\"\nend = \"12:00\"\nallow_critical = false\n");
        let critical = LabelSet::from([("severity".to_owned(), "critical".to_owned())]);
        let warning = LabelSet::from([("severity".to_owned(), "warning".to_owned())]);
        assert!(!allow.holds(&critical, MONDAY + H));
        assert!(allow.holds(&warning, MONDAY + H));
        assert!(strict.holds(&critical, MONDAY + H));
        assert!(!allow.holds(&warning, MONDAY + 13 * H));
    }

    #[test]
    fn bad_values_are_refused_with_their_text() {
        let cases = [
            (
                "start = \"25:00\"\nend = \"07:00\"\n",
                "invalid time of day \"25:00\"",
            ),
            (
                "start = \"7:00\"\nend = \"07:00\"\n",
                "invalid time of day \"7:00\"",
            ),
            (
                "start = \"22:00\"\nend = \"07:00\"\nutc_offset = \"01:00\"\n",
                "invalid UTC offset",
            ),
            (
                "start = \"22:00\"\nend = \"07:00\"\nutc_offset = \"+15:00\"\n",
                "invalid UTC offset",
            ),
            (
                "start = \"22:00\"\nend = \"07:00\"\ndays = [\"moon\"]\n",
                "unknown variant",
            ),
            (
                "start = \"22:00\"\nend = \"07:00\"\nquiet = true\n",
                "unknown field",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let same = quiet("start = \"07:00\"\nend = \"07:00\"\ndays = []\n");
        assert_eq!(same.problems("receivers.chat.quiet_hours").len(), 2);
        assert_eq!(
            quiet("start = \"22:00\"\nend = \"07:00\"\n").problems("q"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn values_print_as_written() {
        let q = quiet("start = \"22:05\"\nend = \"07:00\"\nutc_offset = \"-03:30\"\n");
        assert_eq!(
            (q.start.to_string(), q.utc_offset.to_string()),
            ("22:05".into(), "-03:30".into())
        );
        assert_eq!(q.utc_offset.minutes(), -210);
        assert_eq!(UtcOffset::default().to_string(), "+00:00");
    }
}
