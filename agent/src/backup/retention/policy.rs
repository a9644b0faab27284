//! [`RetentionPolicy`]: the `keep_*` rules of a backup set, as restic's `forget` flags.

use serde::{Deserialize, Serialize};

use super::{CalendarDuration, RetentionError};

/// The count that means "every bucket" (restic's `unlimited`, or `-1`).
pub const UNLIMITED: u32 = u32::MAX;

/// Which snapshots to keep; every other snapshot of the group is removed.
///
/// Each field is one restic `forget` flag (`keep_daily` is `--keep-daily`), and the rules
/// are ORed: a snapshot stays when any rule keeps it. A count of `None` or `Some(0)` and a
/// duration of `None` or zero leave that rule off; [`UNLIMITED`] keeps every bucket. In
/// TOML a count is a number, `"unlimited"` or `-1`; a duration is restic's `"1y6m7d"`
/// (`m` is months). See the module docs for how each rule counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// The `n` newest snapshots.
    #[serde(with = "count", skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// The newest snapshot of each of the last `n` hours that have one.
    #[serde(with = "count", skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    /// The newest snapshot of each of the last `n` days that have one.
    #[serde(with = "count", skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// The newest snapshot of each of the last `n` ISO weeks (Monday–Sunday) that have one.
    #[serde(with = "count", skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// The newest snapshot of each of the last `n` months that have one.
    #[serde(with = "count", skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// The newest snapshot of each of the last `n` years that have one.
    #[serde(with = "count", skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// Every snapshot newer than this span before the latest snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<CalendarDuration>,
    /// The newest snapshot of each hour, within this span before the latest snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_hourly: Option<CalendarDuration>,
    /// The newest snapshot of each day, within this span before the latest snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_daily: Option<CalendarDuration>,
    /// The newest snapshot of each ISO week, within this span before the latest snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_weekly: Option<CalendarDuration>,
    /// The newest snapshot of each month, within this span before the latest snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_monthly: Option<CalendarDuration>,
    /// The newest snapshot of each year, within this span before the latest snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_yearly: Option<CalendarDuration>,
    /// Tag lists, as restic's repeated `--keep-tag`: a snapshot carrying every tag of one
    /// entry is kept. An entry is comma-separated (`"daily,db"` needs both tags); the
    /// entry `""` keeps untagged snapshots.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keep_tags: Vec<String>,
}

impl RetentionPolicy {
    /// True when no rule is on. Such a policy keeps every snapshot (see [`super::apply`]);
    /// a caller about to forget snapshots should refuse it, as restic's `forget` does
    /// ("no policy was specified, no snapshots will be removed").
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        let spans = [
            self.keep_within,
            self.keep_within_hourly,
            self.keep_within_daily,
            self.keep_within_weekly,
            self.keep_within_monthly,
            self.keep_within_yearly,
        ];
        counts.iter().all(|c| c.unwrap_or(0) == 0)
            && spans.iter().all(|s| s.is_none_or(|s| s.is_zero()))
            && self.keep_tags.is_empty()
    }

    /// Checks what the types cannot: a `keep_tags` entry with an empty tag beside others
    /// (`"a,"`, `"a,,b"`), which restic reads in a way nobody means (an untagged snapshot
    /// may then match). Reports every problem; one alone comes back as itself, several as
    /// [`RetentionError::Policy`]. An empty policy is valid here; see [`Self::is_empty`].
    pub fn validate(&self) -> Result<(), RetentionError> {
        let mut problems: Vec<RetentionError> = self
            .keep_tags
            .iter()
            .filter(|entry| {
                let tags = split_tag_list(entry);
                tags.len() > 1 && tags.contains(&"")
            })
            .map(|entry| RetentionError::EmptyTag {
                entry: entry.clone(),
            })
            .collect();
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(RetentionError::Policy { problems }),
        }
    }
}

/// The tags of one `keep_tags` entry: split at commas, each trimmed (restic's
/// `splitTagList`). `""` gives one empty tag, which matches untagged snapshots.
pub(super) fn split_tag_list(entry: &str) -> Vec<&str> {
    entry.split(',').map(str::trim).collect()
}

/// Parses a keep count as restic's `ForgetPolicyCount` does: a whole number, or
/// `"unlimited"` / `"-1"` for [`UNLIMITED`]. Other negative numbers are refused, like
/// restic ("negative values not allowed, use 'unlimited' instead").
pub fn parse_count(input: &str) -> Result<u32, RetentionError> {
    let text = input.trim();
    if text == "unlimited" {
        return Ok(UNLIMITED);
    }
    let value: i64 = text.parse().map_err(|_| RetentionError::Count {
        input: input.to_owned(),
        reason: "expected a whole number or \"unlimited\"",
    })?;
    count_from_i64(value).map_err(|reason| RetentionError::Count {
        input: input.to_owned(),
        reason,
    })
}

fn count_from_i64(value: i64) -> Result<u32, &'static str> {
    match value {
        -1 => Ok(UNLIMITED),
        v if v < 0 => Err("negative values other than -1 are not allowed; use \"unlimited\""),
        v => u32::try_from(v).map_err(|_| "too large; use \"unlimited\""),
    }
}

/// Serde for the `keep_*` counts: a number, `"unlimited"` or `-1` in; a number, or
/// `"unlimited"` for [`UNLIMITED`], out. Needs a self-describing format (TOML, JSON).
mod count {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    use super::{UNLIMITED, count_from_i64, parse_count};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<u32>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            None => serializer.serialize_none(),
            Some(UNLIMITED) => serializer.serialize_str("unlimited"),
            Some(n) => serializer.serialize_u32(*n),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u32>, D::Error> {
        deserializer.deserialize_any(CountVisitor)
    }

    struct CountVisitor;

    impl<'de> Visitor<'de> for CountVisitor {
        type Value = Option<u32>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a keep count: a whole number, \"unlimited\" or -1")
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            count_from_i64(v)
                .map(Some)
                .map_err(|reason| E::custom(format!("invalid keep count {v}: {reason}")))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            u32::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("invalid keep count {v}: too large")))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse_count(v).map(Some).map_err(E::custom)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }
    }
}
