//! Silences: time-bounded matcher sets whose alerts are not notified (Alertmanager's
//! silences, research §6), and their store.
//!
//! It owns [`Silence`], its states by time ([`SilenceState`]: pending before `starts_at`,
//! active until `ends_at`, expired after) and [`SilenceStore`] over the sled tree
//! `alert_silences` (key: the silence's id, a UUID v4; value: the [`Silence`] record):
//! create, get, list, update, expire and garbage collection. It leaves out the HTTP API and
//! the CLI (built on these operations) and the muting itself, which the dispatcher does
//! with [`SilenceStore::active`]. A silenced alert stays listed; the API shows
//! [`SilenceStore::silenced_by`].
//!
//! Editing follows Alertmanager: a change of the comment, the end, or (while still pending)
//! the start is made in place; any other change of an active silence (its matchers, or
//! its start) expires it and creates a new silence with a new id, so the record of what was
//! silenced when stays true. An expired silence cannot be edited. Expired silences are
//! kept for [`DEFAULT_RETENTION_MS`] (5 days, Alertmanager's default) and then removed by
//! [`SilenceStore::gc`].
//!
//! Each operation is one atomic write (an update that replaces a silence writes both in
//! one batch); durability comes with the caller's next `Store::flush`.

use muster_shared::store::{Record, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};

use super::labels::LabelSet;
use super::matcher::{Matcher, all_match};

/// The sled tree of silences.
pub const TREE: &str = "alert_silences";

/// How long an expired silence is kept before [`SilenceStore::gc`] removes it: 5 days.
pub const DEFAULT_RETENTION_MS: u64 = 5 * 24 * 3_600_000;

/// Most matchers one silence may have.
pub const MAX_MATCHERS: usize = 64;

/// Longest comment or author, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

/// One silence, as stored (schema 1) and shown by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// A UUID v4, lowercase hyphenated.
    pub id: String,
    /// All must match an alert's labels for it to be silenced.
    pub matchers: Vec<Matcher>,
    /// When it starts (ms since the epoch).
    pub starts_at_ms: u64,
    /// When it ends (ms since the epoch), after `starts_at_ms`.
    pub ends_at_ms: u64,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// When it was created.
    pub created_at_ms: u64,
    /// When it was last changed (created, edited or expired).
    pub updated_at_ms: u64,
}

impl Record for Silence {
    const SCHEMA: u8 = 1;
}

/// Where a silence is in its life, by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Its start is in the future.
    Pending,
    /// It mutes matching alerts now.
    Active,
    /// It has ended.
    Expired,
}

impl Silence {
    /// Its state at `now_ms`.
    pub fn state(&self, now_ms: u64) -> SilenceState {
        if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else if now_ms < self.ends_at_ms {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Whether it matches an alert with `labels` (whatever its state).
    pub fn matches(&self, labels: &LabelSet) -> bool {
        all_match(&self.matchers, labels)
    }
}

/// A silence as asked for by the API or the CLI (create or update).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceSpec {
    /// At least one, and not all matching the empty string.
    pub matchers: Vec<Matcher>,
    /// When it starts; `None` or a time in the past means now.
    pub starts_at_ms: Option<u64>,
    /// When it ends; after the start and after now.
    pub ends_at_ms: u64,
    /// Who asks; not empty.
    pub created_by: String,
    /// Why; not empty.
    pub comment: String,
}

impl SilenceSpec {
    /// Every problem with this spec at `now_ms`.
    fn problems(&self, now_ms: u64) -> Vec<String> {
        let mut problems = Vec::new();
        if self.matchers.is_empty() {
            problems.push("a silence needs at least one matcher".to_owned());
        } else if self.matchers.iter().all(|m| m.matches_value("")) {
            problems.push(
                "at least one matcher must not match the empty string (it would silence every alert)"
                    .to_owned(),
            );
        }
        if self.matchers.len() > MAX_MATCHERS {
            problems.push(format!("at most {MAX_MATCHERS} matchers"));
        }
        let starts = self.starts_at_ms.unwrap_or(now_ms).max(now_ms);
        if self.ends_at_ms <= starts {
            problems.push("ends_at must be after starts_at and in the future".to_owned());
        }
        for (field, text) in [("created_by", &self.created_by), ("comment", &self.comment)] {
            if text.trim().is_empty() {
                problems.push(format!("{field} must not be empty"));
            } else if text.len() > MAX_TEXT_BYTES {
                problems.push(format!("{field} is longer than {MAX_TEXT_BYTES} bytes"));
            }
        }
        problems
    }
}

/// Which silences [`SilenceStore::list`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SilenceFilter {
    /// Only these states; empty means all.
    pub states: Vec<SilenceState>,
    /// Alertmanager's API filter: every one must match the label set the silence's own
    /// matchers spell (`alertname="HostDown"` finds silences with an `alertname`
    /// matcher of value `HostDown`). Empty means all.
    pub matchers: Vec<Matcher>,
}

