//! `[[backup]]` tables in `agent.toml`: the backup sets this agent runs, and the only ones
//! the collector can start, verify or restore (it names a set, never paths or commands).

use std::path::{Path, PathBuf};

use muster_shared::config::Duration;
use serde::{Deserialize, Serialize};

use crate::backup::retention::RetentionPolicy;
use crate::backup::schedule::Schedule;

/// One backup set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSetConfig {
    /// The set's name: the snapshots' tag, the `backup` label of its series, and what the
    /// collector names.
    pub name: String,
    /// The repository folder. Default: `DATA_DIR/backup/NAME`. Relative paths are resolved
    /// against the config file's folder.
    #[serde(default)]
    pub repository: Option<PathBuf>,
    /// Encrypt the repository with the key in this file (32 bytes as hex; created with mode
    /// 0600 when the repository is created). Keep a copy elsewhere: without it the backups
    /// cannot be read.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Files and folders to back up.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Exclude patterns (a name at any depth; with `/`, a whole path).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Docker volumes by name (their mount point on this host is backed up).
    #[serde(default)]
    pub docker_volumes: Vec<String>,
    /// Commands whose output is stored as a file (`[[backup.command]]`).
    #[serde(default, rename = "command")]
    pub commands: Vec<CommandSourceConfig>,
    /// When it runs: `"0 3 * * *"`, `"@daily"`, `"every 6h"`. Without one it runs only when
    /// asked (the collector, or `muster-agent backup`).
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// Retention applied after each successful run (restic's `forget` rules).
    #[serde(default)]
    pub keep: Option<RetentionPolicy>,
    /// Prune after forgetting. Default true.
    #[serde(default = "yes")]
    pub prune: bool,
    /// zstd level for a repository this set creates. Default 3.
    #[serde(default = "default_compression")]
    pub compression: i32,
    /// A command run before the backup (program and arguments); a failure skips the run.
    #[serde(default)]
    pub pre_hook: Vec<String>,
    /// A command run after it, with `MUSTER_BACKUP_STATUS` = `success` or `failure`.
    #[serde(default)]
    pub post_hook: Vec<String>,
    /// How long a hook may run. Default 5m.
    #[serde(default = "default_hook_timeout")]
    pub hook_timeout: Duration,
    /// Folders the collector may restore this set into (each restore's target must be one of
    /// them or inside one). Empty: the collector cannot restore this set.
    #[serde(default)]
    pub restore_targets: Vec<PathBuf>,
}

/// `[[backup.command]]`: a command's standard output as one file of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSourceConfig {
    /// The file's name in the snapshot (`pg_dumpall.sql`).
    pub name: String,
    /// Program and arguments (no shell).
    pub run: Vec<String>,
    /// Killed, and the run failed, after this long. Default 1h.
    #[serde(default = "default_command_timeout")]
    pub timeout: Duration,
}

fn yes() -> bool {
    true
}

fn default_compression() -> i32 {
    crate::backup::repo::config::DEFAULT_COMPRESSION
}

fn default_hook_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_command_timeout() -> Duration {
    Duration::from_secs(3600)
}

impl BackupSetConfig {
    /// Resolves relative paths against the config file and defaults the repository.
    pub fn resolve(&mut self, config_path: &Path, data_dir: &Path) {
        self.repository = Some(match &self.repository {
            Some(r) => muster_shared::config::resolve_path(config_path, r),
            None => data_dir.join("backup").join(&self.name),
        });
        if let Some(k) = &mut self.key_file {
            *k = muster_shared::config::resolve_path(config_path, k);
        }
        for p in &mut self.restore_targets {
            *p = muster_shared::config::resolve_path(config_path, p);
        }
    }

    /// The set's key, when it is encrypted (`create`: make the key file if missing).
    pub fn master_key(
        &self,
        create: bool,
    ) -> Result<Option<crate::backup::crypto::MasterKey>, String> {
        self.key_file
            .as_deref()
            .map(|p| crate::backup::crypto::MasterKey::load(p, create))
            .transpose()
            .map_err(|e| e.to_string())
    }

    /// The repository folder (after [`BackupSetConfig::resolve`]).
    pub fn repository(&self) -> PathBuf {
        self.repository.clone().unwrap_or_default()
    }

