//! Turning what an API caller asked for into a job the agent accepts: names, paths and
//! idempotency keys checked here, so a bad request is a 400 and never reaches the agent.

use muster_shared::protocol::jobs::{MAX_IDEMPOTENCY_KEY_BYTES, RestoreSpec};

use super::log::{NameError, valid_name};

/// What is wrong with a backup or restore request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The set name breaks a rule.
    #[error(transparent)]
    Set(#[from] NameError),
    /// The snapshot is not `latest` or 8 to 64 hex digits.
    #[error("snapshot {0:?} is not `latest` or an id of 8 to 64 hex digits")]
    Snapshot(String),
    /// The target is not an absolute path.
    #[error("target_dir {0:?} must be an absolute path without `..` or control characters")]
    Target(String),
    /// The path inside the snapshot climbs out or holds control characters.
    #[error(
        "sub_path {0:?} must be a path inside the snapshot, without `.`, `..` or control characters"
    )]
    SubPath(String),
    /// The idempotency key is empty, too long or not printable ASCII.
    #[error("idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} printable ASCII characters")]
    Key,
}

/// The key to send: the caller's (checked), else a new one naming the job, so the
/// collector's own retry of the request reuses it.
///
/// # Errors
/// [`SpecError::Key`] for a caller's key that the agent would refuse.
pub fn idempotency_key(given: Option<String>, kind: &str, host: &str) -> Result<String, SpecError> {
    match given {
        Some(key) => {
            let fits = !key.is_empty()
                && key.len() <= MAX_IDEMPOTENCY_KEY_BYTES
                && key.bytes().all(|b| b.is_ascii_graphic());
            if fits { Ok(key) } else { Err(SpecError::Key) }
        }
        None => {
            let mut key = format!("{kind}-{}-{}", uuid::Uuid::new_v4().simple(), host);
            key.truncate(MAX_IDEMPOTENCY_KEY_BYTES);
            Ok(key)
        }
    }
}

/// A restore of `snapshot` (an id, or `latest` already resolved by the caller) of `set`
/// into `target_dir`, or only `sub_path` of it. A leading `/` of `sub_path` is dropped:
/// snapshots hold absolute paths, and `/etc/nginx` and `etc/nginx` name the same entry.
///
/// # Errors
/// A [`SpecError`] naming the field.
pub fn restore_spec(
    set: &str,
    snapshot: &str,
    target_dir: &str,
    sub_path: Option<&str>,
) -> Result<RestoreSpec, SpecError> {
    valid_name(set)?;
    if !is_snapshot_id(snapshot) {
        return Err(SpecError::Snapshot(snapshot.to_owned()));
    }
    let clean = |p: &str| !p.chars().any(char::is_control) && !p.split('/').any(|c| c == "..");
    if !target_dir.starts_with('/') || !clean(target_dir) {
        return Err(SpecError::Target(target_dir.to_owned()));
    }
    let sub_path = match sub_path.map(|p| p.trim_start_matches('/')) {
        None | Some("") => None,
        Some(p) if clean(p) && !p.split('/').any(|c| c == "." || c.is_empty()) => {
            Some(p.to_owned())
        }
        Some(_) => return Err(SpecError::SubPath(sub_path.unwrap_or_default().to_owned())),
    };
    Ok(RestoreSpec {
        set: set.to_owned(),
        snapshot_id: snapshot.to_owned(),
        target_dir: target_dir.to_owned(),
        sub_path,
    })
}

/// Whether `text` is a snapshot id or a prefix the agent accepts: 8 to 64 hex digits.
pub fn is_snapshot_id(text: &str) -> bool {
    (8..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_requests_are_checked_field_by_field() {
        let ok = restore_spec("etc", "4f2a9c1e", "/srv/restore", Some("/etc/nginx")).unwrap();
        assert_eq!(ok.sub_path.as_deref(), Some("etc/nginx"));
        assert_eq!(
            restore_spec("etc", "4f2a9c1e", "/r", Some("/"))
                .unwrap()
                .sub_path,
            None
        );
        assert!(matches!(
            restore_spec("", "4f2a9c1e", "/r", None),
            Err(SpecError::Set(_))
        ));
        assert!(matches!(
            restore_spec("etc", "latest", "/r", None),
            Err(SpecError::Snapshot(_))
        ));
        assert!(matches!(
            restore_spec("etc", "4f2a9c", "/r", None),
            Err(SpecError::Snapshot(_))
        ));
        assert!(matches!(
            restore_spec("etc", "4f2a9c1e", "r", None),
            Err(SpecError::Target(_))
        ));
        assert!(matches!(
            restore_spec("etc", "4f2a9c1e", "/r/../etc", None),
            Err(SpecError::Target(_))
        ));
        assert!(matches!(
            restore_spec("etc", "4f2a9c1e", "/r", Some("a/../../b")),
            Err(SpecError::SubPath(_))
        ));
    }

    #[test]
    fn keys_are_passed_through_or_made() {
        assert_eq!(
            idempotency_key(Some("k-1".into()), "backup", "web1"),
            Ok("k-1".into())
        );
        assert_eq!(
            idempotency_key(Some(String::new()), "backup", "web1"),
            Err(SpecError::Key)
        );
        assert_eq!(
            idempotency_key(Some("a b".into()), "backup", "web1"),
            Err(SpecError::Key)
        );
        let made = idempotency_key(None, "backup", &"h".repeat(200)).unwrap();
        assert!(made.starts_with("backup-") && made.len() <= MAX_IDEMPOTENCY_KEY_BYTES);
        assert_ne!(made, idempotency_key(None, "backup", "x").unwrap());
    }
}
