//! cgroup v1 files of one container (also used on hybrid hosts, whose
//! controllers are all on the v1 side): pure `parse_*` functions and
//! [`read_v1`], which reads the container's per-controller directories into
//! a [`Usage`].
//!
//! Mapping as cAdvisor's: `cpuacct.usage` ns and `cpuacct.stat` USER_HZ
//! ticks → seconds; `cpu.stat` → CFS periods and throttling; `memory.stat`
//! `total_rss`/`total_cache`/`total_mapped_file`/`total_inactive_file`
//! (hierarchical, so nested cgroups count); swap = `memory.memsw.usage_in_bytes`
//! − `memory.usage_in_bytes` when swap accounting is on;
//! `memory.oom_control` `oom_kill` (kernel ≥ 4.13); `blkio.throttle.io_service_bytes`
//! and `io_serviced` Read/Write per device. A controller that is not mounted
//! leaves its fields `None`; a container that stops mid-pass gives
//! [`ReadError::Vanished`].

use super::cgroup::{
    Controllers, Limit, ReadError, ReadTally, count_procs, parse_flat_keyed, parse_limit,
    parse_single_u64,
};
use super::cgroup_v2::parse_dev;
use super::usage::{Usage, memory_limit};

/// Clock ticks per second of `cpuacct.stat`. USER_HZ is 100 on every Linux
/// architecture's user ABI (`sysconf(_SC_CLK_TCK)`), independent of CONFIG_HZ.
pub const USER_HZ: f64 = 100.0;

/// `cpuacct.stat`: CPU time in USER_HZ ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuacctStat {
    /// `user` ticks.
    pub user: Option<u64>,
    /// `system` ticks.
    pub system: Option<u64>,
}

/// Parses `cpuacct.stat`; returns the ticks and the number of malformed lines.
pub fn parse_cpuacct_stat(text: &str) -> (CpuacctStat, u64) {
    let mut s = CpuacctStat::default();
    let malformed = parse_flat_keyed(text, |key, value| match key {
        "user" => s.user = Some(value),
        "system" => s.system = Some(value),
        _ => {}
    });
    (s, malformed)
}

/// v1 `cpu.stat`: CFS counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CfsStat {
    /// `nr_periods`.
    pub nr_periods: Option<u64>,
    /// `nr_throttled`.
    pub nr_throttled: Option<u64>,
    /// `throttled_time`, ns.
    pub throttled_time_ns: Option<u64>,
}

/// Parses v1 `cpu.stat`; returns the counters and the number of malformed lines.
pub fn parse_cpu_stat(text: &str) -> (CfsStat, u64) {
    let mut s = CfsStat::default();
    let malformed = parse_flat_keyed(text, |key, value| match key {
        "nr_periods" => s.nr_periods = Some(value),
        "nr_throttled" => s.nr_throttled = Some(value),
        "throttled_time" => s.throttled_time_ns = Some(value),
        _ => {}
    });
    (s, malformed)
}

/// The v1 `memory.stat` keys the sampler uses (bytes, hierarchical totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStat {
    /// `total_rss`.
    pub total_rss: Option<u64>,
    /// `total_cache`.
    pub total_cache: Option<u64>,
    /// `total_inactive_file`.
    pub total_inactive_file: Option<u64>,
    /// `total_mapped_file`.
    pub total_mapped_file: Option<u64>,
}

/// Parses v1 `memory.stat`; returns the values and the number of malformed lines.
pub fn parse_memory_stat(text: &str) -> (MemoryStat, u64) {
    let mut s = MemoryStat::default();
    let malformed = parse_flat_keyed(text, |key, value| match key {
        "total_rss" => s.total_rss = Some(value),
        "total_cache" => s.total_cache = Some(value),
        "total_inactive_file" => s.total_inactive_file = Some(value),
        "total_mapped_file" => s.total_mapped_file = Some(value),
        _ => {}
    });
    (s, malformed)
}

/// Parses `memory.oom_control`; returns `oom_kill` (absent before Linux
/// 4.13) and the number of malformed lines.
pub fn parse_oom_control(text: &str) -> (Option<u64>, u64) {
    let mut oom_kill = None;
    let malformed = parse_flat_keyed(text, |key, value| {
        if key == "oom_kill" {
            oom_kill = Some(value);
        }
    });
    (oom_kill, malformed)
}

