use muster_shared::store::StoreOptions;

use super::*;

const NOW: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
    (dir, store)
}

fn spec(matchers: &str, starts: Option<u64>, ends: u64) -> SilenceSpec {
    SilenceSpec {
        matchers: Matcher::parse_list(matchers).unwrap(),
        starts_at_ms: starts,
        ends_at_ms: ends,
        created_by: "ana".to_owned(),
        comment: "maintenance".to_owned(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn create_refuses_bad_silences_naming_each_problem() {
    let (_dir, store) = store();
    let silences = SilenceStore::open(&store).unwrap();
    let blank = |mut s: SilenceSpec| {
        s.created_by = " ".to_owned();
        s.comment = String::new();
        s
    };
    let cases = [
        (
            "no matchers",
            spec("", None, NOW + HOUR),
            vec!["at least one matcher"],
        ),
        (
            "all match the empty string",
            spec(r#"host=~".*", team!="ops""#, None, NOW + HOUR),
            vec!["must not match the empty string"],
        ),
        (
            "ends before it starts",
            spec(r#"host="web1""#, Some(NOW + 2 * HOUR), NOW + HOUR),
            vec!["ends_at must be after starts_at"],
        ),
        (
            "ends in the past",
            spec(r#"host="web1""#, None, NOW - 1),
            vec!["ends_at"],
        ),
        (
            "no author, no comment",
            blank(spec(r#"host="web1""#, None, NOW + HOUR)),
            vec!["created_by must not be empty", "comment must not be empty"],
        ),
    ];
    for (name, spec, expected) in cases {
        match silences.create(spec, NOW) {
            Err(SilenceError::Invalid { problems }) => {
                assert_eq!(problems.len(), expected.len(), "{name}: {problems:?}");
                for (got, want) in problems.iter().zip(expected) {
                    assert!(got.contains(want), "{name}: {got}");
                }
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(
        silences
            .list(&SilenceFilter::default(), NOW)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn states_follow_the_clock_and_a_past_start_is_now() {
    let (_dir, store) = store();
    let silences = SilenceStore::open(&store).unwrap();
    let now = silences
        .create(spec(r#"host="web1""#, Some(NOW - HOUR), NOW + HOUR), NOW)
        .unwrap();
    assert_eq!(now.starts_at_ms, NOW);
    let later = silences
        .create(
            spec(r#"host="web2""#, Some(NOW + HOUR), NOW + 2 * HOUR),
            NOW,
        )
        .unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(&later.id).unwrap().get_version_num(),
        4
    );
    let cases = [
        (NOW - 1, SilenceState::Pending, SilenceState::Pending),
        (NOW, SilenceState::Active, SilenceState::Pending),
        (NOW + HOUR, SilenceState::Expired, SilenceState::Active),
        (NOW + 2 * HOUR, SilenceState::Expired, SilenceState::Expired),
    ];
    for (at, first, second) in cases {
        assert_eq!((now.state(at), later.state(at)), (first, second), "at {at}");
    }
    let active: Vec<String> = silences
        .active(NOW + HOUR)
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(active, std::slice::from_ref(&later.id));
}

#[test]
fn matching_uses_every_matcher_regexes_anchored() {
    let (_dir, store) = store();
    let silences = SilenceStore::open(&store).unwrap();
    let s = silences
        .create(
            spec(
                r#"host=~"web[0-9]+", alertname!="HostDown""#,
                None,
                NOW + HOUR,
            ),
            NOW,
        )
        .unwrap();
    let cases = [
        (&[("host", "web12"), ("alertname", "DiskFull")][..], true),
        (&[("host", "web12"), ("alertname", "HostDown")][..], false),
        (&[("host", "myweb1"), ("alertname", "DiskFull")][..], false),
        (&[("alertname", "DiskFull")][..], false),
    ];
    for (alert, expected) in cases {
        assert_eq!(s.matches(&labels(alert)), expected, "{alert:?}");
        let by = silences.silenced_by(&labels(alert), NOW).unwrap();
        assert_eq!(by.len(), usize::from(expected), "{alert:?}");
    }
    assert!(
        silences
            .silenced_by(&labels(cases[0].0), NOW + HOUR)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn expire_ends_now_and_expired_silences_cannot_change() {
    let (_dir, store) = store();
    let silences = SilenceStore::open(&store).unwrap();
    let active = silences
        .create(spec(r#"host="web1""#, None, NOW + HOUR), NOW)
        .unwrap();
    let pending = silences
        .create(
            spec(r#"host="web2""#, Some(NOW + HOUR), NOW + 2 * HOUR),
            NOW,
        )
        .unwrap();
    let expired = silences.expire(&active.id, NOW + 10).unwrap();
    assert_eq!(
        (expired.ends_at_ms, expired.updated_at_ms),
        (NOW + 10, NOW + 10)
    );
    assert_eq!(expired.state(NOW + 10), SilenceState::Expired);
    let never = silences.expire(&pending.id, NOW + 10).unwrap();
    assert_eq!((never.starts_at_ms, never.ends_at_ms), (NOW + 10, NOW + 10));
    assert!(matches!(
        silences.expire(&active.id, NOW + 20),
        Err(SilenceError::Expired { .. })
    ));
    assert!(matches!(
        silences.update(
            &active.id,
            spec(r#"host="web1""#, None, NOW + HOUR),
            NOW + 20
        ),
        Err(SilenceError::Expired { .. })
    ));
    assert!(matches!(
        silences.expire("nope", NOW),
        Err(SilenceError::NotFound { .. })
    ));
    assert_eq!(silences.get(&active.id).unwrap(), Some(expired));
}

#[test]
fn updates_edit_in_place_or_replace_like_alertmanager() {
    let (_dir, store) = store();
    let silences = SilenceStore::open(&store).unwrap();
    let s = silences
        .create(spec(r#"host="web1""#, None, NOW + HOUR), NOW)
        .unwrap();
    // Comment and end: in place.
    let mut longer = spec(r#"host="web1""#, None, NOW + 3 * HOUR);
    longer.comment = "takes longer".to_owned();
    let edited = silences.update(&s.id, longer, NOW + 5).unwrap();
    assert_eq!(edited.id, s.id);
    assert_eq!(
        (edited.ends_at_ms, edited.comment.as_str()),
        (NOW + 3 * HOUR, "takes longer")
    );
    // New matchers on an active silence: the old one expires, a new one takes over.
    let replaced = silences
        .update(
            &s.id,
            spec(r#"host=~"web1|web2""#, None, NOW + 3 * HOUR),
            NOW + 10,
        )
        .unwrap();
    assert_ne!(replaced.id, s.id);
    let old = silences.get(&s.id).unwrap().unwrap();
    assert_eq!(old.ends_at_ms, NOW + 10);
    assert_eq!(replaced.state(NOW + 10), SilenceState::Active);
    // A pending silence may move its start in place.
    let p = silences
        .create(spec(r#"host="db1""#, Some(NOW + HOUR), NOW + 2 * HOUR), NOW)
        .unwrap();
    let moved = silences
        .update(
            &p.id,
            spec(r#"host="db1""#, Some(NOW + 30 * 60_000), NOW + 2 * HOUR),
            NOW,
        )
        .unwrap();
    assert_eq!(
        (moved.id.as_str(), moved.starts_at_ms),
        (p.id.as_str(), NOW + 30 * 60_000)
    );
    // Invalid edits change nothing.
    assert!(matches!(
        silences.update(&p.id, spec("", None, NOW + HOUR), NOW),
        Err(SilenceError::Invalid { .. })
    ));
    assert_eq!(silences.get(&p.id).unwrap(), Some(moved));
}

#[test]
fn list_filters_by_state_and_matchers_and_sorts_like_alertmanager() {
    let (_dir, store) = store();
    let silences = SilenceStore::open(&store).unwrap();
    let a = silences
        .create(spec(r#"alertname="HostDown""#, None, NOW + 2 * HOUR), NOW)
        .unwrap();
    let b = silences
        .create(spec(r#"alertname="DiskFull""#, None, NOW + HOUR), NOW)
        .unwrap();
    let c = silences
        .create(
            spec(
                r#"alertname="HostDown", host="db1""#,
                Some(NOW + HOUR),
                NOW + 3 * HOUR,
            ),
            NOW,
        )
        .unwrap();
    let d = silences
        .create(spec(r#"host="web9""#, None, NOW + HOUR), NOW)
        .unwrap();
    silences.expire(&d.id, NOW + 1).unwrap();
    let ids = |filter: SilenceFilter| -> Vec<String> {
        silences
            .list(&filter, NOW + 2)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect()
    };
    assert_eq!(
        ids(SilenceFilter::default()),
        [&b.id, &a.id, &c.id, &d.id].map(String::clone)
    );
    let active = SilenceFilter {
        states: vec![SilenceState::Active],
        ..Default::default()
    };
    assert_eq!(ids(active), [&b.id, &a.id].map(String::clone));
    let host_down = SilenceFilter {
        matchers: Matcher::parse_list(r#"alertname="HostDown""#).unwrap(),
        ..Default::default()
    };
    assert_eq!(ids(host_down), [&a.id, &c.id].map(String::clone));
}

#[test]
fn gc_drops_silences_expired_longer_than_the_retention() {
    let (_dir, store) = store();
    let silences = SilenceStore::open(&store).unwrap();
    let old = silences
        .create(spec(r#"host="a""#, None, NOW + HOUR), NOW)
        .unwrap();
    let recent = silences
        .create(spec(r#"host="b""#, None, NOW + 2 * HOUR), NOW)
        .unwrap();
    assert_eq!(
        silences
            .gc(NOW + HOUR + DEFAULT_RETENTION_MS - 1, DEFAULT_RETENTION_MS)
            .unwrap(),
        0
    );
    assert_eq!(
        silences
            .gc(NOW + HOUR + DEFAULT_RETENTION_MS, DEFAULT_RETENTION_MS)
            .unwrap(),
        1
    );
    assert_eq!(silences.get(&old.id).unwrap(), None);
    assert!(silences.get(&recent.id).unwrap().is_some());
}

#[test]
fn silences_survive_a_reopen() {
    let (dir, store) = store();
    let created = SilenceStore::open(&store)
        .unwrap()
        .create(spec(r#"host="web1""#, None, NOW + HOUR), NOW)
        .unwrap();
    store.flush().unwrap();
    drop(store);
    // A child forked by a concurrent test may hold sled's lock for a moment (see
    // dispatch's test kit): retry for up to 5 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let store = loop {
        match Store::open(dir.path(), StoreOptions::collector()) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.unwrap(),
        }
    };
    let again = SilenceStore::open(&store).unwrap();
    assert_eq!(again.get(&created.id).unwrap(), Some(created));
}
