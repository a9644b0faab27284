//! The series log on disk: reopening, torn and damaged ends, bad headers, failed appends,
//! and the bytes a realistic host's series take.

use std::path::Path;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// The series a host of the benchmark's fleet (`tests/src/loadgen/catalogue`) sends, in
/// its order: node_exporter's CPU, load, meminfo, filesystem, disk and network families
/// and cAdvisor's for 12 containers, each with `host`. 503 series.
fn realistic_host(host: &str) -> Vec<Labels> {
    let mut out = Vec::new();
    let mut add = |name: &str, extra: &[(&str, &str)]| {
        let mut pairs = vec![("__name__", name), ("host", host)];
        pairs.extend_from_slice(extra);
        out.push(labels(&pairs));
    };
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    for cpu in ["0", "1", "2", "3"] {
        for mode in modes {
            add("node_cpu_seconds_total", &[("cpu", cpu), ("mode", mode)]);
        }
    }
    for name in [
        "node_load1",
        "node_load5",
        "node_load15",
        "node_context_switches_total",
        "node_intr_total",
        "node_forks_total",
        "node_procs_running",
        "node_procs_blocked",
        "node_boot_time_seconds",
        "node_filefd_allocated",
        "node_filefd_maximum",
    ] {
        add(name, &[]);
    }
    add(
        "node_uname_info",
        &[
            ("machine", "x86_64"),
            ("nodename", host),
            ("release", "6.1.0-28-amd64"),
            ("sysname", "Linux"),
            ("version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1"),
        ],
    );
    for field in [
        "MemTotal",
        "MemFree",
        "MemAvailable",
        "Buffers",
        "Cached",
        "SwapCached",
        "Active",
        "Inactive",
        "Active_anon",
        "Inactive_anon",
        "Active_file",
        "Inactive_file",
        "Unevictable",
        "Mlocked",
        "SwapTotal",
        "SwapFree",
        "Dirty",
        "Writeback",
        "AnonPages",
        "Mapped",
        "Shmem",
        "KReclaimable",
        "Slab",
        "SReclaimable",
        "SUnreclaim",
        "KernelStack",
        "PageTables",
        "CommitLimit",
        "Committed_AS",
        "VmallocUsed",
        "Percpu",
        "DirectMap4k",
        "DirectMap2M",
        "DirectMap1G",
    ] {
        add(&format!("node_memory_{field}_bytes"), &[]);
    }
    for what in [
        "avail_bytes",
        "free_bytes",
        "size_bytes",
        "files",
        "files_free",
        "readonly",
        "device_error",
    ] {
        for (device, fstype, mountpoint) in [
            ("/dev/vda1", "ext4", "/"),
            ("/dev/vdb1", "xfs", "/var/lib/docker"),
            ("tmpfs", "tmpfs", "/run"),
            ("/dev/vda15", "vfat", "/boot/efi"),
        ] {
            let extra = [
                ("device", device),
                ("fstype", fstype),
                ("mountpoint", mountpoint),
            ];
            add(&format!("node_filesystem_{what}"), &extra);
        }
    }
    for what in [
        "reads_completed_total",
        "reads_merged_total",
        "read_bytes_total",
        "read_time_seconds_total",
        "writes_completed_total",
        "writes_merged_total",
        "written_bytes_total",
        "write_time_seconds_total",
        "io_now",
        "io_time_seconds_total",
        "io_time_weighted_seconds_total",
        "discards_completed_total",
        "discards_merged_total",
        "discarded_sectors_total",
        "discard_time_seconds_total",
        "flush_requests_total",
        "flush_requests_time_seconds_total",
    ] {
        for device in ["vda", "vdb"] {
            add(&format!("node_disk_{what}"), &[("device", device)]);
        }
    }
    for what in [
        "receive_bytes_total",
        "receive_packets_total",
        "receive_errs_total",
        "receive_drop_total",
        "transmit_bytes_total",
        "transmit_packets_total",
        "transmit_errs_total",
        "transmit_drop_total",
        "up",
    ] {
        for device in ["eth0", "docker0", "lo"] {
            add(&format!("node_network_{what}"), &[("device", device)]);
        }
    }
    let apps = [
        ("web", "nginx:1.27"),
        ("api", "ghcr.io/acme/api:2.14.1"),
        ("worker", "ghcr.io/acme/worker:2.14.1"),
        ("postgres", "postgres:16"),
        ("redis", "redis:7.2"),
        ("grafana", "grafana/grafana:11.2.0"),
        ("traefik", "traefik:v3.1"),
        ("cron", "ghcr.io/acme/cron:1.3.0"),
        ("minio", "minio/minio:RELEASE.2024-08-03"),
        ("mailer", "ghcr.io/acme/mailer:0.9.2"),
        ("search", "opensearchproject/opensearch:2.16.0"),
        ("backup", "restic/restic:0.17.0"),
    ];
    let seed = host.bytes().fold(0u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let mut rng = crate::tsdb::synthetic::Rng::new(seed);
    let containers: Vec<(String, &str, String)> = apps
        .iter()
        .enumerate()
        .map(|(i, (app, image))| {
            let id: String = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
            (
                format!("/docker/{id}"),
                *image,
                format!("{app}-{}", i % 3 + 1),
            )
        })
        .collect();
    for (family, extra) in [
        ("cpu_usage_seconds_total", None),
        ("cpu_user_seconds_total", None),
        ("cpu_system_seconds_total", None),
        ("cpu_cfs_periods_total", None),
        ("cpu_cfs_throttled_periods_total", None),
        ("cpu_cfs_throttled_seconds_total", None),
        ("spec_cpu_quota", None),
        ("spec_cpu_period", None),
        ("memory_usage_bytes", None),
        ("memory_working_set_bytes", None),
        ("memory_rss", None),
        ("memory_cache", None),
        ("memory_mapped_file", None),
        ("memory_swap", None),
        ("spec_memory_limit_bytes", None),
        ("oom_events_total", None),
        ("network_receive_bytes_total", Some(("interface", "eth0"))),
        ("network_receive_packets_total", Some(("interface", "eth0"))),
        ("network_receive_errors_total", Some(("interface", "eth0"))),
        (
            "network_receive_packets_dropped_total",
            Some(("interface", "eth0")),
        ),
        ("network_transmit_bytes_total", Some(("interface", "eth0"))),
        (
            "network_transmit_packets_total",
            Some(("interface", "eth0")),
        ),
        ("network_transmit_errors_total", Some(("interface", "eth0"))),
        (
            "network_transmit_packets_dropped_total",
            Some(("interface", "eth0")),
        ),
        ("fs_reads_bytes_total", Some(("device", "/dev/vdb"))),
        ("fs_writes_bytes_total", Some(("device", "/dev/vdb"))),
        ("processes", None),
        ("threads", None),
    ] {
        for (id, image, name) in &containers {
            let mut pairs = vec![
                ("id", id.as_str()),
                ("image", *image),
                ("name", name.as_str()),
            ];
            pairs.extend(extra);
            add(&format!("container_{family}"), &pairs);
        }
    }
    out
}

fn numbered(all: &[Labels], first: SeriesId) -> Vec<(SeriesId, &Labels)> {
    all.iter()
        .enumerate()
        .map(|(i, l)| (first + i as SeriesId, l))
        .collect()
}

/// Opens the log at `path`, returning it and what it held.
fn reopen(path: &Path) -> Result<(SeriesLog, Vec<(SeriesId, Labels)>), SeriesLogError> {
    let mut got = Vec::new();
    let log = SeriesLog::open(path, |id, l| got.push((id, l)))?;
    Ok((log, got))
}

/// A log at `<dir>/series.log` with two records: ids 1..=3 and 4..=5.
fn two_records(dir: &Path) -> (PathBuf, Vec<Labels>, u64) {
    let path = dir.join(FILE_NAME);
    SeriesLog::create(&path, &[]).unwrap();
    let all: Vec<Labels> = (0..5)
        .map(|i| labels(&[("__name__", "up"), ("host", &format!("web{i}"))]))
        .collect();
    let (mut log, _) = reopen(&path).unwrap();
    log.append(&numbered(&all[..3], 1)).unwrap();
    let first_end = log.len();
    log.append(&numbered(&all[3..], 4)).unwrap();
    assert_eq!(log.len(), std::fs::metadata(&path).unwrap().len());
    (path, all, first_end)
}

fn ids(got: &[(SeriesId, Labels)]) -> Vec<SeriesId> {
    got.iter().map(|(id, _)| *id).collect()
}

#[test]
fn reopen_gives_back_every_series_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (path, all, _) = two_records(dir.path());
    let (log, got) = reopen(&path).unwrap();
    assert_eq!(ids(&got), [1, 2, 3, 4, 5]);
    assert!(got.iter().map(|(_, l)| l).eq(all.iter()));
    assert_eq!(log.len(), std::fs::metadata(&path).unwrap().len());
    assert!(!log.is_empty());
}

