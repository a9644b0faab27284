//! One group's decisions: restic's `ApplyPolicy` (`internal/data/snapshot_policy.go`).
//!
//! Sketch: sort newest first (ties keep input order); find the latest snapshot that is
//! not in the future; walk the list once, asking each rule in turn whether it keeps the
//! snapshot. A count rule keeps a snapshot whose bucket differs from the bucket it kept
//! last, and spends one count; a within rule does the same without counts, for snapshots
//! newer than its cutoff. The oldest snapshot is also kept by any rule that still has
//! counts left, or is within, even when its bucket was already kept ("oldest ...").

use std::cmp::Reverse;

use chrono::{DateTime, Datelike, FixedOffset, Timelike};

use super::policy::{UNLIMITED, split_tag_list};
use super::{CalendarDuration, Decision, RetentionPolicy, SnapshotMeta};

/// The reason given to every snapshot when the policy is empty (nothing is removed).
pub(super) const EMPTY_POLICY_REASON: &str = "empty policy keeps everything";

/// The calendar unit a rule counts in, read on the snapshot's own wall clock.
#[derive(Debug, Clone, Copy)]
enum Bucket {
    /// Every snapshot its own bucket (`keep_last`).
    Each,
    Hour,
    Day,
    /// ISO 8601 week of the ISO year, as Go's `Time.ISOWeek`.
    Week,
    Month,
    Year,
}

impl Bucket {
    /// restic's bucket value: `YYYYMMDDHH`, `YYYYMMDD`, `YYYYWW`, `YYYYMM`, `YYYY`, or the
    /// position in the sorted list for [`Bucket::Each`].
    fn of(self, time: &DateTime<FixedOffset>, position: usize) -> i64 {
        let local = time.naive_local();
        let (y, m, d, h) = (
            i64::from(local.year()),
            i64::from(local.month()),
            i64::from(local.day()),
            i64::from(local.hour()),
        );
        match self {
            Self::Each => i64::try_from(position).unwrap_or(i64::MAX),
            Self::Hour => y * 1_000_000 + m * 10_000 + d * 100 + h,
            Self::Day => y * 10_000 + m * 100 + d,
            Self::Week => {
                let week = local.iso_week();
                i64::from(week.year()) * 100 + i64::from(week.week())
            }
            Self::Month => y * 100 + m,
            Self::Year => y,
        }
    }
}

/// A `keep_<unit>` rule while the walk is under way.
struct CountRule {
    remaining: u32,
    bucket: Bucket,
    last: Option<i64>,
    reason: &'static str,
}

/// A `keep_within_<unit>` rule while the walk is under way.
struct WithinRule {
    span: CalendarDuration,
    bucket: Bucket,
    last: Option<i64>,
    reason: &'static str,
}

/// Where a within rule starts: snapshots strictly after `Some(cutoff)` are within;
/// `None` means every snapshot is (no latest snapshot in the past, or a span reaching
/// before the representable calendar).
fn cutoff(
    latest: Option<DateTime<FixedOffset>>,
    span: &CalendarDuration,
) -> Option<DateTime<FixedOffset>> {
    latest.and_then(|latest| span.before(latest))
}

fn is_within(time: &DateTime<FixedOffset>, cutoff: Option<DateTime<FixedOffset>>) -> bool {
    cutoff.is_none_or(|cutoff| *time > cutoff)
}

/// restic's `Snapshot.HasTags`: every tag of the list is on the snapshot, except that an
/// empty tag met before any missing one matches an untagged snapshot.
fn has_tags(snapshot: &SnapshotMeta, tags: &[&str]) -> bool {
    for tag in tags {
        if tag.is_empty() && snapshot.tags.is_empty() {
            return true;
        }
        if !snapshot.tags.iter().any(|t| t == tag) {
            return false;
        }
    }
    true
}