/// Parses `cpu.cfs_quota_us`: `Some(None)` for `-1` (unlimited),
/// `Some(Some(µs))` for a quota, `None` when it does not parse.
pub fn parse_cfs_quota(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "-1" => Some(None),
        other => other.parse().ok().map(Some),
    }
}

/// The operation of a `blkio.throttle.*` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkioOp {
    /// `Read`.
    Read,
    /// `Write`.
    Write,
}

/// Calls `each(major, minor, op, value)` for the Read and Write lines of a
/// `blkio.throttle.io_service_bytes` or `io_serviced` file (`MAJ:MIN Op N`).
/// Sync/Async/Discard/Total lines and the closing `Total N` are ignored.
/// Returns the number of malformed lines skipped.
pub fn parse_blkio(text: &str, mut each: impl FnMut(u32, u32, BlkioOp, u64)) -> u64 {
    let mut malformed = 0;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(first), second, third, None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            malformed += u64::from(!line.trim().is_empty());
            continue;
        };
        match (first, second, third) {
            ("Total", Some(n), None) if n.parse::<u64>().is_ok() => {}
            (dev, Some(op), Some(n)) => match (parse_dev(dev), n.parse::<u64>()) {
                (Some((major, minor)), Ok(value)) => match op {
                    "Read" => each(major, minor, BlkioOp::Read, value),
                    "Write" => each(major, minor, BlkioOp::Write, value),
                    _ => {}
                },
                _ => malformed += 1,
            },
            _ => malformed += 1,
        }
    }
    malformed
}