#[test]
fn torn_ends_are_cut_off_and_what_precedes_kept() {
    let (dir, good) = {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = two_records(dir.path());
        let good = std::fs::read(&path).unwrap();
        (dir, good)
    };
    let path = dir.path().join(FILE_NAME);
    let record = format::encode_record(&[(6, &labels(&[("__name__", "x")]))]).unwrap();
    let mut flipped_last = record.clone();
    *flipped_last.last_mut().unwrap() ^= 0x10;
    let tails: [(&str, Vec<u8>); 5] = [
        ("a few bytes", vec![7, 0, 0]),
        ("a record cut short", record[..record.len() - 3].to_vec()),
        ("a whole record with a flipped byte", flipped_last),
        ("zeros where the file grew", vec![0; 40]),
        ("a length past the end", [&record[..4], &[1; 20]].concat()),
    ];
    for (what, tail) in tails {
        std::fs::write(&path, [&good[..], &tail[..]].concat()).unwrap();
        let (mut log, got) = reopen(&path).unwrap();
        assert_eq!(ids(&got), [1, 2, 3, 4, 5], "{what}");
        assert_eq!(std::fs::read(&path).unwrap(), good, "{what}");
        // Appends go on from the good end.
        log.append(&[(6, &labels(&[("__name__", "y")]))]).unwrap();
        assert_eq!(ids(&reopen(&path).unwrap().1), [1, 2, 3, 4, 5, 6], "{what}");
    }
    let saved = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(saved, 1, "a torn end is not saved aside");
}

