//! One run of a backup set, on the calling (blocking) thread: pre hook, backup, retention
//! and prune, post hook. Also verify and restore of a set's repository.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::config::BackupSetConfig;
use crate::backup::archiver::{self, BackupRequest, NoProgress, StreamSource};
use crate::backup::catalog::Catalog;
use crate::backup::repo::config::InitOptions;
use crate::backup::repo::lock::LockMode;
use crate::backup::repo::{RepoError, Repository};
use crate::backup::restorer::{self, RestoreRequest};
use crate::backup::retention::{self, GroupBy, SnapshotMeta};
use crate::backup::{checker, prune, snapshot};

/// How long a run waits for another process's lock on the repository (the CLI on the host).
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// What a successful run did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The snapshot.
    pub snapshot: String,
    /// Its summary.
    pub summary: crate::backup::snapshot::SnapshotSummary,
    /// Snapshots forgotten by the retention rules.
    pub forgotten: usize,
    /// Notes (skipped entries, prune figures).
    pub notes: Vec<String>,
    /// Snapshots after the run.
    pub snapshots: u64,
    /// Bytes of packs after the run.
    pub repository_bytes: u64,
}

/// Runs `argv` with a timeout, in its own process group (killed whole on timeout).
pub fn run_hook(argv: &[String], timeout: Duration, env: &[(&str, &str)]) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = argv.split_first() else {
        return Ok(());
    };
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.by_ref().take(2048).read_to_string(&mut err);
                }
                return Err(format!("{program}: {status}: {}", err.trim()));
            }
            Ok(None) if started.elapsed() > timeout => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(-pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.wait();
                return Err(format!(
                    "{program}: killed after its timeout of {timeout:?}"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("{program}: {e}")),
        }
    }
}