    /// Whether `target` (absolute, normalized by the caller) is an allowed restore target.
    pub fn may_restore_into(&self, target: &Path) -> bool {
        target.is_absolute()
            && !target
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            && self
                .restore_targets
                .iter()
                .any(|allowed| target.starts_with(allowed))
    }
}

/// Every problem of the sets, each naming the set.
pub fn problems(sets: &[BackupSetConfig]) -> Vec<String> {
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, s) in sets.iter().enumerate() {
        let who = if s.name.is_empty() {
            format!("backup #{}", i + 1)
        } else {
            format!("backup {:?}", s.name)
        };
        let plain = !s.name.is_empty()
            && s.name.len() <= 64
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain {
            out.push(format!("{who}: name must be 1 to 64 of A-Z a-z 0-9 - _ ."));
        } else if !names.insert(s.name.as_str()) {
            out.push(format!("{who}: another backup set has the same name"));
        }
        if s.paths.is_empty() && s.docker_volumes.is_empty() && s.commands.is_empty() {
            out.push(format!(
                "{who}: has nothing to back up (paths, docker_volumes or command)"
            ));
        }
        for p in &s.paths {
            if !p.is_absolute() {
                out.push(format!("{who}: path {} must be absolute", p.display()));
            }
        }
        for c in &s.commands {
            if c.run.is_empty() {
                out.push(format!("{who}: command {:?} has an empty `run`", c.name));
            }
            if let Err(e) = crate::backup::tree::check_name(c.name.as_bytes()) {
                out.push(format!("{who}: command name: {e}"));
            }
        }
        if !(1..=19).contains(&s.compression) {
            out.push(format!(
                "{who}: compression {} is not in 1..=19",
                s.compression
            ));
        }
        if let Some(keep) = &s.keep {
            if let Err(e) = keep.validate() {
                out.push(format!("{who}: keep: {e}"));
            } else if keep.is_empty() {
                out.push(format!(
                    "{who}: keep has no rule (it would remove nothing; drop it)"
                ));
            }
        }
        for t in &s.restore_targets {
            if !t.is_absolute() {
                out.push(format!(
                    "{who}: restore target {} must be absolute",
                    t.display()
                ));
            }
        }
        if let Err(e) = crate::backup::excludes_valid(&s.exclude) {
            out.push(format!("{who}: {e}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<BackupSetConfig>, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            backup: Vec<BackupSetConfig>,
        }
        toml::from_str::<File>(text)
            .map(|f| f.backup)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_set_parses_and_validates() {
        let sets = parse(
            r#"
            [[backup]]
            name = "db"
            paths = ["/etc"]
            docker_volumes = ["pgdata"]
            schedule = "0 3 * * *"
            restore_targets = ["/srv/restore"]
            keep = { keep_daily = 7, keep_weekly = 4 }
            [[backup.command]]
            name = "all.sql"
            run = ["pg_dumpall"]
            timeout = "30m"
            "#,
        )
        .unwrap();
        assert!(problems(&sets).is_empty(), "{:?}", problems(&sets));
        assert!(sets[0].may_restore_into(Path::new("/srv/restore/x")));
        assert!(!sets[0].may_restore_into(Path::new("/srv/restore/../etc")));
        assert!(!sets[0].may_restore_into(Path::new("/etc")));
    }

    #[test]
    fn problems_name_the_set() {
        let sets = parse(
            r#"
            [[backup]]
            name = "a b"
            [[backup]]
            name = "x"
            paths = ["rel"]
            compression = 40
            exclude = ["a["]
            "#,
        )
        .unwrap();
        let p = problems(&sets).join("\n");
        assert!(p.contains("name must be"), "{p}");
        assert!(p.contains("nothing to back up"), "{p}");
        assert!(p.contains("backup \"x\": path rel must be absolute"), "{p}");
        assert!(p.contains("compression 40"), "{p}");
        assert!(p.contains("exclude"), "{p}");
        assert!(parse("[[backup]]\nname = \"x\"\nbogus = 1").is_err());
        assert!(parse("[[backup]]\nname = \"x\"\nschedule = \"61 * * * *\"").is_err());
    }
}