#[test]
fn damage_before_the_end_keeps_what_precedes_it_and_saves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, first_end) = two_records(dir.path());
    let good = std::fs::read(&path).unwrap();
    // A flipped byte in the first record's payload: nothing of the file is kept past
    // the header, and the rest is saved aside.
    let mut bytes = good.clone();
    bytes[HEADER_BYTES as usize + RECORD_HEADER_BYTES + 2] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let (_, got) = reopen(&path).unwrap();
    assert!(got.is_empty());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), HEADER_BYTES);
    let saved = dir
        .path()
        .join(format!("{FILE_NAME}.damaged-{HEADER_BYTES}"));
    assert_eq!(
        std::fs::read(saved).unwrap(),
        bytes[HEADER_BYTES as usize..]
    );
    // A flipped length in the first record: the second is unreachable too.
    let mut bytes = good.clone();
    bytes[HEADER_BYTES as usize] ^= 0x02;
    std::fs::write(&path, &bytes).unwrap();
    assert!(reopen(&path).unwrap().1.is_empty());
    // A length no writer writes, even at the end, is damage, not a torn append.
    let mut bytes = good.clone();
    bytes.extend_from_slice(&[0xFF; RECORD_HEADER_BYTES + 4]);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(ids(&reopen(&path).unwrap().1), [1, 2, 3, 4, 5]);
    let saved = dir
        .path()
        .join(format!("{FILE_NAME}.damaged-{}", good.len()));
    assert_eq!(
        std::fs::read(saved).unwrap(),
        [0xFF; RECORD_HEADER_BYTES + 4]
    );
    // Damage in the second (last) record is a torn end: the first is kept.
    let mut bytes = good;
    bytes[first_end as usize + RECORD_HEADER_BYTES] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(ids(&reopen(&path).unwrap().1), [1, 2, 3]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), first_end);
}

#[test]
fn a_bad_header_is_refused_and_the_file_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = two_records(dir.path());
    let good = std::fs::read(&path).unwrap();
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty", Vec::new()),
        ("short", good[..5].to_vec()),
        ("other magic", [&b"SQLite f"[..], &good[8..]].concat()),
        ("newer version", [&good[..7], &[2], &good[8..]].concat()),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let err = reopen(&path).unwrap_err();
        assert!(
            matches!(err, SeriesLogError::Header { .. }),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("series.log"), "{what}: {err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what}");
    }
}

