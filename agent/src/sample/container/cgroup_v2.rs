//! cgroup v2 files of one container: pure `parse_*` functions and
//! [`read_v2`], which reads a container's directory into a [`Usage`].
//!
//! File-to-field mapping follows cAdvisor (research file §5): `cpu.stat`
//! µs → seconds; `memory.stat` `anon`/`file`/`file_mapped` → rss, cache,
//! mapped_file; `memory.swap.current` → swap; `memory.events` `oom_kill` →
//! OOM events; `io.stat` → per-device bytes and operations; `pids.current`
//! → threads. A file that does not exist (no swap accounting, controller not
//! enabled) leaves its fields `None`. A container that stops mid-pass makes
//! [`read_v2`] return [`ReadError::Vanished`].

use std::path::Path;

use super::cgroup::{
    Limit, ReadError, ReadTally, count_procs, parse_flat_keyed, parse_limit, parse_single_u64,
};
use super::usage::{DeviceIo, Usage, memory_limit};

/// The `cpu.stat` keys the sampler uses (µs and counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStat {
    /// `usage_usec`.
    pub usage_usec: Option<u64>,
    /// `user_usec`.
    pub user_usec: Option<u64>,
    /// `system_usec`.
    pub system_usec: Option<u64>,
    /// `nr_periods`.
    pub nr_periods: Option<u64>,
    /// `nr_throttled`.
    pub nr_throttled: Option<u64>,
    /// `throttled_usec`.
    pub throttled_usec: Option<u64>,
}

/// Parses `cpu.stat`; returns the values and the number of malformed lines.
pub fn parse_cpu_stat(text: &str) -> (CpuStat, u64) {
    let mut s = CpuStat::default();
    let malformed = parse_flat_keyed(text, |key, value| {
        let slot = match key {
            "usage_usec" => &mut s.usage_usec,
            "user_usec" => &mut s.user_usec,
            "system_usec" => &mut s.system_usec,
            "nr_periods" => &mut s.nr_periods,
            "nr_throttled" => &mut s.nr_throttled,
            "throttled_usec" => &mut s.throttled_usec,
            _ => return,
        };
        *slot = Some(value);
    });
    (s, malformed)
}

/// The `memory.stat` keys the sampler uses (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStat {
    /// `anon`: cAdvisor's rss.
    pub anon: Option<u64>,
    /// `file`: cAdvisor's cache.
    pub file: Option<u64>,
    /// `file_mapped`: cAdvisor's mapped_file.
    pub file_mapped: Option<u64>,
    /// `inactive_file`: subtracted for the working set.
    pub inactive_file: Option<u64>,
}

/// Parses `memory.stat`; returns the values and the number of malformed lines.
pub fn parse_memory_stat(text: &str) -> (MemoryStat, u64) {
    let mut s = MemoryStat::default();
    let malformed = parse_flat_keyed(text, |key, value| {
        let slot = match key {
            "anon" => &mut s.anon,
            "file" => &mut s.file,
            "file_mapped" => &mut s.file_mapped,
            "inactive_file" => &mut s.inactive_file,
            _ => return,
        };
        *slot = Some(value);
    });
    (s, malformed)
}

/// Parses `memory.events`; returns `oom_kill` and the number of malformed lines.
pub fn parse_memory_events(text: &str) -> (Option<u64>, u64) {
    let mut oom_kill = None;
    let malformed = parse_flat_keyed(text, |key, value| {
        if key == "oom_kill" {
            oom_kill = Some(value);
        }
    });
    (oom_kill, malformed)
}

/// `cpu.max`: quota (µs per period; `None` for `max`) and period (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    /// µs the cgroup may run per period; `None` when unlimited.
    pub quota_us: Option<u64>,
    /// The period, µs.
    pub period_us: u64,
}

