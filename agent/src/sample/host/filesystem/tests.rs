use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::*;
use crate::sample::host::testkit::{fixture, render, round, write};

/// Fixed figures for every mount, except `/run`, which is not ours to see.
fn fake_stat(path: &Path) -> io::Result<FsStat> {
    if path.ends_with("run") {
        return Err(io::Error::from(io::ErrorKind::PermissionDenied));
    }
    Ok(FsStat {
        size_bytes: 4096.0,
        free_bytes: 2048.0,
        avail_bytes: 1024.0,
        files: 100.0,
        files_free: 60.0,
    })
}

fn table_for(
    dir: &Path,
    stat: StatFn,
    config: &FilesystemConfig,
) -> (FilesystemSampler, SeriesTable) {
    let sampler = FilesystemSampler::with_stat(&SamplePaths::under(dir), config, stat);
    (sampler, SeriesTable::new())
}

#[test]
fn default_excludes_match_node_exporter() {
    let c = FilesystemConfig::default();
    for drop in [
        "/dev",
        "/dev/shm",
        "/proc",
        "/proc/sys/fs/binfmt_misc",
        "/sys",
        "/sys/fs/cgroup",
        "/run/credentials/systemd-journald.service",
        "/var/lib/docker/overlay2/0d9c1e/merged",
        "/var/lib/containers/storage/overlay",
    ] {
        assert!(!c.mount_points.allows(drop), "{drop} is excluded");
    }
    for keep in [
        "/",
        "/home",
        "/devices",
        "/run",
        "/var/lib/docker",
        "/data/dev",
    ] {
        assert!(c.mount_points.allows(keep), "{keep} is kept");
    }
    for drop in [
        "proc", "sysfs", "cgroup", "cgroup2", "overlay", "squashfs", "nsfs", "tracefs", "erofs",
    ] {
        assert!(!c.fs_types.allows(drop), "{drop} is excluded");
    }
    for keep in [
        "ext4",
        "xfs",
        "btrfs",
        "tmpfs",
        "nfs4",
        "vfat",
        "fuse.sshfs",
    ] {
        assert!(c.fs_types.allows(keep), "{keep} is kept");
    }
    assert_eq!(c.mount_timeout, Duration::from_secs(2));
}

#[test]
fn config_defaults_apply_to_an_empty_table_and_unknown_keys_fail() {
    let c: FilesystemConfig = muster_shared::config::parse("", Path::new("a.toml")).unwrap();
    assert_eq!(c, FilesystemConfig::default());
    let c: FilesystemConfig = muster_shared::config::parse(
        "mount_timeout = \"500ms\"\n[fs_types]\ninclude = \"ext4\"\n",
        Path::new("a.toml"),
    )
    .unwrap();
    assert!(c.fs_types.allows("ext4") && !c.fs_types.allows("xfs"));
    assert_eq!(c.mount_timeout.get(), std::time::Duration::from_millis(500));
    assert!(
        muster_shared::config::parse::<FilesystemConfig>("timeout = \"1s\"\n", Path::new("a.toml"))
            .is_err()
    );
}

#[test]
fn fixture_sample_gives_exact_series() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "proc/1/mounts", &fixture("mounts"));
    let (mut sampler, mut table) = table_for(dir.path(), fake_stat, &FilesystemConfig::default());
    round(&mut sampler, &mut table).unwrap();
    let mut expected = Vec::new();
    for (device, fstype, mountpoint) in [
        ("/dev/vda", "ext4", "/"),
        ("/dev/vdc", "ext4", "/data"),
        ("/dev/vda", "ext4", "/var/lib/docker"),
        ("server:/export", "nfs4", "/mnt/my share"),
    ] {
        let l = format!(r#"{{device="{device}",fstype="{fstype}",mountpoint="{mountpoint}"}}"#);
        expected.extend([
            format!("node_filesystem_avail_bytes{l} 1024"),
            format!("node_filesystem_device_error{l} 0"),
            format!("node_filesystem_files_free{l} 60"),
            format!("node_filesystem_files{l} 100"),
            format!("node_filesystem_free_bytes{l} 2048"),
            format!("node_filesystem_readonly{l} 0"),
            format!("node_filesystem_size_bytes{l} 4096"),
        ]);
    }
    // /run failed to stat: only its error and read-only status.
    let run = r#"{device="tmpfs",fstype="tmpfs",mountpoint="/run"}"#;
    expected.push(format!("node_filesystem_device_error{run} 1"));
    expected.push(format!("node_filesystem_readonly{run} 0"));
    expected.sort();
    assert_eq!(render(&table), expected);
    assert_eq!(table.malformed_count(), 0);
    // The second /data line (ext4, rw) won over the first (xfs, ro); pseudo
    // filesystems, /dev, /run/credentials and the docker overlay are gone.
}

