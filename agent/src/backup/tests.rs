//! The repository end to end through the library: round trips of odd trees, dedup, damage
//! found by verify, and entries that try to escape on restore and import.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use proptest::prelude::*;

use super::archiver::{self, BackupRequest, BlobStore, NoProgress, PackSlot};
use super::catalog::Catalog;
use super::repo::Repository;
use super::repo::config::InitOptions;
use super::repo::lock::LockMode;
use super::restorer::{self, RestoreError, RestoreRequest};
use super::snapshot::{self, Snapshot};
use super::tree::{Node, NodeKind};
use super::{checker, tarball};

struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    cache: PathBuf,
    src: PathBuf,
    out: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture {
        repo: dir.path().join("repo"),
        cache: dir.path().join("cache"),
        src: dir.path().join("src"),
        out: dir.path().join("out"),
        _dir: dir,
    };
    fs::create_dir(&f.src).unwrap();
    Repository::init(&f.repo, InitOptions::default()).unwrap();
    f
}

fn open(f: &Fixture) -> (Repository, Catalog) {
    let repo = Repository::open(&f.repo, LockMode::Exclusive, Default::default(), "test").unwrap();
    let catalog = Catalog::open(&f.cache, &repo.config().id).unwrap();
    (repo, catalog)
}

fn backup(f: &Fixture) -> archiver::BackupOutcome {
    let (mut repo, catalog) = open(f);
    let req = BackupRequest {
        sources: vec![f.src.clone()],
        threads: 2,
        ..BackupRequest::default()
    };
    archiver::run(
        &mut repo,
        &catalog,
        &req,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap()
}

fn restore(f: &Fixture, snap: &Snapshot) -> Result<restorer::RestoreSummary, RestoreError> {
    let repo = Repository::open(&f.repo, LockMode::Shared, Default::default(), "test").unwrap();
    let req = RestoreRequest {
        target: f.out.clone(),
        include: None,
        threads: 2,
    };
    restorer::run(&repo, snap, &req, &NoProgress, &AtomicBool::new(false))
}

/// Compares two trees: names, kinds, bytes, modes, mtimes, symlink targets, hard links.
fn assert_same(a: &Path, b: &Path) {
    assert_same_at(a, b, true);
}

/// As [`assert_same`]; `nanos: false` compares mtimes to the second (tar's resolution).
fn assert_same_at(a: &Path, b: &Path, nanos: bool) {
    let ma = fs::symlink_metadata(a).unwrap();
    let mb = fs::symlink_metadata(b).unwrap();
    assert_eq!(ma.file_type(), mb.file_type(), "{}", b.display());
    assert_eq!(ma.mode(), mb.mode(), "mode of {}", b.display());
    if !ma.is_dir() {
        assert_eq!(ma.mtime(), mb.mtime(), "mtime of {}", b.display());
        if nanos {
            assert_eq!(ma.mtime_nsec(), mb.mtime_nsec(), "mtime of {}", b.display());
        }
        assert_eq!(ma.nlink(), mb.nlink(), "links of {}", b.display());
    }
    if ma.file_type().is_symlink() {
        assert_eq!(fs::read_link(a).unwrap(), fs::read_link(b).unwrap());
    } else if ma.is_file() {
        assert_eq!(
            fs::read(a).unwrap(),
            fs::read(b).unwrap(),
            "bytes of {}",
            b.display()
        );
    } else if ma.is_dir() {
        let mut na: Vec<_> = fs::read_dir(a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut nb: Vec<_> = fs::read_dir(b)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        na.sort();
        nb.sort();
        assert_eq!(na, nb, "entries of {}", b.display());
        for n in na {
            assert_same_at(&a.join(&n), &b.join(&n), nanos);
        }
    }
}

fn restored(f: &Fixture) -> PathBuf {
    let rel = f.src.strip_prefix("/").unwrap();
    f.out.join(rel)
}

/// A file's content: random, repetitive, zero or empty, up to a few chunks.
fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 1..3000),
        (any::<u8>(), 1usize..400_000).prop_map(|(b, n)| vec![b; n]),
        (any::<u64>(), 100_000usize..600_000).prop_map(|(seed, n)| {
            let mut s = seed | 1;
            (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as u8
                })
                .collect()
        }),
    ]
}

