use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    state: String,
    attempts: u32,
}

impl Record for Job {
    const SCHEMA: u8 = 1;
}

/// The same tree read by a newer build whose `Job` gained a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JobV2 {
    state: String,
    attempts: u32,
    note: String,
}

impl Record for JobV2 {
    const SCHEMA: u8 = 2;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Bytes(Vec<u8>);

impl Record for Bytes {
    const SCHEMA: u8 = 1;
}

fn job(state: &str, attempts: u32) -> Job {
    Job {
        state: state.to_owned(),
        attempts,
    }
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path(), StoreOptions::agent()).unwrap()
}

#[test]
fn values_round_trip_through_get_insert_remove() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let jobs = store.tree::<String, Job>("jobs").unwrap();
    let key = "j1".to_owned();

    assert!(jobs.is_empty().unwrap());
    assert_eq!(jobs.insert(&key, &job("queued", 0)).unwrap(), None);
    assert_eq!(
        jobs.insert(&key, &job("running", 1)).unwrap(),
        Some(job("queued", 0))
    );
    assert_eq!(jobs.get(&key).unwrap(), Some(job("running", 1)));
    assert!(jobs.contains_key(&key).unwrap());
    assert_eq!(jobs.len().unwrap(), 1);
    assert_eq!(jobs.remove(&key).unwrap(), Some(job("running", 1)));
    assert_eq!(jobs.get(&key).unwrap(), None);
    assert_eq!(jobs.remove(&key).unwrap(), None);
    assert!(!jobs.contains_key(&key).unwrap());
    // Before a flush the data may still be only in memory.
    store.flush().unwrap();
    assert!(store.size_on_disk().unwrap() > 0);
}

#[test]
fn trees_are_separate_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = store.tree::<u64, Job>("a").unwrap();
    let b = store.tree::<u64, Job>("b").unwrap();
    a.insert(&1, &job("a", 1)).unwrap();
    assert_eq!(b.get(&1).unwrap(), None);
    assert_eq!(a.name(), "a");
}

#[test]
fn drop_tree_removes_a_tree_and_counts_its_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        let old = store.tree::<u64, Job>("old").unwrap();
        old.insert(&1, &job("a", 1)).unwrap();
        old.insert(&2, &job("b", 1)).unwrap();
        store.tree::<u64, Job>("kept").unwrap();
        store.flush().unwrap();
    }
    let store = open(&dir);
    assert_eq!(store.drop_tree("missing").unwrap(), None);
    assert_eq!(store.drop_tree("old").unwrap(), Some(2));
    store.flush().unwrap();
    drop(store);
    let store = open(&dir);
    // Gone for good, and looking did not create it again.
    assert_eq!(store.drop_tree("old").unwrap(), None);
    assert_eq!(store.drop_tree("missing").unwrap(), None);
    assert_eq!(store.drop_tree("kept").unwrap(), Some(0));
}

#[test]
fn u64_keys_iterate_in_numeric_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rounds = store.tree::<u64, Bytes>("rounds").unwrap();
    let keys = [1_u64 << 40, 256, 2, 255, 1, u64::MAX, 0];
    for k in keys {
        rounds.insert(&k, &Bytes(k.to_be_bytes().to_vec())).unwrap();
    }
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();

    let all: Vec<u64> = rounds.iter().map(|e| e.unwrap().0).collect();
    assert_eq!(all, sorted);
    let back: Vec<u64> = rounds.iter().rev().map(|e| e.unwrap().0).collect();
    assert_eq!(back, sorted.iter().rev().copied().collect::<Vec<_>>());

    let mid: Vec<u64> = rounds.range(2..=256).map(|e| e.unwrap().0).collect();
    assert_eq!(mid, [2, 255, 256]);
    let after: Vec<u64> = rounds
        .range((1_u64 << 40)..)
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(after, [1 << 40, u64::MAX]);
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = rounds.range(300..2).count();
    assert_eq!(inverted, 0);

    assert_eq!(rounds.first().unwrap().unwrap().0, 0);
    let (last_key, last_value) = rounds.last().unwrap().unwrap();
    assert_eq!(last_key, u64::MAX);
    assert_eq!(last_value, Bytes(u64::MAX.to_be_bytes().to_vec()));
}

#[test]
fn scan_prefix_selects_string_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let jobs = store.tree::<String, Job>("jobs").unwrap();
    for key in ["web1/a", "web1/b", "web10/a", "web2/a"] {
        jobs.insert(&key.to_owned(), &job(key, 0)).unwrap();
    }
    let keys: Vec<String> = jobs.scan_prefix("web1/").map(|e| e.unwrap().0).collect();
    assert_eq!(keys, ["web1/a", "web1/b"]);
}

#[test]
fn schema_mismatch_is_an_error_naming_tree_key_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let old = store.tree::<String, Job>("jobs").unwrap();
    old.insert(&"j1".to_owned(), &job("queued", 0)).unwrap();

    let new = store.tree::<String, JobV2>("jobs").unwrap();
    let err = new.get(&"j1".to_owned()).unwrap_err();
    match &err {
        StoreError::SchemaMismatch {
            tree,
            key_hex,
            found,
            expected,
        } => {
            assert_eq!(
                (*tree, key_hex.as_str(), *found, *expected),
                ("jobs", "6a31", 1, 2)
            );
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "value for key 6a31 of tree jobs has schema 1, expected 2"
    );
    // Iteration reports it per item rather than stopping or panicking.
    let items: Vec<_> = new.iter().collect();
    assert!(matches!(
        items.as_slice(),
        [Err(StoreError::SchemaMismatch { .. })]
    ));
    // A migration rewrites it under the new schema with a batch (which, unlike insert,
    // does not decode the previous value).
    let mut batch = new.batch();
    for entry in old.iter() {
        let (key, v1) = entry.unwrap();
        let v2 = JobV2 {
            state: v1.state,
            attempts: v1.attempts,
            note: String::new(),
        };
        batch.insert(&key, &v2).unwrap();
    }
    new.apply(batch).unwrap();
    assert_eq!(new.get(&"j1".to_owned()).unwrap().unwrap().note, "");
    assert!(matches!(
        old.get(&"j1".to_owned()),
        Err(StoreError::SchemaMismatch {
            found: 2,
            expected: 1,
            ..
        })
    ));
}

