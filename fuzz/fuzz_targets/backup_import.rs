//! `backup import` on arbitrary tar archives (compressed here, so the fuzzer works on the tar
//! bytes). An archive is refused whole or becomes a snapshot; a snapshot restores into a
//! fresh folder without anything landing outside it.
//!
//! Run with `-rss_limit_mb=1024`; each run imports into one repository kept for the process.

#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use libfuzzer_sys::fuzz_target;
use muster_agent::backup::archiver::NoProgress;
use muster_agent::backup::catalog::Catalog;
use muster_agent::backup::repo::Repository;
use muster_agent::backup::repo::config::InitOptions;
use muster_agent::backup::restorer::{self, RestoreRequest};
use muster_agent::backup::tarball;

struct Place {
    dir: tempfile::TempDir,
}

fn place() -> &'static Place {
    static PLACE: OnceLock<Place> = OnceLock::new();
    PLACE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(Repository::init(&dir.path().join("repo"), InitOptions::default()).expect("init"));
        Place { dir }
    })
}

fn entries_below(root: &std::path::Path) -> usize {
    std::fs::read_dir(root).map_or(0, |d| d.count())
}

fuzz_target!(|data: &[u8]| {
    let p = place();
    let root = p.dir.path();
    let mut repo = Repository::open(
        &root.join("repo"),
        muster_agent::backup::repo::lock::LockMode::Exclusive,
        std::time::Duration::ZERO,
        "fuzz",
    )
    .expect("open");
    let catalog = Catalog::open(&root.join("cache"), &repo.config().id).expect("catalog");
    let archive = zstd::bulk::compress(data, 1).expect("compress");
    let cancel = AtomicBool::new(false);
    let Ok(out) = tarball::import(&mut repo, &catalog, &archive[..], "fuzz", &NoProgress, &cancel)
    else {
        return;
    };
    // Restore into target/inner: nothing may appear beside `inner`.
    let target = root.join("restore");
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir_all(target.join("inner")).expect("target");
    let req = RestoreRequest {
        target: target.join("inner"),
        include: None,
        threads: 1,
    };
    let _ = restorer::run(&repo, &out.snapshot, &req, &NoProgress, &cancel);
    assert_eq!(entries_below(&target), 1, "an entry escaped the restore target");
    let _ = std::fs::remove_dir_all(&target);
});