/// Why a silence operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// The spec breaks the rules; every problem is listed (an API answers 400).
    #[error("invalid silence: {}", problems.join("; "))]
    Invalid {
        /// What is wrong.
        problems: Vec<String>,
    },
    /// No silence has this id (404).
    #[error("no silence {id}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The silence has expired and cannot be changed (409).
    #[error("silence {id} has expired and cannot be changed")]
    Expired {
        /// The silence.
        id: String,
    },
    /// The store failed (500).
    #[error("silence store failed")]
    Store(#[from] StoreError),
}

/// The silences in the store. Cheap to clone; the API and the dispatcher hold clones of
/// the same tree. Every method blocks on sled (call from `spawn_blocking`).
#[derive(Debug, Clone)]
pub struct SilenceStore {
    tree: Tree<String, Silence>,
}

impl SilenceStore {
    /// Opens the `alert_silences` tree of `store`.
    ///
    /// # Errors
    /// [`StoreError`] when the tree cannot be opened.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
        })
    }

    /// Creates a silence from `spec` at `now_ms` with a fresh id; a start in the past
    /// becomes now.
    ///
    /// # Errors
    /// [`SilenceError::Invalid`] listing every problem; [`SilenceError::Store`].
    pub fn create(&self, spec: SilenceSpec, now_ms: u64) -> Result<Silence, SilenceError> {
        let problems = spec.problems(now_ms);
        if !problems.is_empty() {
            return Err(SilenceError::Invalid { problems });
        }
        let silence = new_silence(spec, now_ms);
        self.tree.insert(&silence.id, &silence)?;
        Ok(silence)
    }

    /// The silence `id`, if there is one.
    ///
    /// # Errors
    /// [`SilenceError::Store`].
    pub fn get(&self, id: &str) -> Result<Option<Silence>, SilenceError> {
        Ok(self.tree.get(&id.to_owned())?)
    }

    /// The silences that pass `filter` at `now_ms`: active ones first (soonest end
    /// first), then pending (soonest start first), then expired (latest end first), as
    /// Alertmanager lists them. A record that does not decode is skipped with a warning.
    ///
    /// # Errors
    /// [`SilenceError::Store`] when the tree cannot be read.
    pub fn list(&self, filter: &SilenceFilter, now_ms: u64) -> Result<Vec<Silence>, SilenceError> {
        let mut found: Vec<Silence> = self
            .all()?
            .into_iter()
            .filter(|s| filter.states.is_empty() || filter.states.contains(&s.state(now_ms)))
            .filter(|s| {
                let spelled: LabelSet = s
                    .matchers
                    .iter()
                    .map(|m| (m.name().to_owned(), m.value().to_owned()))
                    .collect();
                all_match(&filter.matchers, &spelled)
            })
            .collect();
        found.sort_by_key(|s| match s.state(now_ms) {
            SilenceState::Active => (0, s.ends_at_ms),
            SilenceState::Pending => (1, s.starts_at_ms),
            SilenceState::Expired => (2, u64::MAX - s.ends_at_ms),
        });
        Ok(found)
    }

    /// The silences active at `now_ms`, for muting.
    ///
    /// # Errors
    /// [`SilenceError::Store`] when the tree cannot be read.
    pub fn active(&self, now_ms: u64) -> Result<Vec<Silence>, SilenceError> {
        let mut all = self.all()?;
        all.retain(|s| s.state(now_ms) == SilenceState::Active);
        Ok(all)
    }

    /// The ids of the silences active at `now_ms` that match `labels` (the API's
    /// `silenced_by`), sorted.
    ///
    /// # Errors
    /// [`SilenceError::Store`] when the tree cannot be read.
    pub fn silenced_by(&self, labels: &LabelSet, now_ms: u64) -> Result<Vec<String>, SilenceError> {
        let mut ids: Vec<String> = self
            .active(now_ms)?
            .into_iter()
            .filter(|s| s.matches(labels))
            .map(|s| s.id)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Ends silence `id` at `now_ms` (a pending one ends before it starts). Returns it
    /// as expired.
    ///
    /// # Errors
    /// [`SilenceError::NotFound`], [`SilenceError::Expired`] when it already ended,
    /// [`SilenceError::Store`].
    pub fn expire(&self, id: &str, now_ms: u64) -> Result<Silence, SilenceError> {
        let mut silence = self.editable(id, now_ms)?;
        end(&mut silence, now_ms);
        self.tree.insert(&silence.id, &silence)?;
        Ok(silence)
    }

    /// Changes silence `id` to `spec` at `now_ms` and returns the result: the same
    /// silence edited in place when only the comment, the author, the end or (while
    /// pending) the start change; otherwise the old one expired and a new one, with a new
    /// id, created in the same write.
    ///
    /// # Errors
    /// [`SilenceError::Invalid`], [`SilenceError::NotFound`], [`SilenceError::Expired`],
    /// [`SilenceError::Store`].
    pub fn update(
        &self,
        id: &str,
        spec: SilenceSpec,
        now_ms: u64,
    ) -> Result<Silence, SilenceError> {
        let mut old = self.editable(id, now_ms)?;
        let problems = spec.problems(now_ms);
        if !problems.is_empty() {
            return Err(SilenceError::Invalid { problems });
        }
        let pending = old.state(now_ms) == SilenceState::Pending;
        let start_kept = spec.starts_at_ms.is_none_or(|s| s == old.starts_at_ms);
        if spec.matchers == old.matchers && (pending || start_kept) {
            if pending {
                old.starts_at_ms = spec.starts_at_ms.unwrap_or(now_ms).max(now_ms);
            }
            old.ends_at_ms = spec.ends_at_ms;
            old.comment = spec.comment;
            old.created_by = spec.created_by;
            old.updated_at_ms = now_ms;
            self.tree.insert(&old.id, &old)?;
            return Ok(old);
        }
        end(&mut old, now_ms);
        let new = new_silence(spec, now_ms);
        let mut batch = self.tree.batch();
        batch.insert(&old.id, &old)?;
        batch.insert(&new.id, &new)?;
        self.tree.apply(batch)?;
        Ok(new)
    }

    /// Removes silences that ended more than `retention_ms` before `now_ms`; returns how
    /// many.
    ///
    /// # Errors
    /// [`SilenceError::Store`].
    pub fn gc(&self, now_ms: u64, retention_ms: u64) -> Result<usize, SilenceError> {
        let mut batch = self.tree.batch();
        for silence in self.all()? {
            if silence.ends_at_ms.saturating_add(retention_ms) <= now_ms {
                batch.remove(&silence.id);
            }
        }
        let removed = batch.len();
        if removed > 0 {
            self.tree.apply(batch)?;
        }
        Ok(removed)
    }

    /// The silence `id` if it can still change at `now_ms`.
    fn editable(&self, id: &str, now_ms: u64) -> Result<Silence, SilenceError> {
        let silence = self
            .get(id)?
            .ok_or_else(|| SilenceError::NotFound { id: id.to_owned() })?;
        if silence.state(now_ms) == SilenceState::Expired {
            return Err(SilenceError::Expired { id: id.to_owned() });
        }
        Ok(silence)
    }

    /// Every silence that decodes.
    fn all(&self) -> Result<Vec<Silence>, SilenceError> {
        let mut all = Vec::new();
        for entry in self.tree.iter() {
            match entry {
                Ok((_, silence)) => all.push(silence),
                Err(err @ StoreError::Backend { .. }) => return Err(err.into()),
                Err(err) => tracing::warn!(error = %err, "skipping a silence that does not decode"),
            }
        }
        Ok(all)
    }
}

fn new_silence(spec: SilenceSpec, now_ms: u64) -> Silence {
    Silence {
        id: uuid::Uuid::new_v4().to_string(),
        matchers: spec.matchers,
        starts_at_ms: spec.starts_at_ms.unwrap_or(now_ms).max(now_ms),
        ends_at_ms: spec.ends_at_ms,
        created_by: spec.created_by,
        comment: spec.comment,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    }
}

/// Ends `silence` at `now_ms`; a pending one gets an empty span at now.
fn end(silence: &mut Silence, now_ms: u64) {
    if silence.starts_at_ms > now_ms {
        silence.starts_at_ms = now_ms;
    }
    silence.ends_at_ms = now_ms;
    silence.updated_at_ms = now_ms;
}

#[cfg(test)]
mod tests;
