//! `muster-agent backup ...` end to end: a backup SIGKILLed midway leaves a repository that
//! verifies and that the next backup reuses; bad input gets a clear error.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use muster_tests::{Proc, agent_cli, bin, wait_within};
use nix::sys::signal::Signal;

/// `n` files of `size` pseudo-random (incompressible) bytes.
fn random_files(dir: &Path, n: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..n {
        let data: Vec<u8> = (0..size)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 32) as u8
            })
            .collect();
        std::fs::write(dir.join(format!("f{i:03}")), data).unwrap();
    }
}

fn packs(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("data"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| std::fs::read_dir(e.path()).map_or(0, Iterator::count))
                .sum()
        })
        .unwrap_or(0)
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "status {:?}\nstdout {}\nstderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn sigkill_during_backup_leaves_a_repository_that_verifies_and_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (src, repo, cache) = (
        dir.path().join("src"),
        dir.path().join("repo"),
        dir.path().join("cache"),
    );
    random_files(&src, 96, 1 << 20);
    let (r, c) = (repo.to_str().unwrap(), cache.to_str().unwrap());
    let mut run = Proc::start(
        "muster-agent backup",
        Command::new(bin("muster-agent")).args([
            "backup",
            "run",
            "--repo",
            r,
            "--cache-dir",
            c,
            "--threads",
            "1",
            src.to_str().unwrap(),
        ]),
        dir.path().join("backup.log"),
    );
    // Killed once the first pack is durable: some data committed, most not.
    wait_within(Duration::from_secs(60), "a first pack", || {
        if packs(&repo) >= 1 {
            return Some(());
        }
        assert!(
            run.exited().is_none(),
            "backup ended before any pack: {}",
            run.log()
        );
        None
    });
    run.signal(Signal::SIGKILL);
    let status = run.stop();
    assert!(!status.success(), "the backup finished before the kill");

    let list = json(&agent_cli(&["backup", "list", "--repo", r, "--json"]));
    assert_eq!(
        list.as_array().unwrap().len(),
        0,
        "no snapshot from a killed run"
    );
    let verify = agent_cli(&["backup", "verify", "--repo", r, "--read-data"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // The next backup reuses the killed run's packs.
    let done = json(&agent_cli(&[
        "backup",
        "run",
        "--repo",
        r,
        "--cache-dir",
        c,
        "--json",
        src.to_str().unwrap(),
    ]));
    let added = done["raw_bytes_added"].as_u64().unwrap();
    assert!(added < 96 << 20, "nothing reused: {done}");
    assert_eq!(done["files"].as_u64(), Some(96));
    let verify = agent_cli(&["backup", "verify", "--repo", r, "--read-data"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    let target = dir.path().join("out");
    let restored = agent_cli(&[
        "backup",
        "restore",
        "--repo",
        r,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let back = target.join(src.strip_prefix("/").unwrap());
    for i in [0, 47, 95] {
        let name = format!("f{i:03}");
        assert_eq!(
            std::fs::read(src.join(&name)).unwrap(),
            std::fs::read(back.join(&name)).unwrap()
        );
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    let c = dir.path().join("cache");
    let c = c.to_str().unwrap();

    let missing = agent_cli(&["backup", "list", "--repo", r]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not a Muster backup repository"));

    let no_source = agent_cli(&[
        "backup",
        "run",
        "--repo",
        r,
        "--cache-dir",
        c,
        "/does/not/exist",
    ]);
    assert!(!no_source.status.success());
    assert!(String::from_utf8_lossy(&no_source.stderr).contains("/does/not/exist"));

    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/a"), b"a").unwrap();
    let src = dir.path().join("src");
    json(&agent_cli(&[
        "backup",
        "run",
        "--repo",
        r,
        "--cache-dir",
        c,
        "--json",
        src.to_str().unwrap(),
    ]));

    let bad_id = agent_cli(&[
        "backup", "restore", "--repo", r, "zzzz", "--target", "/tmp/x",
    ]);
    assert!(String::from_utf8_lossy(&bad_id.stderr).contains("no snapshot matches"));
    let no_rule = agent_cli(&["backup", "forget", "--repo", r]);
    assert!(String::from_utf8_lossy(&no_rule.stderr).contains("refusing"));
    let bad_rule = agent_cli(&["backup", "forget", "--repo", r, "--keep-daily", "lots"]);
    assert!(!bad_rule.status.success());
    let garbage = dir.path().join("garbage.tar.zst");
    std::fs::write(&garbage, b"this is not an archive").unwrap();
    let import = agent_cli(&[
        "backup",
        "import",
        "--repo",
        r,
        "--cache-dir",
        c,
        garbage.to_str().unwrap(),
    ]);
    assert!(!import.status.success());

    std::fs::write(repo.join("config"), b"{ not json").unwrap();
    let broken = agent_cli(&["backup", "list", "--repo", r]);
    assert!(String::from_utf8_lossy(&broken.stderr).contains("config"));
}

#[test]
fn sigkill_during_prune_at_any_moment_leaves_a_repository_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (src, repo, cache) = (
        dir.path().join("src"),
        dir.path().join("repo"),
        dir.path().join("cache"),
    );
    let (r, c, s) = (
        repo.to_str().unwrap(),
        cache.to_str().unwrap(),
        src.to_str().unwrap(),
    );
    // Three snapshots of changing data, so forgetting two leaves whole packs and half-used
    // packs: prune deletes some and repacks others.
    for round in 0..3 {
        let _ = std::fs::remove_dir_all(&src);
        random_files(&src, 24, 1 << 20);
        std::fs::write(
            src.join(format!("round{round}")),
            vec![round as u8; 3 << 20],
        )
        .unwrap();
        // Different bytes each round: rewrite half the files from another seed.
        for i in 0..12 {
            let mut d = std::fs::read(src.join(format!("f{i:03}"))).unwrap();
            d.iter_mut()
                .for_each(|b| *b = b.wrapping_add(round as u8 + 1));
            std::fs::write(src.join(format!("f{i:03}")), d).unwrap();
        }
        json(&agent_cli(&[
            "backup",
            "run",
            "--repo",
            r,
            "--cache-dir",
            c,
            "--json",
            s,
        ]));
    }
    let forget = agent_cli(&[
        "backup",
        "forget",
        "--repo",
        r,
        "--cache-dir",
        c,
        "--keep-last",
        "1",
    ]);
    assert!(
        forget.status.success(),
        "{}",
        String::from_utf8_lossy(&forget.stderr)
    );
    let mut killed = 0;
    for delay_ms in [5u64, 20, 40, 80, 160] {
        let mut prune = Proc::start(
            "muster-agent backup prune",
            Command::new(bin("muster-agent")).args(["backup", "prune", "--repo", r]),
            dir.path().join(format!("prune-{delay_ms}.log")),
        );
        std::thread::sleep(Duration::from_millis(delay_ms));
        prune.signal(Signal::SIGKILL);
        if !prune.stop().success() {
            killed += 1;
        }
        let verify = agent_cli(&["backup", "verify", "--repo", r, "--read-data"]);
        assert!(
            verify.status.success(),
            "after a prune killed at {delay_ms} ms: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
    assert!(killed > 0, "no prune was interrupted");
    // A prune run to its end frees the space, and the kept snapshot restores whole.
    let done = json(&agent_cli(&["backup", "prune", "--repo", r, "--json"]));
    assert_eq!(done["packs_repacked"].as_u64(), Some(0), "{done}");
    let target = dir.path().join("out");
    let out = agent_cli(&[
        "backup",
        "restore",
        "--repo",
        r,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = target.join(src.strip_prefix("/").unwrap());
    for name in ["f000", "f023", "round2"] {
        assert_eq!(
            std::fs::read(src.join(name)).unwrap(),
            std::fs::read(back.join(name)).unwrap()
        );
    }
}

#[test]
fn invalid_repository_options_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    let c = dir.path().join("c");
    let c = c.to_str().unwrap();
    let src = dir.path().to_str().unwrap();
    for bad in [["--chunk-sizes", "1:2:3"], ["--compression", "99"]] {
        let out = agent_cli(&[
            "backup",
            "run",
            "--repo",
            r,
            "--cache-dir",
            c,
            bad[0],
            bad[1],
            src,
        ]);
        assert!(!out.status.success());
        assert!(!repo.exists(), "{bad:?} left {}", repo.display());
    }
    let bad_format = agent_cli(&["backup", "run", "--repo", r, "--chunk-sizes", "64k", src]);
    assert!(String::from_utf8_lossy(&bad_format.stderr).contains("MIN:AVG:MAX"));
}