fn open_repo(set: &BackupSetConfig, what: &str, mode: LockMode) -> Result<Repository, String> {
    let root = set.repository();
    let opened = if root.join("config").exists() {
        let key = set.master_key(false)?;
        Repository::open_keyed(&root, mode, LOCK_WAIT, what, key.as_ref())
    } else {
        Err(RepoError::NotARepository { path: root.clone() })
    };
    match opened {
        Ok(r) => Ok(r),
        // The first run creates the repository (and the key file, for an encrypted set).
        Err(RepoError::NotARepository { .. }) if mode == LockMode::Exclusive => {
            std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
            let options = InitOptions {
                compression: set.compression,
                key: set.master_key(true)?,
                ..InitOptions::default()
            };
            Repository::init(&root, options).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Backs up `set` (its Docker volumes already resolved to `volume_paths`).
pub fn backup(
    set: &BackupSetConfig,
    volume_paths: Vec<PathBuf>,
    cache_dir: &Path,
    cancel: &AtomicBool,
) -> Result<RunOutcome, String> {
    let hook_timeout = set.hook_timeout.get();
    run_hook(&set.pre_hook, hook_timeout, &[]).map_err(|e| format!("pre_hook: {e}"))?;
    let result = backup_inner(set, volume_paths, cache_dir, cancel);
    let status = if result.is_ok() { "success" } else { "failure" };
    let post = run_hook(
        &set.post_hook,
        hook_timeout,
        &[("MUSTER_BACKUP_STATUS", status)],
    );
    match (result, post) {
        (Ok(mut out), Err(e)) => {
            out.notes.push(format!("post_hook: {e}"));
            Ok(out)
        }
        (result, _) => result,
    }
}

fn backup_inner(
    set: &BackupSetConfig,
    volume_paths: Vec<PathBuf>,
    cache_dir: &Path,
    cancel: &AtomicBool,
) -> Result<RunOutcome, String> {
    let mut repo = open_repo(set, "backup", LockMode::Exclusive)?;
    let catalog = Catalog::open(cache_dir, &repo.config().id).map_err(|e| e.to_string())?;
    let mut sources = set.paths.clone();
    sources.extend(volume_paths);
    let request = BackupRequest {
        sources,
        excludes: set.exclude.clone(),
        tags: vec![set.name.clone()],
        threads: 0,
        streams: set
            .commands
            .iter()
            .map(|c| StreamSource {
                name: c.name.clone(),
                command: c.run.clone(),
                timeout: c.timeout.get(),
            })
            .collect(),
    };
    let out = archiver::run(&mut repo, &catalog, &request, &NoProgress, cancel)
        .map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    if out.snapshot.summary.errors > 0 {
        notes.push(format!(
            "{} entries could not be read (named in the agent's log)",
            out.snapshot.summary.errors
        ));
    }
    let mut forgotten = 0;
    if let Some(keep) = &set.keep {
        let all = snapshot::list(&repo).map_err(|e| e.to_string())?;
        // Only this set's snapshots (its tag) are subject to its rules.
        let metas: Vec<SnapshotMeta> = all
            .iter()
            .filter(|e| e.snapshot.tags.contains(&set.name))
            .map(snapshot::SnapshotEntry::retention_meta)
            .collect();
        for group in retention::apply(keep, &metas, GroupBy::default()) {
            if group.removes_all() {
                continue;
            }
            for id in group.removed() {
                snapshot::remove(&repo, id).map_err(|e| e.to_string())?;
                forgotten += 1;
            }
        }
        if forgotten > 0 {
            let all = snapshot::list(&repo).map_err(|e| e.to_string())?;
            catalog.sync_snapshots(&all).map_err(|e| e.to_string())?;
            if set.prune {
                let report = prune::prune(&mut repo, false).map_err(|e| e.to_string())?;
                notes.push(format!(
                    "forgot {forgotten} snapshots; pruned {} packs, repacked {}",
                    report.packs_deleted, report.packs_repacked
                ));
            }
        }
    }
    let snapshots = snapshot::list(&repo).map_err(|e| e.to_string())?.len() as u64;
    let repository_bytes = repo.index().packs().iter().map(|p| p.size).sum();
    Ok(RunOutcome {
        snapshot: out.id,
        summary: out.snapshot.summary,
        forgotten,
        notes,
        snapshots,
        repository_bytes,
    })
}

/// Verifies `set`'s repository; the text lists the problems, if any.
pub fn verify(set: &BackupSetConfig, read_data: bool) -> Result<String, String> {
    let repo = open_repo(set, "verify", LockMode::Shared)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let report =
        checker::verify(&repo, read_data, threads, &NoProgress).map_err(|e| e.to_string())?;
    let head = format!(
        "{} snapshots, {} packs, {} trees checked",
        report.snapshots, report.packs, report.trees
    );
    if report.is_ok() {
        Ok(format!("{head}: no problems"))
    } else {
        Err(format!("{head}: {}", report.problems.join("; ")))
    }
}

/// Restores `snapshot` (or `sub_path` of it) of `set` into `target`, which must be one of the
/// set's `restore_targets` or inside one.
pub fn restore(
    set: &BackupSetConfig,
    snapshot_ref: &str,
    target: &Path,
    sub_path: Option<&str>,
    cancel: &AtomicBool,
) -> Result<String, String> {
    if !set.may_restore_into(target) {
        return Err(format!(
            "{} is not an allowed restore target of backup set {:?} (restore_targets in agent.toml)",
            target.display(),
            set.name
        ));
    }
    let include = match sub_path {
        Some(p) if p.split('/').any(|c| c == "..") => {
            return Err(format!("sub path {p:?} must not contain '..'"));
        }
        Some(p) => Some(Path::new("/").join(p.trim_start_matches('/'))),
        None => None,
    };
    let repo = open_repo(set, "restore", LockMode::Shared)?;
    let entry = snapshot::resolve(&repo, snapshot_ref).map_err(|e| e.to_string())?;
    let request = RestoreRequest {
        target: target.to_path_buf(),
        include,
        threads: 0,
    };
    let s = restorer::run(&repo, &entry.snapshot, &request, &NoProgress, cancel)
        .map_err(|e| e.to_string())?;
    let text = format!(
        "restored snapshot {} into {}: {} files, {} folders, {} bytes",
        &entry.id[..8],
        target.display(),
        s.files,
        s.dirs,
        s.bytes
    );
    if s.errors > 0 {
        return Err(format!(
            "{text}; {} entries could not be restored",
            s.errors
        ));
    }
    Ok(text)
}
