use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::sample::container::cgroup::detect;

const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    5000      40    1    2    0     0          0         0     3000      30    3    4    0     0       0          0
";

fn testdata() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sample/container/testdata")
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn container(id: &str, name: &str, state: State, pid: Option<u32>) -> Container {
    let labels: HashMap<String, String> = [
        ("com.docker.compose.project".to_owned(), "shop".to_owned()),
        ("com.docker.compose.service".to_owned(), name.to_owned()),
    ]
    .into();
    Container {
        id: id.to_owned(),
        name: name.to_owned(),
        image: "shop/web:1.2".to_owned(),
        compose_project: Some("shop".to_owned()),
        compose_service: Some(name.to_owned()),
        labels,
        state,
        health: Health::Healthy,
        restart_count: 2,
        started_at: Some(1_700_000_000.5),
        pid,
        network_mode: "bridge".to_owned(),
        cgroup_parent: String::new(),
    }
}

/// The inventory of every test: `web` running as PID 100, `old` exited.
fn inventory(web_id: &str) -> Arc<RwLock<Inventory>> {
    let mut inv = Inventory::default();
    inv.replace([
        container(web_id, "web", State::Running, Some(100)),
        container("0123", "old", State::Exited, None),
    ]);
    inv.set_connected(true);
    Arc::new(RwLock::new(inv))
}

fn sampler(tmp: &Path, web_id: &str, stats: Arc<StatsCache>) -> ContainerSampler {
    let paths = SamplePaths::under(tmp);
    let hierarchy = detect(&paths.cgroup);
    let allow = crate::sample::container::ContainerConfig::default().label_allowlist;
    ContainerSampler::new(&paths, hierarchy, &allow, inventory(web_id), stats)
        .with_clock(|| 1_800_000_000.0)
}

/// `/proc/100/{cgroup,net/dev}` and a block device `8:0` = sda, `254:0` = vda.
fn proc_and_sys(tmp: &Path, proc_cgroup: &str) {
    write(&tmp.join("proc/100/cgroup"), proc_cgroup);
    write(&tmp.join("proc/100/net/dev"), NET_DEV);
    write(
        &tmp.join("sys/dev/block/8:0/uevent"),
        "MAJOR=8\nMINOR=0\nDEVNAME=sda\n",
    );
    write(
        &tmp.join("sys/dev/block/254:0/uevent"),
        "MAJOR=254\nMINOR=0\nDEVNAME=vda\n",
    );
}

fn v2_tree(tmp: &Path) {
    let cg = tmp.join("sys/fs/cgroup");
    write(&cg.join("cgroup.controllers"), "cpu io memory pids\n");
    copy_dir(
        &testdata().join("v2/system.slice/docker-aaaa.scope"),
        &cg.join("system.slice/docker-aaaa.scope"),
    );
    proc_and_sys(tmp, "0::/system.slice/docker-aaaa.scope\n");
}

fn v1_tree(tmp: &Path) {
    copy_dir(&testdata().join("v1"), &tmp.join("sys/fs/cgroup"));
    let line = |n: u32, c: &str| format!("{n}:{c}:/docker/bbbb\n");
    let text = [
        line(8, "pids"),
        line(7, "blkio"),
        line(4, "memory"),
        line(2, "cpuacct"),
        line(1, "cpu"),
        line(0, ""),
    ]
    .concat();
    proc_and_sys(tmp, &text);
}

/// Live series as `name{labels} → value`.
fn dump(out: &SeriesTable) -> BTreeMap<String, f64> {
    out.live()
        .map(|s| {
            let f = out.family_of(s.family).unwrap();
            let labels: Vec<String> = f
                .labels
                .iter()
                .zip(s.values.iter())
                .map(|(n, v)| format!("{n}=\"{v}\""))
                .collect();
            (format!("{}{{{}}}", f.name, labels.join(",")), s.value)
        })
        .collect()
}

fn pass(s: &mut ContainerSampler) -> BTreeMap<String, f64> {
    let mut out = SeriesTable::new();
    out.begin_round();
    s.sample(&mut out).unwrap();
    assert_eq!(out.malformed_count(), 0);
    dump(&out)
}

/// The state, health and restart series every known container has.
fn lifecycle(base: &str, state: &str) -> Vec<(String, f64)> {
    let mut v = Vec::new();
    for s in [
        "created",
        "running",
        "paused",
        "restarting",
        "removing",
        "exited",
        "dead",
    ] {
        v.push((
            format!("muster_container_state{{{base},state=\"{s}\"}}"),
            f64::from(u8::from(s == state)),
        ));
    }
    for h in ["none", "starting", "healthy", "unhealthy"] {
        v.push((
            format!("muster_container_health{{{base},health=\"{h}\"}}"),
            f64::from(u8::from(h == "healthy")),
        ));
    }
    v.push((format!("muster_container_restarts_total{{{base}}}"), 2.0));
    v
}

fn base(id: &str, name: &str) -> String {
    format!(
        "id=\"{id}\",image=\"shop/web:1.2\",name=\"{name}\",container_label_com_docker_compose_project=\"shop\",container_label_com_docker_compose_service=\"{name}\""
    )
}