/// Decides every snapshot of one group, newest first. `now` only excludes future
/// snapshots from being the "latest" that within rules measure from.
pub(super) fn decide(
    policy: &RetentionPolicy,
    snapshots: &[&SnapshotMeta],
    now: DateTime<FixedOffset>,
) -> Vec<Decision> {
    let mut sorted = snapshots.to_vec();
    // Stable, so snapshots of the same instant keep their input order, as sort.Stable.
    sorted.sort_by_key(|s| Reverse(s.time));

    if policy.is_empty() {
        return sorted
            .iter()
            .map(|s| Decision {
                id: s.id.clone(),
                keep: true,
                reasons: vec![EMPTY_POLICY_REASON.to_owned()],
            })
            .collect();
    }

    let latest = sorted.iter().map(|s| s.time).filter(|t| *t < now).max();
    let tag_lists: Vec<Vec<&str>> = policy.keep_tags.iter().map(|e| split_tag_list(e)).collect();
    let within = policy
        .keep_within
        .filter(|span| !span.is_zero())
        .map(|span| (span, cutoff(latest, &span)));

    let mut counts: Vec<CountRule> = [
        (policy.keep_last, Bucket::Each, "last snapshot"),
        (policy.keep_hourly, Bucket::Hour, "hourly snapshot"),
        (policy.keep_daily, Bucket::Day, "daily snapshot"),
        (policy.keep_weekly, Bucket::Week, "weekly snapshot"),
        (policy.keep_monthly, Bucket::Month, "monthly snapshot"),
        (policy.keep_yearly, Bucket::Year, "yearly snapshot"),
    ]
    .into_iter()
    .filter_map(|(count, bucket, reason)| {
        count.filter(|n| *n > 0).map(|remaining| CountRule {
            remaining,
            bucket,
            last: None,
            reason,
        })
    })
    .collect();

    let mut withins: Vec<(WithinRule, Option<DateTime<FixedOffset>>)> = [
        (policy.keep_within_hourly, Bucket::Hour, "hourly within"),
        (policy.keep_within_daily, Bucket::Day, "daily within"),
        (policy.keep_within_weekly, Bucket::Week, "weekly within"),
        (policy.keep_within_monthly, Bucket::Month, "monthly within"),
        (policy.keep_within_yearly, Bucket::Year, "yearly within"),
    ]
    .into_iter()
    .filter_map(|(span, bucket, reason)| {
        let span = span.filter(|s| !s.is_zero())?;
        let rule = WithinRule {
            span,
            bucket,
            last: None,
            reason,
        };
        Some((rule, cutoff(latest, &span)))
    })
    .collect();

    let oldest = sorted.len().saturating_sub(1);
    let mut decisions = Vec::with_capacity(sorted.len());
    for (position, snapshot) in sorted.iter().enumerate() {
        let is_oldest = position == oldest;
        let mut reasons = Vec::new();

        // Tags are not counted and use up nothing.
        for tags in &tag_lists {
            if has_tags(snapshot, tags) {
                reasons.push(format!("has tags [{}]", tags.join(", ")));
            }
        }

        if let Some((span, cutoff)) = within
            && is_within(&snapshot.time, cutoff)
        {
            reasons.push(format!("within {span}"));
        }

        for rule in counts.iter_mut().filter(|r| r.remaining > 0) {
            let bucket = rule.bucket.of(&snapshot.time, position);
            let repeat = rule.last == Some(bucket);
            if !repeat || is_oldest {
                reasons.push(if repeat {
                    format!("oldest {}", rule.reason)
                } else {
                    rule.reason.to_owned()
                });
                rule.last = Some(bucket);
                if rule.remaining != UNLIMITED {
                    rule.remaining -= 1;
                }
            }
        }

        for (rule, cutoff) in withins.iter_mut() {
            if !is_within(&snapshot.time, *cutoff) {
                continue;
            }
            let bucket = rule.bucket.of(&snapshot.time, position);
            let repeat = rule.last == Some(bucket);
            if !repeat || is_oldest {
                let prefix = if repeat { "oldest " } else { "" };
                reasons.push(format!("{prefix}{} {}", rule.reason, rule.span));
                rule.last = Some(bucket);
            }
        }

        decisions.push(Decision {
            id: snapshot.id.clone(),
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    decisions
}