#[test]
fn a_failed_append_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (path, all, _) = two_records(dir.path());
    let good = std::fs::read(&path).unwrap();
    let (mut log, _) = reopen(&path).unwrap();
    let new = labels(&[("__name__", "new")]);
    for write_bytes in [0, 5, 20, 10_000] {
        log.set_fault(Some(Fault {
            write_bytes,
            truncate_fails: false,
        }));
        let err = log.append(&[(6, &new)]).unwrap_err();
        assert!(
            matches!(&err, SeriesLogError::Io { op: "appending", source, .. }
                if source.raw_os_error() == Some(libc::ENOSPC)),
            "{err:?}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            good,
            "{write_bytes} bytes written"
        );
    }
    // The truncation fails too: the partial record stays until the next append.
    log.set_fault(Some(Fault {
        write_bytes: 10,
        truncate_fails: true,
    }));
    log.append(&[(6, &new)]).unwrap_err();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        good.len() as u64 + 10
    );
    log.set_fault(None);
    log.append(&[(6, &new)]).unwrap();
    let (_, got) = reopen(&path).unwrap();
    assert_eq!(ids(&got), [1, 2, 3, 4, 5, 6]);
    assert_eq!(got[5].1, new);
    assert_eq!(got[0].1, all[0]);
}

#[test]
fn create_is_whole_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    // A leftover temporary file from a crash is replaced.
    std::fs::write(dir.path().join("series.log.tmp"), b"junk").unwrap();
    let all = realistic_host("h0001");
    let series: Vec<(SeriesId, Labels)> = all
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, l)| (i as SeriesId * 2 + 1, l))
        .collect();
    SeriesLog::create(&path, &series).unwrap();
    assert!(!dir.path().join("series.log.tmp").exists());
    assert_eq!(reopen(&path).unwrap().1, series);
    // Where it cannot be written, nothing is left behind.
    let missing = dir.path().join("no/such/dir").join(FILE_NAME);
    assert!(matches!(
        SeriesLog::create(&missing, &series),
        Err(SeriesLogError::Io { op: "creating", .. })
    ));
}

/// The figure in the module doc: `cargo test -p muster-collector --lib
/// measure_bytes_per_series -- --nocapture`.
#[test]
fn measure_bytes_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    SeriesLog::create(&path, &[]).unwrap();
    let (mut log, _) = reopen(&path).unwrap();
    let hosts = 20;
    let mut series = 0;
    let mut next = 1;
    for h in 0..hosts {
        let all = realistic_host(&format!("h{h:04}"));
        log.append(&numbered(&all, next)).unwrap();
        next += all.len() as SeriesId;
        series += all.len();
    }
    let whole = (log.len() - HEADER_BYTES) as f64 / series as f64;
    // As the benchmark's hosts send them: the CPU series first, the rest a batch later.
    let all = realistic_host("h9999");
    let before = log.len();
    log.append(&numbered(&all[..32], next)).unwrap();
    log.append(&numbered(&all[32..], next + 32)).unwrap();
    let split = (log.len() - before) as f64 / all.len() as f64;
    // A container starting: its 28 cAdvisor series (every 12th of the last 336) in one
    // record, and a lone series in one.
    let container: Vec<Labels> = all[all.len() - 336..].iter().step_by(12).cloned().collect();
    let before = log.len();
    log.append(&numbered(&container, next + 1_000)).unwrap();
    let per_container = (log.len() - before) as f64 / container.len() as f64;
    let before = log.len();
    log.append(&numbered(&all[..1], next + 2_000)).unwrap();
    let lone = log.len() - before;
    println!(
        "series log: {} series per host; {whole:.1} bytes per series with a host's series \
         in one record, {split:.1} in two (32 CPU series, then the rest); a new \
         container's {} series {per_container:.1} bytes each; a lone series {lone} bytes",
        all.len(),
        container.len()
    );
    assert_eq!(all.len(), 503);
    assert!(whole < 30.0 && split < 30.0, "{whole} {split}");
}
