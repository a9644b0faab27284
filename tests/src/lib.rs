//! Test kit for Muster's end-to-end tests: find the built binaries, start
//! them on loopback ports in temporary folders, wait for conditions with a
//! deadline, and stop every process by its PID.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, part of
//! the README's test command): a test crate cannot build another package's
//! binaries itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod agent;
pub mod alertmanager;
pub mod collector;
pub mod docker;
pub mod fake_agent;
pub mod loadgen;
pub mod timeline;
pub mod tmpfs;
pub mod webhook;

pub use agent::AgentDir;
pub use collector::{Collector, CollectorConfig, CollectorOptions, FakeIdentity, percent_encode};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// Path of a workspace binary (`muster-agent`, `muster-collector`).
pub fn bin(name: &str) -> PathBuf {
    // The test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> folder");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a command to completion with a deadline, capturing its output.
pub fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + WAIT;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command did not finish within {WAIT:?}: {command:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` until it returns `Some`, failing the test after [`WAIT`]
/// with a message naming what never happened.
pub fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_within(WAIT, what, check)
}

/// [`wait_for`] with another limit, for conditions bound to a clock the test
/// does not control (a chunk window's end).
pub fn wait_within<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "never happened within {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A started process, stopped by PID (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    /// Its stderr, in a file (read it with [`Proc::log`]).
    pub log_path: PathBuf,
    name: String,
}

impl Proc {
    /// Starts `command`, logging stderr and stdout to `log_path`.
    pub fn start(name: &str, command: &mut Command, log_path: PathBuf) -> Self {
        let log = std::fs::File::create(&log_path).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            child,
            log_path,
            name: name.to_owned(),
        }
    }

    /// Its PID.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// What it wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether it has exited; reaps it.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Sends `signal` to it.
    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.pid()), signal);
    }

    /// SIGTERM, then waits for the exit (SIGKILL after [`WAIT`]).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if Instant::now() > deadline {
                eprintln!("{} ignored SIGTERM; killing\n{}", self.name, self.log());
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.signal(Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// True when a process with this PID exists (zombies count as gone).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A blocking HTTP client for tests, trusting the fleet CA when given.
pub fn http_client(ca_pem: Option<&str>) -> reqwest::Client {
    install_crypto();
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy();
    if let Some(ca) = ca_pem {
        let config =
            muster_shared::tls::client_config(ca, None, muster_shared::tls::PeerPolicy::Collector)
                .unwrap();
        builder = builder.tls_backend_preconfigured((*config).clone());
    } else {
        let config =
            muster_shared::tls::pinned_client_config("00".repeat(32).parse().unwrap()).unwrap();
        builder = builder.tls_backend_preconfigured((*config).clone());
    }
    builder.build().unwrap()
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A runtime for tests that call async clients from sync test functions.
pub fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    )
}

/// Runs `muster-collector ARGS` to completion.
pub fn collector_cli(args: &[&str]) -> Output {
    run(Command::new(bin("muster-collector")).args(args))
}

/// Runs `muster-agent ARGS` to completion.
pub fn agent_cli(args: &[&str]) -> Output {
    run(Command::new(bin("muster-agent")).args(args))
}

/// Whether tests that need an external tool must fail instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Finds an external tool on PATH; `None` means skip (but panics in CI).
pub fn require_tool(name: &str, why: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is required in CI ({why}) but is not installed"
        );
        eprintln!("SKIPPED: {name} is not installed ({why})");
    }
    found
}

/// Runs `promtool check metrics` on `text`: `None` when promtool is missing
/// (skip; panics in CI), else whether it passed and its report lines.
pub fn promtool_check_metrics(text: &str, why: &str) -> Option<(bool, Vec<String>)> {
    use std::io::Write;
    let promtool = require_tool("promtool", why)?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    Some((out.status.success(), lines))
}
