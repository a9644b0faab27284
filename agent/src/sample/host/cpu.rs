//! The `cpu` sampler: seconds each CPU spent in each mode, from the `cpuN`
//! lines of `/proc/stat`.
//!
//! Emits `node_cpu_seconds_total{cpu,mode}` and
//! `node_cpu_guest_seconds_total{cpu,mode}` as node_exporter does, including
//! its guard against counters that jump backwards (iowait on some kernels, CPU
//! hotplug). Leaves out node_exporter's `node_cpu_info`, frequency, thermal
//! throttle and isolation series (`/proc/cpuinfo`, `/sys/devices/system/cpu`);
//! the other `/proc/stat` lines belong to the `stat` sampler.

use std::path::PathBuf;

use super::read::{as_text, parse_u64, read_into};
use crate::sample::paths::SamplePaths;
use crate::sample::series::{FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};

/// Clock ticks per second of `/proc/stat` (USER_HZ, what `getconf CLK_TCK`
/// prints). The kernel fixes it at 100 for user space on every architecture
/// Muster targets, whatever the internal HZ, so it is a constant rather than
/// a `sysconf` call.
pub const USER_HZ: f64 = 100.0;

/// The highest CPU number accepted; larger ones are malformed (Linux's
/// `NR_CPUS` tops out at 8192), so a corrupt line cannot grow the state.
const MAX_CPUS: usize = 1 << 16;

/// If idle goes back by this many seconds, the CPU was hot-plugged and its
/// counters restarted (node_exporter's `jumpBackSeconds`).
const JUMP_BACK_SECONDS: f64 = 3.0;

/// The fields of a `cpuN` line, in order: the eight modes of
/// `node_cpu_seconds_total`, then guest and guest_nice.
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];
const IDLE: usize = 3;
const GUEST_MODES: [&str; 2] = ["user", "nice"];

const SECONDS: FamilySpec<'static> = FamilySpec {
    name: "node_cpu_seconds_total",
    help: "Seconds the CPUs spent in each mode.",
    kind: Kind::Counter,
    labels: &["cpu", "mode"],
};
const GUEST_SECONDS: FamilySpec<'static> = FamilySpec {
    name: "node_cpu_guest_seconds_total",
    help: "Seconds the CPUs spent in guests (VMs) for each mode.",
    kind: Kind::Counter,
    labels: &["cpu", "mode"],
};

/// Seconds of one `cpuN` line: user, nice, system, idle, iowait, irq,
/// softirq, steal, guest, guest_nice. Older kernels print fewer fields; only
/// the first `present` are meaningful.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuSeconds {
    /// Seconds per field, in `/proc/stat` order.
    pub seconds: [f64; 10],
    /// How many fields the line had (4 to 10).
    pub present: usize,
}

/// Samples `/proc/stat` per CPU.
#[derive(Debug)]
pub struct CpuSampler {
    path: PathBuf,
    buf: Vec<u8>,
    /// Last emitted seconds per CPU number, for the backwards-jump guard.
    last: Vec<[f64; 10]>,
}

impl CpuSampler {
    /// Reads `stat` under `paths.proc`.
    pub fn new(paths: &SamplePaths) -> Self {
        Self {
            path: paths.proc_file("stat"),
            buf: Vec::new(),
            last: Vec::new(),
        }
    }
}

impl Sampler for CpuSampler {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        read_into(&self.path, &mut self.buf)?;
        let text = as_text(&self.buf);
        let seconds = out.family(&SECONDS);
        let guest = out.family(&GUEST_SECONDS);
        let last = &mut self.last;
        let malformed = parse_cpu_lines(&text, |cpu, line| {
            let Ok(index) = cpu.parse::<usize>() else {
                return;
            };
            if last.len() <= index {
                last.resize(index + 1, [0.0; 10]);
            }
            let kept = &mut last[index];
            guard_backwards(kept, line);
            for (mode, value) in MODES.iter().zip(kept.iter()).take(line.present) {
                out.set(seconds, &[cpu, mode], *value);
            }
            for (i, mode) in GUEST_MODES.iter().enumerate() {
                if line.present > MODES.len() + i {
                    out.set(guest, &[cpu, mode], kept[MODES.len() + i]);
                }
            }
        });
        out.malformed(malformed);
        Ok(())
    }
}