fn network(b: &str) -> Vec<(String, f64)> {
    [
        ("receive_bytes", 5000.0),
        ("receive_packets", 40.0),
        ("receive_errors", 1.0),
        ("receive_packets_dropped", 2.0),
        ("transmit_bytes", 3000.0),
        ("transmit_packets", 30.0),
        ("transmit_errors", 3.0),
        ("transmit_packets_dropped", 4.0),
    ]
    .into_iter()
    .map(|(m, v)| {
        (
            format!("container_network_{m}_total{{{b},interface=\"eth0\"}}"),
            v,
        )
    })
    .collect()
}

fn expected(b: &str, usage: &[(&str, f64)], device: &str, io: [f64; 4]) -> BTreeMap<String, f64> {
    let mut e: BTreeMap<String, f64> = usage
        .iter()
        .map(|(m, v)| (format!("{m}{{{b}}}"), *v))
        .collect();
    for (m, v) in ["reads_bytes", "writes_bytes", "reads", "writes"]
        .iter()
        .zip(io)
    {
        e.insert(
            format!("container_fs_{m}_total{{{b},device=\"{device}\"}}"),
            v,
        );
    }
    e.extend(network(b));
    e.insert(format!("container_last_seen{{{b}}}"), 1_800_000_000.0);
    e.insert(
        format!("container_start_time_seconds{{{b}}}"),
        1_700_000_000.5,
    );
    e.extend(lifecycle(b, "running"));
    e.extend(lifecycle(&base("/docker/0123", "old"), "exited"));
    e
}

#[test]
fn v2_tree_gives_exact_series() {
    let tmp = tempfile::tempdir().unwrap();
    v2_tree(tmp.path());
    let mut s = sampler(tmp.path(), "aaaa", Arc::default());
    let b = base("/system.slice/docker-aaaa.scope", "web");
    let usage = [
        ("container_cpu_usage_seconds_total", 12.5),
        ("container_cpu_user_seconds_total", 8.25),
        ("container_cpu_system_seconds_total", 4.25),
        ("container_cpu_cfs_periods_total", 200.0),
        ("container_cpu_cfs_throttled_periods_total", 7.0),
        ("container_cpu_cfs_throttled_seconds_total", 0.35),
        ("container_spec_cpu_quota", 50_000.0),
        ("container_spec_cpu_period", 100_000.0),
        ("container_memory_usage_bytes", 104_857_600.0),
        ("container_memory_working_set_bytes", 83_886_080.0),
        ("container_memory_rss", 52_428_800.0),
        ("container_memory_cache", 41_943_040.0),
        ("container_memory_mapped_file", 4_194_304.0),
        ("container_memory_swap", 1_048_576.0),
        ("container_spec_memory_limit_bytes", 268_435_456.0),
        ("container_oom_events_total", 1.0),
        ("container_processes", 2.0),
        ("container_threads", 5.0),
        ("container_threads_max", 0.0),
    ];
    let mut want = expected(
        &b,
        &usage,
        "/dev/sda",
        [1_048_576.0, 2_097_152.0, 30.0, 40.0],
    );
    // Never seen running, the exited container gets the v2 default (systemd) path.
    let old_v1 = base("/docker/0123", "old");
    want.retain(|k, _| !k.contains(&old_v1));
    want.extend(lifecycle(
        &base("/system.slice/docker-0123.scope", "old"),
        "exited",
    ));
    assert_eq!(pass(&mut s), want);
}

fn v1_usage() -> Vec<(&'static str, f64)> {
    vec![
        ("container_cpu_usage_seconds_total", 21.395_156),
        ("container_cpu_user_seconds_total", 12.0),
        ("container_cpu_system_seconds_total", 3.5),
        ("container_cpu_cfs_periods_total", 50.0),
        ("container_cpu_cfs_throttled_periods_total", 2.0),
        ("container_cpu_cfs_throttled_seconds_total", 0.5),
        ("container_spec_cpu_period", 100_000.0),
        ("container_memory_usage_bytes", 1_851_392.0),
        ("container_memory_working_set_bytes", 344_064.0),
        ("container_memory_rss", 57_344.0),
        ("container_memory_cache", 1_507_328.0),
        ("container_memory_mapped_file", 1_073_152.0),
        ("container_memory_swap", 4096.0),
        ("container_spec_memory_limit_bytes", 0.0),
        ("container_oom_events_total", 0.0),
        ("container_processes", 1.0),
        ("container_threads", 1.0),
        ("container_threads_max", 0.0),
    ]
}

#[test]
fn v1_tree_gives_exact_series() {
    let tmp = tempfile::tempdir().unwrap();
    v1_tree(tmp.path());
    let mut s = sampler(tmp.path(), "bbbb", Arc::default());
    let b = base("/docker/bbbb", "web");
    let want = expected(&b, &v1_usage(), "/dev/vda", [409_600.0, 8192.0, 100.0, 2.0]);
    assert_eq!(pass(&mut s), want);
}