/// Parses `cpu.max` (`QUOTA|max PERIOD`). `None` when it does not parse.
pub fn parse_cpu_max(text: &str) -> Option<CpuMax> {
    let mut fields = text.split_ascii_whitespace();
    let quota = fields.next()?;
    let period_us = fields.next()?.parse().ok()?;
    if fields.next().is_some() {
        return None;
    }
    let quota_us = match quota {
        "max" => None,
        q => Some(q.parse().ok()?),
    };
    Some(CpuMax {
        quota_us,
        period_us,
    })
}

/// Calls `each` for every device line of `io.stat`
/// (`MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`; unknown
/// keys are ignored). Returns the number of malformed lines skipped.
pub fn parse_io_stat(text: &str, mut each: impl FnMut(DeviceIo)) -> u64 {
    let mut malformed = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_io_line(line) {
            Some(io) => each(io),
            None => malformed += 1,
        }
    }
    malformed
}

fn parse_io_line(line: &str) -> Option<DeviceIo> {
    let mut fields = line.split_ascii_whitespace();
    let (major, minor) = parse_dev(fields.next()?)?;
    let mut io = DeviceIo {
        major,
        minor,
        ..DeviceIo::default()
    };
    for field in fields {
        let (key, value) = field.split_once('=')?;
        let value: u64 = value.parse().ok()?;
        match key {
            "rbytes" => io.read_bytes = value,
            "wbytes" => io.write_bytes = value,
            "rios" => io.reads = value,
            "wios" => io.writes = value,
            _ => {}
        }
    }
    Some(io)
}

