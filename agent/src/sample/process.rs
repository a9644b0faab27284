//! The agent's own process: the `process_*` series every Prometheus client
//! library exports (resident memory, CPU seconds, open file descriptors), so
//! the agent's cost is visible next to what it measures.

use std::path::PathBuf;

use super::paths::SamplePaths;
use super::series::{FamilySpec, Kind, SeriesTable};
use super::{SampleError, Sampler};

/// Clock ticks per second for `/proc/*/stat` times (USER_HZ, 100 on every
/// Linux architecture Muster targets).
const TICKS_PER_SECOND: f64 = 100.0;
/// The kernel's page size, for the RSS field of `/proc/self/stat` (4 KiB on
/// most hosts, 64 KiB on some arm64 kernels).
fn page_size() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096.0, |n| n as f64)
}

const CPU: FamilySpec<'static> = FamilySpec {
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds.",
    kind: Kind::Counter,
    labels: &[],
};
const RSS: FamilySpec<'static> = FamilySpec {
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    kind: Kind::Gauge,
    labels: &[],
};
const VSZ: FamilySpec<'static> = FamilySpec {
    name: "process_virtual_memory_bytes",
    help: "Virtual memory size in bytes.",
    kind: Kind::Gauge,
    labels: &[],
};
const START: FamilySpec<'static> = FamilySpec {
    name: "process_start_time_seconds",
    help: "Start time of the process since unix epoch in seconds.",
    kind: Kind::Gauge,
    labels: &[],
};
const FDS: FamilySpec<'static> = FamilySpec {
    name: "process_open_fds",
    help: "Number of open file descriptors.",
    kind: Kind::Gauge,
    labels: &[],
};
const THREADS: FamilySpec<'static> = FamilySpec {
    name: "process_threads",
    help: "Number of OS threads in the process.",
    kind: Kind::Gauge,
    labels: &[],
};

/// Samples `/proc/self`.
#[derive(Debug)]
pub struct ProcessSampler {
    stat_path: PathBuf,
    fd_path: PathBuf,
    boot_time_path: PathBuf,
    buffer: String,
    boot_time: Option<f64>,
    page_size: f64,
}

/// What `/proc/<pid>/stat` tells about a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStat {
    /// User + system CPU seconds.
    pub cpu_seconds: f64,
    /// Seconds after boot the process started.
    pub start_after_boot_seconds: f64,
    /// Virtual memory in bytes.
    pub virtual_bytes: f64,
    /// Resident memory in bytes.
    pub resident_bytes: f64,
    /// Threads.
    pub threads: f64,
}

impl ProcessSampler {
    /// Reads this process under `paths.proc`.
    pub fn new(paths: &SamplePaths) -> Self {
        Self {
            stat_path: paths.proc_file("self/stat"),
            fd_path: paths.proc_file("self/fd"),
            boot_time_path: paths.proc_file("stat"),
            buffer: String::new(),
            boot_time: None,
            page_size: page_size(),
        }
    }
}

impl Sampler for ProcessSampler {
    fn name(&self) -> &'static str {
        "process"
    }

    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        if self.boot_time.is_none() {
            read_into(&self.boot_time_path, &mut self.buffer)?;
            self.boot_time = self
                .buffer
                .lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse().ok());
        }
        read_into(&self.stat_path, &mut self.buffer)?;
        let stat =
            parse_proc_stat(&self.buffer, self.page_size).ok_or_else(|| SampleError::Parse {
                path: self.stat_path.clone(),
                reason: "unexpected format".to_owned(),
            })?;
        out.set_spec(&CPU, &[], stat.cpu_seconds);
        out.set_spec(&RSS, &[], stat.resident_bytes);
        out.set_spec(&VSZ, &[], stat.virtual_bytes);
        out.set_spec(&THREADS, &[], stat.threads);
        if let Some(boot) = self.boot_time {
            out.set_spec(&START, &[], boot + stat.start_after_boot_seconds);
        }
        let fds = std::fs::read_dir(&self.fd_path)
            .map_err(|e| SampleError::read(&self.fd_path, e))?
            .count();
        out.set_spec(&FDS, &[], fds as f64);
        Ok(())
    }
}

fn read_into(path: &std::path::Path, buffer: &mut String) -> Result<(), SampleError> {
    use std::io::Read;
    buffer.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(buffer))
        .map(|_| ())
        .map_err(|e| SampleError::read(path, e))
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
pub fn parse_proc_stat(text: &str, page_size: f64) -> Option<ProcStat> {
    let (_, rest) = text.rsplit_once(')')?;
    // rest starts at field 3 (state); field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse::<f64>().ok() };
    Some(ProcStat {
        cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
        threads: field(20)?,
        start_after_boot_seconds: field(22)? / TICKS_PER_SECOND,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "4242 (my (weird) agent) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 7 0 12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_proc_stat(line, 4096.0).unwrap();
        assert_eq!(stat.cpu_seconds, 4.0);
        assert_eq!(stat.threads, 7.0);
        assert_eq!(stat.start_after_boot_seconds, 123.45);
        assert_eq!(stat.virtual_bytes, 104_857_600.0);
        assert_eq!(stat.resident_bytes, 2560.0 * 4096.0);
    }

    #[test]
    fn truncated_stat_is_none_not_a_panic() {
        assert_eq!(parse_proc_stat("1 (x) S 1 2", 4096.0), None);
        assert_eq!(parse_proc_stat("", 4096.0), None);
        assert_eq!(parse_proc_stat("no parens at all", 4096.0), None);
    }

    #[test]
    fn samples_this_process() {
        let mut sampler = ProcessSampler::new(&SamplePaths::default());
        let mut table = SeriesTable::new();
        table.begin_round();
        sampler.sample(&mut table).unwrap();
        let names: Vec<_> = table
            .live()
            .filter_map(|s| table.family_of(s.family).map(|f| f.name.to_string()))
            .collect();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        let rss = table
            .live()
            .find(|s| {
                table
                    .family_of(s.family)
                    .is_some_and(|f| &*f.name == "process_resident_memory_bytes")
            })
            .map(|s| s.value)
            .unwrap();
        assert!(rss > 0.0);
    }
}
