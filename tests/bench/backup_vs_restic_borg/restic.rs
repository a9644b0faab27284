//! restic (Debian's 0.14): a repository of format version 2, so its packs are compressed,
//! with `--compression auto` (zstd at its default level, skipped where it does not pay).
//! restic always encrypts and authenticates (AES-256-CTR with Poly1305-AES); it has no way
//! to turn that off, so it pays for cryptography the other two do not do.

use std::path::Path;
use std::process::Command;

use super::{Tool, ToolDir};

const RESTIC: &str = "/usr/bin/restic";
/// A fixed password: the repository is thrown away after the run.
const PASSWORD: &str = "muster-bench";

/// restic with its repository and cache in a folder of the run.
#[derive(Debug)]
pub struct Restic {
    dir: ToolDir,
}

impl Restic {
    /// restic using `dir`.
    pub fn new(dir: ToolDir) -> Self {
        Self { dir }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(RESTIC);
        cmd.env("RESTIC_PASSWORD", PASSWORD)
            .env("RESTIC_CACHE_DIR", self.dir.cache().join("restic"))
            .env("XDG_CACHE_HOME", self.dir.cache())
            .env_remove("RESTIC_REPOSITORY")
            .env_remove("RESTIC_PASSWORD_FILE")
            .env_remove("RESTIC_PASSWORD_COMMAND")
            .arg("--repo")
            .arg(self.dir.repo());
        cmd
    }
}

impl Tool for Restic {
    fn name(&self) -> &'static str {
        "restic"
    }

    fn dir(&self) -> &ToolDir {
        &self.dir
    }

    fn unavailable(&self) -> Option<String> {
        (!Path::new(RESTIC).is_file()).then(|| {
            format!("{RESTIC} is missing: apt-get install -y --no-install-recommends restic")
        })
    }

    fn version(&self) -> Command {
        let mut cmd = Command::new(RESTIC);
        cmd.arg("version");
        cmd
    }

    fn init(&self) -> Option<Command> {
        let mut cmd = self.command();
        cmd.args(["init", "--repository-version", "2"]);
        Some(cmd)
    }

    fn backup(&self, data: &Path, _label: &str) -> Command {
        let mut cmd = self.command();
        cmd.args(["backup", "--compression", "auto"]).arg(data);
        cmd
    }

    fn restore(&self, _label: &str, target: &Path) -> Command {
        let mut cmd = self.command();
        cmd.args(["restore", "latest", "--target"]).arg(target);
        cmd
    }
}