/// Parses `MAJ:MIN`.
pub fn parse_dev(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Reads a container's v2 directory into `usage` (cleared first), using
/// `buf` for every file. Returns the number of malformed lines skipped.
///
/// # Errors
/// [`ReadError::Vanished`] when the directory disappeared (the container
/// stopped), [`ReadError::Unreadable`] when no file could be read,
/// [`ReadError::Io`] with the file's path for any other I/O error.
pub fn read_v2(dir: &Path, buf: &mut String, usage: &mut Usage) -> Result<u64, ReadError> {
    usage.clear();
    let mut tally = ReadTally::default();
    let mut malformed = 0;

    if tally.read(dir, "cpu.stat", buf)? {
        let (s, m) = parse_cpu_stat(buf);
        malformed += m;
        usage.cpu_usage_seconds = s.usage_usec.map(usec_to_seconds);
        usage.cpu_user_seconds = s.user_usec.map(usec_to_seconds);
        usage.cpu_system_seconds = s.system_usec.map(usec_to_seconds);
        usage.cfs_periods = s.nr_periods;
        usage.cfs_throttled_periods = s.nr_throttled;
        usage.cfs_throttled_seconds = s.throttled_usec.map(usec_to_seconds);
    }
    if tally.read(dir, "cpu.max", buf)? {
        let parsed = parse_cpu_max(buf);
        malformed += u64::from(parsed.is_none());
        if let Some(m) = parsed {
            usage.cpu_quota_us = m.quota_us;
            usage.cpu_period_us = Some(m.period_us);
        }
    }
    if tally.read(dir, "memory.current", buf)? {
        usage.memory_usage = parse_single_u64(buf);
        malformed += u64::from(usage.memory_usage.is_none());
    }
    if tally.read(dir, "memory.stat", buf)? {
        let (s, m) = parse_memory_stat(buf);
        malformed += m;
        usage.memory_rss = s.anon;
        usage.memory_cache = s.file;
        usage.memory_mapped_file = s.file_mapped;
        usage.memory_inactive_file = s.inactive_file;
    }
    if tally.read(dir, "memory.max", buf)? {
        let parsed = parse_limit(buf);
        malformed += u64::from(parsed.is_none());
        usage.memory_limit = parsed.map(|l| match l {
            Limit::Max => 0,
            Limit::Value(v) => memory_limit(Some(v)),
        });
    }
    if tally.read(dir, "memory.swap.current", buf)? {
        usage.memory_swap = parse_single_u64(buf);
        malformed += u64::from(usage.memory_swap.is_none());
    }
    if tally.read(dir, "memory.events", buf)? {
        let (oom, m) = parse_memory_events(buf);
        malformed += m;
        usage.oom_events = oom;
    }
    if tally.read(dir, "io.stat", buf)? {
        let m = parse_io_stat(buf, |io| usage.io.push(io));
        malformed += m;
    }
    if tally.read(dir, "pids.current", buf)? {
        usage.threads = parse_single_u64(buf);
        malformed += u64::from(usage.threads.is_none());
    }
    if tally.read(dir, "pids.max", buf)? {
        let parsed = parse_limit(buf);
        malformed += u64::from(parsed.is_none());
        usage.threads_max = parsed.map(|l| match l {
            Limit::Max => 0,
            Limit::Value(v) => v,
        });
    }
    if tally.read(dir, "cgroup.procs", buf)? {
        usage.processes = Some(count_procs(buf));
    }
    tally.finish(dir)?;
    Ok(malformed)
}

/// µs → seconds.
fn usec_to_seconds(usec: u64) -> f64 {
    usec as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu_stat_keys_in_microseconds() {
        let (s, bad) = parse_cpu_stat(
            "usage_usec 2500000\nuser_usec 1500000\nsystem_usec 1000000\nnr_periods 10\nnr_throttled 3\nthrottled_usec 250000\nnr_bursts 0\n",
        );
        assert_eq!(bad, 0);
        assert_eq!(s.usage_usec, Some(2_500_000));
        assert_eq!(s.user_usec, Some(1_500_000));
        assert_eq!(s.system_usec, Some(1_000_000));
        assert_eq!(
            (s.nr_periods, s.nr_throttled, s.throttled_usec),
            (Some(10), Some(3), Some(250_000))
        );
    }

    #[test]
    fn malformed_lines_are_skipped_and_counted() {
        let (s, bad) = parse_cpu_stat(
            "usage_usec 12\nuser_usec\nsystem_usec x\nnr_periods 1 2\n\nthrottled_usec 5",
        );
        assert_eq!(bad, 3);
        assert_eq!(
            (s.usage_usec, s.user_usec, s.system_usec, s.throttled_usec),
            (Some(12), None, None, Some(5))
        );
        let (m, bad) = parse_memory_stat("anon 4096\nfile 18446744073709551616\n");
        assert_eq!(
            (m.anon, m.file, bad),
            (Some(4096), None, 1),
            "overflow is malformed"
        );
    }

    #[test]
    fn memory_stat_and_events() {
        let (m, bad) = parse_memory_stat(
            "anon 1000\nfile 2000\nkernel 5\nfile_mapped 300\ninactive_file 1500\n",
        );
        assert_eq!(bad, 0);
        assert_eq!(
            m,
            MemoryStat {
                anon: Some(1000),
                file: Some(2000),
                file_mapped: Some(300),
                inactive_file: Some(1500)
            }
        );
        assert_eq!(
            parse_memory_events("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n"),
            (Some(2), 0)
        );
    }

    #[test]
    fn cpu_max_and_limits() {
        assert_eq!(
            parse_cpu_max("max 100000\n"),
            Some(CpuMax {
                quota_us: None,
                period_us: 100_000
            })
        );
        assert_eq!(
            parse_cpu_max("50000 100000\n"),
            Some(CpuMax {
                quota_us: Some(50_000),
                period_us: 100_000
            })
        );
        assert_eq!(parse_cpu_max("50000\n"), None);
        assert_eq!(parse_cpu_max("a b"), None);
        assert_eq!(parse_limit("max\n"), Some(Limit::Max));
        assert_eq!(parse_limit("536870912\n"), Some(Limit::Value(536_870_912)));
        assert_eq!(parse_limit(""), None);
    }

    #[test]
    fn io_stat_lines_per_device() {
        let mut got = Vec::new();
        let bad = parse_io_stat(
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=10 wbytes=20 rios=3 wios=4\nbogus\n8:16 rbytes=x\n",
            |io| got.push(io),
        );
        assert_eq!(bad, 2);
        assert_eq!(
            got,
            vec![
                DeviceIo {
                    major: 8,
                    minor: 0,
                    read_bytes: 4096,
                    write_bytes: 8192,
                    reads: 1,
                    writes: 2
                },
                DeviceIo {
                    major: 253,
                    minor: 1,
                    read_bytes: 10,
                    write_bytes: 20,
                    reads: 3,
                    writes: 4
                },
            ]
        );
    }

    #[test]
    fn fixture_directory_reads_exact_values() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/sample/container/testdata/v2/system.slice/docker-aaaa.scope");
        let mut buf = String::new();
        let mut u = Usage::default();
        assert_eq!(read_v2(&dir, &mut buf, &mut u).unwrap(), 0);
        assert_eq!(u.cpu_usage_seconds, Some(12.5));
        assert_eq!(u.cpu_user_seconds, Some(8.25));
        assert_eq!(u.cpu_system_seconds, Some(4.25));
        assert_eq!(
            (
                u.cfs_periods,
                u.cfs_throttled_periods,
                u.cfs_throttled_seconds
            ),
            (Some(200), Some(7), Some(0.35))
        );
        assert_eq!(
            (u.cpu_quota_us, u.cpu_period_us),
            (Some(50_000), Some(100_000))
        );
        assert_eq!(u.memory_usage, Some(104_857_600));
        assert_eq!(u.working_set(), Some(104_857_600 - 20_971_520));
        assert_eq!(
            (u.memory_rss, u.memory_cache, u.memory_mapped_file),
            (Some(52_428_800), Some(41_943_040), Some(4_194_304))
        );
        assert_eq!(
            (u.memory_limit, u.memory_swap, u.oom_events),
            (Some(268_435_456), Some(1_048_576), Some(1))
        );
        assert_eq!(
            (u.threads, u.threads_max, u.processes),
            (Some(5), Some(0), Some(2))
        );
        assert_eq!(
            u.io,
            vec![DeviceIo {
                major: 8,
                minor: 0,
                read_bytes: 1_048_576,
                write_bytes: 2_097_152,
                reads: 30,
                writes: 40
            }]
        );
    }

    #[test]
    fn missing_directory_is_vanished() {
        let mut buf = String::new();
        let mut u = Usage::default();
        let err = read_v2(Path::new("/nonexistent/muster/cgroup"), &mut buf, &mut u).unwrap_err();
        assert!(matches!(err, ReadError::Vanished), "{err:?}");
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,300}") {
            let _ = parse_cpu_stat(&text);
            let _ = parse_memory_stat(&text);
            let _ = parse_memory_events(&text);
            let _ = parse_cpu_max(&text);
            let _ = parse_limit(&text);
            let _ = parse_single_u64(&text);
            let _ = parse_io_stat(&text, |_| {});
        }

        #[test]
        fn cpu_stat_round_trips(usage in any::<u64>(), user in any::<u64>(), periods in any::<u64>()) {
            let text = format!("usage_usec {usage}\nuser_usec {user}\nnr_periods {periods}\n");
            let (s, bad) = parse_cpu_stat(&text);
            prop_assert_eq!(bad, 0);
            prop_assert_eq!((s.usage_usec, s.user_usec, s.nr_periods), (Some(usage), Some(user), Some(periods)));
        }

        #[test]
        fn io_stat_round_trips(major in 0u32..4096, minor in 0u32..1_000_000, r in any::<u64>(), w in any::<u64>()) {
            let text = format!("{major}:{minor} rbytes={r} wbytes={w} rios=1 wios=2 dbytes=0 dios=0\n");
            let mut got = Vec::new();
            prop_assert_eq!(parse_io_stat(&text, |io| got.push(io)), 0);
            prop_assert_eq!(got, vec![DeviceIo { major, minor, read_bytes: r, write_bytes: w, reads: 1, writes: 2 }]);
        }
    }
}