/// node_exporter's `updateCPUStats`: a counter only moves forward, except
/// that a large drop of idle means the CPU came back from hotplug and all its
/// counters restart.
fn guard_backwards(kept: &mut [f64; 10], line: &CpuSeconds) {
    if kept[IDLE] - line.seconds[IDLE] >= JUMP_BACK_SECONDS {
        *kept = [0.0; 10];
    }
    for (k, new) in kept.iter_mut().zip(line.seconds.iter()).take(line.present) {
        if *new >= *k {
            *k = *new;
        }
    }
}

/// Calls `each(cpu_number, seconds)` for every `cpuN` line of `/proc/stat`
/// text (the aggregate `cpu` line and other lines are ignored); returns the
/// number of malformed `cpu` lines skipped: a number that is not a CPU index
/// (up to 65535), fewer than 4 fields, or a field that is not a `u64`.
/// Fields past the tenth are ignored. Allocates nothing.
pub fn parse_cpu_lines(text: &str, mut each: impl FnMut(&str, &CpuSeconds)) -> u64 {
    let mut malformed = 0;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(cpu) = fields.next().and_then(|k| k.strip_prefix("cpu")) else {
            continue;
        };
        if cpu.is_empty() {
            continue; // the all-CPU total
        }
        let valid_cpu = cpu.bytes().all(|b| b.is_ascii_digit())
            && cpu.parse::<usize>().is_ok_and(|n| n < MAX_CPUS);
        match valid_cpu.then(|| parse_seconds(fields)).flatten() {
            Some(seconds) => each(cpu, &seconds),
            None => malformed += 1,
        }
    }
    malformed
}