#[test]
fn hybrid_tree_reads_the_v1_side() {
    let tmp = tempfile::tempdir().unwrap();
    v1_tree(tmp.path());
    let unified = tmp.path().join("sys/fs/cgroup/unified");
    write(&unified.join("cgroup.controllers"), "\n");
    std::fs::create_dir_all(unified.join("docker/bbbb")).unwrap();
    let mut s = sampler(tmp.path(), "bbbb", Arc::default());
    assert_eq!(s.hierarchy.as_str(), "hybrid");
    let want = expected(
        &base("/docker/bbbb", "web"),
        &v1_usage(),
        "/dev/vda",
        [409_600.0, 8192.0, 100.0, 2.0],
    );
    assert_eq!(pass(&mut s), want);
}

#[test]
fn container_whose_directory_is_removed_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    v2_tree(tmp.path());
    let mut s = sampler(tmp.path(), "aaaa", Arc::default());
    assert!(pass(&mut s).contains_key(&format!(
        "container_cpu_usage_seconds_total{{{}}}",
        base("/system.slice/docker-aaaa.scope", "web")
    )));
    // It stops: the directory goes before Docker's die event arrives.
    std::fs::remove_dir_all(
        tmp.path()
            .join("sys/fs/cgroup/system.slice/docker-aaaa.scope"),
    )
    .unwrap();
    let got = pass(&mut s);
    assert!(
        got.keys().all(|k| k.starts_with("muster_container_")),
        "{got:#?}"
    );
    // Its state series keep the id label it had while running.
    let b = base("/system.slice/docker-aaaa.scope", "web");
    assert_eq!(
        got.get(&format!("muster_container_state{{{b},state=\"running\"}}")),
        Some(&1.0)
    );
}

#[test]
fn v1_container_vanishing_mid_pass_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    v1_tree(tmp.path());
    let mut s = sampler(tmp.path(), "bbbb", Arc::default());
    pass(&mut s);
    for c in ["cpu", "cpuacct", "memory", "blkio", "pids"] {
        std::fs::remove_dir_all(tmp.path().join("sys/fs/cgroup").join(c).join("docker/bbbb"))
            .unwrap();
    }
    std::fs::remove_dir_all(tmp.path().join("proc/100")).unwrap();
    let got = pass(&mut s);
    assert!(
        got.keys().all(|k| k.starts_with("muster_container_")),
        "{got:#?}"
    );
}

#[test]
fn unreadable_cgroups_fall_back_to_engine_stats() {
    let tmp = tempfile::tempdir().unwrap();
    // No cgroup hierarchy at all (rootless, or not mounted).
    proc_and_sys(tmp.path(), "0::/user.slice/docker-cccc.scope\n");
    let stats = Arc::new(StatsCache::new());
    let mut s = sampler(tmp.path(), "cccc", stats.clone());
    assert_eq!(s.hierarchy, Hierarchy::None);
    let first = pass(&mut s);
    assert!(
        first.keys().all(|k| k.starts_with("muster_container_")),
        "nothing fetched yet: {first:#?}"
    );
    stats.store(
        "cccc",
        Usage {
            cpu_usage_seconds: Some(3.0),
            memory_usage: Some(1000),
            memory_inactive_file: Some(100),
            ..Usage::default()
        },
    );
    let got = pass(&mut s);
    let b = base("/docker/cccc", "web");
    assert_eq!(
        got.get(&format!("container_cpu_usage_seconds_total{{{b}}}")),
        Some(&3.0)
    );
    assert_eq!(
        got.get(&format!("container_memory_working_set_bytes{{{b}}}")),
        Some(&900.0)
    );
    assert_eq!(
        got.get(&format!("container_last_seen{{{b}}}")),
        Some(&1_800_000_000.0)
    );
}

#[test]
fn no_engine_is_no_data_and_an_empty_engine_is_fine() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = SamplePaths::under(tmp.path());
    let inventory = Arc::new(RwLock::new(Inventory::default()));
    let mut s = ContainerSampler::new(
        &paths,
        Hierarchy::None,
        &[],
        inventory.clone(),
        Arc::default(),
    );
    let mut out = SeriesTable::new();
    out.begin_round();
    assert!(matches!(s.sample(&mut out), Err(SampleError::NoData(_))));
    inventory.write().unwrap().set_connected(true);
    out.begin_round();
    s.sample(&mut out).unwrap();
    assert_eq!(out.live_count(), 0);
}

#[test]
fn host_network_containers_have_no_network_series() {
    let tmp = tempfile::tempdir().unwrap();
    v2_tree(tmp.path());
    let s = sampler(tmp.path(), "aaaa", Arc::default());
    {
        let mut inv = s.inventory.write().unwrap();
        let mut web = inv.containers["aaaa"].clone();
        web.network_mode = "host".into();
        inv.upsert(web);
    }
    let mut s = s;
    let got = pass(&mut s);
    assert!(!got.keys().any(|k| k.starts_with("container_network_")));
    assert!(
        got.keys()
            .any(|k| k.starts_with("container_cpu_usage_seconds_total"))
    );
}
