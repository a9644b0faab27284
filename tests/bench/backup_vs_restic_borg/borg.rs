//! borg (Debian's 1.2): `--compression zstd,3` and `--encryption none`, because Muster's
//! repository has no encryption yet; with `repokey` borg would also pay for AES-CTR and
//! HMAC-SHA256 (or BLAKE2b). borg is single-threaded.
//!
//! Its cache (chunks index, files cache), config and security folders are all in the run's
//! folder; `extract` writes into its working directory, so it runs in the restore target.

use std::path::Path;
use std::process::Command;

use super::{Tool, ToolDir};

const BORG: &str = "/usr/bin/borg";

/// borg with its repository, cache and config in a folder of the run.
#[derive(Debug)]
pub struct Borg {
    dir: ToolDir,
}

impl Borg {
    /// borg using `dir`.
    pub fn new(dir: ToolDir) -> Self {
        Self { dir }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BORG);
        cmd.env("BORG_CACHE_DIR", self.dir.cache().join("borg"))
            .env("XDG_CACHE_HOME", self.dir.cache())
            .env("BORG_CONFIG_DIR", self.dir.config().join("borg"))
            .env("BORG_SECURITY_DIR", self.dir.config().join("borg-security"))
            .env("BORG_BASE_DIR", self.dir.config())
            .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
            .env_remove("BORG_REPO")
            .env_remove("BORG_PASSPHRASE");
        cmd
    }

    fn archive(&self, label: &str) -> String {
        format!("{}::{label}", self.dir.repo().display())
    }
}

impl Tool for Borg {
    fn name(&self) -> &'static str {
        "borg"
    }

    fn dir(&self) -> &ToolDir {
        &self.dir
    }

    fn unavailable(&self) -> Option<String> {
        (!Path::new(BORG).is_file()).then(|| {
            format!("{BORG} is missing: apt-get install -y --no-install-recommends borgbackup")
        })
    }

    fn version(&self) -> Command {
        let mut cmd = Command::new(BORG);
        cmd.arg("--version");
        cmd
    }

    fn init(&self) -> Option<Command> {
        let mut cmd = self.command();
        cmd.args(["init", "--encryption", "none"])
            .arg(self.dir.repo());
        Some(cmd)
    }

    fn backup(&self, data: &Path, label: &str) -> Command {
        let mut cmd = self.command();
        cmd.args(["create", "--stats", "--compression", "zstd,3"])
            .arg(self.archive(label))
            .arg(data);
        cmd
    }

    fn restore(&self, label: &str, target: &Path) -> Command {
        let mut cmd = self.command();
        cmd.arg("extract")
            .arg(self.archive(label))
            .current_dir(target);
        cmd
    }
}