/// Reads a container's v1 directories into `usage` (cleared first), using
/// `buf` for every file. Returns the number of malformed lines skipped.
///
/// # Errors
/// [`ReadError::Vanished`] when the directories disappeared (the container
/// stopped), [`ReadError::Unreadable`] when no file could be read,
/// [`ReadError::Io`] with the file's path for any other I/O error.
pub fn read_v1(dirs: &Controllers, buf: &mut String, usage: &mut Usage) -> Result<u64, ReadError> {
    usage.clear();
    let mut tally = ReadTally::default();
    let mut malformed = 0;

    if let Some(dir) = &dirs.cpuacct {
        if tally.read(dir, "cpuacct.usage", buf)? {
            let ns = parse_single_u64(buf);
            malformed += u64::from(ns.is_none());
            usage.cpu_usage_seconds = ns.map(|ns| ns as f64 / 1e9);
        }
        if tally.read(dir, "cpuacct.stat", buf)? {
            let (s, m) = parse_cpuacct_stat(buf);
            malformed += m;
            usage.cpu_user_seconds = s.user.map(|t| t as f64 / USER_HZ);
            usage.cpu_system_seconds = s.system.map(|t| t as f64 / USER_HZ);
        }
    }
    if let Some(dir) = &dirs.cpu {
        if tally.read(dir, "cpu.stat", buf)? {
            let (s, m) = parse_cpu_stat(buf);
            malformed += m;
            usage.cfs_periods = s.nr_periods;
            usage.cfs_throttled_periods = s.nr_throttled;
            usage.cfs_throttled_seconds = s.throttled_time_ns.map(|ns| ns as f64 / 1e9);
        }
        if tally.read(dir, "cpu.cfs_quota_us", buf)? {
            let quota = parse_cfs_quota(buf);
            malformed += u64::from(quota.is_none());
            usage.cpu_quota_us = quota.flatten();
        }
        if tally.read(dir, "cpu.cfs_period_us", buf)? {
            usage.cpu_period_us = parse_single_u64(buf);
            malformed += u64::from(usage.cpu_period_us.is_none());
        }
    }
    if let Some(dir) = &dirs.memory {
        if tally.read(dir, "memory.usage_in_bytes", buf)? {
            usage.memory_usage = parse_single_u64(buf);
            malformed += u64::from(usage.memory_usage.is_none());
        }
        if tally.read(dir, "memory.limit_in_bytes", buf)? {
            let limit = parse_limit(buf);
            malformed += u64::from(limit.is_none());
            usage.memory_limit = limit.map(|l| match l {
                Limit::Max => 0,
                Limit::Value(v) => memory_limit(Some(v)),
            });
        }
        if tally.read(dir, "memory.stat", buf)? {
            let (s, m) = parse_memory_stat(buf);
            malformed += m;
            usage.memory_rss = s.total_rss;
            usage.memory_cache = s.total_cache;
            usage.memory_mapped_file = s.total_mapped_file;
            usage.memory_inactive_file = s.total_inactive_file;
        }
        if tally.read(dir, "memory.memsw.usage_in_bytes", buf)? {
            let memsw = parse_single_u64(buf);
            malformed += u64::from(memsw.is_none());
            usage.memory_swap = memsw
                .zip(usage.memory_usage)
                .map(|(sw, mem)| sw.saturating_sub(mem));
        }
        if tally.read(dir, "memory.oom_control", buf)? {
            let (oom, m) = parse_oom_control(buf);
            malformed += m;
            usage.oom_events = oom;
        }
    }
    if let Some(dir) = &dirs.blkio {
        if tally.read(dir, "blkio.throttle.io_service_bytes", buf)? {
            malformed += parse_blkio(buf, |major, minor, op, v| {
                usage.add_io(major, minor, |d| match op {
                    BlkioOp::Read => d.read_bytes += v,
                    BlkioOp::Write => d.write_bytes += v,
                });
            });
        }
        if tally.read(dir, "blkio.throttle.io_serviced", buf)? {
            malformed += parse_blkio(buf, |major, minor, op, v| {
                usage.add_io(major, minor, |d| match op {
                    BlkioOp::Read => d.reads += v,
                    BlkioOp::Write => d.writes += v,
                });
            });
        }
    }
    if let Some(dir) = &dirs.pids {
        if tally.read(dir, "pids.current", buf)? {
            usage.threads = parse_single_u64(buf);
            malformed += u64::from(usage.threads.is_none());
        }
        if tally.read(dir, "pids.max", buf)? {
            let max = parse_limit(buf);
            malformed += u64::from(max.is_none());
            usage.threads_max = max.map(|l| match l {
                Limit::Max => 0,
                Limit::Value(v) => v,
            });
        }
    }
    // Every v1 controller lists the same processes; take the first mounted.
    let procs_dir = dirs
        .pids
        .as_ref()
        .or(dirs.cpu.as_ref())
        .or(dirs.memory.as_ref());
    if let Some(dir) = procs_dir
        && tally.read(dir, "cgroup.procs", buf)?
    {
        usage.processes = Some(count_procs(buf));
    }
    let primary = dirs.cpuacct.as_ref().or(dirs.memory.as_ref()).or(procs_dir);
    match primary {
        Some(dir) => tally.finish(dir)?,
        None => return Err(ReadError::Unreadable),
    }
    Ok(malformed)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::sample::container::usage::DeviceIo;
    use proptest::prelude::*;

    #[test]
    fn cpuacct_stat_in_ticks() {
        assert_eq!(
            parse_cpuacct_stat("user 250\nsystem 125\n"),
            (
                CpuacctStat {
                    user: Some(250),
                    system: Some(125)
                },
                0
            )
        );
        assert_eq!(parse_cpuacct_stat("user\nsystem 1\n").1, 1);
    }

    #[test]
    fn cfs_and_quota() {
        let (s, bad) = parse_cpu_stat(
            "nr_periods 100\nnr_throttled 4\nthrottled_time 2500000000\nnr_bursts 0\n",
        );
        assert_eq!(bad, 0);
        assert_eq!(
            s,
            CfsStat {
                nr_periods: Some(100),
                nr_throttled: Some(4),
                throttled_time_ns: Some(2_500_000_000)
            }
        );
        assert_eq!(parse_cfs_quota("-1\n"), Some(None));
        assert_eq!(parse_cfs_quota("50000\n"), Some(Some(50_000)));
        assert_eq!(parse_cfs_quota("x"), None);
    }

    #[test]
    fn memory_stat_uses_hierarchical_totals() {
        let (m, bad) = parse_memory_stat(
            "cache 1\nrss 2\ntotal_cache 100\ntotal_rss 200\ntotal_mapped_file 30\ntotal_inactive_file 40\nbad line here\n",
        );
        assert_eq!(bad, 1);
        assert_eq!(
            m,
            MemoryStat {
                total_rss: Some(200),
                total_cache: Some(100),
                total_inactive_file: Some(40),
                total_mapped_file: Some(30)
            }
        );
        assert_eq!(
            parse_oom_control("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"),
            (Some(3), 0)
        );
        assert_eq!(
            parse_oom_control("oom_kill_disable 0\nunder_oom 0\n"),
            (None, 0)
        );
    }

    #[test]
    fn blkio_read_write_lines_only() {
        let text = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Async 2\n8:0 Discard 0\n8:0 Total 12288\n254:0 Read 10\nnonsense\n8:x Read 1\nTotal 12298\n";
        let mut got = Vec::new();
        let bad = parse_blkio(text, |a, b, op, v| got.push((a, b, op, v)));
        assert_eq!(bad, 2);
        assert_eq!(
            got,
            vec![
                (8, 0, BlkioOp::Read, 4096),
                (8, 0, BlkioOp::Write, 8192),
                (254, 0, BlkioOp::Read, 10)
            ]
        );
        assert_eq!(parse_blkio("Total 0\n", |_, _, _, _| {}), 0);
    }

    #[test]
    fn fixture_directories_read_exact_values() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sample/container/testdata/v1");
        let id = "docker/bbbb";
        let dirs = Controllers {
            cpu: Some(root.join("cpu").join(id)),
            cpuacct: Some(root.join("cpuacct").join(id)),
            memory: Some(root.join("memory").join(id)),
            blkio: Some(root.join("blkio").join(id)),
            pids: Some(root.join("pids").join(id)),
        };
        let mut buf = String::new();
        let mut u = Usage::default();
        assert_eq!(read_v1(&dirs, &mut buf, &mut u).unwrap(), 0);
        assert_eq!(u.cpu_usage_seconds, Some(21.395_156));
        assert_eq!(
            (u.cpu_user_seconds, u.cpu_system_seconds),
            (Some(12.0), Some(3.5))
        );
        assert_eq!(
            (
                u.cfs_periods,
                u.cfs_throttled_periods,
                u.cfs_throttled_seconds
            ),
            (Some(50), Some(2), Some(0.5))
        );
        assert_eq!((u.cpu_quota_us, u.cpu_period_us), (None, Some(100_000)));
        assert_eq!(u.memory_usage, Some(1_851_392));
        assert_eq!(u.working_set(), Some(1_851_392 - 1_507_328));
        assert_eq!(
            (u.memory_rss, u.memory_cache, u.memory_mapped_file),
            (Some(57_344), Some(1_507_328), Some(1_073_152))
        );
        assert_eq!(
            (u.memory_limit, u.memory_swap, u.oom_events),
            (Some(0), Some(4096), Some(0))
        );
        assert_eq!(
            (u.threads, u.threads_max, u.processes),
            (Some(1), Some(0), Some(1))
        );
        assert_eq!(
            u.io,
            vec![DeviceIo {
                major: 254,
                minor: 0,
                read_bytes: 409_600,
                write_bytes: 8192,
                reads: 100,
                writes: 2
            }]
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,300}") {
            let _ = parse_cpuacct_stat(&text);
            let _ = parse_cpu_stat(&text);
            let _ = parse_memory_stat(&text);
            let _ = parse_oom_control(&text);
            let _ = parse_cfs_quota(&text);
            let _ = parse_blkio(&text, |_, _, _, _| {});
        }

        #[test]
        fn blkio_round_trips(major in 0u32..4096, minor in 0u32..1_000_000, r in any::<u64>(), w in any::<u64>()) {
            let text = format!("{major}:{minor} Read {r}\n{major}:{minor} Write {w}\nTotal 0\n");
            let mut got = Vec::new();
            prop_assert_eq!(parse_blkio(&text, |a, b, op, v| got.push((a, b, op, v))), 0);
            prop_assert_eq!(got, vec![(major, minor, BlkioOp::Read, r), (major, minor, BlkioOp::Write, w)]);
        }

        #[test]
        fn memory_stat_round_trips(rss in any::<u64>(), cache in any::<u64>()) {
            let (m, bad) = parse_memory_stat(&format!("total_rss {rss}\ntotal_cache {cache}\n"));
            prop_assert_eq!(bad, 0);
            prop_assert_eq!((m.total_rss, m.total_cache), (Some(rss), Some(cache)));
        }
    }
}
