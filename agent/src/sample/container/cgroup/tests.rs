use super::*;
use proptest::prelude::*;

fn testdata(tree: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/sample/container/testdata")
        .join(tree)
}

#[test]
fn detects_v2_v1_and_hybrid_fixture_trees() {
    assert_eq!(detect(&testdata("v2")), Hierarchy::V2(testdata("v2")));

    let v1 = testdata("v1");
    let Hierarchy::V1(c) = detect(&v1) else {
        panic!("v1 tree not detected as v1");
    };
    assert_eq!(c.cpu, Some(v1.join("cpu")));
    assert_eq!(c.cpuacct, Some(v1.join("cpuacct")));
    assert_eq!(c.memory, Some(v1.join("memory")));
    assert_eq!(c.blkio, Some(v1.join("blkio")));
    assert_eq!(c.pids, Some(v1.join("pids")));

    let hybrid = testdata("hybrid");
    let Hierarchy::Hybrid {
        controllers,
        unified,
    } = detect(&hybrid)
    else {
        panic!("hybrid tree not detected as hybrid");
    };
    assert_eq!(unified, hybrid.join("unified"));
    // `cpu,cpuacct` and its `cpu`/`cpuacct` symlinks all name one directory.
    let cpu = controllers.cpu.unwrap().canonicalize().unwrap();
    let cpuacct = controllers.cpuacct.unwrap().canonicalize().unwrap();
    assert_eq!(cpu, hybrid.join("cpu,cpuacct").canonicalize().unwrap());
    assert_eq!(cpu, cpuacct);
    assert_eq!(controllers.memory, Some(hybrid.join("memory")));
    assert_eq!(controllers.pids, None);
}

#[test]
fn detects_none_without_a_hierarchy() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(detect(tmp.path()), Hierarchy::None);
    assert_eq!(detect(&tmp.path().join("absent")), Hierarchy::None);
}

#[test]
fn proc_cgroup_lines_are_split_and_bad_ones_counted() {
    let text = "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\ngarbage\nx:cpu:/a\n3:memory:relative\n";
    let mut got = Vec::new();
    let bad = parse_proc_cgroup(text, |id, c, p| {
        got.push((id.to_owned(), c.to_owned(), p.to_owned()))
    });
    assert_eq!(bad, 3);
    assert_eq!(got.len(), 4);
    assert_eq!(
        got[1],
        ("4".into(), "cpu,cpuacct".into(), "/docker/abc".into())
    );
    assert_eq!(got[3], ("0".into(), String::new(), "/docker/abc".into()));
}

#[test]
fn v2_systemd_driver_path_from_proc() {
    let root = testdata("v2");
    let h = Hierarchy::V2(root.clone());
    let cg = resolve(&h, Some("0::/system.slice/docker-aaaa.scope\n"), "aaaa", "").unwrap();
    assert_eq!(cg.id_label, "/system.slice/docker-aaaa.scope");
    assert_eq!(
        cg.dirs,
        CgroupDirs::V2(root.join("system.slice/docker-aaaa.scope"))
    );
}

#[test]
fn v2_cgroupfs_driver_and_nested_paths_from_proc() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
    std::fs::create_dir_all(tmp.path().join("docker/cccc")).unwrap();
    std::fs::create_dir_all(tmp.path().join("kubepods/burstable/pod1/dddd")).unwrap();
    let h = detect(tmp.path());
    let cg = resolve(&h, Some("0::/docker/cccc\n"), "cccc", "").unwrap();
    assert_eq!(cg.id_label, "/docker/cccc");
    // A nested parent the known paths would never guess.
    let cg = resolve(&h, Some("0::/kubepods/burstable/pod1/dddd\n"), "dddd", "").unwrap();
    assert_eq!(cg.id_label, "/kubepods/burstable/pod1/dddd");
}

#[test]
fn v2_falls_back_to_known_paths() {
    let root = testdata("v2");
    let h = Hierarchy::V2(root.clone());
    // Unreadable /proc/<pid>/cgroup.
    let cg = resolve(&h, None, "aaaa", "").unwrap();
    assert_eq!(cg.id_label, "/system.slice/docker-aaaa.scope");
    // A path outside our cgroup namespace (containerised agent).
    let cg = resolve(&h, Some("0::/../docker-aaaa.scope\n"), "aaaa", "").unwrap();
    assert_eq!(cg.id_label, "/system.slice/docker-aaaa.scope");
    // Gone: nothing to read.
    assert_eq!(resolve(&h, None, "ffff", ""), None);
}

