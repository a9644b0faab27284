//! Retention: which snapshots of a backup set to keep, by restic's `forget` policy.
//!
//! Owns the policy ([`RetentionPolicy`]: `keep_last`, `keep_daily`, `keep_within_weekly`,
//! `keep_tags`, ...), the grouping of snapshots ([`GroupBy`]) and, per group, the
//! decision for every snapshot with restic's reasons ("daily snapshot", "oldest monthly
//! snapshot", "within 7d"). Leaves out listing, deleting and pruning: the caller lists
//! [`SnapshotMeta`]s, calls [`apply`] and removes what it is told. Before removing, the
//! caller refuses an empty policy ([`RetentionPolicy::is_empty`]) and a group that would
//! lose every snapshot ([`Group::removes_all`]), as restic's `forget` command does.
//!
//! The semantics are restic's (`doc/060_forget.rst`, `internal/data/snapshot_policy.go`;
//! research/backup-storage-reference.md §1), so `restic forget --dry-run` predicts ours:
//! - Rules are ORed; one snapshot may be kept for several reasons.
//! - Count rules work in calendar buckets read on each snapshot's own UTC offset: hour,
//!   day, ISO week (Monday–Sunday, numbered in its ISO year, so 30 December 2019 is in
//!   week 1 of 2020), month, year. Walking from newest to oldest, the first snapshot of
//!   each bucket is kept and spends one count; buckets without snapshots cost nothing.
//! - While a count rule has counts left at the oldest snapshot, that snapshot is kept
//!   too, even in an already kept bucket ("oldest daily snapshot"), so history reaches as
//!   far back as it can; an `unlimited` rule therefore always keeps the oldest.
//! - `keep_within*` spans are measured back from the latest snapshot, not from now, in
//!   calendar units (one month back from 31 March is 3 March, as Go's `AddDate`), and a
//!   snapshot exactly at the cutoff is outside.
//! - A snapshot dated after `now` never becomes that "latest", and is therefore kept by
//!   every `keep_within*` rule. Count rules treat it like any other snapshot: with only
//!   `keep_last = 1`, a future-dated snapshot is the one kept.
//! - `keep_tags` entries keep every snapshot holding all their tags, without counting.
//!
//! One deliberate difference: restic's `ApplyPolicy` removes everything under an empty
//! policy (its command refuses to call it); [`apply`] keeps everything instead, so a
//! missing policy can never delete a backup.
//!
//! Pure: no I/O, and no clock but [`apply`]'s reading of the time; nothing to interrupt.

mod decide;
mod duration;
mod group;
mod policy;
#[cfg(test)]
mod tests;

use std::time::SystemTime;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

pub use duration::CalendarDuration;
pub use group::{GroupBy, GroupKey};
pub use policy::{RetentionPolicy, UNLIMITED, parse_count};

/// One snapshot as the policy sees it. `time` keeps the offset the snapshot was taken
/// in: days and weeks are read on that wall clock, as restic does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The snapshot's id, echoed in its [`Decision`].
    pub id: String,
    /// When the snapshot was taken, with the UTC offset of the host at that time.
    pub time: DateTime<FixedOffset>,
    /// The host it was taken on.
    pub host: String,
    /// The backed-up paths (order does not matter).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What happens to one snapshot, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The snapshot's [`SnapshotMeta::id`].
    pub id: String,
    /// Kept (true) or to be removed.
    pub keep: bool,
    /// restic's words for each rule that keeps it, in rule order: `has tags [a, b]`,
    /// `within 7d`, `last snapshot`, `hourly snapshot` ... `yearly snapshot` (each may
    /// read `oldest ...`), then `hourly within 2d` ... `yearly within 10y`. Under an
    /// empty policy, the one reason `empty policy keeps everything`. Empty when removed.
    pub reasons: Vec<String>,
}

/// The decisions for one group of snapshots, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// What the group's snapshots share.
    pub key: GroupKey,
    /// One per snapshot of the group, newest first (snapshots of the same instant in
    /// input order).
    pub decisions: Vec<Decision>,
}