#[test]
fn undecodable_key_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let raw = store.tree::<Vec<u8>, Bytes>("seq").unwrap();
    raw.insert(&vec![1, 2, 3], &Bytes(vec![])).unwrap();
    let typed = store.tree::<u64, Bytes>("seq").unwrap();
    let err = typed.first().unwrap_err();
    assert!(
        matches!(&err, StoreError::Key { tree: "seq", key_hex, source: KeyError::Length { expected: 8, found: 3 } } if key_hex == "010203"),
        "{err:?}"
    );
}

#[test]
fn compare_and_swap_detects_conflict_and_returns_current() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let jobs = store.tree::<String, Job>("jobs").unwrap();
    let key = "j1".to_owned();

    // Create only if absent.
    assert_eq!(
        jobs.compare_and_swap(&key, None, Some(&job("queued", 0)))
            .unwrap(),
        Ok(())
    );
    let conflict = jobs
        .compare_and_swap(&key, None, Some(&job("other", 9)))
        .unwrap()
        .unwrap_err();
    assert_eq!(conflict.current, Some(job("queued", 0)));

    // Swap from the right old value; a stale old value conflicts.
    jobs.compare_and_swap(&key, Some(&job("queued", 0)), Some(&job("running", 1)))
        .unwrap()
        .unwrap();
    let conflict = jobs
        .compare_and_swap(&key, Some(&job("queued", 0)), Some(&job("failed", 1)))
        .unwrap()
        .unwrap_err();
    assert_eq!(conflict.current, Some(job("running", 1)));

    // Remove only if unchanged.
    jobs.compare_and_swap(&key, Some(&job("running", 1)), None)
        .unwrap()
        .unwrap();
    assert_eq!(jobs.get(&key).unwrap(), None);
}

#[test]
fn batch_applies_inserts_and_removes_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let t = store.tree::<u64, Job>("t").unwrap();
    t.insert(&1, &job("old", 0)).unwrap();
    t.insert(&2, &job("gone", 0)).unwrap();

    let mut batch = t.batch();
    batch.insert(&1, &job("new", 1)).unwrap();
    batch.insert(&3, &job("added", 1)).unwrap();
    batch.remove(&2);
    assert_eq!(batch.len(), 3);
    // Nothing is visible before apply.
    assert_eq!(t.get(&1).unwrap(), Some(job("old", 0)));
    assert_eq!(t.get(&3).unwrap(), None);

    t.apply(batch).unwrap();
    let all: Vec<(u64, Job)> = t.iter().map(Result::unwrap).collect();
    assert_eq!(all, [(1, job("new", 1)), (3, job("added", 1))]);
}

#[test]
fn oversized_value_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let t = store.tree::<u64, Bytes>("t").unwrap();
    let huge = Bytes(vec![0; MAX_RECORD_BYTES]);
    let err = t.insert(&1, &huge).unwrap_err();
    assert!(
        matches!(err, StoreError::ValueTooLarge { tree: "t", limit, .. } if limit == MAX_RECORD_BYTES),
        "{err:?}"
    );
    let mut batch = t.batch();
    assert!(batch.insert(&1, &huge).is_err());
    assert!(batch.is_empty());
    t.apply(batch).unwrap();
    assert_eq!(t.get(&1).unwrap(), None);
}

#[test]
fn reopen_after_drop_keeps_flushed_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        let t = store.tree::<u64, Job>("t").unwrap();
        for i in 0..100 {
            t.insert(&i, &job("done", i as u32)).unwrap();
        }
        store.flush().unwrap();
    }
    let store = open(&dir);
    let t = store.tree::<u64, Job>("t").unwrap();
    assert_eq!(t.len().unwrap(), 100);
    assert_eq!(t.get(&42).unwrap(), Some(job("done", 42)));
}

#[test]
fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // sled's flock is per open file description, so a second open in the same process
    // conflicts just as another process would.
    let err = Store::open(dir.path(), StoreOptions::collector()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Locked { path } if path == dir.path()),
        "{err:?}"
    );
    assert!(err.to_string().contains("in use by another process"));
    drop(store);
    Store::open(dir.path(), StoreOptions::collector()).unwrap();
}

#[test]
fn open_on_a_file_is_an_open_error_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&file, StoreOptions::agent()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Open { path, .. } if path == &file),
        "{err:?}"
    );
}

#[tokio::test]
async fn flush_async_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let t = store.tree::<u64, Job>("t").unwrap();
    t.insert(&1, &job("x", 1)).unwrap();
    store.flush_async().await.unwrap();
    drop((t, store));
    let store = open(&dir);
    assert_eq!(
        store.tree::<u64, Job>("t").unwrap().get(&1).unwrap(),
        Some(job("x", 1))
    );
}
