//! Grouping snapshots before a policy applies, as restic's `--group-by host,paths,tags`.
//!
//! The policy runs on each group alone, so one backup set's history never decides
//! another's. Paths and tags are compared as sorted sets: `[/b, /a]` and `[/a, /b]` are one
//! group (restic `internal/data/snapshot_group.go`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{RetentionError, SnapshotMeta};

/// Which fields of a snapshot split the list into groups. restic's default, and ours, is
/// host and paths; [`GroupBy::NONE`] applies the policy to all snapshots at once.
///
/// Written as restic's flag value: `"host,paths"`, `"paths,tags"`, `""` (no grouping);
/// the singular forms `path` and `tag`, and `hosts`, are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupBy {
    /// Split by host name.
    pub host: bool,
    /// Split by the (sorted) set of backed-up paths.
    pub paths: bool,
    /// Split by the (sorted) set of tags.
    pub tags: bool,
}

impl GroupBy {
    /// No grouping: one group holds every snapshot (restic's `--group-by ''`).
    pub const NONE: Self = Self {
        host: false,
        paths: false,
        tags: false,
    };

    /// The key of `snapshot`'s group: the grouped fields, the others left empty (as
    /// restic's `SnapshotGroupKey`).
    pub fn key_of(&self, snapshot: &SnapshotMeta) -> GroupKey {
        let sorted = |list: &[String]| {
            let mut list = list.to_vec();
            list.sort();
            list
        };
        GroupKey {
            host: if self.host {
                snapshot.host.clone()
            } else {
                String::new()
            },
            paths: if self.paths {
                sorted(&snapshot.paths)
            } else {
                Vec::new()
            },
            tags: if self.tags {
                sorted(&snapshot.tags)
            } else {
                Vec::new()
            },
        }
    }
}

impl Default for GroupBy {
    /// Host and paths, restic's default.
    fn default() -> Self {
        Self {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.host, "host"),
            (self.paths, "paths"),
            (self.tags, "tags"),
        ];
        let chosen: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&chosen.join(","))
    }
}

impl FromStr for GroupBy {
    type Err = RetentionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let mut by = Self::NONE;
        for field in input.split(',').map(str::trim) {
            match field {
                "host" | "hosts" => by.host = true,
                "path" | "paths" => by.paths = true,
                "tag" | "tags" => by.tags = true,
                "" => {}
                other => {
                    return Err(RetentionError::GroupBy {
                        field: other.to_owned(),
                    });
                }
            }
        }
        Ok(by)
    }
}

impl Serialize for GroupBy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GroupBy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What the snapshots of one group share. A field the grouping does not use is empty, so
/// with [`GroupBy::NONE`] the one key is all empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupKey {
    /// The host name, when grouping by host.
    pub host: String,
    /// The sorted paths, when grouping by paths.
    pub paths: Vec<String>,
    /// The sorted tags, when grouping by tags.
    pub tags: Vec<String>,
}

impl fmt::Display for GroupKey {
    /// restic's group header: `host h1, path [/a /b], tags [x]`, skipping empty parts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::with_capacity(3);
        if !self.host.is_empty() {
            parts.push(format!("host {}", self.host));
        }
        if !self.paths.is_empty() {
            parts.push(format!("path [{}]", self.paths.join(" ")));
        }
        if !self.tags.is_empty() {
            parts.push(format!("tags [{}]", self.tags.join(" ")));
        }
        f.write_str(&parts.join(", "))
    }
}

/// Splits `snapshots` into groups, ordered by key; each keeps the input order of its
/// members (which decides between snapshots taken at the same instant).
pub(super) fn group_snapshots(
    snapshots: &[SnapshotMeta],
    by: GroupBy,
) -> BTreeMap<GroupKey, Vec<&SnapshotMeta>> {
    let mut groups: BTreeMap<GroupKey, Vec<&SnapshotMeta>> = BTreeMap::new();
    for snapshot in snapshots {
        groups
            .entry(by.key_of(snapshot))
            .or_default()
            .push(snapshot);
    }
    groups
}