#[test]
fn v1_cgroupfs_driver_per_controller() {
    let root = testdata("v1");
    let h = detect(&root);
    let text = "8:pids:/docker/bbbb\n7:blkio:/docker/bbbb\n4:memory:/docker/bbbb\n2:cpuacct:/docker/bbbb\n1:cpu:/docker/bbbb\n0::/docker/bbbb\n";
    let cg = resolve(&h, Some(text), "bbbb", "").unwrap();
    assert_eq!(cg.id_label, "/docker/bbbb");
    let CgroupDirs::V1(dirs) = cg.dirs else {
        panic!("v1 dirs")
    };
    assert_eq!(dirs.memory, Some(root.join("memory/docker/bbbb")));
    assert_eq!(dirs.blkio, Some(root.join("blkio/docker/bbbb")));
    // Same answer from the known paths alone.
    let known = resolve(&h, None, "bbbb", "").unwrap();
    assert_eq!(known.id_label, "/docker/bbbb");
}

#[test]
fn v1_systemd_driver_and_custom_parent() {
    let tmp = tempfile::tempdir().unwrap();
    for c in ["cpu,cpuacct", "memory"] {
        std::fs::create_dir_all(tmp.path().join(c).join("system.slice/docker-eeee.scope")).unwrap();
        std::fs::create_dir_all(tmp.path().join(c).join("ci/gggg")).unwrap();
    }
    let h = detect(tmp.path());
    assert_eq!(h.as_str(), "v1");
    let text =
        "4:memory:/system.slice/docker-eeee.scope\n3:cpu,cpuacct:/system.slice/docker-eeee.scope\n";
    let cg = resolve(&h, Some(text), "eeee", "").unwrap();
    assert_eq!(cg.id_label, "/system.slice/docker-eeee.scope");
    let CgroupDirs::V1(dirs) = cg.dirs else {
        panic!("v1 dirs")
    };
    assert_eq!(
        dirs.cpuacct,
        Some(
            tmp.path()
                .join("cpu,cpuacct/system.slice/docker-eeee.scope")
        )
    );
    assert_eq!(dirs.pids, None, "pids is not mounted");
    // --cgroup-parent=/ci with the cgroupfs driver, found without /proc.
    let cg = resolve(&h, None, "gggg", "/ci").unwrap();
    assert_eq!(cg.id_label, "/ci/gggg");
}

#[test]
fn flat_keyed_and_single_values() {
    let mut got = Vec::new();
    let bad = parse_flat_keyed("a 1\nb 2 3\nc\n\nd 18446744073709551615\n", |k, v| {
        got.push((k.to_owned(), v))
    });
    assert_eq!(bad, 2);
    assert_eq!(got, vec![("a".into(), 1), ("d".into(), u64::MAX)]);
    assert_eq!(parse_single_u64("42\n"), Some(42));
    assert_eq!(parse_single_u64("-1\n"), None);
    assert_eq!(count_procs("1\n2\n\n3\n"), 3);
    assert_eq!(count_procs(""), 0);
}

proptest! {
    #[test]
    fn parsers_never_panic(text in "\\PC{0,300}") {
        let _ = parse_flat_keyed(&text, |_, _| {});
        let _ = parse_proc_cgroup(&text, |_, _, _| {});
        let _ = parse_single_u64(&text);
        let _ = parse_limit(&text);
        let _ = count_procs(&text);
    }

    #[test]
    fn proc_cgroup_round_trips(id in 0u32..64, ctrl in "[a-z,=]{0,20}", path in "(/[a-z0-9.-]{1,12}){0,4}") {
        let path = if path.is_empty() { "/".to_owned() } else { path };
        let text = format!("{id}:{ctrl}:{path}\n");
        let mut got = Vec::new();
        prop_assert_eq!(parse_proc_cgroup(&text, |i, c, p| got.push((i.to_owned(), c.to_owned(), p.to_owned()))), 0);
        prop_assert_eq!(got, vec![(id.to_string(), ctrl, path)]);
    }
}
