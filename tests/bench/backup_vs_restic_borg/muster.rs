//! Muster: `muster-agent backup` from the release build, with the repository and `--cache-dir`
//! in a folder of the run. `backup run` creates the repository when it is missing, so there
//! is no separate init; with `--json` it prints one object (snapshot id, files, dirs,
//! bytes_read, bytes_added, duration_seconds), which the benchmark records beside its own
//! measurements. No encryption yet.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{Tool, ToolDir, child};

/// How long `muster-agent backup --help` may take.
const HELP_LIMIT: Duration = Duration::from_secs(30);

/// Muster's agent with its repository and cache in a folder of the run.
#[derive(Debug)]
pub struct Muster {
    dir: ToolDir,
}

impl Muster {
    /// Muster using `dir`.
    pub fn new(dir: ToolDir) -> Self {
        Self { dir }
    }

    fn command(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new(super::common::profile_dir().join("muster-agent"));
        cmd.env("XDG_CACHE_HOME", self.dir.cache())
            .args(["backup", subcommand, "--repo"])
            .arg(self.dir.repo())
            .arg("--cache-dir")
            .arg(self.dir.cache().join("muster"));
        cmd
    }
}

impl Tool for Muster {
    fn name(&self) -> &'static str {
        "muster"
    }

    fn dir(&self) -> &ToolDir {
        &self.dir
    }

    fn unavailable(&self) -> Option<String> {
        let mut help = Command::new(super::common::profile_dir().join("muster-agent"));
        help.args(["backup", "--help"]);
        let found = child::measure("backup-help", &help, &self.dir.logs(), HELP_LIMIT);
        match found {
            Ok(out) if out.stdout.contains("restore") => None,
            Ok(_) => Some(
                "muster-agent has no backup command yet (`muster-agent backup --help` lists no restore)"
                    .to_owned(),
            ),
            Err(e) => {
                // clap's first line names the problem ("unrecognized subcommand 'backup'").
                let text = format!("{e:#}");
                let line = text
                    .lines()
                    .find(|l| l.starts_with("error:"))
                    .or_else(|| text.lines().last())
                    .unwrap_or_default()
                    .to_owned();
                Some(format!(
                    "muster-agent has no backup command yet (`muster-agent backup --help`: {line})"
                ))
            }
        }
    }

    fn version(&self) -> Command {
        let mut cmd = Command::new(super::common::profile_dir().join("muster-agent"));
        cmd.arg("--version");
        cmd
    }

    fn backup(&self, data: &Path, _label: &str) -> Command {
        let mut cmd = self.command("run");
        cmd.arg("--json").arg(data);
        cmd
    }

    fn restore(&self, _label: &str, target: &Path) -> Command {
        let mut cmd = self.command("restore");
        cmd.args(["latest", "--target"]).arg(target);
        cmd
    }

    fn backup_note(&self, stdout: &str) -> Option<String> {
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))?;
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(report) => Some(format!("reported {report}")),
            Err(e) => Some(format!("--json printed no JSON object ({e}): {line}")),
        }
    }
}
