//! Runs one command of the benchmark as a child under GNU time (`/usr/bin/time -f "%U %S %M"`),
//! bounded by a time limit: wall time from our clock, CPU seconds and peak RSS (`%M`, KiB,
//! the largest resident set of the command and the children it waited for) from time's
//! report. The tests crate denies unsafe code, so `wait4` is out; GNU time does the same
//! `wait4` for us.
//!
//! A child past its limit is killed with its descendants (the tool under time, and whatever
//! the tool started), each by its PID, found through `/proc/<pid>/task/*/children`. The
//! children stay in the benchmark's process group, so Ctrl-C reaches the tools too (GNU time
//! ignores it while it waits). stdout and stderr go to files in the tool's log folder, named
//! after the step, so a failure can quote them and `MUSTER_BENCH_KEEP=1` keeps them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// GNU time, Debian's `time` package (bash's `time` keyword has no `-o`).
pub const GNU_TIME: &str = "/usr/bin/time";
/// The longest any one child may run, unless `MUSTER_BENCH_LIMIT_SECONDS` says otherwise.
const DEFAULT_LIMIT: Duration = Duration::from_secs(600);

/// The longest any one tool's step may run: `MUSTER_BENCH_LIMIT_SECONDS`, default 600.
pub fn limit() -> Duration {
    std::env::var("MUSTER_BENCH_LIMIT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(DEFAULT_LIMIT, Duration::from_secs)
}
/// How often a running child is polled; bounds the error of the wall time.
const POLL: Duration = Duration::from_millis(5);

/// What one finished child cost.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Wall time from spawn to exit.
    pub seconds: f64,
    /// User + system CPU of the command and its waited-for children.
    pub cpu_seconds: f64,
    /// Peak resident set size (GNU time's `%M`), in bytes.
    pub peak_rss_bytes: u64,
    /// What it printed on stdout.
    pub stdout: String,
}

/// Runs `command` under GNU time within `limit`; `label` names its log files in `logs`
/// (`<label>.stdout`, `.stderr`, `.time`). Errors when it cannot start, exits non-zero
/// (quoting the end of its stderr) or runs past `limit` (then its process group is killed).
pub fn measure(
    label: &str,
    command: &Command,
    logs: &Path,
    limit: Duration,
) -> anyhow::Result<Measured> {
    std::fs::create_dir_all(logs).with_context(|| format!("create {}", logs.display()))?;
    let log = |ext: &str| logs.join(format!("{label}.{ext}"));
    let (stdout_path, stderr_path, time_path) = (log("stdout"), log("stderr"), log("time"));
    let mut timed = Command::new(GNU_TIME);
    timed
        .args(["-f", "%U %S %M", "-o"])
        .arg(&time_path)
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        timed.current_dir(dir);
    }
    let create = |path: &PathBuf| {
        std::fs::File::create(path).with_context(|| format!("create {}", path.display()))
    };
    timed
        .stdin(Stdio::null())
        .stdout(create(&stdout_path)?)
        .stderr(create(&stderr_path)?);

    let started = Instant::now();
    let mut child = timed
        .spawn()
        .with_context(|| format!("{label}: cannot start {}", describe(command)))?;
    let status = loop {
        if let Some(status) = child.try_wait().context("wait for the child")? {
            break status;
        }
        if started.elapsed() > limit {
            let pid = i32::try_from(child.id()).expect("PIDs fit in i32");
            let mut doomed = descendants(pid);
            doomed.push(pid);
            for pid in &doomed {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            let _ = child.wait();
            bail!(
                "{label}: killed after {limit:?} with its descendants (PIDs {doomed:?}): {}",
                describe(command)
            );
        }
        std::thread::sleep(POLL);
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!(
            "{label}: {} exited with {status}; end of its stderr:\n{}",
            describe(command),
            tail(
                &std::fs::read_to_string(&stderr_path).unwrap_or_default(),
                20
            )
        );
    }
    let report = std::fs::read_to_string(&time_path)
        .with_context(|| format!("read {}", time_path.display()))?;
    let (cpu_seconds, peak_rss_bytes) = parse_time_report(&report)
        .with_context(|| format!("{label}: unreadable GNU time report {report:?}"))?;
    let stdout = std::fs::read_to_string(&stdout_path)
        .with_context(|| format!("read {}", stdout_path.display()))?;
    Ok(Measured {
        seconds,
        cpu_seconds,
        peak_rss_bytes,
        stdout,
    })
}

/// `(user + system seconds, peak RSS bytes)` from the last line of a report written with
/// `-f "%U %S %M"` (time puts "Command exited with non-zero status" lines before it).
pub fn parse_time_report(report: &str) -> Option<(f64, u64)> {
    let line = report.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut fields = line.split_whitespace();
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    let kib: u64 = fields.next()?.parse().ok()?;
    Some((user + system, kib * 1024))
}

/// Every descendant of `pid`, children before grandchildren (all listed before any is
/// killed, so a child killed first cannot hide its own children by being reaped).
fn descendants(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let mut queue = std::collections::VecDeque::from([pid]);
    while let Some(parent) = queue.pop_front() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                found.push(child);
                queue.push_back(child);
            }
        }
    }
    found
}

/// The program and its arguments, for messages.
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