#[test]
fn falls_back_to_proc_mounts_and_counts_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "proc/mounts",
        "/dev/vda / ext4 ro 0 0\n/dev/vdb /b\ngarbage\n",
    );
    let (mut sampler, mut table) = table_for(dir.path(), fake_stat, &FilesystemConfig::default());
    round(&mut sampler, &mut table).unwrap();
    assert_eq!(table.malformed_count(), 2);
    let lines = render(&table);
    assert_eq!(lines.len(), 7);
    assert!(lines.contains(
        &r#"node_filesystem_readonly{device="/dev/vda",fstype="ext4",mountpoint="/"} 1"#.to_owned()
    ));
}

#[test]
fn missing_mount_tables_fail_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sampler, mut table) = table_for(dir.path(), fake_stat, &FilesystemConfig::default());
    let err = round(&mut sampler, &mut table).unwrap_err();
    assert!(err.to_string().contains("proc/mounts"), "{err}");
}

static GATE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());
static HANG_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Blocks on `/mnt/hang` until the gate opens, like a dead NFS server.
fn gated_stat(path: &Path) -> io::Result<FsStat> {
    if path.ends_with("hang") {
        HANG_CALLS.fetch_add(1, Ordering::SeqCst);
        let (lock, cvar) = &GATE;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cvar.wait(open).unwrap();
        }
    }
    fake_stat(path)
}

#[test]
fn a_hung_mount_is_marked_stuck_skipped_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "proc/1/mounts",
        "/dev/vda / ext4 rw 0 0\nnfs:/x /mnt/hang nfs4 rw 0 0\n/dev/vdb /b ext4 rw 0 0\n",
    );
    let config = FilesystemConfig {
        mount_timeout: Duration(std::time::Duration::from_millis(100)),
        ..FilesystemConfig::default()
    };
    let (mut sampler, mut table) = table_for(dir.path(), gated_stat, &config);
    let hang = r#"{device="nfs:/x",fstype="nfs4",mountpoint="/mnt/hang"}"#;

    // Pass 1: the hang times out, the mounts after it are still stat'ed.
    round(&mut sampler, &mut table).unwrap();
    let lines = render(&table);
    assert!(
        lines.contains(&format!("node_filesystem_device_error{hang} 1")),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("node_filesystem_size_bytes") && l.contains("hang"))
    );
    assert!(
        lines.iter().any(
            |l| l.starts_with("node_filesystem_size_bytes") && l.contains(r#"mountpoint="/b""#)
        )
    );
    assert_eq!(sampler.workers.stuck_count(), 1);

    // Pass 2: skipped without a new call.
    round(&mut sampler, &mut table).unwrap();
    assert!(render(&table).contains(&format!("node_filesystem_device_error{hang} 1")));
    assert_eq!(
        HANG_CALLS.load(Ordering::SeqCst),
        1,
        "a stuck mount is not called again"
    );

    // The server comes back; wait for the pending call to return.
    *GATE.0.lock().unwrap() = true;
    GATE.1.notify_all();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        sampler.workers.reap();
        if sampler.workers.stuck_count() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stuck statvfs never returned"
        );
        std::thread::yield_now();
    }

    // Pass 3: stat'ed again.
    round(&mut sampler, &mut table).unwrap();
    let lines = render(&table);
    assert!(
        lines.contains(&format!("node_filesystem_device_error{hang} 0")),
        "{lines:#?}"
    );
    assert!(lines.contains(&format!("node_filesystem_size_bytes{hang} 4096")));
    assert_eq!(HANG_CALLS.load(Ordering::SeqCst), 2);
}

#[test]
fn real_statvfs_measures_a_temp_dir() {
    let dir = tempfile::tempdir().unwrap();
    let stat = stat_worker::statvfs(dir.path()).unwrap();
    assert!(stat.size_bytes > 0.0);
    assert!(stat.free_bytes >= stat.avail_bytes);
    assert!(stat.size_bytes >= stat.free_bytes);
    let err = stat_worker::statvfs(&dir.path().join("missing")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn steady_state_creates_no_new_series() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "proc/1/mounts", &fixture("mounts"));
    let (mut sampler, mut table) = table_for(dir.path(), fake_stat, &FilesystemConfig::default());
    round(&mut sampler, &mut table).unwrap();
    let (live, families) = (table.live_count(), table.families().len());
    round(&mut sampler, &mut table).unwrap();
    assert_eq!(
        (table.live_count(), table.families().len()),
        (live, families)
    );
}

#[test]
fn live_host_reports_real_filesystems() {
    let (mut sampler, mut table) = (
        FilesystemSampler::new(&SamplePaths::default(), &FilesystemConfig::default()),
        SeriesTable::new(),
    );
    round(&mut sampler, &mut table).unwrap();
    assert!(
        table
            .live()
            .all(|s| s.values.len() == 3 && !s.values[2].is_empty())
    );
    let sizes: Vec<f64> = table
        .live()
        .filter(|s| {
            table
                .family_of(s.family)
                .is_some_and(|f| &*f.name == "node_filesystem_size_bytes")
        })
        .map(|s| s.value)
        .collect();
    assert!(
        sizes.iter().any(|&v| v > 0.0),
        "some filesystem has a size: {:?}",
        render(&table)
    );
    assert!(
        !render(&table)
            .iter()
            .any(|l| l.contains(r#"fstype="proc""#))
    );
}