impl Group {
    /// True when the group would lose every snapshot, possible when only `keep_tags`
    /// rules are set and no snapshot carries the tags. restic then refuses the whole
    /// `forget` ("refusing to delete last snapshot of snapshot group"); so should the caller.
    pub fn removes_all(&self) -> bool {
        !self.decisions.is_empty() && self.decisions.iter().all(|d| !d.keep)
    }

    /// The ids kept, newest first.
    pub fn kept(&self) -> impl Iterator<Item = &str> {
        self.decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_str())
    }

    /// The ids to remove, newest first.
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        self.decisions
            .iter()
            .filter(|d| !d.keep)
            .map(|d| d.id.as_str())
    }
}

/// Why a retention setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// A `keep_*` count that is not a whole number, `"unlimited"` or `-1`.
    #[error("invalid keep count {input:?}: {reason}")]
    Count {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `keep_within*` span that is not restic's `"2y5m7d3h"` form.
    #[error("invalid retention duration {input:?}: {reason}")]
    Duration {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `group_by` field other than host, paths or tags.
    #[error("unknown group_by field {field:?}: expected host, paths or tags, comma-separated")]
    GroupBy {
        /// The unknown field.
        field: String,
    },
    /// A `keep_tags` entry with an empty tag beside others.
    #[error(
        "keep_tags entry {entry:?} has an empty tag beside others; give \"\" alone to keep untagged snapshots"
    )]
    EmptyTag {
        /// The entry as written.
        entry: String,
    },
    /// Several of the above, all reported by [`RetentionPolicy::validate`].
    #[error("{} problems in the retention policy: {}", problems.len(), join(problems))]
    Policy {
        /// Each problem found.
        problems: Vec<RetentionError>,
    },
}

fn join(problems: &[RetentionError]) -> String {
    let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

/// Applies `policy` to `snapshots`, group by group, at the current time. See
/// [`apply_at`]; the clock only decides which snapshots are in the future.
///
/// ```
/// use chrono::DateTime;
/// use muster_agent::backup::retention::{GroupBy, RetentionPolicy, SnapshotMeta, apply};
///
/// let snapshot = |id: &str, time: &str| SnapshotMeta {
///     id: id.into(),
///     time: DateTime::parse_from_rfc3339(time).expect("literal"),
///     host: "db1".into(),
///     paths: vec!["/srv".into()],
///     tags: vec![],
/// };
/// let snapshots = [
///     snapshot("a", "2024-03-09T03:00:00+01:00"),
///     snapshot("b", "2024-03-10T03:00:00+01:00"),
///     snapshot("c", "2024-03-10T15:00:00+01:00"),
/// ];
/// let policy = RetentionPolicy { keep_daily: Some(1), ..Default::default() };
/// let groups = apply(&policy, &snapshots, GroupBy::default());
/// assert_eq!(groups[0].kept().collect::<Vec<_>>(), ["c"]);
/// assert_eq!(groups[0].decisions[0].reasons, ["daily snapshot"]);
/// ```
pub fn apply(
    policy: &RetentionPolicy,
    snapshots: &[SnapshotMeta],
    group_by: GroupBy,
) -> Vec<Group> {
    let now = DateTime::<Utc>::from(SystemTime::now()).fixed_offset();
    apply_at(policy, snapshots, group_by, now)
}

/// Applies `policy` to `snapshots` split by `group_by`, with `now` as the current time:
/// one [`Group`] per distinct key, ordered by key, each deciding every one of its
/// snapshots. An empty list gives no groups; an empty policy keeps everything.
pub fn apply_at(
    policy: &RetentionPolicy,
    snapshots: &[SnapshotMeta],
    group_by: GroupBy,
    now: DateTime<FixedOffset>,
) -> Vec<Group> {
    group::group_snapshots(snapshots, group_by)
        .into_iter()
        .map(|(key, members)| Group {
            key,
            decisions: decide::decide(policy, &members, now),
        })
        .collect()
}
