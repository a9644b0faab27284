//! Starting `muster-loadgen` (tests/src/bin/muster-loadgen.rs) and talking to it: its
//! manifest (ports, once serving), its clock (SIGUSR1 starts it, SIGUSR2 freezes it) and
//! its final report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use muster_tests::Proc;
use nix::sys::signal::Signal;

/// The load generator's binary, built with this benchmark.
pub const BIN: &str = env!("CARGO_BIN_EXE_muster-loadgen");

/// A running load generator; stopped by PID when dropped.
#[derive(Debug)]
pub struct Loadgen {
    /// The process.
    pub proc: Proc,
    /// Its `--out` folder.
    pub out: PathBuf,
    /// Port of host `i`'s listener.
    pub ports: Vec<u16>,
}

impl Loadgen {
    /// Starts `muster-loadgen MODE --out DIR ARGS..` and waits (at most `limit`) for its
    /// manifest: every listener bound and served, every host enrolled in agent mode.
    pub fn start(mode: &str, dir: &Path, args: &[String], limit: Duration) -> anyhow::Result<Self> {
        let out = dir.join("loadgen");
        let mut proc = Proc::start(
            "muster-loadgen",
            Command::new(BIN)
                .arg(mode)
                .arg("--out")
                .arg(&out)
                .args(args),
            dir.join(format!("loadgen-{mode}.log")),
        );
        let started = Instant::now();
        let manifest = out.join("manifest.json");
        while !manifest.is_file() {
            if let Some(status) = proc.exited() {
                bail!("muster-loadgen exited with {status}:\n{}", proc.log());
            }
            if started.elapsed() > limit {
                bail!(
                    "muster-loadgen not serving within {limit:?}:\n{}",
                    proc.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&manifest)?).context("manifest.json")?;
        let ports = manifest["ports"]
            .as_array()
            .context("manifest has no ports")?
            .iter()
            .map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok()))
            .collect::<Option<Vec<u16>>>()
            .context("manifest ports")?;
        eprintln!(
            "collector_vs_prometheus: muster-loadgen {mode} serving {} hosts after {:.1} s",
            ports.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(Self { proc, out, ports })
    }

    /// Starts the round clock (agent mode); returns its start, ms since the epoch.
    pub fn start_clock(&self) -> anyhow::Result<u64> {
        self.proc.signal(Signal::SIGUSR1);
        self.wait_clock(|clock| clock["start_ms"].as_u64())
    }

    /// Freezes the clock; returns the last round served.
    pub fn freeze(&self) -> anyhow::Result<i64> {
        self.proc.signal(Signal::SIGUSR2);
        self.wait_clock(|clock| clock["frozen_round"].as_i64())
    }

    fn wait_clock<T>(&self, read: impl Fn(&serde_json::Value) -> Option<T>) -> anyhow::Result<T> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            let clock = std::fs::read_to_string(self.out.join("clock.json"))
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
            if let Some(value) = clock.as_ref().and_then(&read) {
                return Ok(value);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "muster-loadgen did not update clock.json:\n{}",
            self.proc.log()
        )
    }

    /// CPU seconds so far.
    pub fn cpu(&self) -> f64 {
        super::measure::cpu(self.proc.pid()).unwrap_or(0.0)
    }

    /// Stops it (SIGTERM) and returns its final report line.
    pub fn stop(mut self) -> String {
        self.proc.stop();
        self.proc
            .log()
            .lines()
            .rev()
            .find(|l| l.contains("stopped;"))
            .unwrap_or("(no report)")
            .to_owned()
    }
}
