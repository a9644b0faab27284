//! The `exec` kind: run a command written in `agent.toml` and judge its exit code.
//!
//! **Only commands from this host's `agent.toml` run.** The command is the probe's `target`
//! (an absolute path, checked at load) with `[probe.exec] args`; nothing the collector sends
//! can name, change or add one, and no shell is involved unless the file names one.
//!
//! The command runs with an empty environment plus `PATH=/usr/sbin:/usr/bin:/sbin:/bin` and
//! `[probe.exec] env`, in `/`, with standard input closed, in its own process group. Its
//! standard output (the first [`MAX_OUTPUT_BYTES`]) is `[BODY]` for conditions; standard
//! error is discarded. The run fails when the command cannot start, is killed by a signal,
//! or exits with a code not in `valid_exit_codes` (default `[0]`).
//!
//! When the command exits, whatever it left running in its process group is killed with
//! SIGKILL; when the run is cut short (its timeout, or the agent stopping) the whole group
//! is. A probe's command leaves nothing behind. (Between the command's exit being reaped and
//! that kill, its pid could in theory be reused as a new group's id; that needs the pid
//! space to wrap within microseconds.) A process that leaves the group (`setsid`) is not
//! followed; if it keeps the output open, the run ends at its timeout.

use std::collections::BTreeMap;
use std::process::Stdio;

use muster_shared::config::Secret;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::config::ProbeConfig;
use super::families::EXIT_CODE;
use super::{Outcome, Prober};

/// The most of a command's output kept.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// The `PATH` a command runs with.
pub const COMMAND_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// `[probe.exec]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecOptions {
    /// Arguments after the command. Default none.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables, besides `PATH`. Values are kept secret (a password for the
    /// check): never logged or shown. Default none.
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// Exit codes that mean success. Default `[0]`.
    #[serde(default = "default_valid_exit_codes")]
    pub valid_exit_codes: Vec<i32>,
}

fn default_valid_exit_codes() -> Vec<i32> {
    vec![0]
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            env: BTreeMap::new(),
            valid_exit_codes: default_valid_exit_codes(),
        }
    }
}

impl ExecOptions {
    /// Adds this table's problems to `out`, each prefixed with `who`.
    pub fn problems(&self, who: &str, out: &mut Vec<String>) {
        if self.valid_exit_codes.is_empty() {
            out.push(format!(
                "{who}: valid_exit_codes must list at least one code"
            ));
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                out.push(format!("{who}: env: {name:?} is not a variable name"));
            }
        }
        if self
            .args
            .iter()
            .map(String::as_str)
            .chain(self.env.values().map(Secret::expose))
            .any(|s| s.contains('\0'))
        {
            out.push(format!(
                "{who}: args and env values must not hold NUL characters"
            ));
        }
    }
}

/// An exec probe.
#[derive(Debug)]
pub struct ExecProber {
    program: String,
    options: ExecOptions,
}

impl ExecProber {
    /// The probe of `config`.
    pub fn new(config: &ProbeConfig) -> Self {
        Self {
            program: config.target.clone(),
            options: config.exec.clone().unwrap_or_default(),
        }
    }
}

/// Kills a process group with SIGKILL when dropped, unless disarmed (`.0 = None`).
struct GroupKill(Option<nix::unistd::Pid>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            // ESRCH (already gone) is the normal case for a group that finished on its own.
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Prober for ExecProber {
    async fn probe(&self, out: &mut Outcome) {
        out.set(&EXIT_CODE, -1.0);
        let mut command = Command::new(&self.program);
        command
            .args(&self.options.args)
            .env_clear()
            .env("PATH", COMMAND_PATH)
            .envs(self.options.env.iter().map(|(k, v)| (k, v.expose())))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                return out.fail(match err.kind() {
                    std::io::ErrorKind::NotFound => "command not found",
                    std::io::ErrorKind::PermissionDenied => "permission denied",
                    _ => "cannot start the command",
                });
            }
        };
        // The group's id is the child's pid (`process_group(0)`).
        let group = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(nix::unistd::Pid::from_raw);
        let mut guard = GroupKill(group);
        let stdout = child.stdout.take();
        let mut output = Vec::new();
        let waited = async {
            let status = child.wait().await;
            // Whatever the command left in its group goes with it; then its output ends.
            drop(GroupKill(group));
            status
        };
        let (status, ()) = tokio::join!(waited, read_bounded(stdout, &mut output));
        guard.0 = None;
        out.facts.body = Some(String::from_utf8_lossy(&output).into_owned());
        let status = match status {
            Ok(status) => status,
            Err(_) => return out.fail("waiting for the command failed"),
        };
        match status.code() {
            Some(code) => {
                out.set(&EXIT_CODE, f64::from(code));
                out.facts.exit_code = Some(code);
                if !self.options.valid_exit_codes.contains(&code) {
                    out.fail(format!("exit code {code}"));
                }
            }
            None => {
                use std::os::unix::process::ExitStatusExt;
                let signal = status.signal().unwrap_or_default();
                out.fail(format!("killed by signal {signal}"));
            }
        }
    }
}

/// Reads all of `stdout`, keeping the first [`MAX_OUTPUT_BYTES`] (the rest is drained so
/// the command never blocks on a full pipe).
async fn read_bounded(stdout: Option<tokio::process::ChildStdout>, output: &mut Vec<u8>) {
    let Some(mut stdout) = stdout else {
        return;
    };
    let mut chunk = [0u8; 8192];
    loop {
        match stdout.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = MAX_OUTPUT_BYTES.saturating_sub(output.len());
                output.extend_from_slice(chunk.get(..n.min(room)).unwrap_or_default());
            }
        }
    }
}

#[cfg(test)]
mod tests;