fn parse_seconds<'a>(fields: impl Iterator<Item = &'a str>) -> Option<CpuSeconds> {
    let mut line = CpuSeconds::default();
    for (slot, field) in line.seconds.iter_mut().zip(fields) {
        *slot = parse_u64(field)? as f64 / USER_HZ;
        line.present += 1;
    }
    (line.present >= 4).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::host::testkit::{fixture, live_names, render, round, write};

    #[test]
    fn a_cpu_line_becomes_seconds_per_mode() {
        let mut got = Vec::new();
        let malformed =
            parse_cpu_lines("cpu0 77230 10 13424 77288 522 3 47 31 20 1\n", |cpu, s| {
                got.push((cpu.to_owned(), *s))
            });
        assert_eq!(malformed, 0);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "0");
        assert_eq!(got[0].1.present, 10);
        assert_eq!(
            got[0].1.seconds,
            [
                772.3, 0.1, 134.24, 772.88, 5.22, 0.03, 0.47, 0.31, 0.2, 0.01
            ]
        );
    }

    #[test]
    fn fixture_sample_gives_exact_series() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/stat", &fixture("proc_stat"));
        let mut sampler = CpuSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        let lines = render(&table);
        let expected = [
            r#"node_cpu_guest_seconds_total{cpu="0",mode="nice"} 0.01"#,
            r#"node_cpu_guest_seconds_total{cpu="0",mode="user"} 0.2"#,
            r#"node_cpu_guest_seconds_total{cpu="1",mode="nice"} 0.02"#,
            r#"node_cpu_guest_seconds_total{cpu="1",mode="user"} 0.3"#,
            r#"node_cpu_seconds_total{cpu="0",mode="idle"} 772.88"#,
            r#"node_cpu_seconds_total{cpu="0",mode="iowait"} 5.22"#,
            r#"node_cpu_seconds_total{cpu="0",mode="irq"} 0.03"#,
            r#"node_cpu_seconds_total{cpu="0",mode="nice"} 0.1"#,
            r#"node_cpu_seconds_total{cpu="0",mode="softirq"} 0.47"#,
            r#"node_cpu_seconds_total{cpu="0",mode="steal"} 0.31"#,
            r#"node_cpu_seconds_total{cpu="0",mode="system"} 134.24"#,
            r#"node_cpu_seconds_total{cpu="0",mode="user"} 772.3"#,
            r#"node_cpu_seconds_total{cpu="1",mode="idle"} 685.16"#,
            r#"node_cpu_seconds_total{cpu="1",mode="iowait"} 8.1"#,
            r#"node_cpu_seconds_total{cpu="1",mode="irq"} 0.04"#,
            r#"node_cpu_seconds_total{cpu="1",mode="nice"} 0.02"#,
            r#"node_cpu_seconds_total{cpu="1",mode="softirq"} 6.52"#,
            r#"node_cpu_seconds_total{cpu="1",mode="steal"} 0.36"#,
            r#"node_cpu_seconds_total{cpu="1",mode="system"} 152.1"#,
            r#"node_cpu_seconds_total{cpu="1",mode="user"} 834.53"#,
        ];
        assert_eq!(lines, expected);
        assert_eq!(table.malformed_count(), 0);
    }

    #[test]
    fn malformed_cpu_lines_are_counted_and_good_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/stat", &fixture("proc_stat_malformed"));
        let mut sampler = CpuSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        // cpu1 truncated, cpu2 non-numeric, cpu3 overflows u64, cpuX, cpu4294967296.
        assert_eq!(table.malformed_count(), 5);
        let lines = render(&table);
        assert!(lines.contains(&r#"node_cpu_seconds_total{cpu="5",mode="steal"} 8"#.to_owned()));
        assert!(lines.contains(&r#"node_cpu_seconds_total{cpu="0",mode="user"} 772.3"#.to_owned()));
        // cpu5 has no guest fields, so only cpu0 has guest series: 8 + 2 + 8.
        assert_eq!(lines.len(), 18, "{lines:#?}");
        assert_eq!(parse_cpu_lines("", |_, _| panic!("no lines")), 0);
    }

    #[test]
    fn counters_never_go_backwards_unless_hotplugged() {
        let mut kept = [0.0; 10];
        let line = |idle: f64, iowait: f64| {
            let mut s = CpuSeconds {
                seconds: [0.0; 10],
                present: 10,
            };
            s.seconds[IDLE] = idle;
            s.seconds[4] = iowait;
            s
        };
        guard_backwards(&mut kept, &line(100.0, 10.0));
        guard_backwards(&mut kept, &line(101.0, 9.5));
        assert_eq!((kept[IDLE], kept[4]), (101.0, 10.0), "iowait dip ignored");
        guard_backwards(&mut kept, &line(5.0, 1.0));
        assert_eq!((kept[IDLE], kept[4]), (5.0, 1.0), "hotplug resets");
    }

    #[test]
    fn steady_state_creates_no_new_series() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/stat", &fixture("proc_stat"));
        let mut sampler = CpuSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        let (live, families) = (table.live_count(), table.families().len());
        let capacity = sampler.buf.capacity();
        round(&mut sampler, &mut table).unwrap();
        assert_eq!(table.live_count(), live);
        assert_eq!(table.families().len(), families);
        assert_eq!(sampler.buf.capacity(), capacity, "read buffer reused");
        assert_eq!(table.live().count(), 20);
    }

    #[test]
    fn live_host_has_cpu_seconds() {
        let mut sampler = CpuSampler::new(&SamplePaths::default());
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        assert!(live_names(&table).contains(&"node_cpu_seconds_total".to_owned()));
        let modes: Vec<String> = table
            .live()
            .filter(|s| s.values.first().is_some_and(|c| &**c == "0"))
            .map(|s| s.values[1].to_string())
            .collect();
        for mode in MODES {
            assert!(modes.iter().any(|m| m == mode), "mode {mode} for cpu 0");
        }
    }
}