/// Odd but legal names: spaces, newlines, non-UTF-8 bytes, leading dashes and dots.
fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z]{1,8}".prop_map(String::into_bytes),
        Just(b"with space".to_vec()),
        Just(b"new\nline".to_vec()),
        Just(b"-rf".to_vec()),
        Just(b"...".to_vec()),
        Just(vec![0xff, 0xfe, b'x']),
        Just("ünïcødé".as_bytes().to_vec()),
    ]
}

#[derive(Debug, Clone)]
enum Item {
    File(Vec<u8>, Vec<u8>, u32),
    Dir(Vec<u8>),
    Symlink(Vec<u8>, Vec<u8>),
    HardLink(Vec<u8>),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => (name(), content(), prop_oneof![Just(0o644u32), Just(0o600), Just(0o755), Just(0o4755)])
            .prop_map(|(n, c, m)| Item::File(n, c, m)),
        1 => name().prop_map(Item::Dir),
        1 => (name(), prop_oneof![Just(b"../../etc/passwd".to_vec()), Just(b"/abs/target".to_vec()), name()])
            .prop_map(|(n, t)| Item::Symlink(n, t)),
        1 => name().prop_map(Item::HardLink),
    ]
}

fn build(root: &Path, items: &[Item]) {
    use std::os::unix::ffi::OsStrExt;
    let mut dir = root.to_path_buf();
    let mut first_file: Option<PathBuf> = None;
    for (i, it) in items.iter().enumerate() {
        let os = |n: &[u8]| std::ffi::OsStr::from_bytes(n).to_os_string();
        match it {
            Item::Dir(n) => {
                let p = dir.join(os(n));
                if fs::create_dir(&p).is_ok() {
                    dir = p;
                }
            }
            Item::File(n, c, m) => {
                let p = dir.join(os(n));
                if p.symlink_metadata().is_ok() {
                    continue;
                }
                fs::write(&p, c).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(*m)).unwrap();
                let t = filetime::FileTime::from_unix_time(1_600_000_000 + i as i64, 123_456_789);
                filetime::set_file_mtime(&p, t).unwrap();
                first_file.get_or_insert(p);
            }
            Item::Symlink(n, t) => {
                let _ = symlink(os(t), dir.join(os(n)));
            }
            Item::HardLink(n) => {
                if let Some(first) = &first_file {
                    let _ = fs::hard_link(first, dir.join(os(n)));
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn restore_of_backup_is_identical(items in proptest::collection::vec(item(), 0..24)) {
        let f = fixture();
        build(&f.src, &items);
        let out = backup(&f);
        let summary = restore(&f, &out.snapshot).unwrap();
        prop_assert_eq!(summary.errors, 0);
        assert_same(&f.src, &restored(&f));
        // A second backup of the unchanged tree reads nothing and adds only the trees of the
        // folders above the source (their mtimes moved: the repository is beside it).
        let again = backup(&f);
        prop_assert_eq!(again.snapshot.summary.files_read, 0);
        prop_assert!(again.snapshot.summary.raw_bytes_added < 4096, "{:?}", again.snapshot.summary);
    }
}

#[test]
fn the_same_content_is_stored_once() {
    let f = fixture();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..2_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    fs::write(f.src.join("a"), &data).unwrap();
    fs::write(f.src.join("b"), &data).unwrap();
    let out = backup(&f);
    let s = &out.snapshot.summary;
    assert_eq!(s.bytes_read, 4_000_000);
    // Both files' chunks once, plus a tree and chunk lists.
    assert!(s.raw_bytes_added < 2_100_000, "{s:?}");
    // An inserted byte shifts everything after it; content-defined chunks realign.
    let mut shifted = data.clone();
    shifted.insert(10, 7);
    fs::write(f.src.join("c"), &shifted).unwrap();
    let out = backup(&f);
    assert!(
        out.snapshot.summary.raw_bytes_added < 600_000,
        "{:?}",
        out.snapshot.summary
    );
}

#[test]
fn verify_read_data_names_the_snapshot_and_file_of_a_flipped_byte() {
    let f = fixture();
    fs::create_dir(f.src.join("d")).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 300) as u8).collect();
    fs::write(f.src.join("d/victim"), &data).unwrap();
    let out = backup(&f);
    let repo = Repository::open(&f.repo, LockMode::Shared, Default::default(), "t").unwrap();
    assert!(
        checker::verify(&repo, true, 2, &NoProgress)
            .unwrap()
            .is_ok()
    );
    // The largest pack holds the file's data (trees are small).
    let mut packs: Vec<_> = repo
        .list_packs()
        .unwrap()
        .into_iter()
        .map(|id| repo.pack_path(&id))
        .collect();
    packs.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    drop(repo);
    let mut bytes = fs::read(&packs[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    fs::write(&packs[0], bytes).unwrap();
    let repo = Repository::open(&f.repo, LockMode::Shared, Default::default(), "t").unwrap();
    let structure = checker::verify(&repo, false, 2, &NoProgress).unwrap();
    assert!(
        structure.is_ok(),
        "a flipped data byte is not a structural problem"
    );
    let report = checker::verify(&repo, true, 2, &NoProgress).unwrap();
    let text = report.problems.join("\n");
    assert!(text.contains(&out.id[..8]), "{text}");
    assert!(text.contains("d/victim"), "{text}");
    assert!(text.contains("damaged"), "{text}");
}

/// Writes a snapshot whose root holds `nodes` (built by hand, as an attacker could).
fn forge(f: &Fixture, nodes: Vec<Node>) -> Snapshot {
    let (mut repo, _) = open(f);
    let store = BlobStore::new(&repo);
    let mut slot = PackSlot::new(3).unwrap();
    let root = store.save_tree(&mut slot, nodes).unwrap()[0];
    store.finish(&mut slot).unwrap();
    let packs = store.into_finished();
    repo.add_packs(packs).unwrap();
    let snap = Snapshot::new(vec!["/forged".into()], vec![], root);
    snapshot::save(&repo, &snap).unwrap();
    snap
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        mode: 0o755,
        ..Node::empty(name.to_vec(), kind)
    }
}

#[test]
fn restore_refuses_entries_that_escape() {
    for bad in [&b".."[..], b"../x", b"/etc", b"a/b", b"."] {
        let f = fixture();
        let snap = forge(&f, vec![node(bad, NodeKind::File)]);
        let err = restore(&f, &snap).unwrap_err();
        assert!(matches!(err, RestoreError::Unsafe(_)), "{bad:?}: {err}");
    }
    // A symlink and a folder of the same name: the folder would be written through the link.
    let f = fixture();
    let outside = f.out.parent().unwrap().join("outside");
    fs::create_dir(&outside).unwrap();
    let mut link = node(b"a", NodeKind::Symlink);
    link.target = outside.as_os_str().as_encoded_bytes().to_vec();
    let snap = forge(&f, vec![link, node(b"a", NodeKind::Dir)]);
    assert!(matches!(restore(&f, &snap), Err(RestoreError::Unsafe(_))));
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn restore_does_not_write_through_a_symlink_already_in_the_target() {
    let f = fixture();
    fs::create_dir(f.src.join("sub")).unwrap();
    fs::write(f.src.join("sub/file"), b"data").unwrap();
    let out = backup(&f);
    let outside = f.out.parent().unwrap().join("outside");
    fs::create_dir(&outside).unwrap();
    let dest = restored(&f);
    fs::create_dir_all(&dest).unwrap();
    symlink(&outside, dest.join("sub")).unwrap();
    let err = restore(&f, &out.snapshot).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

fn tar_zst(entries: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    entries(&mut b);
    let raw = b.into_inner().unwrap();
    zstd::bulk::compress(&raw, 3).unwrap()
}

fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    path: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

#[test]
fn import_refuses_escaping_archives_and_adds_no_snapshot() {
    use tar::EntryType::{Regular, Symlink};
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dot-dot",
            tar_zst(|b| raw_entry(b, b"../evil", Regular, b"", b"x")),
        ),
        (
            "absolute",
            tar_zst(|b| raw_entry(b, b"/etc/evil", Regular, b"", b"x")),
        ),
        (
            "through a symlink",
            tar_zst(|b| {
                raw_entry(b, b"link", Symlink, b"/tmp", b"");
                raw_entry(b, b"link/evil", Regular, b"", b"x");
            }),
        ),
    ];
    for (what, archive) in cases {
        let f = fixture();
        let (mut repo, catalog) = open(&f);
        let err = tarball::import(
            &mut repo,
            &catalog,
            &archive[..],
            what,
            &NoProgress,
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(
            matches!(err, tarball::TarballError::Unsafe { .. }),
            "{what}: {err}"
        );
        assert!(snapshot::list(&repo).unwrap().is_empty(), "{what}");
    }
    // Garbage is an error, not a snapshot.
    let f = fixture();
    let (mut repo, catalog) = open(&f);
    assert!(
        tarball::import(
            &mut repo,
            &catalog,
            &b"not zstd"[..],
            "x",
            &NoProgress,
            &AtomicBool::new(false)
        )
        .is_err()
    );
    assert!(snapshot::list(&repo).unwrap().is_empty());
}

#[test]
fn export_then_import_restores_the_same_tree() {
    let f = fixture();
    build(
        &f.src,
        &[
            Item::File(b"a".to_vec(), vec![1; 200_000], 0o640),
            Item::Dir(b"sub".to_vec()),
            Item::File(b"b c".to_vec(), b"hello".to_vec(), 0o600),
            Item::Symlink(b"l".to_vec(), b"../a".to_vec()),
            Item::HardLink(b"h".to_vec()),
        ],
    );
    let out = backup(&f);
    let mut archive = Vec::new();
    {
        let repo = Repository::open(&f.repo, LockMode::Shared, Default::default(), "t").unwrap();
        tarball::export(&repo, &out.snapshot, &mut archive, 3, &NoProgress).unwrap();
    }
    let (mut repo, catalog) = open(&f);
    let imported = tarball::import(
        &mut repo,
        &catalog,
        &archive[..],
        "a.tar.zst",
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    drop(repo);
    // Nothing new: every chunk of the archive was already in the repository.
    restore(&f, &imported.snapshot).unwrap();
    assert_same_at(&f.src, &restored(&f), false);
}

#[test]
fn a_command_output_is_a_file_and_a_failing_command_fails_the_backup() {
    let f = fixture();
    fs::write(f.src.join("x"), b"x").unwrap();
    let (mut repo, catalog) = open(&f);
    let stream = |name: &str, script: &str| archiver::StreamSource {
        name: name.into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        timeout: std::time::Duration::from_secs(20),
    };
    let req = BackupRequest {
        sources: vec![f.src.clone()],
        streams: vec![stream("dump.sql", "yes 'row' | head -n 100000")],
        ..BackupRequest::default()
    };
    let out = archiver::run(
        &mut repo,
        &catalog,
        &req,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(out.snapshot.paths.contains(&"command:dump.sql".to_string()));
    drop((repo, catalog));
    restore(&f, &out.snapshot).unwrap();
    assert_eq!(
        fs::read(f.out.join("dump.sql")).unwrap(),
        b"row\n".repeat(100_000)
    );

    let (mut repo, catalog) = open(&f);
    for (script, why) in [
        ("echo partial; echo oops >&2; exit 3", "oops"),
        ("sleep 5", "timeout"),
    ] {
        let mut s = stream("dump.sql", script);
        s.timeout = std::time::Duration::from_millis(300);
        let req = BackupRequest {
            sources: vec![f.src.clone()],
            streams: vec![s],
            ..BackupRequest::default()
        };
        let before = snapshot::list(&repo).unwrap().len();
        let err = archiver::run(
            &mut repo,
            &catalog,
            &req,
            &NoProgress,
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
        assert_eq!(snapshot::list(&repo).unwrap().len(), before);
    }
}

#[test]
fn an_encrypted_repository_round_trips_and_shows_nothing_without_its_key() {
    use super::crypto::MasterKey;
    use super::repo::RepoError;
    let dir = tempfile::tempdir().unwrap();
    let (repo_dir, src, out) = (
        dir.path().join("repo"),
        dir.path().join("src"),
        dir.path().join("out"),
    );
    fs::create_dir(&src).unwrap();
    let secret = b"the launch codes are 0000 ".repeat(5000);
    fs::write(src.join("secret name.txt"), &secret).unwrap();
    let key = MasterKey::load(&dir.path().join("key"), true).unwrap();
    let options = InitOptions {
        key: Some(key.clone()),
        ..InitOptions::default()
    };
    let mut repo = Repository::init(&repo_dir, options).unwrap();
    let catalog = Catalog::open(&dir.path().join("cache"), &repo.config().id).unwrap();
    let req = BackupRequest {
        sources: vec![src.clone()],
        ..BackupRequest::default()
    };
    let snap = archiver::run(
        &mut repo,
        &catalog,
        &req,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    drop(repo);
    // Nothing of the content or the names is in the repository's files.
    let mut stack = vec![repo_dir.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = fs::read(&p).unwrap();
                for needle in [&b"launch codes"[..], b"secret name"] {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle),
                        "{} leaks {needle:?}",
                        p.display()
                    );
                }
            }
        }
    }
    let open = |k: Option<&MasterKey>| {
        Repository::open_keyed(&repo_dir, LockMode::Shared, Default::default(), "t", k)
    };
    assert!(matches!(open(None), Err(RepoError::KeyRequired { .. })));
    let other = MasterKey::load(&dir.path().join("other"), true).unwrap();
    assert!(matches!(
        open(Some(&other)),
        Err(RepoError::WrongKey { .. })
    ));
    let repo = open(Some(&key)).unwrap();
    assert_eq!(snapshot::list(&repo).unwrap().len(), 1);
    assert!(
        checker::verify(&repo, true, 2, &NoProgress)
            .unwrap()
            .is_ok()
    );
    let req = RestoreRequest {
        target: out.clone(),
        include: None,
        threads: 2,
    };
    restorer::run(
        &repo,
        &snap.snapshot,
        &req,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    let back = out
        .join(src.strip_prefix("/").unwrap())
        .join("secret name.txt");
    assert_eq!(fs::read(back).unwrap(), secret);
}

#[test]
fn index_and_catalog_are_rebuilt_from_packs_and_snapshot_files() {
    let f = fixture();
    build(
        &f.src,
        &[
            Item::File(b"a".to_vec(), vec![3; 300_000], 0o644),
            Item::File(b"b".to_vec(), b"bee".to_vec(), 0o644),
        ],
    );
    let first = backup(&f);
    for name in fs::read_dir(f.repo.join("index")).unwrap() {
        fs::remove_file(name.unwrap().path()).unwrap();
    }
    fs::remove_dir_all(&f.cache).unwrap();
    let (repo, catalog) = open(&f);
    assert!(
        repo.open_report().unindexed_packs > 0,
        "{:?}",
        repo.open_report()
    );
    assert_eq!(
        fs::read_dir(f.repo.join("index")).unwrap().count(),
        1,
        "one index file rewritten"
    );
    catalog
        .sync_snapshots(&snapshot::list(&repo).unwrap())
        .unwrap();
    assert_eq!(catalog.snapshots().unwrap().len(), 1);
    drop((repo, catalog));
    // The files cache is gone: files are read again, but nothing new is stored.
    let again = backup(&f);
    assert_eq!(again.snapshot.summary.files_read, 2);
    assert!(
        again.snapshot.summary.raw_bytes_added < 4096,
        "{:?}",
        again.snapshot.summary
    );
    restore(&f, &first.snapshot).unwrap();
    assert_same(&f.src, &restored(&f));
}
